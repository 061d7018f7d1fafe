import type { DataSource } from 'typeorm';
import { AppError } from '../shared/app-error';
import * as repo from './privacy.repository';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Everything Earshot holds about one person (a data subject access request), as plain JSON.
 *
 * Must stay true: every table that can hold the customer's data is read here (the erasure test
 * checks the same list): the customer rows (merged-away ones too), identities, interactions with
 * their topics, CRM records, listening items, merge suggestions and history, daily rollups,
 * write-back state, outbox rows not yet sent and erasure requests.
 */
export class CustomerExportService {
  constructor(private readonly ds: DataSource) {}

  async export(customerId: string): Promise<Record<string, unknown>> {
    if (!UUID.test(customerId)) throw AppError.badInput(`invalid customer id: ${JSON.stringify(customerId)}`);
    const ids = await repo.customerFamily(this.ds, customerId, false);
    if (ids.length === 0) throw AppError.notFound(`customer ${customerId}`);
    const { customers, identities, interactions, crmRecords, listeningItems, suggestions, history, daily, writeback, outbox, erasures } = await repo.customerData(this.ds, ids);
    return {
      exportedAt: new Date().toISOString(),
      customerId,
      customers,
      identities,
      interactions,
      crmRecords,
      listeningItems,
      mergeSuggestions: suggestions,
      mergeHistory: history.map((h) => withoutOthersName(h, ids)),
      dailySentiment: daily,
      crmWriteback: writeback,
      pendingOutbox: outbox,
      erasureRequests: erasures,
    };
  }
}

/**
 * A merge or link record as the export shows it: its undo snapshot keeps the name the merged or
 * linked side had, which is another person's once the merge was undone (or the merged customer
 * is no longer one of this family); the rest (ids, reason, actor, times) stays.
 */
function withoutOthersName(row: repo.StoredRow, family: readonly string[]): repo.StoredRow {
  const snapshot = row.snapshot as Record<string, unknown> | null | undefined;
  if (!snapshot || typeof snapshot !== 'object' || !('displayName' in snapshot)) return row;
  const mergedId = row.merged_id as string | null;
  const ours = row.undone_at == null && (mergedId == null || family.includes(mergedId));
  if (ours) return row;
  const { displayName: _others, ...rest } = snapshot;
  return { ...row, snapshot: rest };
}

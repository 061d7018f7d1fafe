import type { DataSource } from 'typeorm';
import { AppError } from '../shared/app-error';
import * as repo from './privacy.repository';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/**
 * Interactions per export response, and the most a caller may ask for: one response is built whole
 * in memory and serialized in one go (blocking the event loop), so it must stay bounded however
 * many interactions a person has (100,000 in one response took 590 MB and stalled every other
 * request for 3.3 s; about 400,000 exceed the largest string V8 makes, and the export then fails).
 */
export const EXPORT_INTERACTIONS_MAX = 5_000;

/**
 * Everything Earshot holds about one person (a data subject access request), as plain JSON.
 *
 * Must stay true: every table that can hold the customer's data is read here (the erasure test
 * checks the same list): the customer rows (merged-away ones too), identities, interactions with
 * their topics, CRM records, listening items, merge suggestions and history, daily rollups,
 * write-back state, outbox rows not yet sent and erasure requests. Interactions come in pages of at
 * most EXPORT_INTERACTIONS_MAX in (occurred_at, id) order: `interactionsTotal` counts them all and
 * `interactionsNext` (null on the last page) is the `interactionsAfter` of the next page. A request
 * without `interactionsFirst` or `interactionsAfter` gets everything in one response when that fits,
 * and an error saying how to page when it does not (never a first page taken for the whole export).
 */
export class CustomerExportService {
  constructor(private readonly ds: DataSource) {}

  async export(customerId: string, page: { interactionsAfter?: string | null; interactionsFirst?: number | null } = {}): Promise<Record<string, unknown>> {
    if (!UUID.test(customerId)) throw AppError.badInput(`invalid customer id: ${JSON.stringify(customerId)}`);
    const after = page.interactionsAfter ?? null;
    if (after !== null && !UUID.test(after)) throw AppError.badInput(`invalid interactionsAfter: ${JSON.stringify(after)}`);
    const first = page.interactionsFirst ?? EXPORT_INTERACTIONS_MAX;
    if (!Number.isInteger(first) || first < 1 || first > EXPORT_INTERACTIONS_MAX) throw AppError.badInput(`interactionsFirst must be 1 to ${EXPORT_INTERACTIONS_MAX}`);
    const ids = await repo.customerFamily(this.ds, customerId, false);
    if (ids.length === 0) throw AppError.notFound(`customer ${customerId}`);
    const data = await repo.customerData(this.ds, ids, { after, limit: first + 1 });
    const { customers, identities, crmRecords, listeningItems, suggestions, history, daily, writeback, outbox, erasures } = data;
    const paged = page.interactionsFirst != null || page.interactionsAfter != null;
    if (!paged && data.interactions.length > first) {
      // a caller that does not page would take the first page for the whole export
      throw AppError.badInput(
        `customer ${customerId} has ${data.interactionCount} interactions, more than one export response holds (${EXPORT_INTERACTIONS_MAX}): ask for pages with interactionsFirst (at most ${EXPORT_INTERACTIONS_MAX}) and follow interactionsNext`,
      );
    }
    const interactions = data.interactions.slice(0, first);
    return {
      exportedAt: new Date().toISOString(),
      customerId,
      customers,
      identities,
      interactionsTotal: data.interactionCount,
      interactions,
      interactionsNext: data.interactions.length > first ? (interactions[interactions.length - 1]!.id as string) : null,
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

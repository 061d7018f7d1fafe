import type { DataSource } from 'typeorm';
import type { IdentityKeyOptions } from '../identity/normalize';
import { AppError } from '../shared/app-error';
import { addressedKeys } from './addressed-keys';
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
 * Listening items per export response, and the most a caller may ask for: a customer can own as
 * many as interactions (a brand's own handle taken for a customer: tens of thousands), and each
 * response must stay bounded the same way (12,000 items made every page of the export 12.5 MB, 18 MB
 * alongside a full page of interactions; 5,000 items a page: 5.2 MB).
 */
export const EXPORT_LISTENING_ITEMS_MAX = 5_000;
/**
 * Company replies addressed to the person per export response, and the most a caller may ask for:
 * they are interactions (a brand's handle taken for a customer is addressed by every reply the
 * brand's account makes to it), bounded as interactions are.
 */
export const EXPORT_ADDRESSED_REPLIES_MAX = 5_000;

/** How the caller pages the export: each paged list has its own size and cursor. */
export interface ExportPage {
  interactionsAfter?: string | null;
  interactionsFirst?: number | null;
  listeningItemsAfter?: string | null;
  listeningItemsFirst?: number | null;
  addressedRepliesAfter?: string | null;
  addressedRepliesFirst?: number | null;
}

/**
 * Everything Earshot holds about one person (a data subject access request), as plain JSON.
 *
 * Must stay true: every table that can hold the customer's data is read here (the erasure test
 * checks the same list): the customer rows (merged-away ones too), identities, interactions with
 * their topics, CRM records, listening items, merge suggestions and history, daily rollups,
 * write-back state, outbox rows not yet sent and erasure requests. Interactions come in pages of at
 * most EXPORT_INTERACTIONS_MAX in (occurred_at, id) order: `interactionsTotal` counts them all and
 * `interactionsNext` (null on the last page) is the `interactionsAfter` of the next page. Listening
 * items page the same way, on their own, in (opened_at, id) order (`listeningItemsFirst`,
 * `listeningItemsAfter`, `listeningItemsTotal`, `listeningItemsNext`), and so do the company replies
 * addressed to the person by name or address alone (`addressedReplies…`: the replies an erasure
 * redacts with the person, found by the same `addressedKeys`, less the person's own interactions);
 * every other list comes whole.
 * A list asked for without its own `…First` or `…After` comes whole when that fits, and the request
 * gets an error saying how to page when it does not (never a first page taken for the whole list).
 */
export class CustomerExportService {
  constructor(
    private readonly ds: DataSource,
    private readonly keyOptions: IdentityKeyOptions = {},
  ) {}

  async export(customerId: string, page: ExportPage = {}): Promise<Record<string, unknown>> {
    if (!UUID.test(customerId)) throw AppError.badInput(`invalid customer id: ${JSON.stringify(customerId)}`);
    const interactionPage = pageArgs('interactions', page.interactionsFirst, page.interactionsAfter, EXPORT_INTERACTIONS_MAX);
    const itemPage = pageArgs('listeningItems', page.listeningItemsFirst, page.listeningItemsAfter, EXPORT_LISTENING_ITEMS_MAX);
    const replyPage = pageArgs('addressedReplies', page.addressedRepliesFirst, page.addressedRepliesAfter, EXPORT_ADDRESSED_REPLIES_MAX);
    const ids = await repo.customerFamily(this.ds, customerId, false);
    if (ids.length === 0) throw AppError.notFound(`customer ${customerId}`);
    // the keys the erasure redacts replies by: what it would redact, this exports
    const keys = await addressedKeys(this.ds, ids, this.keyOptions);
    const data = await repo.customerData(
      this.ds,
      ids,
      { after: interactionPage.after, limit: interactionPage.first + 1 },
      { after: itemPage.after, limit: itemPage.first + 1 },
      { keys, after: replyPage.after, limit: replyPage.first + 1 },
    );
    if (!data.interactionCursorFound) throw AppError.badInput(`interactionsAfter ${JSON.stringify(interactionPage.after)} is no interaction: pass the interactionsNext of the page before`);
    if (!data.listeningItemCursorFound) throw AppError.badInput(`listeningItemsAfter ${JSON.stringify(itemPage.after)} is no listening item: pass the listeningItemsNext of the page before`);
    if (!data.addressedReplyCursorFound) throw AppError.badInput(`addressedRepliesAfter ${JSON.stringify(replyPage.after)} is no interaction: pass the addressedRepliesNext of the page before`);
    const { customers, identities, crmRecords, suggestions, history, daily, writeback, outbox, erasures } = data;
    if (!interactionPage.paged && data.interactions.length > interactionPage.first) {
      // a caller that does not page would take the first page for the whole export
      throw AppError.badInput(
        `customer ${customerId} has ${data.interactionCount} interactions, more than one export response holds (${EXPORT_INTERACTIONS_MAX}): ask for pages with interactionsFirst (at most ${EXPORT_INTERACTIONS_MAX}) and follow interactionsNext`,
      );
    }
    if (!itemPage.paged && data.listeningItems.length > itemPage.first) {
      throw AppError.badInput(
        `customer ${customerId} has ${data.listeningItemCount} listening items, more than one export response holds (${EXPORT_LISTENING_ITEMS_MAX}): ask for pages with listeningItemsFirst (at most ${EXPORT_LISTENING_ITEMS_MAX}) and follow listeningItemsNext`,
      );
    }
    if (!replyPage.paged && data.addressedReplies.length > replyPage.first) {
      throw AppError.badInput(
        `customer ${customerId} has ${data.addressedReplyCount} replies addressed to them, more than one export response holds (${EXPORT_ADDRESSED_REPLIES_MAX}): ask for pages with addressedRepliesFirst (at most ${EXPORT_ADDRESSED_REPLIES_MAX}) and follow addressedRepliesNext`,
      );
    }
    const interactions = data.interactions.slice(0, interactionPage.first);
    const addressedReplies = data.addressedReplies.slice(0, replyPage.first);
    const listeningItems = data.listeningItems.slice(0, itemPage.first);
    return {
      exportedAt: new Date().toISOString(),
      customerId,
      customers,
      identities,
      interactionsTotal: data.interactionCount,
      interactions,
      interactionsNext: data.interactions.length > interactionPage.first ? (interactions[interactions.length - 1]!.id as string) : null,
      addressedRepliesTotal: data.addressedReplyCount,
      addressedReplies,
      addressedRepliesNext: data.addressedReplies.length > replyPage.first ? (addressedReplies[addressedReplies.length - 1]!.id as string) : null,
      crmRecords,
      listeningItemsTotal: data.listeningItemCount,
      listeningItems,
      listeningItemsNext: data.listeningItems.length > itemPage.first ? (listeningItems[listeningItems.length - 1]!.id as string) : null,
      mergeSuggestions: suggestions,
      mergeHistory: history.map((h) => withoutOthersName(h, ids)),
      dailySentiment: daily,
      crmWriteback: writeback,
      pendingOutbox: outbox,
      erasureRequests: erasures,
    };
  }
}

/** One paged list's arguments, checked: its page size (the most when not given), cursor, and whether the caller pages it. */
function pageArgs(list: string, first: number | null | undefined, after: string | null | undefined, max: number): { first: number; after: string | null; paged: boolean } {
  const cursor = after ?? null;
  if (cursor !== null && !UUID.test(cursor)) throw AppError.badInput(`invalid ${list}After: ${JSON.stringify(cursor)}`);
  const size = first ?? max;
  if (!Number.isInteger(size) || size < 1 || size > max) throw AppError.badInput(`${list}First must be 1 to ${max}`);
  return { first: size, after: cursor, paged: first != null || after != null };
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

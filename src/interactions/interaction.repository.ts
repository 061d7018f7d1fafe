import type { QueryRunner } from 'typeorm';
import { copyBoolean, copyJson, copyNumber, copyText } from '../db/copy-text';
import { erasedExternalIdSql } from '../db/erased-key';
import { sqlState, violatedConstraint } from '../db/failures';
import { copyIn, exec, firstRow, rows, type Db } from '../db/sql';
import { cursorOwner, keyset, type SortKey, type Window } from '../graphql/keyset';
import type { Page } from '../graphql/relay';
import { AppError } from '../shared/app-error';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Every SQL statement over stored interactions: the API's lists and look-ups, and the ingest
 * pipeline's batch writes (inside its transaction), each returning a declared row type.
 */

/** Orders of interaction lists. */
export enum InteractionOrder {
  NEWEST = 'newest',
  OLDEST = 'oldest',
}

// occurred_at read back as text: a JS Date drops the microseconds a cursor needs
/** Orders of `interactions`, the list of every interaction. */
const ALL_INTERACTION_ORDERS: Record<InteractionOrder, SortKey> = {
  [InteractionOrder.NEWEST]: { name: 'interactions:newest', expr: 'i.occurred_at', type: 'timestamptz', desc: true },
  [InteractionOrder.OLDEST]: { name: 'interactions:oldest', expr: 'i.occurred_at', type: 'timestamptz', desc: false },
};

/**
 * Orders of `Customer.interactions`, a customer's own list: its cursors name the customer too
 * (keyset's `owner`), so one customer's cursor is refused on another's list, as the other list's
 * are on this one.
 */
export const INTERACTION_ORDERS: Record<InteractionOrder, SortKey> = {
  [InteractionOrder.NEWEST]: { ...ALL_INTERACTION_ORDERS[InteractionOrder.NEWEST], name: 'Customer.interactions:newest' },
  [InteractionOrder.OLDEST]: { ...ALL_INTERACTION_ORDERS[InteractionOrder.OLDEST], name: 'Customer.interactions:oldest' },
};

export interface InteractionRow {
  id: string;
  source: string;
  external_id: string;
  url: string | null;
  text: string;
  occurred_at: Date;
  direction: string;
  in_reply_to: string | null;
  author_handle: string | null;
  author_display_name: string | null;
  lang: string | null;
  rating: number | null;
  sentiment_score: number;
  sentiment_label: string;
  sentiment_confidence: number;
  intent: string;
  intent_confidence: number;
  explanation: { token: string; weight: number }[];
  sentiment_model: string | null;
  complaint: boolean | null;
  complaint_probability: number | null;
  unhappy: boolean | null;
  customer_id: string | null;
  sort_key: string;
}

export const INTERACTION_COLUMNS = `i.id, i.source, i.external_id, i.url, i.text, i.occurred_at, i.direction, i.in_reply_to,
  i.author_handle, i.author_display_name, i.lang, i.rating, i.sentiment_score, i.sentiment_label,
  i.sentiment_confidence, i.intent, i.intent_confidence, i.explanation, i.sentiment_model, i.complaint, i.complaint_probability, i.unhappy, i.customer_id, i.occurred_at::text AS sort_key`;

/** What an interaction list is filtered by (`customerId`: the customer's uuid). */
/** One interaction as {@link interactionJson} lists it (read back by `fromInteractionJson` in interaction.service.ts). */
export type InteractionJsonRow = [
  id: string, source: string, externalId: string, url: string | null, text: string, occurredAt: string, direction: string,
  inReplyTo: string | null, authorHandle: string | null, authorDisplayName: string | null, lang: string | null, rating: number | null,
  score: number, label: string, confidence: number, intent: string, intentConfidence: number,
  explanation: { token: string; weight: number }[] | null, model: string | null, customerId: string | null, sortKey: string,
  complaint: boolean | null, complaintProbability: number | null, unhappy: boolean | null,
];

/** The slots of InteractionJsonRow, in order: the column each is read from. */
const INTERACTION_JSON_SLOTS = [
  'id', 'source', 'external_id', 'url', 'text', 'occurred_at', 'direction', 'in_reply_to', 'author_handle', 'author_display_name', 'lang', 'rating',
  'sentiment_score', 'sentiment_label', 'sentiment_confidence', 'intent', 'intent_confidence', 'explanation', 'sentiment_model', 'customer_id', 'sort_key',
  'complaint', 'complaint_probability', 'unhappy',
] as const;

/** Columns every prefetched interaction carries whatever is selected: its id and cursor. */
const ALWAYS = new Set(['id', 'sort_key']);

/**
 * One interaction as a JSON list, in InteractionJsonRow's order, from a row of INTERACTION_COLUMNS aliased `i`.
 * Only the `columns` the selection reads are filled (all of them when null), the others are
 * NULL: never read, as no selected field resolves from them.
 */
export function interactionJson(columns: ReadonlySet<string> | null): string {
  return `json_build_array(${INTERACTION_JSON_SLOTS.map((c) => (!columns || columns.has(c) || ALWAYS.has(c) ? `i.${c}` : 'NULL')).join(', ')})`;
}

export interface InteractionRowFilter {
  source?: string | null;
  direction?: string | null;
  label?: string | null;
  intent?: string | null;
  customerId?: string | null;
  from?: Date | null;
  to?: Date | null;
}

// ---- the API -----------------------------------------------------------------------------------

/** In the asked order of occurredAt, keyset-paged on (occurred_at, id). */
export async function interactionPage<T>(db: Db, w: Window, filter: InteractionRowFilter, order: InteractionOrder, map: (r: InteractionRow) => T): Promise<Page<T>> {
  const sort = ALL_INTERACTION_ORDERS[order];
  const where: string[] = ['true'];
  const params: unknown[] = [];
  const add = (sql: (p: string) => string, value: unknown) => {
    params.push(value);
    where.push(sql(`$${params.length}`));
  };
  if (filter.source) add((p) => `i.source = ${p}`, filter.source);
  if (filter.direction) add((p) => `i.direction = ${p}`, filter.direction);
  if (filter.label) add((p) => `i.sentiment_label = ${p}`, filter.label);
  if (filter.intent) add((p) => `i.intent = ${p}`, filter.intent);
  if (filter.customerId) add((p) => `i.customer_id = ${p}::uuid`, filter.customerId);
  if (filter.from) add((p) => `i.occurred_at >= ${p}`, filter.from);
  if (filter.to) add((p) => `i.occurred_at < ${p}`, filter.to);
  const countWhere = where.join(' AND ');
  const countParams = [...params];
  const k = keyset(sort, 'i.id', w, params);
  params.push(k.limit);
  const found = await rows<InteractionRow>(
    db,
    `SELECT ${INTERACTION_COLUMNS} FROM interaction i WHERE ${[...where, ...k.conditions].join(' AND ')}
       ORDER BY ${k.orderBy} LIMIT $${params.length}`,
    params,
  );
  return k.page(found, map, (r) => [r.sort_key, r.id], async () =>
    (await firstRow<{ total: number }>(db, `SELECT count(*)::int AS total FROM interaction i WHERE ${countWhere}`, countParams))!.total,
  );
}

export function interactionsByIds(db: Db, ids: readonly string[]): Promise<InteractionRow[]> {
  return rows(db, `SELECT ${INTERACTION_COLUMNS} FROM interaction i WHERE i.id = ANY($1::uuid[])`, [ids]);
}

/** The topics of interactions, by topic name. */
export function topicsOfInteractions(db: Db, interactionIds: readonly string[]): Promise<{ interaction_id: string; name: string; department: string }[]> {
  return rows(
    db,
    `SELECT it.interaction_id, t.name, d.name AS department
         FROM interaction_topic it JOIN topic t ON t.id = it.topic_id JOIN department d ON d.id = t.department_id
        WHERE it.interaction_id = ANY($1::uuid[]) ORDER BY t.name`,
    [interactionIds],
  );
}

/**
 * One page of interactions for each of many customers in one query whatever their number
 * (a LATERAL join); each page's totalCount is `countOf(customerId)`, called only when asked for.
 * A customer whose list the window's cursor is not of gets its BAD_USER_INPUT in place of a page.
 */
export async function interactionPagesByCustomer<T>(
  db: Db,
  customerIds: readonly string[],
  w: Window,
  order: InteractionOrder,
  map: (r: InteractionRow) => T,
  countOf: (customerId: string) => Promise<number>,
): Promise<(Page<T> | AppError)[]> {
  const sort = INTERACTION_ORDERS[order];
  // A cursor names the customer whose list made it, and is refused on any other customer's list
  // (the error keyset() gives). It stays good on its survivor's once that customer is merged away
  // (`customer(id:)` of the merged id answers the survivor, whose list now holds its interactions).
  const cursor = w.after != null || w.before != null;
  const owner = cursor ? (cursorOwner(w.after) ?? cursorOwner(w.before)) : null;
  const survivor = owner && UUID.test(owner) ? (await firstRow<{ id: string }>(db, `SELECT coalesce(merged_into_id, id) AS id FROM customer WHERE id = $1::uuid`, [owner]))?.id : undefined;
  // a cursor without an owner is no cursor of this list (keyset() refuses it on each)
  const accepted = customerIds.filter((id) => !cursor || (owner !== null && (id === owner || id === survivor)));
  // the error of that customer's own keyset: the cursor's owner is another customer
  const refused = (id: string): AppError => {
    try {
      keyset(sort, 'i.id', w, [], id);
    } catch (e) {
      return e as AppError;
    }
    throw new Error(`a cursor of ${owner} refused on the list of ${id}, yet read by its keyset`);
  };
  const params: unknown[] = [accepted];
  const k = keyset(sort, 'i.id', w, params, owner);
  params.push(k.limit);
  const found = accepted.length === 0 ? [] : await rows<InteractionRow>(
    db,
    `SELECT x.* FROM unnest($1::uuid[]) AS c(id) CROSS JOIN LATERAL (
         SELECT ${INTERACTION_COLUMNS} FROM interaction i WHERE i.customer_id = c.id ${k.conditions.map((c) => `AND ${c}`).join(' ')}
          ORDER BY ${k.orderBy} LIMIT $${params.length}) x`,
    params,
  );
  const grouped = new Map<string, InteractionRow[]>();
  for (const r of found) {
    const list = grouped.get(r.customer_id!);
    if (list) list.push(r);
    else grouped.set(r.customer_id!, [r]);
  }
  // each page's cursors name its own customer
  return customerIds.map((id) => (accepted.includes(id) ? k.page(grouped.get(id) ?? [], map, (r) => [r.sort_key, r.id], () => countOf(id), id) : refused(id)));
}

/** Interactions per customer (customers without any are left out). */
export function countsByCustomer(db: Db, customerIds: readonly string[]): Promise<{ customer_id: string; total: number }[]> {
  return rows(
    db,
    `SELECT customer_id, count(*)::int AS total FROM interaction WHERE customer_id = ANY($1::uuid[]) GROUP BY customer_id`,
    [customerIds],
  );
}

// ---- the ingest pipeline (inside its transaction) ----------------------------------------------

/**
 * Bounds how long the current transaction's statements wait for a lock (`SET LOCAL lock_timeout`;
 * 0 waits for ever). A lock held by an operator's VACUUM FULL or ALTER TABLE then fails the
 * batch with 55P03, which is retried (HTTP 503, a Kafka partition backs off), instead of a
 * request waiting without bound.
 */
export async function limitLockWait(db: Db, ms: number): Promise<void> {
  await rows(db, `SELECT set_config('lock_timeout', $1, true)`, [`${Math.max(0, Math.round(ms))}ms`]);
}

/**
 * Which of the (source, external id) keys are stored already, or were and have been erased (their
 * row keeps a hash of the key: src/db/erased-key.ts), so a replay does not bring them back.
 */
export function storedKeys(db: Db, sources: readonly string[], externalIds: readonly string[]): Promise<{ source: string; external_id: string }[]> {
  return rows(
    db,
    `SELECT k.source, k.external_id FROM unnest($1::text[], $2::text[]) AS k(source, external_id)
       CROSS JOIN LATERAL (
         SELECT 1 FROM interaction i
          WHERE i.source = k.source AND i.external_id IN (k.external_id, ${erasedExternalIdSql('k.source', 'k.external_id')})
          LIMIT 1) i`,
    [sources, externalIds],
  );
}

/** An interaction as the ingest pipeline inserts it (the columns COPY writes below). */
export interface NewInteractionRow {
  id: string;
  event_id: string | null;
  source: string;
  external_id: string;
  url: string | null;
  text: string;
  occurred_at: string;
  direction: string;
  in_reply_to: string | null;
  author_handle: string | null;
  author_display_name: string | null;
  lang: string | null;
  rating: number | null;
  metadata: unknown;
  sentiment_score: number;
  sentiment_label: string;
  sentiment_confidence: number;
  intent: string;
  intent_confidence: number;
  explanation: unknown;
  customer_id: string | null;
  thread_key: string | null;
  identity_id: string | null;
  sentiment_model: string | null;
  complaint: boolean | null;
  complaint_probability: number | null;
  unhappy: boolean | null;
  /** a company reply naming its addressee but no message: the addressee's key (the listening gap's, GapPlan.recipientKeys) */
  recipient_key: string | null;
}

/** The columns a new interaction is written with, in the order {@link copyRow} writes them. */
const NEW_INTERACTION_COLUMNS = `id, event_id, source, external_id, url, text, occurred_at, direction, in_reply_to, author_handle,
  author_display_name, lang, rating, metadata, sentiment_score, sentiment_label, sentiment_confidence, intent, intent_confidence,
  explanation, customer_id, thread_key, identity_id, sentiment_model, complaint, complaint_probability, unhappy, recipient_key`;

function copyRow(r: NewInteractionRow): string {
  return [
    r.id,
    copyText(r.event_id),
    copyText(r.source),
    copyText(r.external_id),
    copyText(r.url),
    copyText(r.text),
    r.occurred_at,
    copyText(r.direction),
    copyText(r.in_reply_to),
    copyText(r.author_handle),
    copyText(r.author_display_name),
    copyText(r.lang),
    copyNumber(r.rating),
    copyJson(r.metadata),
    copyNumber(r.sentiment_score),
    copyText(r.sentiment_label),
    copyNumber(r.sentiment_confidence),
    copyText(r.intent),
    copyNumber(r.intent_confidence),
    copyJson(r.explanation),
    copyText(r.customer_id),
    copyText(r.thread_key),
    copyText(r.identity_id),
    copyText(r.sentiment_model),
    copyBoolean(r.complaint),
    copyNumber(r.complaint_probability),
    copyBoolean(r.unhappy),
    copyText(r.recipient_key),
  ].join('\t');
}

/**
 * Inserts a batch with COPY, in the caller's transaction: all rows or none. The caller has
 * left out the (source, external id) pairs already stored; one stored meanwhile by a concurrent
 * writer fails the COPY with a unique violation ({@link isStoredMeanwhile}), and the batch is
 * run again. COPY rather than an INSERT … ON CONFLICT from one JSON parameter: on 500 stored
 * rows replayed on PostgreSQL 15, 18–21 ms against 30–36 ms (json_to_recordset alone took 15 ms:
 * it builds a hash of every object's keys), with 779 instead of 1,194 bytes per row sent; node
 * spends the same 8–9 µs per row writing either (README, "Ingest write path").
 */
export async function insertInteractions(qr: QueryRunner, batch: readonly NewInteractionRow[]): Promise<void> {
  if (batch.length === 0) return;
  await copyIn(qr, `interaction (${NEW_INTERACTION_COLUMNS})`, batch.map(copyRow));
}

/** True for the error of a batch that met an interaction stored meanwhile (same source and external id). */
export function isStoredMeanwhile(e: unknown): boolean {
  return sqlState(e) === '23505' && violatedConstraint(e) === 'interaction_source_external_key';
}

/**
 * True for the error of a batch that tagged with a topic deleted meanwhile: the taxonomy the
 * batch was analyzed with is cached per process, and another replica's edit reaches it only when
 * the cache expires. (The topic rollups come after the tags, whose foreign key checks hold the
 * topics until the batch commits, so a delete cannot fail them.)
 */
export function isDeletedTopic(e: unknown): boolean {
  return sqlState(e) === '23503' && violatedConstraint(e) === 'interaction_topic_topic_id_fkey';
}

/** Tags interactions: [interaction id, topic id, matched words]. */
export async function insertTopicTags(db: Db, tags: readonly (readonly [string, number, readonly string[]])[]): Promise<void> {
  await exec(
    db,
    `INSERT INTO interaction_topic (interaction_id, topic_id, matched)
         SELECT i, t, ARRAY(SELECT jsonb_array_elements_text(m)) FROM unnest($1::uuid[], $2::int[], $3::jsonb[]) AS x(i, t, m)
         ON CONFLICT DO NOTHING`,
    [tags.map((r) => r[0]), tags.map((r) => r[1]), tags.map((r) => JSON.stringify(r[2]))],
  );
}

import { erasedExternalIdSql } from '../db/erased-key';
import { exec, firstRow, rows, type Db } from '../db/sql';
import type { CrmSystem } from '../crm/crm.port';

/**
 * Every SQL statement of privacy (erasure, the CRM clean-up queue, export, retention), each
 * returning a declared row type. Erasure statements run inside the erasure's transaction.
 */

// ---- erasure -----------------------------------------------------------------------------------

/** The customer (root) holding an identity, if any. */
export async function customerByIdentity(db: Db, kind: string, value: string): Promise<string | null> {
  const row = await firstRow<{ customer_id: string }>(
    db,
    `SELECT coalesce(c.merged_into_id, c.id) AS customer_id FROM customer_identity ci JOIN customer c ON c.id = ci.customer_id WHERE ci.kind = $1 AND ci.value = $2`,
    [kind, value],
  );
  return row?.customer_id ?? null;
}

/** A customer's root and every customer merged into it, by id. */
export async function customerFamily(db: Db, customerId: string, lock: boolean): Promise<string[]> {
  const found = await rows<{ id: string }>(
    db,
    `WITH root AS (SELECT coalesce(merged_into_id, id) AS id FROM customer WHERE id = $1)
     SELECT c.id FROM customer c, root WHERE c.id = root.id OR c.merged_into_id = root.id ORDER BY c.id${lock ? ' FOR UPDATE OF c' : ''}`,
    [customerId],
  );
  return found.map((c) => c.id);
}

/** Interactions of the customers keep scores and topics but lose every personal value and their customer; their ids. */
export async function redactCustomerInteractions(db: Db, customerIds: readonly string[]): Promise<string[]> {
  const found = await rows<{ id: string }>(
    db,
    `WITH r AS (
       UPDATE interaction SET text = '', url = NULL, author_handle = NULL, author_display_name = NULL, metadata = NULL, recipient_key = NULL,
              explanation = '[]', event_id = NULL, in_reply_to = NULL, thread_key = NULL,
              external_id = ${erasedExternalIdSql('source', 'external_id')}, customer_id = NULL, identity_id = NULL, redacted_at = now()
        WHERE customer_id = ANY($1::uuid[]) RETURNING id)
     SELECT id FROM r`,
    [customerIds],
  );
  return found.map((r) => r.id);
}

/**
 * Whom the customers were as an author, for the replies addressed to them: the handles of their
 * inbound interactions (as stored), the keys their listening items hold, and their emails and
 * phones. Read before `redactCustomerInteractions` clears the handles.
 */
export async function addressesOfCustomers(
  db: Db,
  customerIds: readonly string[],
): Promise<{ handles: { source: string; handle: string }[]; itemKeys: { source: string; key: string }[]; addresses: string[] }> {
  // one after another: inside the erasure's transaction they share one connection
  const handles = await rows<{ source: string; handle: string }>(
    db,
    `SELECT DISTINCT source, author_handle AS handle FROM interaction
      WHERE customer_id = ANY($1::uuid[]) AND direction = 'inbound' AND author_handle IS NOT NULL`,
    [customerIds],
  );
  const itemKeys = await rows<{ source: string; key: string }>(
    db,
    `SELECT DISTINCT source, author_handle AS key FROM listening_item WHERE customer_id = ANY($1::uuid[]) AND author_handle IS NOT NULL`,
    [customerIds],
  );
  const addresses = await rows<{ value: string }>(db, `SELECT DISTINCT value FROM customer_identity WHERE customer_id = ANY($1::uuid[]) AND kind IN ('email', 'phone')`, [customerIds]);
  return { handles, itemKeys, addresses: addresses.map((a) => a.value) };
}

/** A key a company reply names its addressee by, on one source (`interaction.source`, `interaction.recipient_key`). */
export interface AddressedKey {
  source: string;
  key: string;
}

/**
 * Company replies addressed to a key (`interaction.recipient_key`, on `interaction_recipient_idx`)
 * lose every personal value as the customer's own interactions do: their text greets the person,
 * their metadata names the address. Their ids.
 */
export async function redactRepliesAddressedTo(db: Db, keys: readonly AddressedKey[]): Promise<string[]> {
  if (keys.length === 0) return [];
  const found = await rows<{ id: string }>(
    db,
    `WITH r AS (
       UPDATE interaction i SET text = '', url = NULL, metadata = NULL, recipient_key = NULL,
              explanation = '[]', event_id = NULL, in_reply_to = NULL, thread_key = NULL,
              external_id = ${erasedExternalIdSql('i.source', 'i.external_id')}, identity_id = NULL, redacted_at = now()
         FROM (SELECT DISTINCT source, key FROM unnest($1::text[], $2::text[]) AS k(source, key)) k
        WHERE i.source = k.source AND i.recipient_key = k.key
        RETURNING i.id)
     SELECT id FROM r`,
    [keys.map((k) => k.source), keys.map((k) => k.key)],
  );
  return found.map((r) => r.id);
}

/** Forgets the words that matched topics in these interactions. */
export async function clearTopicMatches(db: Db, interactionIds: readonly string[]): Promise<void> {
  await exec(db, `UPDATE interaction_topic SET matched = '{}' WHERE interaction_id = ANY($1::uuid[]) AND matched <> '{}'`, [interactionIds]);
}

export interface ErasedItem {
  id: string;
  was: string;
  escalation_system: CrmSystem | null;
  escalation_case_id: string | null;
  source: string;
}

/** Listening items of the customers or interactions: no author left, open ones closed as erased. */
export function eraseListeningItems(db: Db, customerIds: readonly string[], interactionIds: readonly string[]): Promise<ErasedItem[]> {
  return rows(
    db,
    `WITH old AS (
         SELECT id, status FROM listening_item WHERE customer_id = ANY($1::uuid[]) OR interaction_id = ANY($2::uuid[]) FOR UPDATE),
       u AS (
         UPDATE listening_item li SET author_handle = NULL, customer_id = NULL, escalation_error = NULL, updated_at = now(),
                thread_key = 'erased:' || li.id::text,
                status = CASE WHEN old.status = 'open' THEN 'closed' ELSE li.status END,
                closed_at = CASE WHEN old.status = 'open' THEN now() ELSE li.closed_at END,
                close_reason = CASE WHEN old.status = 'open' THEN 'erased' ELSE li.close_reason END
           FROM old WHERE li.id = old.id
         RETURNING li.id, old.status AS was, li.escalation_system, li.escalation_case_id, li.source)
       SELECT * FROM u`,
    [customerIds, interactionIds],
  );
}

/** Deletes the customers' CRM records; what they were and whether Earshot wrote to them. */
export function deleteCrmRecords(db: Db, customerIds: readonly string[]): Promise<{ system: CrmSystem; object_type: string; external_id: string; written: boolean }[]> {
  return rows(
    db,
    `WITH d AS (DELETE FROM crm_record WHERE customer_id = ANY($1::uuid[]) RETURNING system, object_type, external_id, written_values IS NOT NULL AS written)
     SELECT * FROM d`,
    [customerIds],
  );
}

/**
 * Takes the customers' names ($1, a family about to be erased) out of what outlives them once an
 * unlink or an unmerge took them out of a family they were merged into. A merge keeps the merged
 * customer's row (merged away, with its name) and the name in its audit row's snapshot; a survivor
 * without a name took it (`filledName`) and passed it on to customers it was merged into later.
 * The merges whose name is theirs: the merges of a customer of the family, and the merges (or old
 * links) that brought identities of the family and nothing still held outside it (identities are
 * deleted only by an erasure). Their snapshots lose the name; so do the snapshots of the merges of
 * the customers the name went to (the merged one, and the survivors it filled, merge after merge),
 * and those customers' rows while they are merged away and still bear it (a live customer lost it
 * when the unlink or the unmerge took its owner away). Events stored as given in the outbox (sent
 * or not) keyed by those customers and naming them so (the survivor's customer-sentiment.v1 of the
 * merge) keep the event without the name: unsent, it was published after the erasure. Must run
 * before their identities and audit rows are deleted. Returns how many audit rows, customer rows
 * and outbox rows were changed.
 *
 * The merges by identity are found by `merge_audit_identities_idx` (the snapshot's identity ids).
 */
export async function scrubNamesCarriedAway(db: Db, customerIds: readonly string[]): Promise<{ audits: number; customers: number; outbox: number }> {
  const row = await firstRow<{ audits: number; customers: number; outbox: number }>(
    db,
    `WITH RECURSIVE
       origin AS (
         SELECT a.id, a.survivor_id, a.merged_id, a.snapshot->>'displayName' AS name, coalesce((a.snapshot->>'filledName')::boolean, false) AS filled
           FROM merge_audit a
          WHERE a.merged_id = ANY($1::uuid[]) AND a.action = 'merge' AND a.snapshot->>'displayName' IS NOT NULL
         UNION
         SELECT a.id, a.survivor_id, a.merged_id, a.snapshot->>'displayName', coalesce((a.snapshot->>'filledName')::boolean, false)
           FROM merge_audit a
          WHERE a.action IN ('merge', 'link')
            AND a.snapshot->'identities' ?| ARRAY(SELECT id::text FROM customer_identity WHERE customer_id = ANY($1::uuid[]))
            AND a.snapshot->>'displayName' IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(a.snapshot->'identities') x(id)
                              JOIN customer_identity ci ON ci.id = CASE WHEN x.id ~ '^[0-9a-fA-F-]{36}$' THEN x.id::uuid END
                             WHERE ci.customer_id <> ALL($1::uuid[]))),
       bearer(customer_id, name) AS (
         SELECT x.customer_id, o.name FROM origin o CROSS JOIN LATERAL (VALUES (o.merged_id), (CASE WHEN o.filled THEN o.survivor_id END)) x(customer_id)
          WHERE x.customer_id IS NOT NULL
         UNION
         SELECT a.survivor_id, b.name FROM bearer b
          CROSS JOIN LATERAL (SELECT a.survivor_id FROM merge_audit a
                               WHERE a.merged_id = b.customer_id AND a.action = 'merge' AND a.snapshot->>'displayName' = b.name
                                 AND coalesce((a.snapshot->>'filledName')::boolean, false) OFFSET 0) a),
       target AS (
         SELECT id FROM origin
         UNION
         SELECT a.id FROM bearer b
          CROSS JOIN LATERAL (SELECT a.id FROM merge_audit a WHERE a.merged_id = b.customer_id AND a.action = 'merge' AND a.snapshot->>'displayName' = b.name OFFSET 0) a),
       audits AS (
         UPDATE merge_audit a SET snapshot = jsonb_set(a.snapshot, '{displayName}', 'null'::jsonb)
          WHERE a.id = ANY(ARRAY(SELECT id FROM target))
         RETURNING a.id),
       customers AS (
         UPDATE customer c SET display_name = NULL, updated_at = now()
           FROM (SELECT DISTINCT customer_id, name FROM bearer) b
          WHERE c.id = b.customer_id AND c.display_name = b.name AND c.merged_into_id IS NOT NULL AND c.id <> ALL($1::uuid[])
         RETURNING c.id),
       outbox AS (
         UPDATE outbox_batch ob
            SET messages = (SELECT jsonb_agg(CASE WHEN EXISTS (SELECT 1 FROM bearer b WHERE b.customer_id::text = e.m->>'key' AND b.name = e.m->'payload'->>'displayName')
                                                  THEN jsonb_set(e.m, '{payload,displayName}', 'null'::jsonb) ELSE e.m END ORDER BY e.n)
                              FROM jsonb_array_elements(ob.messages) WITH ORDINALITY e(m, n))
          WHERE EXISTS (SELECT 1 FROM bearer)
            AND ob.messages <> '[]'::jsonb
            AND EXISTS (SELECT 1 FROM jsonb_array_elements(ob.messages) m JOIN bearer b ON b.customer_id::text = m->>'key' AND b.name = m->'payload'->>'displayName')
         RETURNING ob.id)
     SELECT (SELECT count(*)::int FROM audits) AS audits, (SELECT count(DISTINCT id)::int FROM customers) AS customers, (SELECT count(*)::int FROM outbox) AS outbox`,
    [customerIds],
  );
  return row!;
}

/** Deletes suggestions and audit entries naming the customers, then their identities; how many identities. */
export async function deleteIdentityTraces(db: Db, customerIds: readonly string[]): Promise<number> {
  await exec(db, `DELETE FROM merge_suggestion WHERE customer_a_id = ANY($1::uuid[]) OR customer_b_id = ANY($1::uuid[])`, [customerIds]);
  await exec(db, `DELETE FROM merge_audit WHERE survivor_id = ANY($1::uuid[]) OR merged_id = ANY($1::uuid[])`, [customerIds]);
  const row = await firstRow<{ n: number }>(db, `WITH d AS (DELETE FROM customer_identity WHERE customer_id = ANY($1::uuid[]) RETURNING 1) SELECT count(*)::int AS n FROM d`, [customerIds]);
  return row!.n;
}

/**
 * An outbox event stored as given (`m`, an element of `messages`) about the customers ($1) or their
 * interactions ($2, topic $3): by key, by `customerId`, by the enriched event's `interactionId`, or
 * by the `interaction.id` a listening-gap.v1 event carries with its text. An escalation names the
 * root of the family at that time, so after an unmerge its `customerId` is another customer: the
 * erased person's text stayed in the outbox and, unsent, was published after the erasure.
 */
const MESSAGE_ABOUT = `(coalesce(m->>'key' = ANY($1::text[]), false) OR coalesce(m->'payload'->>'customerId' = ANY($1::text[]), false)
                       OR coalesce(m->>'topic' = $3 AND m->'payload'->>'interactionId' = ANY($2::text[]), false)
                       OR coalesce(m->'payload'->'interaction'->>'id' = ANY($2::text[]), false))`;

/**
 * Takes the outbox events (sent or not) about the customers or their interactions out of every
 * outbox batch (a batch may carry other customers' events too), deletes the batches left empty,
 * and answers how many events the `outbox` view showed about them: their interactions'
 * interactions.enriched.v1 events, the customer-sentiment.v1 events of the ones not merged away
 * (a merged customer's renders nothing), and the events stored as given that name them by key,
 * by `customerId` or (interactions.enriched.v1) by `interactionId`. Nothing changes when there
 * are none.
 *
 * Works on the stored arrays, never through the view: rendering every event of the outbox took
 * the erasure 41–46 s with the relay behind by 2,000 rows of 500 interactions; this takes 0.15 s
 * there (0.17–0.22 s the whole erasure). The batches are scanned whole (sent ones too, which keep
 * no copy either), interaction ids matched by hash (`&&` compares every pair: 3.7 s for 2,000 ids):
 * no index on the ingest path. Call it after redactCustomerInteractions, with every interaction
 * it redacted (whose enriched events then name the customers only by `interactionId`), and while
 * the customers still exist; the batches are locked as read, so an erasure running beside it on a
 * shared batch takes out its own events from what this one leaves.
 */
export async function removeOutboxEventsAbout(db: Db, customerIds: readonly string[], interactionIds: readonly string[], enrichedTopic: string): Promise<number> {
  const row = await firstRow<{ n: number }>(
    db,
    `WITH hit AS (
         SELECT b.id,
                (SELECT count(*) FROM unnest(b.interaction_ids) x WHERE x = ANY($2::uuid[]))
                + (SELECT count(*) FROM unnest(b.customer_ids) x JOIN customer c ON c.id = x
                    WHERE x = ANY($1::uuid[]) AND c.merged_into_id IS NULL)
                + (SELECT count(*) FROM jsonb_array_elements(b.messages) m WHERE ${MESSAGE_ABOUT}) AS events,
                ARRAY(SELECT x FROM unnest(b.interaction_ids) WITH ORDINALITY u(x, n) WHERE x <> ALL($2::uuid[]) ORDER BY n) AS interaction_ids,
                ARRAY(SELECT x FROM unnest(b.customer_ids) WITH ORDINALITY u(x, n) WHERE x <> ALL($1::uuid[]) ORDER BY n) AS customer_ids,
                coalesce((SELECT jsonb_agg(m ORDER BY n) FROM jsonb_array_elements(b.messages) WITH ORDINALITY e(m, n) WHERE NOT ${MESSAGE_ABOUT}), '[]'::jsonb) AS messages
           FROM outbox_batch b
          WHERE EXISTS (SELECT 1 FROM unnest(b.interaction_ids) x WHERE x = ANY($2::uuid[]))
             OR b.customer_ids && $1::uuid[]
             OR (b.messages <> '[]'::jsonb AND EXISTS (SELECT 1 FROM jsonb_array_elements(b.messages) m WHERE ${MESSAGE_ABOUT}))
            FOR UPDATE OF b),
       total AS (SELECT coalesce(sum(events), 0)::int AS n FROM hit),
       kept AS (
         UPDATE outbox_batch b SET interaction_ids = h.interaction_ids, customer_ids = h.customer_ids, messages = h.messages
           FROM hit h, total t
          WHERE b.id = h.id AND t.n > 0
            AND NOT (cardinality(h.interaction_ids) = 0 AND cardinality(h.customer_ids) = 0 AND h.messages = '[]'::jsonb)),
       emptied AS (
         DELETE FROM outbox_batch b USING hit h, total t
          WHERE b.id = h.id AND t.n > 0
            AND cardinality(h.interaction_ids) = 0 AND cardinality(h.customer_ids) = 0 AND h.messages = '[]'::jsonb)
     SELECT n FROM total`,
    [customerIds, interactionIds, enrichedTopic],
  );
  return row!.n;
}

export async function deleteCustomers(db: Db, customerIds: readonly string[]): Promise<void> {
  await exec(db, `DELETE FROM customer WHERE id = ANY($1::uuid[])`, [customerIds]);
}

export interface ErasureRequestRecord {
  id: string;
  customer_id: string;
  erased_customer_ids: string[];
  reason: string;
  requested_by: string;
  interactions: number | string;
  identities: number | string;
  crm_records: number | string;
  listening_items_closed: number | string;
  outbox_rows_removed: number | string;
  status: 'crm_pending' | 'done';
  crm_error: string | null;
  created_at: Date;
  completed_at: Date | null;
}

/** What an erasure records when it happens (the audit row, without PII). */
export interface NewErasureRequest {
  id: string;
  customerId: string;
  erasedCustomerIds: readonly string[];
  reason: string;
  requestedBy: string;
  interactions: number;
  identities: number;
  crmRecords: number;
  listeningItemsClosed: number;
  outboxRowsRemoved: number;
  status: 'crm_pending' | 'done';
}

export async function insertErasureRequest(db: Db, r: NewErasureRequest): Promise<ErasureRequestRecord> {
  const row = await firstRow<ErasureRequestRecord>(
    db,
    `INSERT INTO erasure_request (id, customer_id, erased_customer_ids, reason, requested_by, interactions, identities, crm_records, listening_items_closed, outbox_rows_removed, status, completed_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, CASE WHEN $11 = 'done' THEN now() END) RETURNING *`,
    [r.id, r.customerId, r.erasedCustomerIds, r.reason, r.requestedBy, r.interactions, r.identities, r.crmRecords, r.listeningItemsClosed, r.outboxRowsRemoved, r.status],
  );
  return row!;
}

/** The (first) erasure request that erased a customer id. */
export function erasureRequestFor(db: Db, customerId: string): Promise<ErasureRequestRecord | undefined> {
  return firstRow(db, `SELECT * FROM erasure_request WHERE erased_customer_ids @> ARRAY[$1::uuid] ORDER BY created_at LIMIT 1`, [customerId]);
}

// ---- the CRM clean-up queue --------------------------------------------------------------------

export interface CrmErasureRow {
  system: string;
  /** 'record' or 'case' */
  kind: string;
  object_type: string;
  external_id: string;
  origin: string | null;
}

export async function queueCrmErasure(db: Db, erasureId: string, entries: readonly CrmErasureRow[]): Promise<void> {
  await exec(
    db,
    `INSERT INTO crm_erasure (erasure_id, system, kind, object_type, external_id, origin)
     SELECT $1, x.system, x.kind, x.object_type, x.external_id, x.origin FROM jsonb_to_recordset($2::jsonb) AS x(system text, kind text, object_type text, external_id text, origin text)`,
    [erasureId, JSON.stringify(entries)],
  );
}

export function dueCrmErasures(db: Db, limit: number): Promise<{ id: string; erasure_id: string; system: CrmSystem; kind: 'record' | 'case'; object_type: string; external_id: string; origin: string | null }[]> {
  return rows(db, `SELECT id, erasure_id, system, kind, object_type, external_id, origin FROM crm_erasure WHERE next_attempt_at <= now() ORDER BY id LIMIT $1`, [limit]);
}

export async function crmErasuresDone(db: Db, ids: readonly string[]): Promise<void> {
  await exec(db, `DELETE FROM crm_erasure WHERE id = ANY($1::bigint[])`, [ids]);
}

export async function crmErasuresFailed(db: Db, failed: ReadonlyMap<string, string>): Promise<void> {
  await exec(
    db,
    `UPDATE crm_erasure c SET attempts = c.attempts + 1, last_error = left(x.err, 1000),
            next_attempt_at = now() + make_interval(secs => least(3600, 2 ^ least(c.attempts, 12)))
       FROM unnest($1::bigint[], $2::text[]) AS x(id, err) WHERE c.id = x.id`,
    [[...failed.keys()], [...failed.values()]],
  );
}

/** A request is done once no CRM clean-up of it is left; else it carries the latest error. */
export async function settleErasureRequests(db: Db, erasureIds: readonly string[]): Promise<void> {
  await exec(
    db,
    `UPDATE erasure_request e SET status = CASE WHEN NOT EXISTS (SELECT 1 FROM crm_erasure c WHERE c.erasure_id = e.id) THEN 'done' ELSE 'crm_pending' END,
            completed_at = CASE WHEN NOT EXISTS (SELECT 1 FROM crm_erasure c WHERE c.erasure_id = e.id) THEN now() END,
            crm_error = (SELECT max(last_error) FROM crm_erasure c WHERE c.erasure_id = e.id)
      WHERE e.id = ANY($1::uuid[])`,
    [erasureIds],
  );
}

// ---- export ------------------------------------------------------------------------------------

/** Everything stored about some customers, table by table, as stored (the export is the raw record). */
export type StoredRow = Record<string, unknown>;

export interface CustomerData {
  customers: StoredRow[];
  identities: StoredRow[];
  interactions: StoredRow[];
  crmRecords: StoredRow[];
  listeningItems: StoredRow[];
  suggestions: StoredRow[];
  history: StoredRow[];
  daily: StoredRow[];
  writeback: StoredRow[];
  outbox: StoredRow[];
  erasures: StoredRow[];
}

/**
 * Which interactions an export carries: at most `limit`, in (occurred_at, id) order, after the interaction `after`;
 * and which listening items: at most `limit`, in (opened_at, id) order, after the listening item `after`.
 */
export interface InteractionPage {
  after: string | null;
  limit: number;
}
export type ListeningItemPage = InteractionPage;
/**
 * Which company replies addressed to the customers an export carries (`addressedKeys`: the replies
 * an erasure redacts by `redactRepliesAddressedTo`, less those of the customers' own interactions):
 * at most `limit`, in (occurred_at, id) order, after the interaction `after`.
 */
export interface AddressedReplyPage extends InteractionPage {
  keys: readonly AddressedKey[];
}

/** The interactions addressed to the keys ($2 sources, $3 keys) that are not one of the customers' ($1) own. */
const ADDRESSED_REPLIES = `
  FROM interaction i
  JOIN (SELECT DISTINCT source, key FROM unnest($2::text[], $3::text[]) AS k(source, key)) k ON i.source = k.source AND i.recipient_key = k.key
 WHERE (i.customer_id IS NULL OR i.customer_id <> ALL($1::uuid[]))`;
/** An interaction's topics as the export shows them (`i`: the interaction). */
const TOPICS_OF_I = `coalesce((SELECT json_agg(json_build_object('topic', t.name, 'department', d.name, 'matched', it.matched) ORDER BY t.name)
                                 FROM interaction_topic it JOIN topic t ON t.id = it.topic_id JOIN department d ON d.id = t.department_id
                                WHERE it.interaction_id = i.id), '[]') AS topics`;

/**
 * The unsent outbox events about the customers ($1), as the `outbox` view renders them: those
 * whose key or `customerId` is one of them (their interactions' enriched events, their summaries,
 * events stored as given that name them). The unsent rows that hold such an event are found on the
 * stored arrays (a customer's summary by id, an interaction through its customer, an event stored as
 * given by key or `customerId`), and only those rows are rendered: filtering the rendered view
 * rendered every unsent event of every customer first (2.2 s with the relay behind by 200 rows of
 * 500 interactions, 35 times the export without the backlog). An event that carries an interaction
 * (listening-gap.v1: its text) belongs to whoever holds that interaction now: an escalation names
 * the root of the family at that time, and after an unmerge the root's export listed the text of
 * the customer split off, whose own export did not.
 */
const EVENT_INTERACTION = (e: string) => `CASE WHEN ${e}->'interaction'->>'id' ~ '^[0-9a-fA-F-]{36}$' THEN (${e}->'interaction'->>'id')::uuid END`;
const PENDING_OUTBOX_ABOUT = `
  SELECT batch_id AS id, topic, message_key, payload, created_at FROM outbox
   WHERE batch_id = ANY(ARRAY(
           SELECT b.id FROM outbox_batch b WHERE b.sent_at IS NULL AND b.customer_ids && $1::uuid[]
           UNION
           SELECT b.id FROM outbox_batch b CROSS JOIN LATERAL unnest(b.interaction_ids) x(id) JOIN interaction i ON i.id = x.id
            WHERE b.sent_at IS NULL AND i.customer_id = ANY($1::uuid[])
           UNION
           SELECT b.id FROM outbox_batch b
            WHERE b.sent_at IS NULL AND b.messages <> '[]'::jsonb
              AND EXISTS (SELECT 1 FROM jsonb_array_elements(b.messages) m
                           WHERE m->>'key' = ANY($1::text[]) OR m->'payload'->>'customerId' = ANY($1::text[])
                              OR EXISTS (SELECT 1 FROM interaction i WHERE i.id = ${EVENT_INTERACTION("m->'payload'")} AND i.customer_id = ANY($1::uuid[])))))
     AND sent_at IS NULL
     AND CASE WHEN payload->'interaction'->>'id' IS NULL THEN message_key = ANY($1::text[]) OR payload->>'customerId' = ANY($1::text[])
              ELSE EXISTS (SELECT 1 FROM interaction i WHERE i.id = ${EVENT_INTERACTION('payload')} AND i.customer_id = ANY($1::uuid[])) END
   ORDER BY batch_id, part, seq`;

export async function customerData(
  db: Db,
  ids: readonly string[],
  page: InteractionPage = { after: null, limit: 5_000 },
  itemPage: ListeningItemPage = { after: null, limit: 5_000 },
  replyPage: AddressedReplyPage = { keys: [], after: null, limit: 5_000 },
): Promise<
  CustomerData & {
    interactionCount: number;
    interactionCursorFound: boolean;
    listeningItemCount: number;
    listeningItemCursorFound: boolean;
    addressedReplies: StoredRow[];
    addressedReplyCount: number;
    addressedReplyCursorFound: boolean;
  }
> {
  const q = (sql: string, more: unknown[] = []) => rows<StoredRow>(db, sql, [ids, ...more]);
  const keys = [replyPage.keys.map((k) => k.source), replyPage.keys.map((k) => k.key)];
  const [[count], [itemCount], [replyCount], customers, identities, interactions, addressedReplies, crmRecords, listeningItems, suggestions, history, daily, writeback, outbox, erasures] = await Promise.all([
    q(`SELECT (SELECT count(*)::int FROM interaction WHERE customer_id = ANY($1::uuid[])) AS n,
              ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM interaction WHERE id = $2::uuid)) AS cursor_found`, [page.after]),
    q(`SELECT (SELECT count(*)::int FROM listening_item WHERE customer_id = ANY($1::uuid[])) AS n,
              ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM listening_item WHERE id = $2::uuid)) AS cursor_found`, [itemPage.after]),
    q(`SELECT (SELECT count(*)::int ${ADDRESSED_REPLIES}) AS n,
              ($4::uuid IS NULL OR EXISTS (SELECT 1 FROM interaction WHERE id = $4::uuid)) AS cursor_found`, [...keys, replyPage.after]),
    q(`SELECT * FROM customer WHERE id = ANY($1::uuid[]) ORDER BY created_at`),
    q(`SELECT id, customer_id, kind, network, value, raw_value, source, linked_by, link_score, created_at FROM customer_identity WHERE customer_id = ANY($1::uuid[]) ORDER BY created_at`),
    q(`SELECT i.*, ${TOPICS_OF_I}
           FROM interaction i WHERE i.customer_id = ANY($1::uuid[])
            AND ($2::uuid IS NULL OR (i.occurred_at, i.id) > (SELECT a.occurred_at, a.id FROM interaction a WHERE a.id = $2::uuid))
          ORDER BY i.occurred_at, i.id LIMIT $3`, [page.after, page.limit]),
    q(`SELECT i.*, ${TOPICS_OF_I} ${ADDRESSED_REPLIES}
            AND ($4::uuid IS NULL OR (i.occurred_at, i.id) > (SELECT a.occurred_at, a.id FROM interaction a WHERE a.id = $4::uuid))
          ORDER BY i.occurred_at, i.id LIMIT $5`, [...keys, replyPage.after, replyPage.limit]),
    q(`SELECT id, customer_id, system, object_type, external_id, owner_id, payload, person, modstamp, deleted_at, written_values, written_at FROM crm_record WHERE customer_id = ANY($1::uuid[]) ORDER BY system, object_type, external_id`),
    q(`SELECT li.* FROM listening_item li WHERE li.customer_id = ANY($1::uuid[])
            AND ($2::uuid IS NULL OR (li.opened_at, li.id) > (SELECT a.opened_at, a.id FROM listening_item a WHERE a.id = $2::uuid))
          ORDER BY li.opened_at, li.id LIMIT $3`, [itemPage.after, itemPage.limit]),
    q(`SELECT * FROM merge_suggestion WHERE customer_a_id = ANY($1::uuid[]) OR customer_b_id = ANY($1::uuid[]) ORDER BY created_at`),
    q(`SELECT * FROM merge_audit WHERE survivor_id = ANY($1::uuid[]) OR merged_id = ANY($1::uuid[]) ORDER BY created_at`),
    q(`SELECT * FROM customer_sentiment_daily WHERE customer_id = ANY($1::uuid[]) ORDER BY day`),
    q(`SELECT * FROM crm_writeback WHERE customer_id = ANY($1::uuid[])`),
    q(PENDING_OUTBOX_ABOUT),
    q(`SELECT * FROM erasure_request WHERE erased_customer_ids && $1::uuid[] ORDER BY created_at`),
  ]);
  return {
    interactionCount: count!.n as number,
    interactionCursorFound: count!.cursor_found === true,
    listeningItemCount: itemCount!.n as number,
    listeningItemCursorFound: itemCount!.cursor_found === true,
    addressedReplyCount: replyCount!.n as number,
    addressedReplyCursorFound: replyCount!.cursor_found === true,
    customers,
    identities,
    interactions,
    addressedReplies,
    crmRecords,
    listeningItems,
    suggestions,
    history,
    daily,
    writeback,
    outbox,
    erasures,
  };
}

// ---- retention ---------------------------------------------------------------------------------

/** Interactions older than `cutoff` still holding text. */
export async function countUnredactedBefore(db: Db, cutoff: Date): Promise<number> {
  return (await firstRow<{ n: number }>(db, `SELECT count(*)::int AS n FROM interaction WHERE redacted_at IS NULL AND occurred_at < $1`, [cutoff]))!.n;
}

/** The database server's clock now (`clock_timestamp()`): what retention checks this host's clock against. */
export async function databaseClock(db: Db): Promise<Date> {
  const row = await firstRow<{ now: Date }>(db, `SELECT clock_timestamp() AS now`, []);
  return row!.now;
}

/** Redacts up to `limit` of the oldest such interactions (skipping locked ones), and their listening items' author; their ids. */
export async function redactOldInteractions(db: Db, cutoff: Date, limit: number): Promise<string[]> {
  const found = await rows<{ id: string }>(
    db,
    `WITH c AS (SELECT id FROM interaction WHERE redacted_at IS NULL AND occurred_at < $1 ORDER BY occurred_at LIMIT $2 FOR UPDATE SKIP LOCKED),
     u AS (UPDATE interaction i SET text = '', url = NULL, metadata = NULL, recipient_key = NULL, explanation = '[]', author_handle = NULL, author_display_name = NULL, identity_id = NULL, redacted_at = now()
             FROM c WHERE i.id = c.id RETURNING i.id)
     SELECT id FROM u`,
    [cutoff, limit],
  );
  const ids = found.map((r) => r.id);
  if (ids.length === 0) return ids;
  await clearTopicMatches(db, ids);
  await exec(db, `UPDATE listening_item SET author_handle = NULL WHERE (interaction_id = ANY($1::uuid[]) OR last_interaction_id = ANY($1::uuid[])) AND author_handle IS NOT NULL`, [ids]);
  return ids;
}

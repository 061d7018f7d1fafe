import type { Pool, PoolClient, Client } from 'pg';
import { exec, type Db } from '../db/sql';
import type { CustomerSummaryRow } from './outbox-events';

/**
 * Every statement on the outbox: the insert, which every writer makes in its own transaction
 * (./outbox.ts), and the relay's (./outbox-relay.ts), which run on the relay's own node-postgres
 * pool and leader session so that the relay can live in a worker thread without TypeORM.
 */

/** The channel a committed outbox insert notifies, so that the relay wakes at once. */
export const OUTBOX_NOTIFY_CHANNEL = 'earshot_outbox';

/** One outbox row (`messages` and `traceHeaders` as JSON text); the NOTIFY is delivered at commit. */
export async function insertOutboxBatch(
  db: Db,
  b: { interactionIds: readonly string[]; customerIds: readonly string[]; publicUrl: string | null; messages: string; traceHeaders: string | null },
): Promise<void> {
  await exec(
    db,
    `WITH ins AS (
       INSERT INTO outbox_batch (interaction_ids, customer_ids, public_url, messages, trace_headers)
       VALUES ($1::uuid[], $2::uuid[], $3, $4::jsonb, $5::jsonb) RETURNING 1)
     SELECT pg_notify('${OUTBOX_NOTIFY_CHANNEL}', '') FROM ins`,
    [b.interactionIds, b.customerIds, b.publicUrl, b.messages, b.traceHeaders],
  );
}

// ---- the relay's statements (node-postgres directly: its pool, or its leader session) ----

/** What the relay runs statements on. */
export type RelayDb = Pick<Pool, 'query'> | Pick<PoolClient, 'query'> | Pick<Client, 'query'>;

async function relayRows<R>(db: RelayDb, text: string, params?: readonly unknown[]): Promise<R[]> {
  return (await db.query(text, params as unknown[] | undefined)).rows as R[];
}

/** An unsent outbox row and how many events each of its three parts holds. */
export interface PendingOutboxRow {
  id: string;
  /** interactions.enriched.v1 events (one per interaction id) */
  n0: number;
  /** customer-sentiment.v1 events (one per customer id) */
  n1: number;
  /** events stored as given */
  n2: number;
  /** failed attempts to publish it so far (an unsent row's attempts all failed) */
  attempts: number;
}

const PENDING_COLUMNS = `id, cardinality(interaction_ids) AS n0, cardinality(customer_ids) AS n1, jsonb_array_length(messages) AS n2, attempts`;

/** The oldest unsent rows that are not parked, at most `limit` (256), leaving out `busy` (rows being sent). */
export function pendingOutboxRows(db: RelayDb, busy: readonly string[], limit = 256): Promise<PendingOutboxRow[]> {
  return relayRows<PendingOutboxRow>(
    db,
    `SELECT ${PENDING_COLUMNS}
       FROM outbox_batch WHERE sent_at IS NULL AND parked_at IS NULL AND id <> ALL($1::bigint[]) ORDER BY id LIMIT $2`,
    [busy, limit],
  );
}

/**
 * Parks unsent rows: the relay leaves them out of its queue (the rows after them go on) and
 * retries each on its own later; returns those parked, with their attempts and last error.
 */
export function parkOutboxRows(db: RelayDb, ids: readonly string[]): Promise<{ id: string; attempts: number; last_error: string | null }[]> {
  return relayRows(
    db,
    `UPDATE outbox_batch SET parked_at = clock_timestamp() WHERE id = ANY($1::bigint[]) AND sent_at IS NULL RETURNING id, attempts, last_error`,
    [ids],
  );
}

/**
 * The parked row longest due for another try, if any: a row parked after `parkAfter` failed
 * attempts is tried again `retrySeconds` after it was parked (or last tried), twice as long
 * after each further failure, at most `maxRetrySeconds`.
 */
export async function dueParkedOutboxRow(db: RelayDb, parkAfter: number, retrySeconds: number, maxRetrySeconds: number): Promise<PendingOutboxRow | null> {
  const [row] = await relayRows<PendingOutboxRow>(
    db,
    `SELECT ${PENDING_COLUMNS}
       FROM outbox_batch
      WHERE sent_at IS NULL AND parked_at IS NOT NULL
        AND parked_at + make_interval(secs => least($3::float8, $2::float8 * 2 ^ least(greatest(attempts - $1::int, 0), 30))) <= clock_timestamp()
      ORDER BY parked_at, id LIMIT 1`,
    [parkAfter, retrySeconds, maxRetrySeconds],
  );
  return row ?? null;
}

/** One event as the `outbox` view renders it from the rows it describes (see its migrations). */
export interface OutboxEventRow {
  batch_id: string;
  /** 0 rendered interactions.enriched.v1, 1 rendered customer-sentiment.v1, 2 stored as given */
  part: number;
  topic: string;
  message_key: string | null;
  /** jsonb as text: published byte for byte, no parse and re-serialise */
  payload: string | null;
  headers: Record<string, string>;
  /** interactions.enriched.v1: the interaction's source and author handle; with display_name, what the PII policy looks at */
  author_source: string | null;
  author_handle: string | null;
  display_name: string | null;
}

const EVENT_COLUMNS = `batch_id, part, topic, message_key, payload::text AS payload, headers, author_source, author_handle, display_name`;

/** Which events of the outbox to read: whole rows, or events `lo`..`hi` (seq) of one part of one row. */
export type OutboxSelection = { ids: readonly string[] } | { slice: { id: string; part: number; lo: number; hi: number } };

/** The selection as a condition on outbox_batch `b` and the part's ordinality `x.n`, and its parameters. */
function where(sel: OutboxSelection): { cond: string; params: unknown[] } {
  return 'ids' in sel
    ? { cond: 'b.id = ANY($1::bigint[])', params: [sel.ids] }
    : { cond: 'b.id = $1 AND x.n BETWEEN $2 AND $3', params: [sel.slice.id, sel.slice.lo, sel.slice.hi] };
}

/** Every event of the selection as the `outbox` view renders it, in row order (row, part, seq). */
export function outboxEventsRendered(db: RelayDb, sel: OutboxSelection, part?: number): Promise<OutboxEventRow[]> {
  if ('ids' in sel) {
    return relayRows<OutboxEventRow>(
      db,
      `SELECT ${EVENT_COLUMNS} FROM outbox WHERE batch_id = ANY($1::bigint[])${part === undefined ? '' : ` AND part = ${Number(part)}`} ORDER BY batch_id, part, seq`,
      [sel.ids],
    );
  }
  const s = sel.slice;
  return relayRows<OutboxEventRow>(db, `SELECT ${EVENT_COLUMNS} FROM outbox WHERE batch_id = $1 AND part = $2 AND seq BETWEEN $3 AND $4 ORDER BY seq`, [s.id, s.part, s.lo, s.hi]);
}

/**
 * One interactions.enriched.v1 event's fields as stored, for the relay to write its JSON (the
 * `outbox` view's part 0, column for column: src/outbox/outbox-render.ts). Timestamps are already
 * in the contract's text, the explanation and the topic lists already JSON text.
 */
export interface EnrichedEventRow {
  batch_id: string;
  seq: number;
  event_id: string;
  /** the outbox row's trace headers, JSON text */
  trace_headers: string | null;
  id: string;
  source_event_id: string | null;
  source: string;
  external_id: string;
  url: string | null;
  occurred_at: string;
  direction: string;
  in_reply_to: string | null;
  author_handle: string | null;
  author_display_name: string | null;
  text: string;
  lang: string;
  rating: number | null;
  sentiment_score: number;
  sentiment_label: string;
  sentiment_confidence: number;
  sentiment_model: string | null;
  /** as stored (JSON text); the event carries its first 20 items */
  explanation: string;
  intent: string;
  intent_confidence: number;
  topics: string | null;
  departments: string | null;
  customer_id: string | null;
  processed_at: string;
}

/**
 * The enriched events of a selection (part 0), in no particular order: the relay sorts them
 * (`inRowOrder`), which costs it about 50 µs for 500 events where PostgreSQL's sort of the wide
 * rows took about 1.5 ms of the statement's 15. Two things the `outbox` view does
 * per row are done once per statement or left to the relay, a fifth to a quarter of the
 * statement's server time (README, "The relay's read"): the topics of all the selection's interactions
 * are aggregated once, by key (`= ANY` over the selection's ids, an index scan however large
 * `interaction_topic` grows), not in a lateral subquery per row; and the explanation is read as
 * stored, its first 20 items taken by the relay (`firstJsonItems`), not counted by
 * `json_array_length` on every row.
 */
export function enrichedEventRows(db: RelayDb, sel: OutboxSelection): Promise<EnrichedEventRow[]> {
  const { cond, params } = where(sel);
  return relayRows<EnrichedEventRow>(
    db,
    `WITH tags AS MATERIALIZED (
       SELECT it.interaction_id, json_agg(json_build_object('name', t.name, 'department', d.name) ORDER BY t.id) AS topics,
              json_agg(DISTINCT d.name) AS departments
         FROM interaction_topic it JOIN topic t ON t.id = it.topic_id JOIN department d ON d.id = t.department_id
        WHERE it.interaction_id = ANY(ARRAY(
                SELECT x.id FROM outbox_batch b CROSS JOIN LATERAL unnest(b.interaction_ids) WITH ORDINALITY AS x(id, n) WHERE ${cond}))
        GROUP BY it.interaction_id)
     SELECT b.id AS batch_id, x.n::int AS seq, md5('enriched:' || i.id::text)::uuid::text AS event_id, b.trace_headers::text AS trace_headers,
            i.id, i.event_id AS source_event_id, i.source, i.external_id, i.url, outbox_ts(i.occurred_at) AS occurred_at,
            i.direction, i.in_reply_to, i.author_handle, i.author_display_name, i.text, coalesce(i.lang, 'und') AS lang, i.rating,
            i.sentiment_score, i.sentiment_label, i.sentiment_confidence, i.sentiment_model, i.explanation::text AS explanation,
            i.intent, i.intent_confidence, tags.topics::text AS topics, tags.departments::text AS departments,
            i.customer_id, outbox_ts(i.created_at) AS processed_at
       FROM outbox_batch b
       CROSS JOIN LATERAL unnest(b.interaction_ids) WITH ORDINALITY AS x(id, n)
       JOIN interaction i ON i.id = x.id
       LEFT JOIN tags ON tags.interaction_id = i.id
      WHERE ${cond}`,
    params,
  );
}

/** One customer-sentiment.v1 event's fields as stored (the view's part 1): the summary, its timestamps as text. */
export interface SentimentEventRow extends Omit<CustomerSummaryRow, 'last_interaction_at' | 'updated_at' | 'label'> {
  batch_id: string;
  seq: number;
  event_id: string;
  trace_headers: string | null;
  last_interaction_at: string | null;
  url: string;
  updated_at: string;
}

/** The customer summaries of a selection (part 1), in no particular order (as above); customers merged away or erased are left out. */
export function sentimentEventRows(db: RelayDb, sel: OutboxSelection): Promise<SentimentEventRow[]> {
  const { cond, params } = where(sel);
  return relayRows<SentimentEventRow>(
    db,
    `SELECT b.id AS batch_id, x.n::int AS seq, md5('sentiment:' || b.id || ':' || c.id::text)::uuid::text AS event_id, b.trace_headers::text AS trace_headers,
            c.id, c.display_name, c.sentiment_score, c.sentiment_label, c.sentiment_trend, c.interaction_count,
            outbox_ts(c.last_interaction_at) AS last_interaction_at, coalesce(b.public_url, '') || '/customers/' || c.id AS url,
            outbox_ts(c.updated_at) AS updated_at
       FROM outbox_batch b
       CROSS JOIN LATERAL unnest(b.customer_ids) WITH ORDINALITY AS x(id, n)
       JOIN customer c ON c.id = x.id AND c.merged_into_id IS NULL
      WHERE ${cond}`,
    params,
  );
}

/** Records a failed publishing attempt on the rows a chunk touched. */
export async function markOutboxRowsFailed(db: RelayDb, ids: readonly string[], error: string): Promise<void> {
  await db.query(`UPDATE outbox_batch SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1::bigint[])`, [ids, error.slice(0, 1000)]);
}

/**
 * Marks rows sent at the broker's acknowledgement, `ackedSecondsAgo` before this statement was
 * sent; each with how long it waited from its commit to that acknowledgement (seconds).
 *
 * `sent_at` is the server's clock (no skew against `created_at`): the time the server received
 * this statement, less the time the relay measured between the acknowledgement and sending it.
 * Only the statement's trip to the server counts on top: not the time it runs, nor a wait for a
 * row lock (with `clock_timestamp()`, a marking that waited behind another session counted that
 * wait as publishing delay).
 */
export function markOutboxRowsSent(db: RelayDb, ids: readonly string[], ackedSecondsAgo = 0): Promise<{ id: string; delay: number }[]> {
  return relayRows<{ id: string; delay: number }>(
    db,
    `UPDATE outbox_batch SET sent_at = greatest(created_at, statement_timestamp() - make_interval(secs => $2)), attempts = attempts + 1, last_error = NULL
      WHERE id = ANY($1::bigint[])
     RETURNING id, extract(epoch FROM sent_at - created_at)::float8 AS delay`,
    [ids, Math.max(0, ackedSecondsAgo)],
  );
}

/** Deletes up to `limit` (10,000) rows sent more than `retentionSeconds` ago, oldest first; returns how many. */
export async function deleteSentOutboxRows(db: RelayDb, retentionSeconds: number, limit = 10_000): Promise<number> {
  const result = await db.query(
    `DELETE FROM outbox_batch WHERE id IN (
       SELECT id FROM outbox_batch WHERE sent_at < now() - make_interval(secs => $1) ORDER BY sent_at LIMIT $2)`,
    [retentionSeconds, limit],
  );
  return result.rowCount ?? 0;
}

/**
 * Events not yet published, and how many of the unsent rows are parked: of the unsent rows after
 * `afterId` (null: from the first), at most `limit` in id order; `rows` and `lastId` say how far it got.
 */
export async function outboxBacklog(db: RelayDb, afterId: string | null = null, limit = 1_000_000): Promise<{ events: number; parkedRows: number; rows: number; lastId: string | null }> {
  const [row] = await relayRows<{ n: number; parked: number; rows: number; last_id: string | null }>(
    db,
    `SELECT coalesce(sum(n), 0)::int AS n, count(*) FILTER (WHERE parked)::int AS parked, count(*)::int AS rows, max(id)::text AS last_id
       FROM (SELECT id, cardinality(interaction_ids) + cardinality(customer_ids) + jsonb_array_length(messages) AS n, parked_at IS NOT NULL AS parked
               FROM outbox_batch WHERE sent_at IS NULL AND id > coalesce($1::bigint, 0) ORDER BY id LIMIT $2) s`,
    [afterId, limit],
  );
  return { events: row?.n ?? 0, parkedRows: row?.parked ?? 0, rows: row?.rows ?? 0, lastId: row?.last_id ?? null };
}

/**
 * On the relay's leader session: takes the session advisory lock (namespace, key) if it is free,
 * and then LISTENs for new rows. Ending the session releases both.
 */
export async function tryLeadOutbox(session: RelayDb, namespace: number, key: number): Promise<boolean> {
  const [row] = await relayRows<{ ok: boolean }>(session, 'SELECT pg_try_advisory_lock($1::int, $2::int) AS ok', [namespace, key]);
  if (!row?.ok) return false;
  await session.query(`LISTEN ${OUTBOX_NOTIFY_CHANNEL}`);
  return true;
}

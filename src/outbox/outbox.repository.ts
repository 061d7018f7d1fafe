import type { Pool, PoolClient, Client } from 'pg';
import { exec, type Db } from '../db/sql';

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
}

/** The oldest unsent rows, at most 256, leaving out `busy` (rows being sent). */
export function pendingOutboxRows(db: RelayDb, busy: readonly string[]): Promise<PendingOutboxRow[]> {
  return relayRows<PendingOutboxRow>(
    db,
    `SELECT id, cardinality(interaction_ids) AS n0, cardinality(customer_ids) AS n1, jsonb_array_length(messages) AS n2
       FROM outbox_batch WHERE sent_at IS NULL AND id <> ALL($1::bigint[]) ORDER BY id LIMIT 256`,
    [busy],
  );
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

/** Every event of whole rows, in row order (row, part, seq). */
export function outboxEventsOfRows(db: RelayDb, ids: readonly string[]): Promise<OutboxEventRow[]> {
  return relayRows<OutboxEventRow>(db, `SELECT ${EVENT_COLUMNS} FROM outbox WHERE batch_id = ANY($1::bigint[]) ORDER BY batch_id, part, seq`, [ids]);
}

/** Events `lo`..`hi` (seq) of one part of one row, in order. */
export function outboxEventsOfSlice(db: RelayDb, s: { id: string; part: number; lo: number; hi: number }): Promise<OutboxEventRow[]> {
  return relayRows<OutboxEventRow>(db, `SELECT ${EVENT_COLUMNS} FROM outbox WHERE batch_id = $1 AND part = $2 AND seq BETWEEN $3 AND $4 ORDER BY seq`, [
    s.id,
    s.part,
    s.lo,
    s.hi,
  ]);
}

/** Records a failed publishing attempt on the rows a chunk touched. */
export async function markOutboxRowsFailed(db: RelayDb, ids: readonly string[], error: string): Promise<void> {
  await db.query(`UPDATE outbox_batch SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1::bigint[])`, [ids, error.slice(0, 1000)]);
}

/** Marks rows sent; each with how long it waited from its commit to now (seconds). */
export function markOutboxRowsSent(db: RelayDb, ids: readonly string[]): Promise<{ id: string; delay: number }[]> {
  return relayRows<{ id: string; delay: number }>(
    db,
    `UPDATE outbox_batch SET sent_at = clock_timestamp(), attempts = attempts + 1, last_error = NULL WHERE id = ANY($1::bigint[])
     RETURNING id, extract(epoch FROM sent_at - created_at)::float8 AS delay`,
    [ids],
  );
}

/** Deletes up to 10,000 rows sent more than `retentionSeconds` ago, oldest first. */
export async function deleteSentOutboxRows(db: RelayDb, retentionSeconds: number): Promise<void> {
  await db.query(
    `DELETE FROM outbox_batch WHERE id IN (
       SELECT id FROM outbox_batch WHERE sent_at < now() - make_interval(secs => $1) ORDER BY sent_at LIMIT 10000)`,
    [retentionSeconds],
  );
}

/** Events not yet published. */
export async function outboxBacklog(db: RelayDb): Promise<number> {
  const [row] = await relayRows<{ n: number }>(
    db,
    `SELECT coalesce(sum(cardinality(interaction_ids) + cardinality(customer_ids) + jsonb_array_length(messages)), 0)::int AS n
       FROM outbox_batch WHERE sent_at IS NULL`,
  );
  return row?.n ?? 0;
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

import { exec, pgRows, type Db, type PgDb } from '../db/sql';

/**
 * Every SQL statement of the outbox: the insert every writer makes in its own transaction
 * (./outbox.ts), and the relay's reads and marks on its own node-postgres pool
 * (./outbox-relay.ts), each returning a declared row type. The relay's LISTEN stays with it:
 * it belongs to the leader session's client, not to a statement.
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

// ---- the relay (its own pool) -------------------------------------------------------------------

/** A rendered event of the `outbox` view. */
export interface RenderedOutboxRow {
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

/** The relay leader's session lock (released when the session ends); whether it was free. */
export async function tryRelayLock(db: PgDb, namespace: number, key: number): Promise<boolean> {
  const rows = await pgRows<{ ok: boolean }>(db, 'SELECT pg_try_advisory_lock($1::int, $2::int) AS ok', [namespace, key]);
  return rows[0]?.ok === true;
}

/** The oldest unsent outbox rows (at most 256) with their event counts, leaving out `busy`. */
export function pendingBatches(db: PgDb, busy: readonly string[]): Promise<{ id: string; n: number }[]> {
  return pgRows(
    db,
    `SELECT id, cardinality(interaction_ids) + cardinality(customer_ids) + jsonb_array_length(messages) AS n
         FROM outbox_batch WHERE sent_at IS NULL AND id <> ALL($1::bigint[]) ORDER BY id LIMIT 256`,
    [busy],
  );
}

/** The events of outbox rows, rendered from the rows they name as they are now. */
export function renderedRows(db: PgDb, ids: readonly string[]): Promise<RenderedOutboxRow[]> {
  return pgRows(
    db,
    `SELECT batch_id, part, topic, message_key, payload::text AS payload, headers, author_source, author_handle, display_name
         FROM outbox WHERE batch_id = ANY($1::bigint[]) ORDER BY batch_id, part, seq`,
    [ids],
  );
}

export async function markAttemptFailed(db: PgDb, ids: readonly string[], error: string): Promise<void> {
  await pgRows(db, `UPDATE outbox_batch SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1::bigint[])`, [ids, error]);
}

/** Marks rows sent; per row the seconds from its commit to now. */
export function markSent(db: PgDb, ids: readonly string[]): Promise<{ id: string; delay: number }[]> {
  return pgRows(
    db,
    `UPDATE outbox_batch SET sent_at = clock_timestamp(), attempts = attempts + 1, last_error = NULL WHERE id = ANY($1::bigint[])
       RETURNING id, extract(epoch FROM sent_at - created_at)::float8 AS delay`,
    [ids],
  );
}

/** Deletes (a bounded batch of) rows sent more than `seconds` ago. */
export async function deleteSentBefore(db: PgDb, seconds: number): Promise<void> {
  await pgRows(
    db,
    `DELETE FROM outbox_batch WHERE id IN (
         SELECT id FROM outbox_batch WHERE sent_at < now() - make_interval(secs => $1) ORDER BY sent_at LIMIT 10000)`,
    [seconds],
  );
}

/** Events not yet sent. */
export async function unsentEvents(db: PgDb): Promise<number> {
  const [row] = await pgRows<{ n: number }>(
    db,
    `SELECT coalesce(sum(cardinality(interaction_ids) + cardinality(customer_ids) + jsonb_array_length(messages)), 0)::int AS n
         FROM outbox_batch WHERE sent_at IS NULL`,
  );
  return row?.n ?? 0;
}

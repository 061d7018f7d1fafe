import { exec, type Db } from '../db/sql';

/**
 * The outbox's insert, which every writer makes in its own transaction (./outbox.ts). The relay's
 * statements (./outbox-relay.ts, on its own node-postgres pool) were rewritten for chunked
 * publishing in the same round this file was made and still live there (LEFT_TO_OWNERS in
 * src/db/sql-boundary.spec.ts).
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


import type { QueryRunner } from 'typeorm';
import type { OutboxRow } from './outbox-events';
import { OUTBOX_NOTIFY_CHANNEL } from './outbox-relay';

/**
 * Enqueues events for Kafka in the caller's transaction: they are published after it commits,
 * never for a rollback, at least once (the relay, `outbox-relay.ts`). Every writer of the
 * outbox goes through here (the ingest pipeline, identity merges, escalations, erasure).
 *
 * Must stay true: call it inside the transaction whose effects the events describe.
 */
export async function enqueueOutbox(qr: Pick<QueryRunner, 'query'>, rows: OutboxRow[]): Promise<void> {
  if (rows.length === 0) return;
  // The NOTIFY is delivered at commit (never for a rollback) and wakes the outbox relay at once.
  // One jsonb parameter: each payload is serialized once, not stringified and then array-escaped again.
  await qr.query(
    `WITH ins AS (
       INSERT INTO outbox (topic, message_key, payload, headers)
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(topic text, message_key text, payload jsonb, headers jsonb)
       RETURNING 1)
     SELECT pg_notify('${OUTBOX_NOTIFY_CHANNEL}', '') FROM (SELECT count(*) AS n FROM ins) c WHERE c.n > 0`,
    [JSON.stringify(rows.map((r) => ({ topic: r.topic, message_key: r.key, payload: r.payload, headers: r.headers })))],
  );
}

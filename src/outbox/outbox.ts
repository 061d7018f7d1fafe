import type { QueryRunner } from 'typeorm';
import { traceHeaders } from '../shared/tracing';
import type { OutboxRow } from './outbox-events';
import { insertOutboxBatch } from './outbox.repository';

/** What one transaction publishes. */
export interface OutboxEntry {
  /** interactions.enriched.v1 for each, rendered from the stored interaction when published */
  interactionIds?: readonly string[];
  /** customer-sentiment.v1 for each, the customer's summary as it is when published */
  customerIds?: readonly string[];
  /** base of the customer `url` in customer-sentiment.v1 (config.publicUrl); needed with customerIds */
  publicUrl?: string;
  /** events that describe no stored row (tombstones, escalations), published as given */
  messages?: readonly OutboxRow[];
}

/**
 * Enqueues events for Kafka in the caller's transaction, as one `outbox_batch` row: they are
 * published after it commits, never for a rollback, at least once, in the order of these rows
 * (`outbox-relay.ts`). Every writer of the outbox goes through here: the ingest pipeline,
 * identity merges, CRM intake, escalations, erasure. `enqueueOutbox(qr, [sentimentTombstone(id)])` is all
 * an erasure needs.
 *
 * Must stay true: call it inside the transaction whose effects the events describe, after the
 * rows it names are written, and after locking the customers whose events it carries (so that,
 * per customer, row order is commit order). Rendered events carry deterministic event ids
 * (`event-id`), so a re-publish after a crash repeats the id consumers dedupe on.
 */
export async function enqueueOutbox(qr: Pick<QueryRunner, 'query'>, entry: OutboxEntry | readonly OutboxRow[]): Promise<void> {
  const e: OutboxEntry = isRows(entry) ? { messages: entry } : entry;
  const interactions = e.interactionIds ?? [];
  const customers = e.customerIds ?? [];
  const messages = e.messages ?? [];
  if (interactions.length + customers.length + messages.length === 0) return;
  if (customers.length > 0 && e.publicUrl === undefined) throw new Error('enqueueOutbox: publicUrl is needed to render customer-sentiment.v1');
  const trace = traceHeaders();
  // The NOTIFY is delivered at commit (never for a rollback) and wakes the outbox relay at once.
  await insertOutboxBatch(qr, {
    interactionIds: interactions,
    customerIds: customers,
    publicUrl: customers.length > 0 ? (e.publicUrl ?? null) : null,
    messages: JSON.stringify(messages.map((r) => ({ topic: r.topic, key: r.key, payload: r.payload, headers: r.headers }))),
    // the W3C trace context of the transaction, once per row: the relay continues the trace
    traceHeaders: trace.traceparent ? JSON.stringify(trace) : null,
  });
}

function isRows(x: OutboxEntry | readonly OutboxRow[]): x is readonly OutboxRow[] {
  return Array.isArray(x);
}

import { randomUUID } from 'node:crypto';
import { displayNameFor, PUBLIC_VIEWER } from '../auth/pii.policy';

/** Outbound topics and the schema version each payload follows (schema/*.schema.json). */
export const OUTBOX_TOPICS = {
  enriched: { name: 'interactions.enriched.v1', version: '1' },
  sentiment: { name: 'customer-sentiment.v1', version: '1' },
  listeningGap: { name: 'listening-gap.v1', version: '1' },
  erasure: { name: 'customer-erasure.v1', version: '1' },
  reassigned: { name: 'interactions.reassigned.v1', version: '1' },
} as const;

/** interaction ids per interactions.reassigned.v1 event (about 40 kB) */
export const REASSIGNED_EVENT_IDS = 1_000;

export interface OutboxRow {
  topic: string;
  key: string | null;
  /** null is a tombstone */
  payload: unknown;
  headers: Record<string, string>;
}

export interface CustomerSummaryRow {
  id: string;
  display_name: string | null;
  sentiment_score: number | null;
  sentiment_label: string | null;
  sentiment_trend: number | null;
  interaction_count: number;
  last_interaction_at: Date | null;
  updated_at: Date;
}

function headers(version: string, eventId: string): Record<string, string> {
  return { 'schema-version': version, 'event-id': eventId, 'content-type': 'application/json' };
}

/**
 * customer-sentiment.v1 (compacted, key = customerId): the customer's current summary.
 * Must stay true: no email or phone number (the display name as a role without PII sees it).
 */
export function sentimentEvent(s: CustomerSummaryRow, publicUrl: string): OutboxRow {
  const eventId = randomUUID();
  return {
    topic: OUTBOX_TOPICS.sentiment.name,
    key: s.id,
    headers: headers(OUTBOX_TOPICS.sentiment.version, eventId),
    payload: {
      schemaVersion: 1,
      eventId,
      customerId: s.id,
      displayName: displayNameFor(PUBLIC_VIEWER, s.display_name),
      score: s.sentiment_score,
      label: s.sentiment_label,
      trend30d: s.sentiment_trend,
      interactionCount: s.interaction_count,
      lastInteractionAt: s.last_interaction_at ? new Date(s.last_interaction_at).toISOString() : null,
      url: `${publicUrl}/customers/${s.id}`,
      updatedAt: new Date(s.updated_at).toISOString(),
    },
  };
}

/**
 * A tombstone for an erased or merged-away customer: compaction then forgets the key. A merged
 * one carries the survivor's id in the header `merged-into` (a tombstone has no value to carry it),
 * so a consumer can move what it holds under the merged id to the survivor.
 */
export function sentimentTombstone(customerId: string, mergedInto?: string): OutboxRow {
  const h = headers(OUTBOX_TOPICS.sentiment.version, randomUUID());
  return { topic: OUTBOX_TOPICS.sentiment.name, key: customerId, payload: null, headers: mergedInto ? { ...h, 'merged-into': mergedInto } : h };
}

/**
 * interactions.reassigned.v1 (key = toCustomerId): interactions an undo (`unmerge`, of a merge or a
 * link) or an `unlinkIdentity` moved from one customer to another, brand replies included, in
 * events of at most REASSIGNED_EVENT_IDS ids each; none when nothing moved. A merge announces its
 * move with the `merged-into` tombstone instead. Ids only, no PII.
 * Must stay true: enqueued in the transaction that moves them, with both customers locked.
 */
export function reassignedEvents(
  move: { reason: 'unmerge' | 'unlink'; mergeId: string | null; fromCustomerId: string; toCustomerId: string; interactionIds: readonly string[] },
): OutboxRow[] {
  const out: OutboxRow[] = [];
  const occurredAt = new Date().toISOString();
  for (let i = 0; i < move.interactionIds.length; i += REASSIGNED_EVENT_IDS) {
    const eventId = randomUUID();
    out.push({
      topic: OUTBOX_TOPICS.reassigned.name,
      key: move.toCustomerId,
      headers: headers(OUTBOX_TOPICS.reassigned.version, eventId),
      payload: {
        schemaVersion: 1,
        eventId,
        reason: move.reason,
        mergeId: move.mergeId,
        fromCustomerId: move.fromCustomerId,
        toCustomerId: move.toCustomerId,
        interactionIds: move.interactionIds.slice(i, i + REASSIGNED_EVENT_IDS),
        occurredAt,
      },
    });
  }
  return out;
}

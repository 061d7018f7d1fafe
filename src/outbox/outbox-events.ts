import { randomUUID } from 'node:crypto';
import { authorHandleFor, displayNameFor, PUBLIC_VIEWER } from '../auth/pii.policy';
import type { InteractionMessage } from '../interactions/interaction-message';
import type { Analysis } from '../sentiment/analyzer';

/** Outbound topics and the schema version each payload follows (schema/*.schema.json). */
export const OUTBOX_TOPICS = {
  enriched: { name: 'interactions.enriched.v1', version: '1' },
  sentiment: { name: 'customer-sentiment.v1', version: '1' },
  listeningGap: { name: 'listening-gap.v1', version: '1' },
  erasure: { name: 'customer-erasure.v1', version: '1' },
} as const;

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
 * interactions.enriched.v1: the interaction as received plus what Earshot derived.
 * Must stay true: no email and no phone number in any field Earshot fills: the author's email
 * and phone are left out, the handle is null on address channels (sms, email, call…) or when it
 * reads as an address, and so is a display name that reads as one (src/auth/pii.policy.ts, as
 * for a role without PII). The customerId joins them for whoever may see them. The text is
 * published as the author wrote it.
 */
export function enrichedEvent(id: string, m: InteractionMessage, a: Analysis, customerId: string | null): OutboxRow {
  const eventId = randomUUID();
  const departments = [...new Set(a.topics.map((t) => t.department))];
  return {
    topic: OUTBOX_TOPICS.enriched.name,
    key: customerId ?? `${m.source}:${m.externalId}`,
    headers: headers(OUTBOX_TOPICS.enriched.version, eventId),
    payload: {
      schemaVersion: 1,
      eventId,
      interactionId: id,
      sourceEventId: m.eventId ?? null,
      source: m.source,
      externalId: m.externalId,
      url: m.url ?? null,
      occurredAt: new Date(m.occurredAt).toISOString(),
      direction: m.direction,
      inReplyTo: m.inReplyTo ?? null,
      author: {
        handle: authorHandleFor(PUBLIC_VIEWER, m.source, m.author.handle ?? null),
        displayName: displayNameFor(PUBLIC_VIEWER, m.author.displayName ?? null),
      },
      text: m.text,
      lang: a.lang,
      rating: m.rating ?? null,
      sentiment: { score: a.score, label: a.label, confidence: a.confidence, explanation: a.explanation.slice(0, 20), model: a.model },
      intent: { name: a.intent, confidence: a.intentConfidence },
      topics: a.topics.map((t) => ({ name: t.name, department: t.department })),
      departments,
      customerId,
      processedAt: new Date().toISOString(),
    },
  };
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

/** A tombstone for an erased customer: compaction then forgets the key. */
export function sentimentTombstone(customerId: string): OutboxRow {
  return { topic: OUTBOX_TOPICS.sentiment.name, key: customerId, payload: null, headers: headers(OUTBOX_TOPICS.sentiment.version, randomUUID()) };
}

import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Merging main into issue-12: the outbox view learns what main added to the per-event outbox.
 * - `trace_headers`: the W3C trace context (traceparent, tracestate) of the writing transaction,
 *   stored once per `outbox_batch` row and added to the headers of each of its events, so the
 *   relay publishes them in a child span of that trace (issue 14).
 * - the enriched event's `sentiment.model`, the model that scored the interaction (issue 10).
 */
export class OutboxTraceAndModel1765400000006 implements MigrationInterface {
  name = 'OutboxTraceAndModel1765400000006';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE outbox_batch ADD COLUMN trace_headers jsonb;
      DROP VIEW outbox;
      CREATE VIEW outbox AS
      SELECT b.id AS batch_id, e.part, e.seq, e.topic, e.message_key, e.payload,
             (e.headers::jsonb || coalesce(b.trace_headers, '{}'::jsonb))::json AS headers,
             b.created_at, b.sent_at, b.attempts, b.last_error
        FROM outbox_batch b
        CROSS JOIN LATERAL (
          SELECT 0 AS part, x.n AS seq, 'interactions.enriched.v1'::text AS topic,
                 coalesce(i.customer_id::text, i.source || ':' || i.external_id) AS message_key,
                 json_build_object(
                   'schemaVersion', 1, 'eventId', md5('enriched:' || i.id::text)::uuid, 'interactionId', i.id,
                   'sourceEventId', i.event_id, 'source', i.source, 'externalId', i.external_id, 'url', i.url,
                   'occurredAt', outbox_ts(i.occurred_at), 'direction', i.direction, 'inReplyTo', i.in_reply_to,
                   'author', json_build_object('handle', i.author_handle, 'displayName', i.author_display_name),
                   'text', i.text, 'lang', coalesce(i.lang, 'und'), 'rating', i.rating,
                   'sentiment', json_build_object('score', i.sentiment_score, 'label', i.sentiment_label,
                       'confidence', i.sentiment_confidence, 'model', i.sentiment_model,
                       'explanation', coalesce((SELECT json_agg(e.v ORDER BY e.n) FROM jsonb_array_elements(i.explanation) WITH ORDINALITY AS e(v, n) WHERE e.n <= 20), '[]'::json)),
                   'intent', json_build_object('name', i.intent, 'confidence', i.intent_confidence),
                   'topics', coalesce(tags.topics, '[]'::json), 'departments', coalesce(tags.departments, '[]'::json),
                   'customerId', i.customer_id, 'processedAt', outbox_ts(i.created_at)) AS payload,
                 json_build_object('schema-version', '1', 'event-id', md5('enriched:' || i.id::text)::uuid, 'content-type', 'application/json') AS headers
            FROM unnest(b.interaction_ids) WITH ORDINALITY AS x(id, n)
            JOIN interaction i ON i.id = x.id
            LEFT JOIN LATERAL (
              SELECT json_agg(json_build_object('name', t.name, 'department', d.name) ORDER BY t.id) AS topics,
                     json_agg(DISTINCT d.name) AS departments
                FROM interaction_topic it JOIN topic t ON t.id = it.topic_id JOIN department d ON d.id = t.department_id
               WHERE it.interaction_id = i.id) tags ON true
          UNION ALL
          -- the customer's summary as it is when published (a compacted topic wants the latest);
          -- a customer merged away or erased since has its tombstone in a later row
          SELECT 1, x.n, 'customer-sentiment.v1', c.id::text,
                 json_build_object(
                   'schemaVersion', 1, 'eventId', md5('sentiment:' || b.id || ':' || c.id::text)::uuid, 'customerId', c.id,
                   'displayName', c.display_name, 'score', c.sentiment_score, 'label', c.sentiment_label,
                   'trend30d', c.sentiment_trend, 'interactionCount', c.interaction_count,
                   'lastInteractionAt', outbox_ts(c.last_interaction_at), 'url', coalesce(b.public_url, '') || '/customers/' || c.id,
                   'updatedAt', outbox_ts(c.updated_at)),
                 json_build_object('schema-version', '1', 'event-id', md5('sentiment:' || b.id || ':' || c.id::text)::uuid, 'content-type', 'application/json')
            FROM unnest(b.customer_ids) WITH ORDINALITY AS x(id, n)
            JOIN customer c ON c.id = x.id AND c.merged_into_id IS NULL
          UNION ALL
          SELECT 2, x.n, x.m->>'topic', x.m->>'key', nullif(x.m->'payload', 'null'::jsonb)::json, (x.m->'headers')::json
            FROM jsonb_array_elements(b.messages) WITH ORDINALITY AS x(m, n)
        ) e;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP VIEW outbox;
      CREATE VIEW outbox AS
      SELECT b.id AS batch_id, e.part, e.seq, e.topic, e.message_key, e.payload, e.headers,
             b.created_at, b.sent_at, b.attempts, b.last_error
        FROM outbox_batch b
        CROSS JOIN LATERAL (
          SELECT 0 AS part, x.n AS seq, 'interactions.enriched.v1'::text AS topic,
                 coalesce(i.customer_id::text, i.source || ':' || i.external_id) AS message_key,
                 json_build_object(
                   'schemaVersion', 1, 'eventId', md5('enriched:' || i.id::text)::uuid, 'interactionId', i.id,
                   'sourceEventId', i.event_id, 'source', i.source, 'externalId', i.external_id, 'url', i.url,
                   'occurredAt', outbox_ts(i.occurred_at), 'direction', i.direction, 'inReplyTo', i.in_reply_to,
                   'author', json_build_object('handle', i.author_handle, 'displayName', i.author_display_name),
                   'text', i.text, 'lang', coalesce(i.lang, 'und'), 'rating', i.rating,
                   'sentiment', json_build_object('score', i.sentiment_score, 'label', i.sentiment_label,
                       'confidence', i.sentiment_confidence,
                       'explanation', coalesce((SELECT json_agg(e.v ORDER BY e.n) FROM jsonb_array_elements(i.explanation) WITH ORDINALITY AS e(v, n) WHERE e.n <= 20), '[]'::json)),
                   'intent', json_build_object('name', i.intent, 'confidence', i.intent_confidence),
                   'topics', coalesce(tags.topics, '[]'::json), 'departments', coalesce(tags.departments, '[]'::json),
                   'customerId', i.customer_id, 'processedAt', outbox_ts(i.created_at)) AS payload,
                 json_build_object('schema-version', '1', 'event-id', md5('enriched:' || i.id::text)::uuid, 'content-type', 'application/json') AS headers
            FROM unnest(b.interaction_ids) WITH ORDINALITY AS x(id, n)
            JOIN interaction i ON i.id = x.id
            LEFT JOIN LATERAL (
              SELECT json_agg(json_build_object('name', t.name, 'department', d.name) ORDER BY t.id) AS topics,
                     json_agg(DISTINCT d.name) AS departments
                FROM interaction_topic it JOIN topic t ON t.id = it.topic_id JOIN department d ON d.id = t.department_id
               WHERE it.interaction_id = i.id) tags ON true
          UNION ALL
          -- the customer's summary as it is when published (a compacted topic wants the latest);
          -- a customer merged away or erased since has its tombstone in a later row
          SELECT 1, x.n, 'customer-sentiment.v1', c.id::text,
                 json_build_object(
                   'schemaVersion', 1, 'eventId', md5('sentiment:' || b.id || ':' || c.id::text)::uuid, 'customerId', c.id,
                   'displayName', c.display_name, 'score', c.sentiment_score, 'label', c.sentiment_label,
                   'trend30d', c.sentiment_trend, 'interactionCount', c.interaction_count,
                   'lastInteractionAt', outbox_ts(c.last_interaction_at), 'url', coalesce(b.public_url, '') || '/customers/' || c.id,
                   'updatedAt', outbox_ts(c.updated_at)),
                 json_build_object('schema-version', '1', 'event-id', md5('sentiment:' || b.id || ':' || c.id::text)::uuid, 'content-type', 'application/json')
            FROM unnest(b.customer_ids) WITH ORDINALITY AS x(id, n)
            JOIN customer c ON c.id = x.id AND c.merged_into_id IS NULL
          UNION ALL
          SELECT 2, x.n, x.m->>'topic', x.m->>'key', nullif(x.m->'payload', 'null'::jsonb)::json, (x.m->'headers')::json
            FROM jsonb_array_elements(b.messages) WITH ORDINALITY AS x(m, n)
        ) e;
      ALTER TABLE outbox_batch DROP COLUMN trace_headers;
    `);
  }
}

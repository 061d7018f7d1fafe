import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The `outbox` view renders the same events for less: an explanation of at most 20 items (all
 * of them, in practice) is passed through instead of being taken apart and aggregated again,
 * each event id is hashed once, and the trace headers are merged only into rows that carry them.
 * Three columns are appended for the relay, so it applies the PII policy to the author's
 * handle and display name without parsing every payload: `author_source`, `author_handle`
 * (interactions.enriched.v1) and `display_name` (both rendered topics).
 */
export class CheaperOutboxRender1766200000000 implements MigrationInterface {
  name = 'CheaperOutboxRender1766200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP VIEW outbox;
      CREATE VIEW outbox AS
      SELECT b.id AS batch_id, e.part, e.seq, e.topic, e.message_key, e.payload,
             CASE WHEN b.trace_headers IS NULL THEN e.headers ELSE (e.headers::jsonb || b.trace_headers)::json END AS headers,
             b.created_at, b.sent_at, b.attempts, b.last_error,
             e.author_source, e.author_handle, e.display_name
        FROM outbox_batch b
        CROSS JOIN LATERAL (
          SELECT 0 AS part, x.n AS seq, 'interactions.enriched.v1'::text AS topic,
                 coalesce(i.customer_id::text, i.source || ':' || i.external_id) AS message_key,
                 json_build_object(
                   'schemaVersion', 1, 'eventId', ev.id, 'interactionId', i.id,
                   'sourceEventId', i.event_id, 'source', i.source, 'externalId', i.external_id, 'url', i.url,
                   'occurredAt', outbox_ts(i.occurred_at), 'direction', i.direction, 'inReplyTo', i.in_reply_to,
                   'author', json_build_object('handle', i.author_handle, 'displayName', i.author_display_name),
                   'text', i.text, 'lang', coalesce(i.lang, 'und'), 'rating', i.rating,
                   'sentiment', json_build_object('score', i.sentiment_score, 'label', i.sentiment_label,
                       'confidence', i.sentiment_confidence, 'model', i.sentiment_model,
                       'explanation', CASE WHEN jsonb_array_length(i.explanation) <= 20 THEN i.explanation::json
                         ELSE (SELECT json_agg(e.v ORDER BY e.n) FROM jsonb_array_elements(i.explanation) WITH ORDINALITY AS e(v, n) WHERE e.n <= 20) END),
                   'intent', json_build_object('name', i.intent, 'confidence', i.intent_confidence),
                   'topics', coalesce(tags.topics, '[]'::json), 'departments', coalesce(tags.departments, '[]'::json),
                   'customerId', i.customer_id, 'processedAt', outbox_ts(i.created_at)) AS payload,
                 json_build_object('schema-version', '1', 'event-id', ev.id, 'content-type', 'application/json') AS headers,
                 i.source AS author_source, i.author_handle, i.author_display_name AS display_name
            FROM unnest(b.interaction_ids) WITH ORDINALITY AS x(id, n)
            JOIN interaction i ON i.id = x.id
            CROSS JOIN LATERAL (SELECT md5('enriched:' || i.id::text)::uuid AS id) ev
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
                   'schemaVersion', 1, 'eventId', ev.id, 'customerId', c.id,
                   'displayName', c.display_name, 'score', c.sentiment_score, 'label', c.sentiment_label,
                   'trend30d', c.sentiment_trend, 'interactionCount', c.interaction_count,
                   'lastInteractionAt', outbox_ts(c.last_interaction_at), 'url', coalesce(b.public_url, '') || '/customers/' || c.id,
                   'updatedAt', outbox_ts(c.updated_at)),
                 json_build_object('schema-version', '1', 'event-id', ev.id, 'content-type', 'application/json'),
                 NULL, NULL, c.display_name
            FROM unnest(b.customer_ids) WITH ORDINALITY AS x(id, n)
            JOIN customer c ON c.id = x.id AND c.merged_into_id IS NULL
            CROSS JOIN LATERAL (SELECT md5('sentiment:' || b.id || ':' || c.id::text)::uuid AS id) ev
          UNION ALL
          SELECT 2, x.n, x.m->>'topic', x.m->>'key', nullif(x.m->'payload', 'null'::jsonb)::json, (x.m->'headers')::json,
                 NULL, NULL, NULL
            FROM jsonb_array_elements(b.messages) WITH ORDINALITY AS x(m, n)
        ) e;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
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
}

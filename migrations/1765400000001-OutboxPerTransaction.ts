import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * One outbox row per transaction instead of one per event, and payloads rendered when they are
 * published from the rows they describe: an ingest batch stores the ids of its interactions and
 * of the customers whose summaries changed, not a JSON copy of each, and publishing updates one
 * row per batch, not every event. Events that describe no stored row (tombstones, escalations)
 * keep their payload in `messages`.
 *
 * The view `outbox` shows the events one per row, rendered as the relay publishes them: the
 * relay reads it, and so may a person or a test.
 */
export class OutboxPerTransaction1765400000001 implements MigrationInterface {
  name = 'OutboxPerTransaction1765400000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE outbox_batch (
        id bigserial PRIMARY KEY,
        -- the last statement of the writing transaction: about its commit time
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        sent_at timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        last_error text,
        interaction_ids uuid[] NOT NULL DEFAULT '{}',
        customer_ids uuid[] NOT NULL DEFAULT '{}',
        public_url text,
        messages jsonb NOT NULL DEFAULT '[]'
      );
      -- the relay's queue (id order) and retention (oldest sent first)
      CREATE INDEX outbox_batch_pending_idx ON outbox_batch (id) WHERE sent_at IS NULL;
      CREATE INDEX outbox_batch_sent_idx ON outbox_batch (sent_at) WHERE sent_at IS NOT NULL;

      INSERT INTO outbox_batch (created_at, sent_at, attempts, last_error, messages)
      SELECT created_at, sent_at, attempts, last_error,
             jsonb_build_array(jsonb_build_object('topic', topic, 'key', message_key, 'payload', payload, 'headers', headers))
        FROM outbox ORDER BY id;
      DROP TABLE outbox;

      CREATE FUNCTION outbox_ts(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
        $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

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
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE outbox_v1 (
        id bigserial PRIMARY KEY,
        topic text NOT NULL,
        message_key text,
        payload jsonb,
        headers jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        sent_at timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        last_error text
      );
      INSERT INTO outbox_v1 (topic, message_key, payload, headers, created_at, sent_at, attempts, last_error)
      SELECT topic, message_key, payload::jsonb, headers::jsonb, created_at, sent_at, attempts, last_error
        FROM outbox ORDER BY batch_id, part, seq;
      DROP VIEW outbox;
      DROP FUNCTION outbox_ts(timestamptz);
      DROP TABLE outbox_batch;
      ALTER TABLE outbox_v1 RENAME TO outbox;
      ALTER SEQUENCE outbox_v1_id_seq RENAME TO outbox_id_seq;
      ALTER INDEX outbox_v1_pkey RENAME TO outbox_pkey;
      CREATE INDEX outbox_pending_idx ON outbox (id) WHERE sent_at IS NULL;
    `);
  }
}

import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The listening gap (issue 7): one `listening_item` per conversation thread that needs an answer,
 * its SLA, response and escalation state; the thread of every interaction; a per-topic daily
 * rollup kept by statement-level triggers (so the ingest pipeline and the re-tag job feed it
 * without knowing it); and the hook that closes an item when its escalation Case is closed in
 * Salesforce (seen by the CRM sync in `crm_case`).
 */
export class ListeningGap1764400000000 implements MigrationInterface {
  name = 'ListeningGap1764400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      -- The root externalId of the interaction's inReplyTo chain when it differs from its own
      -- (or the thread it joined by author and channel); null: the interaction starts its thread.
      ALTER TABLE interaction ADD COLUMN thread_key text;

      CREATE TABLE listening_item (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        source text NOT NULL,
        thread_key text NOT NULL,
        interaction_id uuid NOT NULL REFERENCES interaction(id) ON DELETE CASCADE,
        last_interaction_id uuid NOT NULL REFERENCES interaction(id) ON DELETE CASCADE,
        author_handle text,
        customer_id uuid REFERENCES customer(id) ON DELETE SET NULL,
        department_id integer NOT NULL REFERENCES department(id),
        assigned_department_id integer REFERENCES department(id),
        assigned_user text,
        intent text NOT NULL,
        -- the most negative score seen in the thread: the negativity part of urgency
        sentiment_score double precision NOT NULL,
        status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'answered', 'closed')),
        opened_at timestamptz NOT NULL,
        -- opened_at, or when a new complaint reopened the thread
        last_opened_at timestamptz NOT NULL,
        last_inbound_at timestamptz NOT NULL,
        sla_seconds integer NOT NULL,
        due_at timestamptz NOT NULL,
        first_response_at timestamptz,
        first_response_seconds integer,
        responded_by text CHECK (responded_by IN ('reply', 'person', 'crm')),
        closed_at timestamptz,
        close_reason text,
        reopened_count integer NOT NULL DEFAULT 0,
        -- escalation state machine: null → pending (claimed, leased) → done; never back
        escalation_state text CHECK (escalation_state IN ('pending', 'done')),
        escalation_claim uuid,
        escalation_lease_until timestamptz,
        escalation_attempts integer NOT NULL DEFAULT 0,
        escalation_error text,
        escalated_at timestamptz,
        escalation_system text,
        escalation_case_id text,
        escalation_case_url text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT listening_item_thread_key UNIQUE (source, thread_key)
      );
      -- metrics over a window of opened_at, per department and channel, without touching the heap
      CREATE INDEX listening_item_opened_idx ON listening_item (opened_at)
        INCLUDE (department_id, assigned_department_id, source, status, due_at, first_response_at, first_response_seconds, closed_at);
      CREATE INDEX listening_item_open_idx ON listening_item (due_at) WHERE status = 'open';
      CREATE INDEX listening_item_author_idx ON listening_item (source, lower(author_handle), last_inbound_at) WHERE author_handle IS NOT NULL;
      CREATE INDEX listening_item_escalation_idx ON listening_item (due_at) WHERE status = 'open' AND escalation_state IS DISTINCT FROM 'done';
      CREATE INDEX listening_item_case_idx ON listening_item (escalation_system, escalation_case_id) WHERE escalation_case_id IS NOT NULL;
      CREATE INDEX listening_item_customer_idx ON listening_item (customer_id);

      CREATE TABLE topic_sentiment_daily (
        topic_id integer NOT NULL REFERENCES topic(id) ON DELETE CASCADE,
        day date NOT NULL,
        interaction_count integer NOT NULL,
        score_sum double precision NOT NULL,
        negative_count integer NOT NULL,
        positive_count integer NOT NULL,
        PRIMARY KEY (topic_id, day)
      );

      -- Inbound interactions only, like the other sentiment rollups. Statement-level with
      -- transition tables: one aggregate upsert per INSERT statement, not one per row.
      CREATE FUNCTION topic_sentiment_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO topic_sentiment_daily AS t (topic_id, day, interaction_count, score_sum, negative_count, positive_count)
        SELECT n.topic_id, (i.occurred_at AT TIME ZONE 'UTC')::date, count(*), sum(i.sentiment_score),
               count(*) FILTER (WHERE i.sentiment_label = 'negative'), count(*) FILTER (WHERE i.sentiment_label = 'positive')
          FROM new_rows n JOIN interaction i ON i.id = n.interaction_id
         WHERE i.direction = 'inbound'
         GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (topic_id, day) DO UPDATE SET
          interaction_count = t.interaction_count + EXCLUDED.interaction_count,
          score_sum = t.score_sum + EXCLUDED.score_sum,
          negative_count = t.negative_count + EXCLUDED.negative_count,
          positive_count = t.positive_count + EXCLUDED.positive_count;
        RETURN NULL;
      END $$;
      CREATE TRIGGER topic_sentiment_daily_insert AFTER INSERT ON interaction_topic
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION topic_sentiment_daily_add();

      CREATE FUNCTION topic_sentiment_daily_remove() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        UPDATE topic_sentiment_daily t SET
          interaction_count = t.interaction_count - x.n, score_sum = t.score_sum - x.s,
          negative_count = t.negative_count - x.neg, positive_count = t.positive_count - x.pos
          FROM (SELECT o.topic_id, (i.occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n, sum(i.sentiment_score) AS s,
                       count(*) FILTER (WHERE i.sentiment_label = 'negative') AS neg, count(*) FILTER (WHERE i.sentiment_label = 'positive') AS pos
                  FROM old_rows o JOIN interaction i ON i.id = o.interaction_id
                 WHERE i.direction = 'inbound' GROUP BY 1, 2) x
         WHERE t.topic_id = x.topic_id AND t.day = x.day;
        RETURN NULL;
      END $$;
      CREATE TRIGGER topic_sentiment_daily_delete AFTER DELETE ON interaction_topic
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION topic_sentiment_daily_remove();

      INSERT INTO topic_sentiment_daily (topic_id, day, interaction_count, score_sum, negative_count, positive_count)
      SELECT it.topic_id, (i.occurred_at AT TIME ZONE 'UTC')::date, count(*), sum(i.sentiment_score),
             count(*) FILTER (WHERE i.sentiment_label = 'negative'), count(*) FILTER (WHERE i.sentiment_label = 'positive')
        FROM interaction_topic it JOIN interaction i ON i.id = it.interaction_id
       WHERE i.direction = 'inbound' GROUP BY 1, 2;

      -- A closed escalation Case closes its item: the Case status arrives through the CRM sync.
      CREATE FUNCTION listening_item_on_case() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        UPDATE listening_item SET
          status = 'closed', closed_at = now(), close_reason = 'crm_case_closed',
          first_response_at = coalesce(first_response_at, now()),
          first_response_seconds = coalesce(first_response_seconds, greatest(0, extract(epoch FROM now() - opened_at))::int),
          responded_by = coalesce(responded_by, 'crm'), updated_at = now()
         WHERE escalation_system = NEW.system AND escalation_case_id = NEW.external_id AND status = 'open';
        RETURN NULL;
      END $$;
      CREATE TRIGGER listening_item_case_closed AFTER INSERT OR UPDATE OF is_closed ON crm_case FOR EACH ROW
        WHEN (NEW.is_closed AND NEW.deleted_at IS NULL) EXECUTE FUNCTION listening_item_on_case();
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TRIGGER listening_item_case_closed ON crm_case;
      DROP FUNCTION listening_item_on_case();
      DROP TRIGGER topic_sentiment_daily_delete ON interaction_topic;
      DROP TRIGGER topic_sentiment_daily_insert ON interaction_topic;
      DROP FUNCTION topic_sentiment_daily_remove();
      DROP FUNCTION topic_sentiment_daily_add();
      DROP TABLE topic_sentiment_daily;
      DROP TABLE listening_item;
      ALTER TABLE interaction DROP COLUMN thread_key;
    `);
  }
}

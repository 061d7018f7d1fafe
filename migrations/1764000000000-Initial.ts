import type { MigrationInterface, QueryRunner } from 'typeorm';
import { AppError } from '../src/shared/app-error';

/** The whole domain model of DESIGN.md; later migrations extend it. */
export class Initial1764000000000 implements MigrationInterface {
  name = 'Initial1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE customer (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        display_name text,
        merged_into_id uuid REFERENCES customer(id) ON DELETE SET NULL,
        sentiment_score double precision,
        sentiment_label text,
        sentiment_trend double precision,
        interaction_count integer NOT NULL DEFAULT 0,
        last_interaction_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX customer_page_idx ON customer (created_at, id) WHERE merged_into_id IS NULL;
      CREATE INDEX customer_display_name_idx ON customer (lower(display_name));

      CREATE TABLE customer_identity (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        customer_id uuid NOT NULL REFERENCES customer(id) ON DELETE CASCADE,
        kind text NOT NULL CHECK (kind IN ('email', 'phone', 'handle', 'crm', 'profile_url')),
        network text,
        value text NOT NULL,
        raw_value text,
        source text NOT NULL DEFAULT 'ingest',
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT customer_identity_kind_value_key UNIQUE (kind, value)
      );
      CREATE INDEX customer_identity_customer_idx ON customer_identity (customer_id);

      CREATE TABLE crm_record (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        customer_id uuid REFERENCES customer(id) ON DELETE SET NULL,
        system text NOT NULL CHECK (system IN ('salesforce', 'hubspot')),
        object_type text NOT NULL,
        external_id text NOT NULL,
        owner_id text,
        payload jsonb NOT NULL DEFAULT '{}',
        modstamp timestamptz,
        deleted_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT crm_record_system_object_external_key UNIQUE (system, object_type, external_id)
      );
      CREATE INDEX crm_record_customer_idx ON crm_record (customer_id);
      CREATE INDEX crm_record_modstamp_idx ON crm_record (system, object_type, modstamp, external_id);

      CREATE TABLE department (
        id serial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE topic (
        id serial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        label text NOT NULL,
        department_id integer NOT NULL REFERENCES department(id),
        phrases text[] NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE interaction (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        event_id text,
        source text NOT NULL,
        external_id text NOT NULL,
        url text,
        text text NOT NULL,
        occurred_at timestamptz NOT NULL,
        direction text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
        in_reply_to text,
        author_handle text,
        author_display_name text,
        lang text,
        rating double precision,
        metadata jsonb,
        sentiment_score double precision NOT NULL,
        sentiment_label text NOT NULL,
        sentiment_confidence double precision NOT NULL,
        intent text NOT NULL,
        intent_confidence double precision NOT NULL DEFAULT 0,
        explanation jsonb NOT NULL DEFAULT '[]',
        customer_id uuid REFERENCES customer(id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT interaction_source_external_key UNIQUE (source, external_id)
      );
      CREATE INDEX interaction_page_idx ON interaction (occurred_at DESC, id DESC);
      CREATE INDEX interaction_customer_idx ON interaction (customer_id, occurred_at DESC, id DESC);
      CREATE INDEX interaction_reply_idx ON interaction (source, in_reply_to) WHERE in_reply_to IS NOT NULL;

      CREATE TABLE interaction_topic (
        interaction_id uuid NOT NULL REFERENCES interaction(id) ON DELETE CASCADE,
        topic_id integer NOT NULL REFERENCES topic(id) ON DELETE CASCADE,
        matched text[] NOT NULL DEFAULT '{}',
        PRIMARY KEY (interaction_id, topic_id)
      );
      CREATE INDEX interaction_topic_topic_idx ON interaction_topic (topic_id);

      CREATE TABLE customer_sentiment_daily (
        customer_id uuid NOT NULL REFERENCES customer(id) ON DELETE CASCADE,
        day date NOT NULL,
        interaction_count integer NOT NULL,
        score_sum double precision NOT NULL,
        negative_count integer NOT NULL,
        positive_count integer NOT NULL,
        PRIMARY KEY (customer_id, day)
      );

      CREATE TABLE department_sentiment_daily (
        department_id integer NOT NULL REFERENCES department(id) ON DELETE CASCADE,
        day date NOT NULL,
        interaction_count integer NOT NULL,
        score_sum double precision NOT NULL,
        negative_count integer NOT NULL,
        positive_count integer NOT NULL,
        PRIMARY KEY (department_id, day)
      );

      CREATE TABLE outbox (
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
      CREATE INDEX outbox_pending_idx ON outbox (id) WHERE sent_at IS NULL;

      CREATE TABLE merge_audit (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        action text NOT NULL CHECK (action IN ('merge', 'unmerge', 'link', 'unlink')),
        survivor_id uuid,
        merged_id uuid,
        score double precision,
        evidence jsonb,
        reason text NOT NULL,
        actor text NOT NULL,
        snapshot jsonb,
        undone_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX merge_audit_survivor_idx ON merge_audit (survivor_id, created_at);
      CREATE INDEX merge_audit_merged_idx ON merge_audit (merged_id, created_at);
    `);
  }

  /**
   * Irreversible once data is stored: there is no earlier schema, and this down() would drop every
   * table with what is in them (`migrate --revert` one time too many emptied the database without
   * a word). It refuses while customers, interactions or CRM records exist, and says so.
   */
  async down(q: QueryRunner): Promise<void> {
    const [held] = (await q.query(`
      SELECT (SELECT count(*) FROM customer)::int AS customers, (SELECT count(*) FROM interaction)::int AS interactions,
             (SELECT count(*) FROM crm_record)::int AS crm_records`)) as { customers: number; interactions: number; crm_records: number }[];
    if (held!.customers + held!.interactions + held!.crm_records > 0) {
      throw new AppError(
        'CONFLICT',
        `${this.name} is not reverted: it is the first migration, and reverting it would drop every table with the data in them ` +
          `(${held!.customers} customers, ${held!.interactions} interactions, ${held!.crm_records} CRM records); nothing was changed. ` +
          `To start from an empty database, drop the database and create it again.`,
      );
    }
    await q.query(`
      DROP TABLE merge_audit;
      DROP TABLE outbox;
      DROP TABLE department_sentiment_daily;
      DROP TABLE customer_sentiment_daily;
      DROP TABLE interaction_topic;
      DROP TABLE interaction;
      DROP TABLE topic;
      DROP TABLE department;
      DROP TABLE crm_record;
      DROP TABLE customer_identity;
      DROP TABLE customer;
    `);
  }
}

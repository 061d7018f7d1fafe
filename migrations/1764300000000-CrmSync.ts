import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * CRM sync state and the write-back outbox.
 *
 * Write-back is driven by triggers, so no writer of customers has to know about CRMs: a change of
 * a customer's sentiment summary, a CRM record newly attached to a customer with interactions,
 * or an outbound reply (which closes a complaint) enqueues the customer into `crm_writeback` in
 * the same transaction as the change. A crash anywhere after the commit loses nothing: the queue
 * row stays until every record of the customer has been written. `crm_record.written_values`
 * holds what was last written per record, so only changed values are sent.
 */
export class CrmSync1764300000000 implements MigrationInterface {
  name = 'CrmSync1764300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE crm_sync_state (
        system text NOT NULL CHECK (system IN ('salesforce', 'hubspot')),
        object_type text NOT NULL,
        cursor_modstamp timestamptz,
        cursor_id text,
        deleted_checked_until timestamptz,
        status text NOT NULL DEFAULT 'never_run' CHECK (status IN ('never_run', 'running', 'ok', 'error', 'budget_exhausted')),
        mode text,
        last_run_started_at timestamptz,
        last_run_finished_at timestamptz,
        last_success_at timestamptz,
        records_last_run integer NOT NULL DEFAULT 0,
        deleted_last_run integer NOT NULL DEFAULT 0,
        api_calls_last_run integer NOT NULL DEFAULT 0,
        total_records bigint NOT NULL DEFAULT 0,
        last_error text,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (system, object_type)
      );

      CREATE TABLE crm_org (
        system text PRIMARY KEY CHECK (system IN ('salesforce', 'hubspot')),
        org_key text NOT NULL,
        instance_url text,
        portal_id text,
        budget_day date,
        budget_used integer NOT NULL DEFAULT 0,
        exhausted_until timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE crm_case (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        system text NOT NULL DEFAULT 'salesforce' CHECK (system IN ('salesforce', 'hubspot')),
        external_id text NOT NULL,
        status text,
        is_closed boolean NOT NULL DEFAULT false,
        contact_id text,
        account_id text,
        modstamp timestamptz,
        deleted_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT crm_case_system_external_key UNIQUE (system, external_id)
      );
      CREATE INDEX crm_case_contact_idx ON crm_case (system, contact_id) WHERE contact_id IS NOT NULL;
      CREATE INDEX crm_case_account_idx ON crm_case (system, account_id) WHERE account_id IS NOT NULL;

      ALTER TABLE crm_record ADD COLUMN written_values jsonb;
      ALTER TABLE crm_record ADD COLUMN written_at timestamptz;
      ALTER TABLE crm_record ADD COLUMN writeback_error text;

      CREATE TABLE crm_writeback (
        customer_id uuid PRIMARY KEY REFERENCES customer(id) ON DELETE CASCADE,
        enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        leased_until timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        last_error text
      );
      CREATE INDEX crm_writeback_due_idx ON crm_writeback (next_attempt_at);

      CREATE FUNCTION crm_writeback_enqueue(cid uuid) RETURNS void LANGUAGE sql AS $$
        INSERT INTO crm_writeback (customer_id) VALUES (cid)
        ON CONFLICT (customer_id) DO UPDATE
          SET enqueued_at = clock_timestamp(), next_attempt_at = least(crm_writeback.next_attempt_at, clock_timestamp())
      $$;

      CREATE FUNCTION crm_writeback_on_customer() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        -- Customers without a CRM record have nothing to write (and with no CRM configured, none has).
        IF NEW.merged_into_id IS NULL AND NEW.last_interaction_at IS NOT NULL
           AND EXISTS (SELECT 1 FROM crm_record r WHERE r.customer_id = NEW.id AND r.deleted_at IS NULL) THEN
          PERFORM crm_writeback_enqueue(NEW.id);
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER crm_writeback_customer AFTER UPDATE ON customer FOR EACH ROW
        WHEN (OLD.sentiment_score IS DISTINCT FROM NEW.sentiment_score
           OR OLD.sentiment_label IS DISTINCT FROM NEW.sentiment_label
           OR OLD.sentiment_trend IS DISTINCT FROM NEW.sentiment_trend
           OR OLD.interaction_count IS DISTINCT FROM NEW.interaction_count
           OR OLD.last_interaction_at IS DISTINCT FROM NEW.last_interaction_at
           OR OLD.merged_into_id IS DISTINCT FROM NEW.merged_into_id)
        EXECUTE FUNCTION crm_writeback_on_customer();

      -- A CRM record attached to (or moved onto) a customer that has something to write.
      CREATE FUNCTION crm_writeback_on_record() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.customer_id IS NOT NULL AND NEW.deleted_at IS NULL
           AND (TG_OP = 'INSERT' OR OLD.customer_id IS DISTINCT FROM NEW.customer_id)
           AND EXISTS (SELECT 1 FROM customer c WHERE c.id = NEW.customer_id AND c.last_interaction_at IS NOT NULL) THEN
          PERFORM crm_writeback_enqueue(NEW.customer_id);
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER crm_writeback_record AFTER INSERT OR UPDATE OF customer_id ON crm_record FOR EACH ROW
        EXECUTE FUNCTION crm_writeback_on_record();

      -- An outbound reply closes a complaint: the open-complaint count of its customer changes.
      CREATE FUNCTION crm_writeback_on_reply() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE cid uuid;
      BEGIN
        SELECT i.customer_id INTO cid FROM interaction i
         WHERE i.source = NEW.source AND i.external_id = NEW.in_reply_to AND i.customer_id IS NOT NULL;
        IF cid IS NOT NULL AND EXISTS (SELECT 1 FROM crm_record r WHERE r.customer_id = cid AND r.deleted_at IS NULL) THEN
          PERFORM crm_writeback_enqueue(cid);
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER crm_writeback_reply AFTER INSERT ON interaction FOR EACH ROW
        WHEN (NEW.direction = 'outbound' AND NEW.in_reply_to IS NOT NULL)
        EXECUTE FUNCTION crm_writeback_on_reply();
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TRIGGER crm_writeback_reply ON interaction;
      DROP TRIGGER crm_writeback_record ON crm_record;
      DROP TRIGGER crm_writeback_customer ON customer;
      DROP FUNCTION crm_writeback_on_reply();
      DROP FUNCTION crm_writeback_on_record();
      DROP FUNCTION crm_writeback_on_customer();
      DROP FUNCTION crm_writeback_enqueue(uuid);
      DROP TABLE crm_writeback;
      ALTER TABLE crm_record DROP COLUMN writeback_error;
      ALTER TABLE crm_record DROP COLUMN written_at;
      ALTER TABLE crm_record DROP COLUMN written_values;
      DROP TABLE crm_case;
      DROP TABLE crm_org;
      DROP TABLE crm_sync_state;
    `);
  }
}

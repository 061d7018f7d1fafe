import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The CRM write-back queue hears about summary changes once per UPDATE statement (transition
 * tables) instead of once per customer row: an ingest batch updates hundreds of customers in one
 * statement, which ran a plpgsql call and an EXISTS query for each. Same rule as before: a root
 * customer with an interaction and a live CRM record, whose written fields changed, is enqueued.
 */
export class WritebackTriggerPerStatement1765400000005 implements MigrationInterface {
  name = 'WritebackTriggerPerStatement1765400000005';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TRIGGER crm_writeback_customer ON customer;
      DROP FUNCTION crm_writeback_on_customer();
      CREATE FUNCTION crm_writeback_on_customers() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO crm_writeback AS w (customer_id)
        SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
         WHERE (o.sentiment_score IS DISTINCT FROM n.sentiment_score
             OR o.sentiment_label IS DISTINCT FROM n.sentiment_label
             OR o.sentiment_trend IS DISTINCT FROM n.sentiment_trend
             OR o.interaction_count IS DISTINCT FROM n.interaction_count
             OR o.last_interaction_at IS DISTINCT FROM n.last_interaction_at
             OR o.merged_into_id IS DISTINCT FROM n.merged_into_id)
           AND n.merged_into_id IS NULL AND n.last_interaction_at IS NOT NULL
           AND EXISTS (SELECT 1 FROM crm_record r WHERE r.customer_id = n.id AND r.deleted_at IS NULL)
         ORDER BY n.id
        ON CONFLICT (customer_id) DO UPDATE
          SET enqueued_at = clock_timestamp(), next_attempt_at = least(w.next_attempt_at, clock_timestamp());
        RETURN NULL;
      END $$;
      CREATE TRIGGER crm_writeback_customers AFTER UPDATE ON customer
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION crm_writeback_on_customers();
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TRIGGER crm_writeback_customers ON customer;
      DROP FUNCTION crm_writeback_on_customers();
      CREATE FUNCTION crm_writeback_on_customer() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
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
    `);
  }
}

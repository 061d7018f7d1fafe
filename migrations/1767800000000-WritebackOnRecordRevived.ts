import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A CRM record deleted in the CRM and brought back (a Salesforce undelete, a HubSpot restore) is
 * live again on its customer, and its customer is queued for write-back in the same statement,
 * by trigger, as a record new to the customer is (crm_writeback_record): the record kept the
 * values of the day it was deleted. Before, the sync queued it in a statement of its own after the
 * intake's transaction, and a process ending between the two left the record stale until the
 * customer changed again (the next sync finds the record live and queues nothing).
 */
export class WritebackOnRecordRevived1767800000000 implements MigrationInterface {
  name = 'WritebackOnRecordRevived1767800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION crm_writeback_on_record_revived() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.customer_id IS NOT NULL AND EXISTS (SELECT 1 FROM customer c WHERE c.id = NEW.customer_id AND c.last_interaction_at IS NOT NULL) THEN
          PERFORM crm_writeback_enqueue(NEW.customer_id);
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER crm_writeback_record_revived AFTER UPDATE OF deleted_at ON crm_record FOR EACH ROW
        WHEN (OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL)
        EXECUTE FUNCTION crm_writeback_on_record_revived();
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TRIGGER crm_writeback_record_revived ON crm_record;
      DROP FUNCTION crm_writeback_on_record_revived();
    `);
  }
}

import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `listening_item_escalation_idx` (due_at, open items not escalated yet) held a subset of
 * `listening_item_open_idx` (due_at, open items): every new item entered both. The escalation
 * job's claim (`claimOverdueItems`) now reads `listening_item_open_idx` and filters out the
 * escalated items (those stay open until answered or closed), so one index entry less per new item
 * and per due-date change on the ingest path.
 */
export class DropEscalationIndex1766900000000 implements MigrationInterface {
  name = 'DropEscalationIndex1766900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX listening_item_escalation_idx`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX listening_item_escalation_idx ON listening_item (due_at) WHERE status = 'open' AND escalation_state IS DISTINCT FROM 'done'`);
  }
}

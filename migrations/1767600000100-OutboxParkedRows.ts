import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An outbox row that keeps failing on its own (its render fails, or the broker refuses its events:
 * a topic deleted by hand, a record it cannot take) held back every row after it for ever: the relay
 * publishes in id order and retried the head row without end. Such a row is now parked
 * (`parked_at`, when it was parked or last retried): left out of the queue so that the rows after it
 * go out, and retried on its own with a growing interval until it is published (src/outbox/outbox-relay.ts).
 */
export class OutboxParkedRows1767600000100 implements MigrationInterface {
  name = 'OutboxParkedRows1767600000100';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE outbox_batch ADD COLUMN parked_at timestamptz`);
    // the parked rows still to publish, for their retries and the gauge
    await q.query(`CREATE INDEX outbox_batch_parked_idx ON outbox_batch (parked_at) WHERE sent_at IS NULL AND parked_at IS NOT NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX outbox_batch_parked_idx`);
    await q.query(`ALTER TABLE outbox_batch DROP COLUMN parked_at`);
  }
}

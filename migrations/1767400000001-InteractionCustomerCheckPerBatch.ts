import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `interaction.customer_id` loses its foreign key: a check per stored row (0.5–4 µs each where
 * the transaction already holds the customers' locks, as ingest does: psql, 40,000 rows, four
 * runs) that the ingest transaction does once per batch instead.
 * Every customer an ingest batch attaches interactions to is either created in that transaction
 * or row-locked by it (`FOR NO KEY UPDATE`) and found by the lock (src/identity/author-resolution.ts):
 * what the key's check guaranteed, taken for the whole batch at once, and a customer erased
 * meanwhile is now noticed there rather than by a failed batch. Erasure sets the interactions'
 * `customer_id` to null itself before it deletes customers, so the key's `ON DELETE SET NULL`
 * had nothing left to do. test/integration/author-resolution-erasure.test.ts races both.
 */
export class InteractionCustomerCheckPerBatch1767400000001 implements MigrationInterface {
  name = 'InteractionCustomerCheckPerBatch1767400000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE interaction DROP CONSTRAINT IF EXISTS interaction_customer_id_fkey`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`UPDATE interaction i SET customer_id = NULL WHERE customer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM customer c WHERE c.id = i.customer_id)`);
    await q.query(`ALTER TABLE interaction ADD CONSTRAINT interaction_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customer(id) ON DELETE SET NULL`);
  }
}

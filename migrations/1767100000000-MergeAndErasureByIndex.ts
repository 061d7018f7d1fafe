import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Merges and erasures found their rows by scanning whole tables:
 * - a merge repoints the customers merged into the merged one (`merged_into_id = $2`), an erasure
 *   and a data export find a customer's family (`merged_into_id = root`), and deleting a customer
 *   sets `merged_into_id` to NULL on the rows naming it (the foreign key's action): each read
 *   every customer. Automatic merges run inside an ingest batch's transaction.
 * - an erasure and a data export read `merge_suggestion` by either customer, and deleting a
 *   customer cascades to the suggestions naming it: each read every suggestion.
 * The customer index is partial: only merged customers (few) enter it, so ingest, which creates
 * customers unmerged and updates their summaries, never writes it and its updates stay HOT.
 */
export class MergeAndErasureByIndex1767100000000 implements MigrationInterface {
  name = 'MergeAndErasureByIndex1767100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX customer_merged_into_idx ON customer (merged_into_id) WHERE merged_into_id IS NOT NULL`);
    await q.query(`CREATE INDEX merge_suggestion_customer_a_idx ON merge_suggestion (customer_a_id)`);
    await q.query(`CREATE INDEX merge_suggestion_customer_b_idx ON merge_suggestion (customer_b_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX merge_suggestion_customer_b_idx`);
    await q.query(`DROP INDEX merge_suggestion_customer_a_idx`);
    await q.query(`DROP INDEX customer_merged_into_idx`);
  }
}

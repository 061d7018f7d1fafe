import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Room on each page for the next version of a row that ingest updates in place (the customer's
 * summary once per batch, the daily rollups once per key and batch): with it the update is HOT,
 * no index entry is rewritten. None of the columns these updates change is indexed. Applies to
 * pages written from now on (a VACUUM FULL or pg_repack rewrites the old ones).
 */
export class InPlaceSummaryUpdates1765400000003 implements MigrationInterface {
  name = 'InPlaceSummaryUpdates1765400000003';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE customer SET (fillfactor = 70);
      ALTER TABLE customer_sentiment_daily SET (fillfactor = 80);
      ALTER TABLE department_sentiment_daily SET (fillfactor = 50);
      ALTER TABLE topic_sentiment_daily SET (fillfactor = 50);
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE customer RESET (fillfactor);
      ALTER TABLE customer_sentiment_daily RESET (fillfactor);
      ALTER TABLE department_sentiment_daily RESET (fillfactor);
      ALTER TABLE topic_sentiment_daily RESET (fillfactor);
    `);
  }
}

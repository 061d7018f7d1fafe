import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The customer trend (mean score of the last 30 UTC days minus that of the 30 before) from sums
 * per day kept on the customer row, instead of every inbound interaction of the last 60 days
 * read again by each ingest batch the customer appears in (work that grew with the customer's
 * history; src/sentiment/rollups.repository.ts). `sentiment_days` holds (day since 1970, count,
 * score sum) triples, oldest first, for the days inside the window at the last update.
 *
 * Rows that exist now get NULL, which the next update of the customer reads as "not built yet"
 * and fills from the interactions once; new rows start empty. No rewrite of the table here.
 */
export class CustomerTrendDays1767100000001 implements MigrationInterface {
  name = 'CustomerTrendDays1767100000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE customer ADD COLUMN sentiment_days float8[]`);
    await q.query(`ALTER TABLE customer ALTER COLUMN sentiment_days SET DEFAULT '{}'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE customer DROP COLUMN sentiment_days`);
  }
}

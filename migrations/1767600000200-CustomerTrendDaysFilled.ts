import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Fills the day sums (`sentiment_days`) of the customer rows that still have none: rows written
 * before CustomerTrendDays1767100000001, which left them NULL for "the next update of the customer
 * fills them". A customer who stayed quiet after an upgrade never had that update, and
 * `customer_trend` answers a row without days with its stored trend: the trend of its last update
 * under the old release, for ever. The API and the CRM write-back then showed a trend that the
 * same interactions no longer give (a customer quiet for 45 days kept -1.52 where the current code
 * reads none: test/integration/upgrade-from-old-data.test.ts), and the daily trend refresh never
 * saw it move.
 *
 * The days are built from the customer's inbound interactions of the last 60 UTC days by the rule
 * of the summary update (src/sentiment/rollups.repository.ts: the same statement fills a row
 * without days, through `customer_days_window`). The stored `sentiment_trend` stays the trend of
 * the last update, as the summary update leaves it for a quiet customer. A fresh install has no
 * such row (the column defaults to '{}'): nothing to do. down() leaves the days: a row with days
 * is what the migrations before this one expect too.
 */
export class CustomerTrendDaysFilled1767600000200 implements MigrationInterface {
  name = 'CustomerTrendDaysFilled1767600000200';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      UPDATE customer c
         SET sentiment_days = (
           SELECT w.days FROM customer_days_window(
             (SELECT array_agg(f.v ORDER BY o.day, o.id, f.k)
                FROM (SELECT i.id, ((i.occurred_at AT TIME ZONE 'UTC')::date - date '1970-01-01')::float8 AS day, 1::float8 AS n, i.sentiment_score AS s
                        FROM interaction i
                       WHERE i.customer_id = c.id AND i.direction = 'inbound'
                         AND i.occurred_at >= (((now() AT TIME ZONE 'UTC')::date - 60)::timestamp AT TIME ZONE 'UTC')) o
               CROSS JOIN LATERAL (VALUES (1, o.day), (2, o.n), (3, o.s)) AS f(k, v)),
             (now() AT TIME ZONE 'UTC')::date - date '1970-01-01') w)
       WHERE c.sentiment_days IS NULL`);
  }

  async down(): Promise<void> {
    // the filled days stay: see above
  }
}

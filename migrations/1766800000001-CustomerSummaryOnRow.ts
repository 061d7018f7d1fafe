import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The per-customer daily rollup is no longer written on ingest: the customer's decayed score is
 * kept on its own row as an exponentially decayed sum and weight with a reference day
 * (`sentiment_wsum`, `sentiment_wn`, `sentiment_ref`: Σ score·2^((day − ref)/30) and
 * Σ 2^((day − ref)/30) over its inbound interactions), updated once per customer per batch
 * (`src/sentiment/rollups.ts`). The mean they give does not depend on the reference day, so a late
 * interaction is simply weighted by its own age. `customer_sentiment_daily` becomes a view over
 * `interaction` with the same columns (read through `interaction_customer_idx` for one customer).
 */
export class CustomerSummaryOnRow1766800000001 implements MigrationInterface {
  name = 'CustomerSummaryOnRow1766800000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE customer ADD COLUMN sentiment_wsum double precision, ADD COLUMN sentiment_wn double precision, ADD COLUMN sentiment_ref date;
      UPDATE customer c SET sentiment_wsum = x.ws, sentiment_wn = x.wn, sentiment_ref = x.ref
        FROM (SELECT s.customer_id, r.ref,
                     sum(s.score_sum * power(0.5::float8, (r.ref - s.day)::float8 / 30)) AS ws,
                     sum(s.interaction_count * power(0.5::float8, (r.ref - s.day)::float8 / 30)) AS wn
                FROM customer_sentiment_daily s
                JOIN (SELECT customer_id, max(day) AS ref FROM customer_sentiment_daily GROUP BY 1) r ON r.customer_id = s.customer_id
               GROUP BY s.customer_id, r.ref) x
       WHERE c.id = x.customer_id;
      DROP TABLE customer_sentiment_daily;
      CREATE VIEW customer_sentiment_daily AS
      SELECT i.customer_id, (i.occurred_at AT TIME ZONE 'UTC')::date AS day, count(*)::int AS interaction_count,
             sum(i.sentiment_score)::float8 AS score_sum,
             (count(*) FILTER (WHERE i.sentiment_label = 'negative'))::int AS negative_count,
             (count(*) FILTER (WHERE i.sentiment_label = 'positive'))::int AS positive_count
        FROM interaction i
       WHERE i.direction = 'inbound' AND i.customer_id IS NOT NULL
       GROUP BY 1, 2;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP VIEW customer_sentiment_daily;
      CREATE TABLE customer_sentiment_daily (
        customer_id uuid NOT NULL REFERENCES customer(id) ON DELETE CASCADE,
        day date NOT NULL,
        interaction_count integer NOT NULL,
        score_sum double precision NOT NULL,
        negative_count integer NOT NULL,
        positive_count integer NOT NULL,
        PRIMARY KEY (customer_id, day)
      ) WITH (fillfactor = 80);
      INSERT INTO customer_sentiment_daily
      SELECT customer_id, (occurred_at AT TIME ZONE 'UTC')::date, count(*), sum(sentiment_score),
             count(*) FILTER (WHERE sentiment_label = 'negative'), count(*) FILTER (WHERE sentiment_label = 'positive')
        FROM interaction WHERE direction = 'inbound' AND customer_id IS NOT NULL GROUP BY 1, 2;
      ALTER TABLE customer DROP COLUMN sentiment_wsum, DROP COLUMN sentiment_wn, DROP COLUMN sentiment_ref;
    `);
  }
}

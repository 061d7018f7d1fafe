import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Topic rollups are written by `src/sentiment/rollups.ts` like the customer and department
 * rollups (one aggregate upsert per batch), so the interaction_topic triggers go.
 */
export class OneRollupMechanism1765400000000 implements MigrationInterface {
  name = 'OneRollupMechanism1765400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TRIGGER topic_sentiment_daily_delete ON interaction_topic;
      DROP TRIGGER topic_sentiment_daily_insert ON interaction_topic;
      DROP FUNCTION topic_sentiment_daily_remove();
      DROP FUNCTION topic_sentiment_daily_add();
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION topic_sentiment_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO topic_sentiment_daily AS t (topic_id, day, interaction_count, score_sum, negative_count, positive_count)
        SELECT n.topic_id, (i.occurred_at AT TIME ZONE 'UTC')::date, count(*), sum(i.sentiment_score),
               count(*) FILTER (WHERE i.sentiment_label = 'negative'), count(*) FILTER (WHERE i.sentiment_label = 'positive')
          FROM new_rows n JOIN interaction i ON i.id = n.interaction_id
         WHERE i.direction = 'inbound'
         GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (topic_id, day) DO UPDATE SET
          interaction_count = t.interaction_count + EXCLUDED.interaction_count,
          score_sum = t.score_sum + EXCLUDED.score_sum,
          negative_count = t.negative_count + EXCLUDED.negative_count,
          positive_count = t.positive_count + EXCLUDED.positive_count;
        RETURN NULL;
      END $$;
      CREATE TRIGGER topic_sentiment_daily_insert AFTER INSERT ON interaction_topic
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION topic_sentiment_daily_add();
      CREATE FUNCTION topic_sentiment_daily_remove() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        UPDATE topic_sentiment_daily t SET
          interaction_count = t.interaction_count - x.n, score_sum = t.score_sum - x.s,
          negative_count = t.negative_count - x.neg, positive_count = t.positive_count - x.pos
          FROM (SELECT o.topic_id, (i.occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n, sum(i.sentiment_score) AS s,
                       count(*) FILTER (WHERE i.sentiment_label = 'negative') AS neg, count(*) FILTER (WHERE i.sentiment_label = 'positive') AS pos
                  FROM old_rows o JOIN interaction i ON i.id = o.interaction_id
                 WHERE i.direction = 'inbound' GROUP BY 1, 2) x
         WHERE t.topic_id = x.topic_id AND t.day = x.day;
        RETURN NULL;
      END $$;
      CREATE TRIGGER topic_sentiment_daily_delete AFTER DELETE ON interaction_topic
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION topic_sentiment_daily_remove();
    `);
  }
}

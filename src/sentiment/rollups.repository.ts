import type { DataSource } from 'typeorm';
import { exec } from '../db/sql';

/**
 * Every SQL statement over the derived sentiment tables (./rollups.ts owns them and works out
 * what to write): the daily rollups per department and per topic, and the stored customer summary.
 */

/** Department rollups from the stored tags: what they would be had every interaction arrived today. */
export async function rebuildDepartmentRollups(ds: DataSource): Promise<void> {
  await ds.transaction(async (em) => {
    await exec(em, 'LOCK TABLE department_sentiment_daily IN EXCLUSIVE MODE');
    await exec(em, 'DELETE FROM department_sentiment_daily');
    await exec(em, `
      INSERT INTO department_sentiment_daily (department_id, day, interaction_count, score_sum, negative_count, positive_count)
      SELECT x.department_id, (i.occurred_at AT TIME ZONE 'UTC')::date, count(*), sum(i.sentiment_score),
             count(*) FILTER (WHERE i.sentiment_label = 'negative'), count(*) FILTER (WHERE i.sentiment_label = 'positive')
        FROM (SELECT DISTINCT it.interaction_id, t.department_id FROM interaction_topic it JOIN topic t ON t.id = it.topic_id) x
        JOIN interaction i ON i.id = x.interaction_id
       WHERE i.direction = 'inbound'
       GROUP BY 1, 2`);
  });
}

/**
 * Topic rollups from the stored tags and scores. Writers keep them in step through
 * `applyRollups` (rollups.ts); a change of every score (a re-score) rebuilds them instead.
 */
export async function rebuildTopicRollups(ds: DataSource): Promise<void> {
  await ds.transaction(async (em) => {
    await exec(em, 'LOCK TABLE topic_sentiment_daily IN EXCLUSIVE MODE');
    await exec(em, 'DELETE FROM topic_sentiment_daily');
    await exec(em, `
      INSERT INTO topic_sentiment_daily (topic_id, day, interaction_count, score_sum, negative_count, positive_count)
      SELECT it.topic_id, (i.occurred_at AT TIME ZONE 'UTC')::date, count(*), sum(i.sentiment_score),
             count(*) FILTER (WHERE i.sentiment_label = 'negative'), count(*) FILTER (WHERE i.sentiment_label = 'positive')
        FROM interaction_topic it JOIN interaction i ON i.id = it.interaction_id
       WHERE i.direction = 'inbound'
       GROUP BY 1, 2`);
  });
}

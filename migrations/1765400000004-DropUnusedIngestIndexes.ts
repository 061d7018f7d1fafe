import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * interaction_topic (topic_id) serves no query: every read of interaction_topic goes by
 * interaction (its primary key). Its only user was the ON DELETE CASCADE of a deleted topic, a
 * rare taxonomy edit that may scan the table instead. One index entry fewer per tag.
 */
export class DropUnusedIngestIndexes1765400000004 implements MigrationInterface {
  name = 'DropUnusedIngestIndexes1765400000004';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX interaction_topic_topic_idx`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX interaction_topic_topic_idx ON interaction_topic (topic_id)`);
  }
}

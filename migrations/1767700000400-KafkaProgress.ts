import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * How far the database holds each input partition of each consumer group: the next offset to
 * read, written in the same transaction as the chunk's interactions (src/ingest/kafka-progress.ts).
 * The group's committed offsets live in Kafka and stay where they are when the database goes back
 * in time (restored from a backup, failed over to a standby that had not received the last
 * commits); compared with this table at each assignment, what the database lost is read again.
 * One row per partition, updated in place by every chunk: the fillfactor leaves room on the page
 * for those updates to stay HOT (no index entry, little WAL).
 */
export class KafkaProgress1767700000400 implements MigrationInterface {
  name = 'KafkaProgress1767700000400';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE kafka_progress (
        group_id text NOT NULL,
        topic text NOT NULL,
        partition integer NOT NULL,
        next_offset bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT kafka_progress_pkey PRIMARY KEY (group_id, topic, partition)
      ) WITH (fillfactor = 50)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE kafka_progress`);
  }
}

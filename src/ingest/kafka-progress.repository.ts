import { exec, rows, type Db } from '../db/sql';

/** Every SQL statement over kafka_progress (see ./kafka-progress.ts). */

/** Records `nextOffset` as the group's progress on the partition: one row, updated in place. */
export function saveProgress(db: Db, groupId: string, topic: string, partition: number, nextOffset: bigint): Promise<void> {
  return exec(
    db,
    `INSERT INTO kafka_progress (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
     ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()`,
    [groupId, topic, partition, nextOffset.toString()],
  );
}

/** The group's recorded progress on these partitions; a partition never recorded has no row. */
export function progressOf(db: Db, groupId: string, partitions: readonly { topic: string; partition: number }[]): Promise<{ topic: string; partition: number; next_offset: string }[]> {
  return rows(
    db,
    `SELECT p.topic, p.partition, p.next_offset::text AS next_offset
       FROM kafka_progress p JOIN unnest($2::text[], $3::int[]) AS a(topic, partition) ON a.topic = p.topic AND a.partition = p.partition
      WHERE p.group_id = $1`,
    [groupId, partitions.map((p) => p.topic), partitions.map((p) => p.partition)],
  );
}

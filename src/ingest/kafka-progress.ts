import type { DataSource, QueryRunner } from 'typeorm';

/**
 * The database's own record of how far it holds each input partition of the consumer group
 * (table kafka_progress): the offset after the last message of the last chunk stored.
 *
 * What must stay true:
 * - `save` runs in the chunk's own transaction (or, for a chunk that stored nothing, after its
 *   parts committed), so the offset kept here never runs ahead of what this database holds; the
 *   group's committed offset in Kafka, moved only after, is never behind it unless the database
 *   went back in time;
 * - one row per partition, updated in place: a chunk costs one row write, whatever its size.
 */
export class KafkaProgressStore {
  constructor(
    private readonly ds: DataSource,
    private readonly groupId: string,
  ) {}

  /** Records `nextOffset` for the partition, on `qr` (inside the chunk's transaction) or on its own. */
  async save(topic: string, partition: number, nextOffset: bigint, qr?: QueryRunner): Promise<void> {
    await (qr ?? this.ds).query(
      `INSERT INTO kafka_progress (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
       ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()`,
      [this.groupId, topic, partition, nextOffset.toString()],
    );
  }

  /** The recorded next offsets of these partitions, by `topic/partition`; a partition never recorded is absent. */
  async read(partitions: readonly { topic: string; partition: number }[]): Promise<Map<string, bigint>> {
    const out = new Map<string, bigint>();
    if (partitions.length === 0) return out;
    const rows = (await this.ds.query(
      `SELECT p.topic, p.partition, p.next_offset::text AS next_offset
         FROM kafka_progress p JOIN unnest($2::text[], $3::int[]) AS a(topic, partition) ON a.topic = p.topic AND a.partition = p.partition
        WHERE p.group_id = $1`,
      [this.groupId, partitions.map((p) => p.topic), partitions.map((p) => p.partition)],
    )) as { topic: string; partition: number; next_offset: string }[];
    for (const r of rows) out.set(`${r.topic}/${r.partition}`, BigInt(r.next_offset));
    return out;
  }
}

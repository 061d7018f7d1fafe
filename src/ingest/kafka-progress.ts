import type { DataSource, QueryRunner } from 'typeorm';
import * as repo from './kafka-progress.repository';

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
    await repo.saveProgress(qr ?? this.ds, this.groupId, topic, partition, nextOffset);
  }

  /** The recorded next offsets of these partitions, by `topic/partition`; a partition never recorded is absent. */
  async read(partitions: readonly { topic: string; partition: number }[]): Promise<Map<string, bigint>> {
    const out = new Map<string, bigint>();
    if (partitions.length === 0) return out;
    const rows = await repo.progressOf(this.ds, this.groupId, partitions);
    for (const r of rows) out.set(`${r.topic}/${r.partition}`, BigInt(r.next_offset));
    return out;
  }
}

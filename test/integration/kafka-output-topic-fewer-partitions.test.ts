import { describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app';
import { produce, readTopic, waitFor } from '../support/kafka-fixtures';
import { kafkaWorld, onPartition, startInstance, stored } from '../support/kafka-instance';

/**
 * An output topic deleted and created again by an operator with fewer partitions (3 to 1) while
 * Earshot runs. Before: the relay's producer (@platformatic/kafka 2.12.1) had put each event on
 * a partition of the old topic; the broker answered that partition 1 or 2 is unknown, the
 * producer sent again on fresh metadata without placing the event again, and threw a TypeError
 * ("reading 'leader'") out of a socket callback: the send never settled. In process the relay
 * waited for ever (40 rows unsent after 150 s, `/readyz` 200, not a line in the log); in its
 * worker thread (compiled builds) the thread died and `/readyz` said only the TypeError. With
 * `EARSHOT_OUTBOX_PRODUCER=kafkajs`, kafkajs placed the events again but kept the sequence numbers
 * of partition 0, which the broker had taken in part: every later send was refused as out of
 * order, for ever. Now each attempt places the events again on the topic as it is (platformatic),
 * and a kafkajs producer starts afresh after such a refusal; the events go out (at least once:
 * those the broker took before refusing the rest are written again, same event-id).
 */

const unsent = async (app: RunningApp): Promise<number> =>
  ((await app.db.ds.query(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`)) as { n: number }[])[0]!.n;

describe('an output topic recreated with fewer partitions while Earshot runs', () => {
  const world = kafkaWorld();
  const { running } = world;

  it.each(['platformatic', 'kafkajs'])('%s producer: the events written after it reach the one partition left, each event-id at least once, and the relay goes on', { timeout: 120_000 }, async (producer) => {
    const { names, database } = await world.fresh(`outfewer${producer}`);
    const i = await startInstance(database, names, { EARSHOT_OUTBOX_PRODUCER: producer });
    running.push(i.app);
    await produce(world.kafka, names.topic, onPartition(0, 0, 20, 'before'));
    await waitFor('the first 20 published', async () => (await stored(i.app, 'before-%')) === 20 && (await unsent(i.app)) === 0, 60_000);
    const published = Date.now();
    // what an operator does in a few seconds: the relay still knows the topic with 3 partitions
    await world.admin.deleteTopics({ topics: [names.enriched, names.sentiment] });
    await waitFor('the topics recreated with 1 partition', async () => {
      try {
        await world.admin.createTopics({ topics: [{ topic: names.enriched, numPartitions: 1 }, { topic: names.sentiment, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }], waitForLeaders: true });
      } catch {
        return null; // still being deleted
      }
      return (await world.admin.fetchTopicMetadata({ topics: [names.enriched, names.sentiment] })).topics.every((t) => t.partitions.length === 1) || null;
    }, 30_000, 50);
    await produce(world.kafka, names.topic, onPartition(1, 1_000, 20, 'after'));
    console.info(`kafka-output-topic-fewer-partitions (${producer}): topics recreated and 20 messages written ${Date.now() - published} ms after the last publish`);
    await waitFor('the next 20 stored', async () => (await stored(i.app, 'after-%')) === 20, 60_000);
    await waitFor('the events published', async () => (await unsent(i.app)) === 0, 60_000).catch((e: unknown) => {
      console.info([...new Set(i.logs.filter((l) => l.level === 'error' || l.level === 'warn').map((l) => `${String(l.level)} ${String(l.msg)} ${String(l.error ?? (l.err as { message?: string } | undefined)?.message ?? '')}`))].join('\n'));
      throw e;
    });
    const records = await readTopic(world.kafka, names.enriched);
    const enriched = records.map((r) => (JSON.parse(r.value!.toString('utf8')) as { externalId: string }).externalId);
    expect([...new Set(enriched)].sort()).toEqual(Array.from({ length: 20 }, (_, k) => `after-${1_000 + k}`).sort());
    // at least once: the events the broker took on partition 0 before refusing partitions 1 and 2
    // are written again by the next attempt, with the same event-id to dedupe on
    expect(new Set(records.map((r) => r.headers['event-id'])).size).toBe(20);
    console.info(`kafka-output-topic-fewer-partitions (${producer}): ${records.length} records for 20 events`);
    expect(new Set((await readTopic(world.kafka, names.sentiment)).map((r) => r.key)).size).toBe(20);
    expect((await fetch(`${i.app.url}/readyz`)).status).toBe(200);
  });
});

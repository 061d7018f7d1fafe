import { describe, expect, it } from 'vitest';
import { OUTBOX_TOPICS } from '../../src/outbox/outbox-events';
import { kafkaWorld, startInstance } from '../support/kafka-instance';

/**
 * Topics an operator made by hand (or recreated) with settings that go against what Earshot
 * writes there. Earshot never alters an existing topic; it says at start, one warning per topic,
 * what is wrong and what to set. Before, only a customer-sentiment topic without compaction was
 * reported: a compacted enriched or erasure topic (the broker keeps the last message of each
 * key: consumers lose all but a customer's last interaction, all but the last part of an
 * erasure) or a compacted input topic (an author's unread interactions) started without a word.
 */

describe('Kafka topics whose settings go against what Earshot writes there', () => {
  const world = kafkaWorld();
  const { running, fresh } = world;
  /** The warnings of a start that name a topic of this test, by topic. */
  const topicWarnings = (logs: Record<string, unknown>[], prefix: string) =>
    logs.filter((l) => l.level === 'warn' && typeof l.topic === 'string' && l.topic.startsWith(prefix)).map((l) => ({ topic: l.topic, msg: String(l.msg) }));

  it('a compacted input, enriched or erasure topic, a sentiment topic that also deletes by age and a small output record limit are each named once at start', async () => {
    const { names, database } = await fresh('topicconfig');
    const erasure = `${names.prefix}${OUTBOX_TOPICS.erasure.name}`;
    const gap = `${names.prefix}${OUTBOX_TOPICS.listeningGap.name}`;
    const compact = [{ name: 'cleanup.policy', value: 'compact' }];
    await world.admin.createTopics({
      topics: [
        { topic: names.topic, numPartitions: 3, configEntries: compact },
        { topic: names.enriched, numPartitions: 3, configEntries: compact },
        { topic: erasure, numPartitions: 3, configEntries: compact },
        { topic: names.sentiment, numPartitions: 3, configEntries: [{ name: 'cleanup.policy', value: 'compact,delete' }] },
        { topic: gap, numPartitions: 3, configEntries: [{ name: 'max.message.bytes', value: '20000' }] },
      ],
      waitForLeaders: true,
    });
    const i = await startInstance(database, names);
    running.push(i.app);
    const said = topicWarnings(i.logs, names.prefix);
    expect(said.map((w) => w.topic).sort(), JSON.stringify(said)).toEqual([names.topic, names.enriched, erasure, names.sentiment, gap].sort());
    for (const t of [names.topic, names.enriched, erasure]) {
      expect(said.find((w) => w.topic === t)!.msg).toBe(`kafka topic ${t} is compacted (cleanup.policy=compact): the broker keeps only the last message of each key, and every message of this topic counts; set cleanup.policy=delete`);
    }
    expect(said.find((w) => w.topic === names.sentiment)!.msg).toMatch(/also deletes by age \(cleanup\.policy=compact,delete\).*set cleanup\.policy=compact$/);
    expect(said.find((w) => w.topic === gap)!.msg).toMatch(/takes records of at most 20000 bytes \(max\.message\.bytes\), under KAFKA_MAX_REQUEST_BYTES \(1000000\)/);
    // nothing was altered behind the operator's back
    const described = await world.admin.describeConfigs({ resources: [{ type: 2, name: names.enriched, configNames: ['cleanup.policy'] }], includeSynonyms: false });
    expect(described.resources[0]!.configEntries[0]!.configValue).toBe('compact');
  });

  it('topics Earshot created itself draw no such warning', async () => {
    const { names, database } = await fresh('topicconfigok');
    const i = await startInstance(database, names);
    running.push(i.app);
    expect(await world.admin.listTopics()).toEqual(expect.arrayContaining(names.all));
    expect(topicWarnings(i.logs, names.prefix)).toEqual([]);
  });
});

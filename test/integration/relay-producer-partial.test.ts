import type { Admin, Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config';
import { keyHash } from '../../src/outbox/partitioner';
import { PlatformaticRelayProducer, type RelayMessage } from '../../src/outbox/relay-producer';
import { kafkaEnv, kafkaNames, readTopic, testBrokers, testKafka, waitFor } from '../support/kafka-fixtures';

// The broker writes each partition of a produce request on its own. When it refused some (here:
// a topic deleted under the producer, UNKNOWN_TOPIC_OR_PARTITION; as well a leader not yet ready
// on a topic just created, or one moving) and wrote the others, the relay sent the whole request
// again and every event of the written partitions reached its topic twice. CI saw it: an upgrade
// published an old event twice while the topics it had just created came up.

describe('relay producer: a produce the broker refused in part', () => {
  const names = kafkaNames('relaypartial');
  const healthy = `${names.prefix}partial.healthy`;
  const refusing = `${names.prefix}partial.refusing`;
  let kafka: Kafka;
  let admin: Admin;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: healthy, numPartitions: 3, replicationFactor: 1 },
        { topic: refusing, numPartitions: 2, replicationFactor: 1 },
      ],
    });
  });

  afterAll(async () => {
    await admin?.deleteTopics({ topics: [healthy, refusing] }).catch(() => undefined);
    await admin?.disconnect();
  });

  const total = async (topic: string) => (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);

  it('sends again only what was refused: each event once, in order per key, on its murmur2 partition', async () => {
    const settings = loadConfig({ NODE_ENV: 'test', ...kafkaEnv(names, { KAFKA_BROKERS: testBrokers() }) }).kafka;
    // The retry after the refusal waits for the operator to create the topic again (in CI a
    // 600 ms pause could come first: the metadata would then say the topic is unknown, and the
    // send would fail as the relay's loop expects, not retry). The metadata the first attempt
    // places by is the warm-up's, however long the deletion takes.
    // The pause is the producer's for connect and the warm-up too: a connect the broker refused
    // once (CI saw it on a busy machine) tries again once the broker answers, nothing checked.
    let refusals = 0;
    let underTest = false;
    const pause = async () => {
      if (!underTest) {
        await admin.describeCluster();
        return;
      }
      // after the first refusal: once the recreated topic's partitions have leaders (a slow machine)
      if (refusals > 0) {
        await waitFor('leaders of the recreated topic', async () => (await admin.fetchTopicMetadata({ topics: [refusing] })).topics[0]!.partitions.every((p) => p.leader >= 0), 30_000, 50);
        return;
      }
      refusals++;
      expect(await total(healthy), 'the healthy partitions written by the refused attempt').toBe(36);
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic: refusing, numPartitions: 2, replicationFactor: 1 }] });
    };
    const producer = new PlatformaticRelayProducer(settings, 'relaypartial', { retries: 3, pause, metadataMaxAgeMs: 600_000 });
    await producer.connect();
    try {
      // the producer knows both topics; then one is deleted under it
      await producer.send([{ topic: refusing, key: 'warm-up', value: '{}', headers: { 'event-id': 'warm-up' } }]);
      await admin.deleteTopics({ topics: [refusing] });
      await waitFor('the topic gone', async () => !(await admin.listTopics()).includes(refusing), 30_000, 50);

      const messages: RelayMessage[] = [];
      for (let i = 0; i < 30; i++) messages.push({ topic: healthy, key: `customer-${i % 7}`, value: JSON.stringify({ i }), headers: { 'event-id': `h-${i}` } });
      for (let i = 0; i < 10; i++) messages.push({ topic: refusing, key: `customer-${i % 3}`, value: JSON.stringify({ i }), headers: { 'event-id': `r-${i}` } });
      // keyless events too: placed round robin, each written once
      for (let i = 0; i < 6; i++) messages.push({ topic: healthy, key: null, value: JSON.stringify({ i }), headers: { 'event-id': `n-${i}` } });
      // the first attempt writes the healthy topic and is refused on the other; the retry sends the rest
      underTest = true;
      await producer.send(messages);
      expect(refusals).toBe(1);

      const got = await readTopic(kafka, healthy);
      const ids = got.map((m) => m.headers['event-id']!);
      expect(ids.length).toBe(36);
      expect(new Set(ids).size).toBe(36);
      const refused = await readTopic(kafka, refusing);
      expect(refused.map((m) => m.headers['event-id']).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `r-${i}`).sort());
      for (const [topic, records, partitions] of [[healthy, got, 3], [refusing, refused, 2]] as const) {
        for (const m of records) if (m.key !== null) expect(m.partition, `${topic} ${m.key}`).toBe(keyHash(Buffer.from(m.key)) % partitions);
        // per key, in the order given
        const byKey = new Map<string, number[]>();
        for (const m of [...records].sort((a, b) => Number(a.offset) - Number(b.offset))) {
          if (m.key === null) continue;
          byKey.set(m.key, [...(byKey.get(m.key) ?? []), (JSON.parse(m.value!.toString()) as { i: number }).i]);
        }
        for (const seq of byKey.values()) expect(seq).toEqual([...seq].sort((a, b) => a - b));
      }
    } finally {
      await producer.disconnect();
    }
  });
});

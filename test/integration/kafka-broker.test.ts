import { randomUUID } from 'node:crypto';
import { Kafka, Partitioners, logLevel, type Admin } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureKafka, waitForKafka } from '../support/kafka';

const MESSAGE_COUNT = 100;
const KEY_COUNT = 10;
const PARTITIONS = 3;

interface Received {
  partition: number;
  offset: bigint;
  key: string;
  seq: number;
}

describe('development Kafka broker', () => {
  let brokers: string;
  let kafka: Kafka;
  let admin: Admin;
  const topic = `test.kafka-broker.${randomUUID()}`;

  beforeAll(async () => {
    brokers = await ensureKafka();
    kafka = new Kafka({
      clientId: 'earshot-kafka-broker-test',
      brokers: brokers.split(','),
      logLevel: logLevel.NOTHING,
    });
    admin = kafka.admin();
    await admin.connect();
  });

  afterAll(async () => {
    await admin?.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin?.disconnect();
  });

  it('ensureKafka is idempotent: a second call returns the same brokers at once', async () => {
    const started = Date.now();
    expect(await ensureKafka()).toBe(brokers);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('waitForKafka rejects with the address when nothing listens there', async () => {
    await expect(waitForKafka('127.0.0.1:1', 1_000)).rejects.toThrow(/127\.0\.0\.1:1 was not ready within 1000 ms/);
  });

  it('round-trips keyed messages through a new topic, in order per partition', async () => {
    expect(await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true })).toBe(true);
    const [metadata] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
    expect(metadata.partitions).toHaveLength(PARTITIONS);

    const messages = Array.from({ length: MESSAGE_COUNT }, (_, seq) => ({
      key: `author-${seq % KEY_COUNT}`,
      value: JSON.stringify({ seq }),
    }));
    // The Java-compatible partitioner is what Java clients use too; computing its choice
    // up front lets the test check that the broker kept every message where it was sent.
    const partitionOf = Partitioners.DefaultPartitioner();
    const expectedPartition = new Map(
      messages.map((m) => [m.key, partitionOf({ topic, partitionMetadata: metadata.partitions, message: m })]),
    );

    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true });
    await producer.connect();
    try {
      const acks = await producer.send({ topic, messages });
      expect(acks.every((a) => a.errorCode === 0)).toBe(true);
    } finally {
      await producer.disconnect();
    }

    const received: Received[] = [];
    const consumer = kafka.consumer({ groupId: `test.kafka-broker.${randomUUID()}` });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      const allReceived = new Promise<void>((resolve) => {
        void consumer.run({
          eachMessage: async ({ partition, message }) => {
            received.push({
              partition,
              offset: BigInt(message.offset),
              key: message.key?.toString() ?? '',
              seq: (JSON.parse(message.value?.toString() ?? '{}') as { seq: number }).seq,
            });
            if (received.length >= MESSAGE_COUNT) resolve();
          },
        });
      });
      await Promise.race([
        allReceived,
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error(`only ${received.length} of ${MESSAGE_COUNT} messages arrived`)), 30_000),
        ),
      ]);
    } finally {
      await consumer.disconnect();
    }

    expect(received).toHaveLength(MESSAGE_COUNT);
    expect(received.map((r) => r.seq).sort((a, b) => a - b)).toEqual(messages.map((_, seq) => seq));
    for (const r of received) {
      expect(r.key).toBe(`author-${r.seq % KEY_COUNT}`);
      expect(r.partition).toBe(expectedPartition.get(r.key));
    }
    // Within a partition the broker must hand messages back in the order they were produced,
    // at consecutive offsets from 0.
    for (let p = 0; p < PARTITIONS; p += 1) {
      const inPartition = received.filter((r) => r.partition === p);
      expect(inPartition.map((r) => r.offset)).toEqual(inPartition.map((_, i) => BigInt(i)));
      const seqs = inPartition.map((r) => r.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      const sent = messages.filter((m) => expectedPartition.get(m.key) === p).length;
      expect(inPartition).toHaveLength(sent);
    }
    // Ten keys over three partitions: a broker or partitioner that put everything in one
    // partition would pass the checks above, so make sure the spread is real.
    expect(new Set(received.map((r) => r.partition)).size).toBeGreaterThan(1);
  });
});

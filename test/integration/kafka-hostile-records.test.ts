import zlib from 'node:zlib';
import { CompressionCodecs, CompressionTypes, type Admin, type Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, startTestApp, type TestApp } from '../support/app';
import { dumpTopicWithJavaClient, groupLag, kafkaEnv, kafkaNames, orderedProducer, produce, readTopic, stopAndDropTopics, testKafka, waitFor, type KafkaNames } from '../support/kafka-fixtures';

/**
 * Records a hostile or unlucky producer can put on the real broker that are not about the value's
 * content (kafka-hostile.test.ts covers those): timestamps, keys and headers no ordinary client
 * writes, a gzip batch the broker stores but Node cannot inflate, and transactions. The promise:
 * each message is stored or dead-lettered, the partition moves on, and the group's committed
 * offsets reach the end of the partition.
 */

const stored = async (app: TestApp, like: string): Promise<number> =>
  ((await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE external_id LIKE $1`, [like])) as { n: number }[])[0]!.n;

const valid = (n: number, externalId: string) => JSON.stringify(message(n, { externalId }));

async function setUp(names: KafkaNames, label: string, env: Record<string, string> = {}): Promise<{ kafka: Kafka; admin: Admin; app: TestApp }> {
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  const app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'ingest', KAFKA_TOPIC_PARTITIONS: '1', ...env }), label);
  return { kafka, admin, app };
}

describe('Kafka: timestamps no ordinary producer writes', () => {
  const names = kafkaNames('oddtimes');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    ({ kafka, admin, app } = await setUp(names, 'oddtimes'));
  });

  afterAll(() => stopAndDropTopics(app, admin, names));

  it('a poison message with a timestamp past the year 275760 is dead-lettered and the partition moves on', async () => {
    // Kafka's timestamp is any int64 and the broker (message.timestamp.after.max.ms unset) keeps
    // it; JavaScript dates end at 8.64e15 ms.
    await produce(kafka, names.topic, [
      { key: 'k', value: '{"broken": ', timestamp: '9000000000000000', headers: { 'test-seq': 'far-future' } } as never,
      { key: 'k', value: valid(1, 'far-future-valid'), timestamp: '9000000000000001' } as never,
      { key: 'k', value: '{"broken": ', timestamp: '-1', headers: { 'test-seq': 'minus-one' } } as never,
      { key: 'k', value: valid(2, 'after-the-timestamps') },
    ]);
    await waitFor('the message after the timestamps', async () => (await stored(app, 'after-the-timestamps')) === 1, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    expect(await stored(app, 'far-future-valid')).toBe(1);
    const letters = (await readTopic(kafka, names.dlq)).filter((l) => l.headers['test-seq']);
    expect(letters.map((l) => [l.headers['test-seq'], l.headers['x-error-kind'], l.headers['x-original-timestamp']])).toEqual([
      ['far-future', 'malformed-json', '9000000000000000'],
      ['minus-one', 'malformed-json', '-1'],
    ]);
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
  }, 120_000);

});

describe('Kafka: keys and headers no ordinary producer writes', () => {
  const names = kafkaNames('oddheaders');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    ({ kafka, admin, app } = await setUp(names, 'oddheaders'));
  });

  afterAll(() => stopAndDropTopics(app, admin, names));

  it('keys and headers: none, huge, __proto__, not UTF-8, repeated, hundreds; each message stored or dead-lettered with its headers', async () => {
    const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`h${i}`, `v${i}`]));
    const headersOf = (seq: string) => ({ 'test-seq': seq });
    await produce(kafka, names.topic, [
      { key: null, value: valid(10, 'hdr-null-key') },
      { key: 'x'.repeat(100_000), value: valid(11, 'hdr-huge-key') },
      { key: 'x'.repeat(100_000), value: '{"broken": ', headers: headersOf('huge-key') },
      { key: 'k', value: valid(12, 'hdr-proto'), headers: JSON.parse('{"__proto__":"p","constructor":"c","toString":"t"}') as Record<string, string> },
      { key: 'k', value: '{"broken": ', headers: { ...headersOf('proto'), ...(JSON.parse('{"__proto__":"p","constructor":"c"}') as Record<string, string>) } },
      { key: 'k', value: valid(13, 'hdr-bad-utf8'), headers: { traceparent: Buffer.from([0xff, 0xfe, 0x00, 0xc3]), 'x-error': Buffer.from([0xc3, 0x28]) } },
      { key: 'k', value: '{"broken": ', headers: { ...headersOf('bad-utf8'), traceparent: Buffer.from([0xff, 0xfe, 0x00, 0xc3]) } },
      { key: 'k', value: valid(14, 'hdr-repeated'), headers: { traceparent: ['00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'again'] } },
      { key: 'k', value: '{"broken": ', headers: { ...headersOf('repeated'), twice: ['one', 'two'] } },
      { key: 'k', value: valid(15, 'hdr-many'), headers: many },
      { key: 'k', value: '{"broken": ', headers: { ...headersOf('many'), ...many } },
      { key: 'k', value: valid(16, 'hdr-spoofed'), headers: { 'earshot-undecodable': 'not really' } },
      { key: 'k', value: valid(17, 'after-the-headers') },
    ]);
    await waitFor('the message after the headers', async () => (await stored(app, 'after-the-headers')) === 1, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    for (const id of ['hdr-null-key', 'hdr-huge-key', 'hdr-proto', 'hdr-bad-utf8', 'hdr-repeated', 'hdr-many']) expect(await stored(app, id), id).toBe(1);
    const letters = (await readTopic(kafka, names.dlq)).filter((l) => l.headers['test-seq']);
    expect(letters.map((l) => l.headers['test-seq'])).toEqual(['huge-key', 'proto', 'bad-utf8', 'repeated', 'many']);
    for (const l of letters) expect(l.headers['x-error-kind']).toBe('malformed-json');
    expect(letters[4]!.headers.h299).toBe('v299');
    // read with the Java client: kafkajs' own reader mangles a `constructor` header as the consumer receives it
    const proto = (await dumpTopicWithJavaClient(names.dlq)).find((l) => l.headers['test-seq'] === 'proto')!;
    expect([proto.headers.constructor, proto.headers.__proto__]).toEqual(['c', 'p']);
  }, 120_000);

  it('a malformed message with a 900 kB key is dead-lettered with its key, without blocking the process', async () => {
    // kafkajs' murmur2 (its DefaultPartitioner) took minutes on such a key, on the event loop:
    // the dead-letter producer now partitions with Earshot's own murmur2. The test's producer
    // names the partition, so it does not hash the key either. Its letter is marked with a
    // header of its own: the other test of this topic lists the letters that carry `test-seq`.
    const key = 'k'.repeat(900_000);
    await produce(kafka, names.topic, [
      { key, value: '{"broken": ', headers: { 'test-case': 'key-900k' }, partition: 0 },
      { key: 'k', value: valid(18, 'after-the-900k-key'), partition: 0 },
    ]);
    await waitFor('the message after the long key', async () => (await stored(app, 'after-the-900k-key')) === 1, 60_000);
    const letter = (await readTopic(kafka, names.dlq)).find((l) => l.headers['test-case'] === 'key-900k');
    expect(letter?.key?.toString()).toBe(key);
    expect(letter?.headers['x-error-kind']).toBe('malformed-json');
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
  }, 120_000);
});

describe('Kafka: a gzip batch the broker stores but Node cannot inflate', () => {
  const names = kafkaNames('badgzip');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    ({ kafka, admin, app } = await setUp(names, 'badgzip'));
  });

  afterAll(() => stopAndDropTopics(app, admin, names));

  it('dead-letters each record of the batch with the reason and consumes what follows', async () => {
    // A gzip member followed by bytes that start a second member with an unknown method: Java's
    // GZIPInputStream (the broker's check) ignores what follows a member when it cannot read a
    // header there, Node's zlib fails on it. The codec table is process-wide: the test's producer
    // compresses through it, and only compression is changed.
    type Codec = { compress(e: { buffer: Buffer }): Promise<Buffer>; decompress(b: Buffer): Promise<Buffer> };
    const table = CompressionCodecs as unknown as Record<number, () => Codec>;
    const original = table[CompressionTypes.GZIP]!;
    table[CompressionTypes.GZIP] = () => ({
      compress: async (e) => Buffer.concat([zlib.gzipSync(e.buffer), Buffer.from([0x1f, 0x8b, 0x00, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])]),
      decompress: (b) => original().decompress(b),
    });
    const producer = orderedProducer(kafka);
    await producer.connect();
    try {
      await producer.send({ topic: names.topic, acks: -1, compression: CompressionTypes.GZIP, messages: Array.from({ length: 5 }, (_, i) => ({ key: 'k', value: valid(100 + i, `bad-gzip-${i}`) })) });
    } finally {
      table[CompressionTypes.GZIP] = original;
      await producer.disconnect();
    }
    await produce(kafka, names.topic, [{ key: 'k', value: valid(200, 'after-the-bad-gzip') }]);
    await waitFor('the message after the bad gzip batch', async () => (await stored(app, 'after-the-bad-gzip')) === 1, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    expect(await stored(app, 'bad-gzip-%')).toBe(0);
    const letters = await readTopic(kafka, names.dlq);
    expect(letters.map((l) => Number(l.headers['x-original-offset']))).toEqual([0, 1, 2, 3, 4]);
    for (const l of letters) {
      expect(l.headers['x-error-kind']).toBe('undecodable-batch');
      expect(l.headers['x-error']).toMatch(/^the gzip-compressed batch could not be decompressed \(corrupt or truncated\): .* \(batch offsets 0-4\)$/);
    }
  }, 120_000);
});

describe('Kafka: transactional producers', () => {
  const names = kafkaNames('txn');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    ({ kafka, admin, app } = await setUp(names, 'txn'));
  });

  afterAll(() => stopAndDropTopics(app, admin, names));

  it('stores committed transactions, never aborted ones, and commits offsets past the markers', async () => {
    const producer = kafka.producer({ transactionalId: `${names.group}.tx`, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    try {
      const send = async (prefix: string, from: number, commit: boolean) => {
        const tx = await producer.transaction();
        await tx.send({ topic: names.topic, messages: Array.from({ length: 5 }, (_, i) => ({ key: 'k', value: valid(from + i, `${prefix}-${i}`) })) });
        await (commit ? tx.commit() : tx.abort());
      };
      await send('tx-committed', 300, true);
      await send('tx-aborted', 400, false);
      await send('tx-later', 500, true);
      await send('tx-aborted-last', 600, false);
    } finally {
      await producer.disconnect();
    }
    await waitFor('the committed transactions stored', async () => (await stored(app, 'tx-later-%')) === 5 && (await stored(app, 'tx-committed-%')) === 5, 60_000);
    // 4 transactions of 5 messages and a marker each: the committed offset reaches the end, as
    // Kafka's own consumers leave it, else the group's lag never reads 0
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    expect(await stored(app, 'tx-aborted%')).toBe(0);
    expect(await readTopic(kafka, names.dlq)).toEqual([]);
  }, 120_000);
});

describe('Kafka: a compressed batch that inflates past 64 × KAFKA_MAX_MESSAGE_BYTES', () => {
  const names = kafkaNames('bomb');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    // 64 kB messages: batches may inflate to 4 MiB
    ({ kafka, admin, app } = await setUp(names, 'bomb', { KAFKA_MAX_MESSAGE_BYTES: '65536' }));
  });

  afterAll(() => stopAndDropTopics(app, admin, names));

  it('is not inflated: each record is dead-lettered as undecodable-batch and the partition moves on', async () => {
    // 8 MB of zeros: a few hundred bytes as zstd or gzip. Before, the batch was inflated whole
    // (a 1 MB zstd batch can ask for tens of GB) and the 8 MB record dead-lettered as too large.
    const producer = orderedProducer(kafka);
    await producer.connect();
    try {
      for (const [compression, seq] of [[CompressionTypes.ZSTD, 'bomb-zstd'], [CompressionTypes.GZIP, 'bomb-gzip']] as const) {
        await producer.send({ topic: names.topic, acks: -1, compression, messages: [{ key: 'k', value: Buffer.alloc(8_000_000, 0x20), headers: { 'test-seq': seq } }] });
      }
      await producer.send({ topic: names.topic, acks: -1, messages: [{ key: 'k', value: valid(19, 'after-the-bombs') }] });
    } finally {
      await producer.disconnect();
    }
    await waitFor('the message after the bombs', async () => (await stored(app, 'after-the-bombs')) === 1, 60_000);
    const letters = await readTopic(kafka, names.dlq);
    expect(letters).toHaveLength(2);
    for (const l of letters) {
      expect(l.headers['x-error-kind']).toBe('undecodable-batch');
      expect(l.headers['x-error']).toMatch(/-compressed batch of \d+ bytes inflates past 4194304 bytes/);
      expect(l.value).toBeNull();
    }
    expect(letters.map((l) => l.headers['x-error'])).toEqual([expect.stringContaining('the zstd-'), expect.stringContaining('the gzip-')]);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
  }, 120_000);
});

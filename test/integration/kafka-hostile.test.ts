import { type Admin, type Kafka } from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { BAD_LINES, deepMetadataLine, message } from '../support/hostile';
import { groupLag, kafkaEnv, kafkaNames, produce, produceWithJavaClient, readTopic, testKafka, waitFor, type KafkaNames, type Outgoing } from '../support/kafka-fixtures';

/**
 * Poison messages, stalls and compressed batches on the real broker, as an attacker or an
 * unlucky producer would send them. The promises checked: a poison message reaches the DLQ
 * with its reason and the partition moves on (later messages stored); a partition that stops
 * making progress makes /readyz fail with the reason and shows in the lag metrics; batches
 * compressed with lz4, snappy or zstd by the Java client are consumed, and a batch the
 * consumer cannot decode is dead-lettered without stopping it.
 */

const count = async (app: TestApp, like = '%'): Promise<number> =>
  ((await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE external_id LIKE $1`, [like])) as { n: number }[])[0]!.n;

const metric = async (app: TestApp, name: string, labels: Record<string, string>): Promise<number | null> => {
  const text = await (await fetch(`${app.url}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const got = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(line.split(' ').at(-1));
  }
  return null;
};

async function cleanup(admin: Admin, names: KafkaNames): Promise<void> {
  await admin.deleteTopics({ topics: names.all }).catch(() => undefined);
}

describe('Kafka: poison messages never stall a partition', () => {
  const names = kafkaNames('poison');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'ingest', KAFKA_STALL_TIMEOUT_MS: '3000' }), 'kafkapoison');
    // A rule of the database that the edge does not know: PostgreSQL refuses such a line itself.
    await app.db.ds.query(`ALTER TABLE interaction ADD CONSTRAINT test_refused CHECK (text NOT LIKE '%refused-by-the-database%')`);
  });

  afterAll(async () => {
    await app?.close();
    await cleanup(admin, names);
    await admin?.disconnect();
  });

  it('dead-letters metadata nested 5,000 deep and stores the 300 messages after it on its partition', async () => {
    const stream: Outgoing[] = [{ key: 'same-author', value: deepMetadataLine(message(1_000_000, { externalId: 'deep-poison' }), 5_000), headers: { 'test-seq': 'poison' } }];
    for (let i = 1; i <= 300; i++) stream.push({ key: 'same-author', value: JSON.stringify(message(1_000_000 + i, { externalId: `deep-after-${i}` })) });
    await produce(kafka, names.topic, stream);
    await waitFor('the 300 later messages', async () => (await count(app, 'deep-after-%')) === 300, 120_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 60_000);
    const letters = (await readTopic(kafka, names.dlq)).filter((l) => l.headers['test-seq'] === 'poison');
    expect(letters).toHaveLength(1);
    expect(letters[0]!.headers['x-error-kind']).toBe('invalid-value');
    expect(letters[0]!.headers['x-error']).toBe('metadata: nested deeper than 32 levels (EARSHOT_INGEST_MAX_METADATA_DEPTH)');
    expect(letters[0]!.value!.length).toBeGreaterThan(5_000 * 5);
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
  });

  it('dead-letters every poison kind with its reason, one message alone, and stores every valid one', { timeout: 180_000 }, async () => {
    const poisons: { out: Outgoing; kind: string; reason: RegExp }[] = [
      ...BAD_LINES.map((b, k) => ({ out: { key: `p${k}`, value: b.line(2_000_000 + k) }, kind: 'invalid-value', reason: b.reason })),
      { out: { key: 'utf8', value: Buffer.concat([Buffer.from('{"text":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]) }, kind: 'invalid-encoding', reason: /not valid UTF-8/ },
      { out: { key: 'db', value: JSON.stringify(message(2_000_100, { text: 'this one is refused-by-the-database' })) }, kind: 'rejected-by-database', reason: /SQLSTATE 23514/ },
      { out: { key: 'empty', value: null }, kind: 'empty', reason: /no value/ },
      { out: { key: 'json', value: '{"source":' }, kind: 'malformed-json', reason: /^malformed JSON/ },
    ];
    const stream: Outgoing[] = [];
    let valid = 0;
    // 2,000 messages over three partitions, the poisons spread among them
    for (let i = 0; stream.length < 2_000; i++) {
      const p = i % 140 === 70 ? poisons[(i / 140) | 0] : undefined;
      if (p) stream.push({ ...p.out, headers: { 'test-seq': `poison-${(i / 140) | 0}` } });
      else {
        stream.push({ key: `a${i % 17}`, value: JSON.stringify(message(3_000_000 + i, { externalId: `mixed-${i}` })) });
        valid++;
      }
    }
    expect(stream.filter((s) => s.headers)).toHaveLength(poisons.length);
    await produce(kafka, names.topic, stream);
    await waitFor('every valid message stored', async () => (await count(app, 'mixed-%')) === valid, 150_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 60_000);
    const letters = (await readTopic(kafka, names.dlq)).filter((l) => l.headers['test-seq']?.startsWith('poison-'));
    expect(letters).toHaveLength(poisons.length);
    for (const l of letters) {
      const p = poisons[Number(l.headers['test-seq']!.slice('poison-'.length))]!;
      expect(l.headers['x-error-kind'], l.headers['x-error']).toBe(p.kind);
      expect(l.headers['x-error']).toMatch(p.reason);
      expect(l.value === null ? null : l.value.toString('base64')).toBe(p.out.value === null ? null : Buffer.from(p.out.value).toString('base64'));
    }
    expect(await metric(app, 'earshot_kafka_dead_letters_total', { topic: names.topic, kind: 'rejected-by-database' })).toBe(1);
  });

  it('reports a partition that makes no progress in /readyz and in the lag metrics, and recovers', { timeout: 120_000 }, async () => {
    // A session holding the table against writes (reads still pass, so other jobs and /readyz
    // keep their connections) makes every insert wait: the partition stalls on a real database.
    const holder = new pg.Client({ connectionString: app.database.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE interaction IN EXCLUSIVE MODE');
      const produced = Date.now();
      await produce(kafka, names.topic, Array.from({ length: 50 }, (_, i) => ({ key: 'stall', value: JSON.stringify(message(4_000_000 + i, { externalId: `stall-${i}` })) })));
      const reason = await waitFor(
        '/readyz to report the stalled partition',
        async () => {
          const res = await fetch(`${app.url}/readyz`, { signal: AbortSignal.timeout(5_000) });
          const body = (await res.json()) as { reason?: string };
          return res.status === 503 && /stalled for/.test(body.reason ?? '') ? body.reason! : null;
        },
        60_000,
        100,
      );
      const detectedMs = Date.now() - produced;
      expect(reason).toMatch(new RegExp(`^kafka consumer: partition \\d of ${names.topic.replace(/\./g, '\\.')} stalled for \\d+ s \\(processing a batch\\)$`));
      // no connection strings, hosts or stack traces in the reason
      expect(reason).not.toMatch(/postgres|127\.0\.0\.1|Error|at /);
      const partition = /partition (\d)/.exec(reason)![1]!;
      expect(await metric(app, 'earshot_kafka_consumer_lag', { topic: names.topic, partition })).toBeGreaterThan(0);
      expect(await metric(app, 'earshot_kafka_partition_stalled_seconds', { topic: names.topic, partition })).toBeGreaterThanOrEqual(3);
      console.info(`kafka-hostile: stall detected ${detectedMs} ms after producing (KAFKA_STALL_TIMEOUT_MS=3000)`);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    await waitFor('the stalled messages stored', async () => (await count(app, 'stall-%')) === 50, 60_000);
    await waitFor('/readyz ready again', async () => (await fetch(`${app.url}/readyz`)).status === 200, 30_000);
    await waitFor('lag back to 0', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
  });
});

describe('Kafka: batches compressed by the Java producer', () => {
  const names = kafkaNames('codecs');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'ingest' }), 'kafkacodecs');
  });

  afterAll(async () => {
    await app?.close();
    await cleanup(admin, names);
    await admin?.disconnect();
  });

  // Each test checks after its own batch that nothing was dead-lettered and the consumer never
  // restarted: a separate test for that passed with nothing consumed when CI's shuffle ran it first.
  for (const codec of ['lz4', 'snappy', 'zstd', 'gzip']) {
    it(`consumes ${codec} batches, dead-letters nothing and never restarts the consumer`, { timeout: 120_000 }, async () => {
      const messages = Array.from({ length: 500 }, (_, i) => ({ key: `k${i % 7}`, value: JSON.stringify(message(5_000_000 + i, { externalId: `${codec}-${i}` })) }));
      await produceWithJavaClient(names.topic, codec, messages);
      await waitFor(`the ${codec} messages stored`, async () => (await count(app, `${codec}-%`)) === 500, 90_000);
      await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 60_000);
      expect(await readTopic(kafka, names.dlq)).toEqual([]);
      expect(await metric(app, 'earshot_kafka_consumer_restarts_total', {})).toBeNull();
    });
  }
});

describe('Kafka: a batch in a codec the consumer cannot decode', () => {
  const names = kafkaNames('nocodec');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    // As on a platform where the lz4 binary does not load: lz4 is not registered.
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'ingest', KAFKA_COMPRESSION_CODECS: 'snappy,zstd', KAFKA_TOPIC_PARTITIONS: '1' }), 'kafkanocodec');
  });

  afterAll(async () => {
    await app?.close();
    await cleanup(admin, names);
    await admin?.disconnect();
  });

  it('dead-letters each message of the batch with the reason and consumes what follows', { timeout: 120_000 }, async () => {
    const lz4 = Array.from({ length: 20 }, (_, i) => ({ key: 'k', value: JSON.stringify(message(6_000_000 + i, { externalId: `lz4-${i}` })) }));
    const after = Array.from({ length: 10 }, (_, i) => ({ key: 'k', value: JSON.stringify(message(6_100_000 + i, { externalId: `after-${i}` })) }));
    await produceWithJavaClient(names.topic, 'lz4', lz4);
    await produceWithJavaClient(names.topic, 'snappy', after);
    await waitFor('the messages after the lz4 batch', async () => (await count(app, 'after-%')) === 10, 90_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 60_000);
    expect(await count(app, 'lz4-%')).toBe(0);
    const letters = await readTopic(kafka, names.dlq);
    expect(letters.map((l) => Number(l.headers['x-original-offset'])).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    for (const l of letters) {
      expect(l.headers['x-error-kind']).toBe('undecodable-batch');
      expect(l.headers['x-error']).toMatch(/^the batch is compressed with lz4, which this consumer cannot decode: lz4 is not enabled \(KAFKA_COMPRESSION_CODECS\) \(batch offsets 0-19\)$/);
    }
    expect(await metric(app, 'earshot_kafka_dead_letters_total', { topic: names.topic, kind: 'undecodable-batch' })).toBe(20);
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
  });
});

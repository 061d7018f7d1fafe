import { type Admin, type Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, startTestApp, type TestApp } from '../support/app';
import { groupLag, kafkaEnv, kafkaNames, produce, readTopic, testKafka, waitFor, type Outgoing } from '../support/kafka-fixtures';

const TOTAL = 10_000;
const MAX_TEXT = 2_048;

interface Bad {
  kind: string;
  reason: RegExp;
  out: Outgoing;
}

/**
 * 10,000 messages: valid ones, redeliveries of valid ones (some with changed text), and
 * every kind of message that can never be processed, shuffled over three partitions.
 */
function mixedStream(): { stream: Outgoing[]; valid: Set<string>; bad: Map<string, Bad> } {
  const stream: Outgoing[] = [];
  const valid = new Set<string>();
  const bad = new Map<string, Bad>();
  const badKinds: ((i: number) => Bad)[] = [
    (i) => ({ kind: 'malformed-json', reason: /^malformed JSON/, out: { key: `bad-${i}`, value: `{"source":"x","externalId":"broken-${i}",` } }),
    (i) => ({ kind: 'schema-violation', reason: /missing required field 'text'/, out: { key: `bad-${i}`, value: JSON.stringify({ ...message(900_000 + i), text: undefined }) } }),
    (i) => ({ kind: 'schema-violation', reason: /source: must be one of/, out: { key: `bad-${i}`, value: JSON.stringify(message(900_000 + i, { source: 'myspace' })) } }),
    (i) => ({ kind: 'too-large', reason: /longer than the limit of 2048 bytes/, out: { key: `bad-${i}`, value: JSON.stringify(message(900_000 + i, { text: 'é'.repeat(MAX_TEXT) })) } }),
    (i) => ({ kind: 'empty', reason: /no value/, out: { key: `bad-${i}`, value: null } }),
    // Valid JSON and schema, but PostgreSQL cannot store a NUL character in text.
    (i) => ({ kind: 'rejected-by-database', reason: /0x00|\\u0000/, out: { key: `bad-${i}`, value: JSON.stringify(message(900_000 + i, { text: 'nul \u0000 inside' })) } }),
  ];
  let n = 0;
  for (let i = 0; stream.length < TOTAL; i++) {
    if (i % 50 === 7) {
      const b = badKinds[(i / 50) % badKinds.length | 0]!(i);
      b.out.headers = { 'test-seq': String(i) };
      bad.set(String(i), b);
      stream.push(b.out);
    } else if (i % 25 === 3 && n > 10) {
      // a redelivery of an earlier message: same (source, externalId), sometimes other text
      const k = (i * 7919) % n;
      const m = message(k, i % 2 === 0 ? { text: 'edited later, must not replace the first' } : {});
      stream.push({ key: `user${k % 997}`, value: JSON.stringify(m), headers: { 'test-seq': String(i) } });
    } else {
      const m = message(n);
      valid.add(`x:ext-${n}`);
      stream.push({ key: `user${n % 997}`, value: JSON.stringify(m), headers: { 'test-seq': String(i) } });
      n++;
    }
  }
  return { stream, valid, bad };
}

describe('Kafka consumer: 10,000 messages with malformed ones and duplicates', () => {
  const names = kafkaNames('ingest');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'ingest', EARSHOT_INGEST_MAX_TEXT_BYTES: String(MAX_TEXT) }), 'kafkaingest');
  });

  afterAll(async () => {
    await app?.close();
    await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin?.disconnect();
  });

  it('stores exactly the valid distinct ones and dead-letters exactly the malformed ones, each with its reason', async () => {
    const { stream, valid, bad } = mixedStream();
    expect(stream).toHaveLength(TOTAL);
    const started = Date.now();
    await produce(kafka, names.topic, stream);
    await waitFor('the group to commit every offset', async () => (await groupLag(admin, names.group, names.topic)) === 0, 120_000, 250);
    const elapsed = Date.now() - started;

    const rows = (await app.db.ds.query(`SELECT source || ':' || external_id AS k, text FROM interaction`)) as { k: string; text: string }[];
    expect(rows).toHaveLength(valid.size);
    expect(new Set(rows.map((r) => r.k))).toEqual(valid);
    expect(rows.some((r) => r.text.startsWith('edited later'))).toBe(false);

    const letters = await readTopic(kafka, names.dlq);
    expect(letters).toHaveLength(bad.size);
    const bySeq = new Map(stream.map((s) => [String(s.headers?.['test-seq']), s]));
    for (const l of letters) {
      const seq = l.headers['test-seq']!;
      const expected = bad.get(seq);
      expect(expected, `DLQ holds seq ${seq}, which was not malformed`).toBeDefined();
      expect(l.headers['x-error-kind']).toBe(expected!.kind);
      expect(l.headers['x-error']).toMatch(expected!.reason);
      expect(l.headers['x-original-topic']).toBe(names.topic);
      expect(Number(l.headers['x-original-partition'])).toBeGreaterThanOrEqual(0);
      expect(l.headers['x-original-offset']).toMatch(/^\d+$/);
      expect(Number.isNaN(Date.parse(l.headers['x-original-timestamp']!))).toBe(false);
      expect(Number.isNaN(Date.parse(l.headers['x-failed-at']!))).toBe(false);
      // the original bytes and key, unchanged
      const original = bySeq.get(seq)!;
      expect(l.value === null ? null : l.value.toString('utf8')).toBe(original.value === null ? null : original.value.toString());
      expect(l.key).toBe(original.key);
    }
    expect(new Set(letters.map((l) => l.headers['test-seq']))).toEqual(new Set(bad.keys()));

    // Every accepted interaction produced exactly one enriched event: nothing was processed twice.
    const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'interactions.enriched.v1'`)) as { n: number }[];
    expect(n).toBe(valid.size);

    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`earshot_kafka_messages_total\\{topic="${names.topic.replace(/\./g, '\\.')}",result="accepted"\\} ${valid.size}`));
    expect(metrics).toMatch(/earshot_kafka_dead_letters_total\{[^}]*kind="rejected-by-database"\} \d+/);
    expect(metrics).toMatch(/earshot_kafka_consumer_lag\{[^}]*\} 0/);
    const ready = await fetch(`${app.url}/readyz`);
    expect(ready.status).toBe(200);
    console.info(`kafka-ingest: ${TOTAL} messages produced and committed in ${elapsed} ms`);
  });

  it('reports not ready once its consumer no longer consumes', async () => {
    // its own instance, topics and group: the other test's consumer keeps consuming, in any order
    const own = kafkaNames('ingest-ready');
    const other = await startTestApp(kafkaEnv(own, { EARSHOT_ROLES: 'ingest' }), 'kafkaready');
    try {
      await waitFor('consumer', async () => other.kafka?.health() === null);
      await other.kafka!.consumer.stop();
      const res = await fetch(`${other.url}/readyz`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { reason: string }).reason).toMatch(/kafka consumer is stopped/);
    } finally {
      await other.close();
      await admin.deleteTopics({ topics: own.all }).catch(() => undefined);
    }
  });
});

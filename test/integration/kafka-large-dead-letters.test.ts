import type { Admin, Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, startTestApp, type TestApp } from '../support/app';
import { groupLag, kafkaEnv, kafkaNames, produce, readTopic, stopAndDropTopics, testKafka, waitFor, type KafkaNames } from '../support/kafka-fixtures';

// Dead letters keep the original bytes, so a chunk's letters can weigh more than the broker takes
// in one record batch (`message.max.bytes`, 1,048,588 bytes by default): a few texts over
// EARSHOT_INGEST_MAX_TEXT_BYTES, or a few hundred malformed messages of 8 kB. They were one
// request, the broker refused it, and the consumer retried it for ever while the partition stalled.
// Now they go in requests of at most KAFKA_MAX_REQUEST_BYTES, and a letter too large on its own
// goes without its value (`x-value-dropped` says where to find it).

const stored = async (app: TestApp, externalId: string): Promise<boolean> =>
  ((await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE external_id = $1`, [externalId])) as { n: number }[])[0]!.n === 1;

/** Earshot's ingest role on its own topics; `maxMessageBytes` makes a topic first, as an operator would, with its own limit. */
async function setUp(names: KafkaNames, label: string, maxMessageBytes: { dlq?: number; input?: number } = {}): Promise<{ kafka: Kafka; admin: Admin; app: TestApp }> {
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  for (const [topic, limit] of [[names.dlq, maxMessageBytes.dlq], [names.topic, maxMessageBytes.input]] as const) {
    if (limit === undefined) continue;
    await admin.createTopics({ topics: [{ topic, numPartitions: 3, configEntries: [{ name: 'max.message.bytes', value: String(limit) }] }], waitForLeaders: true });
  }
  const app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'ingest' }), label);
  return { kafka, admin, app };
}

describe('Kafka: dead letters larger than one request', () => {
  const names = kafkaNames('largeletters');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    ({ kafka, admin, app } = await setUp(names, 'largeletters'));
  });

  afterAll(() => stopAndDropTopics(app, admin, names));

  it('texts over the limit, 200 malformed messages of 8 kB and one of 1 MB reach the DLQ; the partition moves on', async () => {
    const key = 'one-author';
    const overLimit = Array.from({ length: 6 }, (_, i) => ({ key, value: JSON.stringify(message(i, { externalId: `long-${i}`, text: `${'word '.repeat(60_000)}${i}` })) }));
    const malformed = Array.from({ length: 200 }, (_, i) => ({ key, value: `{"not json": ${'x'.repeat(8_000)} ${i}` }));
    // 1,048,400 bytes: under KAFKA_MAX_MESSAGE_BYTES, so it is read and found malformed; with the
    // letter's headers it is more than the broker takes
    const huge = { key, value: `{${'y'.repeat(1_048_399)}` };
    // the test's own producer stays under the broker's limit per request
    await produce(kafka, names.topic, overLimit, 2);
    await produce(kafka, names.topic, malformed, 50);
    await produce(kafka, names.topic, [huge], 1);
    await produce(kafka, names.topic, [{ key, value: JSON.stringify(message(1_000, { externalId: 'after-the-letters' })) }]);

    await waitFor('the message after the letters', () => stored(app, 'after-the-letters'), 120_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 60_000);
    const letters = await readTopic(kafka, names.dlq, 60_000);
    expect(letters).toHaveLength(207);
    const byOffset = new Map(letters.map((l) => [Number(l.headers['x-original-offset']), l]));
    // offsets 0-5 over the text limit, 6-205 malformed, 206 the huge one: the first two kinds whole
    for (let i = 0; i < 6; i++) expect(byOffset.get(i)!.value!.toString('utf8')).toBe(overLimit[i]!.value);
    for (let i = 0; i < 200; i++) {
      expect(byOffset.get(6 + i)!.value!.toString('utf8')).toBe(malformed[i]!.value);
      expect(byOffset.get(6 + i)!.headers['x-error-kind']).toBe('malformed-json');
    }
    const dropped = byOffset.get(206)!;
    expect(dropped.value).toBeNull();
    expect(dropped.key).toBe(key);
    expect(dropped.headers['x-error-kind']).toBe('malformed-json');
    expect(dropped.headers['x-value-dropped']).toMatch(/^the letter was \d+ bytes .* re-produce offset 206 of partition \d+ of test\.largeletters\./);
  }, 240_000);
});

describe('Kafka: a dead-letter topic that takes smaller records than KAFKA_MAX_REQUEST_BYTES', () => {
  const names = kafkaNames('smalldlq');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    // a dead-letter topic that takes records of 20 kB at most
    ({ kafka, admin, app } = await setUp(names, 'smalldlq', { dlq: 20_000 }));
  });

  afterAll(() => stopAndDropTopics(app, admin, names));

  it('refused requests are sent again in halves; a letter refused alone goes without its value', async () => {
    const key = 'another-author';
    const malformed = Array.from({ length: 30 }, (_, i) => ({ key, value: i === 12 ? `[${'z'.repeat(40_000)}` : `{"broken": ${'x'.repeat(4_000)} ${i}` }));
    await produce(kafka, names.topic, malformed, 10);
    await produce(kafka, names.topic, [{ key, value: JSON.stringify(message(2_000, { externalId: 'after-the-small-dlq' })) }]);
    await waitFor('the message after the letters', () => stored(app, 'after-the-small-dlq'), 120_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 60_000);
    const letters = await readTopic(kafka, names.dlq, 60_000);
    // a refused request may have been written for other partitions first: same letter twice (at least once)
    const byOffset = new Map(letters.map((l) => [Number(l.headers['x-original-offset']), l]));
    expect([...byOffset.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    for (let i = 0; i < 30; i++) {
      if (i === 12) {
        expect(byOffset.get(i)!.value).toBeNull();
        expect(byOffset.get(i)!.headers['x-value-dropped']).toContain('re-produce offset 12 of partition');
      } else expect(byOffset.get(i)!.value!.toString('utf8')).toBe(malformed[i]!.value);
    }
  }, 240_000);
});

describe('Kafka: an input topic that takes messages larger than KAFKA_MAX_MESSAGE_BYTES', () => {
  const names = kafkaNames('biginput');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    // an input topic that takes records of up to 3 MB
    ({ kafka, admin, app } = await setUp(names, 'biginput', { input: 3_000_000 }));
  });

  afterAll(() => stopAndDropTopics(app, admin, names));

  it('a 2 MB message is dead-lettered as too large, without its value, and the partition moves on', async () => {
    const key = 'big-author';
    await produce(kafka, names.topic, [{ key, value: JSON.stringify(message(3_000, { externalId: 'two-megabytes', metadata: { blob: 'b'.repeat(2_000_000) } })) }], 1);
    await produce(kafka, names.topic, [{ key, value: JSON.stringify(message(3_001, { externalId: 'after-the-big-one' })) }]);
    await waitFor('the message after the big one', () => stored(app, 'after-the-big-one'), 120_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 60_000);
    expect(await stored(app, 'two-megabytes')).toBe(false);
    const [letter, ...more] = await readTopic(kafka, names.dlq, 60_000);
    expect(more).toHaveLength(0);
    expect(letter!.headers['x-error-kind']).toBe('too-large');
    expect(letter!.headers['x-error']).toMatch(/over the limit of 1048576 \(KAFKA_MAX_MESSAGE_BYTES\)/);
    expect(letter!.value).toBeNull();
    expect(letter!.headers['x-value-dropped']).toMatch(/^the letter was 20\d{5} bytes .* re-produce offset 0 of partition \d of test\.biginput\./);
  }, 240_000);
});


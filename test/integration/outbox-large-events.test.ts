import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, readTopic, testKafka, waitFor, type KafkaNames } from '../support/kafka-fixtures';

// A broker refuses a record batch over its `message.max.bytes` (1,048,588 bytes by default), and
// a refused request was retried for ever while every event after it waited. 500 reviews of 8 kB
// are one ingest batch, one outbox row and one chunk of 500 events: 1.4 MB per partition. The
// relay now sends a chunk in requests of at most KAFKA_MAX_REQUEST_BYTES, and an event
// too large on its own is logged, counted and left out, not retried for ever.

async function closeAndDropTopics(app: TestApp | undefined, kafka: Kafka | undefined, names: KafkaNames): Promise<void> {
  await app?.close();
  const admin = kafka?.admin();
  await admin?.connect();
  await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
  await admin?.disconnect();
}

describe('outbox relay: events that do not fit in one Kafka request', () => {
  const names = kafkaNames('largeevents');
  let kafka: Kafka;
  let app: TestApp;

  beforeAll(async () => {
    kafka = testKafka();
    // first a service without Kafka: it stores and writes the outbox, and nothing publishes yet
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest' }, 'largeevents');
  });

  afterAll(() => closeAndDropTopics(app, kafka, names));

  const post = async (lines: unknown[]) => {
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(res.status).toBe(200);
    return (await res.json()) as { accepted: number; rejected: { line: number; error: string }[] };
  };
  const unsent = async () => ((await app.db.ds.query(`SELECT count(*)::int AS n FROM outbox_batch WHERE sent_at IS NULL`)) as { n: number }[])[0]!.n;
  const metric = async (name: string) => {
    const text = await (await fetch(`${app.url}/metrics`)).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) && l.includes('interactions.enriched.v1'))
      .reduce((a, l) => a + Number(l.split(' ').at(-1)), 0);
  };

  it('500 reviews of 8 kB in one batch are all published; an event over the limit on its own is left out and holds nothing back', async () => {
    const review = (i: number) => `${'The parcel came late and the box was crushed. '.repeat(180)}(review ${i})`;
    expect((await post(Array.from({ length: 500 }, (_, i) => message(i, { author: { handle: `reviewer${i}` }, text: review(i) })))).accepted).toBe(500);
    // 256 kB of a control character that JSON writes as \u0001: a 1.5 MB event. Without Kafka
    // output the edge takes it (there is no event to make).
    const huge = `odd ${'\u0001'.repeat(256 * 1024 - 20)}`;
    expect((await post([message(900, { author: { handle: 'controlchars' }, text: huge })])).accepted).toBe(1);
    expect((await post([message(901, { author: { handle: 'after' }, text: 'Thanks, all sorted now!' })])).accepted).toBe(1);
    // Then the service with Kafka, on the same database: its relay publishes what was stored. Its
    // customer event is small and is published; the line after it must not wait behind it.
    await app.stop();
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'api,ingest' }), 'largeevents', app.database);
    await waitFor('every outbox row to be published', async () => (await unsent()) === 0, 90_000);
    // with Kafka output the edge refuses such a line, so that the sender hears of it
    const refused = await post([message(902, { author: { handle: 'controlchars' }, text: huge })]);
    expect(refused.accepted).toBe(0);
    expect(refused.rejected).toEqual([{ line: 1, error: expect.stringMatching(/^text: 1572\d{3} bytes as JSON \(escapes included\), more than its interactions\.enriched\.v1 event can carry \(934464 bytes/) }]);

    const enriched = await readTopic(kafka, names.enriched, 60_000);
    const texts = new Map(enriched.map((r) => [(JSON.parse(r.value!.toString('utf8')) as { externalId: string; text: string }).externalId, r]));
    expect(enriched).toHaveLength(501);
    for (let i = 0; i < 500; i++) expect((JSON.parse(texts.get(`ext-${i}`)!.value!.toString('utf8')) as { text: string }).text).toBe(review(i));
    expect(texts.has('ext-901')).toBe(true);
    expect(texts.has('ext-900')).toBe(false);
    expect(await metric('earshot_outbox_events_oversized_total')).toBe(1);
    expect(await metric('earshot_outbox_published_total')).toBe(501);
    // the customer of the oversized line still got its customer-sentiment event
    const sentiment = await readTopic(kafka, names.sentiment, 60_000);
    const [{ id: controlCustomer }] = (await app.db.ds.query(`SELECT customer_id AS id FROM interaction WHERE external_id = 'ext-900'`)) as { id: string }[];
    expect(sentiment.some((r) => r.key === controlCustomer)).toBe(true);
  }, 180_000);
});

// kafkajs keeps a partition's old sequence numbers after a refused request that other partitions
// took: its relay producer starts afresh (relay-producer.ts), so both producers are tried.
describe.each(['platformatic', 'kafkajs'] as const)('outbox relay (%s producer): an output topic whose max.message.bytes is under KAFKA_MAX_REQUEST_BYTES', (producer) => {
  const names = kafkaNames('smalltopic');
  let kafka: Kafka;
  let app: TestApp;

  beforeAll(async () => {
    kafka = testKafka();
    // an operator's topic, made before Earshot starts, that takes records of 20 kB at most
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: names.enriched, numPartitions: 3, configEntries: [{ name: 'max.message.bytes', value: '20000' }] }], waitForLeaders: true });
    await admin.disconnect();
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'api,ingest', EARSHOT_OUTBOX_PRODUCER: producer }), 'smalltopic');
  });

  afterAll(() => closeAndDropTopics(app, kafka, names));

  it('a refused request is sent again in halves, in order, down to the one event too large for the topic', async () => {
    const lines = Array.from({ length: 300 }, (_, i) =>
      message(i, { author: { handle: `writer${i % 40}` }, text: i === 150 ? `${'A long story about a lost parcel. '.repeat(900)}` : `Order ${i} arrived damaged, ${'please help. '.repeat(20)}` }),
    );
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(res.status).toBe(200);
    await waitFor('every outbox row to be published', async () => ((await app.db.ds.query(`SELECT count(*)::int AS n FROM outbox_batch WHERE sent_at IS NULL`)) as { n: number }[])[0]!.n === 0, 90_000);
    const enriched = await readTopic(kafka, names.enriched, 60_000);
    // A refused request may have been written for its other partitions. The relay's producer
    // (platformatic) says which it wrote, and only the rest is sent again in halves: each event
    // once. With kafkajs those events come again (at least once), same event id, which consumers
    // dedupe by.
    if (producer === 'platformatic') {
      const ids = enriched.map((r) => r.headers['event-id']);
      expect(new Set(ids).size, 'events written twice').toBe(ids.length);
    }
    const eventIdOf = new Map<string, string>();
    for (const r of enriched) {
      const id = (JSON.parse(r.value!.toString('utf8')) as { externalId: string }).externalId;
      expect(eventIdOf.get(id) ?? r.headers['event-id']).toBe(r.headers['event-id']);
      eventIdOf.set(id, r.headers['event-id']!);
    }
    expect(eventIdOf.size).toBe(299);
    expect(eventIdOf.has('ext-150')).toBe(false);
    // each author's events, first copies, in the order of their lines (one author, one key, one partition)
    const byAuthor = new Map<string, number[]>();
    const seen = new Set<string>();
    for (const r of [...enriched].sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset))) {
      if (seen.has(r.headers['event-id']!)) continue;
      seen.add(r.headers['event-id']!);
      const v = JSON.parse(r.value!.toString('utf8')) as { externalId: string; customerId: string };
      const list = byAuthor.get(v.customerId) ?? [];
      list.push(Number(v.externalId.slice(4)));
      byAuthor.set(v.customerId, list);
    }
    expect(byAuthor.size).toBe(40);
    for (const list of byAuthor.values()) expect(list).toEqual([...list].sort((a, b) => a - b));
    const text = await (await fetch(`${app.url}/metrics`)).text();
    expect(text).toMatch(new RegExp(`earshot_outbox_events_oversized_total\\{topic="${names.enriched.replace(/\./g, '\\.')}"\\} 1\\b`));
  }, 180_000);
});


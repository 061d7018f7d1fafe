import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../src/config/config';
import { topicSpecs } from '../../src/ingest/kafka-client';
import { metricsSink, OutboxRelay } from '../../src/outbox/outbox-relay';
import { PlatformaticRelayProducer } from '../../src/outbox/relay-producer';
import { createLogger } from '../../src/shared/logger';
import { Metrics } from '../../src/shared/metrics';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, readTopic, testBrokers, testKafka, waitFor, type KafkaNames } from '../support/kafka-fixtures';
import { KafkaProxy } from '../support/kafka-proxy';

// The relay publishes the outbox in row order and retried a failing row for ever: one row that
// could never be published (its topic deleted by hand, an event the producer refuses) held back
// every row after it, of every topic, for ever. Such a row is now parked once it has failed a few
// times on its own while the row after it goes out; a broker outage, where the row after it fails
// as well, parks nothing.

interface Row {
  id: string;
  attempts: number;
  sent: boolean;
  parked: boolean;
  last_error: string | null;
}

/** The service without Kafka writes the outbox; the test's own relay publishes it, with its own settings. */
async function startRelay(app: TestApp, settings: Config['kafka'], metrics: Metrics, label: string): Promise<OutboxRelay> {
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'error', { component: 'outbox-relay' });
  // two retries inside the producer: a failure reaches the relay in 2 s, not after 40 s of retries
  // (@platformatic/kafka 2.12 never settles a send to an unknown topic with 0 or 1 retries)
  const producer = new PlatformaticRelayProducer(settings, label, { retries: 2 });
  const relay = new OutboxRelay(producer, { url: app.database.url }, settings, metricsSink(metrics), log, { parkAfterAttempts: 2, parkedRetryMs: 300 });
  await relay.start();
  return relay;
}

function kafkaSettings(app: TestApp, names: KafkaNames, brokers: string): Config['kafka'] {
  return loadConfig({ NODE_ENV: 'test', DATABASE_URL: app.database.url, ...kafkaEnv(names, { KAFKA_BROKERS: brokers }) }).kafka;
}

async function createTopics(kafka: Kafka, settings: Config['kafka'], except: string[] = []): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: topicSpecs(settings).filter((t) => t.topic.startsWith(settings.outputTopicPrefix) && !except.includes(t.topic)), waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

async function dropTopics(kafka: Kafka | undefined, names: KafkaNames): Promise<void> {
  const admin = kafka?.admin();
  await admin?.connect();
  await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
  await admin?.disconnect();
}

async function gauge(metrics: Metrics, name: string): Promise<number> {
  const m = await metrics.registry.getSingleMetric(name)!.get();
  return m.values[0]?.value ?? 0;
}

function harness(get: () => TestApp) {
  const post = async (lines: unknown[]) => {
    const res = await fetch(`${get().url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(res.status).toBe(200);
    return (await res.json()) as { accepted: number };
  };
  const rows = async (): Promise<Row[]> =>
    (await get().db.ds.query(`SELECT id, attempts, sent_at IS NOT NULL AS sent, parked_at IS NOT NULL AS parked, last_error FROM outbox_batch ORDER BY id`)) as Row[];
  const lastRow = async (): Promise<Row> => (await rows()).at(-1)!;
  return { post, rows, lastRow };
}

describe('outbox relay: a row that fails on its own is parked, and the rows after it are published', () => {
  const names = kafkaNames('parkedrow');
  let kafka: Kafka;
  let app: TestApp;
  let relay: OutboxRelay | undefined;
  const metrics = new Metrics();
  const { post, rows, lastRow } = harness(() => app);

  beforeAll(async () => {
    kafka = testKafka();
    app = await startTestApp({}, 'parkedrow');
  });

  afterAll(async () => {
    await relay?.stop(0);
    await app?.close();
    await dropTopics(kafka, names);
  });

  it('an erasure whose topic an operator deleted holds nothing back, and goes out once the topic is back', async () => {
    const settings = kafkaSettings(app, names, testBrokers());
    const erasureTopic = `${names.prefix}customer-erasure.v1`;
    // every output topic but the erasures' (deleted by hand; Earshot creates topics only at start)
    await createTopics(kafka, settings, [erasureTopic]);
    relay = await startRelay(app, settings, metrics, 'parkedrow');

    expect((await post([message(1, { author: { handle: 'alpha' } })])).accepted).toBe(1);
    await waitFor('the first row to be published', async () => (await lastRow()).sent);
    const [{ id: alpha }] = (await app.db.ds.query(`SELECT customer_id AS id FROM interaction WHERE external_id = 'ext-1'`)) as { id: string }[];
    const erased = await app.gql(`mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-7") { id } }`, { id: Buffer.from(`Customer:${alpha}`).toString('base64url') });
    expect(erased.errors).toBeUndefined();
    const erasure = await lastRow();
    await waitFor('the erasure row to fail', async () => (await rows()).find((r) => r.id === erasure.id)!.attempts >= 1);

    // interactions after it: before, they waited for ever behind the erasure
    expect((await post([message(2, { author: { handle: 'beta' } })])).accepted).toBe(1);
    expect((await post([message(3, { author: { handle: 'gamma' } })])).accepted).toBe(1);
    await waitFor('the rows after the erasure to be published', async () => (await rows()).filter((r) => BigInt(r.id) > BigInt(erasure.id)).every((r) => r.sent), 60_000);
    const parked = (await rows()).find((r) => r.id === erasure.id)!;
    expect(parked).toMatchObject({ sent: false, parked: true });
    expect(parked.attempts).toBeGreaterThanOrEqual(2);
    expect(parked.last_error).toMatch(/Unknown topic/);
    expect(await gauge(metrics, 'earshot_outbox_rows_parked')).toBe(1);
    const enriched = await readTopic(kafka, names.enriched, 30_000);
    expect(new Set(enriched.map((r) => (JSON.parse(r.value!.toString('utf8')) as { externalId: string }).externalId))).toEqual(new Set(['ext-1', 'ext-2', 'ext-3']));

    // the operator creates the topic again: the parked row is retried and published, nothing lost
    await createTopics(kafka, settings, topicSpecs(settings).map((t) => t.topic).filter((t) => t !== erasureTopic));
    await waitFor('the parked row to be published', async () => (await rows()).every((r) => r.sent), 60_000);
    expect(await gauge(metrics, 'earshot_outbox_rows_parked')).toBe(0);
    const erasures = await readTopic(kafka, erasureTopic, 30_000);
    expect(erasures.map((r) => (JSON.parse(r.value!.toString('utf8')) as { customerId: string }).customerId)).toEqual([alpha]);
    const sentiment = await readTopic(kafka, names.sentiment, 30_000);
    expect(sentiment.filter((r) => r.key === alpha).at(-1)!.value).toBeNull();
  }, 180_000);
});

describe('outbox relay: the broker away for a while, then back', () => {
  const names = kafkaNames('brokeraway');
  let kafka: Kafka;
  let app: TestApp;
  let relay: OutboxRelay | undefined;
  let proxy: KafkaProxy;
  const metrics = new Metrics();
  const { post, rows } = harness(() => app);

  beforeAll(async () => {
    kafka = testKafka();
    app = await startTestApp({}, 'brokeraway');
    const [host, port] = testBrokers().split(',')[0]!.split(':');
    proxy = new KafkaProxy(host!, Number(port));
    await proxy.listen();
  });

  afterAll(async () => {
    await relay?.stop(0);
    await proxy?.cut();
    await app?.close();
    await dropTopics(kafka, names);
  });

  it('parks nothing, loses nothing, and keeps each key in order', async () => {
    const settings = kafkaSettings(app, names, proxy.brokers);
    await createTopics(kafka, settings);
    relay = await startRelay(app, settings, metrics, 'brokeraway');
    const authors = ['ann', 'bob', 'cyd'];
    let n = 0;
    // written now: no listening-gap item is overdue, so no escalation adds rows of its own
    const batch = () => authors.map((a) => message(++n, { author: { handle: a }, occurredAt: new Date().toISOString() }));
    expect((await post(batch())).accepted).toBe(3);
    await waitFor('the first row to be published', async () => (await rows()).every((r) => r.sent));

    await proxy.cut();
    for (let i = 0; i < 6; i++) expect((await post(batch())).accepted).toBe(3);
    // The oldest row fails alone again and again, and each time the first row behind the ones that
    // failed as often fails as well (tried to tell whose failure it is) until every row has; then
    // the oldest row's failure is the last write of a cycle, and with retries seconds apart by
    // then, the broker returns while the relay waits for its next try.
    await waitFor(
      'every row after the oldest to have failed on its own, and the oldest seven times',
      async () => {
        const unsent = (await rows()).filter((r) => !r.sent);
        return unsent.length === 6 && unsent.every((r) => r.attempts >= 2) && unsent[0]!.attempts >= 7;
      },
      90_000,
      20,
    );
    await proxy.restore();
    await waitFor('every row to be published', async () => (await rows()).every((r) => r.sent), 60_000);
    expect((await rows()).filter((r) => r.parked)).toEqual([]);
    expect(await gauge(metrics, 'earshot_outbox_rows_parked')).toBe(0);

    const enriched = await readTopic(kafka, names.enriched, 30_000);
    const seen = new Set<string>();
    const byKey = new Map<string, number[]>();
    for (const r of [...enriched].sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset))) {
      // a request the broker took while its answer was lost comes again: same event id
      if (seen.has(r.headers['event-id']!)) continue;
      seen.add(r.headers['event-id']!);
      const list = byKey.get(r.key!) ?? [];
      list.push(Number((JSON.parse(r.value!.toString('utf8')) as { externalId: string }).externalId.slice(4)));
      byKey.set(r.key!, list);
    }
    expect(seen.size).toBe(n);
    expect(byKey.size).toBe(3);
    for (const list of byKey.values()) {
      expect(list).toHaveLength(7);
      expect(list).toEqual([...list].sort((a, b) => a - b));
    }
  }, 180_000);
});

import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { CompressionTypes, type Admin, type IHeaders, type Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracing, type Tracing } from '../../src/tracing/setup';
import type { TestApp } from '../support/app';
import { groupLag, kafkaEnv, kafkaNames, orderedProducer, readTopic, testKafka, waitFor, type KafkaNames, type Received } from '../support/kafka-fixtures';

// W3C trace context as a hostile producer or HTTP client writes it (src/shared/tracing.ts), with
// tracing on and off. The promises: every message is stored and its partition moves on; the
// trace context stored on an outbox row and carried by published events stays within the W3C
// limits (a tracestate of at most 32 members and 512 characters), whatever came in; `baggage`
// (which may name a person) is never carried on nor put in a span; a valid context still goes
// produced message → committed row → published event in one trace.

const SECRET = 'traced.baggage.person@example.org';
const TP = (trace: string, span = 'b7ad6b7169203331') => `00-${trace}-${span}-01`;
const VALID_STATE = 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7';

/** Every hostile kind of trace header, each on a valid message with its own externalId. */
function hostileMessages(tag: string, message: (n: number, over?: Record<string, unknown>) => Record<string, unknown>): { key: string; value: string; headers: IHeaders }[] {
  const headers: IHeaders[] = [
    { traceparent: TP('0af7651916cd43dd8448eb211c80319c').toUpperCase() },
    { traceparent: TP('00000000000000000000000000000000') },
    { traceparent: '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01' },
    { traceparent: `ff${TP('0af7651916cd43dd8448eb211c80319c').slice(2)}` },
    { traceparent: `${TP('0af7651916cd43dd8448eb211c80319c')}-extra` },
    { traceparent: `01-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-${'a'.repeat(1 << 20)}` },
    { traceparent: TP('2af7651916cd43dd8448eb211c80319c'), tracestate: `${'k=v,'.repeat(175_000)}last=1` },
    { traceparent: TP('3af7651916cd43dd8448eb211c80319c'), tracestate: `big=${'v'.repeat(1 << 20)}` },
    { traceparent: TP('4af7651916cd43dd8448eb211c80319c'), baggage: `email=${encodeURIComponent(SECRET)},${'pad=x,'.repeat(50_000)}` },
    { traceparent: Buffer.from([0xff, 0xfe, 0x00, 0xc3]), tracestate: Buffer.from([0x6b, 0x3d, 0xff, 0xfe]) },
    { ...(JSON.parse('{"__proto__":"p","constructor":"c","toString":"t"}') as IHeaders), traceparent: TP('5af7651916cd43dd8448eb211c80319c') },
    { traceparent: [TP('6af7651916cd43dd8448eb211c80319c'), TP('7af7651916cd43dd8448eb211c80319c')], tracestate: ['a=1', 'b=2'] },
  ];
  return headers.map((h, i) => ({ key: 'k', value: JSON.stringify(message(i, { externalId: `${tag}-${String.fromCharCode(97 + i)}` })), headers: h }));
}

async function produceGzip(kafka: Kafka, topic: string, messages: { key: string; value: string; headers: IHeaders }[]): Promise<void> {
  const producer = orderedProducer(kafka);
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages });
  } finally {
    await producer.disconnect();
  }
}

const externalIdOf = (r: Received) => (JSON.parse(r.value!.toString()) as { externalId: string }).externalId;

/** The W3C bounds on what is carried on: a traceparent, a tracestate of ≤ 32 members and ≤ 512 characters, no baggage. */
function expectBounded(headers: Record<string, unknown>, what: string): void {
  expect(Object.keys(headers).filter((k) => k !== 'traceparent' && k !== 'tracestate' && k !== 'event-id' && k !== 'schema-version' && k !== 'content-type'), what).toEqual([]);
  if (headers.traceparent !== undefined) expect(String(headers.traceparent), what).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
  const state = headers.tracestate === undefined ? '' : String(headers.tracestate);
  expect(state.length, what).toBeLessThanOrEqual(512);
  expect(state.split(',').length, what).toBeLessThanOrEqual(32);
  expect(JSON.stringify(headers), what).not.toContain(SECRET);
}

async function setUp(names: KafkaNames, label: string): Promise<{ kafka: Kafka; admin: Admin; app: TestApp; message: (n: number, over?: Record<string, unknown>) => Record<string, unknown> }> {
  // only now the app (and pg, node:http): with tracing on, the instrumentations patch them as they load
  const support = await import('../support/app');
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  const app = await support.startTestApp(kafkaEnv(names, { KAFKA_TOPIC_PARTITIONS: '1' }), label);
  await waitFor('consumer', async () => app.kafka?.health() === null);
  return { kafka, admin, app, message: support.message };
}

async function tearDown(app: TestApp | undefined, admin: Admin | undefined, names: KafkaNames): Promise<void> {
  await app?.close();
  await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
  await admin?.disconnect();
}

const stored = async (app: TestApp, like: string): Promise<number> =>
  ((await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE external_id LIKE $1`, [like])) as { n: number }[])[0]!.n;

const storedTraceHeaders = async (app: TestApp): Promise<(Record<string, unknown> | null)[]> =>
  ((await app.db.ds.query(`SELECT trace_headers FROM outbox_batch ORDER BY id`)) as { trace_headers: Record<string, unknown> | null }[]).map((r) => r.trace_headers);

/**
 * POST /ingest with `fetch` (undici: not traced, so our headers go as written; node:http would be
 * a traced client here that puts its own traceparent on). A repeated header goes as one line of
 * values joined by ", ", which is also what Node makes of repeated lines.
 */
async function postIngest(app: TestApp, body: string, headers: [string, string][]): Promise<number> {
  const h = new Headers({ 'content-type': 'application/x-ndjson' });
  for (const [k, v] of headers) h.append(k, v);
  const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: h, body });
  await res.arrayBuffer();
  return res.status;
}

describe('trace context from hostile headers, tracing on', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing | null = null;
  const names = kafkaNames('tchon');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;
  let message: (n: number, over?: Record<string, unknown>) => Record<string, unknown>;

  beforeAll(async () => {
    tracing = startTracing({}, { exporter });
    ({ kafka, admin, app, message } = await setUp(names, 'tchon'));
  }, 120_000);

  afterAll(async () => {
    await tearDown(app, admin, names);
    await tracing?.shutdown();
  });

  const spanText = () =>
    JSON.stringify(exporter.getFinishedSpans().map((s) => ({ n: s.name, a: s.attributes, e: s.events, l: s.links.map((l) => l.context.traceState?.serialize()), t: s.spanContext().traceState?.serialize() })));

  it('Kafka: each hostile message is stored, the partition moves on, stored and published trace context stays bounded', async () => {
    const batch = hostileMessages('tchon-k', message);
    await produceGzip(kafka, names.topic, batch);
    await waitFor('every hostile message stored', async () => (await stored(app, 'tchon-k-%')) === batch.length, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    for (const h of await storedTraceHeaders(app)) if (h) expectBounded(h, 'outbox_batch.trace_headers');
    const published = await waitFor('published', async () => {
      const got = (await readTopic(kafka, names.enriched, 5_000).catch(() => [])).filter((r) => externalIdOf(r).startsWith('tchon-k-'));
      return got.length >= batch.length ? got : null;
    });
    for (const p of published) expectBounded(p.headers, `published ${externalIdOf(p)}`);
    expect(spanText()).not.toContain(SECRET);
    for (const s of exporter.getFinishedSpans()) for (const l of s.links) expect((l.context.traceState?.serialize() ?? '').length).toBeLessThanOrEqual(512);
  }, 120_000);

  it('Kafka: a valid traceparent and tracestate still go produced message → committed row → published event; baggage is not carried', async () => {
    const traceId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    await produceGzip(kafka, names.topic, [
      { key: 'v', value: JSON.stringify(message(100, { externalId: 'tchon-valid' })), headers: { traceparent: TP(traceId, '00f067aa0ba902b7'), tracestate: VALID_STATE, baggage: `email=${encodeURIComponent(SECRET)}` } },
    ]);
    const event = await waitFor('published', async () => (await readTopic(kafka, names.enriched, 5_000).catch(() => [])).find((r) => externalIdOf(r) === 'tchon-valid') ?? null);
    expect(String(event.headers.traceparent).split('-')[1]).toBe(traceId);
    expect(event.headers.tracestate).toBe(VALID_STATE);
    expect(event.headers.baggage).toBeUndefined();
    const mine = await waitFor('spans', async () => {
      const s = exporter.getFinishedSpans().filter((x) => x.spanContext().traceId === traceId);
      return s.some((x) => x.name.endsWith('publish')) ? s : null;
    });
    expect(mine.find((s) => s.name === `${names.topic} process`)?.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(String(event.headers.traceparent).split('-')[2]).toBe(mine.find((s) => s.name === `${names.enriched} publish`)!.spanContext().spanId);
    expect(spanText()).not.toContain(SECRET);
  }, 120_000);

  it('HTTP: /ingest and GraphQL with hostile trace headers; the context is bounded, a valid one propagates, baggage is not carried', async () => {
    const line = (id: string, n: number) => JSON.stringify(message(n, { externalId: id }));
    // Node's 16 kB header limit bounds what HTTP can send: a tracestate of 3,000 members fits
    const crowded = `${VALID_STATE},${'k=v,'.repeat(3_000)}z=1`;
    const ingestTrace = 'b1b2c3d4e5f60718293a4b5c6d7e8f90';
    expect(await postIngest(app, line('tchon-h-crowded', 200), [['traceparent', TP(ingestTrace)], ['tracestate', crowded], ['baggage', `email=${encodeURIComponent(SECRET)}`]])).toBe(200);
    expect(await postIngest(app, line('tchon-h-twice', 201), [['traceparent', TP('c1b2c3d4e5f60718293a4b5c6d7e8f90')], ['traceparent', TP('d1b2c3d4e5f60718293a4b5c6d7e8f90')], ['tracestate', 'a=1'], ['tracestate', 'b=2']])).toBe(200);
    expect(await postIngest(app, line('tchon-h-upper', 202), [['traceparent', TP('e1b2c3d4e5f60718293a4b5c6d7e8f90').toUpperCase()], ['__proto__', 'p'], ['constructor', 'c']])).toBe(200);
    expect(await postIngest(app, line('tchon-h-huge', 203), [['tracestate', `a=${'b'.repeat(20_000)}`]])).toBe(431);
    const gqlTrace = 'f1b2c3d4e5f60718293a4b5c6d7e8f90';
    const r = await app.gql(
      'mutation($input: [InteractionInput!]!) { ingestInteractions(input: $input) { accepted } }',
      { input: [{ ...message(204, { externalId: 'tchon-h-gql' }), direction: 'INBOUND' }] },
      { traceparent: TP(gqlTrace), tracestate: crowded, baggage: `email=${encodeURIComponent(SECRET)}` },
    );
    expect(r.errors).toBeUndefined();
    const ids = ['tchon-h-crowded', 'tchon-h-twice', 'tchon-h-upper', 'tchon-h-gql'];
    const published = await waitFor('published', async () => {
      const got = (await readTopic(kafka, names.enriched, 5_000).catch(() => [])).filter((x) => ids.includes(externalIdOf(x)));
      return got.length >= ids.length ? new Map(got.map((x) => [externalIdOf(x), x.headers])) : null;
    });
    for (const [id, h] of published) expectBounded(h, id);
    for (const h of await storedTraceHeaders(app)) if (h) expectBounded(h, 'outbox_batch.trace_headers');
    expect(String(published.get('tchon-h-crowded')!.traceparent).split('-')[1]).toBe(ingestTrace);
    expect(String(published.get('tchon-h-crowded')!.tracestate).startsWith(VALID_STATE)).toBe(true);
    expect(String(published.get('tchon-h-gql')!.traceparent).split('-')[1]).toBe(gqlTrace);
    // two traceparents (joined by Node into one invalid value) and an uppercase one: a new trace
    for (const id of ['tchon-h-twice', 'tchon-h-upper']) expect(String(published.get(id)!.traceparent).split('-')[1]).not.toMatch(/^[cde]1b2c3d4/);
    expect(spanText()).not.toContain(SECRET);
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
  }, 120_000);
});

describe('trace context from hostile headers, tracing off', () => {
  // the block above shut its tracing down: the API's no-ops again, as in production by default
  const names = kafkaNames('tchoff');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;
  let message: (n: number, over?: Record<string, unknown>) => Record<string, unknown>;

  beforeAll(async () => {
    ({ kafka, admin, app, message } = await setUp(names, 'tchoff'));
  }, 120_000);

  afterAll(() => tearDown(app, admin, names));

  it('stores every hostile message, moves on, and stores and publishes no trace context at all', async () => {
    const batch = hostileMessages('tchoff-k', message);
    await produceGzip(kafka, names.topic, batch);
    expect(await postIngest(app, JSON.stringify(message(300, { externalId: 'tchoff-h' })), [['traceparent', TP('0af7651916cd43dd8448eb211c80319c')], ['tracestate', VALID_STATE], ['baggage', 'x=1']])).toBe(200);
    await waitFor('every hostile message stored', async () => (await stored(app, 'tchoff-%')) === batch.length + 1, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    expect((await storedTraceHeaders(app)).filter((h) => h !== null)).toEqual([]);
    const published = await waitFor('published', async () => {
      const got = (await readTopic(kafka, names.enriched, 5_000).catch(() => [])).filter((r) => externalIdOf(r).startsWith('tchoff-'));
      return got.length >= batch.length + 1 ? got : null;
    });
    for (const p of published) expect(Object.keys(p.headers).filter((k) => /trace|baggage/.test(k))).toEqual([]);
  }, 120_000);
});

import { CompressionTypes, type Admin, type IHeaders, type Kafka } from 'kafkajs';
import { expect } from 'vitest';
import type { TestApp } from './app';
import { groupLag, kafkaEnv, kafkaNames, orderedProducer, readTopic, testKafka, waitFor, type KafkaNames, type Received } from './kafka-fixtures';

// Shared by test/integration/trace-context-hostile*.test.ts (tracing on; tracing off: a file of
// its own, so that each loads the app with tracing as it is there). W3C trace context as a hostile producer or HTTP client writes it (src/shared/tracing.ts), with
// tracing on and off. The promises: every message is stored and its partition moves on; the
// trace context stored on an outbox row and carried by published events stays within the W3C
// limits (a tracestate of at most 32 members and 512 characters), whatever came in; `baggage`
// (which may name a person) is never carried on nor put in a span; a valid context still goes
// produced message → committed row → published event in one trace.

export const SECRET = 'traced.baggage.person@example.org';
export const TP = (trace: string, span = 'b7ad6b7169203331') => `00-${trace}-${span}-01`;
export const VALID_STATE = 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7';

/** Every hostile kind of trace header, each on a valid message with its own externalId. */
export function hostileMessages(tag: string, message: (n: number, over?: Record<string, unknown>) => Record<string, unknown>): { key: string; value: string; headers: IHeaders }[] {
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

export async function produceGzip(kafka: Kafka, topic: string, messages: { key: string; value: string; headers: IHeaders }[]): Promise<void> {
  const producer = orderedProducer(kafka);
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages });
  } finally {
    await producer.disconnect();
  }
}

export const externalIdOf = (r: Received) => (JSON.parse(r.value!.toString()) as { externalId: string }).externalId;

/** The W3C bounds on what is carried on: a traceparent, a tracestate of ≤ 32 members and ≤ 512 characters, no baggage. */
export function expectBounded(headers: Record<string, unknown>, what: string): void {
  expect(Object.keys(headers).filter((k) => k !== 'traceparent' && k !== 'tracestate' && k !== 'event-id' && k !== 'schema-version' && k !== 'content-type'), what).toEqual([]);
  if (headers.traceparent !== undefined) expect(String(headers.traceparent), what).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
  const state = headers.tracestate === undefined ? '' : String(headers.tracestate);
  expect(state.length, what).toBeLessThanOrEqual(512);
  expect(state.split(',').length, what).toBeLessThanOrEqual(32);
  expect(JSON.stringify(headers), what).not.toContain(SECRET);
}

/**
 * `load` imports test/support/app: only now the app (and pg, node:http), so that with tracing on
 * the instrumentations patch them as they load. Each test file loads it once, with tracing as it
 * is in that file.
 */
export async function setUp(
  names: KafkaNames,
  label: string,
  load: () => Promise<typeof import('./app')>,
): Promise<{ kafka: Kafka; admin: Admin; app: TestApp; message: (n: number, over?: Record<string, unknown>) => Record<string, unknown> }> {
  const support = await load();
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  const app = await support.startTestApp(kafkaEnv(names, { KAFKA_TOPIC_PARTITIONS: '1' }), label);
  await waitFor('consumer', async () => app.kafka?.health() === null);
  return { kafka, admin, app, message: support.message };
}

export async function tearDown(app: TestApp | undefined, admin: Admin | undefined, names: KafkaNames): Promise<void> {
  await app?.close();
  await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
  await admin?.disconnect();
}

export const stored = async (app: TestApp, like: string): Promise<number> =>
  ((await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE external_id LIKE $1`, [like])) as { n: number }[])[0]!.n;

export const storedTraceHeaders = async (app: TestApp): Promise<(Record<string, unknown> | null)[]> =>
  ((await app.db.ds.query(`SELECT trace_headers FROM outbox_batch ORDER BY id`)) as { trace_headers: Record<string, unknown> | null }[]).map((r) => r.trace_headers);

/**
 * POST /ingest with `fetch` (undici: not traced, so our headers go as written; node:http would be
 * a traced client here that puts its own traceparent on). A repeated header goes as one line of
 * values joined by ", ", which is also what Node makes of repeated lines.
 */
export async function postIngest(app: TestApp, body: string, headers: [string, string][]): Promise<number> {
  const h = new Headers({ 'content-type': 'application/x-ndjson' });
  for (const [k, v] of headers) h.append(k, v);
  const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: h, body });
  await res.arrayBuffer();
  return res.status;
}


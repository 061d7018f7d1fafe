import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import type { Admin, Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracing, type Tracing } from '../../src/tracing/setup';
import type { TestApp } from '../support/app';
import { groupLag, kafkaNames, readTopic, waitFor } from '../support/kafka-fixtures';
import { expectBounded, externalIdOf, hostileMessages, postIngest, produceGzip, SECRET, setUp, stored, storedTraceHeaders, tearDown, TP, VALID_STATE } from '../support/trace-hostile';

// W3C trace context as a hostile producer or HTTP client writes it (src/shared/tracing.ts), tracing
// on (tracing off: trace-context-hostile-off.test.ts, a file of its own so that each loads the app
// with tracing as it is there). Helpers and the promises: test/support/trace-hostile.ts.

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
    ({ kafka, admin, app, message } = await setUp(names, 'tchon', () => import('../support/app')));
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

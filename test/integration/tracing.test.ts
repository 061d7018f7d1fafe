import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracing, tracingEnabled, type Tracing } from '../../src/tracing/setup';
import type { TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, readTopic, testKafka, waitFor } from '../support/kafka-fixtures';

// Tracing with the SDK's in-memory exporter: a message produced with a W3C traceparent is
// consumed, committed and published again in one trace (Kafka span → SQL spans → outbox row →
// publish span → traceparent on the published event); HTTP and GraphQL operations are spans,
// named by the operation, with no variables. Tracing starts before the app's modules load.

const SECRET = 'traced.person@example.org';

describe('tracing', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing | null;
  const names = kafkaNames('trace');
  let kafka: Kafka;
  let app: TestApp;

  beforeAll(async () => {
    tracing = startTracing({}, { exporter });
    // only now the app (and pg, node:http): the instrumentations patch them as they load
    const { startTestApp } = await import('../support/app');
    kafka = testKafka();
    app = await startTestApp(kafkaEnv(names), 'trace');
    await waitFor('consumer', async () => app.kafka?.health() === null);
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    await tracing?.shutdown();
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin.disconnect();
  });

  const spans = () => exporter.getFinishedSpans();
  const inTrace = (traceId: string) => spans().filter((s) => s.spanContext().traceId === traceId);
  const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

  it('is off unless the standard OTEL_* variables ask for it', () => {
    expect(tracingEnabled({})).toBe(false);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(tracingEnabled({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(false);
    expect(tracingEnabled({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' })).toBe(false);
    // the specification's booleans are case-insensitive, and an operator's file may end lines in CR
    expect(tracingEnabled({ OTEL_SDK_DISABLED: 'TRUE', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(false);
    expect(tracingEnabled({ OTEL_SDK_DISABLED: 'true\r', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(false);
    expect(tracingEnabled({ OTEL_TRACES_EXPORTER: 'None', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(false);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' })).toBe(false);
    expect(startTracing({})).toBeNull();
  });

  it('follows a produced message to the committed row and the published event', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic: names.topic,
      messages: [{
        key: 'a',
        value: JSON.stringify({ source: 'x', externalId: 'tr-1', occurredAt: '2026-11-20T10:00:00Z', direction: 'inbound', author: { handle: 'tracer', email: SECRET }, text: 'The parcel is late again. Terrible.' }),
        headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
      }],
    });
    await producer.disconnect();
    const published = await waitFor('enriched event', async () => {
      const got = await readTopic(kafka, names.enriched, 5_000).catch(() => []);
      return got.length ? got : null;
    });
    const header = String(published[0]!.headers.traceparent);
    expect(header.split('-')[1]).toBe(traceId);

    const mine = await waitFor('spans', async () => (inTrace(traceId).some((s) => s.name.endsWith('publish')) ? inTrace(traceId) : null));
    const process = mine.find((s) => s.name === `${names.topic} process`)!;
    expect(process).toBeTruthy();
    expect(parentOf(process)).toBe('00f067aa0ba902b7');
    // the pipeline's SQL runs inside the consume span
    expect(mine.some((s) => s.instrumentationScope.name.includes('pg') && parentOf(s) === process.spanContext().spanId)).toBe(true);
    const publish = mine.find((s) => s.name === `${names.enriched} publish`)!;
    expect(publish.attributes['messaging.destination.name']).toBe(names.enriched);
    // the published event carries the publish span's context
    expect(header.split('-')[2]).toBe(publish.spanContext().spanId);
  });

  it('traces HTTP and GraphQL by operation name, never variables', async () => {
    exporter.reset();
    const res = await app.gql(`query FindCustomers($q: String) { customers(first: 1, filter: { search: $q }) { totalCount } }`, { q: SECRET });
    expect(res.errors).toBeUndefined();
    const gql = await waitFor('graphql span', async () => spans().find((s) => s.name === 'graphql query FindCustomers') ?? null);
    expect(gql.attributes).toMatchObject({ 'graphql.operation.name': 'FindCustomers', 'graphql.operation.type': 'query' });
    const http = spans().find((s) => s.spanContext().traceId === gql.spanContext().traceId && s.kind === 1 /* SERVER */);
    expect(http).toBeTruthy();
    expect(JSON.stringify(spans().map((s) => ({ n: s.name, a: s.attributes, e: s.events })))).not.toContain(SECRET);
  });
});

import type { Admin, Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestApp } from '../support/app';
import { groupLag, kafkaNames, readTopic, waitFor } from '../support/kafka-fixtures';
import { externalIdOf, hostileMessages, postIngest, produceGzip, setUp, stored, storedTraceHeaders, tearDown, TP, VALID_STATE } from '../support/trace-hostile';

// Hostile W3C trace context with tracing off, as in production by default: nothing is stored or
// published. Tracing on: trace-context-hostile.test.ts. Helpers: test/support/trace-hostile.ts.

describe('trace context from hostile headers, tracing off', () => {
  // this file never starts tracing: the API's no-ops, as in production by default
  const names = kafkaNames('tchoff');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;
  let message: (n: number, over?: Record<string, unknown>) => Record<string, unknown>;

  beforeAll(async () => {
    ({ kafka, admin, app, message } = await setUp(names, 'tchoff', () => import('../support/app')));
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

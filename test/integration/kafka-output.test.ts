import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { ConfigResourceTypes, type Admin, type Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sentimentSchema from '../../schema/customer-sentiment.v1.schema.json';
import enrichedSchema from '../../schema/interactions.enriched.v1.schema.json';
import { message, startTestApp, type TestApp } from '../support/app';
import { dumpTopicWithJavaClient, groupLag, kafkaEnv, kafkaNames, produce, testKafka, waitFor, type JavaRecord } from '../support/kafka-fixtures';

const AUTHORS = 6;
const PER_AUTHOR = 10;

describe('Kafka output topics, read by the Apache Kafka Java client', () => {
  const names = kafkaNames('output');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;
  let enriched: JavaRecord[];
  let sentiment: JavaRecord[];
  let erased: string;
  let wakeMs: number;
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  addFormats(ajv);
  const validEnriched = ajv.compile(enrichedSchema);
  const validSentiment = ajv.compile(sentimentSchema);

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    // A slow poll: only the NOTIFY sent at commit can make the relay publish promptly.
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'ingest', EARSHOT_OUTBOX_POLL_MS: '5000' }), 'kafkaoutput');
    const stream = Array.from({ length: AUTHORS * PER_AUTHOR }, (_, n) => {
      const a = n % AUTHORS;
      // one author is known only by email: the stream must still carry no email
      const author = a === 0 ? { email: 'ada@example.com', displayName: 'Ada' } : { handle: `author${a}`, displayName: `Author ${a}` };
      return { key: `author${a}`, value: JSON.stringify(message(n, { author })) };
    });
    // a company reply: outbound, attached to the customer it answers; keyed like the thread so
    // that it lands on the same partition, after the message it answers
    stream.push({ key: 'author1', value: JSON.stringify(message(10_000, { direction: 'outbound', inReplyTo: 'ext-1', author: { handle: 'brand' }, text: 'Sorry, we are on it.' })) });
    await produce(kafka, names.topic, stream);
    await waitFor('the group to commit every offset', async () => (await groupLag(admin, names.group, names.topic)) === 0, 60_000);

    // A real erasure: among what it writes through the outbox, a tombstone for the customer's key.
    const [victim] = (await app.db.ds.query(`SELECT id FROM customer ORDER BY created_at, id LIMIT 1`)) as { id: string }[];
    erased = victim!.id;
    await app.services.erasure.erase(erased, 'test', 'test');
    await waitFor('the outbox to be published', async () => {
      const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`)) as { n: number }[];
      return n === 0;
    }, 30_000);
    const [{ ms }] = (await app.db.ds.query(
      `SELECT extract(epoch FROM sent_at - created_at) * 1000 AS ms FROM outbox WHERE message_key = $1 AND payload IS NULL`,
      [erased],
    )) as { ms: number }[];
    wakeMs = Number(ms);
    [enriched, sentiment] = await Promise.all([dumpTopicWithJavaClient(names.enriched), dumpTopicWithJavaClient(names.sentiment)]);
  });

  afterAll(async () => {
    await app?.close();
    await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin?.disconnect();
  });

  it('the relay publishes a committed row at once, woken by NOTIFY rather than by its 5 s poll', () => {
    expect(wakeMs).toBeLessThan(1_000);
    console.info(`kafka-output: tombstone published ${wakeMs.toFixed(1)} ms after its insert`);
  });

  it('interactions.enriched.v1: one valid event per interaction, keyed by customer, with version and event-id headers', async () => {
    // the erased customer's interactions lost their customer link, not their published events
    const rows = (await app.db.ds.query(`SELECT id, coalesce(customer_id, CASE WHEN redacted_at IS NOT NULL THEN $1::uuid END) AS customer_id FROM interaction`, [erased])) as { id: string; customer_id: string | null }[];
    expect(enriched).toHaveLength(rows.length);
    expect(rows).toHaveLength(AUTHORS * PER_AUTHOR + 1);
    const customerOf = new Map(rows.map((r) => [r.id, r.customer_id]));
    for (const r of enriched) {
      const value = JSON.parse(r.value!) as { interactionId: string; customerId: string | null; eventId: string; source: string; externalId: string };
      expect(validEnriched(value), JSON.stringify(validEnriched.errors)).toBe(true);
      expect(value.customerId).toBe(customerOf.get(value.interactionId));
      expect(r.key).toBe(value.customerId ?? `${value.source}:${value.externalId}`);
      expect(r.headers['schema-version']).toBe('1');
      expect(r.headers['event-id']).toBe(value.eventId);
      expect(r.value).not.toContain('ada@example.com');
    }
    // the reply went to the customer of the message it answers
    const reply = enriched.map((r) => JSON.parse(r.value!) as { externalId: string; customerId: string }).find((v) => v.externalId === 'ext-10000')!;
    const answered = enriched.map((r) => JSON.parse(r.value!) as { externalId: string; customerId: string }).find((v) => v.externalId === 'ext-1')!;
    expect(reply.customerId).toBe(answered.customerId);
  });

  it('customer-sentiment.v1: keyed by customerId, latest value = the stored summary, a tombstone on erasure, compacted', async () => {
    const customers = (await app.db.ds.query(`SELECT id, interaction_count, sentiment_score FROM customer`)) as { id: string; interaction_count: number; sentiment_score: number | null }[];
    expect(customers).toHaveLength(AUTHORS - 1);
    const latest = new Map<string, JavaRecord>();
    const counts = new Map<string, number[]>();
    for (const r of sentiment) {
      expect(r.headers['schema-version']).toBe('1');
      expect(r.headers['event-id']).toMatch(/^[0-9a-f-]{36}$/);
      latest.set(r.key!, r);
      if (r.value === null) continue;
      const value = JSON.parse(r.value) as { customerId: string; eventId: string; interactionCount: number };
      expect(validSentiment(value), JSON.stringify(validSentiment.errors)).toBe(true);
      expect(r.key).toBe(value.customerId);
      expect(r.headers['event-id']).toBe(value.eventId);
      counts.set(r.key!, [...(counts.get(r.key!) ?? []), value.interactionCount]);
    }
    // One key per customer, all on one partition each: Kafka orders per key, and so must we.
    expect(new Set(latest.keys())).toEqual(new Set([...customers.map((c) => c.id), erased]));
    for (const key of latest.keys()) expect(new Set(sentiment.filter((r) => r.key === key).map((r) => r.partition)).size).toBe(1);
    // Per key, summaries arrive in commit order: the count never goes back.
    for (const series of counts.values()) expect(series).toEqual([...series].sort((a, b) => a - b));

    expect(latest.get(erased)!.value).toBeNull();
    for (const c of customers.filter((c) => c.id !== erased)) {
      const value = JSON.parse(latest.get(c.id)!.value!) as { interactionCount: number; score: number | null };
      expect(value.interactionCount).toBe(c.interaction_count);
      expect(value.score).toBeCloseTo(c.sentiment_score ?? NaN, 9);
    }

    const described = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: names.sentiment, configNames: ['cleanup.policy'] }],
      includeSynonyms: false,
    });
    expect(described.resources[0]!.configEntries.find((e) => e.configName === 'cleanup.policy')?.configValue).toBe('compact');
  });
});

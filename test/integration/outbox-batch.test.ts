import type { Admin, Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, readTopic, testKafka, waitFor } from '../support/kafka-fixtures';

/** An ingest service of its own (database, topics), started before the describe's tests and closed after them. */
function ingestService(label: string) {
  const names = kafkaNames(label);
  const s = { names, kafka: null as unknown as Kafka, app: null as unknown as TestApp };
  let admin: Admin | null = null;
  beforeAll(async () => {
    s.kafka = testKafka();
    admin = s.kafka.admin();
    await admin.connect();
    s.app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'ingest', EARSHOT_OUTBOX_RETENTION_HOURS: '0' }), label);
  });
  afterAll(async () => {
    await s.app?.close();
    await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin?.disconnect();
  });
  return s;
}

// The outbox keeps one row per writing transaction, renders its events when publishing, and
// forgets rows once sent and past the retention (0 hours here).
describe('outbox: one row per transaction, rendered when published, then deleted', () => {
  const svc = ingestService('outboxbatch');

  it('publishes every event of an ingest request once, with stable event ids, and deletes the sent row', async () => {
    // Four messages of two authors in one request: one transaction, hence one outbox row.
    const lines = [0, 1, 2, 3].map((n) => message(n, { author: { handle: `writer${n % 2}`, displayName: `Writer ${n % 2}` } }));
    const res = await fetch(`${svc.app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(res.status).toBe(200);

    // Published, then deleted by the retention: nothing of the batch is left in the table.
    await waitFor('the sent outbox row to be deleted', async () => {
      const [{ n }] = (await svc.app.db.ds.query(`SELECT count(*)::int AS n FROM outbox_batch`)) as { n: number }[];
      return n === 0;
    }, 30_000);

    const enriched = await readTopic(svc.kafka, svc.names.enriched);
    expect(enriched).toHaveLength(4);
    const stored = (await svc.app.db.ds.query(`SELECT id, customer_id FROM interaction ORDER BY external_id`)) as { id: string; customer_id: string }[];
    const values = enriched.map((r) => JSON.parse(r.value!.toString('utf8')) as { interactionId: string; eventId: string; customerId: string });
    expect(new Set(values.map((v) => v.interactionId))).toEqual(new Set(stored.map((s) => s.id)));
    for (const [i, r] of enriched.entries()) {
      expect(r.headers['event-id']).toBe(values[i]!.eventId);
      expect(r.key).toBe(values[i]!.customerId);
    }
    // the event id is a function of the interaction: a re-publish after a crash repeats it
    const again = (await svc.app.db.ds.query(`SELECT md5('enriched:' || id::text)::uuid::text AS e FROM interaction`)) as { e: string }[];
    expect(new Set(values.map((v) => v.eventId))).toEqual(new Set(again.map((a) => a.e)));

    // one summary per customer of the batch, as stored
    const sentiment = await readTopic(svc.kafka, svc.names.sentiment);
    expect(new Set(sentiment.map((r) => r.key))).toEqual(new Set(stored.map((s) => s.customer_id)));
    for (const r of sentiment) expect((JSON.parse(r.value!.toString('utf8')) as { interactionCount: number }).interactionCount).toBe(2);

    // timestamps in UTC to the millisecond, as the contract writes them
    const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
    const sent = new Map(lines.map((l) => [l.externalId, l.occurredAt]));
    for (const r of enriched) {
      const v = JSON.parse(r.value!.toString('utf8')) as { externalId: string; occurredAt: string; processedAt: string };
      expect(v.occurredAt).toBe(sent.get(v.externalId));
      expect(v.processedAt).toMatch(iso);
    }
    for (const r of sentiment) {
      const v = JSON.parse(r.value!.toString('utf8')) as { lastInteractionAt: string; updatedAt: string };
      expect(v.lastInteractionAt).toMatch(iso);
      expect(v.updatedAt).toMatch(iso);
    }
  });

  it('renders timestamps inline: outbox_ts is expanded into the view, not called once per timestamp', async () => {
    // A SQL function is inlined only when it claims no less volatility than its body has
    // (to_char is STABLE); otherwise every event's timestamps ran as statements of their own.
    const plan = (await svc.app.db.ds.query(`EXPLAIN (VERBOSE) SELECT payload FROM outbox WHERE batch_id = 1`)) as { 'QUERY PLAN': string }[];
    const text = plan.map((p) => p['QUERY PLAN']).join('\n');
    expect(text).toContain('to_char(');
    expect(text).not.toContain('outbox_ts(');
  });
});

// Its own service, database and topics: the relay above deletes sent rows at most once a minute,
// so a row this test sends would still be there for the test above whichever runs first, and
// its topics would hold this test's events too.
describe('outbox: a row larger than one Kafka request', () => {
  const svc = ingestService('outboxslices');

  it('publishes a row larger than one Kafka request in slices: every event once, each key on one partition, in order', async () => {
    // 400 lines of 100 authors in one request: one row of 400 interactions and 100 customers,
    // more than the relay puts in one request (500 events), so it goes out in slices.
    const base = 1_000;
    const lines = Array.from({ length: 400 }, (_, i) => message(base + i, { author: { handle: `bulk${i % 100}`, displayName: `Bulk ${i % 100}` } }));
    const res = await fetch(`${svc.app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(res.status).toBe(200);
    // (sent, not yet deleted: the retention runs once a minute)
    await waitFor('every outbox row to be sent', async () => {
      const [{ n }] = (await svc.app.db.ds.query(`SELECT count(*)::int AS n FROM outbox_batch WHERE sent_at IS NULL`)) as { n: number }[];
      return n === 0;
    }, 30_000);

    const stored = (await svc.app.db.ds.query(`SELECT id, customer_id, external_id FROM interaction WHERE external_id LIKE 'ext-1___'`)) as { id: string; customer_id: string; external_id: string }[];
    expect(stored).toHaveLength(400);
    const byId = new Map(stored.map((s) => [s.id, s]));
    const enriched = (await readTopic(svc.kafka, svc.names.enriched))
      .map((r) => ({ r, v: JSON.parse(r.value!.toString('utf8')) as { interactionId: string; customerId: string } }))
      .filter(({ v }) => byId.has(v.interactionId));
    // once each
    expect(enriched).toHaveLength(400);
    expect(new Set(enriched.map(({ v }) => v.interactionId)).size).toBe(400);
    // one partition per key, and per key in the order the messages were written (one author's
    // lines are 100 apart, so a key's events come from different slices of the row)
    const perKey = new Map<string, { partition: number; offset: number; n: number }[]>();
    for (const { r, v } of enriched) {
      expect(r.key).toBe(v.customerId);
      const list = perKey.get(r.key!) ?? [];
      list.push({ partition: r.partition, offset: Number(r.offset), n: Number(byId.get(v.interactionId)!.external_id.slice(4)) });
      perKey.set(r.key!, list);
    }
    expect(perKey.size).toBe(100);
    for (const list of perKey.values()) {
      expect(new Set(list.map((e) => e.partition)).size).toBe(1);
      const byOffset = [...list].sort((a, b) => a.offset - b.offset).map((e) => e.n);
      expect(byOffset).toEqual([...byOffset].sort((a, b) => a - b));
    }
    const sentiment = (await readTopic(svc.kafka, svc.names.sentiment)).filter((r) => perKey.has(r.key!));
    expect(new Set(sentiment.map((r) => r.key))).toEqual(new Set(perKey.keys()));
  });
});

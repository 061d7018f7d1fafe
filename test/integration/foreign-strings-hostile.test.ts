import { SignJWT } from 'jose';
import { type Admin, type Kafka } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { groupLag, kafkaEnv, kafkaNames, produce, readTopic, testKafka, waitFor, type KafkaNames } from '../support/kafka-fixtures';
import { ModelServer, type ModelAnswer, type ModelRequestItem } from '../support/model-server';

/**
 * Strings that reach PostgreSQL, Kafka and the logs from a source other than the ingest edge's
 * validator: the team's model server behind EARSHOT_SENTIMENT_URL. Its answer passed the schema
 * with a NUL character in the model name or the language (PostgreSQL's text refuses it: every
 * line of the batch was rejected over HTTP and dead-lettered from Kafka, though each was valid),
 * a lone UTF-16 surrogate in the model name (stored as U+FFFD; the re-score job's model counts,
 * jsonb, refused it and the job failed), an escape sequence in the model name (written to every
 * log line naming the model) and a language that is no language code. Each is now a broken
 * contract: the batch is scored by the built-in model and the failure is counted as `malformed`.
 */

const ADMIN = 'admin-key-0123456789';
const as = { 'x-api-key': ADMIN };
const BUILT_IN = 'earshot-linear-2026.12.4';
const KEYS = { EARSHOT_API_KEYS: `${ADMIN}:admin` };

type Node = { externalId: string; lang: string; sentiment: { model: string; explanation: { token: string; weight: number }[] } };

async function storedNodes(app: TestApp): Promise<Map<string, Node>> {
  const r = await app.gql<{ interactions: { edges: { node: Node }[] } }>(
    '{ interactions(first: 100) { edges { node { externalId lang sentiment { model explanation { token weight } } } } } }',
    undefined,
    as,
  );
  expect(r.errors).toBeUndefined();
  return new Map(r.data.interactions.edges.map((e) => [e.node.externalId, e.node]));
}

async function malformedCount(app: TestApp): Promise<number> {
  const text = await (await fetch(`${app.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('earshot_sentiment_model_requests_total{result="malformed"}'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

const TEXTS = ['I was charged twice and nobody answers. Terrible.', 'Lovely staff, thank you so much!'];

describe('a model server answer with strings PostgreSQL cannot store, or nobody should log', () => {
  const servers: ModelServer[] = [];
  const apps: TestApp[] = [];
  const serve = async (model: string, answer: (it: ModelRequestItem) => ModelAnswer) => {
    const s = await new ModelServer(model, answer).start();
    servers.push(s);
    return s;
  };
  const start = async (env: Record<string, string>, label: string, existing?: TestApp['database']) => {
    const app = await startTestApp({ ...KEYS, EARSHOT_SENTIMENT_BREAKER_MIN_REQUESTS: '1000', ...env }, label, existing);
    apps.push(app);
    return app;
  };

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  const hostile: { what: string; model: string; answer: (it: ModelRequestItem) => ModelAnswer }[] = [
    { what: 'a NUL character in the model name', model: 'acme\u0000care-v2', answer: () => ({ score: 0.3 }) },
    { what: 'a lone surrogate in the model name', model: 'acme\ud800care-v2', answer: () => ({ score: 0.3 }) },
    { what: 'an escape sequence and a bell in the model name', model: 'acme\u001b[2J\u001b[31mcare\u0007', answer: () => ({ score: 0.3 }) },
    { what: 'a NUL character in the language', model: 'acme-care-v2', answer: () => ({ score: 0.3, lang: 'e\u0000n' }) },
    { what: 'a lone surrogate in the language', model: 'acme-care-v2', answer: () => ({ score: 0.3, lang: 'e\ud800n' }) },
    { what: 'a language that is no language code', model: 'acme-care-v2', answer: () => ({ score: 0.3, lang: '<script>' }) },
  ];

  for (const h of hostile) {
    it(`POST /ingest with ${h.what}: the built-in model scores the batch and every valid line is stored`, async () => {
      const server = await serve(h.model, h.answer);
      const app = await start({ EARSHOT_SENTIMENT_URL: server.url }, 'foreignstr');
      const res = await fetch(`${app.url}/ingest`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson', ...as },
        body: ndjson(TEXTS.map((text, i) => message(i + 1, { text }))),
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
      expect(server.requests).toHaveLength(1);

      const rows = await storedNodes(app);
      expect([...rows.keys()].sort()).toEqual(['ext-1', 'ext-2']);
      for (const n of rows.values()) {
        expect(n.sentiment.model).toBe(BUILT_IN);
        expect(n.lang).toBe('en');
      }
      expect(await malformedCount(app)).toBe(1);
    });
  }

  it('a re-score against a server whose model name holds a lone surrogate finishes, keeping the built-in scores', async () => {
    const seed = await start({}, 'foreignrescore');
    const res = await fetch(`${seed.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...as }, body: ndjson(TEXTS.map((text, i) => message(i + 1, { text }))) });
    expect((await res.json()) as { accepted: number }).toMatchObject({ accepted: 2 });
    await seed.stop();

    const server = await serve('acme\udbffcare-v2', (it) => ({ score: /charged/.test(it.text) ? -0.9 : 0.9 }));
    const app = await start({ EARSHOT_SENTIMENT_URL: server.url }, 'foreignrescore', seed.database);
    apps.splice(apps.indexOf(seed), 1); // one database, dropped once by the app that owns it now
    const started = await app.gql<{ startRescore: { id: string } }>('mutation { startRescore { id } }', undefined, as);
    expect(started.errors).toBeUndefined();
    type Job = { status: string; done: number; changed: number; models: { model: string; count: number }[]; error: string | null };
    const job = await waitFor(
      'the re-score job to end',
      async () => {
        const r = await app.gql<{ rescoreJob: Job }>('query($id: ID!) { rescoreJob(id: $id) { status done changed models { model count } error } }', { id: started.data.startRescore.id }, as);
        const j = r.data.rescoreJob;
        return j.status === 'succeeded' || j.status === 'failed' ? j : null;
      },
      30_000,
      50,
    );
    expect(job).toEqual({ status: 'succeeded', done: 2, changed: 0, models: [{ model: BUILT_IN, count: 2 }], error: null });
    expect(server.requests).toHaveLength(1);
    expect([...(await storedNodes(app)).values()].map((n) => n.sentiment.model)).toEqual([BUILT_IN, BUILT_IN]);
  });

  it('an explanation token with a lone surrogate is stored and published with U+FFFD in its place', async () => {
    const server = await serve('acme-care-v2', () => ({ score: -0.5, explanation: [{ token: 'late\udc00', weight: -0.5 }, { token: '\ud83d\ude21', weight: -0.2 }] }));
    const app = await start({ EARSHOT_SENTIMENT_URL: server.url }, 'foreigntoken');
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...as }, body: ndjson([message(1, { text: TEXTS[0] })]) });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(1);
    const node = (await storedNodes(app)).get('ext-1')!;
    expect(node.sentiment.model).toBe('acme-care-v2');
    expect(node.sentiment.explanation).toEqual([{ token: 'late\ufffd', weight: -0.5 }, { token: '\ud83d\ude21', weight: -0.2 }]);
    const [event] = (await app.db.ds.query(`SELECT payload::text AS p FROM outbox WHERE topic = 'interactions.enriched.v1'`)) as { p: string }[];
    expect(event!.p).not.toMatch(/\\ud[c-f]/i);
    expect((JSON.parse(event!.p) as { sentiment: { explanation: { token: string }[] } }).sentiment.explanation[0]!.token).toBe('late\ufffd');
  });
});

describe('Kafka: a model server naming its model with a NUL character', () => {
  const names: KafkaNames = kafkaNames('foreignstr');
  let kafka: Kafka;
  let admin: Admin;
  let server: ModelServer;
  let app: TestApp;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    server = await new ModelServer('acme\u0000care-v2', () => ({ score: 0.3 })).start();
    app = await startTestApp(kafkaEnv(names, { ...KEYS, EARSHOT_SENTIMENT_URL: server.url, EARSHOT_SENTIMENT_BREAKER_MIN_REQUESTS: '1000' }), 'foreignkafka');
  });

  afterAll(async () => {
    await app?.close();
    await server?.close();
    await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin?.disconnect();
  });

  it('stores every well-formed message with the built-in scores and dead-letters none', async () => {
    await produce(
      kafka,
      names.topic,
      Array.from({ length: 6 }, (_, i) => ({ key: `k${i}`, value: JSON.stringify(message(10 + i, { externalId: `kafka-foreign-${i}`, text: TEXTS[i % 2] })) })),
    );
    const models = await waitFor(
      'the six messages stored',
      async () => {
        const rows = (await app.db.ds.query(`SELECT sentiment_model FROM interaction WHERE external_id LIKE 'kafka-foreign-%'`)) as { sentiment_model: string }[];
        return rows.length === 6 ? rows.map((r) => r.sentiment_model) : null;
      },
      60_000,
    );
    expect(models).toEqual(Array(6).fill(BUILT_IN));
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 60_000);
    const topics = await admin.listTopics();
    const letters = topics.includes(names.dlq) ? await readTopic(kafka, names.dlq) : [];
    expect(letters.map((l) => l.headers['x-error'])).toEqual([]);
    expect(await malformedCount(app)).toBeGreaterThanOrEqual(1);
  });
});

describe('a JWT whose subject cannot be recorded as the actor', () => {
  const SECRET = 'foreign-strings-jwt-secret-0123456789abcdef';
  let app: TestApp;
  const token = (sub: string) =>
    new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

  beforeAll(async () => {
    app = await startTestApp({ ...KEYS, EARSHOT_JWT_SECRET: SECRET }, 'foreignjwt');
    const lines = [1, 2].map((n) => message(n, { text: TEXTS[0], author: { handle: `jwt_author_${n}`, email: `jwt.author.${n}@example.com` } }));
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...as }, body: ndjson(lines) });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(2);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('is refused as UNAUTHENTICATED (not an internal error) and writes no audit row; an ordinary subject is the recorded actor', async () => {
    const customers = (await app.gql<{ customers: { edges: { node: { id: string } }[] } }>('{ customers(first: 10) { edges { node { id } } } }', undefined, as)).data.customers.edges.map((e) => e.node.id);
    expect(customers).toHaveLength(2);
    const merge = 'mutation($a: ID!, $b: ID!) { mergeCustomers(survivorId: $a, mergedId: $b, reason: "same person") { audit { id } } }';
    const topic = 'mutation { upsertTopic(input: { name: "jwt_parcels", label: "Parcels", department: "Logistics", phrases: ["parcel"] }) { job { id } } }';
    for (const sub of ['dana\u0000ops', 'dana\ud800ops']) {
      const h = { authorization: `Bearer ${await token(sub)}` };
      for (const [q, v] of [[merge, { a: customers[0], b: customers[1] }], [topic, undefined]] as const) {
        const r = await app.gql(q, v, h);
        expect(r.errors?.map((e) => e.extensions?.code), JSON.stringify(sub)).toEqual(['UNAUTHENTICATED']);
      }
    }
    const audits = async () => (await app.db.ds.query(`SELECT actor FROM merge_audit`)) as { actor: string }[];
    expect(await audits()).toEqual([]);
    expect(await app.db.ds.query(`SELECT 1 FROM retag_job`)).toEqual([]);

    const ok = await app.gql(merge, { a: customers[0], b: customers[1] }, { authorization: `Bearer ${await token('dana ops')}` });
    expect(ok.errors).toBeUndefined();
    expect(await audits()).toEqual([{ actor: 'admin:dana ops' }]);
  });
});

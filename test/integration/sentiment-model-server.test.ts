import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { ModelServer, type ModelRequestItem } from '../support/model-server';
import { REPO_ROOT } from '../support/postgres';

const ADMIN = 'admin-key-0123456789';
const as = { 'x-api-key': ADMIN };
const MODEL = 'acme-care-v2';
const BUILT_IN = 'earshot-linear-2026.12.4';

/** The team's model: certain about billing trouble, mildly positive about everything else. */
const acme = (it: ModelRequestItem) =>
  /charged|refund/i.test(it.text)
    ? { score: -0.8, complaint: true, confidence: 0.9 }
    : { score: 0.4, label: 'positive', confidence: 0.7, explanation: [{ token: 'acme:overall', weight: 0.4 }] };

type Node = { externalId: string; lang: string; intent: string; topics: { name: string }[]; sentiment: { score: number; label: string; model: string | null; explanation: { token: string; weight: number }[] } };

async function ingest(app: TestApp, lines: unknown[]): Promise<{ accepted: number; rejected: unknown[] }> {
  const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...as }, body: ndjson(lines) });
  expect(res.status).toBe(200);
  return (await res.json()) as { accepted: number; rejected: unknown[] };
}

async function stored(app: TestApp): Promise<Map<string, Node>> {
  const r = await app.gql<{ interactions: { edges: { node: Node }[] } }>(
    '{ interactions(first: 100) { edges { node { externalId lang intent topics { name } sentiment { score label model explanation { token weight } } } } } }',
    undefined,
    as,
  );
  expect(r.errors).toBeUndefined();
  return new Map(r.data.interactions.edges.map((e) => [e.node.externalId, e.node]));
}

async function metric(app: TestApp, line: RegExp): Promise<number> {
  const text = await (await fetch(`${app.url}/metrics`)).text();
  const m = text.split('\n').find((l) => line.test(l));
  return m ? Number(m.split(' ').at(-1)) : 0;
}

describe('a team model server behind EARSHOT_SENTIMENT_URL', () => {
  let server: ModelServer;
  const apps: TestApp[] = [];
  const start = async (env: Record<string, string>) => {
    const app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin`, EARSHOT_SENTIMENT_URL: server.url, ...env }, 'modelsrv');
    apps.push(app);
    return app;
  };

  beforeAll(async () => {
    server = await new ModelServer(MODEL, acme).start();
  });
  afterEach(async () => {
    server.mode = 'ok';
    await Promise.all(apps.splice(0).map((a) => a.close()));
  });
  afterAll(async () => {
    await server?.close();
  });

  it('scores an ingest batch in requests of EARSHOT_SENTIMENT_BATCH_SIZE texts and records the model per interaction', async () => {
    const app = await start({ EARSHOT_SENTIMENT_BATCH_SIZE: '4', EARSHOT_SENTIMENT_TOKEN: 'team-secret-token' });
    const before = server.requests.length;
    const lines = Array.from({ length: 10 }, (_, i) => message(100 + i, i === 0 ? { text: 'I was charged twice for my subscription' } : {}));
    expect((await ingest(app, lines)).accepted).toBe(10);

    const mine = server.requests.slice(before);
    expect(mine.map((r) => r.items.length).sort()).toEqual([2, 4, 4]);
    expect(mine.flatMap((r) => r.items.map((i) => i.text)).sort()).toEqual(lines.map((l) => l.text as string).sort());
    for (const r of mine) {
      expect(r.headers.authorization).toBe('Bearer team-secret-token');
      expect(r.headers['x-earshot-contract']).toBe('sentiment-model.v1');
      expect(r.items.map((i) => i.id)).toEqual(r.items.map((_, i) => String(i)));
    }

    const rows = await stored(app);
    expect([...rows.values()].every((n) => n.sentiment.model === MODEL)).toBe(true);
    // the server's score and complaint; language and topics still from the built-in analyzer
    const billing = rows.get('ext-100')!;
    expect(billing.sentiment).toMatchObject({ score: -0.8, label: 'NEGATIVE', model: MODEL });
    expect(billing.intent).toBe('COMPLAINT');
    expect(billing.lang).toBe('en');
    expect(billing.topics.map((t) => t.name)).toContain('billing');
    expect(billing.sentiment.explanation).toEqual([{ token: `(scored by ${MODEL}; no explanation given)`, weight: 0 }]);
    expect(rows.get('ext-101')!.sentiment).toMatchObject({ score: 0.4, label: 'POSITIVE', explanation: [{ token: 'acme:overall', weight: 0.4 }] });

    // the enriched event carries the model and still validates against interactions.enriched.v1
    const schema = JSON.parse(readFileSync(path.join(REPO_ROOT, 'schema/interactions.enriched.v1.schema.json'), 'utf8'));
    const ajv = new Ajv2020({ strict: false });
    addFormats(ajv);
    const validate = ajv.compile(schema);
    const events: { payload: { externalId: string; sentiment: { model: string } } }[] = await app.db.ds.query(
      `SELECT payload FROM outbox WHERE topic = 'interactions.enriched.v1'`,
    );
    expect(events).toHaveLength(10);
    for (const e of events) {
      expect(validate(e.payload), JSON.stringify(validate.errors)).toBe(true);
      expect(e.payload.sentiment.model).toBe(MODEL);
    }

    const analyzed = await app.gql<{ analyzeText: { model: string; score: number } }>('{ analyzeText(text: "refund please") { model score } }', undefined, as);
    expect(analyzed.data.analyzeText).toEqual({ model: MODEL, score: -0.8 });
  });

  it('sends no text that is only white space: it is neutral, as the built-in analyzer reads it', async () => {
    const app = await start({});
    const before = server.requests.length;
    const lines = [
      message(300, { text: 'I was charged twice for my subscription' }),
      // the transcript of a silent call, an empty form
      message(301, { text: ' \n\t ' }),
      message(302, { text: '\u00a0\u2003\r\n' }),
      // white space with a rating says something: the server may read the rating
      message(303, { text: '  ', rating: 1 }),
      message(304, { text: 'Lovely staff, thank you!' }),
    ];
    expect((await ingest(app, lines)).accepted).toBe(5);
    // before: all five texts went to the server
    const sent = server.requests.slice(before).flatMap((r) => r.items.map((i) => i.text));
    expect(sent.sort()).toEqual(['  ', 'I was charged twice for my subscription', 'Lovely staff, thank you!']);
    const rows = await stored(app);
    for (const id of ['ext-301', 'ext-302']) expect(rows.get(id)!.sentiment, id).toEqual({ score: 0, label: 'NEUTRAL', model: BUILT_IN, explanation: [] });
    expect(rows.get('ext-300')!.sentiment).toMatchObject({ score: -0.8, model: MODEL });
    expect(rows.get('ext-303')!.sentiment.model).toBe(MODEL);
    expect(rows.get('ext-304')!.sentiment).toMatchObject({ score: 0.4, model: MODEL });
  });

  it('falls back to the built-in model on a 500, a body that is not JSON, the wrong number of results, or a broken contract', async () => {
    // a breaker that never opens here: each failure must be met by the fallback alone
    const app = await start({ EARSHOT_SENTIMENT_BREAKER_MIN_REQUESTS: '1000' });
    const cases = [
      ['status500', /earshot_sentiment_model_requests_total\{result="http_status"\}/],
      ['garbage', /earshot_sentiment_model_requests_total\{result="malformed"\}/],
      ['wrongCount', /earshot_sentiment_model_requests_total\{result="malformed"\}/],
      ['badSchema', /earshot_sentiment_model_requests_total\{result="malformed"\}/],
    ] as const;
    let n = 200;
    for (const [mode] of cases) {
      server.mode = mode;
      const sent = server.requests.length;
      const r = await ingest(app, [message(n, { text: 'I was charged twice and nobody answers. Terrible.' }), message(n + 1, { text: 'Lovely staff, thank you!' })]);
      expect(r.accepted, mode).toBe(2);
      expect(server.requests.length, mode).toBe(sent + 1);
      const rows = await stored(app);
      const complaint = rows.get(`ext-${n}`)!;
      expect(complaint.sentiment.model, mode).toBe(BUILT_IN);
      expect(complaint.sentiment.label, mode).toBe('NEGATIVE');
      expect(complaint.sentiment.explanation.length, mode).toBeGreaterThan(1);
      expect(rows.get(`ext-${n + 1}`)!.sentiment).toMatchObject({ model: BUILT_IN, label: 'POSITIVE' });
      n += 2;
    }
    expect(await metric(app, cases[0][1])).toBe(1);
    expect(await metric(app, cases[1][1])).toBe(3);
    // and it recovers at once when the server does
    server.mode = 'ok';
    await ingest(app, [message(n, { text: 'refund still missing' })]);
    expect((await stored(app)).get(`ext-${n}`)!.sentiment.model).toBe(MODEL);
  });

  it('gives up on a server that hangs after EARSHOT_SENTIMENT_TIMEOUT_MS and stores the built-in scores', async () => {
    const app = await start({ EARSHOT_SENTIMENT_TIMEOUT_MS: '300', EARSHOT_SENTIMENT_BREAKER_MIN_REQUESTS: '1000' });
    server.mode = 'hang';
    const sent = server.requests.length;
    const r = await ingest(app, [message(300, { text: 'Where is my refund? Third email this week.' })]);
    expect(r.accepted).toBe(1);
    expect(server.requests.length).toBe(sent + 1);
    expect((await stored(app)).get('ext-300')!.sentiment.model).toBe(BUILT_IN);
    expect(await metric(app, /earshot_sentiment_model_requests_total\{result="timeout"\}/)).toBe(1);
  });

  it('opens the breaker after failures, sends nothing while open, tries one batch half-open and closes when it succeeds', async () => {
    const app = await start({
      EARSHOT_SENTIMENT_BREAKER_MIN_REQUESTS: '2',
      EARSHOT_SENTIMENT_BREAKER_ERROR_PERCENT: '50',
      EARSHOT_SENTIMENT_BREAKER_WINDOW_MS: '600000',
      EARSHOT_SENTIMENT_BREAKER_RESET_MS: '200',
    });
    const breaker = app.services.remoteModel!.breaker;
    const score = async (text: string) => (await app.services.scorer.analyzeBatch([{ text }]))[0]!;
    server.mode = 'status500';
    const sent = server.requests.length;

    const opened = once(breaker, 'open');
    const halfOpen = once(breaker, 'halfOpen');
    expect((await score('refund one')).model).toBe(BUILT_IN);
    expect((await score('refund two')).model).toBe(BUILT_IN);
    await opened;
    expect(breaker.opened).toBe(true);

    // open: answered by the built-in model without a request
    expect((await score('refund three')).model).toBe(BUILT_IN);
    expect(server.requests.length).toBe(sent + 2);
    expect(await metric(app, /^earshot_sentiment_model_breaker_state /)).toBe(2);

    // half-open, and the server still fails: one trial request, then open again
    await halfOpen;
    const reopened = once(breaker, 'open');
    const halfOpenAgain = once(breaker, 'halfOpen');
    expect((await score('refund four')).model).toBe(BUILT_IN);
    await reopened;
    expect(server.requests.length).toBe(sent + 3);

    // half-open, the server has recovered: the trial succeeds and the breaker closes
    server.mode = 'ok';
    await halfOpenAgain;
    const closed = once(breaker, 'close');
    expect((await score('refund five')).model).toBe(MODEL);
    await closed;
    expect(breaker.closed).toBe(true);
    expect(server.requests.length).toBe(sent + 4);
    expect((await score('all good now')).model).toBe(MODEL);
    expect(await metric(app, /earshot_sentiment_model_requests_total\{result="breaker_open"\}/)).toBe(1);
    expect(await metric(app, /^earshot_sentiment_model_breaker_state /)).toBe(0);
  });
});

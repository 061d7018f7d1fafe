import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// Queries built to hurt, as any authenticated role can send them: refused before execution with
// a code, and /healthz answers all along.

const KEY = 'limits-analyst-key-0123456789';
const ADMIN = 'limits-admin-key-0123456789';
const H = { 'x-api-key': KEY };

type Body = { data?: unknown; errors?: { message: string; extensions?: { code?: string } }[] };

async function post(app: TestApp, query: string, variables?: Record<string, unknown>): Promise<{ status: number; body: Body; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...H }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as Body;
  return { status: res.status, body, ms: performance.now() - t0 };
}

describe('GraphQL cost limits (defaults)', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${KEY}:analyst,${ADMIN}:admin` }, 'limits');
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', 'x-api-key': ADMIN },
      body: ndjson(Array.from({ length: 30 }, (_, n) => message(n, { author: { handle: `limit${n % 6}` } }))),
    });
    expect(res.status).toBe(200);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('refuses the 1,000-alias analyzeText bomb with a 1 MB variable before running any of it', async () => {
    const aliases = Array.from({ length: 1000 }, (_, i) => `a${i}: analyzeText(text: $t) { score }`).join(' ');
    const r = await post(app, `query Bomb($t: String!) { ${aliases} }`, { t: 'terrible '.repeat(116_509) });
    expect(r.status).toBe(400);
    expect(r.body.data).toBeUndefined();
    expect(r.body.errors?.[0]?.extensions?.code).toBe('COST_LIMIT_EXCEEDED');
    expect(r.body.errors?.[0]?.message).toMatch(/more than 2000 tokens \(EARSHOT_GRAPHQL_MAX_TOKENS\)/);
    // under the token limit, the alias limit refuses it
    const hundred = Array.from({ length: 100 }, (_, i) => `a${i}: analyzeText(text: $t) { score }`).join(' ');
    const fewer = await post(app, `query Bomb($t: String!) { ${hundred} }`, { t: 'x' });
    expect(fewer.status).toBe(400);
    expect(fewer.body.errors?.[0]?.extensions?.code).toBe('COST_LIMIT_EXCEEDED');
    expect(fewer.body.errors?.[0]?.message).toMatch(/Aliases limit of 30 exceeded, found 100/);
    console.info(`graphql-limits: 1,000-alias bomb with a 1 MB variable refused in ${r.ms.toFixed(1)} ms (round trip, loaded machine)`);
  });

  it('refuses a query deeper than the limit', async () => {
    let q = 'id';
    for (let i = 0; i < 6; i++) q = `customer { displayName interactions(first: 1) { edges { node { ${q} } } } }`;
    const r = await post(app, `{ interactions(first: 1) { edges { node { ${q} } } } }`);
    expect(r.status).toBe(400);
    expect(r.body.errors?.[0]?.extensions?.code).toBe('COST_LIMIT_EXCEEDED');
    expect(r.body.errors?.[0]?.message).toMatch(/depth limit of 12 exceeded/);
  });

  it('estimates cost times `first`: 100 customers × 100 interactions is refused, a frontend page is not', async () => {
    const wide = await post(app, '{ customers(first: 100) { edges { node { displayName interactions(first: 100) { edges { node { text topics { name } } } } } } } }');
    expect(wide.status).toBe(400);
    expect(wide.body.errors?.[0]?.extensions?.code).toBe('COST_LIMIT_EXCEEDED');
    expect(wide.body.errors?.[0]?.message).toMatch(/estimated cost \d+ is over the limit of 20000/);
    const page = await post(
      app,
      `{ customers(first: 20) { totalCount edges { node { id displayName identities { kind value redacted }
         sentiment { score label trend } interactions(first: 5) { edges { node { source text intent topics { department } } } } } } } }`,
    );
    expect(page.body.errors).toBeUndefined();
    expect(page.status).toBe(200);
  });

  it('bounds the text handed to analyzeText per request, over every alias', async () => {
    const chunk = 'slow delivery, awful support. '.repeat(1000); // 30 kB
    const nine = Array.from({ length: 9 }, (_, i) => `a${i}: analyzeText(text: $t) { score }`).join(' ');
    const over = await post(app, `query($t: String!) { ${nine} }`, { t: chunk });
    expect(over.status).toBe(400);
    expect(over.body.errors?.[0]?.extensions?.code).toBe('COST_LIMIT_EXCEEDED');
    expect(over.body.errors?.[0]?.message).toMatch(/analyzeText was handed 270000 bytes .* over the limit of 262144/);
    const eight = Array.from({ length: 8 }, (_, i) => `a${i}: analyzeText(text: $t) { score }`).join(' ');
    const under = await post(app, `query($t: String!) { ${eight} }`, { t: chunk });
    expect(under.body.errors).toBeUndefined();
  });

  it('scores a large text on a worker thread with the same result as on the event loop', async () => {
    const text = 'The parcel came late and the box was crushed, but the refund was quick. '.repeat(200); // 14 kB: over the worker threshold
    const r = await post(app, 'query($t: String!) { analyzeText(text: $t) { score label intent lang topics { name department } explanation { token weight } } }', { t: text });
    expect(r.body.errors).toBeUndefined();
    const local = (await app.services.taxonomy.current()).analyzer.analyze(text);
    expect((r.body.data as { analyzeText: Record<string, unknown> }).analyzeText).toEqual({
      score: local.score,
      label: local.label.toUpperCase(),
      intent: local.intent.toUpperCase(),
      lang: local.lang,
      topics: local.topics.map((t) => ({ name: t.name, department: t.department })),
      explanation: local.explanation,
    });
  });

  it('/healthz keeps answering while every allowed-but-heavy analyzeText request is in flight', async () => {
    const big = 'nothing works and nobody answers, worst experience ever. '.repeat(4500); // 256 kB
    let done = 0;
    const abuse = Array.from({ length: 12 }, () =>
      post(app, 'query($t: String!) { analyzeText(text: $t) { score } }', { t: big }).then((r) => {
        done++;
        return r;
      }),
    );
    const health: number[] = [];
    let answeredDuringAbuse = 0;
    while (done < abuse.length) {
      const t0 = performance.now();
      const res = await fetch(`${app.url}/healthz`);
      expect(res.status).toBe(200);
      health.push(performance.now() - t0);
      if (done < abuse.length) answeredDuringAbuse++;
    }
    const results = await Promise.all(abuse);
    for (const r of results) expect([200, 503]).toContain(r.status);
    expect(answeredDuringAbuse).toBeGreaterThan(0);
    const sorted = [...health].sort((a, b) => a - b);
    console.info(`graphql-limits: /healthz answered ${health.length} times during 12 × 256 kB analyzeText, max ${sorted.at(-1)!.toFixed(1)} ms, median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} ms`);
  });
});

describe('GraphQL cost limits from the environment', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${KEY}:analyst`, EARSHOT_GRAPHQL_MAX_ALIASES: '2', EARSHOT_GRAPHQL_MAX_DEPTH: '3', EARSHOT_GRAPHQL_MAX_COMPLEXITY: '50' }, 'limitsenv');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('takes its limits from EARSHOT_GRAPHQL_MAX_ALIASES, _MAX_DEPTH and _MAX_COMPLEXITY', async () => {
    const aliases = await post(app, '{ a: topics { name } b: topics { name } c: topics { name } }');
    expect(aliases.body.errors?.[0]?.message).toMatch(/Aliases limit of 2 exceeded, found 3/);
    const deep = await post(app, '{ customers(first: 1) { edges { node { sentiment { score } } } } }');
    expect(deep.body.errors?.[0]?.message).toMatch(/depth limit of 3 exceeded/);
    const costly = await post(app, '{ a: topics { name label department phrases } b: topics { name label } }');
    expect(costly.body.errors?.[0]?.message).toMatch(/over the limit of 50/);
    for (const r of [aliases, deep, costly]) expect(r.body.errors?.[0]?.extensions?.code).toBe('COST_LIMIT_EXCEEDED');
    expect((await post(app, '{ a: topics { name } b: topics { name } }')).body.errors).toBeUndefined();
  });
});

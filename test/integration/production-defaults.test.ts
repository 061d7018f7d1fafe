import { SignJWT } from 'jose';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { waitFor } from '../support/kafka-fixtures';
import { TEST_PG_ENV } from '../support/postgres';

const ADMIN = 'prod-admin-key-0123456789';
const ANALYST = 'prod-analyst-key-0123456789';
const METRICS_KEY = 'prod-metrics-key-0123456789';
const SECRET = 'a-very-long-test-secret-for-hs256-tokens!';
const PROD = { NODE_ENV: 'production', EARSHOT_API_KEYS: `${ADMIN}:admin,${ANALYST}:analyst`, EARSHOT_JWT_SECRET: SECRET };

type Answer = { status: number; data: unknown; errors?: { message: string; extensions?: Record<string, unknown> }[] };

function b64(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

async function jwt(claims: Record<string, unknown>, opts: { exp?: string | number; iat?: number } = {}): Promise<string> {
  const t = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('user-1');
  if (opts.iat !== undefined) t.setIssuedAt(opts.iat);
  else t.setIssuedAt();
  if (opts.exp !== undefined) t.setExpirationTime(opts.exp);
  return t.sign(new TextEncoder().encode(SECRET));
}

describe('production defaults', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ ...PROD, EARSHOT_METRICS_KEY: METRICS_KEY, EARSHOT_METRICS_OPERATIONS: 'CustomerPage' }, 'prod');
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', 'x-api-key': ADMIN },
      body: ndjson([message(1, { author: { handle: 'pat', email: 'pat@example.com', phone: '+14155550123' } })]),
    });
    expect(res.status).toBe(200);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('answers no introspection, with or without credentials', async () => {
    for (const headers of [{}, { 'x-api-key': ANALYST }, { 'x-api-key': ADMIN }]) {
      for (const q of ['{ __schema { types { name } } }', '{ __type(name: "Customer") { fields { name } } }']) {
        const r: Answer = await app.gql(q, undefined, headers);
        expect(r.data ?? null).toBeNull();
        expect(r.errors?.[0]?.message).toMatch(/introspection is not allowed/);
        expect(r.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      }
    }
  });

  it('suggests no field names in errors', async () => {
    for (const headers of [{}, { 'x-api-key': ADMIN }]) {
      const r: Answer = await app.gql('{ customerz { id } customers { edgez { cursor } } }', undefined, headers);
      expect(r.errors?.length).toBeGreaterThan(0);
      for (const e of r.errors!) expect(e.message).not.toMatch(/Did you mean|customers|edges/);
    }
  });

  it('/metrics needs the key, and operation names off the allow-list are counted as `other`', async () => {
    expect((await fetch(`${app.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${app.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(401);
    for (let i = 0; i < 40; i++) await app.gql(`query Probe${i}x { topics { name } }`, undefined, { 'x-api-key': ANALYST });
    await app.gql('query CustomerPage { customers(first: 1) { totalCount } }', undefined, { 'x-api-key': ANALYST });
    const res = await fetch(`${app.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_KEY}` } });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toMatch(/Probe\d+x/);
    expect(text).toMatch(/earshot_graphql_operation_duration_seconds_count\{type="query",operation="other",outcome="ok"\} 40/);
    expect(text).toMatch(/operation="CustomerPage"/);
  });

  it('/readyz gives a reason without the driver\'s error when the database refuses', async () => {
    const name = new URL(app.database.url).pathname.slice(1);
    const admin = new Client({ connectionString: process.env[TEST_PG_ENV] });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS false`);
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [name]);
      const res = await fetch(`${app.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ status: 'unavailable', reason: 'database unreachable' });
    } finally {
      await admin.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`);
      await admin.end();
    }
    // and it comes back by itself
    await waitFor('readiness to come back', async () => (await fetch(`${app.url}/readyz`)).status === 200, 20_000, 100);
  });

  it('refuses a JWT without exp, and one that lives longer than EARSHOT_JWT_MAX_AGE_SECONDS (1 day)', async () => {
    const q = '{ topics { name } }';
    const forever: Answer = await app.gql(q, undefined, { authorization: `Bearer ${await jwt({ role: 'admin' })}` });
    expect(forever.status).toBe(401);
    expect(forever.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const long: Answer = await app.gql(q, undefined, { authorization: `Bearer ${await jwt({ role: 'admin' }, { exp: '2d' })}` });
    expect(long.status).toBe(401);
    expect(long.errors?.[0]?.message).toMatch(/EARSHOT_JWT_MAX_AGE_SECONDS/);
    const ok: Answer = await app.gql(q, undefined, { authorization: `Bearer ${await jwt({ role: 'admin' }, { exp: '1h' })}` });
    expect(ok.errors).toBeUndefined();
  });

  it('a token with several roles acts as the most privileged: agent + analyst sees PII and may do what either may', async () => {
    const token = await jwt({ roles: ['analyst', 'agent'] }, { exp: '10m' });
    const r = await app.gql<{ customers: { edges: { node: { identities: { kind: string; value: string | null }[] } }[] } }>(
      '{ customers(first: 5) { edges { node { identities { kind value } } } } }', undefined, { authorization: `Bearer ${token}` },
    );
    const values = r.data.customers.edges.flatMap((e) => e.node.identities.map((i) => i.value));
    expect(values).toContain('pat@example.com');
    // analyst-only and agent-only operations both pass the role check
    const status: Answer = await app.gql('{ crmSyncStatus { systems } }', undefined, { authorization: `Bearer ${token}` });
    expect(status.errors).toBeUndefined();
    expect(status.data).toEqual({ crmSyncStatus: { systems: [] } });
    const agentOnly: Answer = await app.gql('mutation { markResponded(id: "bm90LWFuLWl0ZW0") { status } }', undefined, { authorization: `Bearer ${token}` });
    expect(agentOnly.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    // node(id) of a merge suggestion asks what mergeSuggestions asks: any of the token's roles
    // (it checked the top one alone, and refused sales + analyst, whom mergeSuggestions lets in)
    const salesAnalyst = await jwt({ roles: ['sales', 'analyst'] }, { exp: '10m' });
    const suggestionId = Buffer.from('MergeSuggestion:00000000-0000-4000-8000-000000000000').toString('base64url');
    const listed: Answer = await app.gql('{ mergeSuggestions(first: 1) { totalCount } }', undefined, { authorization: `Bearer ${salesAnalyst}` });
    expect(listed.errors).toBeUndefined();
    const byNode: Answer = await app.gql(`{ node(id: "${suggestionId}") { id } }`, undefined, { authorization: `Bearer ${salesAnalyst}` });
    expect(byNode.errors).toBeUndefined();
    expect(byNode.data).toEqual({ node: null });
    const salesOnly: Answer = await app.gql(`{ node(id: "${suggestionId}") { id } }`, undefined, { authorization: `Bearer ${await jwt({ role: 'sales' }, { exp: '10m' })}` });
    expect(salesOnly.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('a forged cursor is BAD_USER_INPUT, whatever its sort key', async () => {
    const id = '00000000-0000-4000-8000-000000000000';
    const cases: [string, string][] = [
      ['customers', b64(['not-a-date', id])],
      ['customers', b64(['2026-02-30 10:00:00+00', id])],
      ['interactions', b64(['yesterday', id])],
      ['mergeSuggestions', b64(['2026-01-01', id])],
      ['openItems', b64(['1|2', id])],
      ['customers', 'not base64 at all!'],
    ];
    for (const [field, cursor] of cases) {
      const r: Answer = await app.gql(`query($c: String) { ${field}(first: 1, after: $c) { totalCount } }`, { c: cursor }, { 'x-api-key': ADMIN });
      expect(r.errors?.[0]?.extensions?.code, `${field} ${cursor}`).toBe('BAD_USER_INPUT');
    }
  });

  it('applies @MaxLength(200) to search, with a message free of class-validator internals', async () => {
    const r: Answer = await app.gql('query($s: String) { customers(first: 1, filter: { search: $s }) { totalCount } }', { s: 'x'.repeat(1_900_000) }, { 'x-api-key': ANALYST });
    // the argument and the rule it broke (issue 13), never the value or class-validator's own objects
    expect(r.errors?.[0]?.extensions).toEqual({
      code: 'BAD_USER_INPUT',
      details: { violations: [{ argument: 'filter.search', rule: 'maxLength', message: 'search must be shorter than or equal to 200 characters' }] },
    });
    expect(JSON.stringify(r.errors)).not.toMatch(/constraints|target|xxxxxxxxxx/);
    expect(r.errors?.[0]?.message).toBe('invalid arguments: filter.search: search must be shorter than or equal to 200 characters');
    const ok: Answer = await app.gql('query($s: String) { customers(first: 1, filter: { search: $s }) { totalCount } }', { s: 'x'.repeat(200) }, { 'x-api-key': ANALYST });
    expect(ok.errors).toBeUndefined();
  });
});

describe('/metrics on its own port', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ ...PROD, EARSHOT_METRICS_PORT: '0' }, 'prodmetrics');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('serves /metrics there and not on the API port', async () => {
    expect(app.metricsUrl).not.toBeNull();
    const res = await fetch(app.metricsUrl!);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('earshot_http_request_duration_seconds');
    expect((await fetch(`${app.url}/metrics`)).status).toBe(404);
  });
});

describe('production without a metrics key or port', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ ...PROD, EARSHOT_GRAPHQL_INTROSPECTION: 'true' }, 'prodnometrics');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('keeps /metrics off, and introspection answers only when enabled', async () => {
    expect((await fetch(`${app.url}/metrics`)).status).toBe(404);
    const r: Answer = await app.gql('{ __type(name: "Customer") { name } }', undefined, { 'x-api-key': ANALYST });
    expect(r.data).toEqual({ __type: { name: 'Customer' } });
  });
});

import { SignJWT } from 'jose';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../../migrations';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

const KEYS = { admin: 'admin-key-0123456789', analyst: 'analyst-key-0123456789', sales: 'sales-key-0123456789' };
const SECRET = 'a-very-long-test-secret-for-hs256-tokens!';

describe('auth and operations', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({
      EARSHOT_API_KEYS: `${KEYS.admin}:admin:ops,${KEYS.analyst}:analyst:bi,${KEYS.sales}:sales:crm`,
      EARSHOT_JWT_SECRET: SECRET,
    }, 'auth');
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', 'x-api-key': KEYS.admin },
      body: ndjson([message(1, { author: { handle: 'pat', email: 'pat@example.com', phone: '+14155550123' } })]),
    });
    expect(res.status).toBe(200);
  });
  afterAll(async () => {
    await app?.close();
  });

  const IDS = '{ customers(first: 5) { edges { node { identities { kind value redacted } } } } }';

  it('answers 401 without a credential and with a wrong one', async () => {
    const none = await app.gql(IDS);
    expect(none.status).toBe(401);
    expect(none.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const wrong = await app.gql(IDS, undefined, { 'x-api-key': 'not-a-key-at-all-xxxx' });
    expect(wrong.status).toBe(401);
    const ingest = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: '' });
    expect(ingest.status).toBe(401);
  });

  it('answers 403 when the role may not do it', async () => {
    const r = await app.gql('mutation { ingestInteractions(input: []) { accepted } }', undefined, { 'x-api-key': KEYS.analyst });
    expect(r.status).toBe(403);
    expect(r.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const ingest = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', 'x-api-key': KEYS.analyst },
      body: ndjson([message(2)]),
    });
    expect(ingest.status).toBe(403);
  });

  it('shows emails and phones to sales but not to analysts', async () => {
    const sales = await app.gql<{ customers: { edges: { node: { identities: { kind: string; value: string | null; redacted: boolean }[] } }[] } }>(IDS, undefined, { authorization: `Bearer ${KEYS.sales}` });
    const salesIds = sales.data.customers.edges[0]!.node.identities;
    expect(salesIds).toEqual(expect.arrayContaining([{ kind: 'EMAIL', value: 'pat@example.com', redacted: false }, { kind: 'PHONE', value: '+14155550123', redacted: false }]));
    const analyst = await app.gql<typeof sales.data>(IDS, undefined, { 'x-api-key': KEYS.analyst });
    const ids = analyst.data.customers.edges[0]!.node.identities;
    expect(ids.find((i) => i.kind === 'EMAIL')).toEqual({ kind: 'EMAIL', value: null, redacted: true });
    expect(ids.find((i) => i.kind === 'PHONE')).toEqual({ kind: 'PHONE', value: null, redacted: true });
    expect(ids.find((i) => i.kind === 'HANDLE')).toEqual({ kind: 'HANDLE', value: 'x:pat', redacted: false });
  });

  it('accepts an HS256 JWT with a role claim and refuses a forged one', async () => {
    const sign = (secret: string, claims: Record<string, unknown>) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('user-7').setExpirationTime('5m').sign(new TextEncoder().encode(secret));
    const good = await app.gql(IDS, undefined, { authorization: `Bearer ${await sign(SECRET, { role: 'agent' })}` });
    expect(good.status).toBe(200);
    expect(good.errors).toBeUndefined();
    const forged = await app.gql(IDS, undefined, { authorization: `Bearer ${await sign('another-secret-of-sufficient-length!!', { role: 'admin' })}` });
    expect(forged.status).toBe(401);
    const roleless = await app.gql(IDS, undefined, { authorization: `Bearer ${await sign(SECRET, {})}` });
    expect(roleless.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('serves /healthz, /readyz and Prometheus /metrics', async () => {
    // an operation of its own, so the GraphQL histogram has a sample whatever ran before
    expect((await app.gql('{ __typename }', undefined, { 'x-api-key': KEYS.admin })).status).toBe(200);
    expect(await (await fetch(`${app.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${app.url}/readyz`);
    expect(ready.status).toBe(200);
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(metrics).toContain('earshot_http_request_duration_seconds_bucket');
    expect(metrics).toContain('earshot_graphql_operation_duration_seconds_bucket');
    expect(metrics).toMatch(/earshot_ingest_interactions_total\{channel="http",result="accepted"\} 1/);
  });

  it('reports not ready (503) while a migration is pending', async () => {
    const ds = new DataSource({ type: 'postgres', url: app.database.url, migrations, migrationsTableName: 'migration' });
    await ds.initialize();
    try {
      // pretend the newest migration has not run: the table of applied migrations says so
      const [last] = await ds.query('SELECT id, timestamp, name FROM migration ORDER BY id DESC LIMIT 1');
      await ds.query('DELETE FROM migration WHERE id = $1', [last.id]);
      const res = await fetch(`${app.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: 'unavailable', reason: 'database migrations are pending' });
      await ds.query('INSERT INTO migration (id, timestamp, name) VALUES ($1, $2, $3)', [last.id, last.timestamp, last.name]);
      expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
    } finally {
      await ds.destroy();
    }
  });

  it('hides unexpected errors as INTERNAL_SERVER_ERROR with a request id', async () => {
    // a field whose SQL fails at run time: drop a table behind the service's back
    const ds = new DataSource({ type: 'postgres', url: app.database.url });
    await ds.initialize();
    try {
      await ds.query('ALTER TABLE customer_identity RENAME TO customer_identity_gone');
      const r = await app.gql<unknown>(IDS, undefined, { 'x-api-key': KEYS.admin });
      expect(r.errors?.[0]).toMatchObject({ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR', requestId: expect.any(String) } });
      expect(JSON.stringify(r.errors)).not.toContain('customer_identity');
    } finally {
      await ds.query('ALTER TABLE customer_identity_gone RENAME TO customer_identity');
      await ds.destroy();
    }
  });
});

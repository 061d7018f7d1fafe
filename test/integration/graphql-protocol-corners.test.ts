import { createHash } from 'node:crypto';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentStoreBytes } from '../../src/graphql/document-store';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { wsClient } from '../support/ws-client';

// Corners of the GraphQL protocol that a sloppy client or an attacker reaches and the other suites
// do not: malformed automatic-persisted-query extensions, an operation name the document does not
// have (with graphql-jit on, the default), documents padded with whitespace (Apollo's document
// cache counted them without their text), and queries over WebSocket against the read budget and
// a locked table (both bounds lived in the HTTP request's context only). Each failed before.

const KEYS = {
  admin: 'protocol-corners-admin-key-0123456789',
  analyst: 'protocol-corners-analyst-key-0123456789',
};
type Role = keyof typeof KEYS;
type Body = { data?: Record<string, unknown> | null; errors?: { message: string; extensions?: Record<string, unknown> }[] };

const READ_BYTES = 64 * 1024;
const TEXT = 10_000;
const BUDGET_MS = 1_000;

describe('GraphQL protocol corners', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp(
      {
        EARSHOT_API_KEYS: Object.entries(KEYS).map(([role, key]) => `${key}:${role}`).join(','),
        EARSHOT_GAP_ESCALATION: 'off',
        EARSHOT_GRAPHQL_MAX_READ_BYTES: String(READ_BYTES),
        EARSHOT_GRAPHQL_TIME_BUDGET_MS: String(BUDGET_MS),
      },
      'protocorners',
    );
    // 20 texts of 10,000 characters: 200,000 in all, three times the read budget
    const lines = Array.from({ length: 20 }, (_, n) =>
      message(n, { externalId: `pc-${n}`, eventId: `pc-${n}`, author: { handle: `pc_${n}`, displayName: `Corner ${n}` }, text: `Parcel ${n} late. ${'the box was crushed again '.repeat(TEXT / 26)}`.slice(0, TEXT) }),
    );
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': KEYS.admin }, body: ndjson(lines) });
    expect(await res.json()).toMatchObject({ accepted: 20, rejected: [] });
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  async function post(body: unknown, role: Role | null = 'analyst'): Promise<{ status: number; body: Body }> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (role) headers['x-api-key'] = KEYS[role];
    const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Body };
  }

  it('a malformed persisted-query extension is the client’s mistake: 400 BAD_REQUEST, never INTERNAL_SERVER_ERROR', async () => {
    // Apollo raises these without a code, which it names INTERNAL_SERVER_ERROR (with a request id to report)
    const query = '{ __typename }';
    const sha = createHash('sha256').update(query).digest('hex');
    const cases: [string, unknown][] = [
      ['a hash that is not the query’s', { version: 1, sha256Hash: 'deadbeef' }],
      ['no hash beside the query', { version: 1 }],
      ['version 2', { version: 2, sha256Hash: sha }],
      ['no version', { sha256Hash: sha }],
      ['not an object', true],
    ];
    for (const [what, persistedQuery] of cases) {
      const r = await post({ query, extensions: { persistedQuery } });
      expect({ what, status: r.status, codes: r.body.errors?.map((e) => e.extensions?.code) }).toEqual({ what, status: 400, codes: ['BAD_REQUEST'] });
      expect(r.body.errors?.[0]?.extensions).not.toHaveProperty('requestId');
    }
    const pq = await post({ query, extensions: { persistedQuery: { version: 1, sha256Hash: 'deadbeef' } } });
    expect(pq.body.errors?.[0]?.message).toBe('provided sha does not match query');
    // over GET too
    const get = await fetch(`${app.url}/graphql?query=${encodeURIComponent(query)}&extensions=${encodeURIComponent(JSON.stringify({ persistedQuery: { version: 1, sha256Hash: 'x' } }))}`, {
      headers: { 'x-api-key': KEYS.analyst, 'apollo-require-preflight': '1' },
    });
    expect(get.status).toBe(400);
    expect(((await get.json()) as Body).errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
    // the well-formed registration and use still work
    expect((await post({ query, extensions: { persistedQuery: { version: 1, sha256Hash: sha } } })).body).toEqual({ data: { __typename: 'Query' } });
    expect((await post({ extensions: { persistedQuery: { version: 1, sha256Hash: sha } } })).body).toEqual({ data: { __typename: 'Query' } });
  });

  it('an operation name the document does not have is 400 OPERATION_RESOLUTION_FAILURE, not a 500', async () => {
    // With graphql-jit, the executor ran the document's only operation under the name Apollo had
    // resolved (none), and Apollo answered 500 "did not resolve an operation but execute did not return errors".
    for (const query of ['query Customers { customers(first: 1) { totalCount } }', '{ __typename }', 'query A { __typename } query B { __typename }']) {
      // twice: graphql-jit takes a document from its second run on
      for (let run = 0; run < 2; run++) {
        const r = await post({ query, operationName: 'Nope' });
        expect({ query, run, status: r.status, codes: r.body.errors?.map((e) => e.extensions?.code) }).toEqual({ query, run, status: 400, codes: ['OPERATION_RESOLUTION_FAILURE'] });
        expect(r.body.errors?.[0]?.message).toBe('Unknown operation named "Nope".');
      }
    }
    // the right name runs
    const ok = await post({ query: 'query A { __typename } query B { __typename }', operationName: 'B' });
    expect(ok.body).toEqual({ data: { __typename: 'Query' } });
  });

  it('documents padded with whitespace are not all kept: the parsed-document cache counts the text each one holds', { timeout: 180_000 }, async () => {
    // Whitespace is no token, and a parsed document keeps its source text (for error locations),
    // but Apollo's cache counted a document as its syntax tree's JSON: `{ __typename }` followed
    // by 1.9 MB of spaces counted a few hundred bytes and kept 1.9 MB, until the heap ran out.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const budget = documentStoreBytes(getHeapStatistics().heap_size_limit);
    const PAD = 1_900_000;
    // three times what the cache may hold
    const count = Math.ceil((3 * budget) / PAD);
    const pad = ' '.repeat(PAD);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < count; i += 4) {
      const batch = Array.from({ length: Math.min(4, count - i) }, (_, k) => post({ query: `{ __typename }${pad}# ${i + k}` }));
      for (const r of await Promise.all(batch)) expect(r.body).toEqual({ data: { __typename: 'Query' } });
    }
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    console.info(
      `graphql-protocol-corners: ${count} documents of ${(PAD / 1e6).toFixed(1)} MB (${((count * PAD) / 1e6).toFixed(0)} MB), cache budget ${(budget / 1e6).toFixed(0)} MB: heap grew ${(grown / 1e6).toFixed(0)} MB after a full collection`,
    );
    // before: every one of them stayed (about 3 × the budget)
    expect(grown).toBeLessThan(2 * budget);
  });

  /** A graphql-ws connection (test/support/ws-client.ts), and the first answer to each operation. */
  async function socket(role: Role = 'analyst') {
    const client = wsClient(app.url, { 'x-api-key': KEYS[role] });
    return {
      /** the payload of the first `next` or `error` of the query sent */
      ask: (query: string) =>
        new Promise<Body>((resolve) => {
          const stop = client.subscribe<Record<string, unknown>>(
            { query },
            {
              next: (r) => {
                resolve(r as Body);
                stop();
              },
              error: (e) => resolve({ errors: (Array.isArray(e) ? e : [e]) as Body['errors'] }),
              complete: () => undefined,
            },
          );
        }),
      close: () => void client.dispose(),
    };
  }

  it('a query over WebSocket reads no more text than over HTTP (EARSHOT_GRAPHQL_MAX_READ_BYTES)', async () => {
    const page = '{ interactions(first: 20) { edges { node { text } } } }';
    const http = await post({ query: page });
    expect(http.body.errors?.map((e) => e.extensions?.code)).toEqual(['COST_LIMIT_EXCEEDED']);
    const s = await socket();
    try {
      // before: answered in full, 200,000 characters against a budget of 65,536
      const ws = await s.ask(page);
      expect(ws.data?.interactions ?? null).toBeNull();
      expect(ws.errors?.map((e) => e.extensions?.code)).toEqual(['COST_LIMIT_EXCEEDED']);
      expect(ws.errors?.[0]?.message).toMatch(/^the query read more than 65536 characters of text from the database \(EARSHOT_GRAPHQL_MAX_READ_BYTES\)/);
      // a page that fits is answered, on the same socket
      const small = await s.ask('{ interactions(first: 3) { edges { node { text } } } }');
      expect(small.errors).toBeUndefined();
      expect((small.data?.interactions as { edges: unknown[] }).edges).toHaveLength(3);
    } finally {
      s.close();
    }
  });

  it('a query over WebSocket on a locked table answers when its time budget runs out, not when the lock goes', { timeout: 60_000 }, async () => {
    const holder = new pg.Client({ connectionString: app.database.url });
    await holder.connect();
    const s = await socket();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE customer IN ACCESS EXCLUSIVE MODE');
      // before: its statement waited on the lock, holding a pooled connection, for as long as
      // the lock was held (here: until the test timed out)
      const r = await s.ask('{ customers(first: 5) { edges { node { id } } } }');
      expect(r.errors?.map((e) => e.extensions?.code)).toEqual(['TIME_BUDGET_EXCEEDED']);
      expect(r.errors?.[0]?.message).toMatch(/EARSHOT_GRAPHQL_TIME_BUDGET_MS/);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
      s.close();
    }
    const after = await post({ query: '{ customers(first: 5) { edges { node { id } } } }' });
    expect(after.body.errors).toBeUndefined();
  });
});

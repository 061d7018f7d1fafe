import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

type Conn<T> = { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: { cursor: string; node: T }[] };

describe('GraphQL API on real PostgreSQL', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({}, 'graphql');
    // 120 authors, 2 interactions each, plus an email for every third author
    const lines = [];
    for (let i = 0; i < 240; i++) {
      const a = i % 120;
      lines.push(message(i, { author: { handle: `author${a}`, displayName: `Author ${a}`, ...(a % 3 === 0 ? { email: `author${a}@example.com`, phone: '+1 415 555 0100'.replace('0100', String(1000 + a)) } : {}) } }));
    }
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(240);
  });
  afterAll(async () => {
    await app?.close();
  });

  const PAGE = `query Page($first: Int, $after: String) {
    customers(first: $first, after: $after) {
      totalCount pageInfo { hasNextPage endCursor }
      edges { cursor node { id displayName identities { kind network value redacted } sentiment { score label interactionCount trend } } }
    }
  }`;

  it('pages through all customers with cursors, each exactly once', async () => {
    const seen = new Set<string>();
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const r: { data: { customers: Conn<{ id: string }> } } = await app.gql(PAGE, { first: 50, after });
      expect(r.data.customers.totalCount).toBe(120);
      for (const e of r.data.customers.edges) seen.add(e.node.id);
      pages++;
      if (!r.data.customers.pageInfo.hasNextPage) break;
      after = r.data.customers.pageInfo.endCursor;
    }
    expect(pages).toBe(3);
    expect(seen.size).toBe(120);
  });

  it('loads a page of 50 customers with identities and sentiment in as many SQL queries as a page of 5', async () => {
    // counted per request id, so background jobs' queries do not blur the figure
    const queriesFor = async (first: number) => {
      const requestId = randomUUID();
      const r = await app.gql<{ customers: Conn<unknown> }>(PAGE, { first }, { 'x-request-id': requestId });
      expect(r.errors).toBeUndefined();
      expect(r.data.customers.edges).toHaveLength(first);
      return app.db.queries.ofRequest(requestId);
    };
    const small = await queriesFor(5);
    const large = await queriesFor(50);
    expect(large).toBe(small);
    expect(large).toBeGreaterThan(0);
    expect(large).toBeLessThanOrEqual(4);
  });

  it('nests interactions per customer without a query per customer', async () => {
    const q = `{ customers(first: 40) { edges { node { interactions(first: 1) { totalCount edges { node { text customer { displayName } topics { name } } } } } } } }`;
    const requestId = randomUUID();
    const r = await app.gql<{ customers: Conn<{ interactions: Conn<{ text: string }> }> }>(q, undefined, { 'x-request-id': requestId });
    expect(r.errors).toBeUndefined();
    for (const e of r.data.customers.edges) {
      expect(e.node.interactions.totalCount).toBe(2);
      expect(e.node.interactions.edges).toHaveLength(1);
    }
    const queries = app.db.queries.ofRequest(requestId);
    expect(queries).toBeGreaterThan(0);
    expect(queries).toBeLessThanOrEqual(8);
  });

  it('answers BAD_USER_INPUT for a page over 100 and for a forged cursor', async () => {
    const big = await app.gql(PAGE, { first: 101 });
    expect(big.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(big.status).not.toBe(500);
    const forged = await app.gql(PAGE, { first: 5, after: 'bm90LWEtY3Vyc29y' });
    expect(forged.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(forged.errors?.[0]?.message).toMatch(/invalid cursor/);
    const inter = await app.gql('{ interactions(first: 1000) { totalCount } }');
    expect(inter.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('finds any object through node(id) and customer(id)', async () => {
    const page = await app.gql<{ interactions: Conn<{ id: string; text: string; customer: { id: string } }> }>(
      '{ interactions(first: 1) { edges { node { id text customer { id } } } } }',
    );
    const i = page.data.interactions.edges[0]!.node;
    const node = await app.gql<{ node: { __typename: string; text: string } }>('query($id: ID!) { node(id: $id) { __typename ... on Interaction { text } } }', { id: i.id });
    expect(node.data.node).toEqual({ __typename: 'Interaction', text: i.text });
    const c = await app.gql<{ customer: { id: string }; node: { __typename: string } }>('query($id: ID!) { customer(id: $id) { id } node(id: $id) { __typename } }', { id: i.customer.id });
    expect(c.data.customer.id).toBe(i.customer.id);
    expect(c.data.node.__typename).toBe('Customer');
    const bad = await app.gql('{ customer(id: "nonsense") { id } }');
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('filters interactions and keeps filters consistent with totalCount', async () => {
    const all = await app.gql<{ interactions: Conn<unknown> }>('{ interactions(first: 0) { totalCount } }');
    const neg = await app.gql<{ interactions: Conn<{ sentiment: { label: string } }> }>(
      '{ interactions(first: 100, filter: { label: NEGATIVE }) { totalCount edges { node { sentiment { label } } } } }',
    );
    expect(neg.data.interactions.totalCount).toBeGreaterThan(0);
    expect(neg.data.interactions.totalCount).toBeLessThan(all.data.interactions.totalCount);
    expect(neg.data.interactions.edges.every((e) => e.node.sentiment.label === 'NEGATIVE')).toBe(true);
  });

});

// Writes: on a database of its own, so the reads above see exactly the 120 customers they seeded.
describe('GraphQL ingest mutation on real PostgreSQL', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({}, 'graphqlingest');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('ingests through the ingestInteractions mutation with the same result as /ingest', async () => {
    const input = [message(9000), message(9000), { ...message(9001), source: 'myspace' }];
    const r = await app.gql<{ ingestInteractions: { accepted: number; duplicates: number; rejected: { line: number; error: string }[] } }>(
      'mutation($input: [InteractionInput!]!) { ingestInteractions(input: $input) { accepted duplicates rejected { line error } } }',
      { input: input.map((m) => ({ ...m, direction: 'INBOUND' })) },
    );
    expect(r.errors).toBeUndefined();
    expect(r.data.ingestInteractions.accepted).toBe(1);
    expect(r.data.ingestInteractions.duplicates).toBe(1);
    expect(r.data.ingestInteractions.rejected).toEqual([{ line: 3, error: expect.stringContaining('source: must be one of') }]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// graphql-jit (src/graphql/jit.ts) runs a document from its second run on; graphql-js runs the
// first. Both must answer byte for byte alike: data, errors (codes, paths, locations), HTTP status.
// Two Earshot instances on one database: one with the default (jit), one with EARSHOT_GRAPHQL_JIT=false.

const ADMIN = 'jit-admin-key-0123456789';
const ANALYST = 'jit-analyst-key-0123456789';

const OPERATIONS: { name: string; query: string; variables?: Record<string, unknown>; key?: string }[] = [
  {
    name: 'the customer page, every field below a customer',
    query: `query Page($first: Int) { customers(first: $first) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { id displayName createdAt identities { kind network value redacted source }
        sentiment { score label trend interactionCount lastInteractionAt }
        interactions(first: 3) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id source externalId url text occurredAt direction
          inReplyTo lang rating intent intentConfidence author { handle displayName } topics { name department }
          sentiment { score label confidence model explanation { token weight } } } } } } } } }`,
    variables: { first: 20 },
  },
  {
    name: 'the customer page as a role without PII, backward, aliased interactions (the loader path)',
    query: `{ customers(last: 5) { edges { node { id displayName identities { kind value redacted }
      a: interactions(first: 2) { edges { node { id text author { handle } } } } b: interactions(last: 1, order: OLDEST) { edges { cursor node { id } } } } } } }`,
    key: ANALYST,
  },
  {
    name: 'fragments, interfaces, skip and include',
    query: `query Q($skip: Boolean!, $id: ID!) { node(id: $id) { __typename id ... on Customer { displayName @skip(if: $skip) ...Ids } } customers(first: 2) { edges { node { ...Ids @include(if: $skip) } } } }
      fragment Ids on Customer { identities { kind value } }`,
    variables: { skip: true },
  },
  { name: 'the open-items queue', query: `{ openItems(first: 10) { totalCount edges { node { id channel department dueAt status intent slaSeconds customer { displayName } interaction { text } } } } }` },
  { name: 'interactions filtered, through variables', query: `query I($f: InteractionFilter) { interactions(first: 7, filter: $f) { edges { node { id intent sentiment { label } } } } }`, variables: { f: { direction: 'INBOUND' } } },
  { name: 'a page size over the limit', query: `{ customers(first: 101) { totalCount } }` },
  { name: 'a forged cursor, deep', query: `{ customers(first: 2) { edges { node { id interactions(first: 1, after: "bm90IGEgY3Vyc29y") { edges { node { id } } } } } } }` },
  { name: 'a malformed node id', query: `{ node(id: "abc") { id } }` },
  { name: 'a variable of the wrong type', query: `query P($first: Int) { customers(first: $first) { totalCount } }`, variables: { first: 'many' } },
  { name: 'a missing required variable', query: `query N($id: ID!) { node(id: $id) { id } }` },
];

describe('graphql-jit answers as graphql-js does', () => {
  let jit: TestApp;
  let plain: TestApp;
  let customerId: string;

  beforeAll(async () => {
    const keys = { EARSHOT_API_KEYS: `${ADMIN}:admin,${ANALYST}:analyst` };
    jit = await startTestApp(keys, 'jit');
    plain = await startTestApp({ ...keys, EARSHOT_GRAPHQL_JIT: 'false' }, 'jit', jit.database);
    const lines = Array.from({ length: 60 }, (_, i) =>
      message(i, { author: { handle: `jit${i % 15}`, displayName: `Jit ${i % 15}`, ...(i % 5 === 0 ? { email: `jit${i % 15}@example.com` } : {}) } }),
    );
    const res = await fetch(`${jit.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': ADMIN }, body: ndjson(lines) });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(60);
    const first = await jit.gql<{ customers: { edges: { node: { id: string } }[] } }>('{ customers(first: 1) { edges { node { id } } } }', {}, { 'x-api-key': ADMIN });
    customerId = first.data.customers.edges[0]!.node.id;
  }, 120_000);

  afterAll(async () => {
    await plain?.stop();
    await jit?.close();
  });

  const send = async (app: TestApp, op: (typeof OPERATIONS)[number]) => {
    const variables = op.name.startsWith('fragments') ? { ...op.variables, id: customerId } : op.variables;
    const res = await fetch(`${app.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': op.key ?? ADMIN },
      body: JSON.stringify({ query: op.query, variables }),
    });
    return { status: res.status, body: await res.text() };
  };

  it.each(OPERATIONS.map((op) => [op.name, op] as const))('%s', async (_name, op) => {
    const reference = await send(plain, op);
    // the first run is graphql-js's, the next ones are compiled
    const runs = [await send(jit, op), await send(jit, op), await send(jit, op)];
    for (const run of runs) expect(run).toEqual(reference);
    expect(reference.body).not.toContain('INTERNAL_SERVER_ERROR');
  });
});

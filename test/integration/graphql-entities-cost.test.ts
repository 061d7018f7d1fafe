import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// `_entities(representations:)` is a list field with no `first`: the cost estimate took it for
// ten items whatever the caller handed, so one request of 20,000 representations, each asking
// for a customer's interactions, was priced as ten customers and ran.

const KEY = 'entities-cost-analyst-key-0123456789';
const ADMIN = 'entities-cost-admin-key-0123456789';
const QUERY = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id displayName
  interactions(first: 20) { edges { node { text sentiment { label } } } } } } }`;

type Entities = { _entities: ({ id: string; interactions: { edges: unknown[] } } | null)[] | null };

describe('federation _entities: priced by the representations handed', () => {
  let app: TestApp;
  const ids: string[] = [];

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_FEDERATION: 'on', EARSHOT_API_KEYS: `${KEY}:analyst,${ADMIN}:admin` }, 'entcost');
    // 50 customers with 20 interactions each
    const lines = Array.from({ length: 1000 }, (_, n) => message(n, { externalId: `entcost-${n}`, author: { handle: `entcost${n % 50}` } }));
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': ADMIN }, body: ndjson(lines) });
    expect(await res.json()).toMatchObject({ accepted: 1000, rejected: [] });
    const c = await app.gql<{ customers: { edges: { node: { id: string } }[] } }>('{ customers(first: 50) { edges { node { id } } } }', undefined, { 'x-api-key': KEY });
    ids.push(...c.data.customers.edges.map((e) => e.node.id));
    expect(ids).toHaveLength(50);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('answers a gateway-sized request', async () => {
    const r = await app.gql<Entities>(QUERY, { r: ids.slice(0, 10).map((id) => ({ __typename: 'Customer', id })) }, { 'x-api-key': KEY });
    expect(r.errors).toBeUndefined();
    expect(r.data._entities!.map((e) => e!.id)).toEqual(ids.slice(0, 10));
    expect(r.data._entities![0]!.interactions.edges).toHaveLength(20);
  });

  it('refuses 20,000 representations for their cost before resolving any', async () => {
    const reps = Array.from({ length: 20_000 }, (_, i) => ({ __typename: 'Customer', id: ids[i % ids.length] }));
    const r = await app.gql<Entities>(QUERY, { r: reps }, { 'x-api-key': KEY });
    expect(r.errors?.map((e) => e.extensions?.code)).toEqual(['COST_LIMIT_EXCEEDED']);
    expect(r.errors![0]!.message).toMatch(/estimated cost \d+ is over the limit/);
    expect(r.data?._entities ?? null).toBeNull();
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// A customer's interactions are paged by one DataLoader, one query per distinct window: a window
// the pager refuses whole (first over 100, first with last, after and before of two customers'
// lists, a cursor of no list) threw out of the batch, so every customer's interactions field in
// the request failed with it, and the customers it was asked on answered null.

const ADMIN = 'paging-outsider-admin-0123456789';

type Gql = { data: Record<string, unknown> | null; errors?: { message: string; path?: (string | number)[]; extensions?: { code?: string } }[] };
interface Conn {
  pageInfo: { endCursor: string | null };
  edges: { node: { id: string } }[];
}

async function ingest(app: TestApp, lines: unknown[]): Promise<void> {
  const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': ADMIN }, body: ndjson(lines) });
  expect(((await res.json()) as { accepted: number }).accepted).toBe(lines.length);
}

describe('a customer’s interactions: one field’s refused window', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin`, EARSHOT_GAP_ESCALATION: 'off' }, 'pagingout');
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  it('is refused on that field alone: another customer’s interactions in the same request are answered', async () => {
    const lines = Array.from({ length: 6 }, (_, n) => message(500 + n, { author: { handle: n % 2 ? 'outsider_b' : 'outsider_a', displayName: n % 2 ? 'Outsider B' : 'Outsider A' } }));
    await ingest(app, lines);
    const found = (await app.gql(`{ customers(first: 10, filter: { search: "Outsider" }) { edges { node { id displayName } } } }`, undefined, { 'x-api-key': ADMIN })) as Gql;
    const byName = new Map(((found.data!.customers as { edges: { node: { id: string; displayName: string } }[] }).edges).map((e) => [e.node.displayName, e.node.id]));
    const [a, b] = [byName.get('Outsider A')!, byName.get('Outsider B')!];
    expect(a && b).toBeTruthy();
    // B's own cursor, to make windows B's list takes
    const bPage = (await app.gql(`query($b: ID!) { customer(id: $b) { interactions(first: 1) { pageInfo { endCursor } } } }`, { b }, { 'x-api-key': ADMIN })) as Gql;
    const bCursor = (bPage.data!.customer as { interactions: Conn }).interactions.pageInfo.endCursor!;
    const aPage = (await app.gql(`query($a: ID!) { customer(id: $a) { interactions(first: 1) { pageInfo { endCursor } } } }`, { a }, { 'x-api-key': ADMIN })) as Gql;
    const aCursor = (aPage.data!.customer as { interactions: Conn }).interactions.pageInfo.endCursor!;

    // windows the field refuses: too many, first with last, after of B with before of A (two owners)
    const refused: Record<string, string> = {
      'first: 1000': 'first: 1000',
      'first and last': 'first: 1, last: 1',
      'two owners': `after: ${JSON.stringify(bCursor)}, before: ${JSON.stringify(aCursor)}`,
      'a cursor of no list': 'after: "bm90IGEgY3Vyc29y"',
    };
    for (const [name, window] of Object.entries(refused)) {
      const r = (await app.gql(
        `query($a: ID!, $b: ID!) {
           good: customer(id: $a) { id interactions(first: 2) { edges { node { id } } } }
           bad: customer(id: $b) { id interactions(${window}) { edges { node { id } } } }
         }`,
        { a, b },
        { 'x-api-key': ADMIN },
      )) as Gql;
      expect(r.errors, name).toBeDefined();
      expect(r.errors!.every((e) => e.path?.[0] === 'bad'), `${name}: ${JSON.stringify(r.errors!.map((e) => e.path))}`).toBe(true);
      expect(r.errors![0]!.extensions?.code, name).toBe('BAD_USER_INPUT');
      const good = r.data?.good as { id: string; interactions: Conn } | null;
      expect(good?.interactions.edges, name).toHaveLength(2);
    }
  });
});

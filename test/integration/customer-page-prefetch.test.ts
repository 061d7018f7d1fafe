import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// The customer page reads each customer's interactions in its own statement, and only the
// columns the selected fields need (src/customers/customer-page.lookahead.ts). A second
// `interactions` field under the customer (an alias) makes the page load them through the
// DataLoader instead, with every column: both must answer alike, for every selection.

const ADMIN = 'prefetch-admin-key-0123456789';
const ANALYST = 'prefetch-analyst-key-0123456789';

const SELECTIONS = [
  'id source text occurredAt intent sentiment { label score }',
  'id',
  'text',
  '__typename author { handle displayName }',
  'externalId url direction inReplyTo lang rating intentConfidence complaint complaintProbability unhappy',
  'sentiment { confidence model explanation { token weight } }',
  'customer { id displayName } topics { name department }',
  '... on Node { id } ... on Interaction { occurredAt }',
];

describe('the customer page prefetches exactly what its interactions resolve from', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin,${ANALYST}:analyst` }, 'prefetch');
    const lines = Array.from({ length: 40 }, (_, i) =>
      message(i, { author: { handle: `pf${i % 8}`, displayName: i % 3 === 0 ? `pf${i % 8}@example.com` : `Prefetch ${i % 8}` } }),
    );
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': ADMIN }, body: ndjson(lines) });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(40);
  }, 120_000);

  afterAll(async () => {
    await app?.close();
  });

  for (const key of [ADMIN, ANALYST]) {
    for (const selection of SELECTIONS) {
      it(`${key === ADMIN ? 'admin' : 'analyst'}: { ${selection} }`, async () => {
        type Page = { customers: { edges: { node: { id: string; interactions: unknown; other?: unknown } }[] } };
        const page = (extra: string) =>
          `{ customers(first: 10) { edges { node { id interactions(first: 3) { pageInfo { hasNextPage endCursor } edges { cursor node { ${selection} } } } ${extra} } } } }`;
        const prefetched = await app.gql<Page>(page(''), {}, { 'x-api-key': key });
        const loaded = await app.gql<Page>(page('other: interactions(first: 1) { edges { node { id } } }'), {}, { 'x-api-key': key });
        expect(prefetched.errors).toBeUndefined();
        expect(loaded.errors).toBeUndefined();
        expect(prefetched.data.customers.edges.length).toBeGreaterThan(0);
        const strip = (p: Page) => p.customers.edges.map((e) => ({ id: e.node.id, interactions: e.node.interactions }));
        expect(strip(prefetched.data)).toEqual(strip(loaded.data));
      });
    }
  }
});

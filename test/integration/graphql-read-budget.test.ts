import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// The cost limits count fields, not text. 30 aliases of `interactions(first: 100) { text }` over
// texts of 256 KiB (EARSHOT_INGEST_MAX_TEXT_BYTES) read 750 MB in one request: two such requests
// took a 4 GB heap to 1.7 GB RSS (one answered INTERNAL_SERVER_ERROR), and one ran a 256 MB heap
// out of memory, every request in flight lost. A query now reads at most
// EARSHOT_GRAPHQL_MAX_READ_BYTES characters of text (here 1 MiB: 20 texts of 100,000 are 2 MB).

const TEXT = 100_000;

describe('a GraphQL query reads at most EARSHOT_GRAPHQL_MAX_READ_BYTES of text', () => {
  let app: TestApp;
  let customerId: string;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_GRAPHQL_MAX_READ_BYTES: String(1024 * 1024) }, 'readbudget');
    const lines = Array.from({ length: 20 }, (_, n) =>
      message(n, { externalId: `rb-${n}`, author: { handle: 'readbudget' }, text: `Order ${n} arrived late again. ${'the parcel was late and the box was crushed '.repeat(TEXT / 44)}`.slice(0, TEXT) }),
    );
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(await res.json()).toMatchObject({ accepted: 20, rejected: [] });
    const c = await app.gql<{ customers: { edges: { node: { id: string } }[] } }>('{ customers(first: 1) { edges { node { id } } } }');
    customerId = c.data.customers.edges[0]!.node.id;
  });
  afterAll(async () => {
    await app?.close();
  });

  it('answers a page whose texts fit', async () => {
    const r = await app.gql<{ interactions: { edges: { node: { text: string } }[] } }>('{ interactions(first: 5) { edges { node { text } } } }');
    expect(r.errors).toBeUndefined();
    expect(r.data.interactions.edges).toHaveLength(5);
    // (ingest trims the text's last blank)
    for (const e of r.data.interactions.edges) expect(e.node.text.length).toBeGreaterThan(TEXT - 10);
  });

  it('refuses a page, or aliases of pages, whose texts do not, with COST_LIMIT_EXCEEDED naming the setting', async () => {
    const page = await app.gql<{ interactions: unknown }>('{ interactions(first: 20) { edges { node { text } } } }');
    expect(page.data?.interactions ?? null).toBeNull();
    expect(page.errors?.map((e) => e.extensions?.code)).toEqual(['COST_LIMIT_EXCEEDED']);
    expect(page.errors?.[0]?.message).toMatch(/^the query read more than 1048576 characters of text from the database \(EARSHOT_GRAPHQL_MAX_READ_BYTES\)/);

    const aliases = await app.gql<Record<string, unknown>>(`{ ${['a', 'b', 'c', 'd', 'e', 'f'].map((a) => `${a}: interactions(first: 4) { edges { node { text } } }`).join(' ')} }`);
    const codes = (aliases.errors ?? []).map((e) => e.extensions?.code);
    expect(codes.length).toBeGreaterThan(0);
    expect(new Set(codes)).toEqual(new Set(['COST_LIMIT_EXCEEDED']));
  });

  it('refuses an export page whose texts do not fit, and answers it in smaller pages', async () => {
    const whole = await app.gql<unknown>('query($id: ID!) { customerDataExport(id: $id) }', { id: customerId });
    expect(whole.errors?.map((e) => e.extensions?.code)).toEqual(['COST_LIMIT_EXCEEDED']);
    expect(whole.errors?.[0]?.message).toMatch(/page an export with interactionsFirst/);
    const paged = await app.gql<{ customerDataExport: { interactions: unknown[]; interactionsNext: string | null } }>(
      'query($id: ID!) { customerDataExport(id: $id, interactionsFirst: 5) }',
      { id: customerId },
    );
    expect(paged.errors).toBeUndefined();
    expect(paged.data.customerDataExport.interactions).toHaveLength(5);
    expect(paged.data.customerDataExport.interactionsNext).not.toBeNull();
  });

  it('leaves the next query its own budget', async () => {
    await app.gql('{ interactions(first: 20) { edges { node { text } } } }');
    const r = await app.gql<{ interactions: { edges: unknown[] } }>('{ interactions(first: 3) { edges { node { text } } } }');
    expect(r.errors).toBeUndefined();
    expect(r.data.interactions.edges).toHaveLength(3);
  });
});

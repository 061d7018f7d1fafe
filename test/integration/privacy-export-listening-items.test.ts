import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, startTestApp, type TestApp } from '../support/app';

// A brand's own handle taken for a customer collects a listening item for every complaint that
// mentions it: tens of thousands. The data export paged the interactions but carried every
// listening item whole, in every page: 12,000 items made each response tens of MB. Listening items
// now page on their own (at most 5,000 a response), like interactions, and say how many there are.

const ITEMS = 12_000; // inserted directly, besides the one its complaint opened through ingest
const OTHERS = 600; // another customer's items, interleaved in time: never exported here
const INTERACTIONS = 5_001; // one more than a page, so the interactions must be paged too

type Page = {
  interactionsTotal: number;
  interactions: { id: string }[];
  interactionsNext: string | null;
  listeningItemsTotal: number;
  listeningItems: { id: string; opened_at: string; customer_id: string }[];
  listeningItemsNext: string | null;
  identities: unknown[];
  customers: unknown[];
};

describe('customer data export of a customer with many listening items', () => {
  let app: TestApp;
  let gid: string;
  let customerId: string;
  let inOrder: string[];
  let total: number;
  let interactionId: string;
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];

  const exportPage = async (args: Record<string, string | number>): Promise<{ page: Page; bytes: number }> => {
    const res = await fetch(`${app.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: 'query($id: ID!, $ia: String, $if: Int, $la: String, $lf: Int) { customerDataExport(id: $id, interactionsAfter: $ia, interactionsFirst: $if, listeningItemsAfter: $la, listeningItemsFirst: $lf) }',
        variables: { id: gid, ...args },
      }),
    });
    const body = await res.text();
    const parsed = JSON.parse(body) as { data: { customerDataExport: Page } | null; errors?: unknown[] };
    expect(parsed.errors).toBeUndefined();
    return { page: parsed.data!.customerDataExport, bytes: body.length };
  };

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api' }, 'exportitems');
    const seed = [1, 2, 3].map((n) => message(n, { externalId: `brand-${n}`, eventId: `brand-${n}`, author: { handle: 'brandhandle', displayName: 'Brand Support' } }));
    const other = message(4, { externalId: 'other-1', eventId: 'other-1', author: { handle: 'someoneelse', displayName: 'Someone Else' } });
    expect((await app.services.ingest.ingestObjects([...seed, other], 'test')).rejected).toEqual([]);
    const [brand] = await q<{ customer_id: string; id: string }>(`SELECT customer_id, id FROM interaction WHERE external_id = 'brand-1'`);
    const [someone] = await q<{ customer_id: string; id: string }>(`SELECT customer_id, id FROM interaction WHERE external_id = 'other-1'`);
    customerId = brand!.customer_id;
    interactionId = brand!.id;
    gid = Buffer.from(`Customer:${customerId}`).toString('base64url');
    await q(`INSERT INTO interaction (event_id, source, external_id, text, occurred_at, direction, author_handle, author_display_name,
                sentiment_score, sentiment_label, sentiment_confidence, intent, intent_confidence, explanation, customer_id, identity_id)
             SELECT 'clone-' || g, t.source, 'clone-' || g, t.text, t.occurred_at - make_interval(mins => g), t.direction, t.author_handle, t.author_display_name,
                t.sentiment_score, t.sentiment_label, t.sentiment_confidence, t.intent, t.intent_confidence, t.explanation, t.customer_id, t.identity_id
               FROM generate_series(1, $1::int) g, (SELECT * FROM interaction WHERE external_id = 'brand-1') t`, [INTERACTIONS - 3]);
    const [dept] = await q<{ id: number }>(`INSERT INTO department (name) VALUES ('export-items-test') ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`);
    // three items at a time share opened_at, so pages must break ties by id; the other customer's sit among them
    const items = `INSERT INTO listening_item (source, thread_key, interaction_id, last_interaction_id, author_handle, customer_id, department_id, intent,
                       sentiment_score, opened_at, last_opened_at, last_inbound_at, sla_seconds, due_at)
                   SELECT 'x', $5 || g, $2, $2, $6, $1, $3, 'complaint', -0.5, ts, ts, ts, 3600, ts + interval '1 hour'
                     FROM generate_series(1, $4::int) g, LATERAL (SELECT timestamptz '2026-11-01T12:00:00Z' - make_interval(mins => g / 3) AS ts) t`;
    await q(items, [customerId, interactionId, dept!.id, ITEMS, 'brand-thread-', 'brandhandle']);
    await q(items, [someone!.customer_id, someone!.id, dept!.id, OTHERS, 'other-thread-', 'someoneelse']);
    await q('ANALYZE listening_item');
    await q('ANALYZE interaction');
    inOrder = (await q<{ id: string }>(`SELECT id FROM listening_item WHERE customer_id = $1 ORDER BY opened_at, id`, [customerId])).map((r) => r.id);
    total = inOrder.length;
    expect(total).toBeGreaterThan(ITEMS);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
  });

  it('pages the listening items, at most 5,000 a response, every one exactly once in (opened_at, id) order, with the total on each page', async () => {
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const { page, bytes } = await exportPage(after === null ? { lf: 5000, if: 1 } : { la: after, if: 1 });
      pages++;
      expect(page.listeningItems.length).toBeLessThanOrEqual(5_000);
      expect(bytes).toBeLessThan(15_000_000);
      expect(page.listeningItemsTotal).toBe(total);
      expect(page.interactionsTotal).toBe(INTERACTIONS);
      expect(page.interactions).toHaveLength(1);
      expect(page.customers).toHaveLength(1);
      expect(page.identities.length).toBeGreaterThan(0);
      for (const item of page.listeningItems) {
        expect(item.customer_id).toBe(customerId);
        seen.push(item.id);
      }
      after = page.listeningItemsNext;
    } while (after !== null && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(inOrder);
  });

  it('pages the two lists independently, each by its own cursor', async () => {
    const first = (await exportPage({ if: 5000, lf: 100 })).page;
    expect(first.interactions).toHaveLength(5_000);
    expect(first.listeningItems.map((i) => i.id)).toEqual(inOrder.slice(0, 100));
    // the next page of items alongside the same first page of interactions
    const items2 = (await exportPage({ if: 5000, la: first.listeningItemsNext!, lf: 100 })).page;
    expect(items2.interactions.map((i) => i.id)).toEqual(first.interactions.map((i) => i.id));
    expect(items2.listeningItems.map((i) => i.id)).toEqual(inOrder.slice(100, 200));
    // the next page of interactions alongside the same page of items
    const interactions2 = (await exportPage({ ia: first.interactionsNext!, lf: 100 })).page;
    expect(interactions2.interactions).toHaveLength(1);
    expect(interactions2.interactionsNext).toBeNull();
    expect(interactions2.listeningItems.map((i) => i.id)).toEqual(inOrder.slice(0, 100));
    // a list walked to its end: its last id as the cursor gives an empty page
    const done = (await exportPage({ if: 1, la: inOrder[inOrder.length - 1]! })).page;
    expect(done.listeningItems).toEqual([]);
    expect(done.listeningItemsNext).toBeNull();
    expect(done.listeningItemsTotal).toBe(total);
  });

  it('refuses to take a first page for a list that is not paged and does not fit, saying how to page', async () => {
    const cases: [string, string][] = [
      ['interactionsFirst: 10', `has ${total} listening items`],
      ['', 'interactions'],
      ['listeningItemsFirst: 10', `has ${INTERACTIONS} interactions`],
    ];
    for (const [args, says] of cases) {
      const res = await app.gql(`query($id: ID!) { customerDataExport(id: $id${args ? `, ${args}` : ''}) }`, { id: gid });
      expect(res.data).toBeNull();
      expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(res.errors?.[0]?.message).toContain(says);
    }
    const unpagedItems = await app.gql(`query($id: ID!) { customerDataExport(id: $id, interactionsFirst: 10) }`, { id: gid });
    expect(unpagedItems.errors?.[0]?.message).toContain('listeningItemsFirst');
    expect(unpagedItems.errors?.[0]?.message).toContain('listeningItemsNext');
  });

  it('answers bad page sizes and cursors with BAD_USER_INPUT', async () => {
    const bad = [
      'listeningItemsFirst: 0',
      'listeningItemsFirst: -1',
      'listeningItemsFirst: 5001',
      'listeningItemsAfter: "x"',
      `listeningItemsAfter: "${randomUUID()}"`,
      // an interaction id is no listening item
      `listeningItemsAfter: "${interactionId}"`,
    ];
    for (const args of bad) {
      const res = await app.gql(`query($id: ID!) { customerDataExport(id: $id, interactionsFirst: 1, ${args}) }`, { id: gid });
      expect(res.data, args).toBeNull();
      expect(res.errors?.[0]?.extensions?.code, args).toBe('BAD_USER_INPUT');
    }
    // an interactions cursor that names no interaction was an empty last page: it reads as "done"
    // (a listening item's id is no interaction either)
    for (const after of [randomUUID(), inOrder[0]!]) {
      const res = await app.gql(`query($id: ID!, $after: String) { customerDataExport(id: $id, interactionsAfter: $after, listeningItemsFirst: 1) }`, { id: gid, after });
      expect(res.data).toBeNull();
      expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(res.errors?.[0]?.message).toMatch(/is no interaction: pass the interactionsNext/);
    }
  });
});

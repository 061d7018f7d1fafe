import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// A cursor is a position in one list: the list and its order are written in it, and a customer's
// interactions name the customer too. Before, a cursor carried only its order's name, and lists
// share names (customers, interactions and listening items all have NEWEST; openItems and
// listeningItems(order: URGENCY) both URGENCY): a cursor of one list was taken by another as a
// position in its own order, and one customer's interactions cursor paged another customer's.
//
// Keyset paging sees once every item whose sort value does not change while a client pages; an
// item whose value moves between two pages may be seen twice or not at all. Every list had an
// order no change moves (creation, occurredAt) but listening items, all of whose orders move on a
// reopening (lastOpenedAt, dueAt) or an urgency change: listeningItems(order: OPENED) is that order.

const ADMIN = 'paging-admin-0123456789abcdef';

interface Conn {
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  edges: { cursor: string; node: { id: string; occurredAt?: string } }[];
}
type Gql = { data: Record<string, Conn | null> | null; errors?: { message: string; extensions?: { code?: string; details?: { argument?: string } } }[] };

describe('paging cursors belong to their list', () => {
  let app: TestApp;
  const gql = (query: string, variables?: Record<string, unknown>) => app.gql(query, variables, { 'x-api-key': ADMIN }) as Promise<Gql>;

  /** Two customers of the test's own with 8 interleaved interactions each (from message `n0` on); the unhappy ones (n % 3 === 1) open items. */
  async function twoCustomers(n0: number, a: string, b: string): Promise<[string, string]> {
    const lines = Array.from({ length: 16 }, (_, n) => message(n0 + n, { author: n % 2 === 0 ? { handle: `${a}_h`, displayName: a } : { handle: `${b}_h`, displayName: b } }));
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': ADMIN }, body: ndjson(lines) });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(16);
    const r = await gql(`query($s: String) { customers(first: 10, filter: { search: $s }) { edges { node { id displayName } } } }`, { s: a.slice(0, 4) });
    const byName = new Map((r.data!.customers!.edges as unknown as { node: { id: string; displayName: string } }[]).map((e) => [e.node.displayName, e.node.id]));
    return [byName.get(a)!, byName.get(b)!];
  }

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin`, EARSHOT_GAP_ESCALATION: 'off' }, 'paging');
  }, 120_000);

  afterAll(async () => {
    await app?.close();
  });

  // every list of the schema that a cursor can come from and go to (mergeSuggestions' order had a
  // name of its own already), each with its page of 1 asked after `$after`
  const LISTS: Record<string, { query: string; field: (d: Record<string, unknown>) => Conn | null }> = {
    'customers(order: NEWEST)': { query: `query($after: String) { x: customers(first: 1, order: NEWEST, after: $after) { pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }`, field: (d) => d.x as Conn },
    'interactions(order: NEWEST)': { query: `query($after: String) { x: interactions(first: 1, order: NEWEST, after: $after) { pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }`, field: (d) => d.x as Conn },
    'listeningItems(order: NEWEST)': { query: `query($after: String) { x: listeningItems(first: 1, order: NEWEST, after: $after) { pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }`, field: (d) => d.x as Conn },
    'listeningItems(order: URGENCY)': { query: `query($after: String) { x: listeningItems(first: 1, order: URGENCY, after: $after) { pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }`, field: (d) => d.x as Conn },
    openItems: { query: `query($after: String) { x: openItems(first: 1, after: $after) { pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }`, field: (d) => d.x as Conn },
    'Customer.interactions(order: NEWEST)': {
      query: `query($id: ID!, $after: String) { c: customer(id: $id) { x: interactions(first: 1, order: NEWEST, after: $after) { pageInfo { hasNextPage endCursor } edges { cursor node { id } } } } }`,
      field: (d) => (d.c as { x: Conn } | null)?.x ?? null,
    },
  };

  it('refuses a cursor of every other list as BAD_USER_INPUT naming `after`, and answers no page for it', async () => {
    const [alice] = await twoCustomers(100, 'pagingAlice', 'pagingBob');
    const cursors = new Map<string, string>();
    for (const [name, list] of Object.entries(LISTS)) {
      const r = await gql(list.query, { id: alice, after: null });
      expect(r.errors, name).toBeUndefined();
      const page = list.field(r.data!)!;
      expect(page.pageInfo.hasNextPage, name).toBe(true);
      cursors.set(name, page.pageInfo.endCursor!);
      // its own next page is fine
      const next = await gql(list.query, { id: alice, after: page.pageInfo.endCursor });
      expect(next.errors, name).toBeUndefined();
      expect(list.field(next.data!)!.edges.length, name).toBeGreaterThan(0);
    }
    const accepted: string[] = [];
    for (const [from, cursor] of cursors) {
      for (const [to, list] of Object.entries(LISTS)) {
        if (from === to) continue;
        const r = await gql(list.query, { id: alice, after: cursor });
        if (!r.errors) accepted.push(`${from} → ${to}`);
        else {
          expect(r.errors[0]!.extensions, `${from} → ${to}`).toMatchObject({ code: 'BAD_USER_INPUT', details: { argument: 'after' } });
          expect(r.data === null || list.field(r.data) === null, `${from} → ${to}`).toBe(true);
        }
      }
    }
    expect(accepted).toEqual([]);
  });

  it("refuses one customer's interactions cursor on another's list, and goes on from it on the survivor's once that customer is merged away", async () => {
    const all = async (id: string) => {
      const r = await gql(`query($id: ID!) { customer(id: $id) { interactions(first: 100) { edges { node { id occurredAt } } } } }`, { id });
      return (r.data!.customer as unknown as { interactions: Conn }).interactions.edges.map((e) => e.node);
    };
    const [carol, dave] = await twoCustomers(200, 'pagingCarol', 'pagingDave');
    const carols = await all(carol);
    expect(carols).toHaveLength(8);
    // the cursor as a customers page hands it out (its interactions read ahead in the page's own statement)
    const page = await gql(`{ customers(first: 100) { edges { node { id interactions(first: 3) { pageInfo { endCursor } edges { node { id occurredAt } } } } } } }`);
    const mine = (page.data!.customers!.edges as unknown as { node: { id: string; interactions: Conn } }[]).find((e) => e.node.id === carol)!.node.interactions;
    expect(mine.edges.map((e) => e.node.id)).toEqual(carols.slice(0, 3).map((n) => n.id));
    const cursor = mine.pageInfo.endCursor;

    const onDave = await gql(LISTS['Customer.interactions(order: NEWEST)']!.query, { id: dave, after: cursor });
    expect(onDave.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', details: { argument: 'after' } });
    // nor is it taken with its customer cut out of it
    const [name, value, id] = JSON.parse(Buffer.from(cursor!, 'base64url').toString()) as string[];
    const ownerless = await gql(LISTS['Customer.interactions(order: NEWEST)']!.query, { id: carol, after: Buffer.from(JSON.stringify([name, value, id])).toString('base64url') });
    expect(ownerless.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', details: { argument: 'after' } });
    const onCarol = await gql(LISTS['Customer.interactions(order: NEWEST)']!.query, { id: carol, after: cursor });
    expect(onCarol.errors).toBeUndefined();
    expect((onCarol.data!.c as unknown as { x: Conn }).x.edges.map((e) => e.node.id)).toEqual(carols.slice(3, 4).map((n) => n.id));

    // Carol merged into Dave between two pages: her id answers Dave, whose list holds her interactions now
    const m = await gql(`mutation($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "paging test") { __typename } }`, { s: dave, m: carol });
    expect(m.errors).toBeUndefined();
    const rest = await gql(`query($id: ID!, $after: String) { customer(id: $id) { id interactions(first: 100, after: $after) { edges { node { id occurredAt } } } } }`, { id: carol, after: cursor });
    expect(rest.errors).toBeUndefined();
    const after = (rest.data!.customer as unknown as { id: string; interactions: Conn });
    expect(after.id).toBe(dave);
    const restIds = after.interactions.edges.map((e) => e.node.id);
    // the rest of Carol's, each once, and nothing newer than where the page stopped
    expect(restIds.filter((id) => carols.some((a) => a.id === id))).toEqual(carols.slice(3).map((n) => n.id));
    expect(after.interactions.edges.every((e) => e.node.occurredAt! <= carols[2]!.occurredAt!)).toBe(true);
    expect(new Set(restIds).size).toBe(restIds.length);
  });

  it('walks every listening item once in the OPENED order, while items reopen behind and ahead of the page', async () => {
    // six threads of their own, opened before anything else of this file (one a day from 2026-10-01)
    const handles = Array.from({ length: 6 }, (_, k) => `opened_walk_${k}`);
    const opened = (k: number) => message(300 + k, { occurredAt: new Date(Date.UTC(2026, 9, 1 + k, 9)).toISOString(), author: { handle: handles[k], displayName: `Walker ${k}` }, text: 'My parcel is late and nobody answers. Terrible.' });
    const ingest = async (lines: unknown[]) => {
      const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': ADMIN }, body: ndjson(lines) });
      expect(((await res.json()) as { accepted: number }).accepted).toBe(lines.length);
    };
    await ingest(handles.map((_, k) => opened(k)));
    type Item = { id: string; status: string; reopenedCount: number; interaction: { author: { handle: string } } };
    const page = (after: string | null) =>
      gql(`query($after: String) { listeningItems(first: 2, order: OPENED, after: $after) { pageInfo { hasNextPage endCursor } edges { node { id status reopenedCount interaction { author { handle } } } } } }`, { after });
    const seen: Item[] = [];
    let after: string | null = null;
    for (let n = 0; n < 100; n++) {
      const r = await page(after);
      expect(r.errors).toBeUndefined();
      const conn = r.data!.listeningItems as unknown as { pageInfo: Conn['pageInfo']; edges: { node: Item }[] };
      seen.push(...conn.edges.map((e) => e.node));
      if (n === 0) {
        // between the first two pages: the first item (seen) and the fifth (not yet) are answered
        // and closed, then their customers write again, which reopens them
        const ids = [conn.edges[0]!.node.id];
        const all = await gql(`{ listeningItems(first: 100, order: OPENED) { edges { node { id interaction { author { handle } } } } } }`);
        const fifth = (all.data!.listeningItems!.edges as unknown as { node: Item }[]).find((e) => e.node.interaction.author.handle.endsWith(handles[4]!))!.node.id;
        ids.push(fifth);
        for (const id of ids) expect((await gql(`mutation($id: ID!) { closeItem(id: $id, reason: "resolved") { id } }`, { id })).errors).toBeUndefined();
        // replies in their threads, after everything else: NEWEST, OLDEST and DUE move them to an end
        await ingest([0, 4].map((k) => ({ ...opened(k), eventId: `reopen-${k}`, externalId: `reopen-${k}`, inReplyTo: `ext-${300 + k}`, occurredAt: new Date(Date.UTC(2026, 10, 20, 9, k)).toISOString() })));
      }
      if (!conn.pageInfo.hasNextPage) break;
      after = conn.pageInfo.endCursor;
    }
    const mine = seen.filter((i) => handles.some((h) => i.interaction.author.handle.endsWith(h)));
    // each thread's item exactly once, in the order they opened, the reopened ones included
    expect(mine.map((i) => i.interaction.author.handle.replace(/^.*opened_walk_/, ''))).toEqual(['0', '1', '2', '3', '4', '5']);
    for (const k of [0, 4]) {
      const reopened = await gql(`query($id: ID!) { listeningItem(id: $id) { status reopenedCount } }`, { id: mine[k]!.id });
      expect(reopened.data!.listeningItem).toMatchObject({ status: 'OPEN', reopenedCount: 1 });
    }
    expect(new Set(seen.map((i) => i.id)).size).toBe(seen.length);
  });
});

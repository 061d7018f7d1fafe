import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// A page of listening items (openItems, listeningItems) reads each item's customer, opening and
// latest interaction in its own statement, and only the columns the selected fields need (the
// item's own as well)
// (src/listening-gap/listening-items.lookahead.ts). An item reached by listeningItem(id:) has
// nothing prefetched: its fields load through the DataLoaders. Both must answer alike, for every
// selection and role (a customer merged away answers its survivor either way).

const ADMIN = 'items-prefetch-admin-key-0123456789';
const ANALYST = 'items-prefetch-analyst-key-0123456789';

const SELECTIONS = [
  'channel department dueAt customer { displayName } interaction { text }',
  'customer { id }',
  'interaction { id }',
  `customer { __typename id displayName createdAt sentiment { score label interactionCount trend lastInteractionAt } identities { kind network value redacted } }
   interaction { __typename id source externalId url text occurredAt direction inReplyTo author { handle displayName } lang rating
     sentiment { score label confidence model explanation { token weight } } intent intentConfidence complaint complaintProbability unhappy
     customer { id displayName } topics { name department } }`,
  'a: customer { displayName } b: customer { id sentiment { label } } interaction { ... on Node { id } ... on Interaction { text author { handle } } }',
  'customer { ... on Node { id } } lastInteraction { id text }',
  `__typename status channel department topicDepartment assignedUser intent sentimentScore openedAt lastOpenedAt slaSeconds dueAt overdue
   firstResponseAt firstResponseSeconds respondedBy closedAt closeReason reopenedCount escalation { escalatedAt system caseId caseUrl } history { kind actor }`,
  '... on Node { id } ... on ListeningItem { overdue customer { displayName } }',
];

type Node = Record<string, unknown> & { id: string };
type Conn = { edges: { node: Node }[] };

describe('a page of listening items prefetches exactly what its customer and interaction fields resolve from', () => {
  let app: TestApp;

  beforeAll(async () => {
    // escalation off: the items are overdue, and an escalation pass between the two reads a test
    // compares changed what the second one saw (seen once in a full run)
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin,${ANALYST}:analyst`, EARSHOT_GAP_ESCALATION: 'off' }, 'itemsprefetch');
    // unhappy inbound messages open items: on x (public handles) and on email (handles are addresses)
    const lines = Array.from({ length: 36 }, (_, i) =>
      message(i * 3 + 1, {
        source: i % 2 === 0 ? 'x' : 'email',
        author: i % 2 === 0 ? { handle: `oi${i % 9}`, displayName: `Open Item ${i % 9}` } : { handle: `oi${i % 9}@example.com`, displayName: i % 4 === 1 ? `oi${i % 9}@example.com` : `Mail ${i % 9}` },
      }),
    );
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': ADMIN }, body: ndjson(lines) });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(36);
    // a customer merged into another after its items opened: the items still name the merged one
    const customers = await app.gql<{ customers: { edges: { node: { id: string } }[] } }>(`{ customers(first: 2, order: OPEN_ITEMS) { edges { node { id } } } }`, {}, { 'x-api-key': ADMIN });
    const [survivor, merged] = customers.data.customers.edges.map((e) => e.node.id);
    const m = await app.gql(`mutation($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "prefetch test") { __typename } }`, { s: survivor, m: merged }, { 'x-api-key': ADMIN });
    expect(m.errors).toBeUndefined();
  }, 120_000);

  afterAll(async () => {
    await app?.close();
  });

  /** The same items through listeningItem(id:) (nothing prefetched), 8 to a request (the alias limit is 30). */
  async function loaded(ids: string[], selection: string, key: string): Promise<Node[]> {
    const out: Node[] = [];
    for (let start = 0; start < ids.length; start += 8) {
      const chunk = ids.slice(start, start + 8);
      const q = `{ ${chunk.map((id, n) => `i${n}: listeningItem(id: ${JSON.stringify(id)}) { id ${selection} }`).join(' ')} }`;
      const r = await app.gql<Record<string, Node>>(q, {}, { 'x-api-key': key });
      expect(r.errors).toBeUndefined();
      out.push(...chunk.map((_, n) => r.data[`i${n}`]!));
    }
    return out;
  }

  async function statements(query: string, key: string): Promise<{ data: Record<string, Conn>; statements: number }> {
    const requestId = randomUUID();
    const r = await app.gql<Record<string, Conn>>(query, {}, { 'x-api-key': key, 'x-request-id': requestId });
    expect(r.errors).toBeUndefined();
    return { data: r.data, statements: app.db.queries.ofRequest(requestId) };
  }

  for (const key of [ADMIN, ANALYST]) {
    const role = key === ADMIN ? 'admin' : 'analyst';
    for (const selection of SELECTIONS) {
      it(`${role}: openItems { ${selection.replace(/\s+/g, ' ').slice(0, 100)} }`, async () => {
        const page = await statements(`{ openItems(first: 50) { edges { node { id ${selection} } } } }`, key);
        const nodes = page.data.openItems!.edges.map((e) => e.node);
        expect(nodes.length).toBeGreaterThan(10);
        expect(await loaded(nodes.map((n) => n.id), selection, key)).toEqual(nodes);
      });
    }

    it(`${role}: the bench's queue is one statement, and listeningItems prefetches alike`, async () => {
      const queue = await statements(`{ openItems(first: 50) { edges { node { id channel department dueAt customer { displayName } interaction { text } } } } }`, key);
      expect(queue.statements).toBe(1);
      const selection = 'status customer { id displayName } interaction { externalId text } lastInteraction { externalId }';
      const list = await statements(`{ listeningItems(first: 40, filter: { channel: "email" }) { edges { node { id ${selection} } } } }`, key);
      expect(list.statements).toBe(1);
      const nodes = list.data.listeningItems!.edges.map((e) => e.node);
      expect(nodes.length).toBeGreaterThan(5);
      expect(await loaded(nodes.map((n) => n.id), selection, key)).toEqual(nodes);
    });
  }

  it('reads the clock-relative fields (ageSeconds, urgency) on a narrow page as on a full one', async () => {
    type Item = { id: string; ageSeconds: number; urgency: number };
    const narrow = (await statements(`{ openItems(first: 50) { edges { node { id ageSeconds urgency } } } }`, ADMIN)).data.openItems!.edges.map((e) => e.node as unknown as Item);
    const full = (await statements(`{ openItems(first: 50) { edges { node { id ageSeconds urgency status dueAt customer { id } } } } }`, ADMIN)).data.openItems!.edges.map((e) => e.node as unknown as Item);
    expect(narrow.map((n) => n.id)).toEqual(full.map((n) => n.id));
    const urgencies = narrow.map((n) => n.urgency);
    expect(urgencies).toEqual([...urgencies].sort((a, b) => b - a));
    narrow.forEach((n, k) => {
      expect(n.ageSeconds).toBeGreaterThan(0);
      expect(Math.abs(n.ageSeconds - full[k]!.ageSeconds)).toBeLessThanOrEqual(60);
      expect(Math.abs(n.urgency - full[k]!.urgency)).toBeLessThan(0.01);
    });
  });

  it('hides what it hid before from an analyst: display names that read as addresses, email handles, email identities', async () => {
    const selection = 'customer { displayName identities { kind value redacted } } interaction { author { handle displayName } }';
    const page = async (key: string) => (await statements(`{ openItems(first: 50, channel: "email") { edges { node { id ${selection} } } } }`, key)).data.openItems!.edges.map((e) => e.node);
    const text = JSON.stringify(await page(ANALYST));
    expect(text).not.toMatch(/@example\.com/);
    expect(JSON.stringify(await page(ADMIN))).toMatch(/@example\.com/);
  });
});

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

interface Conn<T> {
  totalCount?: number;
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
  edges: { cursor: string; node: T }[];
}

const ADMIN = 'relay-admin-0123456789abcdef';
const ANALYST = 'relay-analyst-0123456789abcdef';
const AGENT = 'relay-agent-0123456789abcdef';

describe('Relay conventions of the GraphQL API', () => {
  let app: TestApp;
  const as = (key: string) => ({ 'x-api-key': key });

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin,${ANALYST}:analyst,${AGENT}:agent:sam`, EARSHOT_GAP_ESCALATION: 'off' }, 'relay');
    const lines = Array.from({ length: 30 }, (_, i) =>
      message(i, { author: { handle: `relay${i}`, displayName: `Relay ${i}`, ...(i === 7 ? { email: 'seven@example.com', phone: '+1 415 555 0107' } : {}) } }),
    );
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...as(ADMIN) }, body: ndjson(lines) });
    expect((await res.json()).accepted).toBe(30);
  });
  afterAll(async () => app?.close());

  const customers = async (args: string, key = ADMIN) => {
    const r = await app.gql<{ customers: Conn<{ id: string; displayName: string; sentiment: { score: number | null } }> }>(
      `{ customers(${args}) { pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id displayName sentiment { score } } } } }`,
      undefined,
      as(key),
    );
    return r;
  };

  it('pages backward with last/before through every customer exactly once, with full PageInfo', async () => {
    const forward: string[] = [];
    let after: string | null = null;
    for (;;) {
      const r = await customers(`first: 7${after ? `, after: "${after}"` : ''}`);
      expect(r.errors).toBeUndefined();
      forward.push(...r.data.customers.edges.map((e) => e.node.id));
      expect(r.data.customers.pageInfo.hasPreviousPage).toBe(after !== null);
      expect(r.data.customers.pageInfo.startCursor).toBe(r.data.customers.edges[0]?.cursor ?? null);
      if (!r.data.customers.pageInfo.hasNextPage) break;
      after = r.data.customers.pageInfo.endCursor;
    }
    const backward: string[] = [];
    let before: string | null = null;
    for (;;) {
      const r = await customers(`last: 8${before ? `, before: "${before}"` : ''}`);
      expect(r.errors).toBeUndefined();
      backward.unshift(...r.data.customers.edges.map((e) => e.node.id));
      expect(r.data.customers.pageInfo.hasNextPage).toBe(before !== null);
      if (!r.data.customers.pageInfo.hasPreviousPage) break;
      before = r.data.customers.pageInfo.startCursor;
    }
    expect(forward).toHaveLength(30);
    expect(new Set(forward).size).toBe(30);
    expect(backward).toEqual(forward);
  });

  it('sorts customers by sentiment, and refuses a cursor of another order or a forged one as BAD_USER_INPUT', async () => {
    const r = await customers('first: 30, order: MOST_NEGATIVE');
    const scores = r.data.customers.edges.map((e) => e.node.sentiment.score ?? 2);
    expect(scores).toEqual([...scores].sort((a, b) => a - b));
    const other = await customers(`first: 5, order: NEWEST, after: "${r.data.customers.pageInfo.endCursor}"`);
    expect(other.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const forged = await customers(`first: 5, after: "${Buffer.from('["newest","2026","nope"]').toString('base64url')}"`);
    expect(forged.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', details: { argument: 'after' } } });
    expect(JSON.stringify(forged.errors)).not.toMatch(/constraints|validationErrors|class-validator/);
  });

  it('counts totalCount only when the query asks for it', async () => {
    const statements = async (q: string) => {
      const requestId = randomUUID();
      const r = await app.gql(q, undefined, { ...as(ADMIN), 'x-request-id': requestId });
      expect(r.errors).toBeUndefined();
      return app.db.queries.ofRequest(requestId);
    };
    const without = await statements(`{ customers(first: 10) { edges { node { interactions(first: 2) { edges { node { text } } } } } } }`);
    const withCounts = await statements(`{ customers(first: 10) { totalCount edges { node { interactions(first: 2) { totalCount edges { node { text } } } } } } }`);
    expect(withCounts).toBe(without + 2);
  });

  it('searches emails and phone numbers only for roles that may see them', async () => {
    const search = async (text: string, key: string) => (await customers(`first: 5, filter: { search: "${text}" }`, key)).data.customers.edges.map((e) => e.node.displayName);
    expect(await search('seven@example', ADMIN)).toEqual(['Relay 7']);
    expect(await search('415 555 0107', AGENT)).toEqual(['Relay 7']);
    expect(await search('seven@example', ANALYST)).toEqual([]);
    expect(await search('415 555 0107', ANALYST)).toEqual([]);
    // roles without PII search display names only (src/auth/pii.policy.ts)
    expect(await search('relay 7', ANALYST)).toEqual(['Relay 7']);
    expect(await search('relay7', ANALYST)).toEqual([]);
  });

  it('fetches a listening item by node(id:) and listeningItem(id:), lists closed ones with their history, and lists departments', async () => {
    const open = await app.gql<{ openItems: Conn<{ id: string }> }>(`{ openItems(first: 2) { edges { node { id } } } }`, undefined, as(AGENT));
    const id = open.data.openItems.edges[0]!.node.id;
    const closed = await app.gql(`mutation($id: ID!) { closeItem(id: $id, reason: "spam") { status } }`, { id }, as(AGENT));
    expect(closed.errors).toBeUndefined();

    const node = await app.gql<{ node: { __typename: string; id: string; status: string } }>(`query($id: ID!) { node(id: $id) { __typename id ... on ListeningItem { status } } }`, { id }, as(ANALYST));
    expect(node.data.node).toEqual({ __typename: 'ListeningItem', id, status: 'CLOSED' });
    const one = await app.gql<{ listeningItem: { id: string } }>(`query($id: ID!) { listeningItem(id: $id) { id } }`, { id }, as(ANALYST));
    expect(one.data.listeningItem.id).toBe(id);

    const list = await app.gql<{ listeningItems: Conn<{ id: string; history: { kind: string; actor: string; detail: string | null }[] }> }>(
      `{ listeningItems(first: 10, filter: { status: [CLOSED] }) { totalCount edges { node { id history { kind actor at detail } } } } }`,
      undefined,
      as(ANALYST),
    );
    expect(list.data.listeningItems.totalCount).toBe(1);
    const history = list.data.listeningItems.edges[0]!.node.history;
    expect(history.map((h) => h.kind)).toEqual(['OPENED', 'CLOSED']);
    expect(history[1]).toMatchObject({ actor: 'sam' });
    expect(JSON.parse(history[1]!.detail!)).toEqual({ reason: 'spam' });

    const deps = await app.gql<{ departments: { name: string; topics: string[] }[] }>(`{ departments { name topics openItems } }`, undefined, as(ANALYST));
    expect(deps.data.departments.map((d) => d.name)).toContain('Finance');
    expect(deps.data.departments.find((d) => d.name === 'Finance')!.topics).toContain('billing');
  });
});

describe('validation errors', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({}, 'validation');
  });
  afterAll(async () => app?.close());

  it('name the argument and the rule, without the validator internals', async () => {
    const r = await app.gql(`mutation { closeItem(id: "${Buffer.from('ListeningItem:3f1c2a4e-8b7d-4c1a-9e2f-0a1b2c3d4e5f').toString('base64url')}", reason: "") { status } }`);
    expect(r.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', details: { violations: [{ argument: 'reason', rule: 'minLength' }] } } });
    expect(JSON.stringify(r.errors)).not.toMatch(/validationErrors|"target"|"value"|constraints/);
    const big = await app.gql(`{ customers(first: 101) { edges { cursor } } }`);
    expect(big.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', details: { argument: 'first', rule: '0..100' } } });
  });
});

import http from 'node:http';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { waitFor } from '../support/kafka-fixtures';

// With EARSHOT_GRAPHQL_CONCURRENCY=1 and the one slot held by an operation that waits on a row
// lock the test holds, a second operation waits in line. Its client hangs up: when the slot
// comes free the operation is not run (src/http/http-server.ts). The same flow with a client that
// stays shows the operation would have run.

const AGENT = 'hungup-agent-0123456789abcdef';
const CLOSE = `mutation($id: ID!) { closeItem(id: $id, reason: "handled") { status } }`;

describe('a GraphQL operation whose client hung up while it waited', () => {
  let app: TestApp;
  let items: string[] = [];
  const as = { 'x-api-key': AGENT };
  const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString('utf8').split(':')[1]!;
  const connections = () => new Promise<number>((resolve, reject) => app.server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
  const waiting = async () => (await app.metrics.graphqlWaiting.get()).values[0]?.value ?? 0;
  const statusOf = async (id: string) => (await app.gql<{ listeningItem: { status: string } }>(`query($id: ID!) { listeningItem(id: $id) { status } }`, { id }, as)).data.listeningItem.status;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${AGENT}:agent:sam`, EARSHOT_GAP_ESCALATION: 'off', EARSHOT_GRAPHQL_CONCURRENCY: '1' }, 'hungup');
    // complaints from four authors open four listening items
    const lines = [1, 4, 7, 10].map((n) => message(n, { author: { handle: `hungup${n}`, displayName: `Hung Up ${n}` } }));
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...as }, body: ndjson(lines) });
    expect((await res.json()).accepted).toBe(4);
    const open = await app.gql<{ openItems: { edges: { node: { id: string } }[] } }>(`{ openItems(first: 10) { edges { node { id } } } }`, undefined, as);
    items = open.data.openItems.edges.map((e) => e.node.id);
    expect(items).toHaveLength(4);
  });
  afterAll(async () => app?.close());

  /** Runs `closeItem(blocked)` while the test holds its row, then `closeItem(target)` behind it; `hangUp` decides what the second client does. */
  async function behindABlockedOperation(blocked: string, target: string, hangUp: boolean): Promise<void> {
    const lock = new Client({ connectionString: app.database.url });
    await lock.connect();
    try {
      await lock.query('BEGIN');
      await lock.query('SELECT 1 FROM listening_item WHERE id = $1 FOR UPDATE', [uuidOf(blocked)]);
      const first = app.gql(CLOSE, { id: blocked }, as);
      // the first operation holds the one slot, waiting for the row
      await waitFor('the first operation to wait for the row lock', async () => {
        const { rows } = await lock.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
        return (rows[0] as { n: number }).n === 1;
      }, 10_000, 20);
      const before = await connections();
      const body = JSON.stringify({ query: CLOSE, variables: { id: target } });
      const second = http.request(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...as } });
      const answered = new Promise<number | null>((resolve) => {
        second.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? null));
        });
        second.on('error', () => resolve(null));
      });
      second.end(body);
      await waitFor('the second operation to wait for the slot', async () => (await waiting()) === 1, 10_000, 20);
      if (hangUp) {
        second.destroy();
        await waitFor('the server to see the client gone', async () => (await connections()) === before, 10_000, 20);
      }
      await lock.query('COMMIT');
      expect((await first).data).toEqual({ closeItem: { status: 'CLOSED' } });
      expect(await answered).toBe(hangUp ? null : 200);
    } finally {
      await lock.end();
    }
  }

  it('is not run when the slot comes free', async () => {
    await behindABlockedOperation(items[0]!, items[1]!, true);
    // this query waits in line behind the second operation's turn: by its answer, that one has had its chance
    expect(await statusOf(items[1]!)).toBe('OPEN');
    expect(await waiting()).toBe(0);
  });

  it('is run when its client stays', async () => {
    await behindABlockedOperation(items[2]!, items[3]!, false);
    expect(await statusOf(items[3]!)).toBe('CLOSED');
  });
});

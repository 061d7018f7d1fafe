import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { waitFor } from '../support/kafka-fixtures';
import { collect, wsClient } from '../support/ws-client';

/**
 * EARSHOT_GRAPHQL_CONCURRENCY and _QUEUE_MAX bound the GraphQL operations of the process. Queries
 * over a WebSocket (graphql-ws runs queries and mutations too) must count against the same bound
 * as HTTP: before, each socket ran up to 100 at once outside it, so a few sockets could hold every
 * pooled connection and as much memory as they liked while HTTP clients were told to wait.
 */
describe('GraphQL operations over WebSocket share the HTTP operation bound', () => {
  const QUERY = '{ customers(first: 1) { edges { node { id } } } }';
  let app: TestApp;
  let locker: pg.Client;

  beforeAll(async () => {
    // one operation at a time, one more in line; a time budget far longer than the test
    app = await startTestApp({ EARSHOT_GRAPHQL_CONCURRENCY: '1', EARSHOT_GRAPHQL_QUEUE_MAX: '1', EARSHOT_GRAPHQL_TIME_BUDGET_MS: '60000' }, 'wsslots');
    locker = new pg.Client({ connectionString: app.database.url });
    await locker.connect();
  });

  afterAll(async () => {
    await locker?.end().catch(() => undefined);
    await app?.close();
  });

  it('takes a slot for each query over a socket, refuses one past the line, and HTTP sees the same line', async () => {
    // Every read of `customer` waits while the test holds this lock, so the operations stay in flight.
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE customer IN ACCESS EXCLUSIVE MODE');
    const client = wsClient(app.url);
    try {
      const answers = [collect<{ customers: { edges: unknown[] } }>(client, QUERY), collect<{ customers: { edges: unknown[] } }>(client, QUERY), collect<{ customers: { edges: unknown[] } }>(client, QUERY)];
      const codes = (r: (typeof answers)[number]) => r.errors.flatMap((e) => (Array.isArray(e) ? e : [e]).map((x) => (x as { extensions?: { code?: string } }).extensions?.code));
      // one runs (waiting for the lock), one waits for the slot, the third is refused at once
      const refused = await waitFor('a query over the socket refused for want of a slot', async () => answers.filter((a) => codes(a).includes('SERVICE_UNAVAILABLE')).length || null, 15_000, 50);
      expect(refused).toBe(1);

      // the same line as HTTP's: with the slot taken and the line full, an HTTP query is refused too
      const res = await fetch(`${app.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: QUERY }),
        signal: AbortSignal.timeout(15_000),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');

      await locker.query('ROLLBACK');
      // the two that held the slot and the line answer once the lock goes
      await waitFor('both queries over the socket answered', async () => answers.filter((a) => a.events.length === 1).length === 2 || null, 15_000, 50);
      for (const a of answers) expect(a.events.length + (codes(a).includes('SERVICE_UNAVAILABLE') ? 1 : 0)).toBe(1);
      // and the slot is given back: HTTP runs again
      const again = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: QUERY }) });
      expect(again.status).toBe(200);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await client.dispose();
    }
  });
});

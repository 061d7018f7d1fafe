import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { waitFor } from '../support/kafka-fixtures';

/**
 * EARSHOT_GRAPHQL_CONCURRENCY slots are shared between callers. Before, they were one line in
 * arrival order: one API key with slow operations in flight (a dashboard gone wrong, a script in
 * a loop) held every slot and the whole line, and every other caller, the care desk's console
 * included, waited behind all of it or was told 503.
 */
describe('GraphQL operation slots are shared fairly between callers', () => {
  const KEYS = { noisy: 'fair-slots-noisy-key-0123456789', desk: 'fair-slots-desk-key-0123456789' };
  const SLOW = '{ customers(first: 1) { edges { node { id } } } }';
  let app: TestApp;
  let locker: pg.Client;

  beforeAll(async () => {
    app = await startTestApp(
      {
        EARSHOT_API_KEYS: `${KEYS.noisy}:analyst,${KEYS.desk}:agent`,
        EARSHOT_GRAPHQL_CONCURRENCY: '3',
        EARSHOT_GRAPHQL_QUEUE_MAX: '100',
        EARSHOT_GRAPHQL_QUEUE_MAX_PER_PRINCIPAL: '10',
        EARSHOT_GRAPHQL_TIME_BUDGET_MS: '60000',
      },
      'fairslots',
    );
    locker = new pg.Client({ connectionString: app.database.url });
    await locker.connect();
  });

  afterAll(async () => {
    await locker?.end().catch(() => undefined);
    await app?.close();
  });

  const ask = (key: string, query: string) =>
    fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: JSON.stringify({ query }) });

  it("answers another caller at once while one caller's operations fill the slots and its line", async () => {
    // every read of `customer` waits while the test holds this lock, so the noisy caller's
    // operations stay in flight as long as the test likes
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE customer IN ACCESS EXCLUSIVE MODE');
    try {
      const statuses: (number | null)[] = Array.from({ length: 20 }, () => null);
      const noisy = Array.from({ length: 20 }, (_, i) => ask(KEYS.noisy, SLOW).then((r) => (statuses[i] = r.status)));
      // two of its operations run (blocked on the lock) and ten wait: its own line's bound. The
      // other eight are refused at once, for that caller alone.
      await waitFor('eight noisy operations refused', async () => statuses.filter((s) => s === 503).length === 8 || null, 15_000, 20);
      const metrics = await (await fetch(`${app.url}/metrics`)).text();
      expect(metrics).toMatch(/^earshot_graphql_operations_waiting 10$/m);

      // the desk's query is answered while every noisy operation still waits for the lock
      // (before, it waited behind them all, until the lock went: the test times out)
      const res = await fetch(`${app.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': KEYS.desk },
        body: JSON.stringify({ query: '{ viewer { role } }' }),
      });
      const desk = { status: res.status, body: await res.json() };
      expect(desk).toEqual({ status: 200, body: { data: { viewer: { role: 'agent' } } } });

      await locker.query('ROLLBACK');
      await Promise.all(noisy);
      // the two that ran and the ten that waited are answered once the lock goes
      expect(statuses.filter((s) => s === 200)).toHaveLength(12);
      expect(statuses.filter((s) => s === 503)).toHaveLength(8);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
    }
  });
});

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/kafka-fixtures';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

/**
 * A table held in ACCESS EXCLUSIVE mode (an operator's VACUUM FULL or ALTER TABLE, a migration)
 * under the API: a GraphQL read of it must answer within about its time budget
 * (EARSHOT_GRAPHQL_TIME_BUDGET_MS), its statement cancelled on the server and its pooled
 * connection given back, so that more requests than the pool holds all get answers and /readyz
 * keeps answering. Ingest keeps its own lock timeout (EARSHOT_INGEST_LOCK_TIMEOUT_MS).
 */
describe('GraphQL reads blocked by a table lock', () => {
  const BUDGET_MS = 300;
  const POOL = 4;
  const INGEST_LOCK_MS = 3_000; // 10 × the budget: ingest must wait this long, not the budget
  const QUERY = '{ customers(first: 10) { edges { node { id } } } }';
  let app: TestApp;
  /** the test's own session, outside the app's pool, to look at pg_stat_activity */
  let own: pg.Client;

  type Answer = { status: number; body: { data?: { customers?: { edges: unknown[] } } | null; errors?: { message: string; extensions?: { code?: string } }[] }; ms: number };
  const ask = async (query = QUERY): Promise<Answer> => {
    const started = performance.now();
    // bounded so that a read that waits for the lock fails the test instead of hanging it
    const res = await fetch(`${app.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query }),
      signal: AbortSignal.timeout(30 * BUDGET_MS),
    });
    return { status: res.status, body: (await res.json()) as Answer['body'], ms: performance.now() - started };
  };
  /** backends of the app's database (not `exceptPid`) waiting for a lock, with their statement */
  const lockWaiters = async (exceptPid: number): Promise<string[]> =>
    (
      await own.query<{ query: string }>(
        `SELECT query FROM pg_stat_activity WHERE datname = current_database() AND pid <> $1 AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`,
        [exceptPid],
      )
    ).rows.map((r) => r.query);

  beforeAll(async () => {
    app = await startTestApp(
      {
        EARSHOT_ROLES: 'api,ingest',
        EARSHOT_GRAPHQL_TIME_BUDGET_MS: String(BUDGET_MS),
        DATABASE_POOL_SIZE: String(POOL),
        EARSHOT_INGEST_LOCK_TIMEOUT_MS: String(INGEST_LOCK_MS),
      },
      'gqllock',
    );
    own = new pg.Client({ connectionString: app.database.url });
    await own.connect();
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: ndjson(Array.from({ length: 6 }, (_, n) => message(n, { externalId: `lockwait-${n}`, eventId: `lockwait-${n}` }))),
    });
    expect(res.status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await own?.end();
    await app?.close();
  });

  it(
    'answers TIME_BUDGET_EXCEEDED within about the budget, frees the pool, leaves no statement waiting; data again once the lock is gone',
    { timeout: 60_000 },
    async () => {
      const before = await ask();
      expect(before.body.errors).toBeUndefined();
      expect(before.body.data?.customers?.edges.length).toBeGreaterThan(0);

      const holder = new pg.Client({ connectionString: app.database.url });
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('LOCK TABLE customer IN ACCESS EXCLUSIVE MODE');

        // three times as many reads as the pool has connections, at once; /readyz beside them
        const [answers, ready] = await Promise.all([
          Promise.all(Array.from({ length: 3 * POOL }, () => ask())),
          (async () => {
            // once the first reads wait on the lock (holding pooled connections)
            await waitFor('a read to wait on the lock', async () => (await lockWaiters(holder.processID!)).length > 0, 20 * BUDGET_MS, 20);
            const res = await fetch(`${app.url}/readyz`, { signal: AbortSignal.timeout(30 * BUDGET_MS) });
            return { status: res.status, body: (await res.json()) as { status: string; reason?: string } };
          })(),
        ]);
        const slowest = Math.max(...answers.map((a) => a.ms));
        console.info(
          `graphql-lock-wait: ${answers.length} reads under ACCESS EXCLUSIVE (pool ${POOL}, budget ${BUDGET_MS} ms) answered in ${Math.min(...answers.map((a) => a.ms)).toFixed(0)}–${slowest.toFixed(0)} ms: ${answers[0]!.status} ${answers[0]!.body.errors?.[0]?.extensions?.code}; /readyz ${ready.status} ${JSON.stringify(ready.body)}`,
        );
        for (const a of answers) {
          expect(a.status).toBe(503);
          expect(a.body.errors?.[0]?.extensions?.code).toBe('TIME_BUDGET_EXCEEDED');
          expect(a.body.errors?.[0]?.message).toMatch(/time budget of 300 ms \(EARSHOT_GRAPHQL_TIME_BUDGET_MS\).*locked.*try again shortly/);
          expect(a.ms).toBeLessThan(10 * BUDGET_MS);
        }
        // the lock on one table is no reason to take the instance out of service: every other read works
        expect(ready).toEqual({ status: 200, body: { status: 'ready' } });

        // cancelled on the server, not merely abandoned by the client
        const waiting = await waitFor('no statement of the app waiting on the lock', async () => {
          const w = await lockWaiters(holder.processID!);
          return w.length === 0 ? w : null;
        }, 10 * BUDGET_MS, 20).catch(async () => lockWaiters(holder.processID!));
        expect(waiting).toEqual([]);

        // a read of another table is not held up meanwhile
        const other = await ask('{ departments { name } }');
        expect(other.body.errors).toBeUndefined();

        // ingest keeps its own lock timeout: it waits that long (10 × the budget), then 503 naming the lock
        const started = performance.now();
        const ingest = await fetch(`${app.url}/ingest`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
          body: ndjson([message(100, { externalId: 'lockwait-ingest', eventId: 'lockwait-ingest', author: { handle: 'lockwait-new' } })]),
          signal: AbortSignal.timeout(10 * INGEST_LOCK_MS),
        });
        const ingestMs = performance.now() - started;
        const ingestBody = (await ingest.json()) as { error?: { message: string } };
        console.info(`graphql-lock-wait: /ingest under the lock answered ${ingest.status} after ${ingestMs.toFixed(0)} ms: ${ingestBody.error?.message}`);
        expect(ingest.status).toBe(503);
        expect(ingestBody.error?.message).toMatch(/locked by another session/);
        expect(ingestMs).toBeGreaterThanOrEqual(INGEST_LOCK_MS);
      } finally {
        await holder.query('ROLLBACK').catch(() => undefined);
        await holder.end();
      }

      const after = await ask();
      expect(after.body.errors).toBeUndefined();
      expect(after.body.data?.customers?.edges.length).toBe(before.body.data?.customers?.edges.length);
    },
  );
});

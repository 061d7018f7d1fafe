import { afterEach, describe, expect, it } from 'vitest';
import { Client } from 'pg';
import { assertSessionsKept } from '../../src/db/session-pooling';
import { message, ndjson } from '../support/app';
import { spawnEarshot } from '../support/earshot-process';
import { startPgBouncer, type PoolMode } from '../support/pgbouncer';
import { createTestDatabase } from '../support/postgres';
import { collect, wsClient } from '../support/ws-client';

/**
 * Earshot behind PgBouncer, the usual PostgreSQL pooler, as an operator puts it there: the compiled
 * CLI with DATABASE_URL at a pgbouncer process of the test's own. In transaction (or statement)
 * mode each transaction may run on another server connection, and what Earshot keeps on a session
 * is shared: before the check, serve started there and two replicas were both outbox relay
 * leaders (8,000 messages for 4,000 events), GraphQL subscriptions received 0 of 10 stored
 * interactions, and the relay's leader lock stayed held after every replica had stopped.
 */
describe('earshot behind PgBouncer', () => {
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const tablesOf = async (url: string): Promise<number> => {
    const c = new Client({ connectionString: url });
    await c.connect();
    try {
      return Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'`)).rows[0]!.n);
    } finally {
      await c.end();
    }
  };

  it.each<PoolMode>(['transaction', 'statement'])('refuses to start in %s pooling mode, in one line naming the setting, before writing anything', async (mode) => {
    const db = await createTestDatabase(`pgb${mode}`);
    cleanups.push(() => db.drop());
    const bouncer = await startPgBouncer(db.url, mode);
    cleanups.push(() => bouncer.stop());
    const p = spawnEarshot({ DATABASE_URL: bouncer.url });
    cleanups.push(() => p.kill('SIGKILL'));
    // before the check it started and listened, whatever it then broke
    const outcome = await Promise.race([p.exited.then((code) => ({ exited: code })), p.listening().then((url) => ({ listening: url }), () => ({ exited: 'before listening' }))]);
    expect(outcome).toEqual({ exited: 1 });
    const { pathname } = new URL(db.url);
    // the log's JSON lines aside, what it says is one line
    expect(p.output().split('\n').filter((l) => l !== '' && !l.startsWith('{'))).toEqual([
      expect.stringMatching(
        new RegExp(
          `^earshot: cannot open the database at 127\\.0\\.0\\.1:${bouncer.port}${pathname} \\(DATABASE_URL\\): it is reached through a connection pooler in transaction or statement mode \\((two sessions open at once ran on one PostgreSQL server process, pid \\d+|the statements of one session ran on PostgreSQL server processes [\\d, ]+)\\): .*point DATABASE_URL at PostgreSQL itself or at a pool in session mode \\(PgBouncer: pool_mode = session\\)$`,
        ),
      ),
    ]);
    // refused before the migrations: the database is as it was
    expect(await tablesOf(db.url)).toBe(0);
  });

  it('starts in session pooling mode: migrates, ingests, answers GraphQL and delivers subscriptions', async () => {
    const db = await createTestDatabase('pgbsession');
    cleanups.push(() => db.drop());
    const bouncer = await startPgBouncer(db.url, 'session');
    cleanups.push(() => bouncer.stop());
    const p = spawnEarshot({ DATABASE_URL: bouncer.url });
    cleanups.push(() => p.kill('SIGKILL'));
    const url = await p.listening();

    const res = await fetch(`${url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(Array.from({ length: 50 }, (_, i) => message(i))) });
    expect(await res.json()).toEqual({ accepted: 50, duplicates: 0, rejected: [] });
    const gql = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ interactions { totalCount } customers { totalCount } }' }) });
    expect(((await gql.json()) as { data: unknown }).data).toEqual({ interactions: { totalCount: 50 }, customers: { totalCount: 50 } });

    // the LISTEN session is kept: a stored interaction reaches a subscriber
    const client = wsClient(url);
    cleanups.push(() => client.dispose());
    const sub = collect<{ interactionRecorded: { externalId: string } }>(client, 'subscription { interactionRecorded { externalId } }');
    let n = 1000;
    await expect
      .poll(async () => {
        const r = await fetch(`${url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([message(n++)]) });
        expect(r.status).toBe(200);
        return sub.events.length > 0;
      }, { timeout: 30_000, interval: 300 })
      .toBe(true);
    expect(sub.events[0]!.interactionRecorded.externalId).toMatch(/^ext-1\d{3}$/);
    sub.dispose();
    await client.dispose();

    expect(await p.kill('SIGTERM')).toBe(0);
  });

  it('never takes a direct connection for a pooled one', async () => {
    const db = await createTestDatabase('pgbdirect');
    cleanups.push(() => db.drop());
    for (let i = 0; i < 20; i++) await expect(assertSessionsKept(db.url)).resolves.toBeUndefined();
  });
});

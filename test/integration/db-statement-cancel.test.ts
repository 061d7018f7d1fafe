import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRetriable, isStatementTimeout, unavailableReason } from '../../src/db/failures';
import { persistIsolating } from '../../src/interactions/isolate-lines';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

// PostgreSQL's SQLSTATE 57014 is both a statement_timeout and a cancel request; it words some
// statement timeouts "canceling statement due to user request" too (a timer firing as one statement
// of a multi-statement query ends). Here the cancel comes from pg_cancel_backend on this test's own
// database and backend, so the wording is the real server's.

describe('a statement PostgreSQL cancels "due to user request"', () => {
  let db: TestDatabase;
  let admin: Client;

  beforeAll(async () => {
    db = await createTestDatabase('stmtcancel');
    admin = new Client({ connectionString: db.url });
    await admin.connect();
  });

  afterAll(async () => {
    await admin?.end();
    await db?.drop();
  });

  /** Runs `sql` on `client` and cancels it with pg_cancel_backend once the server shows it running; the error. */
  async function cancelled(client: Client, sql: string): Promise<unknown> {
    const pid = ((await client.query('SELECT pg_backend_pid() AS pid')).rows[0] as { pid: number }).pid;
    const running = client.query(sql).then(
      () => null,
      (e: unknown) => e,
    );
    for (;;) {
      const { rows } = await admin.query(`SELECT state FROM pg_stat_activity WHERE pid = $1 AND query = $2`, [pid, sql]);
      if (rows[0]?.state === 'active') break;
    }
    await admin.query('SELECT pg_cancel_backend($1)', [pid]);
    return running;
  }

  it('counts as a cancelled statement: retriable, split by persistIsolating, named as a cancel rather than an outage', async () => {
    const client = new Client({ connectionString: db.url });
    await client.connect();
    try {
      const e = await cancelled(client, 'SELECT pg_sleep(30)');
      expect(e).toMatchObject({ code: '57014', message: 'canceling statement due to user request' });
      expect(isRetriable(e)).toBe(true);
      // before: false, and the reason was "the database is unavailable" while the server was up
      expect(isStatementTimeout(e)).toBe(true);
      expect(unavailableReason(e)).toMatch(/^the database cancelled a statement/);

      // a batch of four whose statement is cancelled is stored in halves (before: thrown whole, to be retried whole)
      await client.query('CREATE TABLE cancel_probe (n int PRIMARY KEY)');
      const out = await persistIsolating([1, 2, 3, 4], async (part) => {
        if (part.length > 2) {
          const err = await cancelled(client, `SELECT pg_sleep(30), ${part.length} AS n`);
          throw err;
        }
        await client.query('INSERT INTO cancel_probe SELECT unnest($1::int[])', [part]);
        return { accepted: part.length, duplicates: 0 };
      });
      expect(out).toMatchObject({ accepted: 4, rejected: [], timeoutSplits: 1 });
      expect((await client.query('SELECT array_agg(n ORDER BY n) AS ns FROM cancel_probe')).rows[0].ns).toEqual([1, 2, 3, 4]);
    } finally {
      await client.end();
    }
  });
});

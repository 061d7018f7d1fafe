import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';

/**
 * The PostgreSQL server tests use, as an admin URL: TEST_DATABASE_URL, else the local
 * server on 127.0.0.1:5432 when it answers, else null (the global setup then starts
 * the embedded one).
 */
export async function findTestPostgres(): Promise<string | null> {
  if (process.env.TEST_DATABASE_URL) return process.env.TEST_DATABASE_URL;
  const local = 'postgres://postgres@127.0.0.1:5432/postgres';
  const client = new Client({ connectionString: local, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return local;
  } catch {
    return null;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export const TEST_PG_ENV = 'EARSHOT_TEST_PG_ADMIN_URL';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/**
 * A fresh, empty database of its own for one test file or one test. With `template` (a database
 * nobody is connected to, e.g. one whose app was stopped), a copy of it: a test starts from
 * data a `beforeAll` loaded once, and what it changes is its own.
 */
export async function createTestDatabase(label = 't', template?: TestDatabase): Promise<TestDatabase> {
  const admin = process.env[TEST_PG_ENV];
  if (!admin) throw new Error(`${TEST_PG_ENV} is not set: run the tests through vitest with test/vitest.config.ts`);
  const name = `earshot_${label.replace(/[^a-z0-9]/gi, '').toLowerCase().slice(0, 20)}_${randomBytes(4).toString('hex')}`;
  const client = new Client({ connectionString: admin });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${template.name}` : ''}`);
  } finally {
    await client.end();
  }
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const c = new Client({ connectionString: admin });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** The checkout's root, from the sources (vitest) and from dist/ (compiled benchmarks) alike. */
export const REPO_ROOT = ((): string => {
  let dir = __dirname;
  while (!existsSync(path.join(dir, 'package.json')) || path.basename(dir) === 'dist') {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = parent;
  }
  return dir;
})();

/**
 * Waits until a backend of the current database, other than `exceptPid`, waits for a lock
 * (`pg_stat_activity.wait_event_type = 'Lock'`), and, when `queryPrefix` is given, is running a
 * statement that starts with it: the moment a test that holds a lock has the other side blocked.
 * `query` runs SQL on the test's database; `what` names the wait in the timeout's message.
 */
export async function waitForLockWait(
  query: (sql: string, params: unknown[]) => Promise<unknown>,
  what: string,
  opts: { exceptPid?: number; queryPrefix?: string } = {},
): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const [{ n }] = (await query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
          AND ($1::int IS NULL OR pid <> $1) AND ($2::text IS NULL OR starts_with(query, $2))`,
      [opts.exceptPid ?? null, opts.queryPrefix ?? null],
    )) as { n: number }[];
    if (n > 0) return;
    if (Date.now() > deadline) throw new Error(`timed out after 30 s waiting until ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

import { Client } from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { MIGRATION_LOCK } from '../../src/db/migrate';
import { migrations } from '../../migrations';
import { createLogger } from '../../src/shared/logger';
import { createTestDatabase, waitForLockWait, type TestDatabase } from '../support/postgres';

// Replicas started together on a new database (or on a release with a new migration) each found
// the migrations pending, and all but one failed at start: three at once, two failed on
// `duplicate key value violates unique constraint "pg_type_typname_nsp_index"`.
describe('migrations run by several processes at once', () => {
  const opened: Database[] = [];
  const dbs: TestDatabase[] = [];
  afterEach(async () => {
    for (const db of opened.splice(0)) await db.close();
    for (const db of dbs.splice(0)) await db.drop();
  });

  async function freshDatabase(label: string): Promise<TestDatabase> {
    const db = await createTestDatabase(label);
    dbs.push(db);
    return db;
  }

  async function appliedMigrations(url: string): Promise<string[]> {
    const c = new Client({ connectionString: url });
    await c.connect();
    try {
      return (await c.query<{ name: string }>('SELECT name FROM migration ORDER BY id')).rows.map((r) => r.name);
    } finally {
      await c.end();
    }
  }

  it('three processes starting on a new database all start, and each migration is applied once', async () => {
    const db = await freshDatabase('migconc');
    const config = loadConfig({ DATABASE_URL: db.url, LOG_LEVEL: 'silent' });
    const results = await Promise.allSettled([0, 1, 2].map(() => openDatabase(config, createLogger('silent'))));
    for (const r of results) if (r.status === 'fulfilled') opened.push(r.value);
    expect(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'started'))).toEqual(['started', 'started', 'started']);
    const names = await appliedMigrations(db.url);
    expect(names).toHaveLength(migrations.length);
    expect(new Set(names).size).toBe(migrations.length);
  });

  it('a process waits while another holds the migration lock, then finds nothing left to run; a pool of one connection is enough', async () => {
    const db = await freshDatabase('miglock');
    const config = loadConfig({ DATABASE_URL: db.url, LOG_LEVEL: 'silent', DATABASE_POOL_SIZE: '1' });
    opened.push(await openDatabase(config, createLogger('silent')));
    const holder = new Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
      let settled = false;
      const second = openDatabase(config, createLogger('silent')).finally(() => (settled = true));
      await waitForLockWait((sql, params) => holder.query(sql, params).then((r) => r.rows), 'the second process waits for the migration lock', { queryPrefix: 'SELECT pg_advisory_lock' });
      expect(settled).toBe(false);
      await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
      opened.push(await second);
    } finally {
      await holder.end();
    }
    expect(await appliedMigrations(db.url)).toHaveLength(migrations.length);
  });
});

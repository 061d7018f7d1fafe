import type { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from 'typeorm';
import { createDataSource } from '../../src/db/data-source';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

// A connection the pool has handed out, held between statements, whose server session ends (a
// restart, pg_terminate_backend, a crash of the embedded PostgreSQL): the process must live on,
// the holder's next statement fail, and the pool serve the next caller.
describe('a database connection lost while it is held', () => {
  let db: TestDatabase;
  let ds: DataSource;
  const lost: Error[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('connloss');
    ds = createDataSource({ url: db.url, poolSize: 3, onConnectionLost: (err) => lost.push(err) }).dataSource;
    await ds.initialize();
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });

  it('does not end the process: the holder\'s next statement fails and the pool goes on', async () => {
    // the connection the data source opened to initialize, then a new one: each has the listener
    for (let round = 0; round < 2; round++) {
      const qr = ds.createQueryRunner();
      await qr.connect();
      await qr.startTransaction();
      const [{ pid }] = (await qr.query('SELECT pg_backend_pid() AS pid')) as { pid: number }[];
      const client = (qr as unknown as { databaseConnection: Client }).databaseConnection;
      const ended = new Promise((resolve) => client.once('end', resolve));
      await ds.query('SELECT pg_terminate_backend($1)', [pid]);
      // the server's FATAL reaches the idle connection, then the socket closes
      await ended;
      const next = await qr.query('SELECT 1').then(() => null, (e: unknown) => e);
      expect(next).toBeInstanceOf(Error);
      await qr.release();
      expect(await ds.query('SELECT 1 AS ok')).toEqual([{ ok: 1 }]);
    }
    expect(lost.map((e) => (e as { code?: string }).code)).toEqual(['57P01', '57P01']);
  });
});

import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, startTestApp, type TestApp } from '../support/app';
import { TEST_PG_ENV } from '../support/postgres';

/**
 * The database turns read-only under a running Earshot: a failover that left the service's DNS
 * name on the demoted primary, or an operator's `default_transaction_read_only` during
 * maintenance. Every write then fails with SQLSTATE 25006, which says nothing about the data: the
 * lines must wait (503, a Kafka partition retries), never be rejected or dead-lettered as bad.
 */
describe('a database that turns read-only', () => {
  let app: TestApp;
  let admin: Client;

  /** sets the database's default and ends the app's sessions, so that its pool opens new ones under it */
  const readOnly = async (on: boolean) => {
    await admin.query(`ALTER DATABASE ${app.database.name} ${on ? 'SET default_transaction_read_only = on' : 'RESET default_transaction_read_only'}`);
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [app.database.name]);
  };
  const post = (lines: Record<string, unknown>[]) =>
    fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: lines.map((l) => JSON.stringify(l)).join('\n') }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest' }, 'readonly');
    admin = new Client({ connectionString: process.env[TEST_PG_ENV] });
    await admin.connect();
  });
  afterAll(async () => {
    await app?.close();
    await admin?.end();
  });

  it('answers 503 and rejects no line while writes are refused, then stores them all', async () => {
    const lines = [1, 2, 3].map((n) => message(n, { externalId: `ro-${n}`, eventId: `ro-${n}` }));
    await readOnly(true);
    try {
      // the first statement on a terminated pooled session may fail as a lost connection
      // (retriable too); what matters is that no answer ever rejects a line
      let answer = await post(lines);
      for (let i = 0; i < 5 && answer.status === 503 && !JSON.stringify(answer.body).includes('read-only'); i++) answer = await post(lines);
      expect(answer.status).toBe(503);
      expect(answer.body).toMatchObject({ error: { code: 'SERVICE_UNAVAILABLE', message: expect.stringMatching(/^the database is read-only; 0 lines were stored/) } });
      expect(JSON.stringify(answer.body)).not.toMatch(/rejected/);
    } finally {
      await readOnly(false);
    }
    let stored = await post(lines);
    for (let i = 0; i < 5 && stored.status === 503; i++) stored = await post(lines);
    expect(stored).toMatchObject({ status: 200, body: { accepted: 3, duplicates: 0, rejected: [] } });
  });
});

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { message, ndjson } from '../support/app';
import { spawnEarshot } from '../support/earshot-process';
import { waitFor } from '../support/kafka-fixtures';
import { REPO_ROOT } from '../support/postgres';
import { servicePort } from '../support/ports';

// `npm start` from a checkout in a home folder: as root that is /root, which the OS user
// postgres (who runs the embedded PostgreSQL) cannot enter.
describe('a checkout in a private home folder', () => {
  const home = os.homedir();
  const checkout = mkdtempSync(path.join(home, 'earshot-test-'));
  afterAll(() => {
    const location = path.join(checkout, '.earshot', 'pg-location.txt');
    if (existsSync(location)) rmSync(readFileSync(location, 'utf8').trim(), { recursive: true, force: true });
    rmSync(checkout, { recursive: true, force: true });
  });

  it('starts its embedded PostgreSQL, stores, and keeps the data across a restart', async () => {
    // What the service reads at run time, laid out as in a clone (hard links when the file
    // system allows, so node_modules is not copied byte by byte).
    for (const entry of ['package.json', 'dist', 'schema', 'models', 'node_modules']) {
      try {
        execFileSync('cp', ['-al', path.join(REPO_ROOT, entry), checkout]);
      } catch {
        execFileSync('cp', ['-a', path.join(REPO_ROOT, entry), checkout]);
      }
    }
    expect(statSync(checkout).mode & 0o077).toBe(0);
    const env = { EARSHOT_EMBEDDED_PG_PORT: String(servicePort()) };

    const first = spawnEarshot(env, { root: checkout });
    try {
      const url = await first.httpUrl();
      await waitFor('ready', async () => (await fetch(`${url}/readyz`)).status === 200, 120_000, 200);
      const res = await fetch(`${url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([message(1), message(2)]) });
      expect(await res.json()).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
      if (os.userInfo().uid === 0 && (statSync(home).mode & 0o001) === 0) {
        // postgres could not reach the checkout: the cluster lives where it can, and the log says where
        expect(first.output()).toContain('the OS user postgres cannot enter the data folder');
        expect(readFileSync(path.join(checkout, '.earshot', 'pg-location.txt'), 'utf8')).toMatch(/earshot-postgres/);
      }
      expect(first.output()).not.toMatch(/EACCES/);
    } finally {
      expect(await first.kill('SIGTERM')).toBe(0);
    }

    const second = spawnEarshot(env, { root: checkout });
    try {
      const url = await second.httpUrl();
      await waitFor('ready again', async () => (await fetch(`${url}/readyz`)).status === 200, 120_000, 200);
      const r = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ interactions { totalCount } }' }) });
      expect(await r.json()).toEqual({ data: { interactions: { totalCount: 2 } } });
      expect(second.output()).not.toContain('first start');
    } finally {
      expect(await second.kill('SIGTERM')).toBe(0);
    }
  }, 300_000);
});

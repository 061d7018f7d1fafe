import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { message, ndjson } from '../support/app';
import { spawnEarshot } from '../support/earshot-process';
import { waitFor } from '../support/kafka-fixtures';
import { Client } from 'pg';
import { MIGRATION_LOCK } from '../../src/db/migrate';
import { createTestDatabase, REPO_ROOT, waitForLockWait } from '../support/postgres';
import { servicePort } from '../support/ports';

const MAIN = path.join(REPO_ROOT, 'dist/src/main.js');

interface Started {
  child: ChildProcess;
  url: string;
  ms: number;
  logs: string[];
  exit: Promise<number | null>;
}

/** Runs the compiled CLI like an operator would and waits for its "listening" log line. */
function startEarshot(args: string[], env: Record<string, string>): Promise<Started> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line within 60 s:\n${logs.join('')}`)), 60_000);
    const onData = (chunk: Buffer) => {
      logs.push(chunk.toString());
      const m = /"url":"(http:\/\/localhost:\d+)\/graphql"/.exec(chunk.toString());
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, ms: Date.now() - t0, logs, exit });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => logs.push(c.toString()));
    void exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`earshot exited with ${code} before listening:\n${logs.join('')}`));
    });
  });
}

const gql = async (url: string, query: string) => {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
  return (await res.json()) as { data: Record<string, unknown> };
};

describe('earshot serve on its embedded PostgreSQL (compiled CLI)', () => {
  // Each test starts from a data folder (and a PostgreSQL port) of its own: the first one is a first start.
  let dataDir: string;
  let env: Record<string, string>;
  beforeEach(() => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'earshot-e2e-'));
    env = {
      EARSHOT_DATA_DIR: dataDir,
      EARSHOT_EMBEDDED_PG_PORT: String(servicePort()),
      PORT: '0',
      HOST: '127.0.0.1',
    };
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  it('starts with no DATABASE_URL, ingests, stops on SIGTERM and keeps its data across a restart', async () => {
    const first = await startEarshot(['serve'], env);
    expect(first.logs.join('')).toContain('initialising embedded PostgreSQL (first start)');
    expect(await gql(first.url, '{ __typename }')).toEqual({ data: { __typename: 'Query' } });

    const res = await fetch(`${first.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: ndjson(Array.from({ length: 50 }, (_, i) => message(i))),
    });
    expect(await res.json()).toEqual({ accepted: 50, duplicates: 0, rejected: [] });

    first.child.kill('SIGTERM');
    expect(await first.exit).toBe(0);
    expect(first.logs.join('')).toContain('"msg":"stopped"');

    const second = await startEarshot([], env);
    try {
      expect(second.logs.join('')).not.toContain('first start');
      const r = await gql(second.url, '{ interactions { totalCount } customers { totalCount } }');
      expect(r.data).toEqual({ interactions: { totalCount: 50 }, customers: { totalCount: 50 } });
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exit).toBe(0);
    }
  });

  it('loads the demo data set through the pipeline: hundreds of customers, thousands of interactions', async () => {
    const demo = await startEarshot(['demo'], env);
    try {
      const r = await gql(demo.url, `{ customers(first: 1) { totalCount } interactions(first: 0) { totalCount }
        negative: interactions(first: 0, filter: { label: NEGATIVE }) { totalCount }
        positive: interactions(first: 0, filter: { label: POSITIVE }) { totalCount }
        outbound: interactions(first: 0, filter: { direction: OUTBOUND }) { totalCount } }`);
      const d = r.data as Record<string, { totalCount: number }>;
      expect(d.customers!.totalCount).toBeGreaterThanOrEqual(250);
      expect(d.interactions!.totalCount).toBeGreaterThanOrEqual(3000);
      expect(d.negative!.totalCount).toBeGreaterThan(300);
      expect(d.positive!.totalCount).toBeGreaterThan(300);
      expect(d.outbound!.totalCount).toBeGreaterThan(300);
    } finally {
      demo.child.kill('SIGTERM');
      await demo.exit;
    }
  });

  it('says in one line which address it cannot listen on when the port is taken, exits 1 and leaves no PostgreSQL running', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const child = spawn(process.execPath, [MAIN, 'serve'], { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port), LOG_LEVEL: 'silent' } });
      let err = '';
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      const code = await new Promise((resolve) => child.once('exit', resolve));
      expect(code).toBe(1);
      expect(err.trimEnd().split('\n')).toEqual([`earshot: cannot listen on 127.0.0.1:${port} (the port is taken): stop what uses it, or choose another PORT or HOST (EARSHOT_METRICS_PORT for the metrics listener)`]);
      // the embedded server, if it was started at all, was stopped on the way out
      expect(existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).toBe(false);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  // Both printed `earshot: Error: …` and a stack trace; initdb on a full disk printed its 40 lines of progress with the cause in the middle
  it('says in one line, with the data folder, why the embedded PostgreSQL cannot start: its port taken, a data folder that cannot be made', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const pgPort = (taken.address() as net.AddressInfo).port;
    const aFile = path.join(dataDir, 'a-file');
    writeFileSync(aFile, 'not a folder');
    const cases: [Record<string, string>, string][] = [
      [{ EARSHOT_EMBEDDED_PG_PORT: String(pgPort) }, `earshot: cannot start the embedded PostgreSQL (data in ${dataDir}, EARSHOT_DATA_DIR; or set DATABASE_URL): port ${pgPort} for the embedded PostgreSQL is taken; stop what uses it, set EARSHOT_EMBEDDED_PG_PORT, or set DATABASE_URL`],
      [{ EARSHOT_DATA_DIR: path.join(aFile, 'data') }, `earshot: cannot start the embedded PostgreSQL (data in ${path.join(aFile, 'data')}, EARSHOT_DATA_DIR; or set DATABASE_URL): ENOTDIR: not a directory, mkdir '${path.join(aFile, 'data')}'`],
    ];
    try {
      for (const [vars, line] of cases) {
        const child = spawn(process.execPath, [MAIN, 'serve'], { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '', ...env, ...vars, LOG_LEVEL: 'silent' } });
        let err = '';
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        const code = await new Promise((resolve) => child.once('exit', resolve));
        expect(code).toBe(1);
        expect(err.trimEnd().split('\n')).toEqual([line]);
      }
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('refuses to start in production without authentication, naming the variables', async () => {
    const child = spawn(process.execPath, [MAIN, 'serve'], { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', PORT: 'x' } });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    expect(err).toContain('PORT');
    expect(err).toContain('NODE_ENV=production requires authentication');
  });
});

describe('earshot serve with a DATABASE_URL that does not answer yet', () => {
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('waits for a database that comes up after it, /readyz saying so, then serves', async () => {
    const db = await createTestDatabase('late');
    cleanups.push(() => db.drop());
    const target = new URL(db.url);
    const port = servicePort();
    const late = new URL(db.url);
    late.port = String(port);
    const p = spawnEarshot({ DATABASE_URL: late.toString(), DATABASE_START_WAIT_MS: '120000' });
    cleanups.push(() => p.kill('SIGKILL'));
    const url = await p.httpUrl();
    // Nothing listens on the port yet: the start must wait, not exit.
    const waiting = await waitFor('/readyz to say it waits for the database', async () => {
      const res = await fetch(`${url}/readyz`);
      const body = (await res.json()) as { reason?: string };
      return res.status === 503 && body.reason?.includes('waiting for the database') ? body.reason : null;
    }, 60_000, 50);
    expect(waiting).toBe('starting: waiting for the database (unreachable; trying again)');
    expect(p.child.exitCode).toBeNull();
    // The database "comes up": a TCP relay to the real server on the port of the URL.
    const relay = net.createServer((client) => {
      const upstream = net.connect(Number(target.port || 5432), target.hostname);
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(port, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => relay.close(resolve)));
    await waitFor('ready once the database answers', async () => (await fetch(`${url}/readyz`)).status === 200, 60_000, 100);
    const res = await fetch(`${url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([message(1)]) });
    expect(await res.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(p.output()).toContain('the database cannot be reached yet; trying again');
    relay.closeAllConnections?.();
    expect(await p.kill('SIGTERM')).toBe(0);
  }, 180_000);

  it('asked to stop while it waits for another process\'s migrations, exits within the shutdown time (it waited for ever)', async () => {
    const db = await createTestDatabase('stopwait');
    cleanups.push(() => db.drop());
    const holder = new Client({ connectionString: db.url });
    await holder.connect();
    cleanups.push(() => holder.end());
    await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    const p = spawnEarshot({ DATABASE_URL: db.url, EARSHOT_SHUTDOWN_TIMEOUT_MS: '0' });
    cleanups.push(() => p.kill('SIGKILL'));
    await p.httpUrl();
    await waitForLockWait((sql, params) => holder.query(sql, params).then((r) => r.rows), 'Earshot waits for the migration lock', { queryPrefix: 'SELECT pg_advisory_lock' });
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(1);
    expect(p.output()).toContain('shutdown took too long; exiting');
  }, 60_000);

  it('exits 1 at once with one line naming host, port and database, never the password, when the database does not exist', async () => {
    const url = new URL('postgres://earshot_user:Hunter2-secret@127.0.0.1:5432/earshot_no_such_database_here');
    const p = spawnEarshot({ DATABASE_URL: url.toString() });
    expect(await p.exited).toBe(1);
    const out = p.output();
    expect(out).not.toContain('Hunter2-secret');
    const plain = out.split('\n').filter((l) => l && !l.startsWith('{'));
    expect(plain).toHaveLength(1);
    expect(plain[0]).toMatch(/^earshot: cannot open the database at 127\.0\.0\.1:5432\/earshot_no_such_database_here \(DATABASE_URL\): /);
    expect(out).not.toContain('trying again');
  }, 60_000);
});

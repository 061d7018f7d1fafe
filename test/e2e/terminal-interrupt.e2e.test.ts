import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Client } from 'pg';
import { message, ndjson } from '../support/app';
import { spawnEarshot, type EarshotProcess } from '../support/earshot-process';
import { waitFor } from '../support/kafka-fixtures';
import { servicePort } from '../support/ports';

// Ctrl-C in the terminal of `npm start` sends SIGINT to the whole foreground process group:
// Earshot and, before, its embedded PostgreSQL, which took it as a fast shutdown and ended
// every connection while Earshot was still finishing the requests in flight.

const running: EarshotProcess[] = [];
const dirs: string[] = [];
afterEach(async ({ task }) => {
  if (task.result?.state === 'fail') for (const p of running) console.error(`earshot output (tail):\n${p.output().slice(-4000)}`);
  await Promise.all(running.splice(0).map((p) => p.kill('SIGKILL')));
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The compiled service on the embedded PostgreSQL, in a process group of its own as a terminal starts `npm start`. */
async function startInTerminal() {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'earshot-ctrl-c-'));
  dirs.push(dataDir);
  const pgPort = servicePort();
  const p = spawnEarshot({ EARSHOT_DATA_DIR: dataDir, EARSHOT_EMBEDDED_PG_PORT: String(pgPort) }, { detached: true });
  running.push(p);
  const url = await p.listening();
  const databaseDir = /"databaseDir":"([^"]+)","msg":"embedded PostgreSQL started"/.exec(p.output())![1]!;
  return { p, url, pgPort, databaseDir };
}

describe('Ctrl-C in the terminal of npm start', () => {
  it('finishes the request in flight on the embedded PostgreSQL, then stops both, with no connection errors', async () => {
    const { p, url, pgPort, databaseDir } = await startInTerminal();

    // An operator's session holds the interaction table, so the request below is in flight
    // (waiting for that lock) when the terminal's Ctrl-C arrives.
    const connect = async () => {
      const c = new Client({ connectionString: `postgres://earshot:earshot@127.0.0.1:${pgPort}/earshot` });
      c.on('error', () => undefined); // before the fix, PostgreSQL's shutdown ends this session too
      await c.connect();
      return c;
    };
    const operator = await connect();
    const watcher = await connect();
    await operator.query('BEGIN');
    await operator.query('LOCK TABLE interaction IN ACCESS EXCLUSIVE MODE');
    const ingest = fetch(`${url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([message(1)]) });
    await waitFor('the ingest to wait for the lock', async () => {
      const { rows } = await watcher.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()`);
      return rows[0].n > 0;
    });
    await watcher.end();

    process.kill(-p.child.pid!, 'SIGINT');
    await waitFor('the service to start shutting down', async () => p.output().includes('shutting down'));
    await operator.query('COMMIT').catch(() => undefined);
    await operator.end().catch(() => undefined);

    const res = await ingest;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(await p.exited).toBe(0);
    expect(p.output()).toContain('"msg":"stopped"');
    expect(p.output()).not.toContain('terminating connection');
    expect(p.output()).not.toMatch(/"level":"(warn|error|fatal)"[^\n]*"type":"DatabaseError"/);
    // PostgreSQL shut down cleanly, after Earshot: its pid file is gone
    expect(existsSync(path.join(databaseDir, 'postmaster.pid'))).toBe(false);
  }, 120_000);

  it('a second Ctrl-C exits at once (130) and still stops the embedded PostgreSQL, which no longer shares the signal', async () => {
    const { p, url, pgPort, databaseDir } = await startInTerminal();
    const postmaster = Number(readFileSync(path.join(databaseDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };

    // a request in flight keeps the first Ctrl-C's shutdown waiting
    const operator = new Client({ connectionString: `postgres://earshot:earshot@127.0.0.1:${pgPort}/earshot` });
    operator.on('error', () => undefined);
    await operator.connect();
    await operator.query('BEGIN');
    await operator.query('LOCK TABLE interaction IN ACCESS EXCLUSIVE MODE');
    const ingest = fetch(`${url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([message(1)]) }).catch((e: Error) => e);
    await waitFor('the ingest to wait for the lock', async () => {
      const { rows } = await operator.query(`SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
      return rows[0].n > 0;
    });

    process.kill(-p.child.pid!, 'SIGINT');
    await waitFor('the service to start shutting down', async () => p.output().includes('shutting down'));
    process.kill(-p.child.pid!, 'SIGINT');
    expect(await p.exited).toBe(130);
    expect(p.output()).toContain('second signal: exiting now');
    expect(await ingest).toBeInstanceOf(Error); // the connection closed without an answer
    // PostgreSQL got its fast shutdown from Earshot on the way out: nothing left running
    await waitFor('the embedded PostgreSQL to stop', async () => !alive(postmaster));
    await operator.end().catch(() => undefined);
  }, 120_000);
});

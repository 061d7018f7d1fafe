import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Admin } from 'kafkajs';
import { message, ndjson } from '../support/app';
import { runEarshot, spawnEarshot, type EarshotProcess } from '../support/earshot-process';
import { kafkaEnv, kafkaNames, testKafka, waitFor } from '../support/kafka-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { servicePort } from '../support/ports';

// Real processes killed the way a crash or an operator would: the compiled CLI, its embedded
// PostgreSQL, the shared Kafka broker.

const running: EarshotProcess[] = [];
const start = (env: Record<string, string>, opts?: { root?: string }) => {
  const p = spawnEarshot(env, opts);
  running.push(p);
  return p;
};
afterEach(async ({ task }) => {
  // a failure here is usually one of the processes: its tail says why
  if (task.result?.state === 'fail') for (const p of running) console.error(`earshot output (tail):\n${p.output().slice(-4000)}`);
  await Promise.all(running.splice(0).map((p) => p.kill('SIGKILL')));
});

const get = async (url: string): Promise<{ status: number; body: Record<string, unknown> }> => {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const totalCustomers = async (url: string): Promise<number | null> => {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ customers { totalCount } }' }),
    signal: AbortSignal.timeout(5_000),
  });
  const body = (await res.json()) as { data?: { customers?: { totalCount: number } } | null };
  return body.data?.customers?.totalCount ?? null;
};
const ingestOne = async (url: string, n: number) => {
  const res = await fetch(`${url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([message(n)]) });
  expect(await res.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
};
/** The pid of the postmaster, from postmaster.pid in the cluster's folder. */
const postmasterPid = (databaseDir: string) => Number(readFileSync(path.join(databaseDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
const databaseDirOf = (p: EarshotProcess) => /"databaseDir":"([^"]+)","msg":"embedded PostgreSQL started"/.exec(p.output())![1]!;

describe('a dead embedded PostgreSQL', () => {
  const dirs: string[] = [];
  const embeddedEnv = () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'earshot-heal-'));
    dirs.push(dataDir);
    return { EARSHOT_DATA_DIR: dataDir, EARSHOT_EMBEDDED_PG_PORT: String(servicePort()) };
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('is started again: /healthz says 503 with the reason meanwhile, then 200, and requests work on the same data', async () => {
    const p = start(embeddedEnv());
    const url = await p.httpUrl();
    await waitFor('ready', async () => (await get(`${url}/readyz`)).status === 200, 90_000);
    await ingestOne(url, 1);
    expect(await totalCustomers(url)).toBe(1);

    const pid = postmasterPid(databaseDirOf(p));
    process.kill(pid, 'SIGKILL');
    // Every answer from now on is either "unhealthy, with a reason" or, once restarted, a working service.
    const unhealthy = await waitFor('/healthz to report the dead database', async () => {
      const h = await get(`${url}/healthz`);
      return h.status === 503 ? h.body : null;
    }, 10_000, 20);
    expect(unhealthy.reason).toMatch(/embedded PostgreSQL exited .*restarting/);
    await waitFor('/healthz to say ok again', async () => (await get(`${url}/healthz`)).status === 200, 60_000, 100);
    expect(await totalCustomers(url)).toBe(1);
    await ingestOne(url, 2);
    expect(await totalCustomers(url)).toBe(2);
    expect((await get(`${url}/readyz`)).status).toBe(200);
    expect(postmasterPid(databaseDirOf(p))).not.toBe(pid);
    expect(p.output()).toContain('the embedded PostgreSQL runs again');
    expect(await p.kill('SIGTERM')).toBe(0);
  }, 180_000);

  it('that cannot be started again makes the process exit non-zero for its supervisor, never answering 200 meanwhile', async () => {
    const p = start(embeddedEnv());
    const url = await p.httpUrl();
    await waitFor('ready', async () => (await get(`${url}/readyz`)).status === 200, 90_000);
    const databaseDir = databaseDirOf(p);
    const pid = postmasterPid(databaseDir);
    process.kill(pid, 'SIGKILL');
    // Its data folder gone, no restart can succeed.
    await waitFor('the postmaster to be gone', async () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 10_000, 10);
    renameSync(databaseDir, `${databaseDir}.moved`);
    const statuses = new Set<number>();
    const failures: string[] = [];
    // One request after another until the process has exited. A request that fails while it still
    // runs (a reused connection reset, a slow answer on a busy machine) is noted and asked again:
    // it says nothing about the status. A refused connection means the port has closed, so the
    // process is exiting: the watch waits for that exit.
    const watch = (async () => {
      while (p.child.exitCode === null && p.child.signalCode === null) {
        try {
          statuses.add((await get(`${url}/healthz`)).status);
        } catch (e) {
          const cause = (e as Error).cause as { code?: string } | undefined;
          failures.push(String(cause ?? e));
          if (cause?.code === 'ECONNREFUSED') await p.exited;
        }
      }
    })();
    expect(await p.exited).toBe(1);
    await watch;
    expect(p.output()).toContain('could not be started again');
    expect(statuses.has(200)).toBe(false);
    expect(statuses.has(503), `statuses seen: [${[...statuses].join(', ')}]; failed requests: ${failures.slice(0, 5).join('; ')}`).toBe(true);
  }, 120_000);

  it('is not taken from a running Earshot by a second one started on the same data folder; after a SIGKILL the next start stops the orphan', async () => {
    const env = embeddedEnv();
    const first = start(env);
    const url = await first.httpUrl();
    await waitFor('ready', async () => (await get(`${url}/readyz`)).status === 200, 90_000);
    await ingestOne(url, 1);
    const pid = postmasterPid(databaseDirOf(first));

    // Before, the second start stopped the first one's database as an orphan of a crash, and the
    // first exited when it could not start it again.
    const second = start(env);
    expect(await second.exited).toBe(1);
    expect(second.output()).toContain(`belongs to Earshot process ${first.child.pid}, which is still running`);
    expect(postmasterPid(databaseDirOf(first))).toBe(pid);
    expect((await get(`${url}/healthz`)).status).toBe(200);
    await ingestOne(url, 2);
    expect(await totalCustomers(url)).toBe(2);

    // The one-shot commands use the running one's server instead: `erase` needed the service
    // stopped (one line telling to stop it), on the embedded default, where a person's data is.
    await ingestOne(url, 3);
    const erased = await runEarshot(['erase', '--handle', 'x:user3', '--reason', 'DSR-3'], env);
    expect(erased.stderr).toBe('');
    expect(erased.code).toBe(0);
    expect(JSON.parse(erased.stdout)).toMatchObject({ erasedNow: true, interactions: 1, status: 'done' });
    expect(await runEarshot(['migrate'], env)).toMatchObject({ code: 0, stderr: '' });
    // ... and leave it running when they end
    expect(postmasterPid(databaseDirOf(first))).toBe(pid);
    expect((await get(`${url}/readyz`)).status).toBe(200);
    expect(await totalCustomers(url)).toBe(2);

    // A real orphan (its Earshot killed) is still stopped and replaced, on the same data.
    expect(await first.kill('SIGKILL')).toBe('SIGKILL');
    const third = start(env);
    const thirdUrl = await third.httpUrl();
    await waitFor('ready after the orphan', async () => (await get(`${thirdUrl}/readyz`)).status === 200, 90_000);
    expect(third.output()).toContain('an embedded PostgreSQL from an earlier run is still running; stopping it');
    expect(postmasterPid(databaseDirOf(third))).not.toBe(pid);
    expect(await totalCustomers(thirdUrl)).toBe(2);
    expect(await third.kill('SIGTERM')).toBe(0);
  }, 240_000);
});

describe('HTTP first after SIGKILL', () => {
  const names = kafkaNames('httpfirst');
  let database: TestDatabase;
  let admin: Admin;
  beforeAll(async () => {
    database = await createTestDatabase('httpfirst');
    admin = testKafka().admin();
    await admin.connect();
  });
  afterAll(async () => {
    await database?.drop();
    await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin?.disconnect();
  });

  it('answers /healthz at once and /readyz 503 with the reason until the consumer has joined its group', async () => {
    // A session timeout long enough that the dead member holds up the group for a while.
    const env = { ...kafkaEnv(names), DATABASE_URL: database.url, KAFKA_SESSION_TIMEOUT_MS: '15000' };
    const first = start(env);
    const firstUrl = await first.httpUrl();
    await waitFor('the first process to be ready', async () => (await get(`${firstUrl}/readyz`)).status === 200, 90_000);
    expect(await first.kill('SIGKILL')).toBe('SIGKILL');

    const spawnedAt = Date.now();
    const second = start(env);
    const url = await second.httpUrl();
    const health = await waitFor('/healthz', async () => {
      const h = await get(`${url}/healthz`);
      return h.status === 200 ? { at: Date.now() } : null;
    }, 30_000, 20);
    const reasons = new Set<string>();
    let answeredWhileJoining = false;
    await waitFor('ready once the consumer has joined', async () => {
      const r = await get(`${url}/readyz`);
      if (r.status === 503) reasons.add(String(r.body.reason));
      if (r.status === 503 && /kafka consumer/.test(String(r.body.reason)) && !second.output().includes('kafka consumer joined its group')) {
        answeredWhileJoining ||= (await totalCustomers(url)) === 0;
      }
      return r.status === 200;
    }, 120_000, 100);
    const joinedAt = Date.parse(/"time":"([^"]+)"[^\n]*"msg":"kafka consumer joined its group"/.exec(second.output())![1]!);
    console.info(`http-first: /healthz 200 after ${health.at - spawnedAt} ms, consumer joined after ${joinedAt - spawnedAt} ms`);
    expect(health.at).toBeLessThan(joinedAt);
    expect([...reasons].some((r) => /kafka consumer/.test(r))).toBe(true);
    // While the consumer joins, the API already answers from the database.
    expect(answeredWhileJoining).toBe(true);
    expect(await second.kill('SIGTERM')).toBe(0);
  }, 240_000);
});

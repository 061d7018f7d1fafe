/**
 * npm run bench:graphql — Earshot (api role) against PostGraphile 5 (amber preset, a dev
 * dependency used only here) over the same database with the demo data: the customer page (50
 * customers, identities, sentiment, 5 interactions each) and the open-items queue, at 10 and 50
 * connections with autocannon; req/s, p50, p99, and SQL statements per request (transactions
 * counted by PostgreSQL over 50 sequential requests: every statement of both servers runs in
 * autocommit). The last line is JSON for the customer page (50 connections, and 10 with the
 * suffix 10).
 *
 * BENCH_SECONDS (default 20) per run; BENCH_ROUNDS (default 1): the servers take turns that many
 * times at each connection count, and the medians are reported (the machine is shared: turns
 * let both meet the same load). CPU/request: the server process's user + system time over the
 * run divided by the requests answered (Linux /proc), which the rest of the machine's load
 * disturbs far less than req/s. Both servers run as their own processes on this machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
// autocannon ships no types; the part used here
interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon') as (opts: Record<string, unknown>) => Promise<AutocannonResult>;
import { Client } from 'pg';
import { serviceNodeFlags } from '../../src/service-flags';
import { createTestDatabase, findTestPostgres, REPO_ROOT, TEST_PG_ENV } from '../support/postgres';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 1));
const KEY = 'bench-admin-key-0123456789abcdef';
const HEADERS: Record<string, Record<string, string>> = {
  earshot: { 'content-type': 'application/json', 'x-api-key': KEY },
  postgraphile: { 'content-type': 'application/json' },
};

const QUERIES = {
  earshot: {
    customers: `{ customers(first: 50) { edges { node { id displayName identities { kind network value }
      sentiment { score label trend interactionCount lastInteractionAt }
      interactions(first: 5) { edges { node { id source text occurredAt intent sentiment { label score } } } } } } } }`,
    openItems: `{ openItems(first: 50) { edges { node { id channel department dueAt customer { displayName } interaction { text } } } } }`,
  },
  postgraphile: {
    customers: `{ allCustomers(first: 50) { nodes { id displayName customerIdentitiesByCustomerId { nodes { kind network value } }
      sentimentScore sentimentLabel sentimentTrend interactionCount lastInteractionAt
      interactionsByCustomerId(first: 5, orderBy: OCCURRED_AT_DESC) { nodes { id source text occurredAt intent sentimentLabel sentimentScore } } } } }`,
    openItems: `{ allListeningItems(first: 50, orderBy: DUE_AT_ASC, condition: { status: "open" }) { nodes { id source dueAt
      departmentByDepartmentId { name } customerByCustomerId { displayName } interactionByInteractionId { text } } } }`,
  },
};

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function run(args: string[], env: Record<string, string>, quiet = true): ChildProcess {
  return spawn(process.execPath, args, { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env }, stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'inherit'] });
}

async function until(url: string, query: string, headers: Record<string, string>): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      const r = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query }) });
      const body = (await r.json()) as { errors?: unknown };
      if (r.ok && !body.errors) return;
      if (body.errors) throw new Error(`${url}: ${JSON.stringify(body.errors).slice(0, 500)}`);
    } catch (e) {
      if ((e as Error).message.startsWith(url)) throw e;
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within 120 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function transactionsPerRequest(dbUrl: string, url: string, query: string, headers: Record<string, string>): Promise<number> {
  const c = new Client({ connectionString: dbUrl });
  await c.connect();
  const read = async () => {
    // shared-memory statistics: a backend flushes its own at most once a second, and an idle one
    // within 10 s (PGSTAT_IDLE_INTERVAL); a shorter wait read 0.1 statements per request
    await new Promise((r) => setTimeout(r, 11_000));
    await c.query('SELECT pg_stat_clear_snapshot()');
    const [row] = (await c.query('SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()')).rows as { n: string }[];
    return Number(row!.n);
  };
  const before = await read();
  const n = 50;
  for (let i = 0; i < n; i++) await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query }) }).then((r) => r.arrayBuffer());
  const after = await read();
  await c.end();
  // the reads themselves are 2 transactions of this client
  return (after - before - 2) / n;
}

/** CPU time (user + system) of a process so far, in ms; null where /proc is not there. */
function cpuMs(pid: number | undefined): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return null;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function load(url: string, query: string, connections: number, headers: Record<string, string>, pid?: number) {
  const cpu0 = cpuMs(pid);
  const result = await autocannon({
    url,
    method: 'POST',
    headers,
    body: JSON.stringify({ query }),
    connections,
    duration: SECONDS,
  });
  const cpu1 = cpuMs(pid);
  if (result.non2xx > 0) throw new Error(`${url}: ${result.non2xx} answers were not 2xx`);
  // errors are client-side timeouts (10 s) or resets under overload: reported, not hidden
  const cpuPerRequest = cpu0 !== null && cpu1 !== null && result.requests.total > 0 ? (cpu1 - cpu0) / result.requests.total : null;
  return { rps: Math.round(result.requests.average), p50: result.latency.p50, p99: result.latency.p99, errors: result.errors, cpuPerRequest };
}

async function main(): Promise<void> {
  const admin = await findTestPostgres();
  if (!admin) throw new Error('no PostgreSQL on 127.0.0.1:5432 (or TEST_DATABASE_URL)');
  process.env[TEST_PG_ENV] = admin;
  const db = await createTestDatabase('bench_graphql');
  const main = path.join(REPO_ROOT, 'dist/src/main.js');
  const children: ChildProcess[] = [];
  try {
    console.log('loading the demo data set through the pipeline…');
    const loader = run([main, 'demo', '--load-only'], { DATABASE_URL: db.url, LOG_LEVEL: 'warn' });
    await new Promise<void>((resolve, reject) => loader.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`demo load exited with ${code}`)))));

    const [earshotPort, pgPort] = await Promise.all([freePort(), freePort()]);
    children.push(run([...serviceNodeFlags('api'), main, 'serve'], { DATABASE_URL: db.url, EARSHOT_ROLES: 'api', PORT: String(earshotPort), HOST: '127.0.0.1', LOG_LEVEL: 'warn', NODE_ENV: 'production', EARSHOT_API_KEYS: `${KEY}:admin:bench` }));
    children.push(run([path.join(REPO_ROOT, 'node_modules/postgraphile/dist/cli-run.js'), '-c', db.url, '-s', 'public', '-p', String(pgPort), '-C', path.join(REPO_ROOT, 'test/bench/postgraphile.config.mjs')], { GRAPHILE_ENV: 'production' }));
    const urls = { earshot: `http://127.0.0.1:${earshotPort}/graphql`, postgraphile: `http://127.0.0.1:${pgPort}/graphql` };
    await until(urls.earshot, QUERIES.earshot.customers, HEADERS.earshot!);
    await until(urls.earshot, QUERIES.earshot.openItems, HEADERS.earshot!);
    await until(urls.postgraphile, QUERIES.postgraphile.customers, HEADERS.postgraphile!);
    await until(urls.postgraphile, QUERIES.postgraphile.openItems, HEADERS.postgraphile!);

    const pids = { earshot: children[0]!.pid, postgraphile: children[1]!.pid };
    type Run = Awaited<ReturnType<typeof load>>;
    const results: Record<string, { rps: number; p50: number; p99: number; sql: number; errors: number; cpuPerRequest: number | null }> = {};
    for (const page of ['customers', 'openItems'] as const) {
      const sql: Record<string, number> = {};
      for (const server of ['earshot', 'postgraphile'] as const) {
        const headers = HEADERS[server]!;
        sql[server] = await transactionsPerRequest(db.url, urls[server], QUERIES[server][page], headers);
        // warm-up, not reported
        await autocannon({ url: urls[server], method: 'POST', headers, body: JSON.stringify({ query: QUERIES[server][page] }), connections: 10, duration: 3 });
      }
      for (const connections of [10, 50]) {
        // the servers take turns, ROUNDS times, so both meet the same load from the rest of the machine
        const runs: Record<string, Run[]> = { earshot: [], postgraphile: [] };
        for (let round = 0; round < ROUNDS; round++) {
          for (const server of ['earshot', 'postgraphile'] as const) runs[server]!.push(await load(urls[server], QUERIES[server][page], connections, HEADERS[server]!, pids[server]));
        }
        for (const server of ['earshot', 'postgraphile'] as const) {
          const rs = runs[server]!;
          const cpu = rs.map((r) => r.cpuPerRequest).filter((c): c is number => c !== null);
          const r = {
            rps: median(rs.map((x) => x.rps)), p50: median(rs.map((x) => x.p50)), p99: median(rs.map((x) => x.p99)),
            errors: rs.reduce((n, x) => n + x.errors, 0), cpuPerRequest: cpu.length ? Math.round(median(cpu) * 100) / 100 : null, sql: sql[server]!,
          };
          results[`${server}/${page}/${connections}`] = r;
          const each = ROUNDS > 1 ? `  (rounds: ${rs.map((x) => x.rps).join(', ')} req/s)` : '';
          console.log(`${page.padEnd(10)} ${server.padEnd(13)} ${String(connections).padStart(2)} conns: ${String(r.rps).padStart(5)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  CPU/request ${r.cpuPerRequest ?? '?'} ms  SQL/request ${r.sql.toFixed(1)}${r.errors ? `  (${r.errors} timeouts/errors)` : ''}${each}`);
        }
      }
    }
    const e = results['earshot/customers/50']!;
    const p = results['postgraphile/customers/50']!;
    const e10 = results['earshot/customers/10']!;
    const p10 = results['postgraphile/customers/10']!;
    console.log(JSON.stringify({
      earshotRps: e.rps, postgraphileRps: p.rps, earshotP99Ms: e.p99, postgraphileP99Ms: p.p99,
      earshotRps10: e10.rps, postgraphileRps10: p10.rps, earshotP99Ms10: e10.p99, postgraphileP99Ms10: p10.p99,
      earshotCpuMsPerRequest: e.cpuPerRequest, postgraphileCpuMsPerRequest: p.cpuPerRequest, seconds: SECONDS, rounds: ROUNDS,
    }));
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    await db.drop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

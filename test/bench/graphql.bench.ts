/**
 * npm run bench:graphql — Earshot (api role) against PostGraphile 5 (amber preset, a dev
 * dependency used only here) over the same database with the demo data: the customer page (50
 * customers, identities, sentiment, 5 interactions each) and the open-items queue, at 10 and 50
 * connections with autocannon; req/s, p50, p99, and SQL statements per request (transactions
 * counted by PostgreSQL over 50 sequential requests: every statement of both servers runs in
 * autocommit). The last line is JSON for the 50-connection customer page.
 *
 * BENCH_SECONDS (default 20) per run. Both servers run as their own processes on this machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
// autocannon ships no types; the part used here
interface AutocannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon') as (opts: Record<string, unknown>) => Promise<AutocannonResult>;
import { Client } from 'pg';
import { createTestDatabase, findTestPostgres, REPO_ROOT, TEST_PG_ENV } from '../support/postgres';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
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
    // shared-memory statistics are flushed by each backend at most once a second
    await new Promise((r) => setTimeout(r, 1200));
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

async function load(url: string, query: string, connections: number, headers: Record<string, string>) {
  const result = await autocannon({
    url,
    method: 'POST',
    headers,
    body: JSON.stringify({ query }),
    connections,
    duration: SECONDS,
  });
  if (result.non2xx > 0) throw new Error(`${url}: ${result.non2xx} answers were not 2xx`);
  // errors are client-side timeouts (10 s) or resets under overload: reported, not hidden
  return { rps: Math.round(result.requests.average), p50: result.latency.p50, p99: result.latency.p99, errors: result.errors };
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
    children.push(run([main, 'serve'], { DATABASE_URL: db.url, EARSHOT_ROLES: 'api', PORT: String(earshotPort), HOST: '127.0.0.1', LOG_LEVEL: 'warn', NODE_ENV: 'production', EARSHOT_API_KEYS: `${KEY}:admin:bench` }));
    children.push(run([path.join(REPO_ROOT, 'node_modules/postgraphile/dist/cli-run.js'), '-c', db.url, '-s', 'public', '-p', String(pgPort), '-P', 'postgraphile/presets/amber'], { GRAPHILE_ENV: 'production' }));
    const urls = { earshot: `http://127.0.0.1:${earshotPort}/graphql`, postgraphile: `http://127.0.0.1:${pgPort}/graphql` };
    await until(urls.earshot, QUERIES.earshot.customers, HEADERS.earshot!);
    await until(urls.earshot, QUERIES.earshot.openItems, HEADERS.earshot!);
    await until(urls.postgraphile, QUERIES.postgraphile.customers, HEADERS.postgraphile!);
    await until(urls.postgraphile, QUERIES.postgraphile.openItems, HEADERS.postgraphile!);

    const results: Record<string, { rps: number; p50: number; p99: number; sql: number; errors: number }> = {};
    for (const page of ['customers', 'openItems'] as const) {
      for (const server of ['earshot', 'postgraphile'] as const) {
        const headers = HEADERS[server]!;
        const sql = await transactionsPerRequest(db.url, urls[server], QUERIES[server][page], headers);
        // warm-up, not reported
        await autocannon({ url: urls[server], method: 'POST', headers, body: JSON.stringify({ query: QUERIES[server][page] }), connections: 10, duration: 3 });
        for (const connections of [10, 50]) {
          const r = await load(urls[server], QUERIES[server][page], connections, headers);
          results[`${server}/${page}/${connections}`] = { ...r, sql };
          console.log(`${page.padEnd(10)} ${server.padEnd(13)} ${String(connections).padStart(2)} conns: ${String(r.rps).padStart(5)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  SQL/request ${sql.toFixed(1)}${r.errors ? `  (${r.errors} timeouts/errors)` : ''}`);
        }
      }
    }
    const e = results['earshot/customers/50']!;
    const p = results['postgraphile/customers/50']!;
    console.log(JSON.stringify({ earshotRps: e.rps, postgraphileRps: p.rps, earshotP99Ms: e.p99, postgraphileP99Ms: p.p99, seconds: SECONDS }));
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

/**
 * npm run bench:api — the foundation's figures: start times of the compiled service on its
 * embedded PostgreSQL (first start with initdb, later start), POST /ingest throughput for a
 * 10,000-line body, and p50/p99 of a page of 50 customers with identities and sentiment.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { serviceNodeFlags } from '../../src/service-flags';
import { createLogger } from '../../src/shared/logger';
import { message, ndjson } from '../support/app';
import { createTestDatabase, findTestPostgres, REPO_ROOT, TEST_PG_ENV } from '../support/postgres';
import { servicePort } from '../support/ports';

async function timeToFirstAnswer(dataDir: string, pgPort: number): Promise<number> {
  const port = servicePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, [...serviceNodeFlags(undefined), path.join(REPO_ROOT, 'dist/src/main.js'), 'serve'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', EARSHOT_DATA_DIR: dataDir, EARSHOT_EMBEDDED_PG_PORT: String(pgPort), PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  try {
    for (;;) {
      if (exited !== undefined) throw new Error(`earshot exited with ${exited} before answering`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' });
        if (res.ok) return performance.now() - t0;
      } catch {
        // not listening yet
      }
      if (performance.now() - t0 > 60_000) throw new Error('no answer within 60 s');
      await new Promise((r) => setTimeout(r, 25));
    }
  } finally {
    if (exited === undefined) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function runApiBench(): Promise<string> {
  const lines: string[] = [];
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'earshot-bench-'));
  const pgPort = servicePort();
  try {
    const first = await timeToFirstAnswer(dataDir, pgPort);
    const later = await timeToFirstAnswer(dataDir, pgPort);
    lines.push(`start to first GraphQL answer (embedded PostgreSQL): first start ${(first / 1000).toFixed(2)} s, later start ${(later / 1000).toFixed(2)} s`);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }

  const admin = await findTestPostgres();
  if (!admin) throw new Error('the API benchmark needs PostgreSQL: set TEST_DATABASE_URL or run one on 127.0.0.1:5432');
  process.env[TEST_PG_ENV] = admin;
  const db = await createTestDatabase('bench');
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', DATABASE_URL: db.url, LOG_LEVEL: 'warn', ...(process.env.EARSHOT_INGEST_LANES ? { EARSHOT_INGEST_LANES: process.env.EARSHOT_INGEST_LANES } : {}), ...(process.env.EARSHOT_INGEST_LOCK_TIMEOUT_MS ? { EARSHOT_INGEST_LOCK_TIMEOUT_MS: process.env.EARSHOT_INGEST_LOCK_TIMEOUT_MS } : {}) });
  const app = await startApp(config, createLogger('warn'));
  try {
    // 10,000 interactions from 2,000 authors, a third with email and phone
    const body = ndjson(Array.from({ length: 10_000 }, (_, i) => {
      const a = i % 2000;
      return message(i, { author: { handle: `bench${a}`, displayName: `Bench Author ${a}`, ...(a % 3 === 0 ? { email: `bench${a}@example.com`, phone: `+1415555${String(1000 + a).padStart(4, '0')}` } : {}) } });
    }));
    const rates: number[] = [];
    const cpus: number[] = [];
    for (let round = 0; round < 3; round++) {
      const cpu0 = process.cpuUsage();
      const uniq = round === 0 ? body : body.replaceAll('"externalId":"ext-', `"externalId":"r${round}-`);
      const t0 = performance.now();
      const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: uniq });
      const json = (await res.json()) as { accepted: number };
      const ms = performance.now() - t0;
      if (json.accepted !== 10_000) throw new Error(`accepted ${json.accepted}`);
      rates.push(10_000 / (ms / 1000));
      const cpu = process.cpuUsage(cpu0);
      cpus.push((cpu.user + cpu.system) / 10_000);
    }
    lines.push(`POST /ingest, 10,000-line body: ${rates.map((r) => Math.round(r).toLocaleString('en')).join(', ')} interactions/s (3 rounds; the first creates the 2,000 customers)`);
    // this process: the service (all its threads: the relay's too) and the client's fetch, which is small beside it
    lines.push(`  node CPU per line: ${cpus.map((c) => c.toFixed(0)).join(', ')} µs (EARSHOT_INGEST_LANES ${config.ingestLanes})`);

    const query = JSON.stringify({ query: '{ customers(first: 50) { totalCount edges { node { id displayName identities { kind value } sentiment { score label interactionCount trend } } } } }' });
    const times: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t0 = performance.now();
      const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: query });
      await res.json();
      if (i >= 20) times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    lines.push(`customers(first: 50) with identities and sentiment, 2,000 customers: p50 ${percentile(times, 50).toFixed(1)} ms, p99 ${percentile(times, 99).toFixed(1)} ms (280 sequential requests)`);
  } finally {
    await app.stop();
    await db.drop();
  }
  return lines.join('\n');
}

if (require.main === module) {
  runApiBench().then(
    (report) => console.log(report),
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}

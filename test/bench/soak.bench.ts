/**
 * npm run bench:soak [-- --seconds 60 --pages 200 --ingesters 2 --idle-seconds 60 --json]
 *
 * Runs the compiled service as its own process (so its RSS is its own) on a fresh database,
 * seeds 3,000 interactions from 300 customers, then for `--seconds` drives mixed load over
 * loopback: `--pages` concurrent clients each asking for a customer page (50 customers with
 * identities, sentiment and their last 5 interactions) in a loop, `--ingesters` clients
 * posting 100-line NDJSON bodies to /ingest, and, when KAFKA_BROKERS is set, a producer
 * writing 100 messages a second to the service's own input topic. It reports RSS over time,
 * p50/p99 per kind of request and errors, then idles and checks that RSS comes back under
 * `--max-rss-mb` (400) within `--idle-seconds` (60). Exit code 1 when it does not or when a
 * request failed. `--json` prints one JSON object as the last line.
 *
 * Bounded: every loop stops at its deadline; only 127.0.0.1 is contacted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { message, ndjson } from '../support/app';
import { serviceNodeFlags } from '../../src/service-flags';
import { createTestDatabase, findTestPostgres, REPO_ROOT, TEST_PG_ENV, type TestDatabase } from '../support/postgres';
import { servicePort } from '../support/ports';

const PAGE_QUERY = `query CustomerPage($first: Int!) { customers(first: $first) { totalCount pageInfo { hasNextPage endCursor }
  edges { node { id displayName identities { kind network value redacted }
    sentiment { score label trend interactionCount lastInteractionAt }
    interactions(first: 5) { edges { node { id source text occurredAt intent topics { name department } sentiment { label score } } } } } } } }`;

interface Options {
  seconds: number;
  pages: number;
  ingesters: number;
  idleSeconds: number;
  maxRssMb: number;
  json: boolean;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '60' },
      pages: { type: 'string', default: '200' },
      ingesters: { type: 'string', default: '2' },
      'idle-seconds': { type: 'string', default: '60' },
      'max-rss-mb': { type: 'string', default: '400' },
      json: { type: 'boolean', default: false },
    },
  });
  const n = (v: string | undefined, name: string, min: number, max: number) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < min || x > max) throw new Error(`--${name} must be a number from ${min} to ${max}`);
    return x;
  };
  return {
    seconds: n(values.seconds, 'seconds', 1, 3_600),
    pages: n(values.pages, 'pages', 0, 1_000),
    ingesters: n(values.ingesters, 'ingesters', 0, 50),
    idleSeconds: n(values['idle-seconds'], 'idle-seconds', 1, 600),
    maxRssMb: n(values['max-rss-mb'], 'max-rss-mb', 50, 100_000),
    json: values.json,
  };
}

/** RSS of one process in MB, from /proc (Linux) or ps. */
function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux: ps below
  }
  const out = require('node:child_process').execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }) as string;
  return Number(out.trim()) / 1024;
}

/** V8 heap and off-heap memory of the service in MB, from its Prometheus metrics (best effort). */
async function heapMb(url: string): Promise<{ heapUsed: number; heapTotal: number; external: number } | null> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^(?:earshot_)?${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN) / 1024 / 1024;
    const r = { heapUsed: round(value('nodejs_heap_size_used_bytes')), heapTotal: round(value('nodejs_heap_size_total_bytes')), external: round(value('nodejs_external_memory_bytes')) };
    return Number.isFinite(r.heapUsed) ? r : null;
  } catch {
    return null;
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

async function startService(env: Record<string, string>): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, [...serviceNodeFlags(env.EARSHOT_ROLES), path.join(REPO_ROOT, 'dist/src/main.js'), 'serve'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (c: Buffer) => {
    out = (out + c.toString('utf8')).slice(-200_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  try {
    return await whenReady(child, () => out);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

async function whenReady(child: ChildProcess, output: () => string): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const out = output();
    const m = /"httpUrl":"(http:\/\/localhost:\d+)"/.exec(out);
    if (m) {
      const url = m[1]!.replace('localhost', '127.0.0.1');
      for (;;) {
        const ready = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
        if (ready) return { child, url, output };
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the service did not become ready:\n${out.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the service did not start:\n${out.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main(): Promise<number> {
  const opts = options();
  const say = (line: string) => {
    if (!opts.json) console.log(line);
    else console.error(line);
  };
  const admin = await findTestPostgres();
  let database: TestDatabase | null = null;
  const env: Record<string, string> = {};
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'earshot-soak-'));
  if (admin) {
    process.env[TEST_PG_ENV] = admin;
    database = await createTestDatabase('soak');
    env.DATABASE_URL = database.url;
  } else {
    env.EARSHOT_DATA_DIR = dataDir;
    env.EARSHOT_EMBEDDED_PG_PORT = String(servicePort());
  }
  const brokers = process.env.KAFKA_BROKERS;
  const id = randomUUID().slice(0, 8);
  const topic = `soak.${id}.interactions.v1`;
  const topics = [topic, `${topic}.dlq`, `soak.${id}.interactions.enriched.v1`, `soak.${id}.customer-sentiment.v1`, `soak.${id}.listening-gap.v1`];
  if (brokers) Object.assign(env, { KAFKA_BROKERS: brokers, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: `soak.${id}`, KAFKA_OUTPUT_TOPIC_PREFIX: `soak.${id}.`, KAFKA_TOPIC_PARTITIONS: '3' });

  const service = await startService(env);
  const pid = service.child.pid!;
  const kafka = brokers ? new Kafka({ clientId: 'earshot-soak', brokers: brokers.split(','), logLevel: logLevel.NOTHING }) : null;
  const producer = kafka?.producer();
  try {
    // seed: 3,000 interactions from 300 customers, a third with email and phone
    const author = (a: number) => ({ handle: `soak${a}`, displayName: `Soak Author ${a}`, ...(a % 3 === 0 ? { email: `soak${a}@example.com`, phone: `+1415555${String(1000 + a).padStart(4, '0')}` } : {}) });
    const seedRes = await fetch(`${service.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(Array.from({ length: 3_000 }, (_, i) => message(i, { author: author(i % 300) }))) });
    if (!seedRes.ok) throw new Error(`seeding failed: ${seedRes.status}`);
    await producer?.connect();

    const rssBefore = rssMb(pid);
    say(`soak: ${opts.seconds} s of ${opts.pages} concurrent customer pages, ${opts.ingesters} /ingest clients${kafka ? ', Kafka producer at 100 msg/s' : ''}; RSS before ${round(rssBefore)} MB`);
    const samples: { t: number; rssMb: number; phase: 'load' | 'idle' }[] = [];
    const t0 = Date.now();
    const loadEnd = t0 + opts.seconds * 1_000;
    const latency: Record<'page' | 'ingest' | 'kafka', number[]> = { page: [], ingest: [], kafka: [] };
    const errors: Record<string, number> = {};
    const fail = (kind: string) => (errors[kind] = (errors[kind] ?? 0) + 1);
    let seq = 1_000_000;

    const sampler = setInterval(() => samples.push({ t: (Date.now() - t0) / 1000, rssMb: rssMb(pid), phase: Date.now() < loadEnd ? 'load' : 'idle' }), 1_000);
    const pageClient = async () => {
      while (Date.now() < loadEnd) {
        const started = performance.now();
        try {
          const res = await fetch(`${service.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: PAGE_QUERY, variables: { first: 50 } }) });
          const body = (await res.json()) as { errors?: unknown[]; data?: { customers?: { edges: unknown[] } } };
          if (!res.ok || body.errors || !body.data?.customers?.edges.length) fail('page');
          else latency.page.push(performance.now() - started);
        } catch {
          fail('page');
        }
      }
    };
    const ingestClient = async () => {
      while (Date.now() < loadEnd) {
        const lines = Array.from({ length: 100 }, () => {
          const n = seq++;
          return message(n, { externalId: `soak-${n}`, author: author(n % 600) });
        });
        const started = performance.now();
        try {
          const res = await fetch(`${service.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
          const body = (await res.json()) as { accepted?: number };
          if (!res.ok || body.accepted !== 100) fail('ingest');
          else latency.ingest.push(performance.now() - started);
        } catch {
          fail('ingest');
        }
      }
    };
    const kafkaClient = async () => {
      if (!producer) return;
      while (Date.now() < loadEnd) {
        const started = performance.now();
        try {
          await producer.send({
            topic,
            messages: Array.from({ length: 100 }, () => {
              const n = seq++;
              return { key: `soak${n % 600}`, value: JSON.stringify(message(n, { externalId: `soak-k-${n}`, author: author(n % 600) })) };
            }),
          });
          latency.kafka.push(performance.now() - started);
        } catch {
          fail('kafka');
        }
        await new Promise((r) => setTimeout(r, Math.max(0, 1_000 - (performance.now() - started))));
      }
    };
    await Promise.all([
      ...Array.from({ length: opts.pages }, pageClient),
      ...Array.from({ length: opts.ingesters }, ingestClient),
      kafkaClient(),
    ]);
    const loadSeconds = (Date.now() - t0) / 1000;
    const rssPeak = Math.max(rssBefore, ...samples.map((s) => s.rssMb));
    const rssAtEnd = rssMb(pid);
    const heapAtEnd = await heapMb(service.url);
    say(`load done after ${round(loadSeconds)} s: RSS ${round(rssAtEnd)} MB (peak ${round(rssPeak)} MB), V8 heap ${JSON.stringify(heapAtEnd)}; idling up to ${opts.idleSeconds} s`);

    // Idle: RSS must come back under the ceiling.
    const idleStart = Date.now();
    let backAfter: number | null = null;
    while (Date.now() - idleStart < opts.idleSeconds * 1_000) {
      await new Promise((r) => setTimeout(r, 1_000));
      if (rssMb(pid) < opts.maxRssMb) {
        backAfter = (Date.now() - idleStart) / 1000;
        break;
      }
    }
    clearInterval(sampler);
    const rssAfter = rssMb(pid);
    const heapAfter = await heapMb(service.url);
    const idleCollections = service.output().split('idle: collected garbage').length - 1;
    say(`after idling: V8 heap ${JSON.stringify(heapAfter)}; idle collections ${idleCollections}`);

    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
    const page = sorted(latency.page);
    const ingest = sorted(latency.ingest);
    const errorCount = Object.values(errors).reduce((a, b) => a + b, 0);
    for (let i = 0; i < samples.length; i += 5) say(`  t=${round(samples[i]!.t, 0)} s  RSS ${round(samples[i]!.rssMb)} MB  (${samples[i]!.phase})`);
    say(`customer pages: ${page.length} (${round(page.length / loadSeconds)}/s), p50 ${round(percentile(page, 50))} ms, p99 ${round(percentile(page, 99))} ms`);
    say(`/ingest bodies of 100: ${ingest.length}, p50 ${round(percentile(ingest, 50))} ms, p99 ${round(percentile(ingest, 99))} ms${kafka ? `; Kafka batches of 100 sent: ${latency.kafka.length}` : ''}`);
    say(`errors: ${errorCount} ${JSON.stringify(errors)}`);
    say(`RSS before ${round(rssBefore)} MB, peak ${round(rssPeak)} MB, at the end of the load ${round(rssAtEnd)} MB, after idling ${round(rssAfter)} MB: ${backAfter !== null ? `under ${opts.maxRssMb} MB after ${round(backAfter)} s` : `NOT under ${opts.maxRssMb} MB within ${opts.idleSeconds} s`}`);
    const ok = backAfter !== null && errorCount === 0;
    if (opts.json) {
      console.log(JSON.stringify({
        seconds: opts.seconds,
        pagesConcurrency: opts.pages,
        ingesters: opts.ingesters,
        kafka: kafka !== null,
        rssBeforeMb: round(rssBefore),
        rssPeakMb: round(rssPeak),
        rssAtLoadEndMb: round(rssAtEnd),
        rssAfterMb: round(rssAfter),
        rssBackUnderMaxAfterS: backAfter,
        heapAtLoadEndMb: heapAtEnd,
        heapAfterMb: heapAfter,
        idleCollections,
        maxRssMb: opts.maxRssMb,
        pages: page.length,
        pagesPerSecond: round(page.length / loadSeconds),
        p50Ms: round(percentile(page, 50)),
        p99Ms: round(percentile(page, 99)),
        ingestBodies: ingest.length,
        ingestP50Ms: round(percentile(ingest, 50)),
        ingestP99Ms: round(percentile(ingest, 99)),
        kafkaBatches: latency.kafka.length,
        errors: errorCount,
        errorsByKind: errors,
        rssTimeline: samples.filter((_, i) => i % 5 === 0).map((s) => [round(s.t, 0), round(s.rssMb)]),
        ok,
      }));
    }
    return ok ? 0 : 1;
  } finally {
    await producer?.disconnect().catch(() => undefined);
    service.child.kill('SIGTERM');
    await new Promise((r) => (service.child.exitCode !== null ? r(null) : service.child.once('exit', r)));
    if (kafka) {
      const a = kafka.admin();
      await a.connect();
      await a.deleteTopics({ topics }).catch(() => undefined);
      await a.disconnect();
    }
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  },
);

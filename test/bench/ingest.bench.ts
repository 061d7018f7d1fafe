// Kafka ingest throughput: `npm run bench:ingest` (BENCH_MESSAGES=100000 by default).
// Produces the messages to a fresh topic, then measures on the same data:
//   1. broker ceiling: a bare kafkajs consumer that only counts the messages;
//   2. database ceiling: COPY of the same interactions into a fresh, migrated database;
//   3. end to end: Earshot's ingest role (consumer + pipeline + outbox relay, in this process)
//      from start to the last committed offset, on another fresh database.
// Texts are the TweetEval validation tweets (real posts), cycled; authors repeat, so customers
// accumulate interactions as they would in a listening feed.
// Per interaction it also reports the WAL written (on a server of its own: BENCH_DATABASE=embedded,
// the default, starts one, so other databases' WAL does not count) and its full-page images, the row writes (inserts,
// updates and deletes in pg_stat_user_tables), node CPU, and the p99 from commit to Kafka ack.
// `--json` prints the figures as one JSON object on the last line.
import 'reflect-metadata';
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { openDatabase, startApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../src/db/embedded-postgres';
import { OUTBOX_TOPICS } from '../../src/outbox/outbox-events';
import { createLogger } from '../../src/shared/logger';
import { groupLag, produce, waitFor } from '../support/kafka-fixtures';
import { spawnEarshot } from '../support/earshot-process';
import { ensureKafka } from '../support/kafka';
import { createTestDatabase, findTestPostgres, TEST_PG_ENV } from '../support/postgres';

const N = Number(process.env.BENCH_MESSAGES ?? 100_000);
const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 3);
const AUTHORS = Number(process.env.BENCH_AUTHORS ?? 20_000);
const DATA_DIR = path.resolve(process.env.EARSHOT_SHARED_DATA ?? path.join(process.cwd(), '../shared/data'), 'sentiment');
const SOURCES = ['x', 'facebook', 'instagram', 'reddit', 'trustpilot', 'app_store'];

const JSON_OUT = process.argv.includes('--json');
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 1);
/**
 * Replicas run as compiled child processes when there are several, or with BENCH_OUT_OF_PROCESS=1
 * even when there is one: one child against the in-process app tells what being a process of its
 * own costs, apart from what a second replica costs.
 */
const OUT_OF_PROCESS = REPLICAS > 1 || process.env.BENCH_OUT_OF_PROCESS === '1';
/**
 * BENCH_RATE=n produces the end-to-end messages at n per second while Earshot runs, as a live
 * stream arrives, instead of all of them before it starts: commit → Kafka latency below
 * saturation (at full speed it is mostly the queue of batches waiting for CPU).
 */
const RATE = Number(process.env.BENCH_RATE ?? 0);
const rssMb = () => process.resourceUsage().maxRSS / 1024;
const CLOCK_TICK_US = 10_000; // USER_HZ is 100 on Linux

/** CPU time (user + system, µs) a local process has used, or null when it is not on this machine. */
function cpuOf(pid: number): number | null {
  const split = cpuSplitOf(pid);
  return split && split.user + split.system;
}

/** The same, kept apart: system time is the kernel's work for the process (sockets, loopback TCP, page faults). */
function cpuSplitOf(pid: number): { user: number; system: number } | null {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return { user: Number(fields[11]) * CLOCK_TICK_US, system: Number(fields[12]) * CLOCK_TICK_US };
  } catch {
    return null;
  }
}

function brokerPid(): number | null {
  try {
    // where docker/kafka.sh keeps its pid file: KAFKA_DIR, else .kafka in the repository
    return Number(fs.readFileSync(path.join(process.env.KAFKA_DIR || path.join(process.cwd(), '.kafka'), 'kafka.pid'), 'utf8').trim()) || null;
  } catch {
    return null;
  }
}

/** CPU used by the database's server processes (backends of `db`) so far. */
async function postgresCpu(query: (sql: string) => Promise<unknown>): Promise<Map<number, { user: number; system: number }>> {
  const rows = (await query(`SELECT pid, application_name AS app FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)) as { pid: number; app: string }[];
  const out = new Map<number, { user: number; system: number }>();
  for (const { pid, app } of rows) {
    const c = cpuSplitOf(pid);
    if (c !== null) out.set(pid, c);
    backendApps.set(pid, app || '(none)');
  }
  return out;
}
/** The application_name of each backend seen, for the CPU breakdown by client. */
const backendApps = new Map<number, string>();
/** n compiled ingest processes (`node dist/src/main.js serve`) on the benchmark's topic and database. */
async function startReplicas(n: number, config: ReturnType<typeof loadConfig>, url: string, log: ReturnType<typeof createLogger>) {
  // migrate once, before the processes race to
  const migrated = await openDatabase(config, log);
  await migrated.close();
  const k = config.kafka;
  const env: Record<string, string> = {
    NODE_ENV: 'production',
    EARSHOT_API_KEYS: 'bench-key-0123456789:service',
    DATABASE_URL: url,
    EARSHOT_ROLES: 'ingest',
    LOG_LEVEL: 'warn',
    KAFKA_BROKERS: k.brokers!.join(','),
    KAFKA_TOPICS: k.topics.join(','),
    KAFKA_GROUP_ID: k.groupId,
    KAFKA_OUTPUT_TOPIC_PREFIX: k.outputTopicPrefix,
    KAFKA_TOPIC_PARTITIONS: String(k.partitions),
    KAFKA_CONSUMER_CONCURRENCY: String(Math.max(1, Math.ceil(k.concurrency / n))),
    KAFKA_CHUNK_SIZE: String(k.chunkSize),
    KAFKA_FETCH_MIN_BYTES: String(k.fetchMinBytes),
    KAFKA_FETCH_MAX_WAIT_MS: String(k.fetchMaxWaitMs),
    ...(process.env.BENCH_CHILD_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_CHILD_NODE_OPTIONS } : {}),
  };
  const procs = Array.from({ length: n }, () => spawnEarshot(env));
  let stopping = false;
  const exited = new Promise<never>((_, reject) => {
    for (const p of procs) {
      void p.exited.then((code) => {
        if (!stopping) reject(new Error(`an ingest replica exited (${code}):\n${p.output().slice(-3000)}`));
      });
    }
  });
  exited.catch(() => undefined); // observed where it is awaited; a late exit must not be unhandled
  return {
    cpu: () => procs.reduce((sum, p) => sum + (cpuOf(p.child.pid!) ?? 0), 0),
    systemCpu: () => procs.reduce((sum, p) => sum + (cpuSplitOf(p.child.pid!)?.system ?? 0), 0),
    /** `work`, unless a replica exits first (bad flags, a crash): then its output, instead of waiting for nothing. */
    alive: <T>(work: Promise<T>): Promise<T> => Promise.race([work, exited]),
    async stop() {
      stopping = true;
      await Promise.all(procs.map((p) => p.kill('SIGTERM')));
    },
  };
}

/**
 * Full-page images written to the WAL so far, server-wide (pg_stat_wal, as far as backends have
 * flushed their statistics): the first change to a page after a checkpoint copies the whole page,
 * so a checkpoint inside the run shows here, not as more work per row.
 */
async function fullPageImages(url: string): Promise<number> {
  const [{ n }] = await meterQuery<{ n: number }>(url, 'SELECT wal_fpi::float8 AS n FROM pg_stat_wal');
  return n;
}

/** One query on a connection of its own. */
async function meterQuery<R>(url: string, text: string): Promise<R[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows as R[];
  } finally {
    await client.end();
  }
}

/** Rows inserted, updated and deleted in the database so far (as far as its statistics were flushed). */
async function rowWrites(url: string): Promise<number> {
  const [{ n }] = await meterQuery<{ n: number }>(url, `SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::float8 AS n FROM pg_stat_user_tables`);
  return n;
}

/** Where the row writes went, per table and per interaction (the run's database is fresh). */
async function printTableWrites(url: string): Promise<void> {
  const rows = await meterQuery<{ relname: string; ins: number; upd: number; hot: number; del: number }>(
    url,
    `SELECT relname, n_tup_ins::float8 AS ins, n_tup_upd::float8 AS upd, n_tup_hot_upd::float8 AS hot, n_tup_del::float8 AS del
       FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY n_tup_ins + n_tup_upd + n_tup_del DESC`,
  );
  const per = (n: number) => (n / N).toFixed(3);
  console.log(
    'row writes per interaction by table: ' +
      rows.map((r) => `${r.relname} +${per(r.ins)}${r.upd ? ` ~${per(r.upd)} (hot ${per(r.hot)})` : ''}${r.del ? ` -${per(r.del)}` : ''}`).join(', '),
  );
}

/** Row writes once every exited backend's statistics have arrived (they stop changing). */
async function settledRowWrites(url: string): Promise<number> {
  let last = -1;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const n = await rowWrites(url);
    if (n === last || Date.now() > deadline) return n;
    last = n;
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

/** The upper bucket bound under which 99% of commit → Kafka ack delays fell (the relay's histogram). */
async function publishDelayP99(registry: { getSingleMetric(name: string): unknown }): Promise<number | null> {
  const metric = registry.getSingleMetric('earshot_outbox_publish_delay_seconds') as { get(): Promise<{ values: { metricName?: string; labels: Record<string, unknown>; value: number }[] }> } | undefined;
  if (!metric) return null;
  const { values } = await metric.get();
  const buckets = values.filter((v) => v.metricName?.endsWith('_bucket')).map((v) => ({ le: Number(v.labels.le), n: v.value }));
  const total = buckets.find((b) => !Number.isFinite(b.le))?.n ?? 0;
  if (total === 0) return null;
  const hit = buckets.filter((b) => Number.isFinite(b.le)).sort((a, b) => a.le - b.le).find((b) => b.n >= 0.99 * total);
  return hit ? hit.le * 1000 : Infinity;
}
const rate = (n: number, ms: number) => Math.round((n / ms) * 1000);

/** A paced producer in a process of its own (./paced-producer.ts), ready: `go()` produces and resolves when all are acknowledged. */
async function pacedProducer(brokers: string, topic: string, messages: { key: string; value: string }[], perSec: number): Promise<{ go(): Promise<void> }> {
  const child = fork(path.join(__dirname, 'paced-producer.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = () =>
    new Promise<void>((resolve, reject) => {
      const exited = (code: number | null) => reject(new Error(`the paced producer exited with ${code}`));
      child.once('exit', exited);
      child.once('message', () => {
        child.off('exit', exited);
        resolve();
      });
    });
  const ready = next();
  child.send({ brokers, topic, perSec, messages });
  await ready;
  return {
    go: () => {
      const done = next();
      child.send('go');
      return done;
    },
  };
}

/** CPU seconds the relay's thread reported so far (null when the relay runs in process or in other processes). */
async function relayCpuSeconds(registry: { getSingleMetric(name: string): unknown }): Promise<number | null> {
  const metric = registry.getSingleMetric('earshot_outbox_relay_cpu_seconds_total') as { get(): Promise<{ values: { value: number }[] }> } | undefined;
  if (!metric) return null;
  const { values } = await metric.get();
  return values[0]?.value ?? 0;
}

interface Msg {
  source: string;
  externalId: string;
  occurredAt: string;
  direction: 'inbound';
  author: { handle: string; displayName: string };
  text: string;
}

function generate(): Msg[] {
  const tweets = fs.readFileSync(path.join(DATA_DIR, 'tweeteval_val_text.txt'), 'utf8').split('\n').map((t) => t.trim()).filter(Boolean);
  // in the past however many messages (ingest refuses dates more than a day ahead)
  const base = Math.min(Date.UTC(2026, 9, 1), Date.now() - N * 25_000 - 3_600_000);
  return Array.from({ length: N }, (_, i) => {
    const a = (i * 7_919) % AUTHORS;
    return {
      source: SOURCES[a % SOURCES.length]!,
      externalId: `bench-${i}`,
      occurredAt: new Date(base + i * 25_000).toISOString(),
      direction: 'inbound',
      author: { handle: `author${a}`, displayName: `Author ${a}` },
      text: tweets[i % tweets.length]!,
    };
  });
}

async function bareConsumer(kafka: Kafka, topic: string): Promise<number> {
  const consumer = kafka.consumer({ groupId: `bench.bare.${randomUUID()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let count = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    void consumer.run({
      partitionsConsumedConcurrently: PARTITIONS,
      eachBatch: async ({ batch }) => {
        count += batch.messages.length;
        if (count >= N) resolve();
      },
    });
  });
  const ms = performance.now() - started;
  await consumer.disconnect();
  return ms;
}

/** COPY of the interactions (parsed from the same bytes) into a migrated database: what PostgreSQL can take at most. */
async function copyCeiling(values: Buffer[], url: string): Promise<number> {
  const client = new Client({ connectionString: url });
  await client.connect();
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
  const started = performance.now();
  await client.query('BEGIN');
  const stream = client.query(
    copyFrom(`COPY interaction (id, source, external_id, text, occurred_at, direction, author_handle, author_display_name,
              sentiment_score, sentiment_label, sentiment_confidence, intent) FROM STDIN`),
  );
  const done = new Promise<void>((resolve, reject) => {
    stream.on('finish', resolve);
    stream.on('error', reject);
  });
  const CHUNK = 2_000;
  for (let i = 0; i < values.length; i += CHUNK) {
    let text = '';
    for (const v of values.slice(i, i + CHUNK)) {
      const m = JSON.parse(v.toString('utf8')) as Msg;
      text += `${randomUUID()}\t${m.source}\t${esc(m.externalId)}\t${esc(m.text)}\t${m.occurredAt}\t${m.direction}\t${esc(m.author.handle)}\t${esc(m.author.displayName)}\t0\tneutral\t0\tother\n`;
    }
    if (!stream.write(text)) await new Promise((r) => stream.once('drain', r));
  }
  stream.end();
  await done;
  await client.query('COMMIT');
  const ms = performance.now() - started;
  const { rows } = await client.query('SELECT count(*)::int AS n FROM interaction');
  await client.end();
  if ((rows[0] as { n: number }).n !== N) throw new Error(`COPY stored ${(rows[0] as { n: number }).n} rows, not ${N}`);
  return ms;
}

/** What a failed run must still stop (the embedded server, the replicas), newest first. */
const onFailure: (() => Promise<unknown>)[] = [];

async function main(): Promise<void> {
  const log = createLogger(process.env.LOG_LEVEL ?? 'warn');
  const brokers = await ensureKafka();
  let embedded: EmbeddedPostgresHandle | null = null;
  let adminUrl = process.env.BENCH_DATABASE === 'local' ? await findTestPostgres() : null;
  if (!adminUrl) {
    embedded = await startEmbeddedPostgres(path.join(process.cwd(), '.earshot', 'bench'), Number(process.env.BENCH_PG_PORT ?? 54_391), log);
    adminUrl = embedded.url;
    onFailure.unshift(() => embedded!.stop());
  }
  process.env[TEST_PG_ENV] = adminUrl;
  process.env.EARSHOT_TEST_KAFKA_BROKERS = brokers;

  const id = randomUUID().slice(0, 8);
  const topic = `bench.ingest.${id}.interactions.v1`;
  const group = `bench.ingest.${id}`;
  const prefix = `bench.ingest.${id}.`;
  const kafka = new Kafka({ clientId: 'earshot-bench', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });

  const messages = generate();
  const values = messages.map((m) => Buffer.from(JSON.stringify(m)));
  const bytes = values.reduce((a, v) => a + v.length, 0);
  let t = performance.now();
  await produce(kafka, topic, messages.map((m, i) => ({ key: m.author.handle, value: values[i]! })), 5_000);
  const produceMs = performance.now() - t;
  console.log(`produced ${N} messages (${(bytes / 1e6).toFixed(1)} MB, ${PARTITIONS} partitions) in ${produceMs.toFixed(0)} ms: ${rate(N, produceMs)}/s`);

  const bareMs = await bareConsumer(kafka, topic);
  console.log(`broker ceiling (bare kafkajs consumer): ${rate(N, bareMs)} interactions/s (${bareMs.toFixed(0)} ms)`);

  const copyDb = await createTestDatabase('benchcopy');
  const migrated = await openDatabase(loadConfig({ DATABASE_URL: copyDb.url, LOG_LEVEL: 'warn' }), log);
  await migrated.close();
  const copyMs = await copyCeiling(values, copyDb.url);
  console.log(`database ceiling (COPY into interaction): ${rate(N, copyMs)} interactions/s (${copyMs.toFixed(0)} ms)`);
  await copyDb.drop();

  const e2eDb = await createTestDatabase('benche2e');
  // Replicas read a topic of their own that is empty until every one of them is up and the
  // group is stable: their boot and the rebalance as each joins are neither timed nor counted.
  // So does a paced run (BENCH_RATE), filled at that rate once Earshot is up.
  const live = OUT_OF_PROCESS || RATE > 0;
  const e2eTopic = live ? `bench.ingest.${id}.${OUT_OF_PROCESS ? 'replicas' : 'paced'}.v1` : topic;
  if (e2eTopic !== topic) await admin.createTopics({ topics: [{ topic: e2eTopic, numPartitions: PARTITIONS }], waitForLeaders: true });
  const config = loadConfig({
    NODE_ENV: 'production',
    EARSHOT_API_KEYS: 'bench-key-0123456789:service',
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: e2eDb.url,
    EARSHOT_ROLES: 'ingest',
    KAFKA_BROKERS: brokers,
    KAFKA_TOPICS: e2eTopic,
    KAFKA_GROUP_ID: group,
    KAFKA_OUTPUT_TOPIC_PREFIX: prefix,
    KAFKA_TOPIC_PARTITIONS: String(PARTITIONS),
    KAFKA_CONSUMER_CONCURRENCY: process.env.KAFKA_CONSUMER_CONCURRENCY ?? String(PARTITIONS),
    ...(process.env.KAFKA_FETCH_MIN_BYTES ? { KAFKA_FETCH_MIN_BYTES: process.env.KAFKA_FETCH_MIN_BYTES } : {}),
    ...(process.env.KAFKA_FETCH_MAX_WAIT_MS ? { KAFKA_FETCH_MAX_WAIT_MS: process.env.KAFKA_FETCH_MAX_WAIT_MS } : {}),
    ...(process.env.KAFKA_CHUNK_SIZE ? { KAFKA_CHUNK_SIZE: process.env.KAFKA_CHUNK_SIZE } : {}),
  });
  // BENCH_REPLICAS=n (n ≥ 2, or 1 with BENCH_OUT_OF_PROCESS=1) runs n compiled ingest processes in
  // one consumer group instead of the in-process app: the partitions split between them (timed
  // from the first committed row). BENCH_CHILD_NODE_OPTIONS is their NODE_OPTIONS (a CPU profile).
  const replicas = OUT_OF_PROCESS ? await startReplicas(REPLICAS, config, e2eDb.url, log) : null;
  if (replicas) onFailure.unshift(() => replicas.stop());
  if (replicas) {
    const stableSince = performance.now();
    await replicas.alive(
      waitFor(`${REPLICAS} replicas in a stable group`, async () => {
        const [g] = (await admin.describeGroups([group])).groups;
        return g?.state === 'Stable' && g.members.length === REPLICAS;
      }, 180_000, 200),
    );
    console.log(`${REPLICAS} replicas up and in a stable group after ${(performance.now() - stableSince).toFixed(0)} ms (not timed)`);
  }
  t = performance.now();
  const app = replicas ? null : await startApp(config, log);
  const startMs = performance.now() - t;
  const db = app ? app.db : await openDatabase(config, log);
  const sql = <T>(text: string, params?: unknown[]) => db.ds.query(text, params) as Promise<T>;
  // Backend CPU is read through a connection of its own: through the app's pool, the backend
  // running the query was left out as "the bench's own", and in process that was one of the
  // ingest's backends (about a third of their CPU went uncounted until this was found).
  const meter = new Client({ connectionString: e2eDb.url, application_name: 'earshot-bench-meter' });
  await meter.connect();
  const query = async (text: string) => (await meter.query(text)).rows as unknown;
  // The in-process app consumes from the moment it joins the group, inside startApp: what it
  // stored before a measure starts is left out of that measure's count (replicas store nothing
  // before their topic is filled).
  const storedNow = async () => (await sql<{ n: number }[]>('SELECT count(*)::int AS n FROM interaction'))[0]!.n;
  const storedBeforeWrites = await storedNow();
  const rowWritesBefore = await rowWrites(e2eDb.url);
  const [{ lsn: walBefore }] = await sql<{ lsn: string }[]>('SELECT pg_current_wal_lsn()::text AS lsn');
  const fpiBefore = await fullPageImages(e2eDb.url);
  const storedBeforeCpu = await storedNow();
  const pgBefore = await postgresCpu(query);
  const broker = brokerPid();
  const brokerBefore = broker ? cpuOf(broker) : null;
  const nodeBefore = process.cpuUsage();
  const relayCpuBefore = app ? await relayCpuSeconds(app.metrics.registry) : null;
  const childBefore = replicas ? replicas.cpu() : 0;
  const childSystemBefore = replicas ? replicas.systemCpu() : 0;
  const storedBeforeClock = live ? 0 : await storedNow();
  const paced = RATE > 0 ? await pacedProducer(brokers, e2eTopic, messages.map((m, i) => ({ key: m.author.handle, value: values[i]!.toString('utf8') })), RATE) : null;
  t = performance.now();
  // the same messages, into the live topic: at BENCH_RATE per second from a process of its own,
  // or all at once for replicas (about 2 s, timed: they start on the first ones as they arrive)
  if (paced) await paced.go();
  else if (live) await produce(kafka, e2eTopic, messages.map((m, i) => ({ key: m.author.handle, value: values[i]! })), 5_000);
  for (;;) {
    const lag = groupLag(admin, group, e2eTopic);
    if ((await (replicas ? replicas.alive(lag) : lag)) === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const e2eMs = performance.now() - t;
  // with replicas, Earshot is the child processes; this process only produced and watched
  const nodeCpu = replicas ? { user: 0, system: 0 } : process.cpuUsage(nodeBefore);
  const childCpu = replicas ? replicas.cpu() - childBefore : 0;
  const childSystemCpu = replicas ? replicas.systemCpu() - childSystemBefore : 0;
  const [{ wal }] = await sql<{ wal: number }[]>(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8 AS wal`, [walBefore]);
  const pgAfter = await postgresCpu(query);
  await meter.end();
  const brokerAfter = broker ? cpuOf(broker) : null;
  const [{ n: stored }] = await sql<{ n: number }[]>('SELECT count(*)::int AS n FROM interaction');
  if (stored !== N) throw new Error(`end to end stored ${stored} interactions, not ${N}`);
  console.log(
    `end to end (Earshot consumer → pipeline → committed rows${replicas ? `, ${REPLICAS} process${REPLICAS > 1 ? 'es' : ''}` : ''}${RATE > 0 ? `, produced at ${RATE}/s` : ''}): ${rate(N - storedBeforeClock, e2eMs)} interactions/s (${N - storedBeforeClock} in ${e2eMs.toFixed(0)} ms, after a ${startMs.toFixed(0)} ms start)`,
  );
  for (;;) {
    const [{ n }] = await sql<{ n: number }[]>('SELECT count(*)::int AS n FROM outbox_batch WHERE sent_at IS NULL');
    if (n === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const relayMs = performance.now() - t;
  const [{ n: events, batches }] = await sql<{ n: number; batches: number }[]>(
    `SELECT sum(cardinality(interaction_ids) + cardinality(customer_ids) + jsonb_array_length(messages))::int AS n,
            count(*) FILTER (WHERE cardinality(interaction_ids) > 0)::int AS batches FROM outbox_batch`,
  );
  // one outbox row per ingest transaction that stored interactions: the batch size the pipeline saw
  console.log(`ingest transactions: ${batches}, ${(N / Math.max(1, batches)).toFixed(0)} interactions each on average (chunks of at most ${config.kafka.chunkSize})`);
  console.log(`outbox relay: all ${events} events published ${(relayMs - e2eMs).toFixed(0)} ms after the last commit (${rate(events, relayMs)} events/s overall)`);
  // the relay thread reports every 100 ms: ask it for what it has now
  await app?.kafka?.relay.flushMetrics();
  const relayCpuAfter = app ? await relayCpuSeconds(app.metrics.registry) : null;
  const relayCpuPerEvent = relayCpuBefore !== null && relayCpuAfter !== null && relayCpuAfter > 0 ? ((relayCpuAfter - relayCpuBefore) * 1e6) / events : null;
  if (relayCpuPerEvent !== null) console.log(`outbox relay thread: ${relayCpuPerEvent.toFixed(1)} µs of CPU per published event (${(events / N).toFixed(2)} events per interaction)`);
  const [{ p50, p90, p99 }] = await sql<{ p50: number | null; p90: number | null; p99: number | null }[]>(
    `SELECT (percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)) * 1000)::float8 AS p50,
            (percentile_disc(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)) * 1000)::float8 AS p90,
            (percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)) * 1000)::float8 AS p99 FROM outbox_batch`,
  );
  const publishP99Ms = app ? await publishDelayP99(app.metrics.registry) : p99 === null ? null : Math.round(p99);
  console.log(`commit → Kafka ack per outbox row: p50 / p90 / p99 ${p99 === null ? 'n/a' : `${Math.round(p50!)} / ${Math.round(p90!)} / ${Math.round(p99)} ms`}`);
  if (app) await app.stop();
  else {
    await db.close();
    await replicas!.stop();
  }
  // The pool's backends flush their statistics when they exit.
  const writes = (await settledRowWrites(e2eDb.url)) - rowWritesBefore;
  const fpi = (await fullPageImages(e2eDb.url)) - fpiBefore;
  await printTableWrites(e2eDb.url);
  // BENCH_KEEP_DB=1 keeps the end-to-end database for a look afterwards (EXPLAIN, the outbox view)
  if (process.env.BENCH_KEEP_DB === '1') console.log(`kept the end-to-end database: ${e2eDb.name}`);
  else await e2eDb.drop();

  const e2e = rate(N - storedBeforeClock, e2eMs);
  const ceiling = Math.min(rate(N, bareMs), rate(N, copyMs));
  console.log('');
  console.log(`| measure | interactions/s |`);
  console.log(`| --- | ---: |`);
  console.log(`| broker ceiling (bare kafkajs consumer) | ${rate(N, bareMs)} |`);
  console.log(`| database ceiling (COPY) | ${rate(N, copyMs)} |`);
  console.log(`| end to end (Earshot) | ${e2e} |`);
  console.log(`ratio end to end / lower ceiling: ${(e2e / ceiling).toFixed(3)}; peak RSS of this process: ${rssMb().toFixed(0)} MB`);
  // Where the CPU went during the end-to-end run, per interaction: on a 2-core machine the three
  // together bound the rate at 2 s of CPU per second of wall time.
  const inCpuWindow = N - storedBeforeCpu;
  const perMsg = (us: number) => (us / inCpuWindow).toFixed(0);
  const nodeUs = nodeCpu.user + nodeCpu.system + childCpu;
  const nodeSystemUs = nodeCpu.system + childSystemCpu;
  let pgUs = 0;
  let pgSystemUs = 0;
  const byApp = new Map<string, { us: number; backends: number }>();
  for (const [pid, after] of pgAfter) {
    const before = pgBefore.get(pid);
    const us = after.user + after.system - (before ? before.user + before.system : 0);
    pgUs += us;
    pgSystemUs += after.system - (before?.system ?? 0);
    const app = backendApps.get(pid) ?? '(none)';
    const e = byApp.get(app) ?? { us: 0, backends: 0 };
    e.us += us;
    e.backends++;
    byApp.set(app, e);
  }
  if (byApp.size > 0) {
    console.log(`PostgreSQL backend CPU per interaction by client: ${[...byApp].sort((a, b) => b[1].us - a[1].us).map(([app, e]) => `${app} ${perMsg(e.us)} µs (${e.backends} backends)`).join(', ')}`);
  }
  const brokerUs = brokerBefore !== null && brokerAfter !== null ? brokerAfter - brokerBefore : null;
  console.log(
    `CPU per interaction during the end-to-end run: Earshot (node) ${perMsg(nodeUs)} µs (${perMsg(nodeSystemUs)} in the kernel), PostgreSQL backends ${pgAfter.size > 0 ? `${perMsg(pgUs)} µs (${perMsg(pgSystemUs)} in the kernel)` : 'n/a (not local)'}, ` +
      `Kafka broker ${brokerUs !== null ? `${perMsg(brokerUs)} µs` : 'n/a (not started by docker/kafka.sh)'}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} cores`,
  );

  const walPerMsg = wal / (N - storedBeforeWrites);
  console.log(`per interaction: ${walPerMsg.toFixed(0)} bytes of WAL${embedded ? '' : ' (shared server: includes other databases)'} (${(fpi / (N - storedBeforeWrites)).toFixed(3)} full-page images), ${(writes / (N - storedBeforeWrites)).toFixed(2)} row writes; commit → Kafka ack p99 ${publishP99Ms === null ? 'n/a' : `≤ ${publishP99Ms} ms`}`);
  if (JSON_OUT) {
    console.log(
      JSON.stringify({
        messages: N,
        partitions: PARTITIONS,
        replicas: REPLICAS,
        // BENCH_RATE: the messages arrived at this rate (null: all before the clock started)
        pacedPerSec: RATE > 0 ? RATE : null,
        // ingest transactions that stored interactions, and interactions per transaction
        ingestTransactions: batches,
        interactionsPerTransaction: Number((N / Math.max(1, batches)).toFixed(1)),
        chunkSize: config.kafka.chunkSize,
        endToEndPerSec: e2e,
        kafkaCeilingPerSec: rate(N, bareMs),
        copyCeilingPerSec: rate(N, copyMs),
        ratioToLowerCeiling: Number((e2e / ceiling).toFixed(3)),
        walBytesPerInteraction: Math.round(walPerMsg),
        walFullPageImagesPerInteraction: Number((fpi / (N - storedBeforeWrites)).toFixed(4)),
        rowWritesPerInteraction: Number((writes / (N - storedBeforeWrites)).toFixed(2)),
        nodeCpuMicrosPerInteraction: Math.round(nodeUs / inCpuWindow),
        // of which system time: the kernel's work for node (socket writes and reads, loopback TCP)
        nodeSystemCpuMicrosPerInteraction: Math.round(nodeSystemUs / inCpuWindow),
        postgresCpuMicrosPerInteraction: pgAfter.size > 0 ? Math.round(pgUs / inCpuWindow) : null,
        postgresSystemCpuMicrosPerInteraction: pgAfter.size > 0 ? Math.round(pgSystemUs / inCpuWindow) : null,
        // interactions the in-process app stored before the clock and the CPU count started
        storedBeforeClock,
        storedBeforeCpu,
        // the relay's histogram: the upper bound of the bucket holding the 99th percentile, per event
        publishDelayP99Ms: publishP99Ms,
        // the same per outbox row (one per ingest batch), exact, from sent_at - created_at
        publishDelayP99PerRowMs: p99 === null ? null : Math.round(p99),
        publishDelayP50PerRowMs: p50 === null ? null : Math.round(p50),
        publishDelayP90PerRowMs: p90 === null ? null : Math.round(p90),
        // how long after the last commit the relay published the last event
        relayLagAfterLastCommitMs: Math.round(relayMs - e2eMs),
        // CPU of the relay's thread (read, render, publish, mark sent) per published event
        relayCpuMicrosPerEvent: relayCpuPerEvent === null ? null : Number(relayCpuPerEvent.toFixed(1)),
        loadAverage: os.loadavg()[0],
      }),
    );
  }
  const made = [...new Set([topic, e2eTopic])];
  await admin.deleteTopics({ topics: [...made, ...made.map((name) => `${name}.dlq`), ...Object.values(OUTBOX_TOPICS).map((o) => `${prefix}${o.name}`)] }).catch(() => undefined);
  await admin.disconnect();
  if (embedded) await embedded.stop();
}

// A failed run stops what it started and exits: open sockets and children would keep it waiting.
main().catch(async (e: unknown) => {
  console.error(e);
  for (const stop of onFailure) await stop().catch(() => undefined);
  process.exit(1);
});

import { Pool } from 'pg';
import type { QueryRunner } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrichedEventRows, type RelayDb } from '../../src/outbox/outbox.repository';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { nodes, type PlanNode } from '../support/explain';

// Every statement of the ingest batch's transaction, EXPLAINed with its own parameters on tables
// large enough that a missing index would show as a sequential scan: per batch the work must not
// grow with the tables (README, "Ingest write path and throughput"). Twice: with statistics
// taken after the tables were filled (the plans' estimates are checked), and with statistics
// taken before the recent rows arrived, as while a table grows faster than autovacuum analyzes
// it (each statement is run under EXPLAIN ANALYZE and the rows it actually read are checked).

const SEEDED = 12_000;
const AUTHORS = 3_000;
const BATCH = 400;
/** synthetic rows added beside the ingested ones */
const BULK = 200_000;
/** Taxonomy tables: a handful of rows, read whole by design. */
const SMALL_TABLES = new Set(['topic', 'department']);

function line(n: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  const a = n % AUTHORS;
  const texts = ['My parcel is late and nobody answers. Terrible.', 'I love the new app, great service!', 'How do I change my billing address?', 'Charged twice, I want a refund now.'];
  return message(n, { source: n % 2 === 0 ? 'x' : 'trustpilot', author: { handle: `writer${a}`, displayName: `Writer ${a}` }, text: texts[n % texts.length], ...over });
}

/** The bulk rows beside the ingested ones: each table far larger than a batch (the planner only prefers an index when a table is large). */
async function addBulkRows(app: TestApp): Promise<void> {
  await app.db.ds.query(`
    INSERT INTO interaction (source, external_id, text, occurred_at, direction, sentiment_score, sentiment_label, sentiment_confidence, intent)
    SELECT 'x', 'bulk-' || g, 'filler', timestamptz '2026-01-01' + g * interval '1 minute', 'inbound', 0, 'neutral', 0.5, 'other'
      FROM generate_series(1, ${BULK}) g`);
  await app.db.ds.query(`INSERT INTO customer (display_name) SELECT 'Bulk ' || g FROM generate_series(1, ${BULK / 2}) g`);
  await app.db.ds.query(`
    INSERT INTO customer_identity (customer_id, kind, network, value, source)
    SELECT id, 'handle', 'x', 'x:' || lower(display_name), 'ingest' FROM customer WHERE display_name LIKE 'Bulk %'`);
  // each bulk customer gets two of the bulk interactions (their summaries and daily rollups read them)
  await app.db.ds.query(`
    UPDATE interaction i SET customer_id = c.id
      FROM (SELECT b.id, 'bulk-' || (b.rn + k * ${BULK / 2}) AS ext
              FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM customer WHERE display_name LIKE 'Bulk %') b, (VALUES (0), (1)) v(k)) c
     WHERE i.source = 'x' AND i.external_id = c.ext`);
  // published outbox rows kept for the retention window (the relay reads the batch's rows by id among them)
  await app.db.ds.query(`INSERT INTO outbox_batch (interaction_ids, customer_ids, messages, sent_at) SELECT '{}', '{}', '[]', now() FROM generate_series(1, ${BULK / 10})`);
  await app.db.ds.query(`
    INSERT INTO listening_item (source, thread_key, interaction_id, last_interaction_id, department_id, intent, sentiment_score,
                                opened_at, last_opened_at, last_inbound_at, sla_seconds, due_at, author_handle)
    SELECT i.source, i.external_id, i.id, i.id, (SELECT min(id) FROM department), 'complaint', -0.5,
           i.occurred_at, i.occurred_at, i.occurred_at, 3600, i.occurred_at + interval '1 hour', 'bulk' || (i.occurred_at::date - date '2026-01-01')
      FROM interaction i WHERE i.external_id LIKE 'bulk-%' AND i.occurred_at < timestamptz '2026-01-01' + ${BULK / 4} * interval '1 minute'`);
}

// api and ingest only: the sync role's jobs (escalation, retention, CRM) would run beside the
// probe batch, and their statements are not the batch's
const ENV = { EARSHOT_ROLES: 'api,ingest' };

async function post(app: TestApp, lines: unknown[]): Promise<void> {
  const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
  expect(res.status).toBe(200);
}

/** SEEDED interactions of known authors (open items, replies), through POST /ingest as they arrive. */
async function seed(app: TestApp): Promise<void> {
  for (let from = 0; from < SEEDED; from += 2_000) await post(app, Array.from({ length: 2_000 }, (_, i) => line(from + i)));
}

/**
 * The bulk rows on an otherwise empty database, made once for the file (they take most of a
 * probe's setup) and copied (CREATE DATABASE … TEMPLATE) by each probe on large tables: the probes
 * write only to their copies, and each then takes in its own history through POST /ingest.
 */
let bulkOnly: TestDatabase | undefined;
beforeAll(async () => {
  const app = await startTestApp(ENV, 'ingestexplainbulk');
  try {
    await addBulkRows(app);
  } finally {
    await app.stop();
  }
  bulkOnly = app.database;
}, 300_000);
afterAll(async () => {
  await bulkOnly?.drop();
});

/**
 * A service on its own database with a history (SEEDED recent interactions of known authors, open
 * items, replies) and the bulk rows, statistics taken as `statistics` says; then the statements of
 * one probe batch (known and first-time authors, brand replies to stored complaints, a follow-up in
 * a stored thread), recorded as the batch runs.
 */
async function probeBatch(label: string, statistics: 'fresh' | 'stale' | 'small'): Promise<{ app: TestApp; statements: { sql: string; params: unknown[] }[] }> {
  // small: a database of its own; fresh and stale: a copy of the bulk rows
  const app = await startTestApp(ENV, label, statistics === 'small' ? undefined : await createTestDatabase(label, bulkOnly!));
  if (statistics === 'small') {
    // no bulk rows: tables of a few thousand rows, where a hash join over a whole table looks cheap to the planner
    await seed(app);
    await app.db.ds.query('ANALYZE');
  } else if (statistics === 'fresh') {
    // statistics of every row, the history's as well
    await seed(app);
    await app.db.ds.query('ANALYZE');
  } else {
    // statistics of the old rows only: the recent ones arrive after, and nothing analyzes again
    await app.db.ds.query('ANALYZE');
    for (const t of ['interaction', 'customer', 'customer_identity', 'listening_item']) await app.db.ds.query(`ALTER TABLE ${t} SET (autovacuum_enabled = off)`);
    await seed(app);
  }
  const probe = Array.from({ length: BATCH }, (_, i) => {
    const n = SEEDED + i;
    if (i % 10 === 0) return line(n, { author: { handle: `newcomer${i}`, displayName: `Newcomer ${i}` } });
    if (i % 10 === 1) return line(n, { direction: 'outbound', source: 'x', inReplyTo: `ext-${(i * 4) % SEEDED}`, author: { handle: 'brand' }, text: 'Sorry about that, we are on it.' });
    if (i % 10 === 2) return line(n, { source: 'x', inReplyTo: `ext-${(i * 4 + 2) % SEEDED}` });
    return line(n);
  });
  const statements: { sql: string; params: unknown[] }[] = [];
  // the statements of the ingest pool, where the batch runs (the main pool when there is none)
  const ds = app.db.ingestDs ?? app.db.ds;
  const create = ds.createQueryRunner.bind(ds);
  ds.createQueryRunner = ((...args: Parameters<typeof ds.createQueryRunner>) => {
    const qr: QueryRunner = create(...args);
    const query = qr.query.bind(qr);
    qr.query = ((sql: string, params?: unknown[], ...rest: unknown[]) => {
      statements.push({ sql, params: params ?? [] });
      return (query as (...a: unknown[]) => Promise<unknown>)(sql, params, ...rest);
    }) as typeof qr.query;
    return qr;
  }) as typeof ds.createQueryRunner;
  try {
    await post(app, probe);
  } finally {
    ds.createQueryRunner = create;
  }
  const dml = statements.filter((s) => /^\s*(WITH|SELECT|INSERT|UPDATE|DELETE)\b/i.test(s.sql));
  // dedupe, author lookups, topic inserts, rollups, summaries, outbox at least
  expect(dml.length).toBeGreaterThanOrEqual(8);
  return { app, statements: dml };
}

/** A batch probed for the describe block it is called in: the app is closed after the block. */
function probedBatch(database: string, statistics: 'fresh' | 'stale' | 'small') {
  const probed = { app: undefined as unknown as TestApp, statements: [] as { sql: string; params: unknown[] }[] };
  beforeAll(async () => {
    Object.assign(probed, await probeBatch(database, statistics));
  }, 300_000);
  afterAll(async () => {
    await probed.app?.close();
  });
  return probed;
}

const what = (sql: string) => `${sql.replace(/\s+/g, ' ').trim().slice(0, 90)}…`;
/** The plan's scans of tables (not the table a statement writes). */
const tableReads = (plan: PlanNode) => [...nodes(plan)].filter((n) => n['Relation Name'] && n['Node Type'] !== 'ModifyTable');
const scanName = (n: PlanNode) => `${n['Node Type']} ${n['Relation Name']}${n['Index Name'] ? ` (${n['Index Name']})` : ''}`;

/** EXPLAIN of each statement of the probed batch: no sequential scan of a table that grows, estimates bounded by the batch. */
async function expectIndexedPlans({ app, statements }: { app: TestApp; statements: { sql: string; params: unknown[] }[] }, label: string, small: ReadonlySet<string> = SMALL_TABLES): Promise<void> {
  const [{ n: interactions }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction`)) as { n: number }[];
  expect(interactions).toBeGreaterThanOrEqual(SEEDED);
  const report: string[] = [];
  const violations: string[] = [];
  for (const s of statements) {
    const [{ 'QUERY PLAN': plan }] = (await app.db.ds.query(`EXPLAIN (FORMAT JSON) ${s.sql}`, s.params)) as { 'QUERY PLAN': { Plan: PlanNode }[] }[];
    const reads = tableReads(plan[0]!.Plan);
    report.push(`${what(s.sql)}\n    ${reads.map((n) => `${scanName(n)} ~${n['Plan Rows']}`).join('; ') || 'no table read'}`);
    for (const n of reads) {
      if (small.has(n['Relation Name']!)) continue;
      if (n['Node Type'] === 'Seq Scan') violations.push(`${what(s.sql)}: Seq Scan on ${n['Relation Name']}`);
      // an index scan that reads a whole table is no better than a sequential one
      else if (n['Plan Rows'] > 10 * BATCH) violations.push(`${what(s.sql)}: ${n['Node Type']} on ${n['Relation Name']} expects ${n['Plan Rows']} rows`);
    }
  }
  console.info(`ingest-explain (${label}): ${statements.length} statements in the batch\n${report.join('\n')}`);
  expect(violations).toEqual([]);
}

/**
 * The relay's read of the probe batch's enriched events (its outbox rows), as the relay sends it,
 * with the batch's interaction ids among all the tables' rows.
 */
async function relayReadOfBatch(app: TestApp): Promise<{ sql: string; params: unknown[] }> {
  const ids = ((await app.db.ds.query(`SELECT id FROM outbox_batch WHERE cardinality(interaction_ids) > 0 ORDER BY id DESC LIMIT 1`)) as { id: string }[]).map((r) => r.id);
  expect(ids).toHaveLength(1);
  const pool = new Pool({ connectionString: app.database.url, max: 1 });
  try {
    let seen: { sql: string; params: unknown[] } | undefined;
    const recording: RelayDb = {
      query: ((sql: string, params: unknown[]) => {
        seen = { sql, params };
        return pool.query(sql, params);
      }) as RelayDb['query'],
    };
    expect((await enrichedEventRows(recording, { ids })).length).toBeGreaterThan(0);
    return seen!;
  } finally {
    await pool.end();
  }
}

describe('ingest batch: every statement uses an index and touches only the batch’s rows', () => {
  const probed = probedBatch('ingestexplain', 'fresh');

  it('EXPLAIN of each statement: no sequential scan of a table that grows, estimates bounded by the batch', async () => {
    await expectIndexedPlans(probed, 'large tables');
  });

  it('the relay’s read of the batch’s events (their topics too): no sequential scan of a table that grows', async () => {
    await expectIndexedPlans({ app: probed.app, statements: [await relayReadOfBatch(probed.app)] }, 'relay read, large tables');
  });
});

describe('ingest batch: on tables of a few thousand rows, still an index for every batch of keys', () => {
  // Where a hash join over a whole table is the planner's choice: 13,000 identities and 26,000
  // items in bench:ingest cost 7–11 ms a lookup that way, against 3–5 ms by key.
  const probed = probedBatch('ingestexplainsmall', 'small');

  it('EXPLAIN of each statement: no sequential scan of a table that grows', async () => {
    await expectIndexedPlans(probed, 'small tables');
  });

  it('the relay’s read of the batch’s events (their topics too): no sequential scan of a table that grows', async () => {
    // outbox_batch holds a few dozen rows here (no bulk rows): read whole, as the planner should
    await expectIndexedPlans({ app: probed.app, statements: [await relayReadOfBatch(probed.app)] }, 'relay read, small tables', new Set([...SMALL_TABLES, 'outbox_batch']));
  });
});

describe('ingest batch: with statistics taken before the recent rows arrived, still only the batch’s rows', () => {
  const probed = probedBatch('ingestexplainstale', 'stale');

  it('EXPLAIN ANALYZE of each statement: the rows each scan read, kept or filtered out, are bounded by the batch', async () => {
    const { app, statements } = probed;
    const report: string[] = [];
    const violations: string[] = [];
    let analyzed = 0;
    const qr = app.db.ds.createQueryRunner();
    await qr.connect();
    try {
      await qr.startTransaction();
      for (const s of statements) {
        // run again and rolled back; a statement that cannot run twice (a key inserted by the
        // batch itself) is left out
        await qr.query('SAVEPOINT probe');
        let plan: { Plan: PlanNode }[];
        try {
          [{ 'QUERY PLAN': plan }] = (await qr.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${s.sql}`, s.params)) as { 'QUERY PLAN': { Plan: PlanNode }[] }[];
        } catch {
          await qr.query('ROLLBACK TO SAVEPOINT probe');
          continue;
        }
        await qr.query('ROLLBACK TO SAVEPOINT probe');
        analyzed++;
        const reads = tableReads(plan[0]!.Plan);
        const read = (n: PlanNode) => ((n['Actual Rows'] ?? 0) + (n['Rows Removed by Filter'] ?? 0) + (n['Rows Removed by Index Recheck'] ?? 0)) * (n['Actual Loops'] ?? 1);
        report.push(`${what(s.sql)}\n    ${reads.map((n) => `${scanName(n)} read ${read(n)}`).join('; ') || 'no table read'}`);
        for (const n of reads) {
          if (SMALL_TABLES.has(n['Relation Name']!)) continue;
          if (read(n) > 10 * BATCH) violations.push(`${what(s.sql)}: ${scanName(n)} read ${read(n)} rows`);
        }
      }
      await qr.rollbackTransaction();
    } finally {
      await qr.release();
    }
    console.info(`ingest-explain (stale statistics): ${analyzed} of ${statements.length} statements run again\n${report.join('\n')}`);
    // the reads that matter ran: dedupe, identities, listening items, rollups, summaries
    expect(analyzed).toBeGreaterThanOrEqual(8);
    expect(violations).toEqual([]);
  });
});

import type { QueryRunner } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// Every statement of the ingest batch's transaction, EXPLAINed with its own parameters on tables
// large enough that a missing index would show as a sequential scan: per batch the work must not
// grow with the tables (README, "Ingest write path and throughput").

const SEEDED = 12_000;
const AUTHORS = 3_000;
const BATCH = 400;
/** synthetic rows added beside the ingested ones */
const BULK = 200_000;
/** Taxonomy tables: a handful of rows, read whole by design. */
const SMALL_TABLES = new Set(['topic', 'department']);

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Plan Rows': number;
  Plans?: PlanNode[];
}

function* nodes(n: PlanNode): Generator<PlanNode> {
  yield n;
  for (const c of n.Plans ?? []) yield* nodes(c);
}

function line(n: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  const a = n % AUTHORS;
  const texts = ['My parcel is late and nobody answers. Terrible.', 'I love the new app, great service!', 'How do I change my billing address?', 'Charged twice, I want a refund now.'];
  return message(n, { source: n % 2 === 0 ? 'x' : 'trustpilot', author: { handle: `writer${a}`, displayName: `Writer ${a}` }, text: texts[n % texts.length], ...over });
}

describe('ingest batch: every statement uses an index and touches only the batch’s rows', () => {
  let app: TestApp;
  const statements: { sql: string; params: unknown[] }[] = [];

  async function post(lines: unknown[]): Promise<void> {
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(res.status).toBe(200);
  }

  beforeAll(async () => {
    app = await startTestApp({}, 'ingestexplain');
    // A history to plan against: known authors with interactions on many days, open items, replies.
    for (let from = 0; from < SEEDED; from += 2_000) {
      await post(Array.from({ length: 2_000 }, (_, i) => line(from + i)));
    }
    // ...and bulk rows beside it, so each table is far larger than a batch: a plan that read a
    // whole table would show (the planner only prefers an index when the table is large).
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
    await app.db.ds.query(`
      INSERT INTO listening_item (source, thread_key, interaction_id, last_interaction_id, department_id, intent, sentiment_score,
                                  opened_at, last_opened_at, last_inbound_at, sla_seconds, due_at, author_handle)
      SELECT i.source, i.external_id, i.id, i.id, (SELECT min(id) FROM department), 'complaint', -0.5,
             i.occurred_at, i.occurred_at, i.occurred_at, 3600, i.occurred_at + interval '1 hour', 'bulk' || (i.occurred_at::date - date '2026-01-01')
        FROM interaction i WHERE i.external_id LIKE 'bulk-%' AND i.occurred_at < timestamptz '2026-01-01' + ${BULK / 4} * interval '1 minute'`);
    await app.db.ds.query('ANALYZE');

    // The probe batch: known authors, first-time authors, replies from the brand to stored
    // complaints and a customer's follow-up in a stored thread; its statements are recorded.
    const probe = Array.from({ length: BATCH }, (_, i) => {
      const n = SEEDED + i;
      if (i % 10 === 0) return line(n, { author: { handle: `newcomer${i}`, displayName: `Newcomer ${i}` } });
      if (i % 10 === 1) return line(n, { direction: 'outbound', source: 'x', inReplyTo: `ext-${(i * 4) % SEEDED}`, author: { handle: 'brand' }, text: 'Sorry about that, we are on it.' });
      if (i % 10 === 2) return line(n, { source: 'x', inReplyTo: `ext-${(i * 4 + 2) % SEEDED}` });
      return line(n);
    });
    const ds = app.db.ds;
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
      await post(probe);
    } finally {
      ds.createQueryRunner = create;
    }
  }, 300_000);

  afterAll(async () => {
    await app?.close();
  });

  it('EXPLAIN of each statement: no sequential scan of a table that grows, estimates bounded by the batch', async () => {
    const dml = statements.filter((s) => /^\s*(WITH|SELECT|INSERT|UPDATE|DELETE)\b/i.test(s.sql));
    // dedupe, author lookups, interaction and topic inserts, rollups, summaries, outbox at least
    expect(dml.length).toBeGreaterThanOrEqual(8);
    const [{ n: interactions }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction`)) as { n: number }[];
    expect(interactions).toBeGreaterThanOrEqual(SEEDED);
    const report: string[] = [];
    const violations: string[] = [];
    for (const s of dml) {
      const [{ 'QUERY PLAN': plan }] = (await app.db.ds.query(`EXPLAIN (FORMAT JSON) ${s.sql}`, s.params)) as { 'QUERY PLAN': { Plan: PlanNode }[] }[];
      const all = [...nodes(plan[0]!.Plan)];
      const reads = all.filter((n) => n['Relation Name'] && n['Node Type'] !== 'ModifyTable');
      const what = `${s.sql.replace(/\s+/g, ' ').trim().slice(0, 90)}…`;
      report.push(`${what}\n    ${reads.map((n) => `${n['Node Type']} ${n['Relation Name']}${n['Index Name'] ? ` (${n['Index Name']})` : ''} ~${n['Plan Rows']}`).join('; ') || 'no table read'}`);
      for (const n of reads) {
        if (SMALL_TABLES.has(n['Relation Name']!)) continue;
        if (n['Node Type'] === 'Seq Scan') violations.push(`${what}: Seq Scan on ${n['Relation Name']}`);
        // an index scan that reads a whole table is no better than a sequential one
        else if (n['Plan Rows'] > 10 * BATCH) violations.push(`${what}: ${n['Node Type']} on ${n['Relation Name']} expects ${n['Plan Rows']} rows`);
      }
    }
    console.info(`ingest-explain: ${dml.length} statements in the batch\n${report.join('\n')}`);
    expect(violations).toEqual([]);
  });
});

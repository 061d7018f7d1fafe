import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/sql';
import * as identityRepo from '../../src/identity/identity.repository';
import * as privacyRepo from '../../src/privacy/privacy.repository';
import { startTestApp, type TestApp } from '../support/app';
import { REPO_ROOT } from '../support/postgres';

// A merge (automatic ones run inside an ingest batch), an erasure and a data export must find
// their rows by index, however many customers and suggestions there are; so must the cascades
// of deleting a customer, which PostgreSQL runs per deleted row through the foreign keys.

const CUSTOMERS = 30_000;
/** The tables filled here, large enough that the planner scans one whole only without an index (the others are empty). */
const LARGE = ['customer', 'customer_identity', 'merge_suggestion', 'merge_audit'];

/**
 * Foreign keys with no index that starts with their columns, and why that is fine: a row of the
 * referenced table is never deleted, or only by a rare edit that may read the other table once.
 */
const UNINDEXED: Record<string, string> = {
  'interaction_topic(topic_id)': 'deleting a topic (a taxonomy edit) reads interaction_topic once; an index would cost every tagged interaction an entry',
  'listening_item(interaction_id)': 'interactions are never deleted (erasure and retention redact them in place)',
  'listening_item(last_interaction_id)': 'interactions are never deleted',
  'listening_item(department_id)': 'departments are never deleted',
  'listening_item(assigned_department_id)': 'departments are never deleted',
  'topic(department_id)': 'departments are never deleted',
  'crm_erasure(erasure_id)': 'erasure requests are never deleted (they are the audit)',
};
/** The tables the reasons above say are never deleted from. */
const NEVER_DELETED = ['interaction', 'department', 'erasure_request'];

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

function* nodes(n: PlanNode): Generator<PlanNode> {
  yield n;
  for (const c of n.Plans ?? []) yield* nodes(c);
}

function* sourceFiles(dir: string): Generator<string> {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* sourceFiles(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.spec.ts')) yield p;
  }
}

describe('merges and erasures by index', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({}, 'mergeindexes');
    const q = (sql: string) => app.db.ds.query(sql);
    await q(`INSERT INTO customer (display_name) SELECT 'Scale ' || g FROM generate_series(1, ${CUSTOMERS}) g`);
    await q(`INSERT INTO customer_identity (customer_id, kind, network, value, source)
             SELECT id, 'handle', 'x', 'x:' || lower(replace(display_name, ' ', '')), 'ingest' FROM customer`);
    // one customer in ten merged into the one created before it; one suggestion per pair of neighbours
    await q(`WITH c AS (SELECT id, row_number() OVER (ORDER BY display_name) AS n FROM customer)
             UPDATE customer m SET merged_into_id = s.id FROM c a JOIN c s ON s.n = a.n - 1 WHERE m.id = a.id AND a.n % 10 = 0`);
    await q(`WITH c AS (SELECT ci.id AS identity, ci.customer_id AS customer, row_number() OVER (ORDER BY ci.value) AS n FROM customer_identity ci)
             INSERT INTO merge_suggestion (customer_a_id, customer_b_id, identity_a_id, identity_b_id, pair_key, score, reason)
             SELECT a.customer, b.customer, a.identity, b.identity, a.identity || ':' || b.identity, 0.8, 'name'
               FROM c a JOIN c b ON b.n = a.n + 1 WHERE a.n % 2 = 1`);
    // the audit: a merge per merged customer (its identity in the snapshot), a link per identity
    await q(`INSERT INTO merge_audit (action, survivor_id, merged_id, reason, actor, snapshot)
             SELECT 'merge', m.merged_into_id, m.id, 'scale', 'test',
                    jsonb_build_object('identities', jsonb_build_array(ci.id), 'crmRecords', '[]'::jsonb, 'interactions', '[]'::jsonb, 'repointed', '[]'::jsonb, 'displayName', m.display_name, 'filledName', false)
               FROM customer m JOIN customer_identity ci ON ci.customer_id = m.id WHERE m.merged_into_id IS NOT NULL`);
    await q(`INSERT INTO merge_audit (action, survivor_id, reason, actor, snapshot)
             SELECT 'link', ci.customer_id, 'scale', 'test',
                    jsonb_build_object('identities', jsonb_build_array(ci.id), 'crmRecords', '[]'::jsonb, 'interactions', '[]'::jsonb, 'repointed', '[]'::jsonb, 'displayName', null)
               FROM customer_identity ci`);
    await q('ANALYZE');
  }, 120_000);

  afterAll(async () => {
    await app?.close();
  });

  it('every foreign key has an index on its columns, but for the ones listed with a reason', async () => {
    const rows = (await app.db.ds.query(`
      SELECT format('%s(%s)', c.conrelid::regclass, (SELECT string_agg(a.attname, ', ' ORDER BY k.i) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, i)
                                                       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum)) AS fk
        FROM pg_constraint c
       WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace
         AND NOT EXISTS (SELECT 1 FROM pg_index i
                          WHERE i.indrelid = c.conrelid
                            AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
                            AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
       ORDER BY 1`)) as { fk: string }[];
    expect(rows.map((r) => r.fk)).toEqual(Object.keys(UNINDEXED).sort());
  });

  it('no code deletes from the tables the unindexed foreign keys point at, but topics', () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(path.join(REPO_ROOT, 'src'))) {
      const text = fs.readFileSync(file, 'utf8');
      for (const t of NEVER_DELETED) if (new RegExp(`DELETE\\s+FROM\\s+(ONLY\\s+)?${t}\\b`, 'i').test(text)) offenders.push(`${path.relative(REPO_ROOT, file)}: ${t}`);
    }
    expect(offenders).toEqual([]);
  });

  it('a merge, an erasure and a data export read no customer, identity, suggestion or merge audit table whole', async () => {
    const [{ merged, survivor }] = (await app.db.ds.query(
      `SELECT m.id AS merged, m.merged_into_id AS survivor FROM customer m WHERE m.merged_into_id IS NOT NULL ORDER BY m.display_name LIMIT 1`,
    )) as { merged: string; survivor: string }[];
    const plans: { sql: string; plan: PlanNode }[] = [];
    // Each statement the repository functions send is EXPLAINed (not run) with its own parameters.
    const explaining: Db = {
      query: async (sql: string, params?: unknown[]) => {
        const [row] = (await app.db.ds.query(`EXPLAIN (FORMAT JSON) ${sql}`, params)) as { 'QUERY PLAN': { Plan: PlanNode }[] }[];
        plans.push({ sql, plan: row!['QUERY PLAN'][0]!.Plan });
        return [{}];
      },
    } as unknown as Db;
    await identityRepo.repointMergedInto(explaining, survivor, merged);
    await privacyRepo.customerFamily(explaining, merged, true);
    await privacyRepo.scrubNamesCarriedAway(explaining, [survivor, merged]);
    await privacyRepo.deleteIdentityTraces(explaining, [survivor, merged]);
    await privacyRepo.customerData(explaining, [survivor, merged]);
    await privacyRepo.deleteCustomers(explaining, [survivor, merged]);
    expect(plans.length).toBeGreaterThanOrEqual(15);
    const scans = plans.flatMap(({ sql, plan }) =>
      [...nodes(plan)]
        .filter((n) => n['Node Type'] === 'Seq Scan' && LARGE.includes(n['Relation Name']!))
        .map((n) => `${n['Relation Name']}: ${sql.replace(/\s+/g, ' ').slice(0, 120)}`),
    );
    expect(scans).toEqual([]);
  });

  it('deleting a merged family runs its foreign-key cascades by index', async () => {
    const [{ merged, survivor }] = (await app.db.ds.query(
      `SELECT m.id AS merged, m.merged_into_id AS survivor FROM customer m WHERE m.merged_into_id IS NOT NULL ORDER BY m.display_name DESC LIMIT 1`,
    )) as { merged: string; survivor: string }[];
    const qr = app.db.ds.createQueryRunner();
    await qr.connect();
    try {
      await qr.startTransaction();
      // as the erasure does: the family's identities and suggestions go first, then the rows
      await privacyRepo.deleteIdentityTraces(qr, [survivor, merged]);
      const before = (await qr.query(`SELECT coalesce(sum(seq_scan), 0)::int AS n FROM pg_stat_xact_user_tables WHERE relname = ANY($1)`, [LARGE])) as { n: number }[];
      await privacyRepo.deleteCustomers(qr, [survivor, merged]);
      const after = (await qr.query(`SELECT coalesce(sum(seq_scan), 0)::int AS n FROM pg_stat_xact_user_tables WHERE relname = ANY($1)`, [LARGE])) as { n: number }[];
      const left = (await qr.query(`SELECT count(*)::int AS n FROM customer WHERE id = ANY($1::uuid[])`, [[survivor, merged]])) as { n: number }[];
      expect(left[0]!.n).toBe(0);
      expect(after[0]!.n - before[0]!.n).toBe(0);
    } finally {
      await qr.rollbackTransaction();
      await qr.release();
    }
  });
});

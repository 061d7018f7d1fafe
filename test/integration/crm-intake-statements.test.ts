import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CrmRecordInput } from '../../src/crm/crm.port';
import { startTestApp, type TestApp } from '../support/app';
import { nodes, type PlanNode } from '../support/explain';

// CRM intake through the database (README, "Identity resolution"): each record's merge
// suggestions were written one statement at a time, each after a look-up of its own, so a record
// among many namesakes took 10–20 statements; and both look-ups found the suggestions joining two
// customers by scanning every pending (or rejected) suggestion, on a table without statistics
// (autovacuum off, or a table growing faster than it analyzes), so intake slowed as the review
// queue grew (66, 33, 21, 11, 4 records/s over five chunks of 1,000 on the bench).

const GIVEN = ['James', 'Mary', 'John', 'Linda', 'Michael', 'Jennifer'];
const SURNAMES = ['Smith', 'Nguyen', 'Garcia', 'Johnson'];
const CITIES = ['springfield', 'riverside', 'franklin'];
/** pending suggestions between two customers of filler, beside the intake's own */
const BULK_SIDE = 150;

describe('CRM intake statements', () => {
  let app: TestApp;
  const run = `${Date.now() % 1e8}${Math.floor(Math.random() * 1e4)}`;

  /** contact k of this run: few names, so every record has many namesakes */
  function contact(k: number): CrmRecordInput {
    const givenName = GIVEN[k % GIVEN.length]!;
    const surname = SURNAMES[Math.floor(k / GIVEN.length) % SURNAMES.length]!;
    return {
      externalId: `003${run}${String(k).padStart(5, '0')}`,
      person: { givenName, surname, city: CITIES[k % CITIES.length], company: `Acme ${k % 7}` },
      identities: [{ kind: 'email', value: `${givenName}.${surname}.${run}.${k}@example.com`.toLowerCase() }],
    } as CrmRecordInput;
  }

  /** The statements `fn` sends, with their parameters as sent. */
  async function statementsOf(fn: () => Promise<unknown>): Promise<{ sql: string; params: unknown[] }[]> {
    const logger = app.db.ds.logger;
    const original = logger.logQuery.bind(logger);
    const seen: { sql: string; params: unknown[] }[] = [];
    logger.logQuery = (sql, params, qr) => {
      seen.push({ sql, params: Array.isArray(params) ? params : [] });
      return original(sql, params, qr);
    };
    try {
      await fn();
    } finally {
      logger.logQuery = original;
    }
    return seen;
  }

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api' }, 'crmintakestmts');
    // filler for the review queue: BULK_SIDE² pending suggestions between two customers
    await app.db.ds.query(`INSERT INTO customer (id, display_name) VALUES (gen_random_uuid(), 'Filler A'), (gen_random_uuid(), 'Filler B')`);
    await app.db.ds.query(
      `INSERT INTO customer_identity (customer_id, kind, value, source)
       SELECT c.id, 'email', 'filler' || g || '.' || lower(right(c.display_name, 1)) || '@${run}.example.com', 'crm'
         FROM customer c, generate_series(1, ${BULK_SIDE}) g WHERE c.display_name LIKE 'Filler %'`,
    );
    await app.db.ds.query(
      `INSERT INTO merge_suggestion (customer_a_id, customer_b_id, identity_a_id, identity_b_id, pair_key, score, evidence, reason, status)
       SELECT a.customer_id, b.customer_id, a.id, b.id, a.id::text || ':' || b.id::text, 8, '[]', 'filler', 'pending'
         FROM customer_identity a, customer_identity b
        WHERE a.value LIKE 'filler%.a@${run}.example.com' AND b.value LIKE 'filler%.b@${run}.example.com'`,
    );
    // namesakes held already
    await app.services.identity.ingestCrmRecords('salesforce', 'Contact', Array.from({ length: 120 }, (_, k) => contact(k)));
  }, 180_000);

  afterAll(async () => {
    await app?.close();
  });

  it('takes a record among many namesakes in a few statements, its suggestions in one', async () => {
    const records = Array.from({ length: 100 }, (_, k) => contact(1000 + k));
    let suggested = 0;
    const statements = await statementsOf(async () => {
      suggested = (await app.services.identity.ingestCrmRecords('salesforce', 'Contact', records)).suggested;
    });
    const writes = statements.filter((s) => /INSERT INTO merge_suggestion/.test(s.sql)).length;
    console.info(`[crm-intake-statements] ${records.length} records: ${statements.length} statements, ${suggested} suggestions in ${writes} statements`);
    expect(suggested).toBeGreaterThan(records.length);
    // at most one statement of suggestions a record
    expect(writes).toBeLessThanOrEqual(records.length);
    // before: 1,600 and more (two statements a suggestion, five to seven a record besides)
    expect(statements.length).toBeLessThanOrEqual(6 * records.length);
  }, 120_000);

  it('looks up the suggestions joining two customers from those customers, not by reading the review queue', async () => {
    const statements = await statementsOf(() => app.services.identity.ingestCrmRecords('salesforce', 'Contact', Array.from({ length: 20 }, (_, k) => contact(2000 + k))));
    const reading = statements.filter((s) => /merge_suggestion/.test(s.sql)).slice(0, 20);
    expect(reading.length).toBeGreaterThan(0);
    const qr = app.db.ds.createQueryRunner();
    await qr.connect();
    try {
      for (const s of reading) {
        await qr.startTransaction();
        try {
          const [{ 'QUERY PLAN': [plan] }] = (await qr.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${s.sql}`, s.params)) as { 'QUERY PLAN': { Plan: PlanNode }[] }[];
          let read = 0;
          for (const n of nodes(plan!.Plan)) {
            if (n['Relation Name'] !== 'merge_suggestion') continue;
            read += ((n['Actual Rows'] ?? 0) + (n['Rows Removed by Filter'] ?? 0) + (n['Rows Removed by Index Recheck'] ?? 0)) * (n['Actual Loops'] ?? 1);
          }
          // the review queue holds BULK_SIDE² filler rows; a record's customer and its namesakes' hold a few dozen
          expect(read, s.sql.replace(/\s+/g, ' ').slice(0, 160)).toBeLessThan(BULK_SIDE * 4);
        } finally {
          await qr.rollbackTransaction();
        }
      }
    } finally {
      await qr.release();
    }
  }, 120_000);
});

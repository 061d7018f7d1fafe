import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config';
import { ManualClock } from '../../src/shared/clock';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { startTestApp, type TestApp } from '../support/app';
import { salesforceEnv } from '../support/crm-env';

// Backfilled complaints (a data team replaying a year, a producer catching up after an outage)
// against the escalation's horizon of lateness, and "now" in the API on the injected clock.

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();
const COMPLAINT = 'My parcel is 5 days late and the courier tracking has not moved. Terrible delivery.';

const complaint = (source: string, externalId: string, at: number) => ({
  source, externalId, occurredAt: iso(at), direction: 'inbound', author: { email: `${externalId}@example.com`, displayName: externalId }, text: COMPLAINT,
});

async function skipped(app: TestApp): Promise<number> {
  const metric = await app.metrics.registry.getSingleMetric('earshot_gap_escalations_skipped_total')?.get();
  return metric?.values.find((v) => v.labels.reason === 'past_horizon')?.value ?? 0;
}

describe('listening gap escalation: backfilled complaints and the horizon of lateness', () => {
  let sf: SalesforceServer;
  let app: TestApp;
  const clock = new ManualClock();
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  const itemOf = async (externalId: string) =>
    (await q<{ id: string; escalation_state: string | null }>(`SELECT li.id, li.escalation_state FROM listening_item li JOIN interaction i ON i.id = li.interaction_id WHERE i.external_id = $1`, [externalId]))[0]!;
  const cases = () => sf.store.list('Case', false);
  const events = async () => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'listening-gap.v1'`))[0]!.n;

  beforeAll(async () => {
    sf = new SalesforceServer();
    await sf.start();
    app = await startTestApp(
      {
        EARSHOT_ROLES: 'api',
        EARSHOT_GAP_ESCALATION: 'off',
        EARSHOT_CRM_WRITEBACK: 'off',
        ...salesforceEnv(sf),
      },
      'gapbackfill',
      undefined,
      { clock },
    );
  }, 120_000);
  afterAll(async () => {
    await app?.close();
    await sf?.stop();
  });

  it('600 complaints 400 days old make no Case and no event; one two days late still escalates; the gap figures count them all as ignored', async () => {
    // times on the job's clock (another test here moves it), which the ingest's future-date check follows too
    const old = clock.now() - 400 * DAY;
    const backfill = Array.from({ length: 600 }, (_, n) => complaint('email', `bf-${n}`, old + n * 1000));
    for (let i = 0; i < backfill.length; i += 200) {
      const r = await app.services.ingest.ingestObjects(backfill.slice(i, i + 200), 'test');
      expect(r.rejected).toEqual([]);
    }
    // an email complaint (SLA 24 h) three days old: two days late, within the 72 h horizon
    const recent = await app.services.ingest.ingestObjects([complaint('email', 'bf-recent', clock.now() - 3 * DAY)], 'test');
    expect(recent.rejected).toEqual([]);

    const before = await skipped(app);
    const started = performance.now();
    const report = await app.services.escalation.runOnce();
    const seconds = (performance.now() - started) / 1000;
    console.log(`backfill escalation run: ${JSON.stringify(report)} in ${seconds.toFixed(2)} s; Cases ${cases().length}`);
    // before: 601 Cases and 601 listening-gap.v1 events in one run
    expect(report).toMatchObject({ claimed: 1, escalated: 1, failed: 0 });
    const recentItem = await itemOf('bf-recent');
    expect(cases().map((c) => c.Earshot_Item_Id__c)).toEqual([recentItem.id]);
    expect(await events()).toBe(1);
    expect(await skipped(app)).toBe(before + 600);
    expect((await itemOf('bf-0')).escalation_state).toBeNull();

    // a second run neither claims nor counts them again
    expect(await app.services.escalation.runOnce()).toMatchObject({ claimed: 0 });
    expect(await skipped(app)).toBe(before + 600);
    expect(cases()).toHaveLength(1);

    // in the figures they are what they were: received and ignored
    const r = await app.gql<{ listeningGap: { received: number; ignored: number; pending: number } }>(
      `{ listeningGap(from: "${iso(old - DAY)}", to: "${iso(old + DAY)}", channel: "email") { received ignored pending } }`,
    );
    expect(r.errors).toBeUndefined();
    expect(r.data.listeningGap).toEqual({ received: 600, ignored: 600, pending: 0 });
  }, 120_000);

  it('an item that passes the horizon without an escalation (the job was off) is counted once and gets no Case', async () => {
    // a chat complaint (SLA 1 h) two hours old: due an hour ago
    const t = clock.now() - 2 * HOUR;
    const r = await app.services.ingest.ingestObjects([complaint('chat', 'bf-aged', t)], 'test');
    expect(r.rejected).toEqual([]);
    const item = await itemOf('bf-aged');
    const before = await skipped(app);
    const casesBefore = cases().length;
    // the job's clock moves past the horizon (72 h) before it runs
    clock.advance(80 * HOUR);
    await app.services.escalation.runOnce();
    await app.services.escalation.runOnce();
    expect(cases().filter((c) => c.Earshot_Item_Id__c === item.id)).toEqual([]);
    expect(cases()).toHaveLength(casesBefore);
    expect(await skipped(app)).toBe(before + 1);
  });

  it('the claim reads only the due-time range of the horizon: the items before it are not read again, run after run', async () => {
    const old = clock.now() - 300 * DAY;
    const r = await app.services.ingest.ingestObjects(Array.from({ length: 100 }, (_, n) => complaint('email', `bf-plan-${n}`, old + n * 1000)), 'test');
    expect(r.rejected).toEqual([]);
    await app.services.escalation.runOnce();
    // the next run's claim as it is sent (on the jobs pool, where the job runs), then its plan,
    // executed in a transaction rolled back
    const ds = app.db.jobsDs ?? app.db.ds;
    const sent: { sql: string; params: unknown[] }[] = [];
    const query = ds.query.bind(ds);
    ds.query = (async (sql: string, params?: unknown[]) => {
      sent.push({ sql, params: params ?? [] });
      return query(sql, params);
    }) as typeof ds.query;
    try {
      await app.services.escalation.runOnce();
    } finally {
      ds.query = query;
    }
    const claim = sent.find((x) => x.sql.includes('UPDATE listening_item li SET escalation_state = \'pending\''));
    expect(claim).toBeDefined();
    const qr = ds.createQueryRunner();
    await qr.connect();
    let plan: string;
    try {
      await qr.startTransaction();
      plan = JSON.stringify(await qr.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${claim!.sql}`, claim!.params));
      await qr.rollbackTransaction();
    } finally {
      await qr.release();
    }
    expect(plan).toContain('listening_item_open_idx');
    const read = [...plan.matchAll(/"Index Name":"listening_item_open_idx"[^{}]*?"Actual Rows":(\d+)(?:[^{}]*?"Rows Removed by Filter":(\d+))?/g)]
      .reduce((n, m) => n + Number(m[1]) + Number(m[2] ?? 0), 0);
    console.log(`claim plan: ${read} rows read on listening_item_open_idx; ${/"Index Cond":"([^"]*)"/.exec(plan)?.[1]}`);
    // before: every open item past due was read (and filtered out) by every run, escalated or not
    expect(read).toBeLessThan(100);
  });
});

describe('listening gap API: "now" is the injected clock', () => {
  let app: TestApp;
  const clock = new ManualClock();
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api', EARSHOT_GAP_ESCALATION: 'off' }, 'gapnowclock', undefined, { clock });
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  it('ageSeconds, overdue, overdueOnly, listeningItem, the gap figures and overdueItems follow the clock', async () => {
    // a chat complaint (SLA 1 h) half an hour old: not due yet on any clock
    const t = Date.now() - 30 * MIN;
    const r = await app.services.ingest.ingestObjects([complaint('chat', 'now-1', t)], 'test');
    expect(r.rejected).toEqual([]);
    const read = async () => {
      const res = await app.gql<{
        openItems: { totalCount: number; edges: { node: { id: string; ageSeconds: number; overdue: boolean } }[] };
        overdue: { totalCount: number };
        listeningItems: { edges: { node: { ageSeconds: number; overdue: boolean } }[] };
        listeningGap: { ignored: number; pending: number };
        departmentInsights: { overdueItems: number }[];
      }>(
        `{ openItems(first: 5) { totalCount edges { node { id ageSeconds overdue } } }
           overdue: openItems(first: 5, overdueOnly: true) { totalCount }
           listeningItems(first: 5) { edges { node { ageSeconds overdue } } }
           listeningGap(from: "${iso(t - HOUR)}", to: "${iso(t + HOUR)}") { ignored pending }
           departmentInsights(from: "${iso(t - DAY)}", to: "${iso(t + DAY)}") { overdueItems } }`,
      );
      expect(res.errors).toBeUndefined();
      const id = res.data.openItems.edges[0]!.node.id;
      const one = await app.gql<{ listeningItem: { ageSeconds: number; overdue: boolean } }>(`query($id: ID!) { listeningItem(id: $id) { ageSeconds overdue } }`, { id });
      expect(one.errors).toBeUndefined();
      return { ...res.data, one: one.data.listeningItem };
    };
    const near = (s: number) => expect.toSatisfy((v: number) => Math.abs(v - s) <= 120);

    const now = await read();
    expect(now.openItems.edges[0]!.node).toMatchObject({ ageSeconds: near(1800), overdue: false });
    expect(now.overdue.totalCount).toBe(0);
    expect(now.listeningGap).toEqual({ ignored: 0, pending: 1 });

    clock.advance(5 * HOUR);
    const later = await read();
    // before: ageSeconds 1800 and overdue false everywhere, the item pending in the figures
    expect(later.openItems.edges[0]!.node).toMatchObject({ ageSeconds: near(1800 + 5 * 3600), overdue: true });
    expect(later.listeningItems.edges[0]!.node).toMatchObject({ ageSeconds: near(1800 + 5 * 3600), overdue: true });
    expect(later.one).toMatchObject({ ageSeconds: near(1800 + 5 * 3600), overdue: true });
    expect(later.overdue.totalCount).toBe(1);
    expect(later.listeningGap).toEqual({ ignored: 1, pending: 0 });
    expect(later.departmentInsights.reduce((n, d) => n + d.overdueItems, 0)).toBe(1);
  });
});

describe('EARSHOT_GAP_ESCALATION_HORIZON_HOURS', () => {
  const gap = (env: Record<string, string>) => loadConfig({ NODE_ENV: 'test', DATABASE_URL: 'postgres://localhost/x', ...env }).listeningGap;
  it('is 72 h by default (and when empty), 0 for no horizon, and refuses what is not a whole number of hours or is shorter than two runs', () => {
    expect(gap({}).escalationHorizonSeconds).toBe(72 * 3600);
    expect(gap({ EARSHOT_GAP_ESCALATION_HORIZON_HOURS: ' ' }).escalationHorizonSeconds).toBe(72 * 3600);
    expect(gap({ EARSHOT_GAP_ESCALATION_HORIZON_HOURS: '0' }).escalationHorizonSeconds).toBe(0);
    expect(gap({ EARSHOT_GAP_ESCALATION_HORIZON_HOURS: '720' }).escalationHorizonSeconds).toBe(720 * 3600);
    for (const bad of ['-1', '1.5', '72h', '0x10', '999999999']) expect(() => gap({ EARSHOT_GAP_ESCALATION_HORIZON_HOURS: bad }), bad).toThrow(/EARSHOT_GAP_ESCALATION_HORIZON_HOURS/);
    expect(() => gap({ EARSHOT_GAP_ESCALATION_HORIZON_HOURS: '1', EARSHOT_GAP_ESCALATION_INTERVAL_MS: '3600000' })).toThrow(/shorter than two runs/);
  });
});

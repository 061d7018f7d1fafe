import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { budgetFor } from '../../src/crm/crm-budget';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { startTestApp, type TestApp } from '../support/app';
import { seedSalesforceContacts } from '../fixtures/crm/seed';

// The production sync (jsforce through Earshot's budgeted transport, the identity intake, the
// cursor table) against the local Salesforce server: every call is real HTTP, counted by the server.
// Each test has an org, a budget and a database of its own (beforeEach); a test about an
// incremental run first loads a small org itself (`loaded`).

// Initial load: two Bulk API 2.0 result pages (10,000 records each, then 1,000), which is what the
// test asserts, at less than half the time of 25,000 (each record goes through identity
// resolution); CRM_BENCH_CONTACTS=25000 (or more) for the benchmark figure.
const N = Number(process.env.CRM_BENCH_CONTACTS ?? 11_000);
// Modstamps as an org has them: the past for the initial load, then ever later.
const B = Date.now() - 30 * 86_400_000;
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
let sf: SalesforceServer;
let app: TestApp;
/** The budget's clock runs this far ahead: a test moves it to "the next day". */
let clockOffset = 0;
/** Contacts in the org before a test's incremental runs (see `loaded`) */
const BASE = 50;

const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
const count = async (sql: string, params: unknown[] = []) => Number((await q<{ n: string }>(sql, params))[0]!.n);
const live = (ids: string[]) => count(`SELECT count(*) AS n FROM crm_record WHERE system = 'salesforce' AND external_id = ANY($1) AND deleted_at IS NULL`, [ids]);
const run = () => app.services.crmSync.run('salesforce', 'incremental');

/** An org with BASE contacts, modstamps in the past, taken in by a first sync: what incremental runs start from. */
async function loaded(): Promise<string[]> {
  const ids = seedSalesforceContacts(sf, BASE, { start: iso(B), stepMs: 1000 });
  const first = await run();
  expect(first.objects.find((o) => o.objectType === 'Contact')).toMatchObject({ outcome: 'ok', records: BASE });
  expect(await live(ids)).toBe(BASE);
  return ids;
}

beforeEach(async () => {
  clockOffset = 0;
  sf = new SalesforceServer();
  const { url } = await sf.start();
  // The org's one shared budget, registered first so its clock is the test's.
  budgetFor(`salesforce:${url}:earshot@example.com`, { daily: 100_000, per10s: 250 }, () => Date.now() + clockOffset);
  app = await startTestApp(
    {
      EARSHOT_ROLES: 'api',
      EARSHOT_SF_LOGIN_URL: url,
      EARSHOT_SF_CLIENT_ID: sf.options.clientId,
      EARSHOT_SF_CLIENT_SECRET: sf.options.clientSecret,
      EARSHOT_SF_USERNAME: 'earshot@example.com',
      EARSHOT_SF_PASSWORD: 'password',
      EARSHOT_SF_OBJECTS: 'Contact,Case',
      EARSHOT_SF_QUERY_BATCH_SIZE: '200',
      // above 1,000 changes a Bulk API 2.0 job (the REST cases here stay under it)
      EARSHOT_CRM_BULK_THRESHOLD: '1000',
      EARSHOT_CRM_RETRY_BASE_MS: '10',
      EARSHOT_CRM_MAX_RETRIES: '8',
    },
    'crmsf',
  );
}, 120_000);

afterEach(async () => {
  await app?.close();
  await sf?.stop();
});

describe('Salesforce sync', () => {
  it(`loads ${N.toLocaleString('en')} contacts through one Bulk API 2.0 job, every one once`, async () => {
    const ids = seedSalesforceContacts(sf, N, { start: iso(B), stepMs: 1000 });
    sf.resetStats();
    const t0 = performance.now();
    const report = await run();
    const ms = performance.now() - t0;
    expect(report.objects.find((o) => o.objectType === 'Contact')).toMatchObject({ outcome: 'ok', records: N, via: ['bulk'] });
    expect(await live(ids)).toBe(N);
    expect(await count(`SELECT count(DISTINCT customer_id) AS n FROM crm_record WHERE system = 'salesforce'`)).toBe(N);
    const s = sf.stats();
    expect(s.byEndpoint['POST /jobs/query']).toBe(1);
    expect(s.byEndpoint['GET /jobs/query/:id/results']).toBe(Math.ceil(N / 10_000));
    console.info(`[bench] salesforce initial sync of ${N} contacts: ${(ms / 1000).toFixed(1)} s, ${s.total} API calls (${((s.total / N) * 1000).toFixed(2)} per 1,000 records)`);
    const state = await app.services.crmSync.state('salesforce', 'Contact');
    expect(state).toMatchObject({ status: 'ok', recordsLastRun: N, cursorId: ids[N - 1] });
    expect(state!.cursorModstamp!.toISOString()).toBe(iso(B + (N - 1) * 1000));
  }, 400_000);

  it('syncs incremental changes through query/queryMore, resuming inside 300 records that share one SystemModstamp', async () => {
    await loaded();
    const stamp = iso(B + 24 * HOUR);
    const tied = seedSalesforceContacts(sf, 300, { start: stamp, stepMs: 0 });
    const later = seedSalesforceContacts(sf, 50, { start: iso(B + 25 * HOUR) });
    sf.resetStats();
    // The first page (200 of the tie) goes through; queryMore then fails past every retry.
    sf.faults.enqueue({ match: (r) => r.endpoint === 'GET /query/:locator', status: 500, times: 9 });
    const first = await run();
    expect(first.objects[0]).toMatchObject({ objectType: 'Contact', outcome: 'error', records: 200 });
    const mid = await app.services.crmSync.state('salesforce', 'Contact');
    expect(mid!.cursorModstamp!.toISOString()).toBe(stamp);
    expect(mid!.cursorId).toBe([...tied].sort()[199]);
    const second = await run();
    expect(second.objects[0]).toMatchObject({ outcome: 'ok', records: 150, via: ['rest'] });
    expect(await live([...tied, ...later])).toBe(350);
    expect(await count(`SELECT count(*) AS n FROM crm_record WHERE system = 'salesforce' AND object_type = 'Contact'`)).toBe(BASE + 350);
    // 500s: 9 (one try and eight retries).
    expect(sf.stats().byStatus['500']).toBe(9);
    const calls = sf.stats().total - 9;
    console.info(`[bench] salesforce incremental sync of 350 changes: ${calls} successful API calls (${((calls / 350) * 1000).toFixed(1)} per 1,000 records at 200 a page)`);
  });

  it('picks up edits and deletions (getDeleted) and marks deleted records without dropping their history', async () => {
    await loaded();
    const [a, b, c] = sf.store.list('Contact', false).slice(0, 3);
    sf.store.update('Contact', a!.Id, { Title: 'VP Listening' });
    // getDeleted answers in whole seconds: a deletion this very second would come next run, so
    // these are stamped a second ago on the server's clock (the sync looks a minute back anyway).
    sf.store.delete('Contact', b!.Id, Date.now() - 1_000);
    sf.store.delete('Contact', c!.Id, Date.now() - 1_000);
    sf.resetStats();
    const r = await run();
    expect(r.objects[0]).toMatchObject({ outcome: 'ok', records: 1, deleted: 2 });
    // one getDeleted each for Contact and Case
    expect(sf.stats().byEndpoint['GET /sobjects/:type/deleted']).toBe(2);
    const rows = await q<{ external_id: string; deleted_at: Date | null; payload: Record<string, unknown> }>(
      `SELECT external_id, deleted_at, payload FROM crm_record WHERE external_id = ANY($1) ORDER BY external_id`,
      [[a!.Id, b!.Id, c!.Id]],
    );
    const byId = new Map(rows.map((x) => [x.external_id, x]));
    expect(byId.get(a!.Id)!.deleted_at).toBeNull();
    expect(byId.get(a!.Id)!.payload.Title).toBe('VP Listening');
    expect(byId.get(b!.Id)!.deleted_at).not.toBeNull();
    expect(byId.get(c!.Id)!.payload.Email).toBe(c!.Email);
    // Nothing new: one count query and one getDeleted.
    sf.resetStats();
    const idle = await run();
    expect(idle.objects[0]).toMatchObject({ records: 0, deleted: 0 });
  });

  it('reads a contact saved by a transaction that committed after a run had read past its SystemModstamp (batch Apex, a long load)', async () => {
    const ids = await loaded();
    // an edit made now: read at once, but the cursor stays EARSHOT_SF_CURSOR_LAG_MS (5 min) behind the run
    sf.store.update('Contact', ids[0]!, { Title: 'Head of Care' });
    const first = await run();
    expect(first.objects[0]).toMatchObject({ outcome: 'ok', records: 1 });
    expect((await app.services.crmSync.state('salesforce', 'Contact'))!.cursorId).toBe(ids[BASE - 1]);
    // Saved 30 s ago in a transaction that commits only now: its SystemModstamp lies before the
    // edit the run read. Before, the cursor was at the edit, and this contact was never read.
    const late = sf.store.insert('Contact', { FirstName: 'Lena', LastName: 'Latecommit', Email: 'lena.latecommit@example.com' }, Date.now() - 30_000);
    const second = await run();
    expect(second.objects[0]).toMatchObject({ outcome: 'ok', records: 1 });
    expect(await live([late.Id])).toBe(1);
    // both are read again while they are within the lag, and handed to no one: nothing changed
    const third = await run();
    expect(third.objects[0]).toMatchObject({ outcome: 'ok', records: 0 });
    expect(await count(`SELECT count(*) AS n FROM crm_record WHERE system = 'salesforce' AND object_type = 'Contact'`)).toBe(BASE + 1);
  });

  it('gets a new session when the token expires mid-sync, on the REST path and on a Bulk result page', async () => {
    await loaded();
    const restIds = seedSalesforceContacts(sf, 700, { start: iso(Date.now() + HOUR) });
    sf.resetStats();
    sf.expireTokensAfterCalls(2);
    const rest = await run();
    expect(rest.objects[0]).toMatchObject({ outcome: 'ok', records: 700 });
    expect(await live(restIds)).toBe(700);
    expect(sf.stats().byEndpoint['POST /oauth2/token']).toBe(1);
    expect(sf.stats().byStatus['401']).toBe(1);

    const bulkIds = seedSalesforceContacts(sf, 1200, { start: iso(Date.now() + 2 * HOUR) });
    sf.resetStats();
    // count, job create, poll: the first result page then meets an expired session.
    sf.expireTokensAfterCalls(3);
    const bulk = await run();
    expect(bulk.objects[0]).toMatchObject({ outcome: 'ok', records: 1200, via: ['bulk'] });
    expect(await live(bulkIds)).toBe(1200);
    expect(sf.stats().byEndpoint['POST /oauth2/token']).toBe(1);
  });

  it('rides out a storm of 429s, with and without Retry-After, and counts every retry against the budget', async () => {
    await loaded();
    const ids = seedSalesforceContacts(sf, 450, { start: iso(Date.now() + 3 * HOUR) });
    sf.resetStats();
    const before = app.services.crmSync.client('salesforce')!.budget.snapshot().usedToday;
    sf.faults.enqueue({ match: '/services/data', status: 429, retryAfter: 1, times: 2 });
    sf.faults.enqueue({ match: '/services/data', status: 429, times: 3 });
    sf.faults.enqueue({ match: '/services/data', status: 503, times: 1 });
    const t0 = performance.now();
    const r = await run();
    expect(r.objects[0]).toMatchObject({ outcome: 'ok', records: 450 });
    expect(await live(ids)).toBe(450);
    expect(sf.stats().byStatus).toMatchObject({ '429': 5, '503': 1 });
    // Retry-After: 1 s was honoured twice (the transport pauses the whole org).
    expect(performance.now() - t0).toBeGreaterThanOrEqual(2_000);
    const used = app.services.crmSync.client('salesforce')!.budget.snapshot().usedToday - before;
    expect(used).toBe(sf.stats().total - (sf.stats().byEndpoint['POST /oauth2/token'] ?? 0));
  });

  it('stops cleanly when the daily budget is spent (own budget or REQUEST_LIMIT_EXCEEDED) and resumes from the cursor next window', async () => {
    await loaded();
    const budget = app.services.crmSync.client('salesforce')!.budget;
    const ids = seedSalesforceContacts(sf, 900, { start: iso(Date.now() + 4 * HOUR) });
    // The org says the day is spent after the count query and two pages.
    sf.faults.enqueue({ match: (r) => r.endpoint === 'GET /query/:locator' && r.path.endsWith('-400'), status: 403, body: [{ message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }] });
    const r1 = await run();
    expect(r1.complete).toBe(false);
    expect(r1.objects[0]).toMatchObject({ outcome: 'budget_exhausted', records: 400 });
    const st = await app.services.crmSync.states('salesforce');
    expect(st.map((s) => s.status)).toEqual(['budget_exhausted', 'budget_exhausted']);
    expect(st.find((s) => s.objectType === 'Contact')!.lastError).toMatch(/daily API budget .* is spent/);
    // Same window: nothing is sent at all.
    sf.resetStats();
    const r2 = await run();
    expect(r2.objects[0]!.outcome).toBe('budget_exhausted');
    expect(sf.stats().total).toBe(0);
    expect(budget.snapshot().exhaustedUntil).not.toBeNull();
    // The next UTC day: it resumes from the cursor and loses nothing.
    clockOffset += 86_400_000;
    const r3 = await run();
    expect(r3.objects[0]).toMatchObject({ outcome: 'ok', records: 500 });
    expect(await live(ids)).toBe(900);
  });

  it('syncs Case status for the listening gap', async () => {
    await loaded();
    const [contact] = sf.store.list('Contact', false);
    const open = sf.store.insert('Case', { Subject: 'Parcel late', Status: 'New', ContactId: contact!.Id });
    const closed = sf.store.insert('Case', { Subject: 'Refund', Status: 'Closed', ContactId: contact!.Id });
    await run();
    const rows = await q<{ external_id: string; status: string; is_closed: boolean; contact_id: string }>(`SELECT external_id, status, is_closed, contact_id FROM crm_case ORDER BY external_id`);
    expect(rows).toEqual([
      { external_id: open.Id, status: 'New', is_closed: false, contact_id: contact!.Id },
      { external_id: closed.Id, status: 'Closed', is_closed: true, contact_id: contact!.Id },
    ]);
    sf.store.update('Case', open.Id, { Status: 'Closed' });
    await run();
    expect((await q<{ is_closed: boolean }>(`SELECT is_closed FROM crm_case WHERE external_id = $1`, [open.Id]))[0]!.is_closed).toBe(true);
  });

  it('shows sync state over GraphQL and links customers to their Salesforce records', async () => {
    await loaded();
    const status = await app.gql<{ crmSyncStatus: { systems: string[]; objects: { objectType: string; status: string; totalRecords: number; cursorId: string | null }[]; budgets: { system: string; usedToday: number }[] } }>(
      `{ crmSyncStatus { systems running objects { system objectType status cursorModstamp cursorId totalRecords lastError apiCallsLastRun } budgets { system usedToday dailyLimit per10s exhaustedUntil } writeBackPending } }`,
    );
    expect(status.errors).toBeUndefined();
    expect(status.data.crmSyncStatus.systems).toEqual(['SALESFORCE']);
    const contact = status.data.crmSyncStatus.objects.find((o) => o.objectType === 'Contact')!;
    expect(contact.status).toBe('OK');
    expect(contact.totalRecords).toBe(BASE);
    expect(status.data.crmSyncStatus.budgets[0]!.usedToday).toBeGreaterThan(0);

    const [rec] = sf.store.list('Contact', false);
    const [{ customer_id }] = await q<{ customer_id: string }>(`SELECT customer_id FROM crm_record WHERE external_id = $1`, [rec!.Id]);
    const id = Buffer.from(`Customer:${customer_id}`).toString('base64url');
    const res = await app.gql<{ customer: { crmRecords: { system: string; objectType: string; externalId: string; url: string; owner: string; lastModified: string }[] } }>(
      `query($id: ID!) { customer(id: $id) { crmRecords { system objectType externalId url owner lastModified } } }`,
      { id },
    );
    expect(res.errors).toBeUndefined();
    expect(res.data.customer.crmRecords).toEqual([
      { system: 'SALESFORCE', objectType: 'Contact', externalId: rec!.Id, url: `${sf.url}/lightning/r/Contact/${rec!.Id}/view`, owner: sf.store.defaultUserId, lastModified: expect.any(String) },
    ]);

    const trig = await app.gql<{ triggerCrmSync: { running: string[] } }>(`mutation { triggerCrmSync(system: SALESFORCE, mode: INCREMENTAL) { running } }`);
    expect(trig.errors).toBeUndefined();
    expect(trig.data.triggerCrmSync.running).toEqual(['SALESFORCE']);
    await app.services.crmSync.idle('salesforce');
    expect(app.services.crmSync.isRunning('salesforce')).toBe(false);
  });
});

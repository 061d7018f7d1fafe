import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CrmRequest } from '../crm-servers/http-util';
import { HubSpotServer } from '../crm-servers/hubspot/server';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { startTestApp, type TestApp } from '../support/app';
import { crmEnv } from '../support/crm-env';
import { seedHubSpotContacts, seedSalesforceContacts } from '../fixtures/crm/seed';

// The production sync against local CRMs answering what a broken or hostile CRM would: a huge
// body, a body that is not JSON with 200. What
// must hold: the run ends (with an error when the answer is unusable), the process lives, the
// cursor keeps every record, the next run takes them all.

const B = Date.now() - 30 * 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
let sf: SalesforceServer;
let hs: HubSpotServer;
let app: TestApp;
const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
const live = async (system: string, ids: string[]) =>
  Number((await q<{ n: string }>(`SELECT count(*) AS n FROM crm_record WHERE system = $1 AND external_id = ANY($2) AND deleted_at IS NULL`, [system, ids]))[0]!.n);
const isSearch = (r: CrmRequest) => r.path.endsWith('/contacts/search');
const isRecordQuery = (r: CrmRequest) => r.endpoint === 'GET /query' && !/COUNT\(\)/.test(r.query.get('q') ?? '');

beforeEach(async () => {
  sf = new SalesforceServer();
  hs = new HubSpotServer();
  await sf.start();
  await hs.start();
  app = await startTestApp({ EARSHOT_ROLES: 'api', ...crmEnv(sf, hs), EARSHOT_CRM_MAX_RETRIES: '2', EARSHOT_CRM_REQUEST_TIMEOUT_MS: '5000' }, 'crmreplies');
}, 120_000);

afterEach(async () => {
  await app?.close();
  await sf?.stop();
  await hs?.stop();
});

describe('hostile CRM replies', () => {
  it('HubSpot: a search answered 200 with a body that is not JSON fails the run, keeps the cursor, and the next run takes every record', async () => {
    const ids = seedHubSpotContacts(hs, 5, { start: iso(B) });
    hs.faults.enqueue({ match: isSearch, status: 200, headers: { 'Content-Type': 'application/json' }, body: '{"total": 5, "results": [{"id": "1", ' });
    const report = await app.services.crmSync.run('hubspot');
    expect(report.objects[0]).toMatchObject({ outcome: 'error' });
    expect(await app.services.crmSync.state('hubspot', 'contacts')).toMatchObject({ status: 'error', cursorModstamp: null });
    expect((await app.services.crmSync.run('hubspot')).objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
    expect(await live('hubspot', ids)).toBe(5);
  });

  it('a 50 MB reply on both CRMs ends the run within its deadline and the next run takes every record', async () => {
    const sfIds = seedSalesforceContacts(sf, 5, { start: iso(B) });
    const hsIds = seedHubSpotContacts(hs, 5, { start: iso(B) });
    const pad = 'x'.repeat(50 * 1024 * 1024);
    const json = { 'Content-Type': 'application/json' };
    sf.faults.enqueue({ match: isRecordQuery, status: 200, headers: json, body: `{"totalSize":0,"done":true,"records":[],"pad":"${pad}"}` });
    hs.faults.enqueue({ match: isSearch, status: 200, headers: json, body: `{"total":0,"results":[],"pad":"${pad}"}` });
    const t0 = Date.now();
    const [s, h] = await Promise.all([app.services.crmSync.run('salesforce'), app.services.crmSync.run('hubspot')]);
    const ms = Date.now() - t0;
    console.log(`[probe] 50 MB replies: ${ms} ms, salesforce ${s.objects[0]!.outcome} (${s.objects[0]!.apiCalls} calls), hubspot ${h.objects[0]!.outcome} (${h.objects[0]!.apiCalls} calls)`);
    // read and parsed, or cut off by the 5 s per-call deadline and retried: either way the run ends
    expect(ms).toBeLessThan(30_000);
    expect((await app.services.crmSync.run('salesforce', 'full')).objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
    expect((await app.services.crmSync.run('hubspot', 'full')).objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
    expect(await live('salesforce', sfIds)).toBe(5);
    expect(await live('hubspot', hsIds)).toBe(5);
  }, 60_000);
});

import { afterEach, describe, expect, it } from 'vitest';
import type { ManualClock } from '../../src/shared/clock';
import { dripForever, hugeJson, type CrmRequest } from '../crm-servers/http-util';
import { HubSpotServer } from '../crm-servers/hubspot/server';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { startTestApp, type TestApp } from '../support/app';
import { crmEnv } from '../support/crm-env';
import { writebackWorld } from '../support/crm-writeback-world';
import { seedHubSpotContacts, seedSalesforceContacts } from '../fixtures/crm/seed';

// The real jsforce and HubSpot clients, through Earshot's adapters, against local CRMs whose
// replies are too large: a 1 GiB page announced by Content-Length, a chunked body that never ends,
// and a body dripped a byte a second. What must hold: the call fails once the body passes
// EARSHOT_CRM_MAX_RESPONSE_BYTES (1 MiB here), well before the per-call deadline, with an error
// that says so (crmSyncStatus, crm_record.writeback_error); the cursor stays, nothing is lost, the
// next run takes every record, and the service keeps answering. A drip is cut by the deadline.

const MAX = 1024 * 1024;
const DEADLINE_MS = 4_000;
const GIB = 1024 ** 3;
const B = Date.now() - 30 * 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
const env = { EARSHOT_CRM_MAX_RESPONSE_BYTES: String(MAX), EARSHOT_CRM_REQUEST_TIMEOUT_MS: String(DEADLINE_MS), EARSHOT_CRM_MAX_RETRIES: '1' };

const isRecordQuery = (r: CrmRequest) => r.endpoint === 'GET /query' && !/COUNT\(\)/.test(r.query.get('q') ?? '');
const isSearch = (r: CrmRequest) => r.path.endsWith('/contacts/search');
const isSfWrite = (r: CrmRequest) => r.path.endsWith('/composite/sobjects');
const isHsWrite = (r: CrmRequest) => r.path.endsWith('/contacts/batch/update');

const bodies = {
  'a 1 GiB page announced by its Content-Length': { bytes: GIB, declareLength: true, said: /answered with a body larger than 1 MiB \(Content-Length \d{10}\); cut off there and the call failed \(EARSHOT_CRM_MAX_RESPONSE_BYTES\)$/ },
  'a chunked body that never ends': { bytes: null, declareLength: false, said: /answered with a body larger than 1 MiB; cut off there and the call failed \(EARSHOT_CRM_MAX_RESPONSE_BYTES\)$/ },
};

let sf: SalesforceServer | undefined;
let hs: HubSpotServer | undefined;
let app: TestApp | undefined;

afterEach(async () => {
  await app?.close();
  await Promise.all([sf?.stop(), hs?.stop()]);
  app = sf = hs = undefined;
});

type SyncStatus = { crmSyncStatus: { objects: { system: string; objectType: string; status: string; lastError: string | null; cursorModstamp: string | null }[] } };

describe.each(Object.entries(bodies))('a CRM reply larger than EARSHOT_CRM_MAX_RESPONSE_BYTES: %s', (_name, body) => {
  it('fails the sync call on both CRMs within moments, says so in crmSyncStatus, keeps the cursor, and the next run takes every record', async () => {
    sf = new SalesforceServer();
    hs = new HubSpotServer();
    await Promise.all([sf.start(), hs.start()]);
    app = await startTestApp({ EARSHOT_ROLES: 'api', ...crmEnv(sf, hs), ...env }, 'crmsize');
    const sfIds = seedSalesforceContacts(sf, 5, { start: iso(B) });
    const hsIds = seedHubSpotContacts(hs, 5, { start: iso(B) });
    const sfSent = { bytes: 0 };
    const hsSent = { bytes: 0 };
    sf.faults.enqueue({ match: isRecordQuery, raw: hugeJson({ ...body, sent: sfSent }), times: 10 });
    hs.faults.enqueue({ match: isSearch, raw: hugeJson({ ...body, sent: hsSent }), times: 10 });

    const [s, h] = await Promise.all([app.services.crmSync.run('salesforce'), app.services.crmSync.run('hubspot')]);
    expect(s.objects[0]).toMatchObject({ outcome: 'error' });
    expect(h.objects[0]).toMatchObject({ outcome: 'error' });
    // the cap ended it (its error below, not the per-call deadline's), and it was not asked again
    expect(sf.faults.pending() + hs.faults.pending()).toBe(18);
    // what was handed to the sockets before the client hung up: the cap and the socket buffers
    expect(sfSent.bytes).toBeLessThan(16 * MAX);
    expect(hsSent.bytes).toBeLessThan(16 * MAX);

    const status = await app.gql<SyncStatus>(`{ crmSyncStatus { objects { system objectType status lastError cursorModstamp } } }`);
    expect(status.errors).toBeUndefined();
    const bySystem = Object.fromEntries(status.data.crmSyncStatus.objects.map((o) => [o.system, o]));
    expect(bySystem.SALESFORCE).toMatchObject({ status: 'ERROR', cursorModstamp: null, lastError: expect.stringMatching(new RegExp(`^Salesforce GET /services/data/v62\\.0/query ${body.said.source}`)) });
    expect(bySystem.HUBSPOT).toMatchObject({ status: 'ERROR', cursorModstamp: null, lastError: expect.stringMatching(new RegExp(`^HubSpot POST /crm/v3/objects/contacts/search ${body.said.source}`)) });

    sf.faults.clear();
    hs.faults.clear();
    expect((await app.services.crmSync.run('salesforce')).objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
    expect((await app.services.crmSync.run('hubspot')).objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
    const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM crm_record WHERE external_id = ANY($1) AND deleted_at IS NULL`, [[...sfIds, ...hsIds]])) as { n: number }[];
    expect(n).toBe(10);
  }, 60_000);

  it('fails the write-back call on both CRMs, records why on each record, keeps them queued, and writes them once the CRM answers sanely', async () => {
    let clock: ManualClock;
    let sfIds: string[];
    let hsIds: string[];
    let speak: (who: string[]) => Promise<void>;
    let emails: string[];
    ({ clock, sf, hs, app, sfIds, hsIds, emails, speak } = await writebackWorld({ label: 'crmsizewb', customers: 3, env: { ...env, EARSHOT_CRM_WRITEBACK_LEASE_MS: '60000' } }));
    await speak(emails);
    const sfSent = { bytes: 0 };
    const hsSent = { bytes: 0 };
    sf.faults.enqueue({ match: isSfWrite, raw: hugeJson({ ...body, sent: sfSent }), times: 10 });
    hs.faults.enqueue({ match: isHsWrite, raw: hugeJson({ ...body, sent: hsSent }), times: 10 });

    // the cap ends each call (its error below, not the deadline's), and none is asked again
    expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: 3, written: 0, failed: 6 });
    expect(sf.faults.pending() + hs.faults.pending()).toBe(18);
    expect(sfSent.bytes).toBeLessThan(16 * MAX);
    expect(hsSent.bytes).toBeLessThan(16 * MAX);
    const errors = (await app.db.ds.query(`SELECT system, writeback_error FROM crm_record WHERE external_id = ANY($1) ORDER BY system`, [[...sfIds, ...hsIds]])) as { system: string; writeback_error: string | null }[];
    expect(errors).toHaveLength(6);
    for (const e of errors) {
      const call = e.system === 'salesforce' ? 'Salesforce PATCH /services/data/v62\\.0/composite/sobjects' : 'HubSpot POST /crm/v3/objects/contacts/batch/update';
      expect(e.writeback_error).toMatch(new RegExp(`^${call} ${body.said.source}`));
    }
    const [{ queued }] = (await app.db.ds.query(`SELECT count(*)::int AS queued FROM crm_writeback`)) as { queued: number }[];
    expect(queued).toBe(3);

    sf.faults.clear();
    hs.faults.clear();
    clock.advance(60_000);
    expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: 3, written: 6, failed: 0 });
    for (const id of sfIds) expect(sf.store.find('Contact', id)?.Earshot_Sentiment_Label__c).toBe('negative');
    for (const id of hsIds) expect(hs.store.get('contacts', id)?.properties.earshot_sentiment_label).toBe('negative');
  }, 60_000);
});

describe('a CRM reply dripped a byte a second', () => {
  it('is cut by the per-call deadline, body included, on both CRMs, for write-back too, with an error that names the deadline', async () => {
    let sfIds: string[];
    let hsIds: string[];
    let speak: (who: string[]) => Promise<void>;
    let emails: string[];
    ({ sf, hs, app, sfIds, hsIds, emails, speak } = await writebackWorld({ label: 'crmdrip', customers: 2, env: { ...env, EARSHOT_CRM_MAX_RETRIES: '0', EARSHOT_CRM_WRITEBACK_LEASE_MS: '60000' } }));
    await speak(emails);
    sf.faults.enqueue({ match: isSfWrite, raw: dripForever(1_000) });
    hs.faults.enqueue({ match: isHsWrite, raw: dripForever(1_000) });

    const t0 = Date.now();
    expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: 2, written: 0, failed: 4 });
    const ms = Date.now() - t0;
    // headers at once, then a byte a second: only the deadline on the whole reply ends each call
    // (the two CRMs' write-backs run one after the other)
    expect(ms).toBeGreaterThanOrEqual(2 * DEADLINE_MS);
    const errors = (await app.db.ds.query(`SELECT system, writeback_error FROM crm_record WHERE external_id = ANY($1) ORDER BY system`, [[...sfIds, ...hsIds]])) as { system: string; writeback_error: string | null }[];
    expect(errors).toHaveLength(4);
    for (const e of errors) {
      const call = e.system === 'salesforce' ? 'Salesforce PATCH /services/data/v62\\.0/composite/sobjects' : 'HubSpot batch update contacts failed with a network error \\(HubSpot POST /crm/v3/objects/contacts/batch/update';
      expect(e.writeback_error).toMatch(new RegExp(`^${call}: no complete reply within ${DEADLINE_MS} ms`));
    }
    // the service answers meanwhile and after
    const status = await app.gql<{ crmSyncStatus: { objects: unknown[] } }>(`{ crmSyncStatus { objects { system } } }`);
    expect(status.errors).toBeUndefined();
  }, 60_000);
});

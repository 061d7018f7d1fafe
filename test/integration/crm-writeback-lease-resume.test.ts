import { afterEach, describe, expect, it } from 'vitest';
import type { HubSpotServer } from '../crm-servers/hubspot/server';
import type { SalesforceServer } from '../crm-servers/salesforce/server';
import type { CrmRequest } from '../crm-servers/http-util';
import type { TestApp } from '../support/app';
import { writebackWorld, type WritebackWorld } from '../support/crm-writeback-world';

// The write-back when HubSpot asks to wait (Retry-After) exactly as long as a call waits in place,
// longer than the pass's lease has left, or partway through a pass of several batch calls. Each
// test has both local CRMs, an injected clock and a database of its own. A call waits in place for
// less than 2 s here (EARSHOT_CRM_MAX_RETRY_WAIT_MS).

const HS_BATCH = 'POST /crm/v3/objects/:type/batch/update';
let w: WritebackWorld | undefined;
let app: TestApp;
let hs: HubSpotServer;
let sf: SalesforceServer;

const pending = async () => Number(((await app.db.ds.query('SELECT count(*) AS n FROM crm_writeback')) as { n: string }[])[0]!.n);
const hsLabel = (id: string) => hs.store.get('contacts', id)?.properties.earshot_sentiment_label ?? null;

async function setup(customers: number, env: Record<string, string>): Promise<WritebackWorld> {
  w = await writebackWorld({ label: 'crmwblr', customers, env: { EARSHOT_CRM_MAX_RETRY_WAIT_MS: '2000', ...env } });
  ({ app, hs, sf } = w);
  return w;
}

/** Counts HubSpot batch-update calls and the records they carry (a fault that never matches). */
function countBatches(): { calls: number; records: number } {
  const seen = { calls: 0, records: 0 };
  hs.faults.enqueue({
    times: 1_000_000,
    match: (r: CrmRequest) => {
      if (r.endpoint === HS_BATCH) {
        seen.calls++;
        seen.records += (JSON.parse(r.rawBody) as { inputs: unknown[] }).inputs.length;
      }
      return false;
    },
  });
  return seen;
}

afterEach(async () => {
  await w?.app.close();
  await Promise.all([w?.sf.stop(), w?.hs.stop()]);
  w = undefined;
});

describe('CRM write-back: Retry-After against the in-place limit and the lease', () => {
  // Before: a Retry-After of exactly the limit (2 s) was slept through in place (2 calls, the pass
  // took 2 s); with the defaults (both 120 s) that wait outlived the pass's lease.
  it('defers a Retry-After of exactly EARSHOT_CRM_MAX_RETRY_WAIT_MS instead of sleeping through it', async () => {
    const { clock, speak, emails, hsIds } = await setup(3, { EARSHOT_CRM_WRITEBACK_LEASE_MS: '600000' });
    await speak(emails);
    const seen = countBatches();
    hs.faults.enqueue({ match: (r: CrmRequest) => r.endpoint === HS_BATCH, status: 429, times: 1, retryAfter: 2 });
    const t0 = clock.now();
    const started = Date.now();
    const first = await app.services.crmWriteback.runOnce();
    const ms = Date.now() - started;
    expect(seen.calls).toBe(1);
    // the clock follows real time: the wait starts when the 429 arrives, within the pass
    expect(first.pausedUntil.hubspot!.getTime() - t0).toBeGreaterThanOrEqual(2_000);
    expect(first.pausedUntil.hubspot!.getTime() - t0).toBeLessThanOrEqual(2_000 + ms);
    expect(ms).toBeLessThan(1_500);
    expect(await pending()).toBe(3);
    clock.advance(2_000 + ms);
    expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: 3, written: 3, failed: 0 });
    expect(seen.calls).toBe(2);
    for (const id of hsIds) expect(hsLabel(id)).toBe('negative');
  });

  // Before: a Retry-After of 1 s (under the limit) was slept through in place although the pass's
  // lease (500 ms) ended before it: another replica could claim and send the same customers.
  it('never waits in place past the end of the pass lease', async () => {
    const { clock, speak, emails, hsIds } = await setup(3, { EARSHOT_CRM_WRITEBACK_LEASE_MS: '500' });
    await speak(emails);
    const seen = countBatches();
    hs.faults.enqueue({ match: (r: CrmRequest) => r.endpoint === HS_BATCH, status: 429, times: 1, retryAfter: 1 });
    const t0 = clock.now();
    const started = Date.now();
    const first = await app.services.crmWriteback.runOnce();
    const ms = Date.now() - started;
    expect(seen.calls).toBe(1);
    // the clock follows real time: the wait starts when the 429 arrives, within the pass
    expect(first.pausedUntil.hubspot!.getTime() - t0).toBeGreaterThanOrEqual(1_000);
    expect(first.pausedUntil.hubspot!.getTime() - t0).toBeLessThanOrEqual(1_000 + ms);
    expect(ms).toBeLessThan(1_000);
    clock.advance(1_000 + ms);
    expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: 3, written: 3 });
    expect(seen.calls).toBe(2);
    for (const id of hsIds) expect(hsLabel(id)).toBe('negative');
    expect(await pending()).toBe(0);
  });
});

describe('CRM write-back: a wait partway through a pass of several batch calls', () => {
  // Before: the 429 on the 2nd of 2 batch calls (150 records) threw away the 1st call's outcomes:
  // the pass after the wait sent all 150 again (4 calls, 300 records at HubSpot for 150 records).
  it('resumes where it stopped: records written before the wait are not sent again', async () => {
    const N = 150;
    const { clock, speak, emails, hsIds, sfIds } = await setup(N, { EARSHOT_CRM_WRITEBACK_LEASE_MS: '600000' });
    await speak(emails);
    const seen = countBatches();
    let n = 0;
    hs.faults.enqueue({ match: (r: CrmRequest) => r.endpoint === HS_BATCH && ++n === 2, status: 429, times: 1, retryAfter: 120 });
    const first = await app.services.crmWriteback.runOnce();
    expect(seen).toEqual({ calls: 2, records: 150 });
    expect(first).toMatchObject({ customers: N, written: N + 100 });
    expect(first.pausedUntil.hubspot).toBeInstanceOf(Date);
    expect(hsIds.filter((id) => hsLabel(id) === 'negative')).toHaveLength(100);

    // the GraphQL status says until when HubSpot gets no call
    type Status = { crmSyncStatus: { budgets: { system: string; pausedUntil: string | null }[] } };
    const status = await app.gql<Status>('{ crmSyncStatus { budgets { system pausedUntil } } }');
    expect(status.errors).toBeUndefined();
    const budgets = Object.fromEntries(status.data.crmSyncStatus.budgets.map((b) => [b.system, b.pausedUntil]));
    expect(budgets).toEqual({ SALESFORCE: null, HUBSPOT: first.pausedUntil.hubspot!.toISOString() });

    clock.advance(121_000);
    const second = await app.services.crmWriteback.runOnce();
    expect(second).toMatchObject({ written: 50, failed: 0 });
    expect(seen).toEqual({ calls: 3, records: 200 });
    for (const id of hsIds) expect(hsLabel(id)).toBe('negative');
    for (const id of sfIds) expect(sf.store.find('Contact', id)?.Earshot_Sentiment_Label__c).toBe('negative');
    expect(await pending()).toBe(0);
    const after = await app.gql<Status>('{ crmSyncStatus { budgets { system pausedUntil } } }');
    expect(after.data.crmSyncStatus.budgets.every((b) => b.pausedUntil === null)).toBe(true);
  });

  // Before: the 503 on the 2nd of 2 sObject Collections calls (250 records) threw away the 1st
  // call's outcomes, and the pass after the wait sent all 250 again.
  it('Salesforce: resumes where it stopped after a Retry-After on the second collection call', async () => {
    const N = 250;
    const { clock, speak, emails, sfIds } = await setup(N, { EARSHOT_CRM_WRITEBACK_LEASE_MS: '600000' });
    await speak(emails);
    const seen = { calls: 0, records: 0 };
    sf.faults.enqueue({
      times: 1_000_000,
      match: (r: CrmRequest) => {
        if (r.endpoint === 'PATCH /composite/sobjects') {
          seen.calls++;
          seen.records += (JSON.parse(r.rawBody) as { records: unknown[] }).records.length;
        }
        return false;
      },
    });
    let n = 0;
    sf.faults.enqueue({ match: (r: CrmRequest) => r.endpoint === 'PATCH /composite/sobjects' && ++n === 2, status: 503, times: 1, retryAfter: 120 });
    const first = await app.services.crmWriteback.runOnce();
    expect(seen).toEqual({ calls: 2, records: 250 });
    expect(first).toMatchObject({ customers: N, written: N + 200 });
    clock.advance(121_000);
    expect(await app.services.crmWriteback.runOnce()).toMatchObject({ written: 50, failed: 0 });
    expect(seen).toEqual({ calls: 3, records: 300 });
    for (const id of sfIds) expect(sf.store.find('Contact', id)?.Earshot_Sentiment_Label__c).toBe('negative');
    expect(await pending()).toBe(0);
  });
});

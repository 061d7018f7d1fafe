import { afterEach, describe, expect, it } from 'vitest';
import { CrmWritebackService, MAX_RECORD_ATTEMPTS } from '../../src/crm/crm-writeback.service';
import type { ManualClock } from '../../src/shared/clock';
import { createLogger } from '../../src/shared/logger';
import type { HubSpotServer } from '../crm-servers/hubspot/server';
import type { SalesforceServer } from '../crm-servers/salesforce/server';
import type { CrmRequest } from '../crm-servers/http-util';
import type { TestApp } from '../support/app';
import { writebackWorld, type WritebackWorld } from '../support/crm-writeback-world';
import { waitFor } from '../support/kafka-fixtures';

// The write-back when a CRM asks to wait (Retry-After) longer than a call waits in place, and when
// it refuses records for good. Each test has both local CRMs, an injected clock (the queue and the
// API budgets run on it: time is moved, never waited for) and a database of its own, synced before
// the test speaks: 4 customers, each with a Salesforce Contact and a HubSpot contact. A call waits
// in place for at most 2 s here (EARSHOT_CRM_MAX_RETRY_WAIT_MS), so a Retry-After of 120 s is long.

const N = 4;
const HS_BATCH = 'POST /crm/v3/objects/:type/batch/update';
const SF_COLLECTION = 'PATCH /composite/sobjects';
let sf: SalesforceServer;
let hs: HubSpotServer;
let app: TestApp;
let sfIds: string[];
let hsIds: string[];
let emails: string[];
let clock: ManualClock;
let speak: WritebackWorld['speak'];

const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
const pending = async () => Number((await q<{ n: string }>('SELECT count(*) AS n FROM crm_writeback'))[0]!.n);
const hsLabel = (id: string) => hs.store.get('contacts', id)?.properties.earshot_sentiment_label ?? null;
const sfLabel = (id: string) => sf.store.find('Contact', id)?.Earshot_Sentiment_Label__c ?? null;
const metrics = async () => (await fetch(`${app.url}/metrics`)).text();
const metric = (text: string, name: string, labels: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? null : Number(line.split(' ').pop());
};

async function setup(): Promise<void> {
  ({ clock, sf, hs, app, sfIds, hsIds, emails, speak } = await writebackWorld({ label: 'crmwbra', customers: N, env: { EARSHOT_CRM_MAX_RETRY_WAIT_MS: '2000' } }));
}

/** A write-back over the app's database and CRM clients whose log lines land in `lines`. */
function writebackWithLog(lines: string[]): CrmWritebackService {
  const log = createLogger('warn', {}, { write: (l: string) => void lines.push(l) });
  const clients = [app.services.crmSync.client('salesforce')!, app.services.crmSync.client('hubspot')!];
  return new CrmWritebackService(app.db.ds, clients, { writeBack: true, writeBackPollMs: 1000, writeBackLeaseMs: 500 }, 'http://localhost:4000', log, undefined, { clock });
}

afterEach(async () => {
  await app?.close();
  await Promise.all([sf?.stop(), hs?.stop()]);
});

describe('CRM write-back and a long Retry-After', () => {
  // Before: the call failed ("asked to wait 120 s, longer than this run waits") and the queue sent
  // it again 1 s later, then 2, 4, 8… : 7 calls to HubSpot within its 120 s (the test below saw
  // them) and a sync that called on; the org was never paused.
  it('sends HubSpot nothing before a 429 Retry-After of 120 s has passed, says until when, drops nothing, and writes everything after', async () => {
    await setup();
    await speak(emails);
    hs.faults.enqueue({ match: (r: CrmRequest) => r.endpoint === HS_BATCH, status: 429, times: 1_000, retryAfter: 120 });
    hs.resetStats();
    const lines: string[] = [];
    const wb = writebackWithLog(lines);
    const t0 = clock.now();
    const first = await wb.runOnce();
    // Salesforce is written meanwhile; HubSpot's records wait
    expect(first).toMatchObject({ customers: N, written: N });
    for (const id of sfIds) expect(sfLabel(id)).toBe('negative');

    // 115 s of passes every 5 s, and a HubSpot sync: no call to HubSpot, nothing dropped
    for (let s = 5; s <= 115; s += 5) {
      clock.advance(5_000);
      await wb.runOnce();
    }
    await app.services.crmSync.run('hubspot');
    expect(hs.stats().byEndpoint[HS_BATCH]).toBe(1);
    expect(hs.stats().total).toBe(1);
    expect(await pending()).toBe(N);

    // the wait is visible: one warning with the time, and the time on /metrics
    expect(first.pausedUntil.hubspot!.getTime()).toBeGreaterThanOrEqual(t0 + 120_000);
    const warned = lines.map((l) => JSON.parse(l) as { level: string; msg: string; system?: string; until?: string }).filter((l) => l.level === 'warn' && /Retry-After/.test(l.msg));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ system: 'hubspot', until: first.pausedUntil.hubspot!.toISOString() });
    expect(metric(await metrics(), 'earshot_crm_paused_until_seconds', 'system="hubspot"')).toBeCloseTo(first.pausedUntil.hubspot!.getTime() / 1000, 0);

    hs.faults.clear();
    clock.advance(6_000);
    expect(await wb.runOnce()).toMatchObject({ customers: N, written: N, failed: 0 });
    for (const id of hsIds) expect(hsLabel(id)).toBe('negative');
    expect(await pending()).toBe(0);
    expect(metric(await metrics(), 'earshot_crm_paused_until_seconds', 'system="hubspot"')).toBe(0);
  });

  it('sends Salesforce nothing before a 503 Retry-After of 120 s has passed, the sync included, and writes everything after', async () => {
    await setup();
    await speak(emails);
    sf.faults.enqueue({ match: (r: CrmRequest) => r.endpoint === SF_COLLECTION, status: 503, times: 1_000, retryAfter: 120 });
    sf.resetStats();
    const first = await app.services.crmWriteback.runOnce();
    expect(first).toMatchObject({ customers: N, written: N });
    for (const id of hsIds) expect(hsLabel(id)).toBe('negative');
    for (let s = 5; s <= 115; s += 5) {
      clock.advance(5_000);
      await app.services.crmWriteback.runOnce();
    }
    await app.services.crmSync.run('salesforce');
    expect(sf.stats().byEndpoint[SF_COLLECTION]).toBe(1);
    expect(sf.stats().total).toBe(1);
    expect(first.pausedUntil.salesforce).toBeInstanceOf(Date);
    const [state] = await q<{ last_error: string }>(`SELECT last_error FROM crm_sync_state WHERE system = 'salesforce' AND object_type = 'Contact'`);
    expect(state!.last_error).toMatch(/Retry-After 120 s; no call to salesforce:.* before /);
    expect(await pending()).toBe(N);

    sf.faults.clear();
    clock.advance(6_000);
    expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: N, written: N, failed: 0 });
    for (const id of sfIds) expect(sfLabel(id)).toBe('negative');
    expect(await pending()).toBe(0);
  });
});

describe('CRM write-back of records refused for good', () => {
  it('counts records given up after MAX_RECORD_ATTEMPTS refusals on /metrics, by system and object', async () => {
    await setup();
    sf.failRecord(sfIds[1]!, 'FIELD_CUSTOM_VALIDATION_EXCEPTION', 'Sentiment may not be set on partner contacts', 1_000);
    await speak(emails);
    expect(metric(await metrics(), 'earshot_crm_writeback_given_up_total', 'system="salesforce",object="Contact"')).toBe(null);
    let passes = 0;
    for (; passes < 40 && (await pending()) > 0; passes++) {
      await app.services.crmWriteback.runOnce();
      clock.advance(3_601_000);
    }
    expect(passes).toBe(MAX_RECORD_ATTEMPTS);
    const text = await metrics();
    expect(metric(text, 'earshot_crm_writeback_given_up_total', 'system="salesforce",object="Contact"')).toBe(1);
    expect(metric(text, 'earshot_crm_writeback_given_up_total', 'system="hubspot",object="contacts"')).toBe(null);
    expect(text).toMatch(/# TYPE earshot_crm_writeback_given_up_total counter/);
  });

  // Before: the row kept its spent count (MAX_RECORD_ATTEMPTS - 1), so the change got one try and
  // was given up again: the record never got the value the lock that cleared 3 tries later allowed.
  it('gives a customer that changed during the pass that gave it up a fresh series of tries', async () => {
    await setup();
    // refused on the MAX_RECORD_ATTEMPTS writes before the change, and on 3 more after it
    sf.failRecord(sfIds[2]!, 'UNABLE_TO_LOCK_ROW', 'unable to obtain exclusive access to this record', MAX_RECORD_ATTEMPTS + 3);
    await speak(emails);
    for (let i = 0; i < MAX_RECORD_ATTEMPTS - 1; i++) {
      await app.services.crmWriteback.runOnce();
      clock.advance(3_601_000);
    }
    expect(await pending()).toBe(1);
    // the last try is held at the server while the customer speaks again (a change since the claim)
    let arrived = false;
    sf.faults.enqueue({ match: (r: CrmRequest) => r.endpoint === SF_COLLECTION && (arrived = true), delayMs: 3_000 });
    const pass = app.services.crmWriteback.runOnce();
    await waitFor('the last try reaches Salesforce', async () => arrived, 10_000, 20);
    await speak([emails[2]!]);
    expect(await pass).toMatchObject({ failed: 1 });
    sf.resetStats();
    let passes = 0;
    for (; passes < 40 && (await pending()) > 0; passes++) {
      clock.advance(3_601_000);
      await app.services.crmWriteback.runOnce();
    }
    // 3 more refusals, then written
    expect(passes).toBe(4);
    expect(sf.stats().byEndpoint[SF_COLLECTION]).toBe(4);
    expect(sfLabel(sfIds[2]!)).toBe('negative');
  });
});

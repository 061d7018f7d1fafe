import { afterEach, describe, expect, it } from 'vitest';
import { MAX_RETRY_AFTER_MS } from '../../src/crm/crm-budget';
import { CrmWritebackService, MAX_RECORD_ATTEMPTS } from '../../src/crm/crm-writeback.service';
import type { ManualClock } from '../../src/shared/clock';
import { createLogger } from '../../src/shared/logger';
import type { HubSpotServer, HubSpotServerOptions } from '../crm-servers/hubspot/server';
import type { SalesforceServer } from '../crm-servers/salesforce/server';
import type { TestApp } from '../support/app';
import { writebackWorld, type WritebackWorld } from '../support/crm-writeback-world';

// The write-back against records and CRMs that fail for good: a record deleted or merged away in the
// CRM between sync and write-back, a validation rule that refuses the values every time, a
// property missing on the portal. Each test has both local CRMs, a clock and a database of its own,
// synced before the test speaks: 6 customers, each with a Salesforce Contact and a HubSpot contact.

const N = 6;
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

async function setup(hsOptions: HubSpotServerOptions = {}): Promise<void> {
  ({ clock, sf, hs, app, sfIds, hsIds, emails, speak } = await writebackWorld({ label: 'crmwbf', customers: N, hubspot: hsOptions }));
}

const hsLabel = (id: string) => hs.store.get('contacts', id)?.properties.earshot_sentiment_label ?? null;
const sfLabel = (id: string) => sf.store.find('Contact', id)?.Earshot_Sentiment_Label__c ?? null;

afterEach(async () => {
  await app?.close();
  await Promise.all([sf?.stop(), hs?.stop()]);
});

describe('CRM write-back of records that fail for good', () => {
  it('writes the rest of a HubSpot batch refused whole for a contact deleted in HubSpot, and does not retry the deleted one', async () => {
    await setup({ batchUpdateMissing: 'whole-batch' });
    hs.store.archive('contacts', hs.store.get('contacts', hsIds[2]!)!);
    await speak(emails);
    hs.resetStats();
    const r = await app.services.crmWriteback.runOnce();
    expect(r).toMatchObject({ customers: N, written: 2 * N - 1, failed: 1 });
    for (const [k, id] of hsIds.entries()) expect(hsLabel(id)).toBe(k === 2 ? null : 'negative');
    // one refused call, one that writes the others
    expect(hs.stats().byEndpoint['POST /crm/v3/objects/:type/batch/update']).toBe(2);
    expect(await pending()).toBe(0);
    const [rec] = await q<{ writeback_error: string }>(`SELECT writeback_error FROM crm_record WHERE system = 'hubspot' AND external_id = $1`, [hsIds[2]]);
    expect(rec!.writeback_error).toMatch(/OBJECT_NOT_FOUND/);
  });

  it('writes the rest of a HubSpot batch answered 207 for a deleted contact, and does not retry the deleted one', async () => {
    await setup();
    hs.store.archive('contacts', hs.store.get('contacts', hsIds[4]!)!);
    await speak(emails);
    const r = await app.services.crmWriteback.runOnce();
    expect(r).toMatchObject({ customers: N, written: 2 * N - 1, failed: 1 });
    expect(await pending()).toBe(0);
  });

  it('writes the rest of a Salesforce batch with a Contact deleted in Salesforce (ENTITY_IS_DELETED), and does not retry it', async () => {
    await setup();
    sf.store.delete('Contact', sfIds[1]!);
    await speak(emails);
    const r = await app.services.crmWriteback.runOnce();
    expect(r).toMatchObject({ customers: N, written: 2 * N - 1, failed: 1 });
    for (const [k, id] of sfIds.entries()) if (k !== 1) expect(sfLabel(id)).toBe('negative');
    expect(await pending()).toBe(0);
  });

  it('gives up on a record a validation rule refuses every time after MAX_RECORD_ATTEMPTS passes, says so, and writes it on its next change', async () => {
    await setup();
    // refused on each of the first MAX_RECORD_ATTEMPTS writes (those the write-back makes before giving up)
    sf.failRecord(sfIds[3]!, 'FIELD_CUSTOM_VALIDATION_EXCEPTION', 'Sentiment may not be set on partner contacts', MAX_RECORD_ATTEMPTS);
    const lines: string[] = [];
    const wb = writebackWithLog(lines);
    await speak(emails);
    sf.resetStats();
    let passes = 0;
    // at most an hour between passes: the queue's backoff never waits longer
    for (; passes < 40 && (await pending()) > 0; passes++) {
      await wb.runOnce();
      clock.advance(3_601_000);
    }
    // before: no limit (here 13 passes, till the faults ran out; with a rule that stays, 40 calls in
    // 40 passes and still queued: once an hour for ever)
    expect(passes).toBe(MAX_RECORD_ATTEMPTS);
    expect(sf.stats().byEndpoint['PATCH /composite/sobjects']).toBe(MAX_RECORD_ATTEMPTS);
    for (const [k, id] of sfIds.entries()) expect(sfLabel(id)).toBe(k === 3 ? null : 'negative');
    const [rec] = await q<{ writeback_error: string }>(`SELECT writeback_error FROM crm_record WHERE system = 'salesforce' AND external_id = $1`, [sfIds[3]]);
    expect(rec!.writeback_error).toMatch(/FIELD_CUSTOM_VALIDATION_EXCEPTION/);
    const warned = lines.map((l) => JSON.parse(l) as { level: string; msg: string; errors?: string[]; externalIds?: string[] }).filter((l) => l.level === 'warn');
    expect(warned.filter((l) => l.msg === 'CRM write-back: records not written')).toHaveLength(MAX_RECORD_ATTEMPTS);
    expect(warned[0]).toMatchObject({ errors: [expect.stringContaining('FIELD_CUSTOM_VALIDATION_EXCEPTION')], externalIds: [sfIds[3]] });
    expect(warned.some((l) => l.msg.startsWith('CRM write-back: giving up'))).toBe(true);
    // the admin has relaxed the rule since; the customer's next change is written
    await speak([emails[3]!]);
    expect(await wb.runOnce()).toMatchObject({ failed: 0 });
    expect(sfLabel(sfIds[3]!)).toBe('negative');
    expect(await pending()).toBe(0);
  });

  it('keeps retrying, with one warning a pass, while a property is missing on HubSpot, and writes everything once it exists', async () => {
    await setup();
    const prop = hs.store.properties.contacts.get('earshot_sentiment_label')!;
    prop.archived = true;
    const lines: string[] = [];
    const wb = writebackWithLog(lines);
    await speak(emails);
    hs.resetStats();
    for (let i = 0; i < MAX_RECORD_ATTEMPTS + 3; i++) {
      expect(await wb.runOnce()).toMatchObject({ customers: N, failed: N });
      clock.advance(3_601_000);
    }
    // one call a pass (backoff capped at an hour), nothing dropped: a setup mistake only delays
    expect(hs.stats().total).toBe(MAX_RECORD_ATTEMPTS + 3);
    expect(await pending()).toBe(N);
    const warned = lines.map((l) => JSON.parse(l) as { level: string; msg: string; errors?: string[] }).filter((l) => l.level === 'warn');
    expect(warned).toHaveLength(MAX_RECORD_ATTEMPTS + 3);
    expect(warned[0]!.errors![0]).toMatch(/PROPERTY_DOESNT_EXIST/);
    prop.archived = false;
    expect(await wb.runOnce()).toMatchObject({ customers: N, written: N, failed: 0 });
    for (const id of hsIds) expect(hsLabel(id)).toBe('negative');
    expect(await pending()).toBe(0);
  });

  it('renews a Salesforce session that expires mid write-back and writes every record once', async () => {
    await setup();
    await speak(emails);
    sf.expireTokens();
    sf.resetStats();
    const r = await app.services.crmWriteback.runOnce();
    expect(r).toMatchObject({ customers: N, written: 2 * N, failed: 0 });
    expect(sf.stats().byEndpoint['PATCH /composite/sobjects']).toBe(2);
    for (const id of sfIds) expect(sfLabel(id)).toBe('negative');
    expect(await pending()).toBe(0);
  });

  it('takes a garbage Retry-After as a backoff and a huge one as a wait of an hour, calling nothing before it and dropping nothing', async () => {
    await setup();
    await speak(emails);
    const batch = (r: { endpoint: string }) => r.endpoint === 'POST /crm/v3/objects/:type/batch/update';
    hs.faults.enqueue({ match: batch, status: 429, times: 1, headers: { 'Retry-After': 'soon-ish' } });
    expect(await app.services.crmWriteback.runOnce()).toMatchObject({ written: 2 * N, failed: 0 });
    await speak(emails.slice(0, 2));
    hs.faults.enqueue({ match: batch, status: 429, times: 1, retryAfter: 86_400 * 365 });
    const t0 = Date.now();
    // Salesforce is written; HubSpot's two wait, not in place (before: a failed call, sent again 1 s later)
    expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: 2, written: 2, failed: 0 });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(await pending()).toBe(2);
    hs.resetStats();
    clock.advance(1_100);
    expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: 0 });
    clock.advance(MAX_RETRY_AFTER_MS - 10_000);
    expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: 0 });
    expect(hs.stats().total).toBe(0);
    clock.advance(10_000);
    expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: 2, written: 2, failed: 0 });
    expect(await pending()).toBe(0);
  });
});

/** A write-back over the app's database and CRM clients whose log lines land in `lines`. */
function writebackWithLog(lines: string[]): CrmWritebackService {
  const log = createLogger('warn', {}, { write: (l: string) => void lines.push(l) });
  const clients = [app.services.crmSync.client('salesforce')!, app.services.crmSync.client('hubspot')!];
  return new CrmWritebackService(app.db.ds, clients, { writeBack: true, writeBackPollMs: 1000, writeBackLeaseMs: 500 }, 'http://localhost:4000', log, undefined, { clock });
}

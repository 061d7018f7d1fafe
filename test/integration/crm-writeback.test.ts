import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CrmWritebackService } from '../../src/crm/crm-writeback.service';
import { createDataSource } from '../../src/db/data-source';
import { ManualClock } from '../../src/shared/clock';
import { createLogger } from '../../src/shared/logger';
import { HubSpotServer } from '../crm-servers/hubspot/server';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { crmEnv } from '../support/crm-env';
import { startTestApp, type TestApp } from '../support/app';
import { seedSalesforceContacts } from '../fixtures/crm/seed';

// Sentiment written back onto Salesforce Contacts and HubSpot contacts by the production
// write-back (trigger-filled outbox, sObject Collections, HubSpot batch update) against the local
// servers: N customers, each with one record in each CRM sharing an email. Each test has both
// CRMs, the clock and a database of its own, synced before it starts (beforeEach). N is what the
// test needs: 1,000 where the calls per 1,000 are measured, 500 where a batch must take more than
// 2 Salesforce calls (200 records each), 250 elsewhere (more than one call and one HubSpot page of
// 100; syncing both CRMs is most of each test's time).

let N = 0;
const DAY_MS = 86_400_000;
let sf: SalesforceServer;
let hs: HubSpotServer;
let app: TestApp;
let sfIds: string[] = [];
let emails: string[] = [];
let round = 0;
// backoff and leases run on this clock: the tests move it instead of sleeping
let clock: ManualClock;

const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
const pending = async () => Number((await q<{ n: string }>('SELECT count(*) AS n FROM crm_writeback'))[0]!.n);

/** One interaction from each of these customers (by email), negative or positive by turn, `daysAgo` days before now. */
async function speak(who: string[], tone: 'negative' | 'positive', daysAgo = 0): Promise<void> {
  round++;
  const text = tone === 'negative' ? 'My parcel is late again and nobody answers. Terrible service, I want a refund.' : 'Thank you, the support team was great and fixed it fast!';
  const msgs = who.map((email, i) => ({
    eventId: `wb-${round}-${i}`,
    source: 'email',
    externalId: `wb-${round}-${i}`,
    occurredAt: new Date(Date.now() - 60_000 - daysAgo * DAY_MS).toISOString(),
    direction: 'inbound',
    author: { displayName: email.split('@')[0], email },
    text,
  }));
  const r = await app.services.ingest.ingestObjects(msgs, 'test');
  expect(r.rejected).toHaveLength(0);
}

/** What each CRM shows now must equal the current values of each of the `spoken` customers who spoke. */
async function expectCrmsMatchCustomers(spoken?: number): Promise<void> {
  const rows = await q<{ external_id: string; system: string; score: number | null; label: string | null; last: Date | null; customer_id: string }>(
    `SELECT r.external_id, r.system, c.sentiment_score AS score, c.sentiment_label AS label, c.last_interaction_at AS last, c.id AS customer_id
       FROM crm_record r JOIN customer c ON c.id = r.customer_id WHERE r.deleted_at IS NULL AND c.last_interaction_at IS NOT NULL`,
  );
  expect(rows.length).toBe(2 * (spoken ?? N));
  for (const r of rows) {
    const score = r.score === null ? null : Math.round(r.score * 1000) / 1000;
    if (r.system === 'salesforce') {
      const rec = sf.store.find('Contact', r.external_id)!;
      expect(rec.Earshot_Sentiment_Score__c).toBe(score);
      expect(rec.Earshot_Sentiment_Label__c).toBe(r.label);
      expect(rec.Earshot_Last_Interaction__c).toBe(r.last!.getTime());
      expect(rec.Earshot_Url__c).toBe(`http://localhost:4000/customers/${r.customer_id}`);
    } else {
      const o = hs.store.get('contacts', r.external_id)!;
      expect(o.properties.earshot_sentiment_score).toBe(String(score));
      expect(o.properties.earshot_sentiment_label).toBe(r.label);
      expect(o.properties.earshot_last_interaction).toBe(r.last!.toISOString());
    }
  }
}

async function setup(n: number): Promise<void> {
  N = n;
  clock = new ManualClock();
  emails = [];
  sf = new SalesforceServer();
  hs = new HubSpotServer();
  await Promise.all([sf.start(), hs.start()]);
  app = await startTestApp(
    {
      EARSHOT_ROLES: 'api',
      EARSHOT_PUBLIC_URL: 'http://localhost:4000',
      ...crmEnv(sf, hs),
      EARSHOT_CRM_MAX_RETRIES: '2',
      EARSHOT_CRM_WRITEBACK_LEASE_MS: '500',
    },
    'crmwb',
    undefined,
    { clock },
  );
  sfIds = seedSalesforceContacts(sf, N, { start: new Date(Date.now() - 86_400_000).toISOString() });
  for (const id of sfIds) {
    const c = sf.store.find('Contact', id)!;
    emails.push(String(c.Email));
    hs.store.create('contacts', { email: String(c.Email), firstname: String(c.FirstName), lastname: String(c.LastName) }, Date.now() - 3_600_000);
  }
  await app.services.crmSync.client('hubspot')!.setup();
  await app.services.crmSync.run('salesforce');
  await app.services.crmSync.run('hubspot');
}

afterEach(async () => {
  await app?.close();
  await Promise.all([sf?.stop(), hs?.stop()]);
});

describe('CRM write-back', () => {
  describe('1,000 customers', () => {
    beforeEach(() => setup(1000), 180_000);

    it('writes 1,000 changed customers onto Salesforce in 5 calls and onto HubSpot in 10', async () => {
      await speak(emails, 'negative');
      expect(await pending()).toBe(N);
      sf.resetStats();
      hs.resetStats();
      const t0 = performance.now();
      const r = await app.services.crmWriteback.runOnce();
      const ms = performance.now() - t0;
      expect(r).toMatchObject({ customers: N, records: 2 * N, written: 2 * N, failed: 0 });
      const sfCalls = sf.stats().total - (sf.stats().byEndpoint['POST /oauth2/token'] ?? 0);
      expect(sf.stats().byEndpoint['PATCH /composite/sobjects']).toBe(5);
      expect(sfCalls).toBeLessThanOrEqual(5);
      expect(hs.stats().byEndpoint['POST /crm/v3/objects/:type/batch/update']).toBe(10);
      expect(hs.stats().total).toBeLessThanOrEqual(10);
      expect(await pending()).toBe(0);
      await expectCrmsMatchCustomers();
      console.info(`[bench] write-back of ${N} customers: salesforce ${sfCalls} calls (${(sfCalls / N) * 1000} per 1,000), hubspot ${hs.stats().total} calls (${(hs.stats().total / N) * 1000} per 1,000), ${ms.toFixed(0)} ms`);
    });

  });

  describe('500 customers', () => {
    beforeEach(() => setup(500), 180_000);

    it('loses nothing when a worker dies mid-write-back: the lease runs out and the next pass finishes the batch', async () => {
      await speak(emails, 'positive');
      expect(await pending()).toBe(N);
      // Worker A: its own database pool, which "dies" while A's third Salesforce call is on the wire.
      const { dataSource: dsA } = createDataSource({ url: app.database.url, poolSize: 2 });
      await dsA.initialize();
      const clients = [app.services.crmSync.client('salesforce')!, app.services.crmSync.client('hubspot')!];
      const a = new CrmWritebackService(dsA, clients, { writeBack: true, writeBackPollMs: 1000, writeBackLeaseMs: 60_000 }, 'http://localhost:4000', createLogger('silent'), undefined, { clock });
      let patches = 0;
      sf.faults.enqueue({
        match: (r) => {
          if (r.endpoint === 'PATCH /composite/sobjects' && ++patches === 3) void dsA.destroy();
          return false;
        },
      });
      await expect(a.runOnce()).rejects.toThrow();
      sf.faults.clear();
      expect(patches).toBeGreaterThanOrEqual(3);
      // A's batch is leased to nobody once the lease passes.
      expect(await pending()).toBe(N);
      // A's lease (60 s) holds until the clock passes it
      expect((await app.services.crmWriteback.runOnce()).customers).toBe(0);
      clock.advance(61_000);
      sf.resetStats();
      const r = await app.services.crmWriteback.runOnce();
      expect(r.customers).toBe(N);
      expect(await pending()).toBe(0);
      await expectCrmsMatchCustomers();
    });
  });

  describe('250 customers', () => {
    beforeEach(() => setup(250), 180_000);

    it('links each person once across both CRMs and queues nothing before they speak', async () => {
      const [row] = await q<{ customers: string; records: string }>(`SELECT count(DISTINCT customer_id) AS customers, count(*) AS records FROM crm_record`);
      expect(Number(row!.records)).toBe(2 * N);
      expect(Number(row!.customers)).toBe(N);
      expect(await pending()).toBe(0);
    });

    it('sends nothing when nothing changed, and only the changed customers (and values) otherwise', async () => {
      // every customer spoke and was written back
      await speak(emails, 'negative');
      expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: N, failed: 0 });
      sf.resetStats();
      hs.resetStats();
      expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: 0 });
      expect(sf.stats().total + hs.stats().total).toBe(0);
      // Someone edits the link in Salesforce: a value Earshot did not change is not sent again.
      const rec = sf.store.find('Contact', sfIds[0]!)!;
      const link = rec.Earshot_Url__c;
      rec.Earshot_Url__c = 'https://tampered.example.com';
      // The same text again: score and label stay, the last interaction moves.
      await speak(emails.slice(0, 10), 'negative');
      const r = await app.services.crmWriteback.runOnce();
      expect(r).toMatchObject({ customers: 10, written: 20 });
      expect(sf.stats().byEndpoint['PATCH /composite/sobjects']).toBe(1);
      expect(hs.stats().byEndpoint['POST /crm/v3/objects/:type/batch/update']).toBe(1);
      expect(rec.Earshot_Url__c).toBe('https://tampered.example.com');
      rec.Earshot_Url__c = link;
      const sent = (await q<{ written_values: Record<string, unknown> }>(`SELECT written_values FROM crm_record WHERE external_id = $1`, [sfIds[0]]))[0]!.written_values;
      expect(Object.keys(sent).sort()).toEqual(['label', 'lastInteraction', 'openComplaints', 'score', 'trend', 'url']);
      await expectCrmsMatchCustomers();
    });

    it("sends a quiet customer's trend again once its days move between the 30-day windows, and nobody else's", async () => {
      const [a, b, c] = [emails[30]!, emails[31]!, emails[32]!];
      const trends = () => [sfIds[30]!, sfIds[31]!].map((id) => sf.store.find('Contact', id)!.Earshot_Sentiment_Trend__c);
      // a and c: negative 50 days ago, positive 35 and 1 day ago (recent: positive, the 30 days
      // before: both); b: positive 1 day ago only (nothing in the window before: no trend)
      await speak([a, c], 'negative', 50);
      await speak([a, c], 'positive', 35);
      await speak([a, b, c], 'positive', 1);
      expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: 3, written: 6, failed: 0 });
      const [before, none] = trends();
      expect(before).toBeGreaterThan(0.1);
      expect(none).toBeNull();
      // c's records become objects no longer written back (as if the configuration dropped them)
      await q(`UPDATE crm_record SET object_type = 'Opportunity' WHERE customer_id = (SELECT customer_id FROM crm_record WHERE external_id = $1)`, [sfIds[32]]);
      // The same day: nothing moved, nothing is queued.
      expect(await app.services.crmWriteback.refreshTrends()).toBe(0);
      expect(await pending()).toBe(0);

      // 15 days on, nobody spoke: a's negative day has left, its positive days are one in each
      // window (trend 0); b's day is still only in one window (no trend, as written); c's trend
      // moved as a's did, but nothing of c is written back any more.
      clock.advance(15 * DAY_MS);
      expect(await app.services.crmWriteback.refreshTrends()).toBe(1);
      expect(await pending()).toBe(1);
      sf.resetStats();
      hs.resetStats();
      expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: 1, records: 2, written: 2, failed: 0 });
      expect(sf.stats().byEndpoint['PATCH /composite/sobjects']).toBe(1);
      expect(trends()).toEqual([0, null]);
      expect(hs.store.get('contacts', (await q<{ external_id: string }>(`SELECT r.external_id FROM crm_record r JOIN crm_record s ON s.customer_id = r.customer_id WHERE s.external_id = $1 AND r.system = 'hubspot'`, [sfIds[30]]))[0]!.external_id)!.properties.earshot_sentiment_trend).toBe('0');
      // Only the trend was sent: what else the record shows did not change.
      const [sent] = await q<{ written_values: Record<string, unknown> }>(`SELECT written_values FROM crm_record WHERE external_id = $1`, [sfIds[30]]);
      expect(sent!.written_values).toMatchObject({ trend: 0, label: 'positive' });
      // Written as it is now: the next refresh queues nobody.
      expect(await app.services.crmWriteback.refreshTrends()).toBe(0);
      expect(await pending()).toBe(0);

      // A stored trend that is not a number (edited by hand, an older shape) neither fails the walk
      // nor stays: b is queued and its null trend written over it.
      await q(`UPDATE crm_record SET written_values = written_values || '{"trend": "n/a"}'::jsonb WHERE external_id = $1`, [sfIds[31]]);
      expect(await app.services.crmWriteback.refreshTrends()).toBe(1);
      expect(await app.services.crmWriteback.runOnce()).toMatchObject({ customers: 1, failed: 0 });
      const [fixed] = await q<{ written_values: Record<string, unknown> }>(`SELECT written_values FROM crm_record WHERE external_id = $1`, [sfIds[31]]);
      expect(fixed!.written_values.trend).toBeNull();
      expect(await app.services.crmWriteback.refreshTrends()).toBe(0);
    });

    it('retries a record that failed (UNABLE_TO_LOCK_ROW) and drops none', async () => {
      sf.failRecord(sfIds[20]!, 'UNABLE_TO_LOCK_ROW');
      await speak(emails.slice(20, 25), 'positive');
      const first = await app.services.crmWriteback.runOnce();
      expect(first).toMatchObject({ customers: 5, written: 9, failed: 1 });
      expect(await pending()).toBe(1);
      const [row] = await q<{ attempts: number; last_error: string }>(`SELECT attempts, last_error FROM crm_writeback`);
      expect(row).toMatchObject({ attempts: 1, last_error: expect.stringContaining('UNABLE_TO_LOCK_ROW') });
      // Backoff: 1 s after the first failure, on the injected clock.
      clock.advance(1_100);
      const second = await app.services.crmWriteback.runOnce();
      // HubSpot already has the value: only the Salesforce record goes again.
      expect(second).toMatchObject({ customers: 1, written: 1, failed: 0, unchanged: 1 });
      expect(await pending()).toBe(0);
      await expectCrmsMatchCustomers(5);
    });

  });
});

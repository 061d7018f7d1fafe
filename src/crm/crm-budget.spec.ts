import { describe, expect, it } from 'vitest';
import { CrmBudget, CrmBudgetExhausted, CrmRetryLater, MAX_RETRY_AFTER_MS, retryDelay, waitsInPlace, withWaitDeadline } from './crm-budget';
import { changedValues, desiredValues } from './crm-writeback.service';
import { crmRecordUrl } from './crm-links';
import { loadConfig } from '../config/config';

describe('CrmBudget', () => {
  it('waits in place only for less than the limit, and never past the wait deadline', async () => {
    expect(waitsInPlace(1_999, 2_000, 0)).toBe(true);
    // the limit itself is deferred (it used to be slept through: with the defaults, past the lease)
    expect(waitsInPlace(2_000, 2_000, 0)).toBe(false);
    await withWaitDeadline(1_000, async () => {
      expect(waitsInPlace(999, 2_000, 0)).toBe(true);
      expect(waitsInPlace(1_000, 2_000, 0)).toBe(false);
    });
    expect(waitsInPlace(1_000, 2_000, 0)).toBe(true);
    // a pause another caller waits for in acquire() is not waited for past the deadline either
    const now = 1_000_000;
    const b = new CrmBudget('t', { daily: 100, per10s: 100 }, () => now);
    b.pause(5_000);
    const err = await withWaitDeadline(now + 4_000, () => b.acquire()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CrmRetryLater);
    expect((err as CrmRetryLater).until.getTime()).toBe(now + 5_000);
    expect(b.snapshot().usedToday).toBe(0);
  });

  it('paces calls to the rolling 10 s limit and stops at the daily budget until the next UTC day', async () => {
    let now = Date.UTC(2026, 0, 1, 23, 59, 0);
    const b = new CrmBudget('t', { daily: 5, per10s: 3 }, () => now);
    for (let i = 0; i < 3; i++) await b.acquire();
    expect(b.snapshot().inLast10s).toBe(3);
    // The fourth waits for the window: move the clock while it sleeps.
    const fourth = b.acquire();
    now += 10_001;
    await fourth;
    await b.acquire();
    await expect(b.acquire()).rejects.toBeInstanceOf(CrmBudgetExhausted);
    expect(b.snapshot().exhaustedUntil?.toISOString()).toBe('2026-01-02T00:00:00.000Z');
    now = Date.UTC(2026, 0, 2, 0, 0, 1);
    await b.acquire();
    expect(b.snapshot()).toMatchObject({ day: '2026-01-02', usedToday: 1 });
  });

  it('takes the vendor word for a spent day and restores the larger persisted count', async () => {
    const b = new CrmBudget('t', { daily: 100, per10s: 100 });
    b.restore(b.snapshot().day, 40);
    expect(b.snapshot().usedToday).toBe(40);
    b.observeVendorUsage(100_000, 100_000);
    await expect(b.acquire()).rejects.toThrow(/daily API budget of t is spent/);
  });

  it('refuses every call (CrmRetryLater) until a deferred Retry-After has passed, an hour at most', async () => {
    let now = Date.UTC(2026, 0, 1, 12, 0, 0);
    const b = new CrmBudget('t', { daily: 100, per10s: 100 }, () => now);
    const e = b.defer(120_000, 'asked');
    expect(e).toBeInstanceOf(CrmBudgetExhausted);
    expect(e.until.getTime()).toBe(now + 120_000);
    now += 119_999;
    await expect(b.acquire()).rejects.toBeInstanceOf(CrmRetryLater);
    expect(b.snapshot()).toMatchObject({ usedToday: 0, exhaustedUntil: null, pausedUntil: e.until });
    now += 1;
    await b.acquire();
    expect(b.snapshot()).toMatchObject({ usedToday: 1, pausedUntil: null });
    expect(b.defer(365 * 86_400_000, 'a year').until.getTime()).toBe(now + MAX_RETRY_AFTER_MS);
  });

  it('holds calls back no longer when the host clock steps back (NTP) than it would have on a steady clock', async () => {
    const HOUR = 3_600_000;
    let now = Date.UTC(2026, 0, 1, 12, 0, 0);
    const b = new CrmBudget('t', { daily: 1_000, per10s: 3 }, () => now);
    for (let i = 0; i < 3; i++) await b.acquire();
    b.pause(20_000);
    // the clock steps back an hour: the window and the pause still end 10 s and 20 s from now.
    // Before, they ended an hour and 10 s (20 s) later: every call of the org waited an hour.
    now -= HOUR;
    const err = await withWaitDeadline(now + 1, () => b.acquire()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CrmRetryLater);
    expect((err as CrmRetryLater).until.getTime()).toBeLessThanOrEqual(now + 20_000);
    expect(b.snapshot().pausedUntil!.getTime()).toBeLessThanOrEqual(now + 20_000);
    expect(b.snapshot().inLast10s).toBe(3);
    now += 20_001;
    await b.acquire();
    expect(b.snapshot()).toMatchObject({ usedToday: 4, inLast10s: 1, pausedUntil: null });
    // a deferred Retry-After (two minutes) is not stretched by a step back either
    const e = b.defer(120_000, 'asked');
    now -= 2 * HOUR;
    const later = await b.acquire().catch((x: unknown) => x);
    expect(later).toBeInstanceOf(CrmRetryLater);
    expect((later as CrmRetryLater).until.getTime()).toBeLessThanOrEqual(now + 120_000);
    expect(e.until.getTime() - (later as CrmRetryLater).until.getTime()).toBe(2 * HOUR);
    now += 120_001;
    await b.acquire();
    expect(b.snapshot().usedToday).toBe(5);
  });

  it('waits what Retry-After says, else backs off exponentially with jitter', () => {
    const p = { maxRetries: 5, baseMs: 100, maxWaitMs: 60_000 };
    expect(retryDelay(p, 3, '7')).toBe(7000);
    for (let a = 0; a < 4; a++) {
      const d = retryDelay(p, a, null);
      expect(d).toBeGreaterThanOrEqual((100 * 2 ** a) / 2);
      expect(d).toBeLessThanOrEqual(100 * 2 ** a);
    }
  });
});

describe('write-back values', () => {
  const row = { customer_id: 'c1', sentiment_score: -0.41234, sentiment_label: 'negative', sentiment_trend: null, last_interaction_at: new Date('2026-03-01T10:00:00Z'), open_complaints: 2 };
  it('rounds scores, links the customer and sends only what changed since the last write', () => {
    const d = desiredValues(row, 'https://earshot.example.com');
    expect(d).toEqual({ score: -0.412, label: 'negative', trend: null, openComplaints: 2, lastInteraction: '2026-03-01T10:00:00.000Z', url: 'https://earshot.example.com/customers/c1' });
    expect(changedValues(d, null)).toEqual(d);
    expect(changedValues(d, { ...d, openComplaints: 1 })).toEqual({ openComplaints: 2 });
    expect(changedValues(d, d)).toEqual({});
  });
});

describe('deep links and config', () => {
  it('links Lightning record pages and HubSpot record pages', () => {
    expect(crmRecordUrl('salesforce', 'Contact', '003x', { instanceUrl: 'https://acme.my.salesforce.com/' })).toBe('https://acme.my.salesforce.com/lightning/r/Contact/003x/view');
    expect(crmRecordUrl('hubspot', 'companies', '9001', { portalId: '123' })).toBe('https://app.hubspot.com/contacts/123/record/0-2/9001');
    expect(crmRecordUrl('hubspot', 'contacts', '1', {})).toBeNull();
  });

  it('makes no link from an instance URL that is not http(s) (it comes from the OAuth token answer)', () => {
    for (const instanceUrl of ['javascript:window.__pwned=1;alert(document.domain)//', 'data:text/html,<script>1</script>', 'not a url', 'file:///etc']) {
      expect(crmRecordUrl('salesforce', 'Contact', '003x', { instanceUrl }), instanceUrl).toBeNull();
    }
    expect(crmRecordUrl('hubspot', 'contacts', '1', { portalId: '123', appUrl: 'javascript:alert(1)' })).toBeNull();
    expect(crmRecordUrl('hubspot', 'contacts', '1', { portalId: '1/../x' })).toBe('https://app.hubspot.com/contacts/1%2F..%2Fx/record/0-1/1');
  });

  it('is off without credentials and names every bad CRM variable', () => {
    expect(loadConfig({}).crm).toMatchObject({ salesforce: null, hubspot: null, writeBack: true });
    expect(() => loadConfig({ EARSHOT_SF_PASSWORD: 'x', EARSHOT_SF_IDENTITY_FIELDS: 'Contact.Email', EARSHOT_HUBSPOT_REFRESH_TOKEN: 'r', EARSHOT_SF_WRITEBACK_FIELDS: 'nope=X' })).toThrow(
      /EARSHOT_SF_PASSWORD needs EARSHOT_SF_USERNAME[\s\S]*EARSHOT_SF_IDENTITY_FIELDS[\s\S]*EARSHOT_SF_WRITEBACK_FIELDS[\s\S]*EARSHOT_HUBSPOT_REFRESH_TOKEN needs/,
    );
    const c = loadConfig({ EARSHOT_SF_JWT_KEY: 'pem', EARSHOT_SF_CLIENT_ID: 'cid', EARSHOT_SF_USERNAME: 'u@x.com', EARSHOT_SF_WRITEBACK_FIELDS: 'score=My_Score__c' }).crm.salesforce!;
    expect(c).toMatchObject({ auth: 'jwt', jwtSubject: 'u@x.com', jwtAudience: 'https://login.salesforce.com', writeBackFields: { score: 'My_Score__c', label: 'Earshot_Sentiment_Label__c' } });
  });
});

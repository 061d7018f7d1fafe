import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { budgetFor } from '../../src/crm/crm-budget';
import { loadConfig } from '../../src/config/config';
import { HubSpotCrmClient } from '../../src/crm/hubspot/hubspot.client';
import type { PulledBatch } from '../../src/crm/crm.port';
import { createLogger } from '../../src/shared/logger';
import { HubSpotServer } from '../crm-servers/hubspot/server';
import { startTestApp, type TestApp } from '../support/app';
import { seedHubSpotContacts } from '../fixtures/crm/seed';

// The production HubSpot sync (@hubspot/api-client with its retries off, Earshot's retry policy
// and budget) against the local HubSpot server, which enforces the 10,000-result search cap, the
// 5-a-second search limit and the rolling 10 s limit. Each test has a portal, a budget and a
// database of its own (beforeEach); a test about incremental runs first loads a small portal (`loaded`).

const N = Number(process.env.CRM_HS_CONTACTS ?? 2_000);
const B = Date.now() - 30 * 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
let hs: HubSpotServer;
let app: TestApp;
let clockOffset = 0;

const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
const count = async (sql: string, params: unknown[] = []) => Number((await q<{ n: string }>(sql, params))[0]!.n);
const live = (ids: string[]) => count(`SELECT count(*) AS n FROM crm_record WHERE system = 'hubspot' AND object_type = 'contacts' AND external_id = ANY($1) AND deleted_at IS NULL`, [ids]);
const run = () => app.services.crmSync.run('hubspot', 'incremental');
const token = () => hs.options.privateAppTokens[0]!;
/** Contacts in the portal before a test's incremental runs (see `loaded`) */
const BASE = 50;

/** A portal with BASE contacts (modified in the past) and 3 companies, taken in by a first sync. */
async function loaded(): Promise<string[]> {
  const companies = hs.store.generateCompanies(3, { modifiedAt: iso(B - 1000) });
  const ids = seedHubSpotContacts(hs, BASE, { start: iso(B), stepMs: 1000, companyIds: companies.map((c) => c.id) });
  const first = await run();
  expect(first.objects.every((o) => o.outcome === 'ok')).toBe(true);
  expect(await live(ids)).toBe(BASE);
  return ids;
}

beforeEach(async () => {
  clockOffset = 0;
  hs = new HubSpotServer();
  const { url } = await hs.start();
  budgetFor(`hubspot:${url}:${hs.store.portalId}`, { daily: 650_000, per10s: 190, searchPerSecond: 5 }, () => Date.now() + clockOffset);
  app = await startTestApp(
    {
      EARSHOT_ROLES: 'api',
      EARSHOT_HUBSPOT_TOKEN: token(),
      EARSHOT_HUBSPOT_BASE_PATH: url,
      EARSHOT_HUBSPOT_PORTAL_ID: String(hs.store.portalId),
      EARSHOT_HUBSPOT_SEARCH_LAG_MS: '0',
      EARSHOT_CRM_RETRY_BASE_MS: '10',
    },
    'crmhs',
  );
}, 120_000);

afterEach(async () => {
  await app?.close();
  await hs?.stop();
});

describe('HubSpot setup-crm', () => {
  it('creates the Earshot property group and properties once, and finds them on the second run (409)', async () => {
    const client = app.services.crmSync.client('hubspot')!;
    const first = await client.setup();
    expect(first.created).toHaveLength(14);
    expect(first.created).toContain('contacts.earshot_sentiment_score');
    const second = await client.setup();
    expect(second).toEqual({ created: [], existing: first.created, manual: [] });
    expect(hs.store.properties.companies.get('earshot_last_interaction')).toMatchObject({ type: 'datetime', groupName: 'earshot' });
  });
});

describe('HubSpot sync', () => {
  it(`loads ${N.toLocaleString('en')} contacts and their companies into Earshot`, async () => {
    const companies = hs.store.generateCompanies(30, { modifiedAt: iso(B - 1000) });
    const ids = seedHubSpotContacts(hs, N, { start: iso(B), stepMs: 1000, companyIds: companies.map((c) => c.id) });
    hs.resetStats();
    const t0 = performance.now();
    const report = await run();
    const ms = performance.now() - t0;
    const [companiesRun, contactsRun] = report.objects;
    expect(companiesRun).toMatchObject({ objectType: 'companies', outcome: 'ok', records: 30 });
    expect(contactsRun).toMatchObject({ objectType: 'contacts', outcome: 'ok' });
    // A new window starts at the last timestamp of the one before: that record comes twice (idempotent).
    expect(contactsRun!.records).toBeGreaterThanOrEqual(N);
    expect(contactsRun!.records).toBeLessThanOrEqual(N + Math.floor(N / 10_000));
    expect(await live(ids)).toBe(N);
    const s = hs.stats();
    expect(s.byStatus['400']).toBeUndefined();
    // searches answered: a search refused with 429 (the portal's per-second search limit, hit
    // when the machine is fast) is waited out and asked again, which is not another page
    const searches = s.byEndpoint['POST /crm/v3/objects/:type/search']! - (s.byStatus['429'] ?? 0);
    // pages of 200 contacts, one for the companies, and one that finds the window empty
    expect(searches).toBeLessThanOrEqual(Math.ceil(N / 200) + 2);
    const [withCompany] = await q<{ payload: { associatedCompanyIds: string[] } }>(`SELECT payload FROM crm_record WHERE system = 'hubspot' AND object_type = 'contacts' AND external_id = $1`, [ids[7]]);
    expect(withCompany!.payload.associatedCompanyIds).toHaveLength(1);
    console.info(`[bench] hubspot initial sync of ${N} contacts: ${(ms / 1000).toFixed(1)} s, ${s.total} API calls (${((s.total / (N + 30)) * 1000).toFixed(2)} per 1,000 records; ${searches} searches)`);
  }, 300_000);

  it('takes 300 contacts modified in the same millisecond and archived contacts incrementally', async () => {
    const base = await loaded();
    const at = iso(Date.now() - 60_000);
    const tied = seedHubSpotContacts(hs, 300, { start: at, stepMs: 0 });
    const gone = base.slice(0, 2).map((id) => hs.store.get('contacts', id)!);
    for (const o of gone) hs.store.archive('contacts', o);
    hs.resetStats();
    const r = await run();
    const contacts = r.objects.find((o) => o.objectType === 'contacts')!;
    expect(contacts).toMatchObject({ outcome: 'ok', deleted: 2 });
    expect(contacts.records).toBeGreaterThanOrEqual(300);
    expect(await live(tied)).toBe(300);
    const rows = await q<{ deleted_at: Date | null }>(`SELECT deleted_at FROM crm_record WHERE system = 'hubspot' AND object_type = 'contacts' AND external_id = ANY($1)`, [gone.map((o) => o.id)]);
    expect(rows.every((x) => x.deleted_at !== null)).toBe(true);
    const calls = hs.stats().total;
    console.info(`[bench] hubspot incremental sync of 300 changes + 2 archived: ${calls} API calls`);
  });

  it('rides out a storm of 429s with and without Retry-After', async () => {
    await loaded();
    const ids = seedHubSpotContacts(hs, 250, { start: iso(Date.now() - 30_000), stepMs: 10 });
    hs.resetStats();
    hs.rateLimitStorm(4);
    hs.rateLimitStorm(2, { retryAfter: 1 });
    hs.rateLimitStorm(2, { policyName: 'SECONDLY' });
    const t0 = performance.now();
    const r = await run();
    expect(r.objects.every((o) => o.outcome === 'ok')).toBe(true);
    expect(await live(ids)).toBe(250);
    expect(hs.stats().byStatus['429']).toBe(8);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(2_000);
  });

  it('stops on the DAILY limit and resumes from the cursor the next day', async () => {
    await loaded();
    const ids = seedHubSpotContacts(hs, 450, { start: iso(Date.now() - 20_000), stepMs: 10 });
    // companies search passes, the contacts' first search page passes, then the portal's day is over.
    let n = 0;
    hs.faults.enqueue({ match: (req) => req.path.endsWith('/search') && ++n === 3, status: 429, body: { status: 'error', message: 'You have reached your daily limit.', errorType: 'RATE_LIMIT', policyName: 'DAILY' } });
    const r1 = await run();
    expect(r1.complete).toBe(false);
    // the first page: the last contact of the run before (the window starts at its time, GTE),
    // unchanged and handed to no one, and 199 new ones
    expect(r1.objects.find((o) => o.objectType === 'contacts')).toMatchObject({ outcome: 'budget_exhausted', records: 199 });
    hs.resetStats();
    expect((await run()).complete).toBe(false);
    expect(hs.stats().total).toBe(0);
    clockOffset += 86_400_000;
    const r3 = await run();
    expect(r3.complete).toBe(true);
    expect(await live(ids)).toBe(450);
  });
});

describe('HubSpot search windows', () => {
  // The adapter alone (real client, real server, a sink that only collects): the subject here is
  // the 10,000-result cap, not the identity intake.
  const collect = async (server: HubSpotServer, searchPerSecond = 5) => {
    const config = loadConfig({ EARSHOT_HUBSPOT_TOKEN: server.options.privateAppTokens[0]!, EARSHOT_HUBSPOT_BASE_PATH: server.url, EARSHOT_HUBSPOT_OBJECTS: 'contacts', EARSHOT_HUBSPOT_SEARCH_LAG_MS: '0', EARSHOT_HUBSPOT_SEARCH_PER_SECOND: String(searchPerSecond) });
    const client = new HubSpotCrmClient(config.crm.hubspot!, config.crm, createLogger('silent'), { searchLagMs: 0 });
    const seen = new Map<string, number>();
    const cursors: string[] = [];
    await client.pull('contacts', {
      cursor: null, mode: 'incremental', deletedSince: null, known: async () => new Map(),
      sink: async (b) => {
        for (const r of b.records) seen.set(r.externalId, (seen.get(r.externalId) ?? 0) + 1);
        if (b.cursor) cursors.push(b.cursor.modstamp);
      },
    });
    return { seen, cursors };
  };

  it('pages past the cap: 10,200 contacts over time arrive in two windows, none missing', async () => {
    const server = new HubSpotServer();
    await server.start();
    try {
      const ids = seedHubSpotContacts(server, 10_200, { start: iso(B), stepMs: 1000 });
      const t0 = performance.now();
      const { seen, cursors } = await collect(server);
      expect(ids.every((id) => seen.has(id))).toBe(true);
      expect(seen.size).toBe(10_200);
      // The second window starts on the first one's last timestamp: that one record comes twice.
      expect([...seen.values()].filter((n) => n > 1)).toHaveLength(1);
      expect([...cursors].sort()).toEqual(cursors);
      const s = server.stats();
      expect(s.byStatus['400']).toBeUndefined();
      console.info(`[bench] hubspot pull of 10,200 contacts past the search cap: ${(performance.now() - t0).toFixed(0)} ms, ${s.total} API calls (${((s.total / 10_200) * 1000).toFixed(2)} per 1,000; ${s.byEndpoint['POST /crm/v3/objects/:type/search']} searches at 5/s)`);
    } finally {
      await server.stop();
    }
  });

  it('walks a timestamp that more than 10,000 contacts share by object id', async () => {
    // A portal with a higher search limit (the pacing itself is shown above), to keep this short.
    const server = new HubSpotServer({ searchPerSecond: 25 });
    await server.start();
    try {
      const before = seedHubSpotContacts(server, 20, { start: iso(B - 60_000) });
      const tied = seedHubSpotContacts(server, 10_050, { start: iso(B), stepMs: 0 });
      const after = seedHubSpotContacts(server, 20, { start: iso(B + 60_000) });
      const { seen } = await collect(server, 25);
      for (const id of [...before, ...tied, ...after]) expect(seen.has(id), id).toBe(true);
      expect(server.stats().byStatus['400']).toBeUndefined();
    } finally {
      await server.stop();
    }
  });
});

describe('HubSpot OAuth', () => {
  it('refreshes an access token that expires mid-sync and carries on', async () => {
    const res = await fetch(`${hs.url}/oauth/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: hs.issueAuthorizationCode(), client_id: hs.options.clientId, client_secret: hs.options.clientSecret, redirect_uri: 'http://localhost/cb' }),
    });
    const { refresh_token } = (await res.json()) as { refresh_token: string };
    const config = loadConfig({
      EARSHOT_HUBSPOT_REFRESH_TOKEN: refresh_token,
      EARSHOT_HUBSPOT_CLIENT_ID: hs.options.clientId,
      EARSHOT_HUBSPOT_CLIENT_SECRET: hs.options.clientSecret,
      EARSHOT_HUBSPOT_BASE_PATH: hs.url,
      EARSHOT_HUBSPOT_OBJECTS: 'contacts',
      EARSHOT_CRM_RETRY_BASE_MS: '10',
    });
    const client = new HubSpotCrmClient(config.crm.hubspot!, config.crm, createLogger('silent'), { searchLagMs: 0 });
    // contacts before the cursor and 1,000 after it: several pages, so the token dies mid-pull
    seedHubSpotContacts(hs, 20, { start: iso(B) });
    seedHubSpotContacts(hs, 1000, { start: iso(B + 5_000_000), stepMs: 10 });
    hs.resetStats();
    hs.expireTokensAfterCalls(3);
    const got = new Set<string>();
    await client.pull('contacts', { cursor: { modstamp: iso(B + 5_000_000), id: '' }, mode: 'incremental', deletedSince: null, known: async () => new Map(), sink: async (b: PulledBatch) => b.records.forEach((r) => got.add(r.externalId)) });
    const expected = hs.store.list('contacts').filter((o) => Date.parse(o.properties.lastmodifieddate!) >= B + 5_000_000).length;
    expect(expected).toBe(1000);
    expect(got.size).toBe(expected);
    expect(hs.stats().byEndpoint['POST /oauth/v1/token']).toBe(2);
    expect(hs.stats().byStatus['401']).toBe(1);
    // The portal id comes from the token info for deep links.
    expect(client.recordUrl('contacts', '101')).toBe(`https://app.hubspot.com/contacts/${hs.store.portalId}/record/0-1/101`);
  });
});

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dripForever, truncatedJson, type CrmRequest } from '../crm-servers/http-util';
import { HubSpotServer } from '../crm-servers/hubspot/server';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { startTestApp, type TestApp } from '../support/app';
import { crmEnv } from '../support/crm-env';
import { seedHubSpotContacts, seedSalesforceContacts } from '../fixtures/crm/seed';

// The production sync against local Salesforce and HubSpot servers that misbehave as a broken or
// hostile CRM would (test-only fault hooks: `rewrite` changes a real reply, `raw` writes the
// socket itself): customer data PostgreSQL cannot store, ids missing, timestamps that lie, paging
// that loops, redirects, replies that never end or stop half way. What must hold: the run ends,
// the good records arrive, the cursor never jumps past data, the process lives.
// Each test has its own orgs and database (beforeEach) and builds the records it counts.

const B = Date.now() - 30 * 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
let sf: SalesforceServer;
let hs: HubSpotServer;
let app: TestApp;

const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
const live = async (system: string, ids: string[]) =>
  Number((await q<{ n: string }>(`SELECT count(*) AS n FROM crm_record WHERE system = $1 AND external_id = ANY($2) AND deleted_at IS NULL`, [system, ids]))[0]!.n);
const isRecordQuery = (r: CrmRequest) => r.endpoint === 'GET /query' && !/COUNT\(\)/.test(r.query.get('q') ?? '');
const isSearch = (r: CrmRequest) => r.path.endsWith('/contacts/search');

/** A server on another host-port that records what reaches it (a stolen token would). */
async function otherHost(): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? '(no authorization)'}`);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ totalSize: 0, done: true, records: [], total: 0, results: [] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

beforeEach(async () => {
  sf = new SalesforceServer();
  hs = new HubSpotServer();
  await sf.start();
  await hs.start();
  app = await startTestApp(
    { EARSHOT_ROLES: 'api', ...crmEnv(sf, hs), EARSHOT_SF_QUERY_BATCH_SIZE: '200', EARSHOT_CRM_MAX_RETRIES: '2', EARSHOT_CRM_REQUEST_TIMEOUT_MS: '1500' },
    'crmhostile',
  );
}, 120_000);

afterEach(async () => {
  await app?.close();
  await sf?.stop();
  await hs?.stop();
});

describe('hostile customer data from the CRM', () => {
  it('Salesforce: contacts with a NUL, a lone surrogate, a 1 MB name or no Id keep no other contact out, and are stored cleaned', async () => {
    const before = seedSalesforceContacts(sf, 5, { start: iso(B) });
    const [nul] = seedSalesforceContacts(sf, 1, { start: iso(B + 10_000), fields: { LastName: 'Nul\u0000Byte', Title: 'x\u0000y' } });
    const [lone] = seedSalesforceContacts(sf, 1, { start: iso(B + 11_000), fields: { FirstName: 'Lone\ud800' } });
    const [huge] = seedSalesforceContacts(sf, 1, { start: iso(B + 12_000), fields: { LastName: 'Long'.repeat(250_000) } });
    const after = seedSalesforceContacts(sf, 5, { start: iso(B + 20_000) });
    // and a record without an Id in the page (a broken org): set apart, not stored as "null"
    sf.faults.enqueue({
      match: isRecordQuery,
      rewrite: (reply) => {
        const page = reply.body as { records: Record<string, unknown>[] };
        page.records.splice(3, 0, { ...page.records[2], Id: null }, { ...page.records[2], Id: undefined, LastName: 'Other' });
        return reply;
      },
    });
    const report = await app.services.crmSync.run('salesforce');
    expect(report.objects[0]).toMatchObject({ objectType: 'Contact', outcome: 'ok', records: 13 });
    expect(await live('salesforce', [...before, nul!, lone!, huge!, ...after])).toBe(13);
    expect(await q(`SELECT 1 FROM crm_record WHERE system = 'salesforce' AND external_id IN ('null', 'undefined', '')`)).toHaveLength(0);
    const stored = await q<{ external_id: string; person: { givenName?: string; surname?: string }; payload: Record<string, string> }>(
      `SELECT external_id, person, payload FROM crm_record WHERE system = 'salesforce' AND external_id = ANY($1)`,
      [[nul, lone, huge]],
    );
    const by = new Map(stored.map((r) => [r.external_id, r]));
    expect(by.get(nul!)!.person.surname).toBe('NulByte');
    expect(by.get(nul!)!.payload.Title).toBe('xy');
    expect(by.get(lone!)!.person.givenName).toBe('Lone\ufffd');
    expect(by.get(huge!)!.person.surname).toHaveLength(255);
    const state = await app.services.crmSync.state('salesforce', 'Contact');
    expect(state).toMatchObject({ status: 'ok', cursorId: after[4] });
  }, 60_000);

  it('HubSpot: contacts with a NUL, a lone surrogate, a 1 MB name, no id or no properties, an odd id or a 60 KB e-mail keep no other contact out', async () => {
    const before = seedHubSpotContacts(hs, 5, { start: iso(B) });
    const nul = hs.store.create('contacts', { email: 'nul\u0000byte@example.net', firstname: 'Nul\u0000', lastname: 'Byte' }, B + 10_000).id;
    const lone = hs.store.create('contacts', { email: 'lone@example.net', firstname: 'Lone\udc00', lastname: 'Half' }, B + 11_000).id;
    const huge = hs.store.create('contacts', { email: 'huge@example.net', firstname: 'Huge', lastname: 'Long'.repeat(250_000) }, B + 12_000).id;
    const angle = hs.store.create('contacts', { email: '<'.repeat(60_000), firstname: 'Angle', lastname: 'Brackets' }, B + 13_000).id;
    const after = seedHubSpotContacts(hs, 5, { start: iso(B + 20_000) });
    hs.faults.enqueue({
      match: isSearch,
      rewrite: (reply) => {
        const page = reply.body as { results: Record<string, unknown>[] };
        page.results.splice(2, 0, { ...page.results[1], id: null }, { ...page.results[1], id: '12 34' }, { id: '999999999' }, null as never);
        return reply;
      },
    });
    const report = await app.services.crmSync.run('hubspot');
    expect(report.objects[0]).toMatchObject({ objectType: 'contacts', outcome: 'ok' });
    expect(await live('hubspot', [...before, nul, lone, huge, angle, ...after, '999999999'])).toBe(15);
    expect(await q(`SELECT 1 FROM crm_record WHERE system = 'hubspot' AND external_id IN ('null', 'undefined', '')`)).toHaveLength(0);
    const [n] = await q<{ person: { givenName: string } }>(`SELECT person FROM crm_record WHERE system = 'hubspot' AND external_id = $1`, [nul]);
    expect(n!.person.givenName).toBe('Nul');
    // the e-mail identity was read: the NUL-free address became an identity of its customer
    expect(await q(`SELECT 1 FROM customer_identity WHERE kind = 'email' AND value = 'nulbyte@example.net'`)).toHaveLength(1);
    expect((await app.services.crmSync.state('hubspot', 'contacts'))!.cursorModstamp!.toISOString()).toBe(iso(B + 24_000));
  }, 60_000);
});

describe('hostile timestamps and paging', () => {
  it('Salesforce: a SystemModstamp in 2099 never becomes the cursor, so changes made after it still arrive', async () => {
    const first = seedSalesforceContacts(sf, 5, { start: iso(B) });
    const [future] = seedSalesforceContacts(sf, 1, { start: '2099-01-01T00:00:00.000Z' });
    expect((await app.services.crmSync.run('salesforce')).objects[0]).toMatchObject({ outcome: 'ok', records: 6 });
    expect((await app.services.crmSync.state('salesforce', 'Contact'))!.cursorId).toBe(first[4]);
    const later = seedSalesforceContacts(sf, 5, { start: iso(Date.now() - 60_000) });
    const second = await app.services.crmSync.run('salesforce');
    // the future record comes again each run, unchanged and handed to no one; the new ones arrive
    expect(second.objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
    expect(await live('salesforce', [...first, future!, ...later])).toBe(11);
  });

  it('Salesforce: SystemModstamps a database cannot hold (year 0, year 10000) do not fail every run; the records arrive without them', async () => {
    const first = seedSalesforceContacts(sf, 3, { start: iso(B) });
    const [ancient] = seedSalesforceContacts(sf, 1, { start: '0000-06-01T00:00:00.000Z' });
    const [distant] = seedSalesforceContacts(sf, 1, { start: '+010000-01-01T00:00:00.000Z' });
    const r = await app.services.crmSync.run('salesforce');
    // before: "date/time field value out of range" on every run, nothing stored
    expect(r.objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
    expect(await live('salesforce', [...first, ancient!, distant!])).toBe(5);
    expect(await q(`SELECT external_id FROM crm_record WHERE system = 'salesforce' AND external_id = ANY($1) AND modstamp IS NULL ORDER BY 1`, [[ancient, distant]])).toEqual([ancient, distant].sort().map((external_id) => ({ external_id })));
    expect((await app.services.crmSync.state('salesforce', 'Contact'))!.cursorId).toBe(first[2]);
  });

  it('HubSpot: a contact whose last-modified time is not a time, last on its page, does not fail every run', async () => {
    const ids = seedHubSpotContacts(hs, 10, { start: iso(B) });
    hs.faults.enqueue({
      times: 100,
      match: isSearch,
      rewrite: (reply) => {
        const results = (reply.body as { results: { properties: Record<string, unknown>; updatedAt?: unknown }[] }).results;
        const last = results[results.length - 1];
        if (last) {
          last.properties.lastmodifieddate = 'garbage';
          last.properties.hs_lastmodifieddate = null;
          delete last.updatedAt;
        }
        return reply;
      },
    });
    const report = await app.services.crmSync.run('hubspot');
    expect(report.objects[0]).toMatchObject({ outcome: 'ok', records: 10 });
    expect(await live('hubspot', ids)).toBe(10);
    // the cursor is the last real time seen
    expect((await app.services.crmSync.state('hubspot', 'contacts'))!.cursorModstamp!.toISOString()).toBe(iso(B + 8_000));
  });

  it('Salesforce: a nextRecordsUrl that leads back to a page already read ends the run with an error instead of an endless loop', async () => {
    const ids = seedSalesforceContacts(sf, 450, { start: iso(B) });
    let firstMore = '';
    sf.faults.enqueue({
      times: 1_000,
      match: (r) => r.endpoint === 'GET /query/:locator',
      rewrite: (reply, req) => {
        firstMore ||= req.path;
        Object.assign(reply.body as object, { nextRecordsUrl: firstMore, done: false });
        return reply;
      },
    });
    sf.resetStats();
    const report = await app.services.crmSync.run('salesforce');
    expect(report.objects[0]).toMatchObject({ outcome: 'error', error: expect.stringMatching(/twice/) });
    // COUNT, the first page and two queryMore calls: nothing spent after the loop was seen
    expect(sf.stats().total).toBe(4);
    sf.faults.clear();
    expect((await app.services.crmSync.run('salesforce')).objects[0]).toMatchObject({ outcome: 'ok' });
    expect(await live('salesforce', ids)).toBe(450);
  }, 60_000);

  it('HubSpot: a search paging token that repeats ends the run with an error instead of an endless loop', async () => {
    const ids = seedHubSpotContacts(hs, 450, { start: iso(B) });
    hs.faults.enqueue({
      times: 1_000,
      match: isSearch,
      rewrite: (reply) => Object.assign(reply, { body: { ...(reply.body as object), paging: { next: { after: '200' } } } }),
    });
    const report = await app.services.crmSync.run('hubspot');
    expect(report.objects[0]).toMatchObject({ outcome: 'error', error: expect.stringMatching(/twice/) });
    hs.faults.clear();
    expect((await app.services.crmSync.run('hubspot')).objects[0]).toMatchObject({ outcome: 'ok' });
    expect(await live('hubspot', ids)).toBe(450);
  }, 60_000);
});

describe('hostile HTTP', () => {
  it('Salesforce: a redirect to another host is not followed: the access token does not leave, and the run fails instead of taking that host\'s answer', async () => {
    const evil = await otherHost();
    try {
      const ids = seedSalesforceContacts(sf, 5, { start: iso(B) });
      sf.faults.enqueue({ match: (r) => r.endpoint === 'GET /query', status: 302, headers: { Location: `${evil.url}/services/data/v62.0/query` }, body: '' });
      const report = await app.services.crmSync.run('salesforce');
      expect(report.objects[0]).toMatchObject({ outcome: 'error', error: expect.stringMatching(/redirect \(302\)/) });
      expect(evil.seen).toEqual([]);
      expect((await app.services.crmSync.run('salesforce')).objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
      expect(await live('salesforce', ids)).toBe(5);
    } finally {
      await evil.close();
    }
  });

  it('HubSpot: a redirect to another host is not followed, and its answer is not taken as the search result', async () => {
    const evil = await otherHost();
    try {
      const ids = seedHubSpotContacts(hs, 5, { start: iso(B) });
      hs.faults.enqueue({ match: isSearch, status: 307, headers: { Location: `${evil.url}/crm/v3/objects/contacts/search` }, body: '' });
      const report = await app.services.crmSync.run('hubspot');
      expect(report.objects[0]).toMatchObject({ outcome: 'error' });
      expect(evil.seen).toEqual([]);
      expect((await app.services.crmSync.run('hubspot')).objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
      expect(await live('hubspot', ids)).toBe(5);
    } finally {
      await evil.close();
    }
  });

  it('a reply that never ends times out and is retried, on both CRMs', async () => {
    const sfIds = seedSalesforceContacts(sf, 5, { start: iso(B) });
    const hsIds = seedHubSpotContacts(hs, 5, { start: iso(B) });
    sf.faults.enqueue({ match: isRecordQuery, raw: dripForever() });
    hs.faults.enqueue({ match: isSearch, raw: dripForever() });
    const [s, h] = await Promise.all([app.services.crmSync.run('salesforce'), app.services.crmSync.run('hubspot')]);
    expect(s.objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
    expect(h.objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
    expect(await live('salesforce', sfIds)).toBe(5);
    expect(await live('hubspot', hsIds)).toBe(5);
  }, 60_000);

  it('a body cut off half way is an error of that call (retried), not an uncaught exception, on both CRMs', async () => {
    const sfIds = seedSalesforceContacts(sf, 5, { start: iso(B) });
    const hsIds = seedHubSpotContacts(hs, 5, { start: iso(B) });
    sf.faults.enqueue({ match: isRecordQuery, raw: truncatedJson({ totalSize: 5, done: true, records: [{ Id: '0035g0000000001AAA', LastName: 'Cut' }] }) });
    hs.faults.enqueue({ match: isSearch, raw: truncatedJson({ total: 5, results: [{ id: '1', properties: {} }] }) });
    const [s, h] = await Promise.all([app.services.crmSync.run('salesforce'), app.services.crmSync.run('hubspot')]);
    expect(s.objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
    expect(h.objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
    expect(await live('salesforce', sfIds)).toBe(5);
    expect(await live('hubspot', hsIds)).toBe(5);
  }, 60_000);

  it('Salesforce: an HTML page answered with 200 fails the run, keeps the cursor, and the next run takes every record', async () => {
    const ids = seedSalesforceContacts(sf, 5, { start: iso(B) });
    sf.faults.enqueue({ match: (r) => r.endpoint === 'GET /query', status: 200, headers: { 'Content-Type': 'text/html' }, body: '<html><body>Down for maintenance</body></html>' });
    const report = await app.services.crmSync.run('salesforce');
    expect(report.objects[0]).toMatchObject({ outcome: 'error' });
    expect((await app.services.crmSync.state('salesforce', 'Contact'))).toMatchObject({ status: 'error', cursorModstamp: null });
    expect((await app.services.crmSync.run('salesforce')).objects[0]).toMatchObject({ outcome: 'ok', records: 5 });
    expect(await live('salesforce', ids)).toBe(5);
  });
});

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config';
import { HubSpotCrmClient } from '../../src/crm/hubspot/hubspot.client';
import type { PulledBatch } from '../../src/crm/crm.port';
import { createLogger } from '../../src/shared/logger';
import { HubSpotServer } from '../crm-servers/hubspot/server';
import { seedHubSpotContacts } from '../fixtures/crm/seed';
import { startTestApp, type TestApp } from '../support/app';
import { forwardProxy, tlsFront, trustedLocalCert, type ForwardProxy, type TlsFront, type TrustedCert } from '../support/forward-proxy';
import { createTestDatabase } from '../support/postgres';

// HubSpot calls behind an egress proxy. @hubspot/api-client sends its calls through the
// node:http agent Earshot gives it (for a deadline and no redirects), and that agent went direct
// whatever HTTP_PROXY, HTTPS_PROXY and NO_PROXY said. Now every HubSpot call (search, archived
// list, associations, property setup, write-back, OAuth token calls) follows them with the same
// reading and the same NO_PROXY rules as Salesforce's calls. The proxy here is a few lines of
// node:http: absolute-form requests are forwarded (http:// targets), CONNECT is tunnelled
// (https:// targets, as api.hubapi.com is reached). Each test has its own portal and proxy.

const B = Date.now() - 10 * 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

let hs: HubSpotServer;
let proxy: ForwardProxy;
let app: TestApp | undefined;

const appEnv = (basePath: string): Record<string, string> => ({
  EARSHOT_ROLES: 'api',
  EARSHOT_HUBSPOT_TOKEN: hs.options.privateAppTokens[0]!,
  EARSHOT_HUBSPOT_BASE_PATH: basePath,
  EARSHOT_HUBSPOT_PORTAL_ID: String(hs.store.portalId),
  EARSHOT_HUBSPOT_OBJECTS: 'contacts',
  EARSHOT_HUBSPOT_SEARCH_LAG_MS: '0',
  EARSHOT_CRM_WRITEBACK: 'false',
  EARSHOT_CRM_RETRY_BASE_MS: '10',
});

const countLive = async (ids: string[]) =>
  ((await app!.db.ds.query(`SELECT count(*)::int AS n FROM crm_record WHERE system = 'hubspot' AND external_id = ANY($1) AND deleted_at IS NULL`, [ids])) as { n: number }[])[0]!.n;

/** A refresh token the local portal knows (the OAuth authorization-code exchange, made directly). */
async function refreshToken(): Promise<string> {
  const res = await fetch(`${hs.url}/oauth/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: hs.issueAuthorizationCode(), client_id: hs.options.clientId, client_secret: hs.options.clientSecret, redirect_uri: 'http://localhost/cb' }),
  });
  return ((await res.json()) as { refresh_token: string }).refresh_token;
}

beforeEach(async () => {
  hs = new HubSpotServer();
  await hs.start();
  proxy = await forwardProxy();
});

afterEach(async () => {
  await app?.close();
  app = undefined;
  await proxy?.close();
  await hs?.stop();
});

describe('HubSpot behind an HTTP proxy (http:// base path: requests forwarded)', () => {
  it('sends every sync call through HTTP_PROXY and takes every record', async () => {
    const ids = seedHubSpotContacts(hs, 450, { start: iso(B), stepMs: 1000 });
    app = await startTestApp({ ...appEnv(hs.url), HTTP_PROXY: proxy.url }, 'hsproxyfwd');
    hs.resetStats();
    const report = await app.services.crmSync.run('hubspot', 'incremental');
    expect(report.objects[0]).toMatchObject({ objectType: 'contacts', outcome: 'ok', records: 450 });
    expect(await countLive(ids)).toBe(450);
    // Every call the portal answered came through the proxy: search pages and association reads.
    const s = hs.stats();
    expect(s.byEndpoint['POST /crm/v3/objects/:type/search']).toBeGreaterThanOrEqual(3);
    expect(proxy.forwarded).toHaveLength(s.total);
    expect(proxy.forwarded.filter((l) => l === `POST ${hs.url}/crm/v3/objects/contacts/search`)).toHaveLength(s.byEndpoint['POST /crm/v3/objects/:type/search']!);
    expect(proxy.forwarded.every((l) => l.includes(` ${hs.url}/`))).toBe(true);
    expect(proxy.tunnels).toEqual([]);
  });

  it('sends OAuth token calls, property setup and write-back through it too', async () => {
    const refresh = await refreshToken();
    const config = loadConfig({
      EARSHOT_HUBSPOT_REFRESH_TOKEN: refresh,
      EARSHOT_HUBSPOT_CLIENT_ID: hs.options.clientId,
      EARSHOT_HUBSPOT_CLIENT_SECRET: hs.options.clientSecret,
      EARSHOT_HUBSPOT_BASE_PATH: hs.url,
      EARSHOT_HUBSPOT_OBJECTS: 'contacts',
      EARSHOT_CRM_RETRY_BASE_MS: '10',
      http_proxy: proxy.url,
    });
    const client = new HubSpotCrmClient(config.crm.hubspot!, config.crm, createLogger('silent'), { searchLagMs: 0 });
    const ids = seedHubSpotContacts(hs, 30, { start: iso(B) });
    hs.resetStats();
    await client.setup();
    const got = new Set<string>();
    await client.pull('contacts', { cursor: null, mode: 'full', deletedSince: new Date(B), known: async () => new Map(), sink: async (b: PulledBatch) => b.records.forEach((r) => got.add(r.externalId)) });
    expect(got).toEqual(new Set(ids));
    const out = await client.writeBack('contacts', [{ externalId: ids[0]!, values: { score: 0.5, label: 'positive', openComplaints: 2 } }]);
    expect(out).toEqual([{ externalId: ids[0], ok: true }]);
    expect(hs.store.get('contacts', ids[0]!)!.properties).toMatchObject({ earshot_sentiment_score: '0.5', earshot_open_complaints: '2' });

    const s = hs.stats();
    expect(s.byEndpoint['POST /oauth/v1/token']).toBe(1);
    expect(proxy.forwarded).toHaveLength(s.total);
    expect(proxy.forwarded[0]).toBe(`POST ${hs.url}/oauth/v1/token`);
    for (const call of [`POST ${hs.url}/crm/v3/objects/contacts/batch/update`, `POST ${hs.url}/crm/v3/objects/contacts/search`, `POST ${hs.url}/crm/v3/properties/contacts/groups`]) expect(proxy.forwarded).toContain(call);
    expect(proxy.forwarded.some((l) => l.startsWith(`GET ${hs.url}/oauth/v1/access-tokens/`))).toBe(true);
    expect(proxy.forwarded.some((l) => l.startsWith(`GET ${hs.url}/crm/v3/objects/contacts?`))).toBe(true);
  });

  it('goes direct to a host NO_PROXY names', async () => {
    const ids = seedHubSpotContacts(hs, 20, { start: iso(B) });
    // space-separated, as undici (and Salesforce's calls) read NO_PROXY
    app = await startTestApp({ ...appEnv(hs.url), HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, NO_PROXY: 'api.hubapi.invalid 127.0.0.1' }, 'hsproxyno');
    const report = await app.services.crmSync.run('hubspot', 'incremental');
    expect(report.objects[0]).toMatchObject({ objectType: 'contacts', outcome: 'ok', records: 20 });
    expect(await countLive(ids)).toBe(20);
    expect(hs.stats().total).toBeGreaterThan(0);
    expect(proxy.forwarded).toEqual([]);
    expect(proxy.tunnels).toEqual([]);
  });
});

describe('HubSpot behind an HTTP proxy (https:// base path: CONNECT tunnels)', () => {
  let cert: TrustedCert;
  let front: TlsFront;
  let httpsUrl: string;

  beforeAll(() => {
    // A certificate for 127.0.0.1, trusted by this test process only.
    cert = trustedLocalCert('earshot-hs-proxy-');
  });

  afterAll(() => cert?.restore());

  beforeEach(async () => {
    // TLS in front of the local portal.
    front = await tlsFront(hs.url, cert);
    httpsUrl = front.url;
  });

  afterEach(() => front.close());

  it('tunnels every call through HTTPS_PROXY with CONNECT and takes every record', async () => {
    const ids = seedHubSpotContacts(hs, 450, { start: iso(B), stepMs: 1000 });
    app = await startTestApp({ ...appEnv(httpsUrl), HTTPS_PROXY: proxy.url }, 'hsproxytls');
    const report = await app.services.crmSync.run('hubspot', 'incremental');
    expect(report.objects[0]).toMatchObject({ objectType: 'contacts', outcome: 'ok', records: 450 });
    expect(await countLive(ids)).toBe(450);
    // Tunnels to the portal only (kept alive, so fewer than calls), and nothing sent in the clear.
    expect(proxy.tunnels.length).toBeGreaterThanOrEqual(1);
    expect(new Set(proxy.tunnels)).toEqual(new Set([new URL(httpsUrl).host]));
    expect(proxy.forwarded).toEqual([]);
  });

  it('takes HTTP_PROXY for an https:// base path when HTTPS_PROXY is unset, as Salesforce calls do', async () => {
    const ids = seedHubSpotContacts(hs, 20, { start: iso(B) });
    app = await startTestApp({ ...appEnv(httpsUrl), HTTP_PROXY: proxy.url }, 'hsproxyfallback');
    const report = await app.services.crmSync.run('hubspot', 'incremental');
    expect(report.objects[0]).toMatchObject({ objectType: 'contacts', outcome: 'ok', records: 20 });
    expect(await countLive(ids)).toBe(20);
    expect(new Set(proxy.tunnels)).toEqual(new Set([new URL(httpsUrl).host]));
  });
});

describe('HubSpot proxy settings', () => {
  const hsOnly = () => ({ EARSHOT_HUBSPOT_TOKEN: hs.options.privateAppTokens[0]!, EARSHOT_HUBSPOT_BASE_PATH: hs.url });

  it('refuse a proxy that is not an http(s) URL, naming the variable, when only HubSpot is on', () => {
    expect(() => loadConfig({ ...hsOnly(), HTTPS_PROXY: 'socks5://proxy:1080' })).toThrow(/HTTPS_PROXY: expected an http\(s\) proxy URL/);
    expect(() => loadConfig({ ...hsOnly(), http_proxy: 'proxy:3128' })).toThrow(/http_proxy: expected an http\(s\) proxy URL/);
    // lower case first: a good upper-case value does not hide a bad lower-case one
    expect(() => loadConfig({ ...hsOnly(), https_proxy: 'socks://p:1', HTTPS_PROXY: proxy.url })).toThrow(/https_proxy: expected an http\(s\) proxy URL/);
  });

  it('are read once for both CRMs, lower case first', () => {
    const c = loadConfig({ ...hsOnly(), EARSHOT_SF_USERNAME: 'u', EARSHOT_SF_PASSWORD: 'p', HTTP_PROXY: 'http://upper:3128', http_proxy: proxy.url, no_proxy: '.internal' });
    expect(c.crm.hubspot!.proxy).toEqual({ http: proxy.url, https: null, noProxy: '.internal' });
    expect(c.crm.salesforce!.proxy).toEqual(c.crm.hubspot!.proxy);
    // one problem for both vendors, not one each
    let message = '';
    try {
      loadConfig({ ...hsOnly(), EARSHOT_SF_USERNAME: 'u', EARSHOT_SF_PASSWORD: 'p', HTTPS_PROXY: 'socks5://proxy:1080' });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message.match(/HTTPS_PROXY: expected/g)).toHaveLength(1);
  });

  it('stop a real start with a bad proxy before any HubSpot call', async () => {
    const database = await createTestDatabase('hsproxybad');
    try {
      hs.resetStats();
      await expect(startTestApp({ ...appEnv(hs.url), HTTPS_PROXY: 'socks5://proxy:1080' }, 'hsproxybad', database)).rejects.toThrow(/HTTPS_PROXY: expected an http\(s\) proxy URL/);
      expect(hs.stats().total).toBe(0);
    } finally {
      await database.drop();
    }
  });
});

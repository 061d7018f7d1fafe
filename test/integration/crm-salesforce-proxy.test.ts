import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { seedSalesforceContacts } from '../fixtures/crm/seed';
import { startTestApp, type TestApp } from '../support/app';
import { forwardProxy, tlsFront, trustedLocalCert, type ForwardProxy, type TlsFront, type TrustedCert } from '../support/forward-proxy';

// Salesforce calls behind an egress proxy. jsforce alone sends every call through HTTPS_PROXY
// (or HTTP_PROXY); Earshot's transport sends its calls through its own fetch (for a deadline and
// no redirects), which went direct whatever the proxy variables said. Now every Salesforce call,
// the token calls included, follows HTTP_PROXY, HTTPS_PROXY and NO_PROXY as Node's own proxy
// support reads them. The proxy here is a few lines of node:http: absolute-form requests are
// forwarded (http:// targets), CONNECT is tunnelled (https:// targets, as a real org is reached).
// Each test has its own org, proxy and database.

const B = Date.now() - 10 * 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

let sf: SalesforceServer;
let proxy: ForwardProxy;
let app: TestApp | undefined;

const baseEnv = (): Record<string, string> => ({
  EARSHOT_ROLES: 'api',
  EARSHOT_SF_CLIENT_ID: sf.options.clientId,
  EARSHOT_SF_CLIENT_SECRET: sf.options.clientSecret,
  EARSHOT_SF_USERNAME: 'earshot@example.com',
  EARSHOT_SF_PASSWORD: 'password',
  EARSHOT_SF_OBJECTS: 'Contact',
  EARSHOT_SF_QUERY_BATCH_SIZE: '200',
  EARSHOT_CRM_WRITEBACK: 'false',
  EARSHOT_CRM_RETRY_BASE_MS: '10',
});

const countLive = async (ids: string[]) =>
  ((await app!.db.ds.query(`SELECT count(*)::int AS n FROM crm_record WHERE system = 'salesforce' AND external_id = ANY($1) AND deleted_at IS NULL`, [ids])) as { n: number }[])[0]!.n;

beforeEach(async () => {
  sf = new SalesforceServer();
  await sf.start();
  proxy = await forwardProxy();
});

afterEach(async () => {
  await app?.close();
  app = undefined;
  await proxy?.close();
  await sf?.stop();
});

describe('Salesforce behind an HTTP proxy (http:// org: requests forwarded)', () => {
  it('sends every call, the login included, through HTTP_PROXY and takes every record', async () => {
    const ids = seedSalesforceContacts(sf, 450, { start: iso(B), stepMs: 1000 });
    app = await startTestApp({ ...baseEnv(), EARSHOT_SF_LOGIN_URL: sf.url, HTTP_PROXY: proxy.url }, 'sfproxyfwd');
    sf.resetStats();
    const report = await app.services.crmSync.run('salesforce', 'incremental');
    expect(report.objects[0]).toMatchObject({ objectType: 'Contact', outcome: 'ok', records: 450 });
    expect(await countLive(ids)).toBe(450);
    // Every call the org answered came through the proxy: the token call, the count, three pages.
    const s = sf.stats();
    expect(s.byEndpoint['POST /oauth2/token']).toBe(1);
    expect(proxy.forwarded).toHaveLength(s.total);
    expect(proxy.forwarded[0]).toBe(`POST ${sf.url}/services/oauth2/token`);
    expect(proxy.forwarded.filter((l) => l.startsWith(`GET ${sf.url}/services/data/v62.0/query`))).toHaveLength(s.total - 1);
    expect(proxy.tunnels).toEqual([]);
  });

  it('goes direct to a host NO_PROXY names', async () => {
    const ids = seedSalesforceContacts(sf, 20, { start: iso(B), stepMs: 1000 });
    app = await startTestApp({ ...baseEnv(), EARSHOT_SF_LOGIN_URL: sf.url, HTTP_PROXY: proxy.url, NO_PROXY: 'localhost,127.0.0.1' }, 'sfproxyno');
    const report = await app.services.crmSync.run('salesforce', 'incremental');
    expect(report.objects[0]).toMatchObject({ objectType: 'Contact', outcome: 'ok', records: 20 });
    expect(await countLive(ids)).toBe(20);
    expect(proxy.forwarded).toEqual([]);
    expect(proxy.tunnels).toEqual([]);
  });
});

describe('Salesforce behind an HTTP proxy (https:// org: CONNECT tunnels)', () => {
  let cert: TrustedCert;
  let front: TlsFront;

  beforeAll(() => {
    // A certificate for 127.0.0.1, trusted by this test process only.
    cert = trustedLocalCert('earshot-sf-proxy-');
  });

  afterAll(() => cert?.restore());

  beforeEach(async () => {
    // TLS in front of the local org, which then names itself by the https:// URL (instance_url).
    front = await tlsFront(sf.url, cert);
    sf.url = front.url;
  });

  afterEach(() => front.close());

  it('tunnels every call through HTTPS_PROXY with CONNECT and takes every record', async () => {
    const ids = seedSalesforceContacts(sf, 450, { start: iso(B), stepMs: 1000 });
    const host = new URL(sf.url).host;
    app = await startTestApp({ ...baseEnv(), EARSHOT_SF_LOGIN_URL: sf.url, HTTPS_PROXY: proxy.url }, 'sfproxytls');
    const report = await app.services.crmSync.run('salesforce', 'incremental');
    expect(report.objects[0]).toMatchObject({ objectType: 'Contact', outcome: 'ok', records: 450 });
    expect(await countLive(ids)).toBe(450);
    // Tunnels to the org only (kept alive, so fewer than calls), and nothing sent in the clear.
    expect(proxy.tunnels.length).toBeGreaterThanOrEqual(1);
    expect(new Set(proxy.tunnels)).toEqual(new Set([host]));
    expect(proxy.forwarded).toEqual([]);
  });

  it('takes HTTP_PROXY for an https:// org when HTTPS_PROXY is unset, as jsforce and Node do', async () => {
    const ids = seedSalesforceContacts(sf, 20, { start: iso(B), stepMs: 1000 });
    app = await startTestApp({ ...baseEnv(), EARSHOT_SF_LOGIN_URL: sf.url, HTTP_PROXY: proxy.url }, 'sfproxyfallback');
    const report = await app.services.crmSync.run('salesforce', 'incremental');
    expect(report.objects[0]).toMatchObject({ objectType: 'Contact', outcome: 'ok', records: 20 });
    expect(await countLive(ids)).toBe(20);
    expect(new Set(proxy.tunnels)).toEqual(new Set([new URL(sf.url).host]));
  });
});

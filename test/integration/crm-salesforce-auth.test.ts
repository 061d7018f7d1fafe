import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SalesforceCrmClient } from '../../src/crm/salesforce/salesforce.client';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { seedSalesforceContacts } from '../fixtures/crm/seed';
import { startTestApp, type TestApp } from '../support/app';

// The two server-to-server logins an org admin picks instead of a stored password — the OAuth 2.0
// JWT bearer flow and a refresh token — run end to end: the app is configured through env only,
// jsforce goes through Earshot's transport to the local Salesforce server, and records land in
// PostgreSQL. The server checks the JWT's RS256 signature against the connected app's public key.

const JWT_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const HOUR = 3_600_000;
// Modstamps in the past for the first load, later ones for each following change.
const B = Date.now() - 10 * 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

const rsaPair = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
const connectedApp = rsaPair();
const forger = rsaPair();

let sf: SalesforceServer;
let keyDir: string;
/** Contacts in the org before the first sync of each app */
let initialIds: string[];

beforeAll(() => {
  keyDir = mkdtempSync(path.join(tmpdir(), 'earshot-sf-jwt-'));
});

afterAll(() => {
  if (keyDir) rmSync(keyDir, { recursive: true, force: true });
});

// Each test has an org of its own (and, below, an app and database of its own): a test about a
// later run does the first sync itself.
beforeEach(async () => {
  sf = new SalesforceServer({ jwtPublicKeyPem: connectedApp.publicKey });
  await sf.start();
  initialIds = seedSalesforceContacts(sf, 450, { start: iso(B), stepMs: 1000 });
});

afterEach(async () => {
  await sf?.stop();
});

/** The first sync of `app`: every contact of the org, taken in. */
async function firstSync(app: TestApp): Promise<void> {
  const report = await app.services.crmSync.run('salesforce', 'incremental');
  expect(report.objects.find((o) => o.objectType === 'Contact')).toMatchObject({ outcome: 'ok', records: 450 });
}

/** The env every app here shares: the local org, small pages so a sync spans several calls. */
const baseEnv = (): Record<string, string> => ({
  EARSHOT_ROLES: 'api',
  EARSHOT_SF_LOGIN_URL: sf.url,
  EARSHOT_SF_CLIENT_ID: sf.options.clientId,
  EARSHOT_SF_OBJECTS: 'Contact,Case',
  EARSHOT_SF_QUERY_BATCH_SIZE: '200',
  EARSHOT_CRM_WRITEBACK: 'false',
  EARSHOT_CRM_RETRY_BASE_MS: '10',
});

const countLive = async (app: TestApp, ids: string[]) =>
  Number(((await app.db.ds.query(`SELECT count(*) AS n FROM crm_record WHERE system = 'salesforce' AND external_id = ANY($1) AND deleted_at IS NULL`, [ids])) as { n: string }[])[0]!.n);

const accessToken = async (app: TestApp) => (await (app.services.crmSync.client('salesforce') as SalesforceCrmClient).connection()).accessToken;

type SyncStatus = { crmSyncStatus: { objects: { system: string; objectType: string; status: string; lastError: string | null; totalRecords: number }[] } };
const syncStatus = (app: TestApp) => app.gql<SyncStatus>(`{ crmSyncStatus { objects { system objectType status lastError totalRecords } } }`);

describe('Salesforce sync with the JWT bearer flow', () => {
  let app: TestApp;

  beforeEach(async () => {
    app = await startTestApp({ ...baseEnv(), EARSHOT_SF_JWT_KEY: connectedApp.privateKey, EARSHOT_SF_JWT_SUBJECT: 'earshot@example.com' }, 'sfjwt');
  });
  afterEach(async () => {
    await app?.close();
  });

  it('logs in with a signed assertion (no password, no secret) and syncs every contact', async () => {
    sf.resetStats();
    const report = await app.services.crmSync.run('salesforce', 'incremental');
    expect(report.objects.find((o) => o.objectType === 'Contact')).toMatchObject({ outcome: 'ok', records: 450 });
    expect(await countLive(app, initialIds)).toBe(450);
    const s = sf.stats();
    // One session for the whole run, and it came from the JWT grant.
    expect(s.byGrantType).toEqual({ [JWT_GRANT]: 1 });
    expect(s.byEndpoint['POST /oauth2/token']).toBe(1);
    expect(s.byStatus['400']).toBeUndefined();
    const status = await syncStatus(app);
    expect(status.errors).toBeUndefined();
    expect(status.data.crmSyncStatus.objects.find((o) => o.objectType === 'Contact')).toMatchObject({ status: 'OK', lastError: null, totalRecords: 450 });
  });

  it('signs a fresh assertion when the session dies mid-sync, and loses no record', async () => {
    await firstSync(app);
    const ids = seedSalesforceContacts(sf, 500, { start: iso(B + HOUR) });
    const before = await accessToken(app);
    sf.resetStats();
    // The count query and the first page pass; the first queryMore meets an expired session.
    sf.expireTokensAfterCalls(2);
    const report = await app.services.crmSync.run('salesforce', 'incremental');
    expect(report.objects.find((o) => o.objectType === 'Contact')).toMatchObject({ outcome: 'ok', records: 500 });
    expect(await countLive(app, ids)).toBe(500);
    expect(sf.stats().byStatus['401']).toBe(1);
    expect(sf.stats().byGrantType).toEqual({ [JWT_GRANT]: 1 });
    expect(await accessToken(app)).not.toBe(before);
  });
});

describe('Salesforce sync with a JWT signed by the wrong key', () => {
  let app: TestApp;

  beforeEach(async () => {
    // The key comes from a file here, as it would from a mounted secret.
    const keyFile = path.join(keyDir, 'forged.key');
    writeFileSync(keyFile, forger.privateKey, { mode: 0o600 });
    app = await startTestApp({ ...baseEnv(), EARSHOT_SF_JWT_KEY_FILE: keyFile, EARSHOT_SF_JWT_SUBJECT: 'earshot@example.com' }, 'sfjwtforged');
  });
  afterEach(async () => {
    await app?.close();
  });

  it('fails the run with a readable login error in crmSyncStatus, syncs nothing, and keeps serving', async () => {
    sf.resetStats();
    const report = await app.services.crmSync.run('salesforce', 'incremental');
    expect(report.objects.map((o) => o.outcome)).toEqual(['error', 'error']);
    for (const o of report.objects) expect(o.records).toBe(0);
    // Rejected at the token endpoint: not one data call reached the org.
    const s = sf.stats();
    expect(s.byGrantType[JWT_GRANT]).toBeGreaterThanOrEqual(1);
    expect(s.byEndpoint['POST /oauth2/token']).toBe(s.total);
    expect(s.byStatus['400']).toBe(s.total);
    expect(await countLive(app, initialIds)).toBe(0);

    const status = await syncStatus(app);
    expect(status.errors).toBeUndefined();
    const objects = status.data.crmSyncStatus.objects.filter((o) => o.system === 'SALESFORCE');
    expect(objects.map((o) => o.objectType).sort()).toEqual(['Case', 'Contact']);
    for (const o of objects) {
      expect(o.status).toBe('ERROR');
      expect(o.lastError).toMatch(/Salesforce login \(jwt\) failed: invalid_grant: invalid assertion/);
    }
    // The service is still up and answers other queries.
    const health = await fetch(`${app.url}/healthz`);
    expect(health.status).toBe(200);
  });
});

describe('Salesforce sync with a refresh token', () => {
  let app: TestApp;
  let refreshToken: string;

  beforeEach(async () => {
    // The refresh token an admin gets once through the web-server flow (authorize, then code).
    const redirectUri = 'http://localhost/callback';
    const auth = await fetch(`${sf.url}/services/oauth2/authorize?response_type=code&client_id=${encodeURIComponent(sf.options.clientId)}&redirect_uri=${encodeURIComponent(redirectUri)}`, { redirect: 'manual' });
    const code = new URL(auth.headers.get('location')!).searchParams.get('code')!;
    const token = await fetch(`${sf.url}/services/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, client_id: sf.options.clientId, client_secret: sf.options.clientSecret, redirect_uri: redirectUri }),
    });
    refreshToken = ((await token.json()) as { refresh_token: string }).refresh_token;
    expect(refreshToken).toBeTruthy();
    app = await startTestApp(
      { ...baseEnv(), EARSHOT_SF_CLIENT_SECRET: sf.options.clientSecret, EARSHOT_SF_REFRESH_TOKEN: refreshToken, EARSHOT_SF_INSTANCE_URL: sf.url },
      'sfrefresh',
    );
  });
  afterEach(async () => {
    await app?.close();
  });

  it('starts its session from the refresh token and syncs every contact', async () => {
    const all = sf.store.list('Contact', false).map((r) => r.Id);
    sf.resetStats();
    const report = await app.services.crmSync.run('salesforce', 'incremental');
    expect(report.objects.find((o) => o.objectType === 'Contact')).toMatchObject({ outcome: 'ok', records: all.length });
    expect(await countLive(app, all)).toBe(all.length);
    expect(sf.stats().byGrantType).toEqual({ refresh_token: 1 });
  });

  it('gets a new access token with the refresh token when the session expires mid-sync, and completes with every record', async () => {
    await firstSync(app);
    const ids = seedSalesforceContacts(sf, 700, { start: iso(B + 2 * HOUR) });
    const before = await accessToken(app);
    sf.resetStats();
    sf.expireTokensAfterCalls(2);
    const report = await app.services.crmSync.run('salesforce', 'incremental');
    expect(report.objects.find((o) => o.objectType === 'Contact')).toMatchObject({ outcome: 'ok', records: 700 });
    expect(report.objects.every((o) => o.outcome === 'ok')).toBe(true);
    expect(await countLive(app, ids)).toBe(700);
    const s = sf.stats();
    expect(s.byStatus['401']).toBe(1);
    expect(s.byGrantType).toEqual({ refresh_token: 1 });
    expect(await accessToken(app)).not.toBe(before);
    const state = await app.services.crmSync.state('salesforce', 'Contact');
    expect(state).toMatchObject({ status: 'ok', lastError: null, cursorId: ids[ids.length - 1] });
  });

  it('stops with a readable error when the refresh token is revoked, and keeps the cursor where it was', async () => {
    await firstSync(app);
    const cursorBefore = await app.services.crmSync.state('salesforce', 'Contact');
    const ids = seedSalesforceContacts(sf, 50, { start: iso(B + 3 * HOUR) });
    sf.revokeRefreshTokens();
    sf.expireTokens();
    sf.resetStats();
    const report = await app.services.crmSync.run('salesforce', 'incremental');
    expect(report.objects.map((o) => o.outcome)).toEqual(['error', 'error']);
    // One refresh attempt per object, each answered invalid_grant; no other data call succeeds.
    expect(sf.stats().byGrantType).toEqual({ refresh_token: 2 });
    expect(sf.stats().byStatus['200']).toBeUndefined();
    expect(await countLive(app, ids)).toBe(0);
    const state = await app.services.crmSync.state('salesforce', 'Contact');
    expect(cursorBefore?.cursorId).toBe(initialIds[initialIds.length - 1]);
    expect(state).toMatchObject({ status: 'error', cursorId: cursorBefore!.cursorId });
    expect(state!.lastError).toMatch(/Unable to refresh session due to: expired access\/refresh token/);
  });
});

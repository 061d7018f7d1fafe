import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SalesforceCrmClient } from '../../src/crm/salesforce/salesforce.client';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { seedSalesforceContacts } from '../fixtures/crm/seed';
import { startTestApp, type TestApp } from '../support/app';

// An org that grants tokens but refuses every session it granted (an IP or session policy, the
// integration user's API access taken away): every REST call answers 401 INVALID_SESSION_ID, even
// right after a new session. jsforce renews the session on each 401 and resends, with no limit of
// its own; before, each call of a run became a token request and a call per round trip until the
// org stopped refusing or the day's API budget was spent. Now one renewal per request, then an
// error naming the instance, and the run fails the object like any other CRM error.
// Each test has its own org and database.

const B = Date.now() - 10 * 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
/** More refusals than any bounded client asks for; a client that renews for ever uses them all up. */
const REFUSALS = 200;

let sf: SalesforceServer;
let app: TestApp;

/** Every REST call refused `times` times, whatever its token (the token endpoint still grants). */
const refuseEverySession = (times = REFUSALS) => sf.faults.enqueue({ match: (r) => r.path.startsWith('/services/data/'), status: 401, times });

const baseEnv = (): Record<string, string> => ({
  EARSHOT_ROLES: 'api',
  EARSHOT_SF_LOGIN_URL: sf.url,
  EARSHOT_SF_CLIENT_ID: sf.options.clientId,
  EARSHOT_SF_CLIENT_SECRET: sf.options.clientSecret,
  EARSHOT_SF_OBJECTS: 'Contact,Case',
  EARSHOT_CRM_WRITEBACK: 'false',
  EARSHOT_CRM_RETRY_BASE_MS: '10',
});

/** A refresh token as an admin gets it once through the web-server flow. */
async function refreshToken(): Promise<string> {
  const redirectUri = 'http://localhost/callback';
  const auth = await fetch(`${sf.url}/services/oauth2/authorize?response_type=code&client_id=${encodeURIComponent(sf.options.clientId)}&redirect_uri=${encodeURIComponent(redirectUri)}`, { redirect: 'manual' });
  const code = new URL(auth.headers.get('location')!).searchParams.get('code')!;
  const token = await fetch(`${sf.url}/services/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, client_id: sf.options.clientId, client_secret: sf.options.clientSecret, redirect_uri: redirectUri }),
  });
  return ((await token.json()) as { refresh_token: string }).refresh_token;
}

const flows = {
  password: async () => ({ EARSHOT_SF_USERNAME: 'earshot@example.com', EARSHOT_SF_PASSWORD: 'password' }),
  refresh_token: async () => ({ EARSHOT_SF_REFRESH_TOKEN: await refreshToken(), EARSHOT_SF_INSTANCE_URL: sf.url }),
};

const refusedMessage = () => new RegExp(`^Salesforce at ${sf.url.replace(/[.]/g, '\\.')} refused authentication: GET /services/data/v62\\.0/query answered 401 INVALID_SESSION_ID again with a session renewed for it; not renewing again`);

type SyncStatus = { crmSyncStatus: { objects: { system: string; objectType: string; status: string; lastError: string | null; totalRecords: number }[] } };

beforeEach(async () => {
  sf = new SalesforceServer();
  await sf.start();
});

afterEach(async () => {
  await app?.close();
  await sf?.stop();
});

describe.each(Object.keys(flows) as (keyof typeof flows)[])('an org that refuses every session (%s flow)', (flow) => {
  beforeEach(async () => {
    app = await startTestApp({ ...baseEnv(), ...(await flows[flow]()) }, `sfrefused${flow.replace('_', '')}`);
  });

  it('renews the session once per request, fails each object with an error naming the instance, and the next run, once sessions are accepted, takes every record', async () => {
    const ids = seedSalesforceContacts(sf, 30, { start: iso(B), stepMs: 1000 });
    sf.resetStats();
    refuseEverySession();

    const report = await app.services.crmSync.run('salesforce', 'incremental');
    expect(report.objects.map((o) => [o.objectType, o.outcome, o.records])).toEqual([
      ['Contact', 'error', 0],
      ['Case', 'error', 0],
    ]);
    for (const o of report.objects) expect(o.error).toMatch(refusedMessage());
    // Per object: its first call, one renewal, the call again; then nothing more. One session for
    // the run, and one renewal for each of the two objects.
    const s = sf.stats();
    expect(s.byStatus['401']).toBe(4);
    expect(s.byGrantType).toEqual({ [flow]: 3 });
    expect(s.byEndpoint['POST /oauth2/token']).toBe(3);

    const status = await app.gql<SyncStatus>(`{ crmSyncStatus { objects { system objectType status lastError totalRecords } } }`);
    expect(status.errors).toBeUndefined();
    const objects = status.data.crmSyncStatus.objects.filter((o) => o.system === 'SALESFORCE');
    expect(objects).toHaveLength(2);
    for (const o of objects) {
      expect(o.status).toBe('ERROR');
      expect(o.lastError).toMatch(refusedMessage());
    }

    // The org accepts sessions again: the next run needs nothing from the failed one.
    sf.faults.clear();
    const next = await app.services.crmSync.run('salesforce', 'incremental');
    expect(next.objects.map((o) => [o.objectType, o.outcome])).toEqual([
      ['Contact', 'ok'],
      ['Case', 'ok'],
    ]);
    expect(next.objects[0]!.records).toBe(ids.length);
    const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM crm_record WHERE system = 'salesforce' AND external_id = ANY($1)`, [ids])) as { n: number }[];
    expect(n).toBe(ids.length);
  });

  it('a write-back to an org that refuses every session fails its records as retriable, after one renewal', async () => {
    const [id] = seedSalesforceContacts(sf, 1, { start: iso(B) });
    const client = app.services.crmSync.client('salesforce') as SalesforceCrmClient;
    await client.connection();
    sf.resetStats();
    refuseEverySession();

    const out = await client.writeBack('Contact', [{ externalId: id!, values: { score: 0.5, label: 'positive' } }]);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ externalId: id, ok: false, retriable: true });
    expect(out[0]!.error).toMatch(new RegExp(`^Salesforce at ${sf.url.replace(/[.]/g, '\\.')} refused authentication: PATCH /services/data/v62\\.0/composite/sobjects answered 401 INVALID_SESSION_ID again`));
    expect(sf.stats().byStatus['401']).toBe(2);
    expect(sf.stats().byGrantType).toEqual({ [flow]: 1 });
  });
});

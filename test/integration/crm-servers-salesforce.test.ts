import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { Connection } from 'jsforce';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SalesforceServer } from '../crm-servers/salesforce/server';

// The real jsforce 3 client against the local Salesforce server: every call below goes over HTTP
// through jsforce exactly as it would against an org. Each test has an org of its own and
// creates the records it reads.

const VERSION = '62.0';
let sf: SalesforceServer;
let url: string;
let privateKey: CryptoKey;

async function login(): Promise<Connection> {
  const conn = new Connection({ loginUrl: url, version: VERSION, oauth2: { loginUrl: url, clientId: sf.options.clientId, clientSecret: sf.options.clientSecret } });
  await conn.login('earshot@example.com', 'password');
  return conn;
}

/**
 * Bulk API 2.0 query through jsforce, collected to an array. Every result page of a real job starts
 * with the CSV header, and jsforce 3.10 pipes all pages into one CSV parser, so pages 2..n each add
 * one record that echoes the header; `headerEchoes` counts them so tests can show it.
 */
async function bulkQueryRaw(conn: Connection, soql: string, scanAll = false): Promise<Record<string, string>[]> {
  const stream = await conn.bulk2.query(soql, { scanAll, pollInterval: 10, pollTimeout: 60_000 });
  const rows: Record<string, string>[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('record', (r: Record<string, string>) => rows.push(r));
    stream.on('end', () => resolve());
    stream.on('error', reject);
  });
  return rows;
}

async function bulkQuery(conn: Connection, soql: string, scanAll = false): Promise<Record<string, string>[]> {
  return (await bulkQueryRaw(conn, soql, scanAll)).filter((r) => r.Id !== 'Id');
}

let publicKeyPem: string;

beforeAll(async () => {
  const keys = await generateKeyPair('RS256', { extractable: true });
  privateKey = keys.privateKey as CryptoKey;
  publicKeyPem = await exportSPKI(keys.publicKey);
});

beforeEach(async () => {
  sf = new SalesforceServer({ jwtPublicKeyPem: publicKeyPem });
  ({ url } = await sf.start());
});

afterEach(async () => {
  await sf.stop();
});

describe('Salesforce auth', () => {
  it('logs in through the OAuth 2.0 username-password flow and reads the identity', async () => {
    const conn = await login();
    expect(conn.instanceUrl).toBe(url);
    expect(conn.accessToken).toMatch(/^00D/);
    const id = await conn.identity();
    expect(id.username).toBe('earshot@example.com');
    expect(id.organization_id).toBe(sf.store.orgId);
  });

  it('logs in through SOAP when no client secret is configured', async () => {
    const conn = new Connection({ loginUrl: url, version: VERSION });
    const info = await conn.login('earshot@example.com', 'passwordTOKEN');
    expect(info.organizationId).toBe(sf.store.orgId);
    const res = await conn.query('SELECT Id FROM User');
    expect(res.totalSize).toBe(1);
  });

  it('rejects a wrong password with invalid_grant', async () => {
    const conn = new Connection({ oauth2: { loginUrl: url, clientId: sf.options.clientId, clientSecret: sf.options.clientSecret } });
    await expect(conn.login('earshot@example.com', 'nope')).rejects.toMatchObject({ name: 'invalid_grant', message: 'authentication failure' });
  });

  it('authorizes with the JWT bearer flow, verifying the signature, issuer, subject and audience', async () => {
    const sign = (claims: { iss?: string; sub?: string; aud?: string }, key = privateKey) =>
      new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setIssuer(claims.iss ?? sf.options.clientId)
        .setSubject(claims.sub ?? 'earshot@example.com').setAudience(claims.aud ?? url).setExpirationTime('3m').sign(key);
    const conn = new Connection({ version: VERSION, oauth2: { loginUrl: url, clientId: sf.options.clientId } });
    const info = await conn.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: await sign({}) });
    expect(info.organizationId).toBe(sf.store.orgId);
    expect((await conn.query('SELECT Id FROM User')).totalSize).toBe(1);

    const other = (await generateKeyPair('RS256')).privateKey as CryptoKey;
    const bad = new Connection({ oauth2: { loginUrl: url, clientId: sf.options.clientId } });
    await expect(bad.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: await sign({}, other) })).rejects.toMatchObject({ name: 'invalid_grant', message: 'invalid assertion' });
    await expect(bad.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: await sign({ aud: 'https://evil.example.com' }) })).rejects.toMatchObject({ message: 'audience is invalid' });
    await expect(bad.authorize({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: await sign({ iss: 'someone-else' }) })).rejects.toMatchObject({ name: 'invalid_client_id' });
  });

  it('refreshes an expired session through the refresh token and retries the call', async () => {
    const redirectUri = 'http://localhost/callback';
    const res = await fetch(`${url}/services/oauth2/authorize?response_type=code&client_id=${sf.options.clientId}&redirect_uri=${encodeURIComponent(redirectUri)}`, { redirect: 'manual' });
    const code = new URL(res.headers.get('location')!).searchParams.get('code')!;
    const conn = new Connection({ version: VERSION, oauth2: { loginUrl: url, clientId: sf.options.clientId, clientSecret: sf.options.clientSecret, redirectUri } });
    await conn.authorize(code);
    expect(conn.refreshToken).toBeTruthy();
    const before = conn.accessToken;
    let refreshed = 0;
    conn.on('refresh', () => refreshed++);
    sf.resetStats();
    sf.expireTokens();
    const q = await conn.query('SELECT Id FROM User');
    expect(q.totalSize).toBe(1);
    expect(refreshed).toBe(1);
    expect(conn.accessToken).not.toBe(before);
    const s = sf.stats();
    expect(s.byEndpoint['POST /oauth2/token']).toBe(1);
    expect(s.byStatus['401']).toBe(1);
  });
});

describe('Salesforce REST query', () => {
  it('pages 5,000 contacts with query and queryMore at the batch size asked for', async () => {
    const conn = await login();
    sf.store.generateContacts(5000);
    sf.resetStats();
    const headers = { 'Sforce-Query-Options': 'batchSize=500' };
    let res = await conn.query<{ Id: string; Email: string }>('SELECT Id, Email, Account.Name FROM Contact ORDER BY Id', { headers, autoFetch: false });
    const seen = new Set(res.records.map((r) => r.Id));
    expect(res.records).toHaveLength(500);
    expect(res.totalSize).toBe(5000);
    while (!res.done) {
      res = await conn.queryMore<{ Id: string; Email: string }>(res.nextRecordsUrl!, { headers });
      res.records.forEach((r) => seen.add(r.Id));
    }
    expect(seen.size).toBe(5000);
    const s = sf.stats().byEndpoint;
    expect(s['GET /query']).toBe(1);
    expect(s['GET /query/:locator']).toBe(9);
  });

  it('returns records in the documented shape, with relationship fields nested', async () => {
    const conn = await login();
    const [acct] = sf.store.generateAccounts(1);
    const [c] = sf.store.generateContacts(1, { accountIds: [acct.Id] });
    const res = await conn.query<Record<string, unknown>>(`SELECT Id, Email, Account.Name, SystemModstamp FROM Contact WHERE Id = '${c.Id}'`);
    expect(res).toMatchObject({ totalSize: 1, done: true });
    expect(res.records[0]).toEqual({
      attributes: { type: 'Contact', url: `/services/data/v${VERSION}/sobjects/Contact/${c.Id}` },
      Id: c.Id,
      Email: c.Email,
      Account: { attributes: { type: 'Account', url: `/services/data/v${VERSION}/sobjects/Account/${acct.Id}` }, Name: acct.Name },
      SystemModstamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$/),
    });
  });

  it('reports bad SOQL with the Salesforce error codes', async () => {
    const conn = await login();
    await expect(conn.query('SELECT Nope FROM Contact')).rejects.toMatchObject({ errorCode: 'INVALID_FIELD' });
    await expect(conn.query('SELECT Id FROM Contact WHERE')).rejects.toMatchObject({ errorCode: 'MALFORMED_QUERY' });
    await expect(conn.query('SELECT Id FROM Contact WHERE SystemModstamp > \'2024-01-01\'')).rejects.toMatchObject({ errorCode: 'INVALID_FIELD' });
  });

  it('orders 300 records sharing one SystemModstamp by Id so a tie-safe cursor never skips one', async () => {
    const conn = await login();
    const stamp = '2031-03-01T12:00:00.000Z';
    sf.store.generateContacts(50, { modstampStart: '2031-03-01T11:00:00.000Z', stepMs: 1000 });
    const tied = sf.store.generateContacts(300, { modstamp: stamp });
    sf.store.generateContacts(20, { modstampStart: '2031-03-01T13:00:00.000Z', stepMs: 1000 });
    // Pages of 200 with the cursor (SystemModstamp, Id): the tie spans a page boundary.
    let cursor = { ts: '2031-03-01T00:00:00.000Z', id: '000000000000000AAA' };
    const got: string[] = [];
    for (;;) {
      const soql = `SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp > ${cursor.ts} OR (SystemModstamp = ${cursor.ts} AND Id > '${cursor.id}') ORDER BY SystemModstamp ASC, Id ASC LIMIT 200`;
      const res = await conn.query<{ Id: string; SystemModstamp: string }>(soql);
      got.push(...res.records.map((r) => r.Id));
      if (res.records.length < 200) break;
      const last = res.records[res.records.length - 1];
      cursor = { ts: last.SystemModstamp, id: last.Id };
    }
    expect(got).toHaveLength(370);
    expect(new Set(got).size).toBe(370);
    expect(tied.every((r) => got.includes(r.Id))).toBe(true);
    // The naive cursor (SystemModstamp > last) loses the rest of the tie: the trap this server reproduces.
    const firstPage = await conn.query<{ SystemModstamp: string }>(`SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp >= 2031-03-01T11:00:00Z ORDER BY SystemModstamp, Id LIMIT 200`);
    const naive = await conn.query(`SELECT Id FROM Contact WHERE SystemModstamp > ${firstPage.records[199].SystemModstamp}`);
    expect(naive.totalSize).toBe(20);
  });

  it('shows deleted records to queryAll and getDeleted only', async () => {
    const conn = await login();
    const recs = sf.store.generateContacts(5, { fields: { Title: 'ToDelete' } });
    const start = new Date(Date.now() - 60_000);
    const results = await conn.sobject('Contact').destroy(recs.slice(0, 3).map((r) => r.Id));
    expect(results.every((r) => r.success)).toBe(true);
    const live = await conn.query(`SELECT Id FROM Contact WHERE Title = 'ToDelete'`);
    expect(live.totalSize).toBe(2);
    const all = await conn.query<{ Id: string; IsDeleted: boolean }>(`SELECT Id, IsDeleted FROM Contact WHERE Title = 'ToDelete'`, { scanAll: true });
    expect(all.totalSize).toBe(5);
    expect(all.records.filter((r) => r.IsDeleted)).toHaveLength(3);
    const deleted = await conn.sobject('Contact').deleted(start, new Date(Date.now() + 60_000));
    const ids = deleted.deletedRecords.map((d) => d.id);
    expect(ids).toEqual(expect.arrayContaining(recs.slice(0, 3).map((r) => r.Id)));
    expect(deleted.latestDateCovered).toMatch(/\+0000$/);
  });
});

describe('Salesforce Bulk API 2.0', () => {
  it('loads 25,000 contacts through a bulk2 query job', async () => {
    const conn = await login();
    const have = sf.store.count('Contact');
    sf.store.generateContacts(25_000 - have);
    sf.resetStats();
    const t0 = performance.now();
    const raw = await bulkQueryRaw(conn, 'SELECT Id, Email, Phone, MobilePhone, Twitter_Handle__c, SystemModstamp FROM Contact');
    const ms = performance.now() - t0;
    // Three result pages of up to 10,000 rows: jsforce hands back pages 2 and 3's header rows as records.
    expect(raw.filter((r) => r.Id === 'Id')).toHaveLength(2);
    const rows = raw.filter((r) => r.Id !== 'Id');
    expect(rows).toHaveLength(25_000);
    expect(new Set(rows.map((r) => r.Id)).size).toBe(25_000);
    expect(rows[0].Email).toMatch(/@example\.com$/);
    const s = sf.stats().byEndpoint;
    expect(s['POST /jobs/query']).toBe(1);
    expect(s['GET /jobs/query/:id/results']).toBe(3);
    console.info(`[bench] bulk2 query of 25,000 contacts: ${ms.toFixed(0)} ms, ${sf.stats().total} API calls`);
  });

  it('includes deleted records when the job operation is queryAll', async () => {
    const conn = await login();
    const recs = sf.store.generateContacts(5, { fields: { Title: 'ToDelete' } });
    expect((await conn.sobject('Contact').destroy(recs.slice(0, 3).map((r) => r.Id))).every((r) => r.success)).toBe(true);
    const rows = await bulkQuery(conn, `SELECT Id, IsDeleted FROM Contact WHERE Title = 'ToDelete'`, true);
    expect(rows.filter((r) => r.IsDeleted === 'true')).toHaveLength(3);
  });
});

describe('Salesforce sObject Collections', () => {
  it('updates 200 records in one call, rejects 201, and writes 1,000 in 5 calls with allowRecursive', async () => {
    const conn = await login();
    const ids = sf.store.generateContacts(1000).map((r) => r.Id);
    const payload = (n: number) => ids.slice(0, n).map((Id, i) => ({ Id, Earshot_Sentiment_Score__c: -0.5 + i / 1000, Earshot_Sentiment_Label__c: 'negative', Earshot_Last_Interaction__c: '2031-04-01T10:00:00.000Z' }));
    sf.resetStats();
    const r200 = await conn.sobject('Contact').update(payload(200));
    expect(r200.every((r) => r.success)).toBe(true);
    expect(sf.stats().byEndpoint['PATCH /composite/sobjects']).toBe(1);
    await expect(conn.sobject('Contact').update(payload(201))).rejects.toMatchObject({ errorCode: 'EXCEEDED_ID_LIMIT' });
    sf.resetStats();
    const r1000 = await conn.sobject('Contact').update(payload(1000), { allowRecursive: true });
    expect(r1000.filter((r) => r.success)).toHaveLength(1000);
    expect(sf.stats().byEndpoint['PATCH /composite/sobjects']).toBe(5);
    const back = await conn.query<{ Earshot_Sentiment_Label__c: string; Earshot_Last_Interaction__c: string }>(`SELECT Earshot_Sentiment_Label__c, Earshot_Last_Interaction__c FROM Contact WHERE Id = '${ids[999]}'`);
    expect(back.records[0]).toMatchObject({ Earshot_Sentiment_Label__c: 'negative', Earshot_Last_Interaction__c: '2031-04-01T10:00:00.000+0000' });
  });

  it('reports per-record failures without failing the rest (allOrNone false)', async () => {
    const conn = await login();
    const [a, b, gone] = sf.store.generateContacts(3);
    sf.store.delete('Contact', gone.Id);
    sf.failRecord(b.Id, 'UNABLE_TO_LOCK_ROW');
    const res = await conn.sobject('Contact').update([
      { Id: a.Id, Earshot_Open_Complaints__c: 2 },
      { Id: b.Id, Earshot_Open_Complaints__c: 2 },
      { Id: gone.Id, Earshot_Open_Complaints__c: 2 },
    ]);
    expect(res.map((r) => r.success)).toEqual([true, false, false]);
    expect((res[1] as { errors: { statusCode: string }[] }).errors[0].statusCode).toBe('UNABLE_TO_LOCK_ROW');
    expect((res[2] as { errors: { statusCode: string }[] }).errors[0].statusCode).toBe('ENTITY_IS_DELETED');
    expect(sf.store.find('Contact', a.Id)!.Earshot_Open_Complaints__c).toBe(2);
    expect(sf.store.find('Contact', b.Id)!.Earshot_Open_Complaints__c).toBeNull();
  });

  it('rolls everything back when allOrNone is set and one record fails', async () => {
    const conn = await login();
    const [a] = sf.store.generateContacts(1);
    const res = await conn.sobject('Contact').update([{ Id: a.Id, Earshot_Open_Complaints__c: 9 }, { Id: '003000000000000AAA', Earshot_Open_Complaints__c: 9 }], { allOrNone: true });
    expect(res.map((r) => r.success)).toEqual([false, false]);
    expect((res[0] as { errors: { statusCode: string }[] }).errors[0].statusCode).toBe('ALL_OR_NONE_OPERATION_ROLLED_BACK');
    expect(sf.store.find('Contact', a.Id)!.Earshot_Open_Complaints__c).toBeNull();
  });
});

describe('Salesforce quotas and faults', () => {
  it('answers REQUEST_LIMIT_EXCEEDED once the daily allocation is spent, and reports usage', async () => {
    const conn = await login();
    const res = await fetch(`${url}/services/data/v${VERSION}/limits`, { headers: { Authorization: `Bearer ${conn.accessToken}` } });
    expect(res.headers.get('sforce-limit-info')).toMatch(/^api-usage=\d+\/100000$/);
    const limits = await conn.limits();
    expect(limits.DailyApiRequests.Max).toBe(100_000);
    sf.setDailyApiUsage(100_000);
    await expect(conn.query('SELECT Id FROM User')).rejects.toMatchObject({ errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'TotalRequests Limit exceeded.' });
    sf.setDailyApiUsage(0);
    expect((await conn.query('SELECT Id FROM User')).totalSize).toBe(1);
  });

  it('injects 500s, 429 with Retry-After, REQUEST_LIMIT_EXCEEDED and slow replies on demand', async () => {
    const conn = await login();
    // jsforce retries GETs on 500 by itself (5 times, from 500 ms): the fault shows in the counts.
    sf.resetStats();
    sf.faults.enqueue({ match: '/services/data', status: 500, times: 1 });
    expect((await conn.query('SELECT Id FROM User')).totalSize).toBe(1);
    expect(sf.stats().byStatus).toMatchObject({ '500': 1, '200': 1 });
    // PATCH is not retried by jsforce, so the caller sees the error body.
    sf.faults.enqueue({ match: '/services/data', status: 500, times: 1 });
    await expect(conn.sobject('User').update({ Id: sf.store.defaultUserId, Name: 'x' })).rejects.toMatchObject({ errorCode: 'UNKNOWN_EXCEPTION' });
    sf.faults.enqueue({ match: (r) => r.endpoint === 'GET /query', status: 429, retryAfter: 7 });
    const r429 = await fetch(`${url}/services/data/v${VERSION}/query?q=SELECT+Id+FROM+User`, { headers: { Authorization: `Bearer ${conn.accessToken}` } });
    expect(r429.status).toBe(429);
    expect(r429.headers.get('retry-after')).toBe('7');
    sf.requestLimitExceeded(1);
    await expect(conn.query('SELECT Id FROM User')).rejects.toMatchObject({ errorCode: 'REQUEST_LIMIT_EXCEEDED' });
    sf.faults.enqueue({ match: '/services/data', delayMs: 300 });
    const t0 = performance.now();
    expect((await conn.query('SELECT Id FROM User')).totalSize).toBe(1);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(sf.faults.pending()).toBe(0);
  });

  it('expires the session mid-bulk-load (while polling the job) and jsforce logs in again and carries on', async () => {
    const conn = await login();
    sf.store.generateContacts(5000);
    sf.resetStats();
    // After the job is created. (A 401 on a *results* page makes jsforce 3.10 write to an ended
    // stream and hang, so production code should fetch result pages itself.)
    sf.expireTokensAfterCalls(1);
    const rows = await bulkQuery(conn, 'SELECT Id FROM Contact');
    expect(rows.length).toBe(5000);
    expect(sf.store.count('Contact')).toBe(5000);
    expect(sf.stats().byEndpoint['POST /oauth2/token']).toBe(1);
  });
});

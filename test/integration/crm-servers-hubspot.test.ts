import { Client } from '@hubspot/api-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HubSpotServer } from '../crm-servers/hubspot/server';

// The real @hubspot/api-client 14 against the local HubSpot server (basePath), with the client's
// own retries off so the server's answers reach the caller unchanged. Each test has a portal of
// its own (20 companies, 500 contacts), so what one test adds, archives or expires no other sees.

let hs: HubSpotServer;
let basePath: string;
const client = (accessToken = hs.options.privateAppTokens[0]) => new Client({ accessToken, basePath, numberOfApiCallRetries: 0 });
const err = async (p: Promise<unknown>) => p.then(() => { throw new Error('expected a rejection'); }, (e: { code: number; body: Record<string, unknown>; headers: Record<string, string> }) => e);
// The client types `sorts` as strings; HubSpot's documented (and accepted) form is an object.
const sort = (propertyName: string, direction: 'ASCENDING' | 'DESCENDING' = 'ASCENDING') => ({ propertyName, direction }) as unknown as string;

beforeEach(async () => {
  hs = new HubSpotServer({ tenSecondLimit: 10_000, searchPerSecond: 1_000 });
  ({ url: basePath } = await hs.start());
  const companies = hs.store.generateCompanies(20);
  hs.store.generateContacts(500, { companyIds: companies.map((c) => c.id) });
});

afterEach(async () => {
  await hs.stop();
});

describe('HubSpot objects and batch', () => {
  it('pages contacts with the list endpoint and returns associations', async () => {
    const hubspot = client();
    let after: string | undefined;
    let n = 0;
    let withCompany = 0;
    do {
      const page = await hubspot.crm.contacts.basicApi.getPage(100, after, ['email', 'phone'], undefined, ['companies']);
      n += page.results.length;
      withCompany += page.results.filter((r) => r.associations?.companies?.results.length).length;
      after = page.paging?.next?.after;
    } while (after);
    expect(n).toBe(500);
    expect(withCompany).toBe(500);
  });

  it('updates 100 contacts in one batch call and rejects 101 with 400', async () => {
    const hubspot = client();
    const ids = hs.store.list('contacts').slice(0, 101).map((c) => c.id);
    await hubspot.crm.properties.coreApi.create('contacts', { name: 'earshot_sentiment_score', label: 'Earshot sentiment score', type: 'number' as never, fieldType: 'number', groupName: 'contactinformation' });
    hs.resetStats();
    const res = await hubspot.crm.contacts.batchApi.update({ inputs: ids.slice(0, 100).map((id) => ({ id, properties: { earshot_sentiment_score: '-0.4' } })) });
    expect(res.status).toBe('COMPLETE');
    expect(res.results).toHaveLength(100);
    expect(hs.stats().byEndpoint['POST /crm/v3/objects/:type/batch/update']).toBe(1);
    expect(hs.store.get('contacts', ids[99])!.properties.earshot_sentiment_score).toBe('-0.4');
    const e = await err(hubspot.crm.contacts.batchApi.update({ inputs: ids.map((id) => ({ id, properties: { earshot_sentiment_score: '1' } })) }));
    expect(e.code).toBe(400);
    expect(e.body).toMatchObject({ status: 'error', category: 'VALIDATION_ERROR' });
  });

  it('returns 207 with the missing ids when some records of a batch are gone', async () => {
    const hubspot = client();
    const [a] = hs.store.list('contacts');
    const res = await hubspot.crm.contacts.batchApi.update({ inputs: [{ id: a.id, properties: { jobtitle: 'CTO' } }, { id: '99999999', properties: { jobtitle: 'CTO' } }] });
    expect(res.results).toHaveLength(1);
    expect((res as { errors?: { category: string; context: { ids: string[] } }[] }).errors?.[0]).toMatchObject({ category: 'OBJECT_NOT_FOUND', context: { ids: ['99999999'] } });
  });

  it('rejects unknown properties the way HubSpot does', async () => {
    const e = await err(client().crm.contacts.basicApi.update(hs.store.list('contacts')[0].id, { properties: { no_such_prop: 'x' } }));
    expect(e.code).toBe(400);
    expect(String(e.body.message)).toContain('PROPERTY_DOESNT_EXIST');
  });

  it('reads contact→company associations through the v4 batch API', async () => {
    const ids = hs.store.list('contacts').slice(0, 3).map((c) => c.id);
    const res = await client().crm.associations.v4.batchApi.getPage('contacts', 'companies', { inputs: ids.map((id) => ({ id })) });
    expect(res.results).toHaveLength(3);
    expect(res.results[0].to[0].associationTypes.map((t) => t.typeId)).toContain(1);
  });
});

describe('HubSpot search', () => {
  it('finds contacts by last-modified window, sorted, paged, and fails past 10,000 results', async () => {
    const hubspot = client();
    const from = Date.parse('2031-05-01T00:00:00Z');
    hs.store.generateContacts(10_050, { modifiedStart: '2031-05-01T00:00:00Z', stepMs: 10 });
    const filterGroups = [{ filters: [{ propertyName: 'lastmodifieddate', operator: 'GTE' as never, value: String(from) }] }];
    const first = await hubspot.crm.contacts.searchApi.doSearch({ filterGroups, sorts: [sort('lastmodifieddate')], properties: ['email', 'lastmodifieddate'], limit: 200, after: '0' });
    expect(first.total).toBe(10_050);
    expect(first.results).toHaveLength(200);
    expect(first.paging?.next?.after).toBe('200');
    const stamps = first.results.map((r) => Date.parse(r.properties.lastmodifieddate!));
    expect(stamps).toEqual([...stamps].sort((a, b) => a - b));
    const last = await hubspot.crm.contacts.searchApi.doSearch({ filterGroups, sorts: [sort('lastmodifieddate')], limit: 200, after: '9800' });
    expect(last.paging?.next?.after).toBe('10000');
    const e = await err(hubspot.crm.contacts.searchApi.doSearch({ filterGroups, sorts: [sort('lastmodifieddate')], limit: 200, after: '10000' }));
    expect(e.code).toBe(400);
    // Windowing by the last value seen gets past the cap without losing a record.
    const boundary = last.results[last.results.length - 1].properties.lastmodifieddate!;
    const rest = await hubspot.crm.contacts.searchApi.doSearch({
      filterGroups: [{ filters: [{ propertyName: 'lastmodifieddate', operator: 'GT' as never, value: String(Date.parse(boundary)) }] }],
      sorts: [sort('lastmodifieddate')], limit: 200,
    });
    expect(rest.total).toBe(50);
  });

  it('supports BETWEEN, IN, HAS_PROPERTY and CONTAINS_TOKEN', async () => {
    const hubspot = client();
    const [c] = hs.store.list('contacts');
    const by = (filters: object[]) => hubspot.crm.contacts.searchApi.doSearch({ filterGroups: [{ filters: filters as never }], limit: 10 });
    expect((await by([{ propertyName: 'email', operator: 'IN', values: [c.properties.email] }])).total).toBe(1);
    expect((await by([{ propertyName: 'email', operator: 'CONTAINS_TOKEN', value: `${c.properties.firstname!.toLowerCase()}*` }])).total).toBeGreaterThan(0);
    expect((await by([{ propertyName: 'hs_object_id', operator: 'BETWEEN', value: c.id, highValue: c.id }])).total).toBe(1);
    const noTwitter = (await by([{ propertyName: 'twitterhandle', operator: 'NOT_HAS_PROPERTY' }])).total;
    const withTwitter = (await by([{ propertyName: 'twitterhandle', operator: 'HAS_PROPERTY' }])).total;
    expect(noTwitter + withTwitter).toBe(hs.store.list('contacts').length);
  });

  it('rate-limits search per second with the SECONDLY policy body', async () => {
    const strict = new HubSpotServer({ searchPerSecond: 5 });
    const { url } = await strict.start();
    try {
      const hubspot = new Client({ accessToken: strict.options.privateAppTokens[0], basePath: url, numberOfApiCallRetries: 0 });
      const results = await Promise.allSettled(Array.from({ length: 7 }, () => hubspot.crm.contacts.searchApi.doSearch({ limit: 1 })));
      const rejected = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
      expect(rejected).toHaveLength(2);
      expect(rejected[0].reason.code).toBe(429);
      expect(rejected[0].reason.body).toMatchObject({ errorType: 'RATE_LIMIT', policyName: 'SECONDLY', message: 'You have reached your secondly limit.' });
    } finally {
      await strict.stop();
    }
  });
});

describe('HubSpot properties', () => {
  it('creates a property group and a property, then answers 409 for both', async () => {
    const hubspot = client();
    const group = await hubspot.crm.properties.groupsApi.create('companies', { name: 'earshot', label: 'Earshot', displayOrder: -1 });
    expect(group.name).toBe('earshot');
    const prop = await hubspot.crm.properties.coreApi.create('companies', { name: 'earshot_sentiment_label', label: 'Sentiment label', type: 'string' as never, fieldType: 'text', groupName: 'earshot' });
    expect(prop.groupName).toBe('earshot');
    const g409 = await err(hubspot.crm.properties.groupsApi.create('companies', { name: 'earshot', label: 'Earshot' }));
    expect(g409.code).toBe(409);
    expect(g409.body).toMatchObject({ status: 'error', category: 'OBJECT_ALREADY_EXISTS' });
    const p409 = await err(hubspot.crm.properties.coreApi.create('companies', { name: 'earshot_sentiment_label', label: 'x', type: 'string' as never, fieldType: 'text', groupName: 'earshot' }));
    expect(p409.code).toBe(409);
    const read = await hubspot.crm.properties.coreApi.getByName('companies', 'earshot_sentiment_label');
    expect(read.label).toBe('Sentiment label');
  });
});

describe('HubSpot auth and rate limits', () => {
  it('returns a 429 storm to the caller, with and without Retry-After, when client retries are off', async () => {
    const hubspot = client();
    const id = hs.store.list('contacts')[0].id;
    hs.resetStats();
    hs.rateLimitStorm(3, { retryAfter: 2 });
    hs.rateLimitStorm(2);
    const seen: { code: number; retryAfter?: string; policy: unknown }[] = [];
    for (let i = 0; i < 5; i++) {
      const e = await err(hubspot.crm.contacts.basicApi.getById(id));
      seen.push({ code: e.code, retryAfter: e.headers['retry-after'], policy: e.body.policyName });
    }
    expect(seen.map((s) => s.code)).toEqual([429, 429, 429, 429, 429]);
    expect(seen.map((s) => s.retryAfter)).toEqual(['2', '2', '2', undefined, undefined]);
    expect(seen.every((s) => s.policy === 'TEN_SECONDLY_ROLLING')).toBe(true);
    expect((await hubspot.crm.contacts.basicApi.getById(id)).id).toBe(id);
    expect(hs.stats().byStatus).toMatchObject({ '429': 5, '200': 1 });
  });

  it('enforces the rolling ten-second limit with the documented headers', async () => {
    const strict = new HubSpotServer({ tenSecondLimit: 3 });
    const { url } = await strict.start();
    try {
      const headers = { Authorization: `Bearer ${strict.options.privateAppTokens[0]}` };
      const statuses: number[] = [];
      let remaining = '';
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`${url}/crm/v3/objects/contacts?limit=1`, { headers });
        statuses.push(res.status);
        if (i === 0) remaining = res.headers.get('x-hubspot-ratelimit-remaining') ?? '';
      }
      expect(statuses).toEqual([200, 200, 200, 429]);
      expect(remaining).toBe('2');
    } finally {
      await strict.stop();
    }
  });

  it('expires an OAuth token with EXPIRED_AUTHENTICATION and refreshes it through /oauth/v1/token', async () => {
    const oauthClient = new Client({ basePath, numberOfApiCallRetries: 0 });
    const first = await oauthClient.oauth.tokensApi.create('authorization_code', hs.issueAuthorizationCode(), 'http://localhost/cb', hs.options.clientId, hs.options.clientSecret);
    expect(first.expiresIn).toBe(1800);
    const hubspot = client(first.accessToken);
    const id = hs.store.list('contacts')[0].id;
    expect((await hubspot.crm.contacts.basicApi.getById(id)).id).toBe(id);
    hs.expireTokens();
    const e = await err(hubspot.crm.contacts.basicApi.getById(id));
    expect(e.code).toBe(401);
    expect(e.body).toMatchObject({ status: 'error', category: 'EXPIRED_AUTHENTICATION' });
    const next = await oauthClient.oauth.tokensApi.create('refresh_token', undefined, undefined, hs.options.clientId, hs.options.clientSecret, first.refreshToken);
    hubspot.setAccessToken(next.accessToken);
    expect((await hubspot.crm.contacts.basicApi.getById(id)).id).toBe(id);
    const bad = await err(oauthClient.oauth.tokensApi.create('refresh_token', undefined, undefined, hs.options.clientId, hs.options.clientSecret, 'nope'));
    expect(bad.code).toBe(400);
  });
});

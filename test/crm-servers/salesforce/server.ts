import { createHmac, randomBytes } from 'node:crypto';
import type http from 'node:http';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { decodeJwt, jwtVerify } from 'jose';
import {
  CallStats, close, FaultQueue, listen, parseForm, readBody, Router, sendResponse, sleep,
  type CrmRequest, type CrmResponse, type FaultSpec,
} from '../http-util';
import { Bulk2Jobs } from './bulk2';
import { parseSoql, restValue, runSoql, SoqlError, toRestRecord } from './soql';
import { fieldDef, formatDateTime, parseDateTime, SalesforceStore, SfFieldError, sobjectDef, SOBJECTS, type SfRecord, type Value } from './store';

export interface SalesforceServerOptions {
  clientId?: string;
  clientSecret?: string;
  /** Users allowed to log in; the password may carry the security token appended. */
  users?: { username: string; password: string; securityToken?: string }[];
  /** PEM (SPKI) public key of the connected app's certificate; when set, JWT signatures are verified. */
  jwtPublicKeyPem?: string;
  /** Daily API request allocation (the org's DailyApiRequests.Max). */
  dailyApiLimit?: number;
  /** Query batch size when no `Sforce-Query-Options` header is sent (Salesforce: 2000). */
  defaultBatchSize?: number;
  /** Status checks a Bulk API 2.0 query job answers InProgress before JobComplete. */
  bulk2ChecksUntilComplete?: number;
  /** Records per Bulk API 2.0 result page when the client sends no maxRecords. */
  bulk2MaxRecordsPerPage?: number;
  /** Added to every reply. */
  latencyMs?: number;
}

interface Session {
  username: string;
  userId: string;
  valid: boolean;
}

const API_VERSIONS = ['50.0', '55.0', '58.0', '59.0', '60.0', '61.0', '62.0', '63.0', '64.0'];
const MAX_COLLECTION = 200;

const sfErr = (status: number, errorCode: string, message: string, fields?: string[]): CrmResponse => ({
  status,
  body: [fields ? { message, errorCode, fields } : { message, errorCode }],
});
const NOT_FOUND = (): CrmResponse => sfErr(404, 'NOT_FOUND', 'The requested resource does not exist');
const INVALID_SESSION = (): CrmResponse => sfErr(401, 'INVALID_SESSION_ID', 'Session expired or invalid');
const LIMIT_EXCEEDED = (): CrmResponse => sfErr(403, 'REQUEST_LIMIT_EXCEEDED', 'TotalRequests Limit exceeded.');

/** The body Salesforce sends for a status, used when a fault gives none. */
function defaultFaultBody(status: number): unknown {
  switch (status) {
    case 401: return INVALID_SESSION().body;
    case 403: return LIMIT_EXCEEDED().body;
    case 429: return [{ message: 'Too many requests. Please retry later.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }];
    case 503: return [{ message: 'Server is temporarily unavailable. Please try again later.', errorCode: 'SERVER_UNAVAILABLE' }];
    default: return [{ message: `An unexpected error occurred. Please include this ErrorId if you contact support: ${randomBytes(4).toString('hex')}-${status} (-1)`, errorCode: 'UNKNOWN_EXCEPTION' }];
  }
}

/**
 * A local Salesforce org speaking the REST API (query/queryMore/queryAll, sObject CRUD, sObject
 * Collections, getDeleted/getUpdated, limits), Bulk API 2.0 query jobs, the OAuth 2.0 token endpoint
 * (password, refresh_token, authorization_code, JWT bearer) and SOAP login. For tests and the demo only.
 */
export class SalesforceServer {
  readonly store = new SalesforceStore();
  readonly faults = new FaultQueue();
  readonly options: Required<Omit<SalesforceServerOptions, 'jwtPublicKeyPem'>> & { jwtPublicKeyPem?: string };
  private readonly callStats = new CallStats();
  /** token requests per grant_type: one endpoint serves every OAuth flow, and tests ask which ran */
  private readonly grants = new Map<string, number>();
  private readonly router = new Router();
  private readonly bulk2: Bulk2Jobs;
  private readonly sessions = new Map<string, Session>();
  private readonly refreshTokens = new Map<string, { username: string; valid: boolean }>();
  private readonly authCodes = new Map<string, string>();
  private readonly locators = new Map<string, { type: string; rows: SfRecord[]; fields: { parts: string[] }[]; batch: number }>();
  private readonly recordFaults = new Map<string, { statusCode: string; message: string; remaining: number }>();
  private server?: http.Server;
  private jwtKey?: KeyObject;
  private apiUsage = 0;
  private expireAfter: number | null = null;
  private locatorCounter = 0;
  url = '';

  constructor(options: SalesforceServerOptions = {}) {
    this.options = {
      clientId: options.clientId ?? 'earshot-connected-app',
      clientSecret: options.clientSecret ?? 'earshot-secret',
      users: options.users ?? [{ username: 'earshot@example.com', password: 'password', securityToken: 'TOKEN' }],
      jwtPublicKeyPem: options.jwtPublicKeyPem,
      dailyApiLimit: options.dailyApiLimit ?? 100_000,
      defaultBatchSize: options.defaultBatchSize ?? 2000,
      bulk2ChecksUntilComplete: options.bulk2ChecksUntilComplete ?? 1,
      bulk2MaxRecordsPerPage: options.bulk2MaxRecordsPerPage ?? 10_000,
      latencyMs: options.latencyMs ?? 0,
    };
    if (options.jwtPublicKeyPem) this.jwtKey = createPublicKey(options.jwtPublicKeyPem);
    this.bulk2 = new Bulk2Jobs(this.store, {
      checksUntilComplete: () => this.options.bulk2ChecksUntilComplete,
      maxRecordsPerPage: () => this.options.bulk2MaxRecordsPerPage,
    });
    this.routes();
  }

  /** Starts listening on 127.0.0.1; `url` is both the login URL and the instance URL. */
  async start(port = 0): Promise<{ url: string }> {
    const { server, url } = await listen(port, (req, res) => void this.handle(req, res));
    this.server = server;
    this.url = url;
    return { url };
  }

  async stop(): Promise<void> {
    await close(this.server);
    this.server = undefined;
  }

  /** Calls per endpoint label (e.g. `PATCH /composite/sobjects`), per status, token requests per grant type, and the API usage. */
  stats(): ReturnType<CallStats['snapshot']> & { apiUsage: number; byGrantType: Record<string, number> } {
    return { ...this.callStats.snapshot(), apiUsage: this.apiUsage, byGrantType: Object.fromEntries(this.grants) };
  }

  resetStats(): void {
    this.callStats.reset();
    this.grants.clear();
  }

  /** Invalidates every issued access token: the next call gets 401 INVALID_SESSION_ID. */
  expireTokens(): void {
    for (const s of this.sessions.values()) s.valid = false;
  }

  /** Lets `n` more authenticated calls succeed, then expires every token (a session dying mid-sync). */
  expireTokensAfterCalls(n: number): void {
    this.expireAfter = n;
  }

  revokeRefreshTokens(): void {
    for (const r of this.refreshTokens.values()) r.valid = false;
  }

  setDailyApiUsage(used: number, limit = this.options.dailyApiLimit): void {
    this.apiUsage = used;
    this.options.dailyApiLimit = limit;
  }

  /** Shorthand for the 403 `REQUEST_LIMIT_EXCEEDED` Salesforce sends when the daily allocation is spent. */
  requestLimitExceeded(times = 1, match?: FaultSpec['match']): void {
    this.faults.enqueue({ match, status: 403, times, body: LIMIT_EXCEEDED().body });
  }

  /**
   * The next `times` requests that `match` answers are refused with `status` and Salesforce's REST
   * error body, `[{"message", "errorCode", "fields"}]`: the message as the org wrote it (a
   * validation rule, an Apex trigger's addError, "data value too large: …" quote field values).
   */
  failCall(match: FaultSpec['match'], status: number, errorCode: string, message: string, times = 1): void {
    this.faults.enqueue({ match, status, times, body: sfErr(status, errorCode, message, []).body });
  }

  /** The next `times` writes of record `id` through any DML call fail with this status code. */
  failRecord(id: string, statusCode = 'UNABLE_TO_LOCK_ROW', message = 'unable to obtain exclusive access to this record or 1 records', times = 1): void {
    this.recordFaults.set(id, { statusCode, message, remaining: times });
  }

  /** A session for direct use (skips the login round trip). */
  issueAccessToken(username = this.options.users[0].username): string {
    const token = `${this.store.orgId.slice(0, 15)}!${randomBytes(24).toString('base64url')}`;
    this.sessions.set(token, { username, userId: this.store.defaultUserId, valid: true });
    return token;
  }

  // ---- plumbing ----------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://local');
    const method = req.method ?? 'GET';
    const rawBody = await readBody(req);
    const m = this.router.match(method, u.pathname.replace(/\/+$/, '') || '/');
    const creq: CrmRequest = {
      method, path: u.pathname, query: u.searchParams, headers: req.headers, rawBody,
      params: m?.params ?? {}, endpoint: m?.route.label ?? `${method} (unknown)`,
    };
    let reply: CrmResponse;
    try {
      reply = await this.dispatch(creq, m?.route.label, m?.route);
    } catch (e) {
      reply = { status: 500, body: defaultFaultBody(500) };
      console.error('[salesforce-server]', e);
    }
    this.callStats.record(creq.endpoint, reply.status);
    if (creq.path.startsWith('/services/data/v')) {
      reply.headers = { ...reply.headers, 'Sforce-Limit-Info': `api-usage=${this.apiUsage}/${this.options.dailyApiLimit}` };
    }
    if (!res.destroyed) sendResponse(res, reply);
  }

  private async dispatch(req: CrmRequest, label: string | undefined, route?: { handler: (r: CrmRequest) => CrmResponse | Promise<CrmResponse> }): Promise<CrmResponse> {
    if (this.options.latencyMs) await sleep(this.options.latencyMs);
    const fault = this.faults.take(req);
    if (fault?.delayMs) await sleep(fault.delayMs);
    if (fault?.raw) return { status: 0, raw: fault.raw };
    if (fault?.status) {
      const headers = { ...fault.headers };
      if (fault.retryAfter !== undefined) headers['Retry-After'] = String(fault.retryAfter);
      return { status: fault.status, headers, body: fault.body ?? defaultFaultBody(fault.status) };
    }
    if (!route || !label) {
      return req.path.startsWith('/services/data') ? NOT_FOUND() : { status: 404, headers: { 'Content-Type': 'text/html' }, body: '<html><body>Not Found</body></html>' };
    }
    const version = req.params.version;
    if (version !== undefined) {
      if (!/^v\d+\.\d$/.test(version)) return NOT_FOUND();
      const session = this.authenticate(req);
      if (!session) return INVALID_SESSION();
      if (this.apiUsage >= this.options.dailyApiLimit) return LIMIT_EXCEEDED();
      this.apiUsage++;
      if (this.expireAfter !== null && --this.expireAfter <= 0) {
        this.expireAfter = null;
        // The current call still succeeds; the session dies for the next one.
        queueMicrotask(() => this.expireTokens());
      }
    }
    const reply = await route.handler(req);
    return fault?.rewrite ? fault.rewrite(reply, req) : reply;
  }

  private authenticate(req: CrmRequest): Session | undefined {
    const auth = req.headers.authorization ?? '';
    const token = /^(Bearer|OAuth)\s+(.+)$/i.exec(auth)?.[2] ?? req.query.get('oauth_token') ?? '';
    const s = this.sessions.get(token);
    return s?.valid ? s : undefined;
  }

  private base(req: CrmRequest): string {
    return `/services/data/${req.params.version}`;
  }

  private json(req: CrmRequest): unknown {
    try {
      return req.rawBody ? JSON.parse(req.rawBody) : {};
    } catch {
      throw new SfFieldError('JSON_PARSER_ERROR', 'Unexpected character in request body');
    }
  }

  private routes(): void {
    const r = this.router;
    const D = '/services/data/:version';
    const wrap = (fn: (req: CrmRequest) => CrmResponse | Promise<CrmResponse>) => async (req: CrmRequest) => {
      try {
        return await fn(req);
      } catch (e) {
        if (e instanceof SoqlError) return sfErr(400, e.errorCode, e.message);
        if (e instanceof SfFieldError) return sfErr(400, e.statusCode, e.message, e.fields);
        throw e;
      }
    };
    const add = (method: string, pattern: string, label: string, fn: (req: CrmRequest) => CrmResponse | Promise<CrmResponse>) =>
      r.add(method, pattern, label, wrap(fn));

    add('POST', '/services/oauth2/token', 'POST /oauth2/token', (q) => this.token(q));
    add('POST', '/services/oauth2/revoke', 'POST /oauth2/revoke', (q) => this.revoke(q));
    add('GET', '/services/oauth2/authorize', 'GET /oauth2/authorize', (q) => this.authorize(q));
    add('POST', '/services/Soap/u/:soapVersion', 'POST /Soap/u', (q) => this.soapLogin(q));
    add('GET', '/id/:org/:user', 'GET /id', (q) => this.identity(q));
    add('GET', '/services/data', 'GET /services/data', () => ({
      status: 200,
      body: API_VERSIONS.map((v) => ({ label: `API ${v}`, url: `/services/data/v${v}`, version: v })),
    }));
    add('GET', D, 'GET /', (q) => ({
      status: 200,
      body: Object.fromEntries(['sobjects', 'query', 'queryAll', 'composite', 'jobs', 'limits'].map((k) => [k, `${this.base(q)}/${k}`])),
    }));
    add('GET', `${D}/limits`, 'GET /limits', () => ({
      status: 200,
      body: {
        DailyApiRequests: { Max: this.options.dailyApiLimit, Remaining: Math.max(0, this.options.dailyApiLimit - this.apiUsage) },
        DailyBulkV2QueryJobs: { Max: 10000, Remaining: 10000 },
        DailyBulkV2QueryFileStorageMB: { Max: 976562, Remaining: 976562 },
        DailyBulkApiBatches: { Max: 15000, Remaining: 15000 },
      },
    }));
    add('GET', `${D}/query`, 'GET /query', (q) => this.query(q, false));
    add('GET', `${D}/queryAll`, 'GET /queryAll', (q) => this.query(q, true));
    add('GET', `${D}/query/:locator`, 'GET /query/:locator', (q) => this.queryMore(q));
    add('GET', `${D}/queryAll/:locator`, 'GET /queryAll/:locator', (q) => this.queryMore(q));
    add('GET', `${D}/sobjects`, 'GET /sobjects', () => ({
      status: 200,
      body: {
        encoding: 'UTF-8',
        maxBatchSize: MAX_COLLECTION,
        sobjects: Object.values(SOBJECTS).map((d) => ({ name: d.name, label: d.label, keyPrefix: d.keyPrefix, queryable: true, updateable: true, createable: true, deletable: true, custom: false })),
      },
    }));
    add('GET', `${D}/sobjects/:type`, 'GET /sobjects/:type', (q) => {
      const def = sobjectDef(q.params.type);
      if (!def) return NOT_FOUND();
      return { status: 200, body: { objectDescribe: { name: def.name, label: def.label, keyPrefix: def.keyPrefix }, recentItems: [] } };
    });
    add('POST', `${D}/sobjects/:type`, 'POST /sobjects/:type', (q) => this.createOne(q));
    add('GET', `${D}/sobjects/:type/describe`, 'GET /sobjects/:type/describe', (q) => this.describe(q));
    add('GET', `${D}/sobjects/:type/deleted`, 'GET /sobjects/:type/deleted', (q) => this.deletedOrUpdated(q, 'deleted'));
    add('GET', `${D}/sobjects/:type/updated`, 'GET /sobjects/:type/updated', (q) => this.deletedOrUpdated(q, 'updated'));
    add('GET', `${D}/sobjects/:type/:id`, 'GET /sobjects/:type/:id', (q) => this.getOne(q));
    add('PATCH', `${D}/sobjects/:type/:id`, 'PATCH /sobjects/:type/:id', (q) => this.updateOne(q));
    add('DELETE', `${D}/sobjects/:type/:id`, 'DELETE /sobjects/:type/:id', (q) => this.deleteOne(q));
    add('POST', `${D}/composite/sobjects`, 'POST /composite/sobjects', (q) => this.collectionSave(q, 'create'));
    add('PATCH', `${D}/composite/sobjects`, 'PATCH /composite/sobjects', (q) => this.collectionSave(q, 'update'));
    add('DELETE', `${D}/composite/sobjects`, 'DELETE /composite/sobjects', (q) => this.collectionDelete(q));
    add('GET', `${D}/composite/sobjects/:type`, 'GET /composite/sobjects/:type', (q) =>
      this.collectionRetrieve(q, (q.query.get('ids') ?? '').split(',').filter(Boolean), (q.query.get('fields') ?? '').split(',').filter(Boolean)));
    add('POST', `${D}/composite/sobjects/:type`, 'POST /composite/sobjects/:type', (q) => {
      const body = this.json(q) as { ids?: string[]; fields?: string[] };
      return this.collectionRetrieve(q, body.ids ?? [], body.fields ?? []);
    });
    add('PATCH', `${D}/composite/sobjects/:type/:extField`, 'PATCH /composite/sobjects/:type/:extField', (q) => this.collectionUpsert(q));
    add('POST', `${D}/jobs/query`, 'POST /jobs/query', (q) => this.bulk2.create(this.json(q) as Record<string, unknown>, q.params.version.slice(1)));
    add('GET', `${D}/jobs/query`, 'GET /jobs/query', () => this.bulk2.list());
    add('GET', `${D}/jobs/query/:id`, 'GET /jobs/query/:id', (q) => this.bulk2.get(q.params.id));
    add('PATCH', `${D}/jobs/query/:id`, 'PATCH /jobs/query/:id', (q) => this.bulk2.abort(q.params.id, this.json(q) as Record<string, unknown>));
    add('DELETE', `${D}/jobs/query/:id`, 'DELETE /jobs/query/:id', (q) => this.bulk2.remove(q.params.id));
    add('GET', `${D}/jobs/query/:id/results`, 'GET /jobs/query/:id/results', (q) =>
      this.bulk2.results(q.params.id, q.query.get('locator'), q.query.get('maxRecords')));
  }

  // ---- OAuth and login -----------------------------------------------------------------------

  private tokenResponse(username: string, withRefresh: boolean): Record<string, unknown> {
    const accessToken = this.issueAccessToken(username);
    const issuedAt = String(Date.now());
    const id = `${this.url}/id/${this.store.orgId}/${this.store.defaultUserId}`;
    const body: Record<string, unknown> = {
      access_token: accessToken,
      instance_url: this.url,
      id,
      token_type: 'Bearer',
      issued_at: issuedAt,
      signature: createHmac('sha256', this.options.clientSecret).update(id + issuedAt).digest('base64'),
      scope: 'api refresh_token',
    };
    if (withRefresh) {
      const refresh = `5Aep${randomBytes(32).toString('base64url')}`;
      this.refreshTokens.set(refresh, { username, valid: true });
      body.refresh_token = refresh;
    }
    return body;
  }

  private checkUser(username: string, password: string): boolean {
    return this.options.users.some((u) => u.username === username && (u.password === password || u.password + (u.securityToken ?? '') === password));
  }

  private async token(req: CrmRequest): Promise<CrmResponse> {
    const p = parseForm(req.rawBody, req.headers['content-type']);
    const oauthErr = (error: string, description: string, status = 400): CrmResponse => ({ status, body: { error, error_description: description } });
    const clientOk = p.client_id === this.options.clientId;
    const grant = p.grant_type ?? '(none)';
    this.grants.set(grant, (this.grants.get(grant) ?? 0) + 1);
    switch (p.grant_type) {
      case 'password':
        if (!clientOk) return oauthErr('invalid_client_id', 'client identifier invalid');
        if (p.client_secret !== this.options.clientSecret) return oauthErr('invalid_client', 'invalid client credentials');
        if (!this.checkUser(p.username, p.password)) return oauthErr('invalid_grant', 'authentication failure');
        // The username-password flow issues no refresh token (Salesforce docs).
        return { status: 200, body: this.tokenResponse(p.username, false) };
      case 'refresh_token': {
        if (!clientOk) return oauthErr('invalid_client_id', 'client identifier invalid');
        const r = this.refreshTokens.get(p.refresh_token ?? '');
        if (!r?.valid) return oauthErr('invalid_grant', 'expired access/refresh token');
        return { status: 200, body: this.tokenResponse(r.username, false) };
      }
      case 'authorization_code': {
        if (!clientOk) return oauthErr('invalid_client_id', 'client identifier invalid');
        const username = this.authCodes.get(p.code ?? '');
        if (!username) return oauthErr('invalid_grant', 'invalid authorization code');
        this.authCodes.delete(p.code);
        return { status: 200, body: this.tokenResponse(username, true) };
      }
      case 'urn:ietf:params:oauth:grant-type:jwt-bearer':
        return this.jwtBearer(p.assertion ?? '', oauthErr);
      default:
        return oauthErr('unsupported_grant_type', 'grant type not supported');
    }
  }

  private async jwtBearer(assertion: string, oauthErr: (e: string, d: string) => CrmResponse): Promise<CrmResponse> {
    let claims: ReturnType<typeof decodeJwt>;
    try {
      claims = decodeJwt(assertion);
    } catch {
      return oauthErr('invalid_grant', 'invalid assertion');
    }
    if (claims.iss !== this.options.clientId) return oauthErr('invalid_client_id', 'client identifier invalid');
    const audiences = [this.url, 'https://login.salesforce.com', 'https://test.salesforce.com'];
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.some((a) => typeof a === 'string' && audiences.includes(a.replace(/\/$/, '')))) return oauthErr('invalid_grant', 'audience is invalid');
    if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) return oauthErr('invalid_grant', 'expired authorization code');
    if (this.jwtKey) {
      try {
        await jwtVerify(assertion, this.jwtKey, { algorithms: ['RS256'] });
      } catch {
        return oauthErr('invalid_grant', 'invalid assertion');
      }
    }
    if (!this.options.users.some((u) => u.username === claims.sub)) return oauthErr('invalid_grant', "user hasn't approved this consumer");
    return { status: 200, body: this.tokenResponse(String(claims.sub), false) };
  }

  private revoke(req: CrmRequest): CrmResponse {
    const token = parseForm(req.rawBody, req.headers['content-type']).token ?? req.query.get('token') ?? '';
    const s = this.sessions.get(token);
    const r = this.refreshTokens.get(token);
    if (!s && !r) return { status: 400, body: { error: 'unsupported_token_type', error_description: 'this token type is not supported' } };
    if (s) s.valid = false;
    if (r) r.valid = false;
    return { status: 200 };
  }

  /** Auto-approves and redirects with a code, as a user clicking "Allow" would. */
  private authorize(req: CrmRequest): CrmResponse {
    if (req.query.get('client_id') !== this.options.clientId) return { status: 400, body: { error: 'invalid_client_id', error_description: 'client identifier invalid' } };
    const redirect = req.query.get('redirect_uri');
    if (!redirect) return { status: 400, body: { error: 'redirect_uri_mismatch', error_description: 'redirect_uri must match configuration' } };
    const code = `aPrx${randomBytes(16).toString('base64url')}`;
    this.authCodes.set(code, this.options.users[0].username);
    const target = new URL(redirect);
    target.searchParams.set('code', code);
    const state = req.query.get('state');
    if (state) target.searchParams.set('state', state);
    return { status: 302, headers: { Location: target.toString() } };
  }

  private soapLogin(req: CrmRequest): CrmResponse {
    const tag = (t: string) => new RegExp(`<(?:\\w+:)?${t}>([^<]*)</(?:\\w+:)?${t}>`).exec(req.rawBody)?.[1];
    const unesc = (s: string | undefined) => (s ?? '').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
    const username = unesc(tag('username'));
    const xml = (inner: string) => `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>${inner}</soapenv:Body></soapenv:Envelope>`;
    if (!this.checkUser(username, unesc(tag('password')))) {
      return {
        status: 500,
        headers: { 'Content-Type': 'text/xml;charset=UTF-8' },
        body: xml('<soapenv:Fault><faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username, password, security token; or user locked out.</faultstring></soapenv:Fault>'),
      };
    }
    const sessionId = this.issueAccessToken(username);
    const v = req.params.soapVersion;
    const userId = this.store.defaultUserId;
    return {
      status: 200,
      headers: { 'Content-Type': 'text/xml;charset=UTF-8' },
      body: xml(`<loginResponse><result><metadataServerUrl>${this.url}/services/Soap/m/${v}/${this.store.orgId}</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>false</sandbox><serverUrl>${this.url}/services/Soap/u/${v}/${this.store.orgId}</serverUrl><sessionId>${sessionId}</sessionId><userId>${userId}</userId><userInfo><organizationId>${this.store.orgId}</organizationId><userEmail>${username}</userEmail><userFullName>Earshot Integration</userFullName><userId>${userId}</userId><userName>${username}</userName></userInfo></result></loginResponse>`),
    };
  }

  private identity(req: CrmRequest): CrmResponse {
    const s = this.authenticate(req);
    if (!s) return { status: 403, body: 'Bad_OAuth_Token', headers: { 'Content-Type': 'text/plain' } };
    return {
      status: 200,
      body: {
        id: `${this.url}/id/${this.store.orgId}/${s.userId}`, asserted_user: true, user_id: s.userId, organization_id: this.store.orgId,
        username: s.username, display_name: 'Earshot Integration', email: s.username, active: true, user_type: 'STANDARD',
        urls: { rest: `${this.url}/services/data/v{version}/`, sobjects: `${this.url}/services/data/v{version}/sobjects/`, query: `${this.url}/services/data/v{version}/query/` },
      },
    };
  }

  // ---- query ----------------------------------------------------------------------------------

  private query(req: CrmRequest, all: boolean): CrmResponse {
    const soql = req.query.get('q');
    if (!soql) return sfErr(400, 'MALFORMED_QUERY', 'A query string has to be specified');
    const q = parseSoql(soql);
    const rows = runSoql(this.store, q, all);
    if (q.count) return { status: 200, body: { totalSize: rows.length, done: true, records: [] } };
    const opt = /batchSize\s*=\s*(\d+)/i.exec(String(req.headers['sforce-query-options'] ?? ''));
    const batch = Math.min(2000, Math.max(200, opt ? Number(opt[1]) : this.options.defaultBatchSize));
    return this.page(req, q.type, rows, q.fields, 0, batch, null);
  }

  private queryMore(req: CrmRequest): CrmResponse {
    const m = /^(.+)-(\d+)$/.exec(req.params.locator);
    const cursor = m ? this.locators.get(m[1]) : undefined;
    if (!m || !cursor) return sfErr(400, 'INVALID_QUERY_LOCATOR', 'invalid query locator');
    // The cursor keeps the batch size chosen when the query was opened.
    return this.page(req, cursor.type, cursor.rows, cursor.fields, Number(m[2]), cursor.batch, m[1]);
  }

  private page(req: CrmRequest, type: string, rows: SfRecord[], fields: { parts: string[] }[], offset: number, batch: number, locator: string | null): CrmResponse {
    const slice = rows.slice(offset, offset + batch);
    const next = offset + slice.length;
    const body: Record<string, unknown> = {
      totalSize: rows.length,
      done: next >= rows.length,
      records: slice.map((rec) => toRestRecord(this.store, this.base(req), type, rec, fields)),
    };
    if (next < rows.length) {
      const id = locator ?? `0r8xx${String(++this.locatorCounter).padStart(10, '0')}`;
      this.locators.set(id, { type, rows, fields, batch });
      body.nextRecordsUrl = `${this.base(req)}/query/${id}-${next}`;
    } else if (locator) {
      this.locators.delete(locator);
    }
    return { status: 200, body };
  }

  // ---- single-record REST ---------------------------------------------------------------------

  private describe(req: CrmRequest): CrmResponse {
    const def = sobjectDef(req.params.type);
    if (!def) return NOT_FOUND();
    return {
      status: 200,
      body: {
        name: def.name, label: def.label, keyPrefix: def.keyPrefix, custom: false, queryable: true, createable: true, updateable: true, deletable: true,
        fields: def.fields.map((f) => ({
          name: f.name, label: f.label, type: f.type, custom: f.name.endsWith('__c'),
          createable: !f.system && !f.calculated, updateable: !f.system && !f.calculated, nillable: !f.system && f.type !== 'boolean',
          calculated: Boolean(f.calculated), length: f.type === 'string' ? 255 : 0, referenceTo: f.referenceTo ? [f.referenceTo] : [],
          relationshipName: f.relationshipName ?? null, idLookup: f.name === 'Id' || f.type === 'email',
        })),
        urls: { sobject: `${this.base(req)}/sobjects/${def.name}`, describe: `${this.base(req)}/sobjects/${def.name}/describe` },
      },
    };
  }

  private getOne(req: CrmRequest): CrmResponse {
    const def = sobjectDef(req.params.type);
    if (!def) return NOT_FOUND();
    const rec = this.store.find(def.name, req.params.id);
    if (!rec || rec.IsDeleted) return NOT_FOUND();
    const names = (req.query.get('fields') ?? '').split(',').filter(Boolean);
    const fields = names.length ? names : def.fields.map((f) => f.name);
    for (const n of fields) {
      if (!fieldDef(def, n)) return sfErr(400, 'INVALID_FIELD', `No such column '${n}' on sobject of type ${def.name}`);
    }
    return { status: 200, body: toRestRecord(this.store, this.base(req), def.name, rec, fields.map((n) => ({ parts: [fieldDef(def, n)!.name] }))) };
  }

  private required(type: string, values: Record<string, Value>): string[] {
    const need: Record<string, string[]> = { Account: ['Name'], Contact: ['LastName'], Lead: ['LastName', 'Company'] };
    return (need[type] ?? []).filter((f) => values[f] === undefined || values[f] === null || values[f] === '');
  }

  private createOne(req: CrmRequest): CrmResponse {
    const def = sobjectDef(req.params.type);
    if (!def) return NOT_FOUND();
    const values = this.store.coerce(def.name, this.json(req) as Record<string, unknown>);
    const missing = this.required(def.name, values);
    if (missing.length) return sfErr(400, 'REQUIRED_FIELD_MISSING', `Required fields are missing: [${missing.join(', ')}]`, missing);
    const rec = this.store.insert(def.name, values);
    return { status: 201, body: { id: rec.Id, success: true, errors: [] } };
  }

  private updateOne(req: CrmRequest): CrmResponse {
    const def = sobjectDef(req.params.type);
    if (!def) return NOT_FOUND();
    const rec = this.store.find(def.name, req.params.id);
    if (!rec) return NOT_FOUND();
    if (rec.IsDeleted) return sfErr(404, 'ENTITY_IS_DELETED', 'entity is deleted', []);
    const fault = this.takeRecordFault(rec.Id);
    if (fault) return sfErr(400, fault.statusCode, fault.message, []);
    this.store.update(def.name, rec.Id, this.store.coerce(def.name, this.json(req) as Record<string, unknown>));
    return { status: 204 };
  }

  private deleteOne(req: CrmRequest): CrmResponse {
    const def = sobjectDef(req.params.type);
    if (!def) return NOT_FOUND();
    const rec = this.store.find(def.name, req.params.id);
    if (!rec) return NOT_FOUND();
    if (rec.IsDeleted) return sfErr(404, 'ENTITY_IS_DELETED', 'entity is deleted', []);
    this.store.delete(def.name, rec.Id);
    return { status: 204 };
  }

  private deletedOrUpdated(req: CrmRequest, kind: 'deleted' | 'updated'): CrmResponse {
    const def = sobjectDef(req.params.type);
    if (!def) return NOT_FOUND();
    const startRaw = req.query.get('start');
    const endRaw = req.query.get('end');
    if (!startRaw || !endRaw) return sfErr(400, 'MISSING_ARGUMENT', 'start and end are required');
    const start = parseDateTime(startRaw)!;
    const end = parseDateTime(endRaw)!;
    if (end < start) return sfErr(400, 'INVALID_REPLICATION_DATE', 'startDate must chronologically precede endDate');
    // Salesforce covers whole minutes only.
    const latestCovered = Math.floor(end / 60_000) * 60_000;
    if (kind === 'deleted') {
      const rows = this.store.tombstones.filter((t) => t.type === def.name && t.deletedDate >= start && t.deletedDate <= end);
      const earliest = this.store.tombstones.filter((t) => t.type === def.name).reduce((m, t) => Math.min(m, t.deletedDate), start);
      return {
        status: 200,
        body: {
          deletedRecords: rows.map((t) => ({ id: t.id, deletedDate: formatDateTime(t.deletedDate) })),
          earliestDateAvailable: formatDateTime(earliest),
          latestDateCovered: formatDateTime(Math.max(latestCovered, ...rows.map((t) => t.deletedDate))),
        },
      };
    }
    const ids = this.store.list(def.name, false).filter((r) => (r.SystemModstamp as number) >= start && (r.SystemModstamp as number) <= end).map((r) => r.Id);
    return { status: 200, body: { ids, latestDateCovered: formatDateTime(latestCovered) } };
  }

  private takeRecordFault(id: string): { statusCode: string; message: string } | undefined {
    const f = this.recordFaults.get(id);
    if (!f) return undefined;
    if (--f.remaining <= 0) this.recordFaults.delete(id);
    return f;
  }

  // ---- sObject Collections ------------------------------------------------------------------

  private collectionSave(req: CrmRequest, op: 'create' | 'update'): CrmResponse {
    const body = this.json(req) as { allOrNone?: boolean | string; records?: Record<string, unknown>[] };
    if (!Array.isArray(body.records)) return sfErr(400, 'INVALID_FIELD', "The 'records' field is required");
    if (body.records.length > MAX_COLLECTION) return sfErr(400, 'EXCEEDED_ID_LIMIT', `record limit reached. cannot submit more than ${MAX_COLLECTION} records into this call`);
    const allOrNone = body.allOrNone === true || body.allOrNone === 'true';
    type Plan = { type: string; id?: string; values?: Record<string, Value>; error?: { statusCode: string; message: string; fields: string[] } };
    const plans: Plan[] = body.records.map((raw) => {
      const attrs = raw.attributes as { type?: string } | undefined;
      const def = attrs?.type ? sobjectDef(attrs.type) : undefined;
      if (!def) return { type: '', error: { statusCode: 'INVALID_TYPE', message: 'sObject type is required in attributes', fields: [] } };
      const { attributes: _a, id, Id, ...fields } = raw;
      const rid = (id ?? Id) as string | undefined;
      let values: Record<string, Value>;
      try {
        values = this.store.coerce(def.name, fields);
      } catch (e) {
        if (e instanceof SfFieldError) return { type: def.name, id: rid, error: { statusCode: e.statusCode, message: e.message, fields: e.fields } };
        throw e;
      }
      if (op === 'create') {
        if (rid) return { type: def.name, error: { statusCode: 'INVALID_FIELD', message: 'cannot specify Id in an insert call', fields: ['Id'] } };
        const missing = this.required(def.name, values);
        if (missing.length) return { type: def.name, error: { statusCode: 'REQUIRED_FIELD_MISSING', message: `Required fields are missing: [${missing.join(', ')}]`, fields: missing } };
        return { type: def.name, values };
      }
      if (!rid) return { type: def.name, error: { statusCode: 'MISSING_ARGUMENT', message: 'Id not specified in an update call', fields: [] } };
      if (!/^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$/.test(rid)) return { type: def.name, error: { statusCode: 'MALFORMED_ID', message: `${def.label} ID: id value of incorrect type: ${rid}`, fields: ['Id'] } };
      const rec = this.store.find(def.name, rid);
      if (!rec) return { type: def.name, id: rid, error: { statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: 'invalid cross reference id', fields: [] } };
      if (rec.IsDeleted) return { type: def.name, id: rec.Id, error: { statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] } };
      const fault = this.takeRecordFault(rec.Id);
      if (fault) return { type: def.name, id: rec.Id, error: { ...fault, fields: [] } };
      return { type: def.name, id: rec.Id, values };
    });
    const anyError = plans.some((p) => p.error);
    return {
      status: 200,
      body: plans.map((p) => {
        if (p.error) return { ...(p.id ? { id: p.id } : {}), success: false, errors: [p.error] };
        if (allOrNone && anyError) {
          return { ...(p.id ? { id: p.id } : {}), success: false, errors: [{ statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK', message: 'Record rolled back because not all records were valid and the request was using AllOrNone header', fields: [] }] };
        }
        if (op === 'create') return { id: this.store.insert(p.type, p.values!).Id, success: true, errors: [] };
        this.store.update(p.type, p.id!, p.values!);
        return { id: p.id, success: true, errors: [] };
      }),
    };
  }

  private collectionDelete(req: CrmRequest): CrmResponse {
    const ids = (req.query.get('ids') ?? '').split(',').filter(Boolean);
    if (ids.length === 0) return sfErr(400, 'MISSING_ARGUMENT', 'ids is required');
    if (ids.length > MAX_COLLECTION) return sfErr(400, 'EXCEEDED_ID_LIMIT', `record limit reached. cannot submit more than ${MAX_COLLECTION} records into this call`);
    const allOrNone = req.query.get('allOrNone') === 'true';
    const plans = ids.map((id) => {
      const type = this.store.typeOfId(id);
      const rec = type ? this.store.find(type, id) : undefined;
      if (!rec || !type) return { id, error: { statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: 'invalid cross reference id', fields: [] } };
      if (rec.IsDeleted) return { id: rec.Id, error: { statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] } };
      return { id: rec.Id, type };
    });
    const anyError = plans.some((p) => 'error' in p);
    return {
      status: 200,
      body: plans.map((p) => {
        if ('error' in p) return { id: p.id, success: false, errors: [p.error] };
        if (allOrNone && anyError) return { id: p.id, success: false, errors: [{ statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK', message: 'Record rolled back because not all records were valid and the request was using AllOrNone header', fields: [] }] };
        this.store.delete(p.type!, p.id);
        return { id: p.id, success: true, errors: [] };
      }),
    };
  }

  private collectionRetrieve(req: CrmRequest, ids: string[], fields: string[]): CrmResponse {
    const def = sobjectDef(req.params.type);
    if (!def) return NOT_FOUND();
    if (ids.length > 2000) return sfErr(400, 'EXCEEDED_ID_LIMIT', 'record limit reached. cannot submit more than 2000 records into this call');
    for (const n of fields) if (!fieldDef(def, n)) return sfErr(400, 'INVALID_FIELD', `No such column '${n}' on sobject of type ${def.name}`);
    const paths = fields.map((n) => ({ parts: [fieldDef(def, n)!.name] }));
    return {
      status: 200,
      body: ids.map((id) => {
        const rec = this.store.find(def.name, id);
        return rec && !rec.IsDeleted ? toRestRecord(this.store, this.base(req), def.name, rec, paths) : null;
      }),
    };
  }

  private collectionUpsert(req: CrmRequest): CrmResponse {
    const def = sobjectDef(req.params.type);
    if (!def) return NOT_FOUND();
    const ext = fieldDef(def, req.params.extField);
    if (!ext) return sfErr(404, 'NOT_FOUND', `Provided external ID field does not exist or is not accessible: ${req.params.extField}`);
    const body = this.json(req) as { records?: Record<string, unknown>[] };
    const records = body.records ?? [];
    if (records.length > MAX_COLLECTION) return sfErr(400, 'EXCEEDED_ID_LIMIT', `record limit reached. cannot submit more than ${MAX_COLLECTION} records into this call`);
    return {
      status: 200,
      body: records.map((raw) => {
        const { attributes: _a, ...fields } = raw;
        const key = fields[ext.name];
        try {
          const values = this.store.coerce(def.name, fields, ext.name === 'Id');
          const existing = this.store.list(def.name, false).find((r) => restValue(def.name, ext.name, r[ext.name]) === key);
          if (existing) {
            this.store.update(def.name, existing.Id, values);
            return { id: existing.Id, success: true, errors: [], created: false };
          }
          return { id: this.store.insert(def.name, values).Id, success: true, errors: [], created: true };
        } catch (e) {
          if (e instanceof SfFieldError) return { success: false, errors: [{ statusCode: e.statusCode, message: e.message, fields: e.fields }] };
          throw e;
        }
      }),
    };
  }
}

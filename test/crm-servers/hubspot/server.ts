import { randomBytes, randomUUID } from 'node:crypto';
import type http from 'node:http';
import {
  CallStats, close, FaultQueue, listen, parseForm, readBody, Router, sendResponse, sleep,
  type CrmRequest, type CrmResponse, type FaultSpec,
} from '../http-util';
import { runSearch, SearchError, type SearchRequest } from './search';
import { DEFAULT_PROPERTIES, HsValidationError, HubSpotStore, type HsObject, type HsProperty, type ObjectType } from './store';

export interface HubSpotServerOptions {
  /** Private-app tokens accepted as Bearer tokens; they never expire. */
  privateAppTokens?: string[];
  clientId?: string;
  clientSecret?: string;
  /** OAuth access-token lifetime (HubSpot: 30 minutes). */
  accessTokenTtlSeconds?: number;
  /** Calls per rolling 10 s per token (HubSpot Professional/Enterprise private apps: 190). */
  tenSecondLimit?: number;
  /** Calls per day per portal. */
  dailyLimit?: number;
  /** Search requests per second per token (HubSpot: 5). */
  searchPerSecond?: number;
  /** Added to every reply. */
  latencyMs?: number;
  /**
   * How a batch update that names ids the portal does not have (deleted, merged away) is answered:
   * 'multi-status' (207, the others written, the missing ids in `errors[].context.ids`) or
   * 'whole-batch' (the call refused with 404 OBJECT_NOT_FOUND naming the missing ids in
   * `context.ids`, nothing written), the two ways HubSpot has answered it.
   */
  batchUpdateMissing?: 'multi-status' | 'whole-batch';
}

interface AccessToken {
  expiresAt: number;
  valid: boolean;
  refreshToken?: string;
}

const MAX_BATCH = 100;
const MAX_LIST = 100;

const hsErr = (status: number, category: string, message: string, extra: Record<string, unknown> = {}): CrmResponse => ({
  status,
  body: { status: 'error', message, correlationId: randomUUID(), category, ...extra },
});

const rateLimitBody = (policyName: 'TEN_SECONDLY_ROLLING' | 'SECONDLY' | 'DAILY') => ({
  status: 'error',
  message: policyName === 'TEN_SECONDLY_ROLLING' ? 'You have reached your ten_secondly_rolling limit.' : policyName === 'SECONDLY' ? 'You have reached your secondly limit.' : 'You have reached your daily limit.',
  errorType: 'RATE_LIMIT',
  correlationId: randomUUID(),
  policyName,
});

function defaultFaultBody(status: number): unknown {
  switch (status) {
    case 429: return rateLimitBody('TEN_SECONDLY_ROLLING');
    case 401: return hsErr(401, 'EXPIRED_AUTHENTICATION', 'The OAuth token used to make this call expired 1 minute(s) ago.').body;
    case 502:
    case 503:
    case 504: return hsErr(status, 'SERVICE_UNAVAILABLE', 'The service is temporarily unavailable.').body;
    default: return hsErr(status, 'INTERNAL_ERROR', 'internal error').body;
  }
}

const TYPE_ALIASES: Record<string, ObjectType> = {
  contacts: 'contacts', contact: 'contacts', '0-1': 'contacts',
  companies: 'companies', company: 'companies', '0-2': 'companies',
  tickets: 'tickets', ticket: 'tickets', '0-5': 'tickets',
};

const SINGULAR: Record<ObjectType, string> = { contacts: 'contact', companies: 'company', tickets: 'ticket' };

/**
 * HubSpot-defined association types between the standard objects (the documented type ids):
 * the unlabeled default first, then the Primary label where the pair has one.
 */
const ASSOCIATION_TYPES: Record<string, { typeId: number; label: string | null }[]> = {
  'contacts>companies': [{ typeId: 279, label: null }, { typeId: 1, label: 'Primary' }],
  'companies>contacts': [{ typeId: 280, label: null }, { typeId: 2, label: 'Primary' }],
  'tickets>contacts': [{ typeId: 16, label: null }],
  'contacts>tickets': [{ typeId: 15, label: null }],
  'tickets>companies': [{ typeId: 26, label: null }, { typeId: 339, label: 'Primary' }],
  'companies>tickets': [{ typeId: 25, label: null }, { typeId: 340, label: 'Primary' }],
};

/** The object type at the other end of an association type id sent by `from`. */
function associationTarget(from: ObjectType, typeId: number): ObjectType | undefined {
  for (const [pair, types] of Object.entries(ASSOCIATION_TYPES)) {
    const [f, t] = pair.split('>') as [ObjectType, ObjectType];
    if (f === from && types.some((x) => x.typeId === typeId)) return t;
  }
  return undefined;
}

/**
 * A local HubSpot portal speaking CRM v3 (objects, batch, search, properties, groups),
 * associations v3/v4 and the OAuth v1 token endpoint, with HubSpot's rate limits and error bodies.
 * For tests and the demo only.
 */
export class HubSpotServer {
  readonly store = new HubSpotStore();
  readonly faults = new FaultQueue();
  readonly options: Required<HubSpotServerOptions>;
  private readonly callStats = new CallStats();
  private readonly router = new Router();
  private readonly tokens = new Map<string, AccessToken>();
  private readonly refreshTokens = new Map<string, { valid: boolean }>();
  private readonly authCodes = new Set<string>();
  private readonly windows = new Map<string, number[]>();
  private readonly searchWindows = new Map<string, number[]>();
  private dailyUsed = 0;
  private expireAfter: number | null = null;
  private server?: http.Server;
  url = '';

  constructor(options: HubSpotServerOptions = {}) {
    this.options = {
      privateAppTokens: options.privateAppTokens ?? ['pat-na1-earshot-test'],
      clientId: options.clientId ?? 'earshot-hubspot-app',
      clientSecret: options.clientSecret ?? 'earshot-hubspot-secret',
      accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 1800,
      tenSecondLimit: options.tenSecondLimit ?? 190,
      dailyLimit: options.dailyLimit ?? 625_000,
      searchPerSecond: options.searchPerSecond ?? 5,
      latencyMs: options.latencyMs ?? 0,
      batchUpdateMissing: options.batchUpdateMissing ?? 'multi-status',
    };
    this.routes();
  }

  /** Starts listening on 127.0.0.1; pass `url` as the client's `basePath`. */
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

  stats(): ReturnType<CallStats['snapshot']> & { dailyUsed: number } {
    return { ...this.callStats.snapshot(), dailyUsed: this.dailyUsed };
  }

  resetStats(): void {
    this.callStats.reset();
  }

  /** Every OAuth access token issued so far now answers 401 EXPIRED_AUTHENTICATION. */
  expireTokens(): void {
    for (const t of this.tokens.values()) t.expiresAt = Math.min(t.expiresAt, Date.now() - 60_000);
  }

  /** Lets `n` more authenticated calls succeed, then expires every OAuth token. */
  expireTokensAfterCalls(n: number): void {
    this.expireAfter = n;
  }

  /**
   * The next `times` requests that `match` answers are refused with `status` and HubSpot's error
   * body, `{"status": "error", "message", "correlationId", "category"}` (plus `extra`): the message
   * as HubSpot writes it ("Property values were not valid: [{…}]" quotes the values).
   */
  failCall(match: FaultSpec['match'], status: number, category: string, message: string, times = 1, extra: Record<string, unknown> = {}): void {
    this.faults.enqueue({ match, status, times, body: hsErr(status, category, message, extra).body });
  }

  /** Shorthand for a storm of 429s with the TEN_SECONDLY_ROLLING body HubSpot sends. */
  rateLimitStorm(times: number, opts: { retryAfter?: number; match?: FaultSpec['match']; policyName?: 'TEN_SECONDLY_ROLLING' | 'SECONDLY' | 'DAILY' } = {}): void {
    this.faults.enqueue({ match: opts.match, status: 429, times, retryAfter: opts.retryAfter, body: rateLimitBody(opts.policyName ?? 'TEN_SECONDLY_ROLLING') });
  }

  /** An authorization code as if a user had installed the app. */
  issueAuthorizationCode(): string {
    const code = randomUUID();
    this.authCodes.add(code);
    return code;
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
      reply = await this.dispatch(creq, m?.route);
    } catch (e) {
      if (e instanceof SyntaxError) reply = hsErr(400, 'VALIDATION_ERROR', `Invalid input JSON on line 1: ${e.message}`);
      else {
        console.error('[hubspot-server]', e);
        reply = { status: 500, body: defaultFaultBody(500) };
      }
    }
    this.callStats.record(creq.endpoint, reply.status);
    if (!res.destroyed) sendResponse(res, reply);
  }

  private async dispatch(req: CrmRequest, route?: { handler: (r: CrmRequest) => CrmResponse | Promise<CrmResponse>; label: string }): Promise<CrmResponse> {
    if (this.options.latencyMs) await sleep(this.options.latencyMs);
    const fault = this.faults.take(req);
    if (fault?.delayMs) await sleep(fault.delayMs);
    if (fault?.raw) return { status: 0, raw: fault.raw };
    if (fault?.status) {
      const headers = { ...fault.headers };
      if (fault.retryAfter !== undefined) headers['Retry-After'] = String(fault.retryAfter);
      return { status: fault.status, headers, body: fault.body ?? defaultFaultBody(fault.status) };
    }
    if (!route) return hsErr(404, 'OBJECT_NOT_FOUND', `No route found for ${req.method} ${req.path}`);
    if (req.path.startsWith('/oauth/')) {
      const reply = await route.handler(req);
      return fault?.rewrite ? fault.rewrite(reply, req) : reply;
    }

    const auth = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!auth) return hsErr(401, 'INVALID_AUTHENTICATION', 'Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview');
    if (!this.options.privateAppTokens.includes(auth)) {
      const t = this.tokens.get(auth);
      if (!t || !t.valid) return hsErr(401, 'INVALID_AUTHENTICATION', 'Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview');
      if (t.expiresAt <= Date.now()) {
        const mins = Math.max(1, Math.round((Date.now() - t.expiresAt) / 60_000));
        return hsErr(401, 'EXPIRED_AUTHENTICATION', `The OAuth token used to make this call expired ${mins} minute(s) ago.`);
      }
    }
    const isSearch = req.path.endsWith('/search');
    const now = Date.now();
    if (this.dailyUsed >= this.options.dailyLimit) return { status: 429, body: rateLimitBody('DAILY') };
    if (isSearch) {
      // Search has its own per-second limit and sends no rate-limit headers (HubSpot docs).
      const w = (this.searchWindows.get(auth) ?? []).filter((t) => t > now - 1000);
      if (w.length >= this.options.searchPerSecond) return { status: 429, body: rateLimitBody('SECONDLY') };
      w.push(now);
      this.searchWindows.set(auth, w);
    } else {
      const w = (this.windows.get(auth) ?? []).filter((t) => t > now - 10_000);
      if (w.length >= this.options.tenSecondLimit) return { status: 429, headers: this.limitHeaders(w.length), body: rateLimitBody('TEN_SECONDLY_ROLLING') };
      w.push(now);
      this.windows.set(auth, w);
    }
    this.dailyUsed++;
    if (this.expireAfter !== null && --this.expireAfter <= 0) {
      this.expireAfter = null;
      queueMicrotask(() => this.expireTokens());
    }
    const reply = await route.handler(req);
    if (!isSearch) reply.headers = { ...reply.headers, ...this.limitHeaders((this.windows.get(auth) ?? []).length) };
    return fault?.rewrite ? fault.rewrite(reply, req) : reply;
  }

  private limitHeaders(usedInWindow: number): Record<string, string> {
    return {
      'X-HubSpot-RateLimit-Daily': String(this.options.dailyLimit),
      'X-HubSpot-RateLimit-Daily-Remaining': String(Math.max(0, this.options.dailyLimit - this.dailyUsed)),
      'X-HubSpot-RateLimit-Interval-Milliseconds': '10000',
      'X-HubSpot-RateLimit-Max': String(this.options.tenSecondLimit),
      'X-HubSpot-RateLimit-Remaining': String(Math.max(0, this.options.tenSecondLimit - usedInWindow)),
    };
  }

  private routes(): void {
    const r = this.router;
    const wrap = (fn: (req: CrmRequest, type: ObjectType) => CrmResponse) => (req: CrmRequest): CrmResponse => {
      const raw = req.params.type ?? req.params.from;
      const type = raw === undefined ? 'contacts' : TYPE_ALIASES[raw.toLowerCase()];
      if (!type) return hsErr(400, 'VALIDATION_ERROR', `Unable to infer object type from: ${raw}`);
      try {
        return fn(req, type);
      } catch (e) {
        if (e instanceof HsValidationError) return hsErr(400, 'VALIDATION_ERROR', e.message);
        if (e instanceof SearchError) return hsErr(400, 'VALIDATION_ERROR', e.message);
        throw e;
      }
    };
    const O = '/crm/v3/objects/:type';
    const P = '/crm/v3/properties/:type';
    r.add('POST', '/oauth/v1/token', 'POST /oauth/v1/token', (q) => this.token(q));
    r.add('GET', '/oauth/v1/access-tokens/:token', 'GET /oauth/v1/access-tokens', (q) => this.tokenInfo(q));
    r.add('GET', O, 'GET /crm/v3/objects/:type', wrap((q, t) => this.listObjects(q, t)));
    r.add('POST', O, 'POST /crm/v3/objects/:type', wrap((q, t) => this.createObject(q, t)));
    r.add('POST', `${O}/search`, 'POST /crm/v3/objects/:type/search', wrap((q, t) => this.search(q, t)));
    r.add('POST', `${O}/batch/read`, 'POST /crm/v3/objects/:type/batch/read', wrap((q, t) => this.batchRead(q, t)));
    r.add('POST', `${O}/batch/create`, 'POST /crm/v3/objects/:type/batch/create', wrap((q, t) => this.batchCreate(q, t)));
    r.add('POST', `${O}/batch/update`, 'POST /crm/v3/objects/:type/batch/update', wrap((q, t) => this.batchUpdate(q, t)));
    r.add('POST', `${O}/batch/upsert`, 'POST /crm/v3/objects/:type/batch/upsert', wrap((q, t) => this.batchUpsert(q, t)));
    r.add('POST', `${O}/batch/archive`, 'POST /crm/v3/objects/:type/batch/archive', wrap((q, t) => this.batchArchive(q, t)));
    r.add('GET', `${O}/:id`, 'GET /crm/v3/objects/:type/:id', wrap((q, t) => this.getObject(q, t)));
    r.add('PATCH', `${O}/:id`, 'PATCH /crm/v3/objects/:type/:id', wrap((q, t) => this.updateObject(q, t)));
    r.add('DELETE', `${O}/:id`, 'DELETE /crm/v3/objects/:type/:id', wrap((q, t) => {
      const o = this.store.get(t, q.params.id);
      if (o) this.store.archive(t, o);
      return { status: 204 };
    }));
    r.add('GET', `${P}/groups`, 'GET /crm/v3/properties/:type/groups', wrap((_q, t) => ({ status: 200, body: { results: [...this.store.groups[t].values()].filter((g) => !g.archived) } })));
    r.add('POST', `${P}/groups`, 'POST /crm/v3/properties/:type/groups', wrap((q, t) => this.createGroup(q, t)));
    r.add('GET', `${P}/groups/:name`, 'GET /crm/v3/properties/:type/groups/:name', wrap((q, t) => {
      const g = this.store.groups[t].get(q.params.name);
      return g && !g.archived ? { status: 200, body: g } : hsErr(404, 'OBJECT_NOT_FOUND', `Unable to find property group ${q.params.name}`);
    }));
    r.add('PATCH', `${P}/groups/:name`, 'PATCH /crm/v3/properties/:type/groups/:name', wrap((q, t) => {
      const g = this.store.groups[t].get(q.params.name);
      if (!g) return hsErr(404, 'OBJECT_NOT_FOUND', `Unable to find property group ${q.params.name}`);
      const body = JSON.parse(q.rawBody || '{}') as Partial<{ label: string; displayOrder: number }>;
      Object.assign(g, { label: body.label ?? g.label, displayOrder: body.displayOrder ?? g.displayOrder });
      return { status: 200, body: g };
    }));
    r.add('DELETE', `${P}/groups/:name`, 'DELETE /crm/v3/properties/:type/groups/:name', wrap((q, t) => {
      const g = this.store.groups[t].get(q.params.name);
      if (g) g.archived = true;
      return { status: 204 };
    }));
    r.add('GET', P, 'GET /crm/v3/properties/:type', wrap((q, t) => ({
      status: 200,
      body: { results: [...this.store.properties[t].values()].filter((p) => p.archived === (q.query.get('archived') === 'true')) },
    })));
    r.add('POST', P, 'POST /crm/v3/properties/:type', wrap((q, t) => this.createProperty(q, t)));
    r.add('GET', `${P}/:name`, 'GET /crm/v3/properties/:type/:name', wrap((q, t) => {
      const p = this.store.properties[t].get(q.params.name);
      return p && !p.archived ? { status: 200, body: p } : hsErr(404, 'OBJECT_NOT_FOUND', `Unable to find property ${q.params.name}`);
    }));
    r.add('PATCH', `${P}/:name`, 'PATCH /crm/v3/properties/:type/:name', wrap((q, t) => this.updateProperty(q, t)));
    r.add('DELETE', `${P}/:name`, 'DELETE /crm/v3/properties/:type/:name', wrap((q, t) => {
      const p = this.store.properties[t].get(q.params.name);
      if (p) p.archived = true;
      return { status: 204 };
    }));
    r.add('POST', '/crm/v3/associations/:from/:to/batch/read', 'POST /crm/v3/associations/:from/:to/batch/read', wrap((q, t) => this.assocRead(q, t, 'v3')));
    r.add('POST', '/crm/v4/associations/:from/:to/batch/read', 'POST /crm/v4/associations/:from/:to/batch/read', wrap((q, t) => this.assocRead(q, t, 'v4')));
    r.add('POST', '/crm/v4/associations/:from/:to/batch/associate/default', 'POST /crm/v4/associations/:from/:to/batch/associate/default', wrap((q, t) => {
      const body = JSON.parse(q.rawBody || '{}') as { inputs?: { from: { id: string }; to: { id: string } }[] };
      const inputs = body.inputs ?? [];
      if (inputs.length > MAX_BATCH) return this.tooMany(inputs.length);
      const to = TYPE_ALIASES[q.params.to.toLowerCase()];
      if (!to || !ASSOCIATION_TYPES[`${t}>${to}`]) return hsErr(400, 'VALIDATION_ERROR', `Unable to infer object type from: ${q.params.to}`);
      const missing = inputs.flatMap((i) => this.missingEnds(t, String(i.from.id), to, String(i.to.id)));
      if (missing.length) return hsErr(400, 'VALIDATION_ERROR', missing.join(' '));
      for (const i of inputs) this.store.link(t, String(i.from.id), to, String(i.to.id));
      return { status: 200, body: { status: 'COMPLETE', results: inputs.flatMap((i) => this.defaultAssociations(t, String(i.from.id), to, String(i.to.id))), startedAt: new Date().toISOString(), completedAt: new Date().toISOString() } };
    }));
    r.add('GET', '/crm/v4/objects/:type/:id/associations/:toType', 'GET /crm/v4/objects/:type/:id/associations/:toType', wrap((q, t) => {
      const to = TYPE_ALIASES[q.params.toType.toLowerCase()];
      if (!to) return hsErr(400, 'VALIDATION_ERROR', `Unable to infer object type from: ${q.params.toType}`);
      return { status: 200, body: { results: this.store.linked(t, q.params.id, to).map((id) => ({ toObjectId: Number(id), associationTypes: this.assocTypes(t, to) })) } };
    }));
    r.add('PUT', '/crm/v4/objects/:from/:fromId/associations/default/:to/:toId', 'PUT /crm/v4/objects/:from/:fromId/associations/default/:to/:toId', wrap((q, t) => {
      const to = TYPE_ALIASES[q.params.to.toLowerCase()];
      if (!to || !ASSOCIATION_TYPES[`${t}>${to}`]) return hsErr(400, 'VALIDATION_ERROR', `Unable to infer object type from: ${q.params.to}`);
      const missing = this.missingEnds(t, q.params.fromId, to, q.params.toId);
      if (missing.length) return hsErr(400, 'VALIDATION_ERROR', missing.join(' '));
      this.store.link(t, q.params.fromId, to, q.params.toId);
      return { status: 200, body: { status: 'COMPLETE', results: this.defaultAssociations(t, q.params.fromId, to, q.params.toId), startedAt: new Date().toISOString(), completedAt: new Date().toISOString() } };
    }));
  }

  // ---- OAuth ----------------------------------------------------------------------------------

  private token(req: CrmRequest): CrmResponse {
    const p = parseForm(req.rawBody, req.headers['content-type']);
    if (p.client_id !== this.options.clientId || p.client_secret !== this.options.clientSecret) {
      return { status: 400, body: { status: 'BAD_CLIENT_ID', message: 'missing or invalid client_id or client_secret', correlationId: randomUUID() } };
    }
    let refresh: string;
    if (p.grant_type === 'authorization_code') {
      if (!this.authCodes.delete(p.code ?? '')) return { status: 400, body: { status: 'BAD_AUTH_CODE', message: 'missing or unknown auth code', correlationId: randomUUID() } };
      refresh = randomUUID();
      this.refreshTokens.set(refresh, { valid: true });
    } else if (p.grant_type === 'refresh_token') {
      if (!this.refreshTokens.get(p.refresh_token ?? '')?.valid) return { status: 400, body: { status: 'BAD_REFRESH_TOKEN', message: 'missing or unknown refresh token', correlationId: randomUUID() } };
      refresh = p.refresh_token;
    } else {
      return { status: 400, body: { status: 'BAD_GRANT_TYPE', message: 'grant_type must be authorization_code or refresh_token', correlationId: randomUUID() } };
    }
    const access = `CJ${randomBytes(30).toString('base64url')}`;
    this.tokens.set(access, { expiresAt: Date.now() + this.options.accessTokenTtlSeconds * 1000, valid: true, refreshToken: refresh });
    return { status: 200, body: { token_type: 'bearer', refresh_token: refresh, access_token: access, expires_in: this.options.accessTokenTtlSeconds } };
  }

  private tokenInfo(req: CrmRequest): CrmResponse {
    const t = this.tokens.get(req.params.token);
    if (!t || !t.valid || t.expiresAt <= Date.now()) return { status: 404, body: { status: 'error', message: 'The access token is expired or invalid', correlationId: randomUUID(), category: 'EXPIRED_AUTHENTICATION' } };
    return {
      status: 200,
      body: {
        token: req.params.token, user: 'earshot@example.com', hub_domain: 'earshot-dev.example.com', scopes: ['crm.objects.contacts.read', 'crm.objects.contacts.write', 'crm.objects.companies.read', 'crm.objects.companies.write', 'tickets', 'crm.schemas.contacts.write', 'crm.schemas.companies.write'],
        hub_id: this.store.portalId, app_id: 1_234_567, expires_in: Math.round((t.expiresAt - Date.now()) / 1000), user_id: 7_001, token_type: 'access',
      },
    };
  }

  // ---- objects -------------------------------------------------------------------------------

  private view(type: ObjectType, o: HsObject, requested: string[] | undefined, associations?: string[]): Record<string, unknown> {
    const names = requested?.length ? requested : DEFAULT_PROPERTIES[type];
    const properties: Record<string, string | null> = {};
    for (const n of names) if (this.store.properties[type].has(n)) properties[n] = o.properties[n] ?? null;
    const out: Record<string, unknown> = { id: o.id, properties, createdAt: new Date(o.createdAt).toISOString(), updatedAt: new Date(o.updatedAt).toISOString(), archived: o.archived };
    if (o.archivedAt) out.archivedAt = new Date(o.archivedAt).toISOString();
    if (associations?.length) {
      const assoc: Record<string, unknown> = {};
      for (const a of associations) {
        const to = TYPE_ALIASES[a.toLowerCase()];
        if (!to || to === type) continue;
        const ids = this.store.linked(type, o.id, to);
        if (ids.length) assoc[to] = { results: ids.map((id) => ({ id, type: `${SINGULAR[type]}_to_${SINGULAR[to]}` })) };
      }
      if (Object.keys(assoc).length) out.associations = assoc;
    }
    return out;
  }

  private csv(req: CrmRequest, name: string): string[] | undefined {
    const all = req.query.getAll(name).flatMap((v) => v.split(',')).filter(Boolean);
    return all.length ? all : undefined;
  }

  private listObjects(req: CrmRequest, type: ObjectType): CrmResponse {
    const limit = Math.min(MAX_LIST, Number(req.query.get('limit') ?? 10));
    const after = req.query.get('after');
    const archived = req.query.get('archived') === 'true';
    let rows = this.store.list(type, archived).sort((a, b) => Number(a.id) - Number(b.id));
    if (after) rows = rows.filter((o) => Number(o.id) >= Number(after));
    const page = rows.slice(0, limit);
    const body: Record<string, unknown> = { results: page.map((o) => this.view(type, o, this.csv(req, 'properties'), this.csv(req, 'associations'))) };
    if (rows.length > page.length) {
      const next = rows[page.length].id;
      body.paging = { next: { after: next, link: `${this.url}/crm/v3/objects/${type}?after=${next}` } };
    }
    return { status: 200, body };
  }

  private notFound(type: ObjectType, id: string): CrmResponse {
    return hsErr(404, 'OBJECT_NOT_FOUND', 'Object not found.  objectId are usually numeric.', { context: { id: [id] } });
  }

  private getObject(req: CrmRequest, type: ObjectType): CrmResponse {
    const idProperty = req.query.get('idProperty');
    const archived = req.query.get('archived') === 'true';
    const o = idProperty
      ? this.store.list(type, archived).find((x) => (x.properties[idProperty] ?? '').toLowerCase() === req.params.id.toLowerCase())
      : this.store.get(type, req.params.id, archived);
    if (!o) return this.notFound(type, req.params.id);
    return { status: 200, body: this.view(type, o, this.csv(req, 'properties'), this.csv(req, 'associations')) };
  }

  private createObject(req: CrmRequest, type: ObjectType): CrmResponse {
    const body = JSON.parse(req.rawBody || '{}') as { properties?: Record<string, unknown> };
    const props = this.store.validate(type, body.properties ?? {});
    const dup = this.duplicateEmail(type, props);
    if (dup) return hsErr(409, 'CONFLICT', `Contact already exists. Existing ID: ${dup}`);
    this.store.validateCreate(type, props);
    return { status: 201, body: this.view(type, this.store.create(type, props), Object.keys(props)) };
  }

  private duplicateEmail(type: ObjectType, props: Record<string, string | null>, self?: string): string | undefined {
    if (type !== 'contacts' || !props.email) return undefined;
    return this.store.list(type).find((o) => o.id !== self && o.properties.email?.toLowerCase() === props.email!.toLowerCase())?.id;
  }

  private updateObject(req: CrmRequest, type: ObjectType): CrmResponse {
    const o = this.store.get(type, req.params.id);
    if (!o) return this.notFound(type, req.params.id);
    const body = JSON.parse(req.rawBody || '{}') as { properties?: Record<string, unknown> };
    const props = this.store.validate(type, body.properties ?? {});
    this.store.validateUnique(type, props, o.id);
    this.store.update(type, o, props);
    return { status: 200, body: this.view(type, o, Object.keys(props)) };
  }

  private search(req: CrmRequest, type: ObjectType): CrmResponse {
    const body = JSON.parse(req.rawBody || '{}') as SearchRequest;
    const r = runSearch(this.store, type, body);
    const out: Record<string, unknown> = { total: r.total, results: r.results.map((o) => this.view(type, o, body.properties)) };
    if (r.nextAfter) out.paging = { next: { after: r.nextAfter, link: `?after=${r.nextAfter}` } };
    return { status: 200, body: out };
  }

  private tooMany(n: number): CrmResponse {
    return hsErr(400, 'VALIDATION_ERROR', `Too many inputs: ${n}. The maximum number of inputs is ${MAX_BATCH}.`);
  }

  private batchEnvelope(results: unknown[], errors: unknown[], okStatus: number): CrmResponse {
    const times = { startedAt: new Date().toISOString(), completedAt: new Date().toISOString() };
    if (errors.length) return { status: 207, body: { status: 'COMPLETE', results, numErrors: errors.length, errors, ...times } };
    return { status: okStatus, body: { status: 'COMPLETE', results, ...times } };
  }

  private batchRead(req: CrmRequest, type: ObjectType): CrmResponse {
    const body = JSON.parse(req.rawBody || '{}') as { inputs?: { id: string }[]; properties?: string[]; idProperty?: string };
    const inputs = body.inputs ?? [];
    if (inputs.length > MAX_BATCH) return this.tooMany(inputs.length);
    const results: unknown[] = [];
    const missing: string[] = [];
    for (const { id } of inputs) {
      const o = body.idProperty
        ? this.store.list(type).find((x) => (x.properties[body.idProperty!] ?? '').toLowerCase() === String(id).toLowerCase())
        : this.store.get(type, String(id));
      if (o) results.push(this.view(type, o, body.properties));
      else missing.push(String(id));
    }
    const label = SINGULAR[type].toUpperCase();
    const errors = missing.length
      ? [{ status: 'error', category: 'OBJECT_NOT_FOUND', message: `Could not get some ${label} objects, they may be deleted or not exist. Check that ids are valid.`, context: { ids: missing } }]
      : [];
    return this.batchEnvelope(results, errors, 200);
  }

  private batchCreate(req: CrmRequest, type: ObjectType): CrmResponse {
    const body = JSON.parse(req.rawBody || '{}') as { inputs?: { properties?: Record<string, unknown>; associations?: { to: { id: string }; types?: { associationTypeId: number }[] }[] }[] };
    const inputs = body.inputs ?? [];
    if (inputs.length > MAX_BATCH) return this.tooMany(inputs.length);
    const validated = inputs.map((i) => this.store.validate(type, i.properties ?? {}));
    for (const props of validated) this.store.validateCreate(type, props);
    const created = validated.map((props, k) => {
      const o = this.store.create(type, props);
      for (const a of inputs[k].associations ?? []) this.link(type, o.id, a.to.id, a.types);
      return this.view(type, o, Object.keys(props));
    });
    return this.batchEnvelope(created, [], 201);
  }

  /**
   * All-or-nothing on invalid values (400); missing ids per record (207) or for the whole batch (404), as `batchUpdateMissing` says.
   * A merged-away id updates the record it was merged into, as a read of it answers that record
   * (HubSpot documents the reads; for batch update it says nothing, and this is the case a client must survive).
   */
  private batchUpdate(req: CrmRequest, type: ObjectType): CrmResponse {
    const body = JSON.parse(req.rawBody || '{}') as { inputs?: { id: string; properties?: Record<string, unknown> }[] };
    const inputs = body.inputs ?? [];
    if (inputs.length > MAX_BATCH) return this.tooMany(inputs.length);
    const ids = inputs.map((i) => String(i.id));
    const dups = ids.filter((id, k) => ids.indexOf(id) !== k);
    if (dups.length) return hsErr(400, 'VALIDATION_ERROR', `Duplicate IDs found in batch input: [${[...new Set(dups)].join(', ')}]. IDs must be unique`);
    const validated = inputs.map((i) => this.store.validate(type, i.properties ?? {}));
    inputs.forEach((input, k) => this.store.validateUnique(type, validated[k], String(input.id)));
    const results: unknown[] = [];
    const missing: string[] = [];
    if (this.options.batchUpdateMissing === 'whole-batch') {
      const gone = ids.filter((id) => !this.store.get(type, id));
      if (gone.length) {
        return hsErr(404, 'OBJECT_NOT_FOUND', `Could not get some ${SINGULAR[type].toUpperCase()} objects, they may be deleted or not exist. Check that ids are valid.`, { context: { ids: gone } });
      }
    }
    inputs.forEach((input, k) => {
      const o = this.store.get(type, String(input.id));
      if (!o) { missing.push(String(input.id)); return; }
      this.store.update(type, o, validated[k]);
      results.push(this.view(type, o, Object.keys(validated[k])));
    });
    const errors = missing.length
      ? [{ status: 'error', category: 'OBJECT_NOT_FOUND', message: `Could not get some ${SINGULAR[type].toUpperCase()} objects, they may be deleted or not exist. Check that ids are valid.`, context: { ids: missing } }]
      : [];
    return this.batchEnvelope(results, errors, 200);
  }

  /**
   * Creates or updates records found by a unique property (`idProperty`, which must be declared
   * `hasUniqueValue`; contacts also take `email`). All-or-nothing on invalid input (400); each
   * result says whether it was `new`. The value in `id` is written to `idProperty` on create.
   */
  private batchUpsert(req: CrmRequest, type: ObjectType): CrmResponse {
    const body = JSON.parse(req.rawBody || '{}') as { inputs?: { idProperty?: string; id?: string; properties?: Record<string, unknown>; objectWriteTraceId?: string }[] };
    const inputs = body.inputs ?? [];
    if (inputs.length > MAX_BATCH) return this.tooMany(inputs.length);
    for (const i of inputs) {
      if (!i.idProperty) return hsErr(400, 'VALIDATION_ERROR', 'idProperty is required for upsert');
      if (i.id === undefined || i.id === null || String(i.id) === '') return hsErr(400, 'VALIDATION_ERROR', 'id is required for upsert');
      const def = this.store.properties[type].get(i.idProperty);
      if (!def || def.archived) return hsErr(400, 'VALIDATION_ERROR', `Property "${i.idProperty}" does not exist`);
      if (!def.hasUniqueValue && !(type === 'contacts' && i.idProperty === 'email')) {
        return hsErr(400, 'VALIDATION_ERROR', `${i.idProperty} is not a unique identifier property for ${type}; set hasUniqueValue on the property to upsert on it`);
      }
    }
    const keys = inputs.map((i) => `${i.idProperty}=${String(i.id)}`);
    const dups = keys.filter((k, n) => keys.indexOf(k) !== n);
    if (dups.length) return hsErr(400, 'VALIDATION_ERROR', `Duplicate IDs found in batch input: [${[...new Set(dups)].join(', ')}]. IDs must be unique`);
    const plan = inputs.map((i) => {
      const id = String(i.id);
      const props = this.store.validate(type, { ...i.properties, [i.idProperty!]: id });
      const existing = i.idProperty === 'email'
        ? this.store.list(type).find((o) => o.properties.email?.toLowerCase() === id.toLowerCase())
        : this.store.findByUnique(type, i.idProperty!, id);
      if (existing) this.store.validateUnique(type, props, existing.id);
      else this.store.validateCreate(type, props);
      return { props, existing, traceId: i.objectWriteTraceId };
    });
    const results = plan.map(({ props, existing, traceId }) => {
      const o = existing ? this.store.update(type, existing, props) : this.store.create(type, props);
      return { ...this.view(type, o, Object.keys(props)), new: !existing, ...(traceId ? { objectWriteTraceId: traceId } : {}) };
    });
    return this.batchEnvelope(results, [], 200);
  }

  private batchArchive(req: CrmRequest, type: ObjectType): CrmResponse {
    const body = JSON.parse(req.rawBody || '{}') as { inputs?: { id: string }[] };
    const inputs = body.inputs ?? [];
    if (inputs.length > MAX_BATCH) return this.tooMany(inputs.length);
    for (const { id } of inputs) {
      const o = this.store.get(type, String(id));
      if (o) this.store.archive(type, o);
    }
    return { status: 204 };
  }

  // ---- properties ----------------------------------------------------------------------------

  private createGroup(req: CrmRequest, type: ObjectType): CrmResponse {
    const body = JSON.parse(req.rawBody || '{}') as { name?: string; label?: string; displayOrder?: number };
    if (!body.name || !body.label) return hsErr(400, 'VALIDATION_ERROR', 'Property group name and label are required');
    const existing = this.store.groups[type].get(body.name);
    if (existing && !existing.archived) {
      return hsErr(409, 'OBJECT_ALREADY_EXISTS', `A property group named '${body.name}' already exists.`, { subCategory: 'PropertyGroupError.GROUP_ALREADY_EXISTS', context: { name: [body.name] } });
    }
    const g = { name: body.name, label: body.label, displayOrder: body.displayOrder ?? -1, archived: false };
    this.store.groups[type].set(g.name, g);
    return { status: 201, body: g };
  }

  private createProperty(req: CrmRequest, type: ObjectType): CrmResponse {
    const body = JSON.parse(req.rawBody || '{}') as Partial<HsProperty>;
    const missing = ['name', 'label', 'type', 'fieldType', 'groupName'].filter((k) => !body[k as keyof HsProperty]);
    if (missing.length) return hsErr(400, 'VALIDATION_ERROR', `Missing required fields: ${missing.join(', ')}`);
    if (!['string', 'number', 'datetime', 'date', 'enumeration', 'bool'].includes(String(body.type))) return hsErr(400, 'VALIDATION_ERROR', `Invalid property type: ${String(body.type)}`);
    const existing = this.store.properties[type].get(body.name!);
    if (existing && !existing.archived) {
      return hsErr(409, 'OBJECT_ALREADY_EXISTS', `Property named '${body.name}' already exists.`, { subCategory: 'PropertyValidationError.PROPERTY_ALREADY_EXISTS', context: { name: [body.name] } });
    }
    const group = this.store.groups[type].get(body.groupName!);
    if (!group || group.archived) return hsErr(400, 'VALIDATION_ERROR', `Property group ${body.groupName} does not exist`);
    const prop = this.store.defineProperty(type, body as HsProperty);
    return { status: 201, body: prop };
  }

  private updateProperty(req: CrmRequest, type: ObjectType): CrmResponse {
    const p = this.store.properties[type].get(req.params.name);
    if (!p || p.archived) return hsErr(404, 'OBJECT_NOT_FOUND', `Unable to find property ${req.params.name}`);
    if (p.modificationMetadata.readOnlyDefinition) return hsErr(400, 'VALIDATION_ERROR', `Property ${p.name} is a HubSpot-defined read-only property`);
    const body = JSON.parse(req.rawBody || '{}') as Partial<HsProperty>;
    const { name: _n, ...rest } = body;
    Object.assign(p, rest, { updatedAt: new Date().toISOString() });
    return { status: 200, body: p };
  }

  // ---- associations ----------------------------------------------------------------------------

  /** An association given at create time: its type id names the target object (contact↔company without one). */
  private link(from: ObjectType, fromId: string, toId: string, types?: { associationTypeId: number }[]): void {
    const to = types?.length ? associationTarget(from, Number(types[0]!.associationTypeId)) : from === 'contacts' ? 'companies' : from === 'companies' ? 'contacts' : undefined;
    if (!to) throw new HsValidationError([{ isValid: false, message: `association type ${types?.[0]?.associationTypeId} is not valid from ${from}`, error: 'INVALID_ASSOCIATION_TYPE', name: 'associations' }]);
    this.store.link(from, fromId, to, toId);
  }

  private assocTypes(from: ObjectType, to: ObjectType): { category: string; typeId: number; label: string | null }[] {
    return (ASSOCIATION_TYPES[`${from}>${to}`] ?? []).map((t) => ({ category: 'HUBSPOT_DEFINED', ...t }));
  }

  /** Messages for ends of an association that do not exist (HubSpot refuses to link them). */
  private missingEnds(from: ObjectType, fromId: string, to: ObjectType, toId: string): string[] {
    const out: string[] = [];
    if (!this.store.get(from, fromId)) out.push(`${SINGULAR[from]} ${fromId} was not found.`);
    if (!this.store.get(to, toId)) out.push(`${SINGULAR[to]} ${toId} was not found.`);
    return out;
  }

  /** What a default association creates: the unlabeled type in both directions. */
  private defaultAssociations(from: ObjectType, fromId: string, to: ObjectType, toId: string): Record<string, unknown>[] {
    const spec = (f: ObjectType, t: ObjectType) => ({ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: ASSOCIATION_TYPES[`${f}>${t}`]![0]!.typeId });
    return [
      { from: { id: fromId }, to: { id: toId }, associationSpec: spec(from, to) },
      { from: { id: toId }, to: { id: fromId }, associationSpec: spec(to, from) },
    ];
  }

  private assocRead(req: CrmRequest, from: ObjectType, version: 'v3' | 'v4'): CrmResponse {
    const to = TYPE_ALIASES[req.params.to.toLowerCase()];
    if (!to) return hsErr(400, 'VALIDATION_ERROR', `Unable to infer object type from: ${req.params.to}`);
    const body = JSON.parse(req.rawBody || '{}') as { inputs?: { id: string }[] };
    const inputs = body.inputs ?? [];
    if (inputs.length > (version === 'v4' ? 1000 : MAX_BATCH)) return this.tooMany(inputs.length);
    const results: unknown[] = [];
    const errors: unknown[] = [];
    for (const { id } of inputs) {
      const ids = to === from ? [] : this.store.linked(from, String(id), to);
      if (!ids.length) {
        errors.push({ status: 'error', category: 'OBJECT_NOT_FOUND', subCategory: 'crm.associations.NO_ASSOCIATIONS_FOUND', context: { fromObjectId: [String(id)] }, message: `No ${to} is associated with ${SINGULAR[from]} ${id}.` });
        continue;
      }
      results.push(version === 'v4'
        ? { from: { id: String(id) }, to: ids.map((t) => ({ toObjectId: Number(t), associationTypes: this.assocTypes(from, to) })) }
        : { from: { id: String(id) }, to: ids.map((t) => ({ id: t, type: `${SINGULAR[from]}_to_${SINGULAR[to]}` })) });
    }
    return this.batchEnvelope(results, errors, 200);
  }
}

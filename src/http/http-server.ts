import { randomUUID, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HeaderMap, type ApolloServer } from '@apollo/server';
import type { AuthService, Principal } from '../auth/auth.service';
import type { AccessLine } from '../graphql/context';
import type { GraphQLContext } from '../graphql/context';
import { EXPLORER_ASSET_PREFIX, sendExplorerAsset, sendExplorerPage, wantsExplorerPage } from '../graphql/explorer';
import { applyCors } from './cors';
import type { TrustedDocuments } from '../graphql/trusted-documents';
import type { Loaders } from '../graphql/loaders';
import type { IngestService } from '../interactions/ingest.service';
import { AppError } from '../shared/app-error';
import { CONSOLE_PATH, serveConsole } from './console.static';
import { loopTurns } from '../shared/loop-turns';
import { requestContext } from '../shared/request-context';
import { OperationSlots } from './operation-slots';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';

export interface HttpDeps {
  log: Logger;
  metrics: Metrics;
  auth: AuthService;
  /** null when the api role is off */
  apollo: ApolloServer<GraphQLContext> | null;
  makeLoaders: (principal: Principal | null) => Loaders;
  /** null when the ingest role is off */
  ingest: IngestService | null;
  ingestMaxBytes: number;
  /** resolves to null when ready, or the reason it is not */
  readiness: () => Promise<string | null>;
  /** serve GraphiQL at GET /graphql (browsers) and /explorer */
  explorer?: boolean;
  /** EARSHOT_CORS_ORIGINS */
  corsOrigins?: readonly string[];
  /** EARSHOT_TRUSTED_DOCUMENTS with its manifest; null: any document */
  trustedDocuments?: TrustedDocuments | null;
  /** whether /metrics is served here, and the key it needs */
  metricsAccess: { onMainPort: boolean; key: string | null };
  /** one line per HTTP request (requestId, method, route, status, role, duration, bytes) */
  accessLog?: Logger;
  /** the built console's folder, or null when the console is off (EARSHOT_CONSOLE) */
  consoleDir: string | null;
  /** null while the process can do its work, else why not (a dead embedded PostgreSQL): /healthz says 503 */
  liveness?: () => string | null;
  /** GraphQL operations run at once, and how many may wait (EARSHOT_GRAPHQL_CONCURRENCY, _QUEUE_MAX) */
  graphqlSlots?: { concurrency: number; queueMax: number };
}

/**
 * What /readyz may tell anyone: a component's own words, never a driver's or broker's raw
 * error (hosts, ports, users), which stays in the log.
 */
export function publicReason(reason: string): string {
  const cut = reason.indexOf(': ');
  if (cut < 0) return reason;
  const tail = reason.slice(cut + 2);
  return tail.length <= 120 && /^[\w\s,.()-]*$/.test(tail) ? reason : `${reason.slice(0, cut)} (details in the log)`;
}

/** Prometheus text; with a key, only for `Authorization: Bearer <key>`. */
export async function serveMetrics(metrics: Metrics, key: string | null, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (key !== null) {
    const sent = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim() ?? '';
    const a = Buffer.from(sent);
    const b = Buffer.from(key);
    if (a.length !== b.length || !timingSafeEqual(a, b)) {
      res.setHeader('www-authenticate', 'Bearer');
      return sendJson(res, 401, { error: { code: 'UNAUTHENTICATED', message: 'metrics need Authorization: Bearer <EARSHOT_METRICS_KEY>' } });
    }
  }
  res.writeHead(200, { 'content-type': metrics.registry.contentType });
  res.end(await metrics.registry.metrics());
}

/** /metrics alone on its own port (EARSHOT_METRICS_PORT), for a scraper on a private network. */
export function createMetricsServer(metrics: Metrics, key: string | null): http.Server {
  return http.createServer((req, res) => {
    const url = parseTarget(req);
    if (!url) return badTarget(req, res);
    const path = url.pathname;
    if (path !== '/metrics') return sendJson(res, 404, { error: { code: 'NOT_FOUND', message: 'only /metrics is served on this port' } });
    serveMetrics(metrics, key, req, res).catch(() => {
      if (!res.headersSent) sendJson(res, 500, { error: { code: 'INTERNAL_SERVER_ERROR', message: 'Internal server error' } });
    });
  });
}

/**
 * The request's URL, or null when its target is not one: Node's parser lets through targets
 * such as `//` or `//host:99999` that `new URL` throws on, and a throw in a request listener is
 * an uncaught exception, which ends the process. The caller answers 400 instead.
 */
function parseTarget(req: IncomingMessage): URL | null {
  try {
    return new URL(req.url ?? '/', 'http://localhost');
  } catch {
    return null;
  }
}

/** The answer to a target `parseTarget` could not read; the connection is closed after it. */
function badTarget(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  res.setHeader('connection', 'close');
  sendJson(res, 400, { error: { code: 'BAD_USER_INPUT', message: 'the request target is not a valid path' } });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

const NDJSON_TYPES = new Set(['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines']);
const INGEST_ROLES = new Set(['admin', 'service', 'agent']);

/** The service's own HTTP server: GraphQL beside /ingest, health, readiness and metrics. */
export function createHttpServer(deps: HttpDeps): http.Server {
  return withTimeouts(http.createServer(requestHandler(deps)));
}

export interface StartingServer {
  server: http.Server;
  url: string;
  /** from now on every request is served by `deps` */
  attach(deps: HttpDeps): void;
}

/**
 * Listens before the database, the schema and Kafka are ready, so that an orchestrator sees a
 * live process at once after a restart: until `attach`, /healthz answers 200, /readyz 503 with
 * `phase()` as the reason, and everything else 503 SERVICE_UNAVAILABLE with Retry-After.
 */
export async function listenWhileStarting(port: number, host: string, phase: () => string): Promise<StartingServer> {
  let handler: http.RequestListener | null = null;
  const server = withTimeouts(
    http.createServer((req, res) => {
      if (handler) return handler(req, res);
      req.resume();
      const url = parseTarget(req);
      if (!url) return badTarget(req, res);
      const path = url.pathname;
      if (path === '/healthz') return sendJson(res, 200, { status: 'ok', starting: phase() });
      if (path === '/readyz') return sendJson(res, 503, { status: 'unavailable', reason: `starting: ${phase()}` });
      res.setHeader('retry-after', '1');
      sendJson(res, 503, { error: { code: 'SERVICE_UNAVAILABLE', message: `Earshot is starting (${phase()}); try again shortly` } });
    }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    server,
    url: `http://localhost:${address.port}`,
    attach(deps) {
      handler = requestHandler(deps);
    },
  };
}

function withTimeouts(server: http.Server): http.Server {
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = 120_000;
  return server;
}

function requestHandler(deps: HttpDeps): http.RequestListener {
  const { log, metrics } = deps;
  // Each operation in flight holds its rows, loaders and answer: without a bound, 200 concurrent
  // pages grew the heap past 800 MB and starved the pool (10 s connect timeouts).
  const slots = deps.graphqlSlots ? new OperationSlots(deps.graphqlSlots.concurrency, deps.graphqlSlots.queueMax) : null;
  if (slots) deps.metrics.watchGraphqlQueue(() => slots.waiting());
  return (req, res) => {
    const requestId = (typeof req.headers['x-request-id'] === 'string' && req.headers['x-request-id'].slice(0, 100)) || randomUUID();
    res.setHeader('x-request-id', requestId);
    const url = parseTarget(req);
    if (!url) return badTarget(req, res);
    const route = routeOf(url.pathname);
    const end = metrics.httpDuration.startTimer({ method: req.method ?? 'GET', route });
    const reqLog = log.child({ requestId });
    const store: { requestId: string; role?: string | null; bytesIn?: number } = { requestId };
    const t0 = performance.now();
    const written0 = req.socket.bytesWritten;
    res.on('finish', () => {
      end({ status: String(res.statusCode) });
      // The access log: one line per request; the route, never the query string (GET GraphQL
      // carries variables there) nor a path outside the known routes.
      deps.accessLog?.info(
        {
          requestId,
          method: req.method,
          route,
          status: res.statusCode,
          role: store.role ?? null,
          durationMs: Math.round((performance.now() - t0) * 10) / 10,
          bytesIn: store.bytesIn ?? Number(req.headers['content-length'] ?? 0),
          bytesOut: req.socket.bytesWritten - written0,
        },
        'http request',
      );
    });
    requestContext.run(store, () => handle(deps, slots, req, res, url, route, requestId, reqLog)).catch((err: unknown) => {
      if (err instanceof AppError) return sendJson(res, err.httpStatus, { error: { code: err.code, message: err.message } });
      // A client that hangs up mid-body is no fault of ours, and nothing of its request ran (a
      // body is read whole before any of it is used): not an error line with a stack to page on.
      if ((err as NodeJS.ErrnoException)?.code === 'ECONNRESET' && req.socket.destroyed) {
        reqLog.info({ route }, 'the client hung up before its request body was read whole; nothing of it was processed');
        return;
      }
      reqLog.error({ err }, 'unhandled error in HTTP handler');
      if (!res.headersSent) sendJson(res, 500, { error: { code: 'INTERNAL_SERVER_ERROR', message: 'Internal server error', requestId } });
      else res.destroy();
    });
  };
}

function routeOf(path: string): string {
  if (path === '/graphql') return 'graphql';
  if (path === '/explorer' || path.startsWith(EXPLORER_ASSET_PREFIX)) return 'explorer';
  if (path === '/ingest') return 'ingest';
  if (path === '/healthz' || path === '/readyz' || path === '/metrics') return path.slice(1);
  if (path === CONSOLE_PATH || path.startsWith(`${CONSOLE_PATH}/`)) return 'console';
  return 'other';
}

async function handle(
  deps: HttpDeps,
  slots: OperationSlots | null,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  route: string,
  requestId: string,
  log: Logger,
): Promise<void> {
  switch (route) {
    case 'healthz': {
      const problem = deps.liveness?.() ?? null;
      return sendJson(res, problem ? 503 : 200, problem ? { status: 'unhealthy', reason: problem } : { status: 'ok' });
    }
    case 'readyz': {
      const problem = await deps.readiness();
      if (problem) log.debug({ reason: problem }, 'not ready');
      return sendJson(res, problem ? 503 : 200, problem ? { status: 'unavailable', reason: publicReason(problem) } : { status: 'ready' });
    }
    case 'metrics':
      if (!deps.metricsAccess.onMainPort) return sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no route ${req.method} ${url.pathname}` } });
      return serveMetrics(deps.metrics, deps.metricsAccess.key, req, res);
    case 'ingest':
      return handleIngest(deps, req, res);
    case 'console':
      if (!deps.consoleDir) throw new AppError('NOT_FOUND', 'the console is off on this instance (EARSHOT_CONSOLE=on enables it)');
      return serveConsole(deps.consoleDir, req, res, url.pathname);
    case 'graphql':
      if (!deps.apollo) throw new AppError('NOT_FOUND', 'the api role is not enabled on this instance');
      if (applyCors(deps.corsOrigins ?? [], req, res)) return;
      if (deps.explorer && wantsExplorerPage(req, url)) return sendExplorerPage(res);
      return handleGraphql(deps, deps.apollo, slots, req, res, url, requestId, log);
    case 'explorer':
      if (!deps.apollo || !deps.explorer) throw new AppError('NOT_FOUND', 'the explorer is off on this instance (EARSHOT_EXPLORER=on turns it on)');
      if (url.pathname === '/explorer') return sendExplorerPage(res);
      if (!sendExplorerAsset(req, res, url.pathname.slice(EXPLORER_ASSET_PREFIX.length))) throw new AppError('NOT_FOUND', `no explorer file ${url.pathname}`);
      return;
    default:
      return sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no route ${req.method} ${url.pathname}` } });
  }
}

async function handleIngest(deps: HttpDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!deps.ingest) throw new AppError('NOT_FOUND', 'the ingest role is not enabled on this instance');
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST');
    return sendJson(res, 405, { error: { code: 'BAD_USER_INPUT', message: 'use POST with an NDJSON body' } });
  }
  const principal = await deps.auth.authenticate(req.headers);
  noteRole(principal);
  if (!principal) throw new AppError('UNAUTHENTICATED', 'authentication required: send X-API-Key or Authorization: Bearer');
  if (!principal.roles.some((r) => INGEST_ROLES.has(r))) throw new AppError('FORBIDDEN', `ingest needs one of the roles ${[...INGEST_ROLES].join(', ')}`);
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (!NDJSON_TYPES.has(type)) {
    req.resume();
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', `Content-Type must be application/x-ndjson (one JSON message per line), not ${JSON.stringify(type || 'none')}`);
  }
  const body = await readBody(req, deps.ingestMaxBytes, res, 'EARSHOT_INGEST_MAX_BYTES', restError);
  if (body === null) return;
  const result = await deps.ingest.ingestNdjson(body, 'http');
  sendJson(res, 200, result);
}

async function handleGraphql(
  deps: HttpDeps,
  apollo: ApolloServer<GraphQLContext>,
  slots: OperationSlots | null,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  requestId: string,
  log: Logger,
): Promise<void> {
  const headers = new HeaderMap();
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
  let body: unknown = undefined;
  if (req.method === 'POST') {
    const raw = await readBody(req, 2 * 1024 * 1024, res, 'the GraphQL request limit', graphqlError);
    if (raw === null) return;
    // JSON between systems is UTF-8 (RFC 8259): a decoder that replaced bad bytes with U+FFFD
    // would store, through ingestInteractions, text the client never sent; refused instead, as
    // an NDJSON line of such bytes is on /ingest.
    let text: string;
    try {
      text = utf8.decode(raw);
    } catch {
      return sendJson(res, 400, graphqlError('BAD_REQUEST', 'the request body is not valid UTF-8'));
    }
    if ((headers.get('content-type') ?? '').includes('json')) {
      try {
        body = text === '' ? {} : JSON.parse(text);
      } catch {
        return sendJson(res, 400, { errors: [{ message: 'the request body is not valid JSON', extensions: { code: 'BAD_REQUEST' } }] });
      }
    } else body = text;
  }
  let search = url.search;
  if (deps.trustedDocuments && deps.trustedDocuments.mode !== 'off') {
    const checked = trustedCheck(deps.trustedDocuments, req.method ?? 'GET', body, url);
    if (checked.error) return sendJson(res, checked.error.status, { errors: [{ message: checked.error.message, extensions: { code: checked.error.code } }] });
    if (checked.body !== undefined) body = checked.body;
    if (checked.search !== undefined) search = checked.search;
  }
  // A credential that does not verify is answered with 401 before any GraphQL work.
  let principal: Principal | null;
  try {
    principal = await deps.auth.authenticate(req.headers);
    noteRole(principal);
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    return sendJson(res, e.httpStatus, { errors: [{ message: e.message, extensions: { code: e.code } }] });
  }
  const store = requestContext.getStore();
  if (store) store.loopTurns = true;
  if (slots && !(await slots.enter())) {
    res.setHeader('retry-after', '1');
    return sendJson(res, 503, { errors: [{ message: 'too many GraphQL operations are waiting; try again shortly', extensions: { code: 'SERVICE_UNAVAILABLE' } }] });
  }
  try {
    // the operation's work (parse, validate, resolvers up to their first statement) in a turn of
    // the event loop of its own, as what it does with its rows (src/shared/loop-turns.ts)
    await loopTurns.take();
    // a client that hung up while its operation waited (a slot, a turn) gets no work done for it
    if (req.socket.destroyed) {
      log.debug('graphql client went away before its operation ran');
      return;
    }
    const accessLine: { fields: AccessLine | null } = { fields: null };
    const response = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: req.method ?? 'GET', headers, search, body },
      context: async () => ({ requestId, principal, loaders: deps.makeLoaders(principal), accessLine }),
    });
    for (const [k, v] of response.headers) res.setHeader(k, v);
    res.statusCode = response.status ?? 200;
    if (response.body.kind === 'complete') {
      // encoded once: the socket needs the bytes anyway, and their count is the access line's size
      const bytes = Buffer.from(response.body.string, 'utf8');
      if (accessLine.fields) deps.accessLog?.info({ ...accessLine.fields, bytes: bytes.length }, 'graphql operation');
      res.end(bytes);
      return;
    }
    for await (const chunk of response.body.asyncIterator) res.write(chunk);
    res.end();
    log.debug('graphql response streamed');
  } finally {
    slots?.leave();
  }
}

/** Applies the trusted-documents check to a POST body or GET query string. */
function trustedCheck(trusted: TrustedDocuments, method: string, body: unknown, url: URL): { error?: { status: number; code: string; message: string }; body?: unknown; search?: string } {
  if (method === 'POST') {
    if (!body || typeof body !== 'object' || Array.isArray(body)) return {};
    const r = trusted.check(body as Record<string, unknown>);
    return r.error ? { error: r.error } : { body: r.params };
  }
  if (method !== 'GET') return {};
  const params: Record<string, unknown> = {};
  const q = url.searchParams.get('query');
  if (q !== null) params.query = q;
  const ext = url.searchParams.get('extensions');
  if (ext !== null) {
    try {
      params.extensions = JSON.parse(ext);
    } catch {
      return {};
    }
  }
  const r = trusted.check(params);
  if (r.error) return { error: r.error };
  const next = new URLSearchParams(url.searchParams);
  if (typeof r.params?.query === 'string') next.set('query', r.params.query);
  return { search: `?${next.toString()}` };
}

function noteRole(principal: Principal | null): void {
  const store = requestContext.getStore();
  if (store) store.role = principal?.role ?? null;
}

/** An error answer in an endpoint's own shape. */
type ErrorBody = (code: string, message: string) => unknown;
/** `/ingest` and the other REST routes: `{ error: { code, message } }`. */
const restError: ErrorBody = (code, message) => ({ error: { code, message } });
/** `/graphql`: `{ errors: [{ message, extensions: { code } }] }`, as GraphQL clients read any answer. */
const graphqlError: ErrorBody = (code, message) => ({ errors: [{ message, extensions: { code } }] });

/**
 * Reads the body up to `limit` bytes; over it, answers 413 and returns null. A body in a
 * Content-Encoding (gzip, br, …) is answered 415 and not read: read as it is, compressed NDJSON
 * would come back as a rejection per line of binary noise, and a small compressed body can
 * expand past any limit. Both answers are in the endpoint's error shape (`errorBody`).
 */
function readBody(req: IncomingMessage, limit: number, res: ServerResponse, limitSetting: string, errorBody: ErrorBody): Promise<Buffer | null> {
  const encoding = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
  if (encoding !== '' && encoding !== 'identity') {
    res.setHeader('accept-encoding', 'identity');
    sendJson(res, 415, errorBody('UNSUPPORTED_MEDIA_TYPE', `Content-Encoding ${JSON.stringify(encoding)} is not accepted: send the body uncompressed`));
    req.resume();
    return Promise.resolve(null);
  }
  const tooLarge = () => {
    res.setHeader('connection', 'close');
    sendJson(res, 413, errorBody('PAYLOAD_TOO_LARGE', `the body is larger than the limit of ${limit} bytes (${limitSetting})`));
  };
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) {
    tooLarge();
    req.resume();
    return Promise.resolve(null);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        tooLarge();
        resolve(null);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      const store = requestContext.getStore();
      if (store) store.bytesIn = size;
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

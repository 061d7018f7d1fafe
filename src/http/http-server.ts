import { randomUUID, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HeaderMap, type ApolloServer } from '@apollo/server';
import { callerKey, type AuthService, type Principal } from '../auth/auth.service';
import { looksLikePii } from '../auth/pii.policy';
import type { AccessLine } from '../graphql/context';
import type { GraphQLContext } from '../graphql/context';
import { EXPLORER_ASSET_PREFIX, sendExplorerAsset, sendExplorerPage, wantsExplorerPage } from '../graphql/explorer';
import { applyCors } from './cors';
import type { TrustedDocuments } from '../graphql/trusted-documents';
import type { Loaders } from '../graphql/loaders';
import type { IngestService, IngestSummary } from '../interactions/ingest.service';
import { AppError } from '../shared/app-error';
import { jsonNestingBeyond } from '../shared/json-depth';
import { CONSOLE_PATH, serveConsole } from './console.static';
import { loopTurns } from '../shared/loop-turns';
import { requestContext } from '../shared/request-context';
import type { OperationSlots } from './operation-slots';
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
  /**
   * GraphQL operations run at once, and how many may wait (EARSHOT_GRAPHQL_CONCURRENCY, _QUEUE_MAX):
   * one instance shared with the WebSocket server, so queries over either share the bound
   */
  graphqlSlots?: OperationSlots;
  /** the server's connection, header-time and body-buffer limits; DEFAULT_HTTP_LIMITS when absent */
  httpLimits?: HttpLimits;
}

/** What one HTTP server holds for its clients at most (the EARSHOT_HTTP_* settings). */
export interface HttpLimits {
  /**
   * Open connections (EARSHOT_HTTP_MAX_CONNECTIONS), WebSocket subscriptions included; past it a
   * new connection is closed at once. Keep it below the process's file-descriptor limit (ulimit -n):
   * without a bound, 1,500 connections sending their headers a byte at a time against a limit of
   * 1,024 held 903 descriptors until Node's header time ran out (90 s), and any connection the
   * database pool or Kafka opened meanwhile needs a descriptor too.
   */
  maxConnections: number;
  /** how long a client may take to send its request line and headers (EARSHOT_HTTP_HEADERS_TIMEOUT_MS); then 408 and close */
  headersTimeoutMs: number;
  /**
   * Request bodies read into memory at once, in bytes, across all requests (EARSHOT_HTTP_BODY_BUFFER_BYTES),
   * counted from their Content-Length until their handler is done (answer written) or their
   * client gone; never below the largest one body (EARSHOT_INGEST_MAX_BYTES). A body that does not fit is answered 503 with Retry-After,
   * unread. Without it, anyone could hold 2 MiB per connection on /graphql before any credential
   * is checked (100 connections: 214 MB; requestTimeout lets them stay two minutes).
   */
  bodyBufferBytes: number;
}

export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({ maxConnections: 8_192, headersTimeoutMs: 20_000, bodyBufferBytes: 256 * 1024 * 1024 });

/** A whole request, body included, must have arrived within this long (Node's requestTimeout). */
const REQUEST_TIMEOUT_MS = 120_000;

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
export function createMetricsServer(metrics: Metrics, key: string | null, limits: HttpLimits = DEFAULT_HTTP_LIMITS): http.Server {
  // the same connection cap and header time as the main port: a scraper's port is reachable too
  return limitedServer(limits, (req, res) => {
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

const GRAPHQL_MAX_BODY_BYTES = 2 * 1024 * 1024;
/** The largest GraphQL body read from a caller without a credential (when authentication is on). */
const ANONYMOUS_MAX_BODY_BYTES = 64 * 1024;
/**
 * Levels of objects and arrays a GraphQL request body may nest. A deeper body is refused unread,
 * before authentication: JSON.parse of 2 MiB of `[` (a million levels) took 0.7-2.5 s. Far above
 * what any request needs, so that ingestInteractions still answers an entry whose metadata is
 * too deep (5,000 levels in test/integration/ingest-hostile.test.ts) by its position; up to this
 * depth JSON.parse costs what as many objects and arrays side by side cost.
 */
const GRAPHQL_MAX_JSON_DEPTH = 10_000;

const NDJSON_TYPES = new Set(['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines']);
const INGEST_ROLES = new Set(['admin', 'service', 'agent']);

/** The service's own HTTP server: GraphQL beside /ingest, health, readiness and metrics. */
export function createHttpServer(deps: HttpDeps): http.Server {
  return limitedServer(deps.httpLimits ?? DEFAULT_HTTP_LIMITS, requestHandler(deps));
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
export async function listenWhileStarting(port: number, host: string, phase: () => string, limits: HttpLimits = DEFAULT_HTTP_LIMITS): Promise<StartingServer> {
  let handler: http.RequestListener | null = null;
  const server = limitedServer(
    limits,
    (req, res) => {
      if (handler) return handler(req, res);
      req.resume();
      const url = parseTarget(req);
      if (!url) return badTarget(req, res);
      const path = url.pathname;
      if (path === '/healthz') return sendJson(res, 200, { status: 'ok', starting: phase() });
      if (path === '/readyz') return sendJson(res, 503, { status: 'unavailable', reason: `starting: ${phase()}` });
      res.setHeader('retry-after', '1');
      sendJson(res, 503, { error: { code: 'SERVICE_UNAVAILABLE', message: `Earshot is starting (${phase()}); try again shortly` } });
    },
  );
  await new Promise<void>((resolve, reject) => {
    // A HOST that names no host fails in the name lookup, not in listen: told as the listener's
    // failure (main.ts, one line) rather than a getaddrinfo stack trace
    const onError = (e: NodeJS.ErrnoException) => reject(e.syscall === 'getaddrinfo' ? Object.assign(e, { syscall: 'listen', address: host, port }) : e);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
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

function limitedServer(limits: HttpLimits, handler: http.RequestListener): http.Server {
  const headersTimeout = Math.min(limits.headersTimeoutMs, REQUEST_TIMEOUT_MS);
  // Node looks for connections past their header or request time only this often (30 s by
  // default, which let a 60 s header time hold a connection for 90 s)
  const server = http.createServer({ connectionsCheckingInterval: Math.max(100, Math.min(2_000, Math.floor(headersTimeout / 4))) }, handler);
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = headersTimeout;
  server.maxConnections = limits.maxConnections;
  return server;
}

/** Bytes of request bodies held in memory, against HttpLimits.bodyBufferBytes. */
class BodyBudget {
  private used = 0;
  constructor(private readonly max: number) {}

  /** One request's share: `hold` takes bytes while there is room; `release` gives back all it took (again: nothing). */
  forRequest(): BodyHold {
    let held = 0;
    return {
      hold: (bytes) => {
        if (this.used + bytes > this.max) return false;
        this.used += bytes;
        held += bytes;
        return true;
      },
      release: () => {
        this.used -= held;
        held = 0;
      },
    };
  }
}

interface BodyHold {
  hold(bytes: number): boolean;
  release(): void;
}

function requestHandler(deps: HttpDeps): http.RequestListener {
  const { log, metrics } = deps;
  // Each operation in flight holds its rows, loaders and answer: without a bound, 200 concurrent
  // pages grew the heap past 800 MB and starved the pool (10 s connect timeouts).
  const slots = deps.graphqlSlots ?? null;
  if (slots) deps.metrics.watchGraphqlQueue(() => slots.waiting());
  const bodies = new BodyBudget(Math.max((deps.httpLimits ?? DEFAULT_HTTP_LIMITS).bodyBufferBytes, deps.ingestMaxBytes, GRAPHQL_MAX_BODY_BYTES));
  return (req, res) => {
    const requestId = clientRequestId(req.headers['x-request-id']) ?? randomUUID();
    res.setHeader('x-request-id', requestId);
    const url = parseTarget(req);
    if (!url) return badTarget(req, res);
    const route = routeOf(url.pathname);
    const end = metrics.httpDuration.startTimer({ method: methodLabel(req.method), route });
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
    // a body is held until its request's handler is done with it, or its client is gone
    const body = bodies.forRequest();
    res.once('close', body.release);
    requestContext.run(store, () => handle(deps, slots, body, req, res, url, route, requestId, reqLog)).catch((err: unknown) => {
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
    }).finally(body.release);
  };
}

/**
 * The client's X-Request-Id when it is one: visible ASCII, cut to 100 characters. Node's parser
 * already refuses CR, LF and other control characters in a header; it passes spaces, tabs and
 * bytes 0x80–0xFF (UTF-8 read as Latin-1), which came back in the log as mojibake and split
 * log tools' fields: such an id is replaced by a fresh one. So is an id that is an email, or
 * holds one, or is a phone number as people write one (7 to 15 digits, `+`, brackets, dots, dashes,
 * nothing else): it went into every log line of the request and the access log, where no address
 * a client sends may go. Digits inside a token are no phone: a UUID ("…-1234-5678-…"), a hex trace
 * id, an AWS `Root=1-5759e988-…` or an 18-digit snowflake id read as one to looksLikePii: 18.7%
 * of random UUIDs and 3.7% of random hex trace ids were replaced (10,000 of each).
 */
function clientRequestId(sent: string | string[] | undefined): string | null {
  if (typeof sent !== 'string') return null;
  const id = sent.slice(0, 100);
  if (!/^[\x21-\x7e]+$/.test(id)) return null;
  return readsAsAddress(id) ? null : id;
}

function readsAsAddress(id: string): boolean {
  if (id.includes('@')) return looksLikePii(id);
  if (!/^\+?[\d()./-]+$/.test(id)) return false;
  const digits = id.replace(/\D/g, '').length;
  return digits >= 7 && digits <= 15;
}

/**
 * Node's parser takes some 35 methods (PROPFIND, MKCOL, M-SEARCH, …); as labels each was a series per
 * route, status and bucket: 29 requests without a credential added 405 lines to /metrics. The
 * methods Earshot answers are kept, the rest are `other`.
 */
const METHOD_LABELS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'OPTIONS']);

function methodLabel(method: string | undefined): string {
  return METHOD_LABELS.has(method ?? 'GET') ? (method ?? 'GET') : 'other';
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
  body: BodyHold,
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
      return handleIngest(deps, body, req, res);
    case 'console':
      if (!deps.consoleDir) throw new AppError('NOT_FOUND', 'the console is off on this instance (EARSHOT_CONSOLE=on enables it)');
      return serveConsole(deps.consoleDir, req, res, url.pathname);
    case 'graphql':
      if (!deps.apollo) throw new AppError('NOT_FOUND', 'the api role is not enabled on this instance');
      if (applyCors(deps.corsOrigins ?? [], req, res)) return;
      if (deps.explorer && wantsExplorerPage(req, url)) return sendExplorerPage(res);
      return handleGraphql(deps, deps.apollo, slots, body, req, res, url, requestId, log);
    case 'explorer':
      if (!deps.apollo || !deps.explorer) throw new AppError('NOT_FOUND', 'the explorer is off on this instance (EARSHOT_EXPLORER=on turns it on)');
      if (url.pathname === '/explorer') return sendExplorerPage(res);
      if (!sendExplorerAsset(req, res, url.pathname.slice(EXPLORER_ASSET_PREFIX.length))) throw new AppError('NOT_FOUND', `no explorer file ${url.pathname}`);
      return;
    default:
      return sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no route ${req.method} ${url.pathname}` } });
  }
}

async function handleIngest(deps: HttpDeps, held: BodyHold, req: IncomingMessage, res: ServerResponse): Promise<void> {
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
  const body = await readBody(req, deps.ingestMaxBytes, res, 'EARSHOT_INGEST_MAX_BYTES', restError, held);
  if (body === null) return;
  const result = await deps.ingest.ingestNdjson(body, 'http');
  await sendIngestSummary(res, result);
}

/** Rejections serialized per turn of the event loop when the answer has many. */
const ANSWER_SLICE = 1_000;

/**
 * `sendJson(res, 200, summary)`, byte for byte, with its rejections serialized a slice per turn
 * of the event loop: a body of 250,000 refused lines answers with 58–92 MB of JSON, which
 * JSON.stringify and its encoding made in one piece while every other request waited (0.2–0.46 s
 * measured for the string and its bytes alone).
 */
async function sendIngestSummary(res: ServerResponse, summary: IngestSummary): Promise<void> {
  const { accepted, duplicates, rejected } = summary;
  if (rejected.length <= ANSWER_SLICE) return sendJson(res, 200, summary);
  const parts: Buffer[] = [Buffer.from(`{"accepted":${JSON.stringify(accepted)},"duplicates":${JSON.stringify(duplicates)},"rejected":[`)];
  for (let i = 0; i < rejected.length; i += ANSWER_SLICE) {
    if (i > 0) await loopTurns.take();
    const slice = JSON.stringify(rejected.slice(i, i + ANSWER_SLICE));
    parts.push(Buffer.from(`${i > 0 ? ',' : ''}${slice.slice(1, -1)}`));
  }
  parts.push(Buffer.from(']}'));
  if (res.headersSent || res.destroyed) return;
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': parts.reduce((n, p) => n + p.length, 0) });
  for (const part of parts) res.write(part);
  res.end();
}

async function handleGraphql(
  deps: HttpDeps,
  apollo: ApolloServer<GraphQLContext>,
  slots: OperationSlots | null,
  held: BodyHold,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  requestId: string,
  log: Logger,
): Promise<void> {
  const headers = new HeaderMap();
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
  let body: unknown = undefined;
  let raw: Buffer | null = null;
  if (req.method === 'POST') {
    raw = await readBody(req, GRAPHQL_MAX_BODY_BYTES, res, 'the GraphQL request limit', graphqlError, held);
    if (raw === null) return;
  }
  // A credential that does not verify is answered with 401 before any GraphQL work, and before
  // the body is decoded or parsed: JSON.parse of 2 MiB of `{},{},…` costs about 0.4 s, which an
  // unauthenticated client could otherwise make every request spend.
  let principal: Principal | null;
  try {
    principal = await deps.auth.authenticate(req.headers);
    noteRole(principal);
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    return sendJson(res, e.httpStatus, { errors: [{ message: e.message, extensions: { code: e.code } }] });
  }
  // No credential where one is needed: an anonymous caller can do no more than ask what the API
  // is, which takes a small body; a larger one is refused unparsed.
  if (principal === null && raw !== null && raw.length > ANONYMOUS_MAX_BODY_BYTES) {
    return sendJson(res, 401, graphqlError('UNAUTHENTICATED', `authentication required for a request body over ${ANONYMOUS_MAX_BODY_BYTES / 1024} KiB: send X-API-Key or Authorization: Bearer`));
  }
  if (raw !== null) {
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
      if (jsonNestingBeyond(text, GRAPHQL_MAX_JSON_DEPTH) !== null) {
        return sendJson(res, 400, graphqlError('BAD_REQUEST', `the request body nests objects and arrays deeper than ${GRAPHQL_MAX_JSON_DEPTH} levels`));
      }
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
  const store = requestContext.getStore();
  if (store) store.loopTurns = true;
  const caller = callerKey(principal);
  if (slots && !(await slots.enter(caller))) {
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
    slots?.leave(caller);
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
 * expand past any limit. A Transfer-Encoding other than chunked (`gzip, chunked`: Node takes
 * the chunks off and passes the gzip on) is answered 501 for the same reason. A body the
 * process-wide budget has no room for (`held`, the request's share) is answered 503 with
 * Retry-After and not read. All answers are in the endpoint's error shape (`errorBody`).
 */
function readBody(req: IncomingMessage, limit: number, res: ServerResponse, limitSetting: string, errorBody: ErrorBody, held: BodyHold): Promise<Buffer | null> {
  const encoding = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
  if (encoding !== '' && encoding !== 'identity') {
    res.setHeader('accept-encoding', 'identity');
    sendJson(res, 415, errorBody('UNSUPPORTED_MEDIA_TYPE', `Content-Encoding ${JSON.stringify(encoding)} is not accepted: send the body uncompressed`));
    req.resume();
    return Promise.resolve(null);
  }
  const transfer = req.headers['transfer-encoding'];
  if (transfer !== undefined && transfer.trim().toLowerCase() !== 'chunked') {
    res.setHeader('connection', 'close');
    sendJson(res, 501, errorBody('NOT_IMPLEMENTED', `Transfer-Encoding ${JSON.stringify(transfer)} is not accepted: send the body with a Content-Length or as Transfer-Encoding: chunked alone`));
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
  const noRoom = () => {
    res.setHeader('connection', 'close');
    res.setHeader('retry-after', '1');
    sendJson(res, 503, errorBody('SERVICE_UNAVAILABLE', 'the server is reading as many request bodies as it may hold at once (EARSHOT_HTTP_BODY_BUFFER_BYTES); try again shortly'));
  };
  // a declared length is held whole at once: a client that sends it slowly holds it all along
  if (declared > 0 && !held.hold(declared)) {
    noRoom();
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
      // chunked: held as it comes
      if (size > declared && !held.hold(c.length)) {
        over = true;
        chunks.length = 0;
        noRoom();
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

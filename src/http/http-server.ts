import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HeaderMap, type ApolloServer } from '@apollo/server';
import type { AuthService, Principal } from '../auth/auth.service';
import type { GraphQLContext } from '../graphql/context';
import type { Loaders } from '../graphql/loaders';
import type { IngestService } from '../interactions/ingest.service';
import { AppError } from '../shared/app-error';
import { CONSOLE_PATH, serveConsole } from './console.static';
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
  /** the built console's folder, or null when the console is off (EARSHOT_CONSOLE) */
  consoleDir: string | null;
  /** null while the process can do its work, else why not (a dead embedded PostgreSQL): /healthz says 503 */
  liveness?: () => string | null;
  /** GraphQL operations run at once, and how many may wait (EARSHOT_GRAPHQL_CONCURRENCY, _QUEUE_MAX) */
  graphqlSlots?: { concurrency: number; queueMax: number };
}

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
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
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
  return (req, res) => {
    const requestId = (typeof req.headers['x-request-id'] === 'string' && req.headers['x-request-id'].slice(0, 100)) || randomUUID();
    res.setHeader('x-request-id', requestId);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = routeOf(url.pathname);
    const end = metrics.httpDuration.startTimer({ method: req.method ?? 'GET', route });
    const reqLog = log.child({ requestId });
    res.on('finish', () => {
      end({ status: String(res.statusCode) });
      if (route !== 'metrics' && route !== 'healthz') {
        reqLog.debug({ method: req.method, path: url.pathname, status: res.statusCode }, 'request');
      }
    });
    requestContext.run({ requestId }, () => handle(deps, slots, req, res, url, route, requestId, reqLog)).catch((err: unknown) => {
      if (err instanceof AppError) return sendJson(res, err.httpStatus, { error: { code: err.code, message: err.message } });
      reqLog.error({ err }, 'unhandled error in HTTP handler');
      if (!res.headersSent) sendJson(res, 500, { error: { code: 'INTERNAL_SERVER_ERROR', message: 'Internal server error', requestId } });
      else res.destroy();
    });
  };
}

function routeOf(path: string): string {
  if (path === '/graphql') return 'graphql';
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
      return sendJson(res, problem ? 503 : 200, problem ? { status: 'unavailable', reason: problem } : { status: 'ready' });
    }
    case 'metrics':
      res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
      res.end(await deps.metrics.registry.metrics());
      return;
    case 'ingest':
      return handleIngest(deps, req, res);
    case 'console':
      if (!deps.consoleDir) throw new AppError('NOT_FOUND', 'the console is off on this instance (EARSHOT_CONSOLE=on enables it)');
      return serveConsole(deps.consoleDir, req, res, url.pathname);
    case 'graphql':
      if (!deps.apollo) throw new AppError('NOT_FOUND', 'the api role is not enabled on this instance');
      return handleGraphql(deps, deps.apollo, slots, req, res, url, requestId, log);
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
  if (!principal) throw new AppError('UNAUTHENTICATED', 'authentication required: send X-API-Key or Authorization: Bearer');
  if (!INGEST_ROLES.has(principal.role)) throw new AppError('FORBIDDEN', `ingest needs one of the roles ${[...INGEST_ROLES].join(', ')}`);
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (!NDJSON_TYPES.has(type)) {
    req.resume();
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', `Content-Type must be application/x-ndjson (one JSON message per line), not ${JSON.stringify(type || 'none')}`);
  }
  const body = await readBody(req, deps.ingestMaxBytes, res);
  if (body === null) return;
  const result = await deps.ingest.ingestLines(body.toString('utf8').split('\n'), 'http');
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
    const raw = await readBody(req, 2 * 1024 * 1024, res);
    if (raw === null) return;
    const text = raw.toString('utf8');
    if ((headers.get('content-type') ?? '').includes('json')) {
      try {
        body = text === '' ? {} : JSON.parse(text);
      } catch {
        return sendJson(res, 400, { errors: [{ message: 'the request body is not valid JSON', extensions: { code: 'BAD_REQUEST' } }] });
      }
    } else body = text;
  }
  // A credential that does not verify is answered with 401 before any GraphQL work.
  let principal: Principal | null;
  try {
    principal = await deps.auth.authenticate(req.headers);
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    return sendJson(res, e.httpStatus, { errors: [{ message: e.message, extensions: { code: e.code } }] });
  }
  if (slots && !(await slots.enter())) {
    res.setHeader('retry-after', '1');
    return sendJson(res, 503, { errors: [{ message: 'too many GraphQL operations are waiting; try again shortly', extensions: { code: 'SERVICE_UNAVAILABLE' } }] });
  }
  try {
    const response = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: req.method ?? 'GET', headers, search: url.search, body },
      context: async () => ({ requestId, principal, loaders: deps.makeLoaders(principal) }),
    });
    for (const [k, v] of response.headers) res.setHeader(k, v);
    res.statusCode = response.status ?? 200;
    if (response.body.kind === 'complete') {
      res.end(response.body.string);
      return;
    }
    for await (const chunk of response.body.asyncIterator) res.write(chunk);
    res.end();
    log.debug('graphql response streamed');
  } finally {
    slots?.leave();
  }
}

/** Reads the body up to `limit` bytes; over it, answers 413 and returns null. */
function readBody(req: IncomingMessage, limit: number, res: ServerResponse): Promise<Buffer | null> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) {
    tooLarge(res, limit);
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
        tooLarge(res, limit);
        resolve(null);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

function tooLarge(res: ServerResponse, limit: number): void {
  res.setHeader('connection', 'close');
  sendJson(res, 413, { error: { code: 'PAYLOAD_TOO_LARGE', message: `the body is larger than the limit of ${limit} bytes (EARSHOT_INGEST_MAX_BYTES)` } });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

import path from 'node:path';

/**
 * Apollo Server hands a gateway's executor (graphql-jit's, src/graphql/jit.ts) a request context
 * built by `makeGatewayGraphQLRequestContext` (`@apollo/server`, dist/cjs/utils). Its
 * `response.http` is an object literal with a `status` getter and setter, closures over the
 * request: V8 gives every such object a map of its own, allocated in the old generation, and
 * those maps keep each request's young objects (its context, loaders, rows, answer) alive
 * through every young-generation collection until a full one. Measured with `--trace-gc-nvp`
 * on the customer page: about 21% of all it allocated survived each scavenge and was promoted
 * (10 MB a scavenge), against nothing in Apollo's schema mode; the same with a bare Apollo
 * server and an executor that ignores its argument.
 *
 * This replaces that one function, on Apollo's own module object (its request pipeline reads
 * the export at each call), with the same context whose `response.http` is an instance of a
 * class: the accessors live on its prototype and every instance shares one map. Everything
 * else is as Apollo builds it. Apollo's version is pinned in package.json; another version, or a
 * module of another shape, is left alone (the server logs a warning) and
 * `gateway-request-context.spec.ts` fails, so an upgrade re-checks this.
 */

type HeaderMapLike = Map<string, string>;
interface NewRequestContext {
  request: { query?: string; operationName?: string; variables?: unknown; extensions?: unknown; http?: { method: string; search: string; headers: HeaderMapLike } };
  response: { http: { headers: HeaderMapLike; status?: number } };
  [key: string]: unknown;
}

/** Apollo's `FetcherHeaders` view of a HeaderMap, as its own module writes it. */
class FetcherHeadersForHeaderMap {
  constructor(private readonly map: HeaderMapLike) {}
  append(name: string, value: string): void {
    const had = this.map.get(name);
    this.map.set(name, had !== undefined ? `${had}, ${value}` : value);
  }
  delete(name: string): void {
    this.map.delete(name);
  }
  get(name: string): string | null {
    return this.map.get(name) ?? null;
  }
  has(name: string): boolean {
    return this.map.has(name);
  }
  set(name: string, value: string): void {
    this.map.set(name, value);
  }
  entries(): IterableIterator<[string, string]> {
    return this.map.entries();
  }
  keys(): IterableIterator<string> {
    return this.map.keys();
  }
  values(): IterableIterator<string> {
    return this.map.values();
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.map.entries();
  }
}

/** `response.http` of a gateway request context: `status` reads and writes the request's own. */
export class GatewayResponseHttp {
  readonly headers: FetcherHeadersForHeaderMap;
  constructor(private readonly rc: NewRequestContext) {
    this.headers = new FetcherHeadersForHeaderMap(rc.response.http.headers);
  }
  get status(): number | undefined {
    return this.rc.response.http.status;
  }
  set status(status: number | undefined) {
    this.rc.response.http.status = status;
  }
}

export function makeGatewayGraphQLRequestContext(
  rc: NewRequestContext,
  server: { logger: unknown; cache: unknown },
  internals: { includeStacktraceInErrorResponses?: boolean },
): Record<string, unknown> {
  const request: Record<string, unknown> = {};
  if ('query' in rc.request) request.query = rc.request.query;
  if ('operationName' in rc.request) request.operationName = rc.request.operationName;
  if ('variables' in rc.request) request.variables = rc.request.variables;
  if ('extensions' in rc.request) request.extensions = rc.request.extensions;
  if (rc.request.http) {
    const http = rc.request.http;
    const needQuestion = http.search !== '' && !http.search.startsWith('?');
    request.http = { method: http.method, url: `https://unknown-url.invalid/${needQuestion ? '?' : ''}${http.search}`, headers: new FetcherHeadersForHeaderMap(http.headers) };
  }
  return {
    request,
    response: { http: new GatewayResponseHttp(rc) },
    logger: server.logger,
    schema: rc.schema,
    schemaHash: 'schemaHash no longer exists since Apollo Server 4',
    context: rc.contextValue,
    cache: server.cache,
    queryHash: rc.queryHash,
    document: rc.document,
    source: rc.source,
    operationName: rc.operationName,
    operation: rc.operation,
    errors: rc.errors,
    metrics: rc.metrics,
    debug: internals.includeStacktraceInErrorResponses,
    overallCachePolicy: rc.overallCachePolicy,
    requestIsBatched: rc.requestIsBatched,
  };
}

/** The Apollo Server whose function this one repeats; another version is left alone. */
export const FOR_APOLLO_VERSION = '5.5.1';

/** Apollo's module that the request pipeline calls the function from (CommonJS build), and Apollo's version. */
function apolloModule(): { mod: { makeGatewayGraphQLRequestContext?: unknown }; version: string } {
  const cjs = path.dirname(require.resolve('@apollo/server')); // .../dist/cjs
  const { version } = require(path.join(cjs, '..', '..', 'package.json')) as { version: string };
  return { mod: require(path.join(cjs, 'utils', 'makeGatewayGraphQLRequestContext.js')) as { makeGatewayGraphQLRequestContext?: unknown }, version };
}

/** Puts the function above in Apollo's place; false (nothing changed) when Apollo's module is not as expected. */
export function installGatewayRequestContext(): boolean {
  let found: ReturnType<typeof apolloModule>;
  try {
    found = apolloModule();
  } catch {
    return false;
  }
  const { mod, version } = found;
  if (version !== FOR_APOLLO_VERSION) return false;
  if (mod.makeGatewayGraphQLRequestContext === makeGatewayGraphQLRequestContext) return true;
  if (typeof mod.makeGatewayGraphQLRequestContext !== 'function') return false;
  mod.makeGatewayGraphQLRequestContext = makeGatewayGraphQLRequestContext;
  return true;
}

/** Whether Apollo's request pipeline now builds gateway contexts with the function above. */
export function gatewayRequestContextInstalled(): boolean {
  try {
    return apolloModule().mod.makeGatewayGraphQLRequestContext === makeGatewayGraphQLRequestContext;
  } catch {
    return false;
  }
}

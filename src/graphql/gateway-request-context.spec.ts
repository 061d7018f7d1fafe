import path from 'node:path';
import { HeaderMap } from '@apollo/server';
import { describe, expect, it } from 'vitest';
import { FOR_APOLLO_VERSION, gatewayRequestContextInstalled, GatewayResponseHttp, installGatewayRequestContext, makeGatewayGraphQLRequestContext } from './gateway-request-context';

const cjs = path.dirname(require.resolve('@apollo/server'));
const apolloModule = require(path.join(cjs, 'utils', 'makeGatewayGraphQLRequestContext.js')) as { makeGatewayGraphQLRequestContext: (...a: unknown[]) => Record<string, unknown> };
// Apollo's own function, read before anything replaces it (this file may run after another installed ours)
const original = (() => {
  const fresh = path.join(cjs, 'utils', 'makeGatewayGraphQLRequestContext.js');
  const cached = require.cache[fresh];
  delete require.cache[fresh];
  const f = (require(fresh) as typeof apolloModule).makeGatewayGraphQLRequestContext;
  if (cached) require.cache[fresh] = cached;
  return f;
})();

function requestContext(search: string) {
  const headers = new HeaderMap([['x-api-key', 'k'], ['content-type', 'application/json']]);
  return {
    request: { query: '{ a }', operationName: 'Q', variables: { v: 1 }, extensions: { e: true }, http: { method: 'POST', search, headers } },
    response: { http: { headers: new HeaderMap(), status: undefined as number | undefined } },
    schema: { s: 1 }, contextValue: { c: 1 }, queryHash: 'h', document: { d: 1 }, source: '{ a }', operationName: 'Q', operation: { o: 1 },
    errors: undefined, metrics: { m: 1 }, overallCachePolicy: { p: 1 }, requestIsBatched: false,
  };
}

/** a context's fields as plain data, `response.http` and header views read through their interfaces */
function shape(g: Record<string, unknown>) {
  const { request, response, ...rest } = g as { request: { http?: { headers: { get(n: string): string | null }; method: string; url: string } }; response: { http: { status?: number; headers: { get(n: string): string | null } } } };
  return {
    ...rest,
    request: { ...request, http: request.http && { method: request.http.method, url: request.http.url, key: request.http.headers.get('x-api-key'), missing: request.http.headers.get('nope') } },
    status: response.http.status,
    responseHeader: response.http.headers.get('x-out'),
  };
}

describe("Apollo's gateway request context, rebuilt without per-request accessor closures", () => {
  it(`is installed in place of Apollo ${FOR_APOLLO_VERSION}'s (an upgrade of @apollo/server fails here until re-checked)`, () => {
    const pkg = require(path.join(cjs, '..', '..', 'package.json')) as { version: string };
    expect(pkg.version).toBe(FOR_APOLLO_VERSION);
    expect(installGatewayRequestContext()).toBe(true);
    expect(gatewayRequestContextInstalled()).toBe(true);
    expect(apolloModule.makeGatewayGraphQLRequestContext).toBe(makeGatewayGraphQLRequestContext);
  });

  it("builds the same context as Apollo's own, and response.http.status reads and writes the request's status", () => {
    for (const search of ['', '?a=1', 'a=1']) {
      const server = { logger: { l: 1 }, cache: { k: 1 } };
      const internals = { includeStacktraceInErrorResponses: false };
      const a = requestContext(search);
      const b = requestContext(search);
      const theirs = original(a, server, internals);
      const ours = makeGatewayGraphQLRequestContext(b, server, internals);
      (theirs.response as { http: { headers: { set(n: string, v: string): void } } }).http.headers.set('x-out', '1');
      (ours.response as { http: { headers: { set(n: string, v: string): void } } }).http.headers.set('x-out', '1');
      expect(shape(ours)).toEqual(shape(theirs));
      (ours.response as { http: { status?: number } }).http.status = 418;
      expect(b.response.http.status).toBe(418);
      b.response.http.status = 201;
      expect((ours.response as { http: { status?: number } }).http.status).toBe(201);
      expect(b.response.http.headers.get('x-out')).toBe('1');
    }
  });

  it('keeps the status accessor on a shared prototype, not on each context', () => {
    const http = makeGatewayGraphQLRequestContext(requestContext(''), { logger: null, cache: null }, {}).response as { http: object };
    expect(http.http).toBeInstanceOf(GatewayResponseHttp);
    expect(Object.getOwnPropertyDescriptor(http.http, 'status')).toBeUndefined();
  });
});

import http from 'node:http';
import { Writable } from 'node:stream';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracing, type Tracing } from '../../src/tracing/setup';
import type { RunningApp } from '../../src/app';
import type { TestDatabase } from '../support/postgres';
import { waitFor } from '../support/kafka-fixtures';

// What operators, the log store, the tracing backend and Prometheus read, probed as an attacker
// would: a customer's email or phone sent where a client controls the text (a URL's query string
// or path, variables, refused ingest lines) must reach no log line and no span; a value of any
// size must not make a log line or span of that size; and no client value may grow /metrics.
// Tracing starts before the app's modules load, with the SDK's in-memory exporter.

const ANALYST = 'analyst-key-0123456789';
const SERVICE = 'svc-key-01234567890';
const EMAIL = 'hostile.observer@example.org';
const PHONE = '+14155550199';
const PII = [EMAIL, 'hostile.observer', PHONE, '4155550199', '415-555-0199'];

describe('observability under hostile input', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing | null;
  let database: TestDatabase;
  let app: RunningApp;
  const raw: string[] = [];

  beforeAll(async () => {
    tracing = startTracing({}, { exporter });
    // only now the app (and pg, node:http): the instrumentations patch them as they load
    const { startApp } = await import('../../src/app');
    const { loadConfig } = await import('../../src/config/config');
    const { serializeError } = await import('../../src/shared/logger');
    const { createTestDatabase } = await import('../support/postgres');
    database = await createTestDatabase('obshostile');
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        raw.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    // debug: what an operator who turns the level up reads too
    const log = pino({ level: 'debug', base: { service: 'earshot' }, serializers: { err: serializeError }, formatters: { level: (label) => ({ level: label }) } }, sink);
    const config = loadConfig({
      NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', DATABASE_URL: database.url, EARSHOT_ROLES: 'api,ingest',
      EARSHOT_API_KEYS: `admin-key-0123456789:admin,${ANALYST}:analyst,${SERVICE}:service`,
    });
    app = await startApp(config, log);
  }, 120_000);

  afterAll(async () => {
    await app?.stop();
    await tracing?.shutdown();
    await database?.drop();
  });

  const serverSpans = () => exporter.getFinishedSpans().filter((s) => s.kind === 1 /* SERVER */);
  const spanText = (spans: readonly ReadableSpan[]) => JSON.stringify(spans.map((s) => ({ n: s.name, a: s.attributes, e: s.events, st: s.status })));
  const found = (text: string) => PII.filter((p) => text.toLowerCase().includes(p.toLowerCase()));
  const linesOf = (requestId: string) => raw.filter((l) => l.includes(`"requestId":"${requestId}"`));
  // a server span ends when its response is closed, which may be just after the client has read it
  const waitForServerSpans = (n: number): Promise<ReadableSpan[]> => waitFor(`${n} server spans`, async () => (serverSpans().length >= n ? serverSpans() : null), 5_000, 10);

  it('records no query string and no path of the client in a span, and logs neither', async () => {
    exporter.reset();
    raw.length = 0;
    const query = encodeURIComponent('query Q($e: String) { customers(first: 1, filter: { search: $e }) { totalCount } }');
    const variables = encodeURIComponent(JSON.stringify({ e: EMAIL }));
    // a GraphQL GET, its variables in the query string (an analyst's search finds no address: it is answered)
    const get = await fetch(`${app.url}/graphql?query=${query}&variables=${variables}`, { headers: { 'x-api-key': ANALYST, 'apollo-require-preflight': 'true' } });
    expect(get.status).toBe(200);
    await get.text();
    // a path and a query string of the client's, on a route Earshot does not have and on /ingest
    const other = await fetch(`${app.url}/contacts/${EMAIL}?phone=${encodeURIComponent(PHONE)}`);
    expect(other.status).toBe(404);
    await other.text();
    const ingest = await fetch(`${app.url}/ingest?email=${EMAIL}&phone=${PHONE}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', 'x-api-key': SERVICE },
      // one line refused for a field named after the address, one for the phone in its date
      body: [
        { source: 'email', externalId: 'obs-1', occurredAt: '2026-11-20T10:00:00Z', direction: 'inbound', author: { email: EMAIL, phone: PHONE, displayName: EMAIL }, text: `write to ${EMAIL} or call ${PHONE}` },
        { source: 'email', externalId: 'obs-2', occurredAt: '2026-11-20T10:00:00Z', direction: 'inbound', author: { email: EMAIL }, text: 'x', [EMAIL]: true },
        { source: 'sms', externalId: 'obs-3', occurredAt: `2026-11-20 ${PHONE}`, direction: 'inbound', author: { phone: PHONE }, text: 'x' },
      ].map((l) => JSON.stringify(l)).join('\n'),
    });
    expect(ingest.status).toBe(200);
    expect((await ingest.json()).rejected).toHaveLength(2);

    const spans = await waitForServerSpans(3);
    const byPath = (p: string) => spans.filter((s) => s.attributes['url.path'] === p);
    expect(byPath('/graphql')).toHaveLength(1);
    expect(byPath('/ingest')).toHaveLength(1);
    // the HTTP instrumentation recorded the whole query string (`url.query`) and path (`url.path`)
    expect(byPath('/graphql')[0]!.attributes['url.query']).toBe('[not recorded]');
    expect(byPath('/ingest')[0]!.attributes['url.query']).toBe('[not recorded]');
    expect(spans.find((s) => s.attributes['http.response.status_code'] === 404)?.attributes['url.path']).toBe('[not recorded]');
    expect(found(spanText(exporter.getFinishedSpans()))).toEqual([]);
    expect(found(raw.join('\n'))).toEqual([]);
  });

  it('replaces an X-Request-Id that reads as an email or phone: it reaches no log line, span or reply', async () => {
    raw.length = 0;
    exporter.reset();
    const body = JSON.stringify({ query: '{ customers(first: 1) { totalCount } }' });
    for (const sent of [EMAIL, PHONE, `req-${EMAIL}`, '(415) 555-0199', '+1-415-555-0199', '(415)555-0199', '415.555.0199']) {
      const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': ANALYST, 'x-request-id': sent }, body });
      expect(res.status).toBe(200);
      await res.text();
      // a fresh id instead, echoed as usual
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    }
    // an ordinary id is kept as sent, and so is a UUID whose digits run across its dashes
    // (a hex trace id, an AWS trace header and a snowflake id with digit runs too)
    for (const id of ['trace-4155-abc', '5f0c3a1e-1234-4567-8901-234567890abc', 'a3ce9290471736bf92f35b34da6a3ce1', 'Root=1-5759e988-bd862e3fe1be46a994272793', '1864123456789012345']) {
      const kept = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': ANALYST, 'x-request-id': id }, body });
      expect(kept.headers.get('x-request-id')).toBe(id);
      await kept.text();
    }
    await waitForServerSpans(9);
    expect(linesOf('trace-4155-abc').length).toBeGreaterThan(0);
    expect(found(spanText(exporter.getFinishedSpans()))).toEqual([]);
    expect(found(raw.join('\n'))).toEqual([]);
  });

  it('logs and traces a huge operation name cut, once', async () => {
    raw.length = 0;
    exporter.reset();
    // one token of 1.9 MB: within the token limit and the 2 MiB body
    const name = `Op${'x'.repeat(1_900_000)}`;
    const res = await fetch(`${app.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': ANALYST, 'x-request-id': 'obs-long-name' },
      body: JSON.stringify({ query: `query ${name} { __typename }` }),
    });
    expect(res.status).toBe(200);
    await res.text();
    const lines = linesOf('obs-long-name');
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['graphql operation', 'http request']);
    const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l), 0);
    // before: 1.9 MB of log for this request
    expect(bytes).toBeLessThan(2_000);
    expect(JSON.parse(lines[0]!).operationName).toBe(`${name.slice(0, 100)}…`);
    const gql = await waitFor('the GraphQL span', async () => exporter.getFinishedSpans().find((s) => s.name.startsWith('graphql query')), 2_000, 10);
    expect(gql.name).toBe(`graphql query ${name.slice(0, 100)}…`);
    // before: 3.8 MB of span (its name and its attribute)
    expect(spanText(exporter.getFinishedSpans()).length).toBeLessThan(20_000);
  });

  it('keeps /metrics to a fixed set of label values whatever the client sends', async () => {
    const metricLines = async () => (await (await fetch(`${app.url}/metrics`)).text()).split('\n').filter((l) => l && !l.startsWith('#'));
    const before = await metricLines();
    const target = new URL(app.url);
    // every method Node's parser takes, and some it does not
    for (const method of [...http.METHODS, 'FOOBAR']) {
      await new Promise<void>((done) => {
        const req = http.request({ host: target.hostname, port: target.port, method, path: '/graphql' }, (r) => {
          r.resume();
          r.on('end', done);
        });
        req.on('error', () => done());
        req.end();
      });
    }
    // 1,000 distinct operation names, paths, query strings and header values
    for (let i = 0; i < 1_000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, async (_, j) => {
        const n = i + j;
        await (await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': ANALYST, 'x-client': `c${n}` }, body: JSON.stringify({ query: `query Name${n} { __typename }` }) })).text();
        await (await fetch(`${app.url}/p${n}/${EMAIL}?q=${n}`, { headers: { 'x-client': `c${n}` } })).text();
      }));
    }
    const after = await metricLines();
    const methods = new Set(after.flatMap((l) => /^earshot_http_request_duration_seconds_count\{method="([^"]*)"/.exec(l)?.[1] ?? []));
    // before: one series per method (PROPFIND, MKCOL, M-SEARCH, …), each times route, status and bucket
    expect([...methods].every((m) => ['GET', 'HEAD', 'POST', 'OPTIONS', 'other'].includes(m))).toBe(true);
    expect(methods.has('other')).toBe(true);
    expect(found(after.join('\n'))).toEqual([]);
    // what grew is a handful of label combinations (a new status or method label), not one per request
    const served = (ls: string[]) => ls.filter((l) => l.startsWith('earshot_http_') || l.startsWith('earshot_graphql_')).length;
    expect(served(after) - served(before)).toBeLessThan(200);
  });
});

import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type RunningApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { detectLanguage, warmLanguageDetector } from '../../src/sentiment/language';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

// The access log: one JSON line per HTTP request and per GraphQL operation, with the request id,
// operation name, role, status, duration and bytes, and never variables, texts or identities.

const KEY = 'analyst-key-0123456789';
const SECRET_EMAIL = 'hidden.person@example.org';
const SECRET_TEXT = 'Frobnicator exploded on my desk';

describe('access log', () => {
  let database: TestDatabase;
  let app: RunningApp;
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase('accesslog');
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) {
          raw.push(l);
          lines.push(JSON.parse(l));
        }
        done();
      },
    });
    const log = pino({ level: 'info', base: { service: 'earshot' }, formatters: { level: (label) => ({ level: label }) } }, sink);
    const config = loadConfig({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', DATABASE_URL: database.url, EARSHOT_ROLES: 'api,ingest', EARSHOT_API_KEYS: `admin-key-0123456789:admin,${KEY}:analyst,svc-key-01234567890:service` });
    app = await startApp(config, log);
  }, 120_000);

  afterAll(async () => {
    await app?.stop();
    await database?.drop();
  });

  const access = (requestId: string) => lines.filter((l) => l.component === 'access' && l.requestId === requestId);

  it('writes one line per request and per operation, with no variables or personal data', async () => {
    const ingest = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', 'x-api-key': 'svc-key-01234567890', 'x-request-id': 'req-ingest-1' },
      body: JSON.stringify({ source: 'email', externalId: 'a1', occurredAt: '2026-11-20T10:00:00Z', direction: 'inbound', author: { email: SECRET_EMAIL }, text: SECRET_TEXT }),
    });
    expect(ingest.status).toBe(200);
    const body = JSON.stringify({ query: 'query Lookup($q: String) { customers(first: 5, filter: { search: $q }) { totalCount } }', variables: { q: SECRET_EMAIL } });
    const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY, 'x-request-id': 'req-gql-1' }, body });
    expect(res.status).toBe(200);
    const answer = await res.text();
    const denied = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'req-gql-2' }, body: JSON.stringify({ query: '{ customers(first: 1) { totalCount } }' }) });
    expect(denied.status).toBe(401);
    const get = await fetch(`${app.url}/graphql?query=${encodeURIComponent('query Q($e: String) { customers(first: 1, filter: { search: $e }) { totalCount } }')}&variables=${encodeURIComponent(JSON.stringify({ e: SECRET_EMAIL }))}`, { headers: { 'x-api-key': KEY, 'x-request-id': 'req-gql-3', 'apollo-require-preflight': 'true' } });
    expect(get.status).toBe(200);

    expect(access('req-ingest-1')).toEqual([
      expect.objectContaining({ msg: 'http request', method: 'POST', route: 'ingest', status: 200, role: 'service', durationMs: expect.any(Number), bytesIn: expect.any(Number), bytesOut: expect.any(Number) }),
    ]);
    const gql = access('req-gql-1');
    expect(gql).toHaveLength(2);
    expect(gql[0]).toMatchObject({ msg: 'graphql operation', operationType: 'query', operationName: 'Lookup', role: 'analyst', status: 'ok', httpStatus: 200, bytes: Buffer.byteLength(answer) });
    expect(gql[1]).toMatchObject({ msg: 'http request', route: 'graphql', status: 200, role: 'analyst' });
    expect(gql[1]!.bytesIn).toBe(Buffer.byteLength(body));
    expect((gql[1]!.bytesOut as number)).toBeGreaterThan(answer.length);
    expect(access('req-gql-2')).toEqual([
      expect.objectContaining({ msg: 'graphql operation', operationName: null, role: null, status: 'error', errorCodes: ['UNAUTHENTICATED'], httpStatus: 401 }),
      expect.objectContaining({ msg: 'http request', route: 'graphql', status: 401, role: null }),
    ]);
    expect(access('req-gql-3').map((l) => l.msg)).toEqual(['graphql operation', 'http request']);

    // nothing personal or sent as a variable anywhere in the log
    const all = raw.join('\n');
    expect(all).not.toContain(SECRET_EMAIL);
    expect(all).not.toContain('Frobnicator');
    expect(all).not.toContain('variables');
  });

  it('reports at start that the language detector is built, before any message needs it', () => {
    const ready = lines.filter((l) => l.msg === 'language detector ready');
    expect(ready).toHaveLength(1);
    expect(typeof ready[0]!.ms).toBe('number');
    // built already: the first French message does not build it on the ingest path
    expect(warmLanguageDetector()).toEqual({ available: true, ms: 0 });
    expect(detectLanguage('Le service client est vraiment nul, je veux être remboursé')).toBe('fr');
  });
});

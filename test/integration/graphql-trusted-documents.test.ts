import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { wsClient } from '../support/ws-client';

const TRUSTED = 'query CustomerCount { customers(first: 1) { totalCount } }';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const pq = (s: string) => ({ persistedQuery: { version: 1, sha256Hash: sha(s) } });

async function post(app: TestApp, body: unknown) {
  const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { data?: Record<string, unknown>; errors?: { extensions?: { code?: string } }[] } };
}

type WsAnswer = { data?: Record<string, unknown> | null; errors?: { message?: string; extensions?: { code?: string } }[] };

/** One operation over graphql-ws (what a frontend's client sends), to its first result or error. */
async function overWebSocket(app: TestApp, payload: { query: string; extensions?: Record<string, unknown> }): Promise<WsAnswer> {
  const client = wsClient(app.url);
  try {
    return await new Promise<WsAnswer>((resolve) => {
      client.subscribe(payload as { query: string }, {
        next: (r) => resolve(r as WsAnswer),
        error: (e) => resolve({ errors: (Array.isArray(e) ? e : [e]) as WsAnswer['errors'] }),
        complete: () => undefined,
      });
    });
  } finally {
    await client.dispose();
  }
}

describe('trusted documents (EARSHOT_TRUSTED_DOCUMENTS=only) and automatic persisted queries', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'earshot-trusted-'));
  const manifest = path.join(dir, 'manifest.json');
  let only: TestApp;
  let open: TestApp;

  beforeAll(async () => {
    writeFileSync(manifest, JSON.stringify({ format: 'apollo-persisted-query-manifest', version: 1, operations: [{ id: sha(TRUSTED), name: 'CustomerCount', type: 'query', body: TRUSTED }] }));
    only = await startTestApp({ EARSHOT_TRUSTED_DOCUMENTS: 'only', EARSHOT_PERSISTED_OPERATIONS: manifest }, 'trusted');
    open = await startTestApp({}, 'apq');
  });
  afterAll(async () => {
    await only?.close();
    await open?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a manifest operation sent by id alone, over POST and GET', async () => {
    const byId = await post(only, { extensions: pq(TRUSTED) });
    expect(byId).toEqual({ status: 200, body: { data: { customers: { totalCount: 0 } } } });
    const get = await fetch(`${only.url}/graphql?extensions=${encodeURIComponent(JSON.stringify(pq(TRUSTED)))}`, { headers: { 'apollo-require-preflight': 'true' } });
    expect(get.status).toBe(200);
    expect(await get.json()).toEqual({ data: { customers: { totalCount: 0 } } });
  });

  it('runs the manifest text itself, and nothing else, not even registered through APQ', async () => {
    expect((await post(only, { query: TRUSTED })).status).toBe(200);
    const other = await post(only, { query: '{ customers(first: 100) { edges { node { displayName } } } }' });
    expect(other.status).toBe(400);
    expect(other.body.errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_IN_LIST');
    const evil = '{ __schema { types { name } } }';
    const register = await post(only, { query: evil, extensions: pq(evil) });
    expect(register.body.errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_IN_LIST');
    const unknownId = await post(only, { extensions: pq(evil) });
    expect(unknownId.body.errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');
  });

  it('holds over WebSocket too: the manifest text and id run, any other query, mutation or subscription is refused', async () => {
    // Before, a socket ran any document in `only` mode: the manifest was checked on HTTP only.
    expect(await overWebSocket(only, { query: TRUSTED })).toEqual({ data: { customers: { totalCount: 0 } } });
    expect(await overWebSocket(only, { query: '', extensions: pq(TRUSTED) })).toEqual({ data: { customers: { totalCount: 0 } } });
    for (const query of [
      '{ customers(first: 100) { edges { node { displayName } } } }',
      'mutation { upsertTopic(input: { name: "x", department: "y", phrases: ["z"] }) { name } }',
      'subscription { interactionRecorded { id text } }',
    ]) {
      const r = await overWebSocket(only, { query });
      expect(r.data ?? null, query).toBeNull();
      expect(r.errors?.[0]?.extensions?.code, query).toBe('PERSISTED_QUERY_NOT_IN_LIST');
    }
    expect((await overWebSocket(only, { query: '', extensions: pq('{ __typename }') })).errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');
  });

  it('without a manifest, APQ works: unknown hash, then hash with text, then hash alone', async () => {
    const q = '{ customers(first: 3) { totalCount } }';
    expect((await post(open, { extensions: pq(q) })).body.errors?.[0]?.extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');
    expect((await post(open, { query: q, extensions: pq(q) })).body.data).toEqual({ customers: { totalCount: 0 } });
    expect((await post(open, { extensions: pq(q) })).body.data).toEqual({ customers: { totalCount: 0 } });
  });
});

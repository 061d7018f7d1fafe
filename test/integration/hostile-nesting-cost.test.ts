import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { message } from '../support/hostile';

/**
 * JSON nested a million levels deep costs V8's JSON.parse 1.4-2.5 s for 2 MB, two hundred times
 * the cost of 2 MB of ordinary JSON. Such bodies and lines nest deeper than anything valid, and
 * are refused before they are parsed (src/shared/json-depth.ts). Compared here with ordinary
 * bodies of the same size, not with a number of milliseconds.
 */

/** the faster of two runs, and the answer */
async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  let ms = Infinity;
  let value!: T;
  for (let r = 0; r < 2; r++) {
    const t0 = performance.now();
    value = await f();
    ms = Math.min(ms, performance.now() - t0);
  }
  return { ms, value };
}

describe('deeply nested JSON at the HTTP edge', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest', EARSHOT_INGEST_MAX_BYTES: String(4 * 1024 * 1024) }, 'hostile-nesting');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('refuses a GraphQL body nested deeper than any request unread, at the cost of an ordinary body', async () => {
    const size = 2 * 1024 * 1024 - 1_000;
    const levels = (size - 40) / 2;
    const deep = `{"query":"{ __typename }","variables":{"x":${'['.repeat(levels)}${']'.repeat(levels)}}}`;
    const flat = `{"query":"{ __typename }","variables":{"x":${JSON.stringify('a'.repeat(size - 60))}}}`;
    const post = (body: string) => fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then(async (r) => ({ status: r.status, body: await r.text() }));
    await post(flat);
    await post(deep);
    const ordinary = await timed(() => post(flat));
    const hostile = await timed(() => post(deep));
    expect(hostile.value.status).toBe(400);
    expect(JSON.parse(hostile.value.body)).toMatchObject({ errors: [{ message: 'the request body nests objects and arrays deeper than 10000 levels', extensions: { code: 'BAD_REQUEST' } }] });
    // before: the body was parsed (1.5 s and more), then answered as a request with variables
    expect(hostile.ms).toBeLessThan(4 * ordinary.ms + 100);
    // nesting a request may have is read as before
    const ok = await post(`{"query":"{ __typename }","variables":{"x":${'['.repeat(5_000)}${']'.repeat(5_000)}}}`);
    expect(ok.status).toBe(200);
  });

  it('refuses an NDJSON line whose metadata nests 900,000 levels, at the cost of an ordinary line of its size', async () => {
    const deep = JSON.stringify(message(91_000_001, { externalId: 'nest-deep', metadata: '@@deep@@' })).replace('"@@deep@@"', `{"a":${'['.repeat(900_000)}${']'.repeat(900_000)}}`);
    const post = (body: string) => fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body }).then(async (r) => ({ status: r.status, body: (await r.json()) as { accepted: number; rejected: { line: number; error: string }[] } }));
    // a line as long, parsed and refused too (its metadata is over the limit): the ordinary cost of reading it
    const flats = JSON.stringify(message(91_000_002, { externalId: 'nest-flat', metadata: { x: 'a'.repeat(deep.length - 400) } }));
    const deeps = deep;
    expect(deeps.length).toBeGreaterThan(1_800_000);
    expect(Math.abs(flats.length - deeps.length)).toBeLessThan(1_000);
    await post(flats);
    const ordinary = await timed(() => post(flats));
    const hostile = await timed(() => post(deeps));
    expect(hostile.value.status).toBe(200);
    expect((await post(flats)).body.rejected).toMatchObject([{ line: 1, error: expect.stringMatching(/^metadata: .* over the limit/) }]);
    expect(hostile.value.body).toMatchObject({ accepted: 0, rejected: [{ line: 1, error: 'metadata: nested deeper than 32 levels (EARSHOT_INGEST_MAX_METADATA_DEPTH)' }] });
    // both lines cross the network whole; only the deep one was parsed for 1.5 s and more before
    expect(hostile.ms).toBeLessThan(2 * ordinary.ms + 50);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';

/**
 * A GraphQL body is decoded and parsed only for a caller whose credential verifies, or, without
 * one, when it is small: JSON.parse of 2 MiB of `{},{},…` costs about 0.4 s, which any client
 * could make every request spend before it was told it is not allowed.
 */
describe('GraphQL: authentication before the body is parsed', () => {
  const key = 'auth-before-parse-key-0123456789';
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${key}:analyst` }, 'auth-before-parse');
  });
  afterAll(async () => {
    await app?.close();
  });

  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body }).then(async (r) => ({ status: r.status, body: (await r.json()) as { errors?: { message: string; extensions: { code: string } }[]; data?: unknown } }));

  // about 2 MB of objects side by side: valid JSON, expensive to parse
  const wide = `{"query":"{ __typename }","variables":{"x":[${'{},'.repeat(650_000)}{}]}}`;

  it('answers a wrong credential 401 without reading the body as JSON (even a body that is not JSON)', async () => {
    const bad = await post('this is { not json', { 'x-api-key': 'not-a-key-0123456789abcdef' });
    expect(bad.status).toBe(401);
    expect(bad.body.errors?.[0]?.extensions.code).toBe('UNAUTHENTICATED');
    const badWide = await post(wide, { 'x-api-key': 'not-a-key-0123456789abcdef' });
    expect(badWide.status).toBe(401);
  });

  it('refuses a large body from a caller without a credential, unparsed, and still answers a small one', async () => {
    const anonymous = await post(wide);
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.errors?.[0]).toMatchObject({ extensions: { code: 'UNAUTHENTICATED' } });
    expect(anonymous.body.errors?.[0]?.message).toMatch(/authentication required for a request body over 64 KiB/);
    // a small anonymous request is read as before (and the fields it may not see say so)
    const small = await post(JSON.stringify({ query: '{ __typename }' }));
    expect(small.status).toBe(200);
    expect(small.body.data).toEqual({ __typename: 'Query' });
    // not JSON, small: still the parser's answer
    expect((await post('{ nope')).status).toBe(400);
  });

  it('parses the same large body for a caller whose credential verifies', async () => {
    const ok = await post(wide, { 'x-api-key': key });
    expect(ok.status).toBe(200);
    expect(ok.body.data).toEqual({ __typename: 'Query' });
  });
});

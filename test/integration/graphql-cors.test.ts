import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';

describe('CORS on /graphql (EARSHOT_CORS_ORIGINS) with Apollo CSRF prevention still on', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_CORS_ORIGINS: 'http://localhost:3000,https://dash.example.com' }, 'cors');
  });
  afterAll(async () => app?.close());

  it('answers the preflight of a listed origin with the headers a browser needs', async () => {
    const res = await fetch(`${app.url}/graphql`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, x-api-key' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    const allowed = res.headers.get('access-control-allow-headers') ?? '';
    for (const h of ['content-type', 'x-api-key', 'authorization']) expect(allowed).toContain(h);
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    expect(res.headers.get('vary')).toContain('Origin');
  });

  it('lets the listed origin read a JSON POST', async () => {
    const res = await fetch(`${app.url}/graphql`, {
      method: 'POST',
      headers: { origin: 'http://localhost:3000', 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    expect(await res.json()).toEqual({ data: { __typename: 'Query' } });
  });

  it('gives an origin not listed no CORS headers, on the preflight or the request', async () => {
    const pre = await fetch(`${app.url}/graphql`, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    expect(pre.headers.get('access-control-allow-methods')).toBeNull();
    const res = await fetch(`${app.url}/graphql`, {
      method: 'POST',
      headers: { origin: 'http://evil.example', 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('still refuses simple requests (CSRF), even from a listed origin', async () => {
    const get = await fetch(`${app.url}/graphql?query=${encodeURIComponent('{ __typename }')}`, { headers: { origin: 'http://localhost:3000' } });
    expect(get.status).toBe(400);
    expect(await get.text()).toMatch(/CSRF/i);
    const form = await fetch(`${app.url}/graphql`, {
      method: 'POST',
      headers: { origin: 'http://localhost:3000', 'content-type': 'text/plain' },
      body: JSON.stringify({ query: 'mutation { __typename }' }),
    });
    expect(form.status).toBe(400);
    // with a header only a preflighted request can carry, GET works
    const ok = await fetch(`${app.url}/graphql?query=${encodeURIComponent('{ __typename }')}`, { headers: { origin: 'http://localhost:3000', 'apollo-require-preflight': 'true' } });
    expect(ok.status).toBe(200);
  });

  it('sends no CORS headers at all when no origin is configured', async () => {
    const plain = await startTestApp({}, 'cors-off');
    try {
      const res = await fetch(`${plain.url}/graphql`, { method: 'OPTIONS', headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST' } });
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await plain.close();
    }
  });
});

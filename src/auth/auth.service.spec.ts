import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuthService } from './auth.service';

/**
 * The JWKS past jose's 10-minute cache while the identity provider is down. Only the wall clock
 * (Date) is moved; the JWKS is a real HTTP server on loopback.
 */
describe('AuthService with EARSHOT_JWKS_URL, past the key set cache', () => {
  const state = { keys: [] as JWK[], down: false, requests: 0 };
  const server = http.createServer((_req, res) => {
    state.requests++;
    if (state.down) return void res.writeHead(503).end('down');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
  });
  let url = '';
  let sign: () => Promise<string>;

  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    state.keys = [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }];
    // lives long enough for the clock moved by 11 minutes; the lifetime cap is a day
    sign = () => new SignJWT({ role: 'agent' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setSubject('dana').setIssuedAt().setExpirationTime('1h').sign(privateKey);
  });
  afterEach(() => {
    vi.useRealTimers();
    state.down = false;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const service = () => new AuthService({ apiKeys: [], jwtSecret: null, jwksUrl: url, jwtIssuer: null, jwtAudience: null, jwtMaxAgeSeconds: 86_400, open: false });
  const outcome = (auth: AuthService, token: string) =>
    auth.authenticate({ authorization: `Bearer ${token}` }).then(
      (p) => p?.id,
      (e: Error) => e.message,
    );

  it('keeps verifying against the last key set fetched while the JWKS is down, asking it at most every 5 s', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const auth = service();
    const token = await sign();
    expect(await outcome(auth, token)).toBe('dana');
    state.down = true;
    vi.setSystemTime(Date.now() + 11 * 60_000);
    const from = state.requests;
    const seen = new Set<string | undefined>();
    for (let i = 0; i < 100; i++) seen.add(await outcome(auth, token));
    expect([...seen]).toEqual(['dana']);
    expect(state.requests - from).toBe(1);
    vi.setSystemTime(Date.now() + 6_000);
    expect(await outcome(auth, token)).toBe('dana');
    expect(state.requests - from).toBe(2);
  });

  it('refuses a token whose key the JWKS withdrew, once the cache is stale and the JWKS answers', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const auth = service();
    const token = await sign();
    expect(await outcome(auth, token)).toBe('dana');
    const keys = state.keys;
    state.keys = [];
    try {
      vi.setSystemTime(Date.now() + 11 * 60_000);
      expect(await outcome(auth, token)).toMatch(/^invalid token: no applicable key found in the JSON Web Key Set/);
    } finally {
      state.keys = keys;
    }
  });
});

describe('AuthService: the subject of a JWT names the actor in audit rows', () => {
  const secret = 'unit-test-jwt-secret-0123456789abcdef';
  const auth = new AuthService({ apiKeys: [], jwtSecret: secret, jwksUrl: null, jwtIssuer: null, jwtAudience: null, jwtMaxAgeSeconds: 86_400, open: false });
  const outcome = async (sub: string) => {
    const token = await new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('5m').sign(new TextEncoder().encode(secret));
    return auth.authenticate({ authorization: `Bearer ${token}` }).then(
      (p) => p?.id,
      (e: Error) => e.message,
    );
  };

  it('refuses a subject PostgreSQL cannot store as it is (a NUL character, a lone surrogate) and takes any other', async () => {
    expect(await outcome('dana\u0000ops')).toMatch(/^invalid token: its subject \(claim "sub"\) holds a NUL character or a lone UTF-16 surrogate/);
    expect(await outcome('dana\ud800ops')).toMatch(/^invalid token: its subject/);
    expect(await outcome('dana\udc00')).toMatch(/^invalid token: its subject/);
    for (const sub of ['dana', 'dana ops', 'zoë 😀', 'auth0|5f7c8ec7c33c6c004bbafe82']) expect(await outcome(sub)).toBe(sub);
  });
});

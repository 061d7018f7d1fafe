import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../config/config';
import { AuthService } from './auth.service';

/**
 * The JWKS past its 10-minute cache while the identity provider is down, and with the host's clock
 * stepping. The cache age and pauses count on the monotonic clock, injected here (`mono`, ms) so
 * that the test moves it; the wall clock (Date) is moved only to step it. The JWKS is a real HTTP
 * server on loopback.
 */
describe('AuthService with EARSHOT_JWKS_URL, past the key set cache', () => {
  const HOUR = 3_600_000;
  const state = { keys: [] as JWK[], down: false, requests: 0 };
  const server = http.createServer((_req, res) => {
    state.requests++;
    if (state.down) return void res.writeHead(503).end('down');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
  });
  let url = '';
  const pairs = new Map<string, CryptoKey>();
  let k1: JWK;
  let k2: JWK;
  let mono = 0;

  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    for (const kid of ['k1', 'k2']) {
      const { publicKey, privateKey } = await generateKeyPair('ES256');
      pairs.set(kid, privateKey);
      const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256' };
      if (kid === 'k1') k1 = jwk;
      else k2 = jwk;
    }
  });
  beforeEach(() => {
    state.keys = [k1];
    state.down = false;
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  /** a token of key `kid`, issued now on the wall clock, for an hour (the lifetime cap is a day) */
  const sign = (kid = 'k1') => new SignJWT({ role: 'agent' }).setProtectedHeader({ alg: 'ES256', kid }).setSubject('dana').setIssuedAt().setExpirationTime('1h').sign(pairs.get(kid)!);
  const service = () => new AuthService({ apiKeys: [], jwtSecret: null, jwksUrl: url, jwtIssuer: null, jwtAudience: null, jwtMaxAgeSeconds: 86_400, jwtClockSkewSeconds: 30, open: false }, { monotonic: () => mono });
  const outcome = (auth: AuthService, token: string) =>
    auth.authenticate({ authorization: `Bearer ${token}` }).then(
      (p) => p?.id,
      (e: Error) => e.message,
    );
  /** Sets the wall clock `ms` away from now; it runs on from there. */
  const stepClock = (ms: number) => {
    const to = Date.now() + ms;
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(to);
  };

  it('keeps verifying against the last key set fetched while the JWKS is down, asking it at most every 5 s', async () => {
    const auth = service();
    const token = await sign();
    expect(await outcome(auth, token)).toBe('dana');
    state.down = true;
    mono += 11 * 60_000;
    const from = state.requests;
    const seen = new Set<string | undefined>();
    for (let i = 0; i < 100; i++) seen.add(await outcome(auth, token));
    expect([...seen]).toEqual(['dana']);
    expect(state.requests - from).toBe(1);
    mono += 6_000;
    expect(await outcome(auth, token)).toBe('dana');
    expect(state.requests - from).toBe(2);
  });

  it('refuses a token whose key the JWKS withdrew, once the cache is stale and the JWKS answers', async () => {
    const auth = service();
    const token = await sign();
    expect(await outcome(auth, token)).toBe('dana');
    state.keys = [];
    mono += 11 * 60_000;
    expect(await outcome(auth, token)).toMatch(/^invalid token: no applicable key found in the JSON Web Key Set/);
  });

  it('with the host clock stepped back an hour, takes a key rotated in 30 s later (before: refused for the hour)', async () => {
    const auth = service();
    expect(await outcome(auth, await sign('k1'))).toBe('dana');
    stepClock(-HOUR);
    state.keys = [k1, k2];
    const rotated = await sign('k2');
    mono += 10_000;
    // within the 30 s cooldown an unknown kid does not fetch (no amplification against the identity provider)
    const from = state.requests;
    expect(await outcome(auth, rotated)).toMatch(/no applicable key/);
    expect(state.requests).toBe(from);
    mono += 21_000;
    expect(await outcome(auth, rotated)).toBe('dana');
    expect(state.requests).toBe(from + 1);
  });

  it('with the host clock stepped back an hour, stops taking a withdrawn key once the cache is 10 min old (before: 70 min)', async () => {
    const auth = service();
    const leaked = await sign('k1');
    expect(await outcome(auth, leaked)).toBe('dana');
    stepClock(-HOUR);
    state.keys = [k2];
    mono += 11 * 60_000;
    expect(await outcome(auth, leaked)).toMatch(/^invalid token: no applicable key found/);
  });

  it('with the host clock stepped back an hour after a failed fetch, asks the JWKS again 5 s later (before: not for the hour)', async () => {
    const auth = service();
    state.down = true;
    const token = await sign('k1');
    expect(await outcome(auth, token)).toMatch(/could not be fetched from EARSHOT_JWKS_URL/);
    stepClock(-HOUR);
    state.down = false;
    mono += 6_000;
    expect(await outcome(auth, token)).toBe('dana');
  });

  it('with the host clock stepped forward an hour, refuses tokens expired on the wall clock, takes fresh ones and does not fetch for it', async () => {
    const auth = service();
    const old = await sign('k1');
    expect(await outcome(auth, old)).toBe('dana');
    const from = state.requests;
    stepClock(HOUR + 60_000);
    // exp is a date: the wall clock decides it, stepped or not
    expect(await outcome(auth, old)).toMatch(/^invalid token: "exp" claim timestamp check failed/);
    for (let i = 0; i < 20; i++) expect(await outcome(auth, await sign('k1'))).toBe('dana');
    expect(state.requests).toBe(from);
  });
});

describe('AuthService: the subject of a JWT names the actor in audit rows', () => {
  const secret = 'unit-test-jwt-secret-0123456789abcdef';
  const auth = new AuthService({ apiKeys: [], jwtSecret: secret, jwksUrl: null, jwtIssuer: null, jwtAudience: null, jwtMaxAgeSeconds: 86_400, jwtClockSkewSeconds: 30, open: false });
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

describe("AuthService: a host clock a little behind or ahead of the token issuer's", () => {
  const secret = 'unit-test-jwt-secret-0123456789abcdef';
  const auth = (skew: number) =>
    new AuthService({ apiKeys: [], jwtSecret: secret, jwksUrl: null, jwtIssuer: null, jwtAudience: null, jwtMaxAgeSeconds: 3_600, jwtClockSkewSeconds: skew, open: false });
  /** a token as the issuer makes it when its clock reads `issuerNow` (s): nbf = iat = now, valid `life` s */
  const token = (issuerNow: number, life = 3_600) =>
    new SignJWT({ role: 'agent' }).setProtectedHeader({ alg: 'HS256' }).setSubject('dana').setIssuedAt(issuerNow).setNotBefore(issuerNow).setExpirationTime(issuerNow + life).sign(new TextEncoder().encode(secret));
  const outcome = async (service: AuthService, t: string) =>
    service.authenticate({ authorization: `Bearer ${t}` }).then(
      (p) => p?.id,
      (e: Error) => e.message,
    );
  const now = () => Math.floor(Date.now() / 1000);

  it('takes a fresh token whose issuer runs up to EARSHOT_JWT_CLOCK_SKEW_SECONDS ahead (30 by default)', async () => {
    // before: "invalid token: "nbf" claim timestamp check failed", and a full-lifetime token
    // issued 20 s ahead read as living 20 s over EARSHOT_JWT_MAX_AGE_SECONDS
    expect(await outcome(auth(30), await token(now() + 20))).toBe('dana');
  });

  it('refuses beyond the skew: not yet valid; refuses an expired token at its exp whatever the skew, and everything off the clock with 0', async () => {
    expect(await outcome(auth(30), await token(now() + 120))).toMatch(/^invalid token: "nbf" claim timestamp check failed/);
    // expired 10 s ago: within the skew, refused all the same (the skew never keeps a token alive)
    expect(await outcome(auth(30), await token(now() - 20, 10))).toMatch(/^invalid token: "exp" claim timestamp check failed/);
    expect(await outcome(auth(30), await token(now() - 120, 60))).toMatch(/^invalid token: "exp" claim timestamp check failed/);
    expect(await outcome(auth(0), await token(now() + 20))).toMatch(/^invalid token: "nbf" claim timestamp check failed/);
    // a lifetime over the cap stays refused whatever the skew
    expect(await outcome(auth(30), await token(now() + 20, 3_700))).toMatch(/must expire at most 3600 s after it was issued/);
  });
});

describe('AuthService: EARSHOT_JWT_AUDIENCE with several audiences', () => {
  const secret = 'unit-test-jwt-secret-0123456789abcdef';
  // through loadConfig, as the service reads the variable: "a,b" was one audience named "a,b"
  const auth = new AuthService(loadConfig({ EARSHOT_JWT_SECRET: secret, EARSHOT_JWT_AUDIENCE: ' api://earshot , https://earshot.example.com' }).auth);
  const outcome = async (aud: string | string[] | null) => {
    const jwt = new SignJWT({ role: 'analyst' }).setProtectedHeader({ alg: 'HS256' }).setSubject('dana').setExpirationTime('5m');
    if (aud !== null) jwt.setAudience(aud);
    return auth.authenticate({ authorization: `Bearer ${await jwt.sign(new TextEncoder().encode(secret))}` }).then(
      (p) => p?.id,
      (e: Error) => e.message,
    );
  };

  it('takes a token for any of them, and refuses one for neither or for none', async () => {
    expect(await outcome('api://earshot')).toBe('dana');
    expect(await outcome('https://earshot.example.com')).toBe('dana');
    // a token for several audiences: one of them is enough
    expect(await outcome(['https://other.example.com', 'https://earshot.example.com'])).toBe('dana');
    expect(await outcome('https://other.example.com')).toBe('invalid token: unexpected "aud" claim value');
    expect(await outcome('api://earshot,https://earshot.example.com')).toBe('invalid token: unexpected "aud" claim value');
    expect(await outcome(null)).toBe('invalid token: missing required "aud" claim');
  });
});

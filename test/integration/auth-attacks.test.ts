import { createHmac, generateKeyPairSync, sign as rsaSign, type KeyObject } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { exportJWK, type JWK } from 'jose';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

/**
 * Credentials attacked as a pentester would, against the whole service: GraphQL over HTTP,
 * /ingest and the WebSocket connection_init, in HS256 mode and in JWKS (RS256) mode, with an
 * identity provider that misbehaves.
 */

const SECRET = 'auth-attacks-hs256-secret-0123456789abcdef';
const ISSUER = 'https://idp.auth-attacks.test/';
const AUDIENCE = 'earshot-auth-attacks';
const ADMIN = 'auth-attacks-admin-key-0123456789';
const ANALYST = 'auth-attacks-analyst-key-0123456789';
const VIEWER = '{ viewer { id role canSeePii } }';

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
/** An HS256 token exactly as given: every header and claim, however wrong. */
function hs256(header: Record<string, unknown>, payload: Record<string, unknown>, secret: string | Buffer = SECRET): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}
/** An RS256 token exactly as given. */
function rs256(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${rsaSign('sha256', Buffer.from(input), key).toString('base64url')}`;
}
/** Claims that verify, as the service is configured here; override what the case is about. */
const claims = (over: Record<string, unknown> = {}) => ({ sub: 'dana', role: 'agent', iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + 600, ...over });

/** The outcome of a credential on all three doors. */
async function statusOf(app: TestApp, headers: Record<string, string>): Promise<number> {
  return (await app.gql(VIEWER, undefined, headers)).status;
}
async function ingestStatus(app: TestApp, headers: Record<string, string>): Promise<number> {
  const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...headers }, body: ndjson([message(Date.now() % 1_000_000)]) });
  await res.arrayBuffer();
  return res.status;
}
/** connection_init with these params: 'ack', or the close code. */
async function wsOutcome(app: TestApp, params: Record<string, string>): Promise<'ack' | number> {
  const ws = new WebSocket(`${app.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
  ws.on('error', () => undefined);
  try {
    return await new Promise<'ack' | number>((resolve) => {
      ws.on('message', (d) => {
        if ((JSON.parse(String(d)) as { type: string }).type === 'connection_ack') resolve('ack');
      });
      ws.once('close', (code) => resolve(code));
      ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: params })));
    });
  } finally {
    ws.terminate();
  }
}
/** One raw HTTP/1.1 request, for headers fetch will not send (a header twice); the status code. */
function rawStatus(app: TestApp, head: string, body: string): Promise<number> {
  const { port } = new URL(app.url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), '127.0.0.1', () => s.end(`${head}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`));
    let got = '';
    s.on('data', (d) => (got += String(d)));
    const status = () => Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0);
    s.on('end', () => resolve(status()));
    // the server answers a header too large and resets the connection while the request is still being written
    s.on('error', (e) => (status() ? resolve(status()) : reject(e)));
  });
}
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

describe('auth attacks, HS256 secret with issuer and audience', () => {
  let app: TestApp;
  let rsa: { privateKey: KeyObject; publicKey: KeyObject };
  beforeAll(async () => {
    rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    app = await startTestApp(
      {
        EARSHOT_ROLES: 'api,ingest',
        EARSHOT_API_KEYS: `${ADMIN}:admin:ops,${ANALYST}:analyst:bi`,
        EARSHOT_JWT_SECRET: SECRET,
        EARSHOT_JWT_ISSUER: ISSUER,
        EARSHOT_JWT_AUDIENCE: AUDIENCE,
      },
      'auth_attacks_hs',
    );
  }, 90_000);
  afterAll(async () => {
    await app?.close();
  });

  it('accepts the well-formed token on every door (the baseline the attacks are measured against)', async () => {
    const t = hs256({ alg: 'HS256', typ: 'JWT' }, claims());
    const r = await app.gql<{ viewer: { id: string; role: string } }>(VIEWER, undefined, bearer(t));
    expect(r.data.viewer).toMatchObject({ id: 'dana', role: 'agent' });
    expect(await ingestStatus(app, bearer(t))).toBe(200);
    expect(await wsOutcome(app, { Authorization: `Bearer ${t}` })).toBe('ack');
  });

  it('refuses forged headers: alg none, RS256, embedded keys (jwk, jku, x5u), crit, b64:false', async () => {
    const attackerJwk = await exportJWK(rsa.publicKey);
    const c = claims({ role: 'admin' });
    const forged: Record<string, string> = {
      'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64(c)}.`,
      'alg NONE with a signature': `${b64({ alg: 'NONE' })}.${b64(c)}.${b64('x')}`,
      'alg none, HS256 signature': hs256({ alg: 'none' }, c),
      'RS256 by an attacker key': rs256({ alg: 'RS256' }, c, rsa.privateKey),
      'RS256 with that key embedded (jwk)': rs256({ alg: 'RS256', jwk: attackerJwk }, c, rsa.privateKey),
      'RS256 with jku': rs256({ alg: 'RS256', jku: 'http://127.0.0.1:9/jwks' }, c, rsa.privateKey),
      'RS256 with x5u': rs256({ alg: 'RS256', x5u: 'http://127.0.0.1:9/cert' }, c, rsa.privateKey),
      'HS256 signed with an embedded oct jwk': hs256({ alg: 'HS256', jwk: { kty: 'oct', k: b64('attacker') } }, c, 'attacker'),
      'HS256 with an unknown crit extension': hs256({ alg: 'HS256', crit: ['exp-attack'], 'exp-attack': true }, c),
      'HS256 with crit b64 false': (() => {
        const h = b64({ alg: 'HS256', b64: false, crit: ['b64'] });
        const p = JSON.stringify(c).replace(/\./g, '');
        return `${h}.${p}.${createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url')}`;
      })(),
      'HS384 with the secret': (() => {
        const input = `${b64({ alg: 'HS384' })}.${b64(c)}`;
        return `${input}.${createHmac('sha384', SECRET).update(input).digest('base64url')}`;
      })(),
      'signature stripped': hs256({ alg: 'HS256' }, c).replace(/\.[^.]+$/, '.'),
      'a JWE (five parts)': `${b64({ alg: 'dir', enc: 'A256GCM' })}..${b64('iv')}.${b64('x')}.${b64('tag')}`,
    };
    const seen: Record<string, number> = {};
    for (const [name, t] of Object.entries(forged)) seen[name] = await statusOf(app, bearer(t));
    expect(seen).toEqual(Object.fromEntries(Object.keys(forged).map((k) => [k, 401])));
    for (const t of [forged['alg none']!, forged['RS256 with that key embedded (jwk)']!]) {
      expect(await ingestStatus(app, bearer(t))).toBe(401);
      expect(await wsOutcome(app, { Authorization: `Bearer ${t}` })).toBe(4403);
    }
  });

  it('checks every time claim, the issuer and the audience', async () => {
    const t = now();
    const cases: [string, Record<string, unknown>, number][] = [
      ['no exp', { exp: undefined }, 401],
      ['exp as a string', { exp: String(t + 600) }, 401],
      ['expired a second ago', { exp: t - 1 }, 401],
      ['exp 100 years ahead', { exp: t + 100 * 365 * 86_400 }, 401],
      ['exp 100 years ahead, iat 100 years ahead too', { iat: t + 100 * 365 * 86_400 - 60, exp: t + 100 * 365 * 86_400 }, 401],
      ['exp 100 years ahead without iat', { iat: undefined, exp: t + 100 * 365 * 86_400 }, 401],
      ['nbf in a minute', { nbf: t + 60 }, 401],
      ['iat in an hour, exp within the day', { iat: t + 3600, exp: t + 7200 }, 200],
      ['iat as a string', { iat: String(t) }, 401],
      ['no iss', { iss: undefined }, 401],
      ['another iss', { iss: 'https://evil.test/' }, 401],
      ['iss without its slash', { iss: ISSUER.slice(0, -1) }, 401],
      ['no aud', { aud: undefined }, 401],
      ['another aud', { aud: 'other-service' }, 401],
      ['aud as an array with ours', { aud: ['other-service', AUDIENCE] }, 200],
      ['aud as an array without ours', { aud: ['other-service'] }, 401],
    ];
    const seen: Record<string, number> = {};
    for (const [name, over] of cases) seen[name] = await statusOf(app, bearer(hs256({ alg: 'HS256' }, claims(over))));
    expect(seen).toEqual(Object.fromEntries(cases.map(([n, , s]) => [n, s])));
  });

  it('reads the role claim strictly: no case folding, blanks, objects, numbers; a thousand roles cost nothing', async () => {
    const cases: [string, Record<string, unknown>, number | string][] = [
      ['ADMIN', { role: 'ADMIN' }, 403],
      [' admin', { role: ' admin' }, 403],
      ['role as an object', { role: { admin: true } }, 403],
      ['role as a number', { role: 1 }, 403],
      ['role as an array', { role: ['admin'] }, 403],
      ['roles as a string', { role: undefined, roles: 'admin' }, 403],
      ['unknown roles only', { role: undefined, roles: ['root', 'superuser', 'Admin'] }, 403],
      ['unknown roles and analyst', { role: undefined, roles: ['root', 'analyst'] }, 'analyst'],
      ['analyst twice', { role: 'analyst', roles: ['analyst', 'analyst'] }, 'analyst'],
      ['1,000 roles, one analyst', { role: undefined, roles: [...Array.from({ length: 1_000 }, (_, i) => `r${i}`), 'analyst'] }, 'analyst'],
      ['no role', { role: undefined }, 403],
    ];
    const seen: Record<string, number | string> = {};
    for (const [name, over] of cases) {
      const started = performance.now();
      const r = await app.gql<{ viewer: { role: string } | null }>(VIEWER, undefined, bearer(hs256({ alg: 'HS256' }, claims(over))));
      if (name.startsWith('1,000')) console.log(`1,000 roles (${hs256({ alg: 'HS256' }, claims(over)).length} B token): ${(performance.now() - started).toFixed(1)} ms`);
      seen[name] = r.status === 200 ? r.data.viewer!.role : r.status;
    }
    expect(seen).toEqual(Object.fromEntries(cases.map(([n, , s]) => [n, s])));
  });

  it('refuses a token without a subject: every such caller would be one principal "unknown" in the audit trail and the per-caller limits', async () => {
    const cases: [string, Record<string, unknown>, number | string][] = [
      ['no sub', { sub: undefined }, 401],
      ['empty sub', { sub: '' }, 401],
      ['blank sub', { sub: '   ' }, 401],
      ['sub as a number', { sub: 42 }, 401],
      ['sub "unknown"', { sub: 'unknown' }, 'unknown'],
    ];
    const seen: Record<string, number | string> = {};
    for (const [name, over] of cases) {
      const r = await app.gql<{ viewer: { id: string } | null }>(VIEWER, undefined, bearer(hs256({ alg: 'HS256' }, claims(over))));
      seen[name] = r.status === 200 ? r.data.viewer!.id : r.status;
    }
    expect(seen).toEqual(Object.fromEntries(cases.map(([n, , s]) => [n, s])));
  });

  it('answers 431 to a 1 MB Authorization header (the 16 KiB header limit), cheaply; a 60 KB token over the WebSocket is refused', async () => {
    const huge = hs256({ alg: 'HS256' }, claims({ sub: 'x'.repeat(1_000_000) }));
    const started = performance.now();
    const status = await rawStatus(app, `POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer ${huge}\r\n`, JSON.stringify({ query: VIEWER }));
    console.log(`1 MB Authorization header: ${status} in ${(performance.now() - started).toFixed(1)} ms`);
    expect(status).toBe(431);
    // so is a token of 10,000 roles (about 90 KB)
    const roles = hs256({ alg: 'HS256' }, claims({ roles: Array.from({ length: 10_000 }, (_, i) => `r${i}`) }));
    const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(roles) }, body: JSON.stringify({ query: VIEWER }) });
    await res.arrayBuffer();
    expect(res.status).toBe(431);
    // a large but signed-by-nobody token over the socket: refused, not verified as someone
    const big = hs256({ alg: 'HS256' }, claims({ role: 'admin', sub: 'y'.repeat(40_000) }), 'not-the-secret');
    expect(await wsOutcome(app, { Authorization: `Bearer ${big}` })).toBe(4403);
  });

  it('reads Bearer in any case and spacing, and the first of two Authorization headers only', async () => {
    for (const form of [`Bearer ${ADMIN}`, `bearer ${ADMIN}`, `BEARER   ${ADMIN}`, `Bearer\t${ADMIN}`]) {
      expect({ form, status: await statusOf(app, { authorization: form }) }).toEqual({ form, status: 200 });
    }
    const body = JSON.stringify({ query: VIEWER });
    const head = (a: string, b: string) => `POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer ${a}\r\nauthorization: Bearer ${b}\r\n`;
    expect(await rawStatus(app, head(ANALYST, 'not-a-key-0123456789'), body)).toBe(200);
    expect(await rawStatus(app, head('not-a-key-0123456789', ADMIN), body)).toBe(401);
    // two X-API-Key headers are joined ("a, b"): no key
    expect(await rawStatus(app, `POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-api-key: ${ANALYST}\r\nx-api-key: ${ADMIN}\r\n`, body)).toBe(401);
  });

  it('with X-API-Key and a Bearer token both sent, the X-API-Key alone decides: never the other, never more', async () => {
    const admin = hs256({ alg: 'HS256' }, claims({ role: 'admin', sub: 'root' }));
    const role = async (headers: Record<string, string>) => {
      const r = await app.gql<{ viewer: { role: string } | null }>(VIEWER, undefined, headers);
      return r.status === 200 ? r.data.viewer!.role : r.status;
    };
    expect(await role({ 'x-api-key': ANALYST, ...bearer(admin) })).toBe('analyst');
    expect(await role({ 'x-api-key': ANALYST, ...bearer(ADMIN) })).toBe('analyst');
    // a wrong key is a credential that does not verify: refused, whatever else is sent
    expect(await role({ 'x-api-key': 'not-a-key-0123456789', ...bearer(admin) })).toBe(401);
    expect(await role({ 'x-api-key': 'not-a-key-0123456789', ...bearer(ADMIN) })).toBe(401);
    expect(await ingestStatus(app, { 'x-api-key': 'not-a-key-0123456789', ...bearer(admin) })).toBe(401);
    expect(await wsOutcome(app, { 'X-API-Key': 'not-a-key-0123456789', Authorization: `Bearer ${admin}` })).toBe(4403);
    // an empty X-API-Key (the explorer's default header) is no key: the Bearer token is read
    expect(await role({ 'x-api-key': '', ...bearer(admin) })).toBe('admin');
    expect(await wsOutcome(app, { 'X-API-Key': '', Authorization: `Bearer ${admin}` })).toBe('ack');
  });

  it('compares API keys exactly: another role in another case, a trailing newline over the socket, a prefix', async () => {
    expect(await statusOf(app, { 'x-api-key': ADMIN.toUpperCase() })).toBe(401);
    expect(await statusOf(app, { 'x-api-key': ADMIN.slice(0, -1) })).toBe(401);
    expect(await statusOf(app, { 'x-api-key': `${ADMIN}x` })).toBe(401);
    // HTTP strips blanks around a header value (RFC 9110), so ` key ` is the key; a socket's params are not trimmed
    expect(await statusOf(app, { 'x-api-key': ` ${ANALYST} ` })).toBe(200);
    expect(await wsOutcome(app, { 'X-API-Key': `${ADMIN}\n` })).toBe(4403);
    expect(await wsOutcome(app, { 'X-API-Key': ADMIN.toUpperCase() })).toBe(4403);
    expect(await wsOutcome(app, { 'X-API-Key': ANALYST })).toBe('ack');
  });
});

type JwksMode = 'ok' | 'status500' | 'html' | 'invalid-json' | 'redirect' | 'hang' | 'huge';

/** The identity provider's JWKS endpoint, counting its requests; `mode` says how it misbehaves. */
async function startJwksServer(keys: JWK[]) {
  const state = { keys, mode: 'ok' as JwksMode, requests: 0, bytesSent: 0 };
  const hung = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    state.requests++;
    switch (state.mode) {
      case 'status500':
        return void res.writeHead(500).end('down');
      case 'html':
        return void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>maintenance</html>');
      case 'invalid-json':
        return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys": [');
      case 'redirect':
        return void res.writeHead(302, { location: 'http://127.0.0.1:9/jwks' }).end();
      case 'hang':
        hung.add(res);
        return;
      case 'huge': {
        // 50 MB: the real keys, then 50 MB of padding keys, streamed
        res.writeHead(200, { 'content-type': 'application/json' });
        const pad = JSON.stringify({ kty: 'oct', kid: 'pad', k: 'A'.repeat(1000) });
        let left = 50_000;
        const head = `{"keys":[${state.keys.map((k) => JSON.stringify(k)).join(',')}`;
        res.write(head);
        state.bytesSent += head.length;
        const more = () => {
          while (left > 0) {
            left--;
            state.bytesSent += pad.length + 1;
            if (!res.write(`,${pad}`)) return void res.once('drain', more);
          }
          res.end(']}');
        };
        res.on('error', () => undefined);
        return more();
      }
      default:
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    state,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    close: () => {
      for (const r of hung) r.destroy();
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('auth attacks, JWKS (RS256)', () => {
  let app: TestApp;
  let jwks: Awaited<ReturnType<typeof startJwksServer>>;
  let attacker: Awaited<ReturnType<typeof startJwksServer>>;
  let idp: { privateKey: KeyObject; publicKey: KeyObject };
  let evil: { privateKey: KeyObject; publicKey: KeyObject };
  let publicJwk: JWK;
  const sign = (over: Record<string, unknown> = {}, header: Record<string, unknown> = {}) => rs256({ alg: 'RS256', kid: 'idp-1', ...header }, claims(over), idp.privateKey);

  beforeAll(async () => {
    idp = generateKeyPairSync('rsa', { modulusLength: 2048 });
    evil = generateKeyPairSync('rsa', { modulusLength: 2048 });
    publicJwk = { ...(await exportJWK(idp.publicKey)), kid: 'idp-1', use: 'sig' };
    jwks = await startJwksServer([publicJwk]);
    attacker = await startJwksServer([{ ...(await exportJWK(evil.publicKey)), kid: 'idp-1', use: 'sig' }]);
    app = await startTestApp(
      { EARSHOT_ROLES: 'api,ingest', EARSHOT_API_KEYS: `${ADMIN}:admin:ops,${ANALYST}:analyst:bi`, EARSHOT_JWKS_URL: jwks.url, EARSHOT_JWT_ISSUER: ISSUER, EARSHOT_JWT_AUDIENCE: AUDIENCE },
      'auth_attacks_jwks',
    );
    expect(await statusOf(app, bearer(sign()))).toBe(200);
  }, 90_000);
  afterAll(async () => {
    await app?.close();
    await jwks?.close();
    await attacker?.close();
  });

  it('refuses algorithm confusion (HS256 keyed with the public key), alg none, and keys the token brings itself', async () => {
    const c = claims({ role: 'admin' });
    const pem = idp.publicKey.export({ type: 'spki', format: 'pem' });
    const pkcs1 = idp.publicKey.export({ type: 'pkcs1', format: 'pem' });
    const evilJwk = { ...(await exportJWK(evil.publicKey)), kid: 'idp-1' };
    const forged: Record<string, string> = {
      'HS256 keyed with the SPKI PEM': hs256({ alg: 'HS256', kid: 'idp-1' }, c, pem),
      'HS256 keyed with the PKCS#1 PEM': hs256({ alg: 'HS256', kid: 'idp-1' }, c, pkcs1),
      'HS256 keyed with the JWK JSON': hs256({ alg: 'HS256', kid: 'idp-1' }, c, JSON.stringify(publicJwk)),
      'HS256 keyed with n': hs256({ alg: 'HS256', kid: 'idp-1' }, c, Buffer.from(publicJwk.n!, 'base64url')),
      'alg none': `${b64({ alg: 'none', kid: 'idp-1' })}.${b64(c)}.`,
      'embedded jwk of the attacker, the known kid': rs256({ alg: 'RS256', kid: 'idp-1', jwk: evilJwk }, c, evil.privateKey),
      'jku at the attacker': rs256({ alg: 'RS256', kid: 'idp-1', jku: attacker.url }, c, evil.privateKey),
      'x5u at the attacker': rs256({ alg: 'RS256', kid: 'idp-1', x5u: attacker.url }, c, evil.privateKey),
      'PS256 by the attacker': rs256({ alg: 'PS256', kid: 'idp-1' }, c, evil.privateKey),
      'unknown crit': rs256({ alg: 'RS256', kid: 'idp-1', crit: ['x-attack'], 'x-attack': 1 }, c, idp.privateKey),
    };
    const seen: Record<string, number> = {};
    for (const [name, t] of Object.entries(forged)) seen[name] = await statusOf(app, bearer(t));
    expect(seen).toEqual(Object.fromEntries(Object.keys(forged).map((k) => [k, 401])));
    expect(attacker.state.requests).toBe(0);
    expect(await wsOutcome(app, { Authorization: `Bearer ${forged['HS256 keyed with the SPKI PEM']!}` })).toBe(4403);
    expect(await ingestStatus(app, bearer(forged['embedded jwk of the attacker, the known kid']!))).toBe(401);
    // the real key still works, with a kid or without
    expect(await statusOf(app, bearer(sign({}, { kid: undefined })))).toBe(200);
  });

  it('fetches the JWKS at most once for 100 tokens of unknown kids (no amplification against the identity provider)', async () => {
    const before = jwks.state.requests;
    const statuses = new Set<number>();
    for (let i = 0; i < 100; i++) statuses.add(await statusOf(app, bearer(rs256({ alg: 'RS256', kid: `unknown-${i}` }, claims(), evil.privateKey))));
    const fetched = jwks.state.requests - before;
    console.log(`JWKS fetches for 100 unknown kids: ${fetched}`);
    expect([...statuses]).toEqual([401]);
    expect(fetched).toBeLessThanOrEqual(1);
  });

  it('a wrong X-API-Key beside a valid JWT is refused over HTTP and at connection_init (the socket would escape key withdrawal)', async () => {
    const headers = { 'x-api-key': 'not-a-key-0123456789', ...bearer(sign({ role: 'admin' })) };
    expect(await statusOf(app, headers)).toBe(401);
    expect(await wsOutcome(app, { 'X-API-Key': 'not-a-key-0123456789', Authorization: headers.authorization })).toBe(4403);
  });
});

describe('auth attacks, a JWKS endpoint that is down or hostile', () => {
  let app: TestApp;
  let jwks: Awaited<ReturnType<typeof startJwksServer>>;
  let idp: { privateKey: KeyObject; publicKey: KeyObject };
  const token = () => rs256({ alg: 'RS256', kid: 'idp-1' }, claims(), idp.privateKey);

  beforeAll(async () => {
    idp = generateKeyPairSync('rsa', { modulusLength: 2048 });
    jwks = await startJwksServer([{ ...(await exportJWK(idp.publicKey)), kid: 'idp-1', use: 'sig' }]);
  }, 90_000);
  // an app of its own for each test: what the key set cache and the retry pause hold depends on
  // what came before, and the tests run in any order
  beforeEach(async () => {
    jwks.state.mode = 'status500';
    app = await startTestApp(
      { EARSHOT_API_KEYS: `${ADMIN}:admin:ops`, EARSHOT_JWKS_URL: jwks.url, EARSHOT_JWT_ISSUER: ISSUER, EARSHOT_JWT_AUDIENCE: AUDIENCE },
      'auth_attacks_jwks_down',
    );
  }, 90_000);
  afterEach(async () => {
    await app?.close();
  });
  afterAll(async () => {
    await jwks?.close();
  });

  /** how long the last request of `untilFetched` took */
  let lastMs = 0;
  /** Until the JWKS server has been asked again, in its present mode: the retry pause is over. */
  const untilFetched = async (make: () => Promise<number>) => {
    const from = jwks.state.requests;
    let status = 0;
    await expect
      .poll(
        async () => {
          const started = performance.now();
          status = await make();
          lastMs = performance.now() - started;
          return jwks.state.requests > from;
        },
        { timeout: 20_000, interval: 200 },
      )
      .toBe(true);
    return status;
  };

  it('while the JWKS is down from the start: 401s, API keys unaffected, and the identity provider asked at most a few times per 100 requests', async () => {
    const before = jwks.state.requests;
    const started = performance.now();
    const statuses = new Set<number>();
    for (let i = 0; i < 100; i++) statuses.add(await statusOf(app, bearer(token())));
    const fetched = jwks.state.requests - before;
    console.log(`JWKS down: 100 requests took ${(performance.now() - started).toFixed(0)} ms and ${fetched} JWKS fetches`);
    expect([...statuses]).toEqual([401]);
    expect(fetched).toBeLessThanOrEqual(3);
    expect(await statusOf(app, { 'x-api-key': ADMIN })).toBe(200);
  }, 60_000);

  it('HTML, invalid JSON and a redirect are refused fetches, not a crash; the redirect is not followed', async () => {
    for (const mode of ['html', 'invalid-json', 'redirect'] as const) {
      jwks.state.mode = mode;
      expect({ mode, status: await untilFetched(() => statusOf(app, bearer(token()))) }).toEqual({ mode, status: 401 });
    }
  }, 90_000);

  it('a JWKS that never answers holds a request at most the fetch timeout, and the next ones not at all', async () => {
    jwks.state.mode = 'hang';
    await untilFetched(() => statusOf(app, bearer(token())));
    const first = lastMs;
    const started = performance.now();
    const statuses = await Promise.all(Array.from({ length: 20 }, () => statusOf(app, bearer(token()))));
    const rest = performance.now() - started;
    console.log(`JWKS hangs: the request that fetched waited ${first.toFixed(0)} ms; 20 more took ${rest.toFixed(0)} ms`);
    expect(first).toBeLessThan(6_000);
    expect(new Set(statuses)).toEqual(new Set([401]));
    expect(rest).toBeLessThan(1_000);
  }, 60_000);

  it('a 50 MB JWKS is not read whole', async () => {
    jwks.state.mode = 'huge';
    jwks.state.bytesSent = 0;
    const rss = process.memoryUsage().rss;
    const status = await untilFetched(() => statusOf(app, bearer(token())));
    console.log(`50 MB JWKS: the request that fetched it answered ${status} in ${lastMs.toFixed(0)} ms, ${(jwks.state.bytesSent / 1e6).toFixed(1)} MB sent, rss ${((process.memoryUsage().rss - rss) / 1e6).toFixed(0)} MB more`);
    expect(status).toBe(401);
    // the server wrote into the socket buffers before it saw the close: far below 50 MB
    await expect.poll(() => jwks.state.bytesSent, { timeout: 5_000 }).toBeLessThan(10_000_000);
  }, 60_000);

  it('verifies again once the JWKS answers', async () => {
    expect(await untilFetched(() => statusOf(app, bearer(token())))).toBe(401);
    jwks.state.mode = 'ok';
    await expect.poll(() => statusOf(app, bearer(token())), { timeout: 20_000, interval: 200 }).toBe(200);
  }, 30_000);
});

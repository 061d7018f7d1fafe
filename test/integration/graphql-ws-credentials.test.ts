import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';

const INGEST = 'ingest-key-ws-credentials-0123456789';
const ALPHA = 'alpha-key-ws-credentials-0123456789';
const BETA = 'beta-key-ws-credentials-0123456789';
const RECHECK_MS = 500;
const CAP = 3;

type Mode = 'ok' | 'status500' | 'reset' | 'garbage';

/** The identity provider's JWKS endpoint: keys can be withdrawn, and it can fail. */
async function startJwksServer() {
  const state = { keys: [] as JWK[], mode: 'ok' as Mode, requests: 0 };
  const server = http.createServer((req, res) => {
    state.requests++;
    if (state.mode === 'reset') return void req.socket.destroy();
    if (state.mode === 'status500') return void res.writeHead(500).end('identity provider down');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(state.mode === 'garbage' ? '<html>maintenance</html>' : JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { state, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

interface Conn {
  ws: WebSocket;
  acked: boolean;
  closed: { code: number; reason: string; at: number } | null;
  events: { id: string; text: string }[];
}

describe('graphql-ws credentials: keys withdrawn from the JWKS, and connections per principal', () => {
  let app: TestApp;
  let jwks: Awaited<ReturnType<typeof startJwksServer>>;
  /** signs a one-hour agent token for `sub` with key a or b of the identity provider */
  const signers = {} as Record<'a' | 'b', { sign: (sub: string) => Promise<string> }>;
  let publicKeys: Record<'a' | 'b', JWK>;
  const open: Conn[] = [];

  beforeAll(async () => {
    jwks = await startJwksServer();
    const pairs = { a: await generateKeyPair('ES256'), b: await generateKeyPair('ES256') };
    publicKeys = { a: { ...(await exportJWK(pairs.a.publicKey)), kid: 'key-a', alg: 'ES256', use: 'sig' }, b: { ...(await exportJWK(pairs.b.publicKey)), kid: 'key-b', alg: 'ES256', use: 'sig' } };
    for (const k of ['a', 'b'] as const) {
      signers[k] = {
        sign: (sub) =>
          new SignJWT({ role: 'agent' })
            .setProtectedHeader({ alg: 'ES256', kid: `key-${k}` })
            .setSubject(sub)
            .setIssuedAt()
            .setExpirationTime('1h')
            .sign(pairs[k].privateKey),
      };
    }
    jwks.state.keys = [publicKeys.a, publicKeys.b];
    app = await startTestApp(
      {
        EARSHOT_ROLES: 'api,ingest',
        EARSHOT_API_KEYS: `${INGEST}:admin:ingest,${ALPHA}:agent:alpha,${BETA}:agent:beta`,
        EARSHOT_JWKS_URL: jwks.url,
        EARSHOT_WS_RECHECK_MS: String(RECHECK_MS),
        EARSHOT_WS_MAX_CONNECTIONS_PER_PRINCIPAL: String(CAP),
      },
      'ws_credentials',
    );
  }, 90_000);
  afterAll(async () => {
    for (const c of open) c.ws.terminate();
    await app?.close();
    await jwks?.close();
  });

  /** A graphql-transport-ws connection after its connection_init was answered: acked, or closed with a code and reason. */
  const connect = async (params: Record<string, string>): Promise<Conn> => {
    const ws = new WebSocket(`${app.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    const conn: Conn = { ws, acked: false, closed: null, events: [] };
    open.push(conn);
    ws.on('error', () => undefined);
    const answered = new Promise<void>((resolve) => {
      ws.on('message', (d) => {
        const m = JSON.parse(String(d)) as { type: string; payload?: { data?: { interactionRecorded?: { id: string; text: string } } } };
        if (m.type === 'connection_ack') {
          conn.acked = true;
          resolve();
        }
        const event = m.payload?.data?.interactionRecorded;
        if (m.type === 'next' && event) conn.events.push(event);
      });
      ws.once('close', (code, reason) => {
        conn.closed = { code, reason: String(reason), at: Date.now() };
        resolve();
      });
    });
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'connection_init', payload: params }));
    await answered;
    return conn;
  };
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
  const subscribe = (c: Conn, source: string) =>
    c.ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: `subscription($s: String!) { interactionRecorded(filter: { source: $s }) { id text } }`, variables: { s: source } } }));
  let n = 0;
  const ingest = async (source: string, text: string) => {
    const line = { source, externalId: `${source}-${++n}-${Date.now()}`, occurredAt: new Date().toISOString(), direction: 'inbound', author: { handle: `ws-credentials-${n}` }, text };
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': INGEST }, body: JSON.stringify(line) });
    expect(res.status).toBe(200);
  };
  /** Until every connection has received an event of `source` with `text`: its subscription is live. */
  const untilDelivered = async (conns: Conn[], source: string, text: string) => {
    await expect
      .poll(
        async () => {
          await ingest(source, text);
          return conns.every((c) => c.events.some((e) => e.text === text));
        },
        { timeout: 20_000, interval: 300 },
      )
      .toBe(true);
  };
  /** Until the JWKS server has answered `rounds` more requests: that many re-checks have run. */
  const untilRounds = async (rounds: number) => {
    const from = jwks.state.requests;
    await expect.poll(() => jwks.state.requests - from, { timeout: RECHECK_MS * rounds + 10_000, interval: 50 }).toBeGreaterThanOrEqual(rounds);
  };

  it('keeps every socket open while the JWKS cannot be fetched (5xx, connection reset, not a key set)', async () => {
    const a = await connect(bearer(await signers.a.sign('dana')));
    const b = await connect(bearer(await signers.b.sign('eve')));
    expect([a.acked, b.acked]).toEqual([true, true]);
    subscribe(a, 'trustpilot');
    subscribe(b, 'trustpilot');
    await untilDelivered([a, b], 'trustpilot', 'before the outage');
    try {
      for (const mode of ['status500', 'reset', 'garbage'] as const) {
        jwks.state.mode = mode;
        await untilRounds(3);
        expect({ mode, a: a.closed, b: b.closed }).toEqual({ mode, a: null, b: null });
      }
      // still served, not merely left open
      await untilDelivered([a, b], 'trustpilot', 'during the outage');
    } finally {
      jwks.state.mode = 'ok';
    }
    a.ws.close();
    b.ws.close();
  }, 60_000);

  it('closes a socket whose signing key is withdrawn within the re-check interval, with 4403, and keeps the others', async () => {
    const tokenA = await signers.a.sign('frank');
    const a = await connect(bearer(tokenA));
    const b = await connect(bearer(await signers.b.sign('grace')));
    const key = await connect({ 'X-API-Key': BETA });
    expect([a.acked, b.acked, key.acked]).toEqual([true, true, true]);
    for (const c of [a, b, key]) subscribe(c, 'email');
    await untilDelivered([a, b, key], 'email', 'before the rotation');

    // key a leaked: the identity provider withdraws it
    jwks.state.keys = [publicKeys.b];
    const withdrawnAt = Date.now();
    await expect.poll(() => a.closed, { timeout: RECHECK_MS + 10_000, interval: 20 }).not.toBeNull();
    const took = a.closed!.at - withdrawnAt;
    console.log(`socket of the withdrawn key closed ${took} ms after the withdrawal (re-check every ${RECHECK_MS} ms)`);
    expect(a.closed!.code).toBe(4403);
    expect(a.closed!.reason).toMatch(/^Forbidden: the token no longer verifies/);
    // one interval, and the time of one fetch and close on a loaded machine
    expect(took).toBeLessThan(RECHECK_MS + 1_500);

    // the others stay open round after round, and are still served
    await untilRounds(3);
    expect([b.closed, key.closed]).toEqual([null, null]);
    const seenByA = a.events.length;
    await untilDelivered([b, key], 'email', 'after the rotation');
    expect(a.events.length).toBe(seenByA);
    // and the withdrawn key opens no new connection either
    const again = await connect(bearer(tokenA));
    expect(again.acked).toBe(false);
    expect(again.closed?.code).toBe(4403);
    // the identity provider publishes key a again: once a re-check (they run while b is open) has
    // fetched it, its tokens connect again (with no socket to re-check, an unknown kid is fetched
    // for at most every 30 s, jose's cooldown), and the other tests start from both keys
    jwks.state.keys = [publicKeys.a, publicKeys.b];
    await expect
      .poll(
        async () => {
          const c = await connect(bearer(tokenA));
          c.ws.close();
          return c.acked;
        },
        { timeout: RECHECK_MS + 10_000, interval: 100 },
      )
      .toBe(true);
    for (const c of [b, key]) c.ws.close();
  }, 60_000);

  it(`refuses a principal's connection past ${CAP} with 4429, lets others in, and frees the count on close`, async () => {
    const held: Conn[] = [];
    for (let i = 0; i < CAP; i++) held.push(await connect({ 'X-API-Key': ALPHA }));
    expect(held.map((c) => c.acked)).toEqual(Array(CAP).fill(true));

    const extra = await connect({ 'X-API-Key': ALPHA });
    expect(extra.acked).toBe(false);
    expect(extra.closed?.code).toBe(4429);
    expect(extra.closed?.reason).toBe(`Too many connections: at most ${CAP} per API key or user; close one first`);
    // the same key as a Bearer credential is the same principal
    const asBearer = await connect(bearer(ALPHA));
    expect(asBearer.closed?.code).toBe(4429);

    // another key, and a user, are not held back by it
    const other = await connect({ 'X-API-Key': BETA });
    expect(other.acked).toBe(true);
    const user = await connect(bearer(await signers.b.sign('alpha')));
    expect(user.acked).toBe(true);

    // one closed: the key may connect again (once the server has seen the close)
    held.shift()!.ws.close(1000);
    let next: Conn | null = null;
    await expect
      .poll(
        async () => {
          const c = await connect({ 'X-API-Key': ALPHA });
          if (c.acked) next = c;
          return c.acked;
        },
        { timeout: 10_000, interval: 100 },
      )
      .toBe(true);
    // and it holds its cap again
    const over = await connect({ 'X-API-Key': ALPHA });
    expect(over.closed?.code).toBe(4429);
    // a refused connection took nothing: the earlier ones stayed open
    expect(held.every((c) => c.closed === null)).toBe(true);
    for (const c of [...held, other, user, next!]) c.ws.close();
  }, 60_000);
});

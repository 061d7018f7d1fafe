import fs from 'node:fs';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnEarshot, type EarshotProcess } from '../support/earshot-process';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { collect, wsClient } from '../support/ws-client';

const ADMIN = 'admin-key-ws-hostile-0123456789';
const SECRET = 'a-jwt-secret-of-sufficient-length-0123456789';

const signJwt = (claims: Record<string, unknown>, expiresInSeconds: number) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('ws-user')
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expiresInSeconds)
    .sign(new TextEncoder().encode(SECRET));

/** The server process's resident memory and CPU time so far (Linux /proc). */
const rssBytes = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
const cpuTicks = (pid: number) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]);
};

/** A large, cheap result: the schema's types with their fields and descriptions. */
const BIG_QUERY = `{ __schema { types { name description fields { name description args { name description type { name kind ofType { name kind } } } type { name kind ofType { name kind ofType { name kind } } } } inputFields { name description } enumValues { name description } } } }`;

describe('graphql-ws against hostile and unlucky clients', () => {
  let database: TestDatabase;
  let earshot: EarshotProcess;
  let url: string;

  beforeAll(async () => {
    database = await createTestDatabase('ws_hostile');
    earshot = spawnEarshot({
      DATABASE_URL: database.url,
      EARSHOT_ROLES: 'api,ingest',
      EARSHOT_API_KEYS: `${ADMIN}:admin`,
      EARSHOT_JWT_SECRET: SECRET,
      EARSHOT_GRAPHQL_INTROSPECTION: 'true',
    });
    url = await earshot.listening(60_000);
  }, 90_000);
  afterAll(async () => {
    await earshot?.kill('SIGTERM');
    await database?.drop();
  });

  const ingest = async (lines: unknown[]) => {
    const res = await fetch(`${url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': ADMIN }, body: lines.map((l) => JSON.stringify(l)).join('\n') });
    expect(res.status).toBe(200);
  };

  it('closes a subscription with 4403 when its JWT expires, and delivers nothing after', async () => {
    // long enough for the warm-up on a loaded machine
    const lifetime = 12;
    const token = await signJwt({ role: 'agent' }, lifetime);
    const expiresAt = (Math.floor(Date.now() / 1000) + lifetime) * 1000;
    const closes: { code: number; at: number }[] = [];
    const client = wsClient(url, { Authorization: `Bearer ${token}` }, (code) => closes.push({ code, at: Date.now() }));
    const sub = collect<{ interactionRecorded: { text: string } }>(client, `subscription { interactionRecorded(filter: { source: "email" }) { id text customer { identities { kind value } } } }`);
    const tag = `jwt-${Date.now()}`;
    // the subscription is registered once a first event arrives
    await expect
      .poll(async () => {
        await ingest([{ source: 'email', externalId: `${tag}-${Date.now()}`, occurredAt: new Date().toISOString(), direction: 'inbound', author: { handle: 'warm@example.com' }, text: 'warm up' }]);
        return sub.events.length > 0;
      }, { timeout: 20_000, interval: 300 })
      .toBe(true);
    expect(Date.now()).toBeLessThan(expiresAt);

    // the socket is closed at the token's expiry (graphql-ws clients reconnect on 4403 with fresh connectionParams)
    await expect.poll(() => closes.length, { timeout: expiresAt - Date.now() + 3_000, interval: 100 }).toBeGreaterThan(0);
    expect(closes[0]!.code).toBe(4403);
    expect(closes[0]!.at).toBeGreaterThanOrEqual(expiresAt - 1_000);
    expect(closes[0]!.at).toBeLessThan(expiresAt + 2_000);
    const delivered = sub.events.length;
    await ingest([{ source: 'email', externalId: `${tag}-after`, occurredAt: new Date().toISOString(), direction: 'inbound', author: { handle: 'late@example.com' }, text: 'after expiry' }]);
    // the same token cannot open a new connection either
    const refused: number[] = [];
    const again = wsClient(url, { Authorization: `Bearer ${token}` }, (code) => refused.push(code));
    collect(again, `subscription { interactionRecorded { id } }`);
    await expect.poll(() => refused, { timeout: 10_000 }).toContain(4403);
    expect(sub.events.length).toBe(delivered);
    expect(JSON.stringify(sub.events)).not.toContain('after expiry');
    await client.dispose();
    await again.dispose();
  }, 60_000);

  it('never sends an analyst an email or phone through subscription payloads, by aliases, fragments or nesting', async () => {
    const tag = `pii${Date.now()}`;
    const email = `${tag}.person@example.com`;
    const phone = '+14155550199';
    const analystToken = await signJwt({ role: 'analyst' }, 600);
    const analyst = wsClient(url, { Authorization: `Bearer ${analystToken}` });
    const admin = wsClient(url, { 'X-API-Key': ADMIN });
    const FRAGMENTS = `
      fragment C on Customer { id displayName who: displayName identities { kind value v: value network redacted } alsoIds: identities { value }
        interactions(first: 5) { edges { node { ...I } } } }
      fragment I on Interaction { id text author { handle h: handle displayName } a2: author { ... on Author { handle } } customer { id displayName identities { value } } }`;
    const streams = [
      `subscription { x: interactionRecorded(filter: { source: "email" }) { ...I customer { ...C } } } ${FRAGMENTS}`,
      `subscription { customerSentimentChanged { ...C } } ${FRAGMENTS}`,
      `subscription { listeningItemChanged { id customer { ...C } interaction { ...I } lastInteraction { ...I } } } ${FRAGMENTS}`,
    ];
    const forAnalyst = streams.map((q) => collect<any>(analyst, q));
    const forAdmin = collect<any>(admin, streams[0]!);
    // an unhappy email that names the writer's address and phone in its author fields: it opens a
    // listening item and changes the customer's sentiment, so all three subscriptions fire
    await expect
      .poll(async () => {
        await ingest([{
          source: 'email', externalId: `${tag}-${Date.now()}`, occurredAt: new Date().toISOString(), direction: 'inbound',
          author: { handle: email, displayName: phone, email, phone }, text: 'I was charged twice and nobody answers. Terrible, refund me now!',
        }]);
        return forAnalyst.every((s) => s.events.length > 0) && forAdmin.events.length > 0;
      }, { timeout: 30_000, interval: 500 })
      .toBe(true);
    // the admin sees the address (so it is there to leak), the analyst in none of the streams
    expect(JSON.stringify(forAdmin.events)).toContain(email);
    for (const s of forAnalyst) {
      const text = JSON.stringify(s.events);
      expect(s.errors).toEqual([]);
      expect(text).not.toContain(email);
      expect(text).not.toContain('4155550199');
      expect(text).not.toContain('example.com');
    }
    await analyst.dispose();
    await admin.dispose();
  }, 60_000);

  it('survives malformed frames, duplicate ids and a connection that never sends connection_init', async () => {
    const wsUrl = `${url.replace(/^http/, 'ws')}/graphql`;
    const open = async () => {
      const ws = new WebSocket(wsUrl, 'graphql-transport-ws');
      const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
      ws.on('error', () => undefined);
      await new Promise((r) => ws.once('open', r));
      return { ws, closed };
    };
    const init = async (ws: WebSocket) => {
      ws.send(JSON.stringify({ type: 'connection_init', payload: { 'X-API-Key': ADMIN } }));
      const ack = await new Promise<string>((r) => ws.once('message', (d) => r(String(d))));
      expect(JSON.parse(ack).type).toBe('connection_ack');
    };
    // no connection_init: closed by the server (graphql-ws: 4408 after 3 s)
    const silent = await open();
    expect(await silent.closed).toBe(4408);
    // each bad frame closes only its own connection, with a 4xxx or 1009 code, and no 1011
    const bad: ((ws: WebSocket) => void)[] = [
      (ws) => ws.send(Buffer.from([0xff, 0x00, 0xfe])),
      (ws) => ws.send('{"type":"subscribe","id":'),
      (ws) => ws.send(JSON.stringify({ type: 'whatever', id: '1' })),
      (ws) => ws.send(JSON.stringify({ type: 'subscribe', id: 1, payload: { query: '{ viewer { role } }' } })),
      (ws) => ws.send(JSON.stringify({ type: 'subscribe', id: 'x', payload: { query: 42 } })),
      (ws) => ws.send('x'.repeat(200_000)),
      (ws) => {
        const q = `subscription { interactionRecorded { id } }`;
        ws.send(JSON.stringify({ type: 'subscribe', id: 'dup', payload: { query: q } }));
        ws.send(JSON.stringify({ type: 'subscribe', id: 'dup', payload: { query: q } }));
      },
    ];
    for (const send of bad) {
      const c = await open();
      await init(c.ws);
      send(c.ws);
      const code = await c.closed;
      expect([4400, 4409, 1009, 1007]).toContain(code);
    }
    const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': ADMIN }, body: JSON.stringify({ query: '{ viewer { role } }' }) });
    expect(res.status).toBe(200);
    expect(earshot.child.exitCode).toBeNull();
  }, 60_000);
});

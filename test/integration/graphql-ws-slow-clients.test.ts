import fs from 'node:fs';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MESSAGE_BURST } from '../../src/graphql/ws-server';
import { spawnEarshot, type EarshotProcess } from '../support/earshot-process';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

const ADMIN = 'admin-key-ws-slow-clients-0123456789';
/** EARSHOT_SUBSCRIPTION_MAX_BUFFERED_BYTES's default: what one connection may leave unread */
const BOUND = 1024 * 1024;

/**
 * What the kernel may hold between the server's process and a client that stopped reading: the
 * server's send buffer at its largest, and a margin for the client's receive buffer.
 */
const KERNEL_SLACK = Number(fs.readFileSync('/proc/sys/net/ipv4/tcp_wmem', 'utf8').trim().split(/\s+/)[2]) + 4 * 1024 * 1024;

/** The server process's resident memory (Linux /proc). */
const rssBytes = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

interface Peer {
  ws: WebSocket;
  /** bytes of messages received */
  received: () => number;
  closed: Promise<{ code: number; reason: string }>;
  /** stops reading: the kernel buffers fill and the server's writes queue up in its process */
  stopReading(): void;
  resumeReading(): void;
}

/**
 * A client that behaves badly on purpose: it can stop reading the socket (as a stalled tab or a
 * proxy that stopped forwarding does) while it keeps writing.
 */
describe('graphql-ws against clients that do not read, or send too much', () => {
  let database: TestDatabase;
  let earshot: EarshotProcess;
  let url: string;

  beforeAll(async () => {
    database = await createTestDatabase('ws_slow_clients');
    earshot = spawnEarshot({ DATABASE_URL: database.url, EARSHOT_ROLES: 'api,ingest', EARSHOT_API_KEYS: `${ADMIN}:admin` });
    url = await earshot.listening(60_000);
  }, 90_000);
  afterAll(async () => {
    await earshot?.kill('SIGTERM');
    await database?.drop();
  });

  const connect = async (opts: WebSocket.ClientOptions = {}): Promise<Peer> => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws', opts);
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.once('close', (code, reason) => r({ code, reason: String(reason) })));
    ws.on('error', () => undefined);
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'connection_init', payload: { 'X-API-Key': ADMIN } }));
    const ack = await new Promise<string>((r) => ws.once('message', (d) => r(String(d))));
    expect(JSON.parse(ack).type).toBe('connection_ack');
    let bytes = 0;
    ws.on('message', (d: Buffer) => (bytes += d.length));
    // ws's own socket: pausing it stops reading, and TCP flow control does the rest
    const raw = (ws as unknown as { _socket: import('node:net').Socket })._socket;
    return { ws, closed, received: () => bytes, stopReading: () => raw.pause(), resumeReading: () => raw.resume() };
  };

  /**
   * Writes `messages` while the server takes them: past 4 MB unsent, a message waits until ws has
   * handed it to the kernel (its send callback; also called with an error once the socket closes).
   */
  const write = async (ws: WebSocket, messages: Iterable<string>) => {
    for (const m of messages) {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (ws.bufferedAmount <= 4_000_000) ws.send(m);
      else await new Promise<void>((r) => ws.send(m, () => r()));
    }
  };

  const httpStillAnswers = async () => {
    const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': ADMIN }, body: JSON.stringify({ query: '{ viewer { role } }' }) });
    expect(res.status).toBe(200);
  };

  it('closes with 1013 clients that send large pings and never read the pongs, having queued no more than the bound', async () => {
    const pid = earshot.child.pid!;
    const before = rssBytes(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 50);
    // four clients, each 480 pings of 60 KB (28 MB), each answered by a pong that echoes its
    // payload. Before: every pong was queued in the server for clients that read none
    // (229 MB of pings on one socket: RSS 349 MB to 1.2 GB, and the socket stayed open)
    const ping = JSON.stringify({ type: 'ping', payload: { pad: 'p'.repeat(60_000) } });
    const peers = await Promise.all([0, 1, 2, 3].map(() => connect()));
    try {
      for (const p of peers) p.stopReading();
      await Promise.all(peers.map((p) => write(p.ws, Array.from({ length: 480 }, () => ping))));
      peak = Math.max(peak, rssBytes(pid));
      clearInterval(sampler);
      for (const p of peers) p.resumeReading();
      for (const p of peers) {
        const closed = await p.closed;
        expect(closed.code).toBe(1013);
        // what the server had queued: the bound and the one message that passed it, plus what the kernel held (not 28 MB)
        expect(p.received()).toBeLessThan(BOUND + ping.length + KERNEL_SLACK);
      }
      expect(peak - before).toBeLessThan(150 * 1024 * 1024);
    } finally {
      clearInterval(sampler);
      for (const p of peers) p.ws.terminate();
    }
    await httpStillAnswers();
  }, 90_000);

  it('closes with 1013 a client that never reads the refusals of its operations', async () => {
    const peer = await connect();
    peer.stopReading();
    // each refusal echoes the operation's 60 KB id (24 MB in all); before, 7,487 refusals of 30 KB
    // were queued (225 MB) until the keep-alive cut the connection, their ids registered meanwhile
    const pad = 'i'.repeat(60_000);
    await write(peer.ws, Array.from({ length: 400 }, (_, i) => JSON.stringify({ type: 'subscribe', id: `${i}-${pad}`, payload: { query: '{ noSuchField }' } })));
    peer.resumeReading();
    const closed = await peer.closed;
    expect(closed.code).toBe(1013);
    expect(peer.received()).toBeLessThan(BOUND + 200_000 + KERNEL_SLACK);
    await httpStillAnswers();
  }, 60_000);

  it(`closes with 1008 a client that floods small messages, after a burst of ${MESSAGE_BURST}; a burst below it is answered`, async () => {
    // a burst below the bound: every ping answered, the connection stays open
    const calm = await connect();
    await write(calm.ws, Array.from({ length: 300 }, () => '{"type":"ping"}'));
    await expect.poll(() => calm.received(), { timeout: 10_000 }).toBe(300 * '{"type":"pong"}'.length);
    expect(calm.ws.readyState).toBe(WebSocket.OPEN);
    calm.ws.close();

    // before: 40,000 pings a second from each of three sockets took the event loop (an HTTP
    // query's median 9 ms to 520 ms), and nothing closed them
    const flood = await connect();
    await write(flood.ws, Array.from({ length: 20_000 }, () => '{"type":"ping"}'));
    const closed = await flood.closed;
    expect(closed.code).toBe(1008);
    // answered up to the burst, and what refilled while the flood was read
    expect(flood.received()).toBeLessThan(2 * MESSAGE_BURST * '{"type":"pong"}'.length);
    // WebSocket pings count too. ws itself cuts (1006) a client with 60 pongs unsent, so they go
    // 20 at a time, each batch once the last was answered: 2,000 a second, over the bound still
    const pinger = await connect();
    let pongs = 0;
    /** resolves once `pongs` reaches what it waits for, or the connection closes */
    let answered: { want: number; resolve: () => void } | null = null;
    pinger.ws.on('pong', () => {
      pongs++;
      if (answered && pongs >= answered.want) answered.resolve();
    });
    pinger.ws.once('close', () => answered?.resolve());
    for (let sent = 0; sent < 5_000 && pinger.ws.readyState === WebSocket.OPEN; ) {
      for (let i = 0; i < 20; i++) pinger.ws.ping();
      sent += 20;
      const want = sent;
      await new Promise<void>((resolve) => {
        if (pongs >= want || pinger.ws.readyState !== WebSocket.OPEN) resolve();
        else answered = { want, resolve };
      });
      answered = null;
    }
    const pingerClosed = await pinger.closed;
    expect(pingerClosed.code).toBe(1008);
    await httpStillAnswers();
  }, 60_000);

  it('closes only the offending connection on a second connection_init, a 1 MB id or a binary frame; ignores complete for unknown ids', async () => {
    const codes: number[] = [];
    for (const send of [
      (ws: WebSocket) => ws.send(JSON.stringify({ type: 'connection_init', payload: { 'X-API-Key': ADMIN } })),
      (ws: WebSocket) => ws.send(JSON.stringify({ type: 'subscribe', id: 'x'.repeat(1024 * 1024), payload: { query: '{ viewer { role } }' } })),
      (ws: WebSocket) => ws.send(Buffer.from([0x00, 0xff, 0x7b])),
    ]) {
      const peer = await connect();
      send(peer.ws);
      codes.push((await peer.closed).code);
    }
    expect(codes).toEqual([4429, 1009, 4400]);
    const peer = await connect();
    await write(peer.ws, Array.from({ length: 50 }, (_, i) => JSON.stringify({ type: 'complete', id: `never-${i}` })));
    peer.ws.send(JSON.stringify({ type: 'subscribe', id: 'ok', payload: { query: '{ viewer { role } }' } }));
    await expect.poll(() => peer.received(), { timeout: 10_000 }).toBeGreaterThan(0);
    expect(peer.ws.readyState).toBe(WebSocket.OPEN);
    peer.ws.close();
  });

  it('does not negotiate permessage-deflate, so no frame inflates past maxPayload', async () => {
    const peer = await connect({ perMessageDeflate: true });
    expect(peer.ws.extensions).toBe('');
    peer.ws.terminate();
  });

  it('closes with 1013 a subscriber that stops reading while events flow, and the server memory stays bounded', async () => {
    const pid = earshot.child.pid!;
    const peer = await connect();
    peer.ws.send(JSON.stringify({ type: 'subscribe', id: 'live', payload: { query: 'subscription { interactionRecorded(filter: { source: "email" }) { id text author { handle } } }' } }));
    const tag = `slow-${Date.now()}`;
    const ingest = async (batch: number, n: number) => {
      const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ source: 'email', externalId: `${tag}-${batch}-${i}`, occurredAt: new Date().toISOString(), direction: 'inbound', author: { handle: `u${i}@example.com` }, text: `a slow reader ${'words '.repeat(300)}` }));
      const res = await fetch(`${url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': ADMIN }, body: lines.join('\n') });
      expect(res.status).toBe(200);
    };
    // registered once an event arrives
    await expect.poll(async () => (await ingest(-1, 1), peer.received() > 0), { timeout: 20_000, interval: 300 }).toBe(true);
    peer.stopReading();
    const before = rssBytes(pid);
    let peak = before;
    // up to 6,000 interactions of 2 KB, past EARSHOT_SUBSCRIPTION_QUEUE_LIMIT (1,000), until the
    // server says it closes the connection: reading again then, before the close handshake's and
    // the ping's timeouts cut it (on a loaded machine the 30 bodies outlasted both: 1006)
    const closings = () => earshot.output().split('closing a WebSocket connection whose subscriber does not read its events').length;
    const earlier = closings();
    const closing = () => closings() > earlier;
    for (let b = 0; b < 30 && !closing(); b++) {
      await ingest(b, 200);
      peak = Math.max(peak, rssBytes(pid));
    }
    expect(closing()).toBe(true);
    peer.resumeReading();
    const closed = await peer.closed;
    expect(closed.code).toBe(1013);
    // measured: +5 MB to +45 MB while 12 MB of events were produced
    expect(peak - before).toBeLessThan(150 * 1024 * 1024);
  }, 120_000);
});

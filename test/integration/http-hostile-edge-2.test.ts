import type http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ndjson, startTestApp, type TestApp } from '../support/app';
import { message } from '../support/hostile';
import { waitFor } from '../support/kafka-fixtures';
import { createMetricsServer, DEFAULT_HTTP_LIMITS } from '../../src/http/http-server';
import { Metrics } from '../../src/shared/metrics';

/**
 * The HTTP edge under load an attacker can make cheaply: bodies whose reading or answer took the
 * event loop for seconds, connections that hold memory or file descriptors without finishing a
 * request, and header and framing variants Node lets through to the handler. What is checked:
 * other requests are served meanwhile, what one client may hold is bounded by a setting, and the
 * answer is a clear error, never a body read as something it is not.
 */

const portOf = (url: string) => Number(new URL(url).port);

/** A connection the server has accepted: one request answered on it (keep-alive) before it is returned. */
async function warmConnection(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    const onData = (c: Buffer) => {
      seen += c.toString('latin1');
      if (seen.includes('{"status":"ok"}')) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  });
  return socket;
}

/** Everything the server writes on `socket` until it closes; `first` is called at its first byte. */
function untilClosed(socket: net.Socket, first: () => void = () => {}): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    socket.on('data', (c: Buffer) => {
      if (out === '') first();
      out += c.toString('latin1');
    });
    socket.on('error', () => resolve(out));
    socket.on('close', () => resolve(out));
  });
}

/** Sends raw bytes on a fresh connection; resolves with what the server wrote until it closed. */
function rawRequest(port: number, data: string | Buffer): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  const answer = untilClosed(socket);
  socket.write(data);
  return answer;
}

/**
 * Sends a request line and then a header a byte every 100 ms (each resets no timer), and returns
 * what the server answered before it closed the connection (the test's timeout bounds the wait).
 */
async function dripHeaders(port: number, path: string): Promise<string | null> {
  const socket = net.connect(port, '127.0.0.1');
  const answer = untilClosed(socket);
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nX-Slow: `);
  const drip = setInterval(() => socket.writable && socket.write('a'), 100);
  try {
    return await answer;
  } finally {
    clearInterval(drip);
    socket.destroy();
  }
}

const bodyOf = (answer: string) => answer.slice(answer.indexOf('\r\n\r\n') + 4);

describe('HTTP edge 2: large bodies and what a client may hold', () => {
  let app: TestApp;
  beforeAll(async () => {
    // room for three 1 MiB bodies at once
    app = await startTestApp(
      {
        EARSHOT_ROLES: 'api,ingest',
        EARSHOT_INGEST_MAX_BYTES: String(2 * 1024 * 1024),
        // a line may then be 6 × (16 KiB + 64 KiB) + 64 KiB = 557,056 bytes
        EARSHOT_INGEST_MAX_TEXT_BYTES: String(16 * 1024),
        EARSHOT_HTTP_BODY_BUFFER_BYTES: String(3 * 1024 * 1024),
      },
      'http-edge-2',
    );
  });
  afterAll(async () => {
    await app?.close();
  });

  /**
   * The /healthz request is written the moment the server has the ingest body whole (its 'end',
   * seen from the server's own 'request' event), before the body is parsed. Read in one piece,
   * the body was parsed and answered before the server read another request at all.
   */
  const BODIES: [string, () => Buffer, (answer: { accepted: number; rejected: { line: number }[] }) => void][] = [
    [
      '20,000 lines of malformed JSON',
      () => Buffer.from('{"a\n'.repeat(20_000)),
      (answer) => {
        // the answer of 20,000 rejections, serialized in slices, is whole and in line order
        expect(answer.accepted).toBe(0);
        expect(answer.rejected.map((r) => r.line)).toEqual(Array.from({ length: 20_000 }, (_, i) => i + 1));
      },
    ],
    // one line to answer, so only the reading can hold the others up: 32 MiB of such lines blocked every other request for 8.7 s
    [
      '1.2 MiB of blank lines around one malformed line',
      () => Buffer.concat([Buffer.from(' \r\n'.repeat(200_000)), Buffer.from('{"a'), Buffer.from('\n'.repeat(600_000))]),
      (answer) => expect(answer).toEqual({ accepted: 0, duplicates: 0, rejected: [{ line: 200_001, error: expect.stringMatching(/^malformed JSON/) }] }),
    ],
  ];
  it.each(BODIES)('while a body of %s is read, a /healthz sent after it is answered first', async (_kind, make, check) => {
    const body = make();
    const port = portOf(app.url);
    const [ingest, health] = await Promise.all([warmConnection(port), warmConnection(port)]);
    const order: string[] = [];
    const ingestAnswer = untilClosed(ingest, () => order.push('ingest'));
    const healthAnswer = untilClosed(health, () => order.push('healthz'));
    const onRequest = (req: http.IncomingMessage) => {
      if (req.url === '/ingest') req.once('end', () => health.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    };
    app.server.on('request', onRequest);
    try {
      ingest.write(Buffer.concat([Buffer.from(`POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`), body]));
      await Promise.all([ingestAnswer, healthAnswer]);
    } finally {
      app.server.off('request', onRequest);
    }
    const [ingestRaw, healthRaw] = await Promise.all([ingestAnswer, healthAnswer]);
    expect(healthRaw).toMatch(/^HTTP\/1\.1 200 /);
    expect(ingestRaw).toMatch(/^HTTP\/1\.1 200 /);
    const json = bodyOf(ingestRaw);
    // the answer is what JSON.stringify makes of it, and as long as it says
    expect(json).toBe(JSON.stringify(JSON.parse(json)));
    expect(Number(/\r\ncontent-length: (\d+)\r\n/i.exec(ingestRaw)?.[1])).toBe(Buffer.byteLength(json));
    check(JSON.parse(json));
    expect(order).toEqual(['healthz', 'ingest']);
  });

  it('request bodies held at once are bounded (EARSHOT_HTTP_BODY_BUFFER_BYTES): past it a body is answered 503 unread, and room comes back when its holders go', async () => {
    const port = portOf(app.url);
    const gql = () => fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
    // three clients without a credential declare 1 MiB GraphQL bodies and send a few bytes of them:
    // before, each such connection held its body's bytes for up to two minutes, 2 MiB apiece
    const holders = await Promise.all([0, 1, 2].map(() => warmConnection(port)));
    for (const h of holders) h.write(`POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${1024 * 1024}\r\n\r\n{"query":`);
    let refused: Response | null = null;
    await waitFor('a GraphQL POST refused while three 1 MiB bodies are held', async () => {
      const res = await gql();
      if (res.status === 503) refused = res;
      else await res.arrayBuffer();
      return refused !== null;
    });
    expect(refused!.headers.get('retry-after')).toBe('1');
    expect(await refused!.json()).toEqual({ errors: [{ message: expect.stringMatching(/EARSHOT_HTTP_BODY_BUFFER_BYTES/), extensions: { code: 'SERVICE_UNAVAILABLE' } }] });
    // the same answer on /ingest, in its own shape; requests without a body are served meanwhile
    const ingest = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: JSON.stringify(message(82_000_001)) });
    expect(ingest.status).toBe(503);
    expect(await ingest.json()).toEqual({ error: { code: 'SERVICE_UNAVAILABLE', message: expect.stringMatching(/EARSHOT_HTTP_BODY_BUFFER_BYTES/) } });
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
    for (const h of holders) h.destroy();
    await waitFor('GraphQL POSTs served again once the holders hung up', async () => {
      const res = await gql();
      const ok = res.status === 200;
      await res.arrayBuffer();
      return ok;
    });
    const again = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: JSON.stringify(message(82_000_001)) });
    expect(await again.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
  });

  it('a line longer than any message within the limits can be is rejected unparsed; the lines around it are stored', async () => {
    // metadata of numbers: JSON.parse builds them all before the metadata limit is looked at
    const long = `{"source":"x","metadata":[${'1,'.repeat(300_000)}1]}`;
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([message(84_000_001), long, message(84_000_002)]) });
    expect(await res.json()).toEqual({
      accepted: 2,
      duplicates: 0,
      rejected: [{ line: 2, error: `the line is ${long.length} bytes, longer than any message within the limits can be (557056 bytes, from EARSHOT_INGEST_MAX_TEXT_BYTES and EARSHOT_INGEST_MAX_METADATA_BYTES); it was not parsed` }],
    });
    // a message as long as the limits allow, every character of its text escaped, is still read
    const escaped = JSON.stringify(message(84_000_003, { text: 'a'.repeat(16 * 1024) })).replace(/"text":"a+"/, `"text":"${'\\u0061'.repeat(16 * 1024)}"`);
    const within = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: escaped });
    expect(await within.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
  });

  it('a Transfer-Encoding other than chunked is answered 501, not read as NDJSON', async () => {
    const line = JSON.stringify(message(83_000_001));
    const answer = await rawRequest(
      portOf(app.url),
      `POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n${line.length.toString(16)}\r\n${line}\r\n0\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 501 /);
    expect(JSON.parse(bodyOf(answer))).toEqual({ error: { code: 'NOT_IMPLEMENTED', message: expect.stringMatching(/Transfer-Encoding "gzip, chunked" is not accepted/) } });
    const gql = await rawRequest(portOf(app.url), `POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: br, chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n`);
    expect(gql).toMatch(/^HTTP\/1\.1 501 /);
    expect(JSON.parse(bodyOf(gql))).toEqual({ errors: [{ message: expect.stringMatching(/Transfer-Encoding "br, chunked"/), extensions: { code: 'NOT_IMPLEMENTED' } }] });
    // chunked alone is read as before
    const chunked = await rawRequest(portOf(app.url), `POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${line.length.toString(16)}\r\n${line}\r\n0\r\n\r\n`);
    expect(JSON.parse(bodyOf(chunked))).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
  });

  it('X-Request-Id: a visible-ASCII id is kept (cut to 100 characters); one with spaces, tabs or non-ASCII bytes is replaced', async () => {
    const idOf = async (id: string | Buffer) => {
      const answer = await rawRequest(portOf(app.url), Buffer.concat([Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: '), typeof id === 'string' ? Buffer.from(id, 'latin1') : id, Buffer.from('\r\nConnection: close\r\n\r\n')]));
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
      return /\r\nx-request-id: ([^\r]*)\r\n/i.exec(answer)![1]!;
    };
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    expect(await idOf('req-42_ok:/=')).toBe('req-42_ok:/=');
    expect(await idOf('r'.repeat(10_000))).toBe('r'.repeat(100));
    expect(await idOf('a b')).toMatch(uuid);
    expect(await idOf('a\tb')).toMatch(uuid);
    expect(await idOf(Buffer.from('caf\u00e9 \u2192', 'utf8'))).toMatch(uuid);
    expect(await idOf('caf\xe9')).toMatch(uuid);
    // CR, LF and other control characters never reach the handler: Node's parser answers 400
    expect(await rawRequest(portOf(app.url), 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\x01b\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
  });
});

describe('HTTP edge 2: connections that never finish a request', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest', EARSHOT_HTTP_MAX_CONNECTIONS: '4', EARSHOT_HTTP_HEADERS_TIMEOUT_MS: '60000' }, 'http-edge-2-conns');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('open connections are bounded (EARSHOT_HTTP_MAX_CONNECTIONS): past it a new one is closed unanswered, and connections are taken again once the idle ones go', async () => {
    const port = portOf(app.url);
    const healthz = () => rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    // four connections that send a header line now and then and never end their headers
    const idle = await Promise.all([0, 1, 2, 3].map(() => warmConnection(port)));
    for (const s of idle) s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    await waitFor('a fifth connection closed without an answer', async () => (await healthz()) === '');
    for (const s of idle) s.destroy();
    await waitFor('a new connection answered once the idle ones closed', async () => /^HTTP\/1\.1 200 /.test(await healthz()));
  });
});

describe('HTTP edge 2: headers sent a byte at a time', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api', EARSHOT_HTTP_HEADERS_TIMEOUT_MS: '1000' }, 'http-edge-2-headers');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('a client still sending its headers after EARSHOT_HTTP_HEADERS_TIMEOUT_MS is answered 408 and disconnected, however steadily it sends', async () => {
    // Node's own default held such a connection for 60 s, and looked only every 30 s
    expect(await dripHeaders(portOf(app.url), '/healthz')).toMatch(/^HTTP\/1\.1 408 /);
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
  });
});

describe('HTTP edge 2: the metrics port has the same limits', () => {
  let server: http.Server;
  afterAll(async () => {
    await new Promise((r) => server?.close(r));
  });

  it('a client still sending its headers to the metrics port after the header time is answered 408 and disconnected', async () => {
    // before: Node's defaults there (60 s, checked every 30 s), whatever the main port had
    server = createMetricsServer(new Metrics(), null, { ...DEFAULT_HTTP_LIMITS, headersTimeoutMs: 1_000 });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    expect(await dripHeaders((server.address() as net.AddressInfo).port, '/metrics')).toMatch(/^HTTP\/1\.1 408 /);
  });
});

import net from 'node:net';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type RunningApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { createMetricsServer, listenWhileStarting } from '../../src/http/http-server';
import { Metrics } from '../../src/shared/metrics';
import { ndjson, startTestApp, type TestApp } from '../support/app';
import { message } from '../support/hostile';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

/**
 * The HTTP edge as an attacker or an unlucky operator meets it: request targets that are not
 * URLs, bodies of millions of tiny lines, JSON that is not UTF-8, a client that hangs up halfway,
 * and the byte-level variants of a well-formed body (BOM, CRLF, no final newline). What is
 * checked: never a crash nor a 500, a clear error in the endpoint's shape, work bounded by
 * the limits, and nothing stored from a body that was not read whole.
 */

/**
 * Sends raw bytes on a fresh connection and resolves with everything the server wrote until it
 * closed (every caller asks for `Connection: close` or hangs up itself). A server that threw in
 * its request listener never answers: the test then fails by its own timeout.
 */
function rawRequest(port: number, data: string | Buffer, opts: { hangUpAfterWrite?: boolean } = {}): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let out = '';
    socket.on('data', (c) => (out += c.toString('latin1')));
    socket.on('error', () => resolve(out));
    socket.on('close', () => resolve(out));
    socket.write(data, () => {
      if (opts.hangUpAfterWrite) socket.destroy();
    });
  });
}

const portOf = (url: string) => Number(new URL(url).port);

/** Request targets Node's parser lets through that `new URL(target, base)` cannot parse. */
const UNPARSABLE_TARGETS = ['//', '//x:99999/ingest', '//[::1/graphql', '//a%zz/healthz'];

describe('HTTP edge: hostile requests', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest', EARSHOT_INGEST_MAX_LINES: '1000' }, 'http-hostile');
  });
  afterAll(async () => {
    await app?.close();
  });

  const post = (body: string | Buffer, headers: Record<string, string> = {}) =>
    fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...headers }, body });
  const stored = async (ids: string[]) =>
    ((await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE external_id = ANY($1::text[])`, [ids])) as { n: number }[])[0]!.n;

  it.each(UNPARSABLE_TARGETS)('a request target that is not a URL (%s) is answered 400, and the service keeps serving', async (target) => {
    const answer = await rawRequest(portOf(app.url), `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toContain('"code":"BAD_USER_INPUT"');
    expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
  });

  it('a body of more lines than EARSHOT_INGEST_MAX_LINES is refused whole with 413 before any line is parsed; one line fewer is read', async () => {
    // 1,001 lines of "{}": before the limit, each came back as its own 230-byte rejection, so
    // 32 MiB of them (11 million lines) made an answer of 2.5 GB and blocked the event loop for minutes.
    const good = JSON.stringify(message(71_000_001));
    const res = await post(ndjson([good, ...Array.from({ length: 1_000 }, () => '{}')]));
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: { code: 'PAYLOAD_TOO_LARGE', message: expect.stringMatching(/more than 1000 lines .*EARSHOT_INGEST_MAX_LINES/) } });
    expect(await stored(['ext-71000001'])).toBe(0);
    // blank lines do not count (a trailing newline, CRLF pairs, padding)
    const within = await post(ndjson([good, ...Array.from({ length: 999 }, () => '{}'), '', '  ', '\r']) + '\n\n');
    expect(within.status).toBe(200);
    const json = (await within.json()) as { accepted: number; rejected: unknown[] };
    expect(json.accepted).toBe(1);
    expect(json.rejected).toHaveLength(999);
  });

  it('a client that hangs up halfway through its body gets nothing stored, and the service keeps serving', async () => {
    const lines = ndjson([message(72_000_001), message(72_000_002)]) + '\n';
    await rawRequest(
      portOf(app.url),
      `POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: ${lines.length + 10_000}\r\n\r\n${lines}`,
      { hangUpAfterWrite: true },
    );
    // the same lines sent whole afterwards are all new: nothing of the cut body was stored
    const res = await post(lines);
    expect(await res.json()).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
  });

  it('a UTF-8 BOM, CRLF line ends and a last line without a newline are read as the same lines', async () => {
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from([message(73_000_001), message(73_000_002), message(73_000_003)].map((m) => JSON.stringify(m)).join('\r\n'))]);
    const res = await post(body);
    expect(await res.json()).toEqual({ accepted: 3, duplicates: 0, rejected: [] });
  });

  it('__proto__ and constructor keys neither pollute nor pass unseen: refused at the top level, kept as data in metadata', async () => {
    const top = JSON.stringify(message(74_000_001)).replace('{', '{"__proto__":{"polluted":true},');
    const meta = JSON.stringify(message(74_000_002, { metadata: { ok: 1 } })).replace('"metadata":{', '"metadata":{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},');
    const res = await post(ndjson([top, meta]));
    expect(await res.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [{ line: 1, error: "unknown field '__proto__'" }] });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const [row] = (await app.db.ds.query(`SELECT metadata FROM interaction WHERE external_id = 'ext-74000002'`)) as { metadata: Record<string, unknown> }[];
    expect(Object.keys(row!.metadata).sort()).toEqual(['__proto__', 'constructor', 'ok']);
  });

  it('a GraphQL body that is not UTF-8 is refused with 400, not stored with U+FFFD in place of the bytes sent', async () => {
    const query = 'mutation($input: [InteractionInput!]!) { ingestInteractions(input: $input) { accepted rejected { line error } } }';
    const input = [{ source: 'x', externalId: 'ext-75000001', occurredAt: '2026-11-01T12:00:00.000Z', direction: 'INBOUND', author: { handle: 'u75' }, text: '@@BAD@@' }];
    const [head, tail] = JSON.stringify({ query, variables: { input } }).split('@@BAD@@') as [string, string];
    const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.concat([Buffer.from(head), Buffer.from([0x63, 0x61, 0x66, 0xe9]), Buffer.from(tail)]) });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ errors: [{ message: expect.stringMatching(/not valid UTF-8/), extensions: { code: 'BAD_REQUEST' } }] });
    expect(await stored(['ext-75000001'])).toBe(0);
  });
});

describe('HTTP edge: the other listeners', () => {
  const servers: http.Server[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  it.each(UNPARSABLE_TARGETS)('while starting, a request target that is not a URL (%s) is answered 400', async (target) => {
    const starting = await listenWhileStarting(0, '127.0.0.1', () => 'migrating');
    servers.push(starting.server);
    const answer = await rawRequest(portOf(starting.url), `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect((await fetch(`${starting.url}/healthz`)).status).toBe(200);
  });

  it.each(UNPARSABLE_TARGETS)('the metrics port answers a request target that is not a URL (%s) with 400', async (target) => {
    const server = createMetricsServer(new Metrics(), null);
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const answer = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
  });
});

describe('HTTP edge: what the log says about a client that hangs up', () => {
  let database: TestDatabase;
  let app: RunningApp;
  const lines: { level: string; msg: string }[] = [];
  beforeAll(async () => {
    database = await createTestDatabase('http-hostile-log');
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        done();
      },
    });
    const log = pino({ level: 'info', base: { service: 'earshot' }, formatters: { level: (label) => ({ level: label }) } }, sink);
    app = await startApp(loadConfig({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', DATABASE_URL: database.url, EARSHOT_ROLES: 'api,ingest' }), log);
  }, 120_000);
  afterAll(async () => {
    await app?.stop();
    await database?.drop();
  });

  it('a body cut short by its client is an info line, not an "unhandled error" with a stack', async () => {
    const body = JSON.stringify(message(76_000_001)) + '\n';
    await rawRequest(portOf(app.url), `POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: ${body.length + 10_000}\r\n\r\n${body}`, { hangUpAfterWrite: true });
    const deadline = Date.now() + 10_000;
    const seen = () => lines.find((l) => /hung up before its request body was read whole/.test(l.msg));
    while (!seen() && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    expect(seen()).toMatchObject({ level: 'info' });
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
  });
});

import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from 'pg';
import { message } from '../support/app';
import { spawnEarshot, type EarshotProcess } from '../support/earshot-process';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { sharedTexts } from '../support/shared-texts';

/**
 * The service in a small container: Node sizes its heap from the container's memory, simulated
 * with --max-old-space-size=256, and every limit left at its default. Four /ingest bodies of
 * 32 MiB at once (half of the 256 MiB EARSHOT_HTTP_BODY_BUFFER_BYTES) ran the heap out of memory
 * (SIGABRT after about 40 s, every request in flight lost); the default of the body budget now
 * follows the heap limit, so the bodies it has no room for are refused (503) instead.
 */

const MIB = 1024 * 1024;

/** An NDJSON body of just under 32 MiB (EARSHOT_INGEST_MAX_BYTES) of posts of real text, and its line count. */
function bigBody(tag: string, texts: string[]): { body: Buffer; lines: number } {
  const parts: string[] = [];
  let size = 0;
  for (let n = 0; ; n++) {
    const line = `${JSON.stringify(
      message(n, {
        eventId: `${tag}-e-${n}`,
        externalId: `${tag}-${n}`,
        url: `https://x.com/user${n % 20_000}/status/${n}`,
        author: { handle: `${tag}user${n % 20_000}`, displayName: `User ${n % 20_000}`, profileUrl: `https://x.com/${tag}user${n % 20_000}` },
        text: texts[n % texts.length],
        lang: 'en',
        metadata: { likes: n % 100, reposts: n % 7, client: 'Twitter for iPhone' },
      }),
    )}\n`;
    if (size + Buffer.byteLength(line) > 32 * MIB - 1024) return { body: Buffer.from(parts.join('')), lines: parts.length };
    parts.push(line);
    size += Buffer.byteLength(line);
  }
}

/**
 * POSTs a body and resolves with the answer's status, or `null` when the server closed the
 * connection before answering (a body refused unread can reach the client as EPIPE before the 503).
 */
function post(url: string, body: Buffer): Promise<{ status: number; json: unknown } | null> {
  return new Promise((resolve) => {
    const req = http.request(`${url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'content-length': body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
      res.on('error', () => resolve(null));
    });
    req.on('error', () => resolve(null));
    req.end(body);
  });
}

describe('a small heap (--max-old-space-size=256) with the default limits', () => {
  let service: EarshotProcess | null = null;
  let db: TestDatabase | null = null;

  afterEach(async () => {
    await service?.kill('SIGKILL');
    service = null;
    await db?.drop();
    db = null;
  });

  it('four 32 MiB /ingest bodies at once: the process lives, each body is stored (200) or refused (503), and what was accepted is stored', async () => {
    db = await createTestDatabase('smallheap');
    service = spawnEarshot({ DATABASE_URL: db.url, NODE_OPTIONS: '--max-old-space-size=256' });
    // the "Earshot is listening" log line: started, database open, ready
    const url = (await service.listening()).replace('localhost', '127.0.0.1');
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const texts = sharedTexts({ every: 7, maxChars: 280 }).filter((t) => t.trim().length > 20);
    const bodies = ['a', 'b', 'c', 'd'].map((tag) => bigBody(tag, texts));

    const answers = await Promise.all(bodies.map(({ body }) => post(url, body)));

    // before: FATAL ERROR … JavaScript heap out of memory, SIGABRT, every answer lost
    const health = await fetch(`${url}/healthz`).then((r) => r.status, (e: Error) => `no answer (${e.message})`);
    expect(health, service.output().slice(-3000)).toBe(200);
    expect(service.output()).not.toMatch(/heap out of memory/);
    expect(service.child.exitCode).toBeNull();
    expect(service.child.signalCode).toBeNull();
    const stored = answers.filter((a) => a?.status === 200);
    for (const a of answers) if (a) expect([200, 503]).toContain(a.status);
    expect(stored.length).toBeGreaterThan(0);
    // every line of a stored body is answered: accepted, or rejected alone with its reason
    for (const a of stored) {
      const { accepted, duplicates, rejected } = a!.json as { accepted: number; duplicates: number; rejected: unknown[] };
      expect(accepted + duplicates + rejected.length).toBe(bodies[0]!.lines);
      expect(accepted).toBeGreaterThan(bodies[0]!.lines * 0.99);
    }
    const accepted = stored.reduce((n, a) => n + (a!.json as { accepted: number }).accepted, 0);
    const c = new Client({ connectionString: db.url });
    await c.connect();
    try {
      expect(Number((await c.query('SELECT count(*) FROM interaction')).rows[0].count)).toBe(accepted);
    } finally {
      await c.end();
    }
  }, 600_000);
});

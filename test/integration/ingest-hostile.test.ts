import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ndjson, startTestApp, type TestApp } from '../support/app';
import { BAD_LINES, message } from '../support/hostile';

/**
 * Hostile input on POST /ingest and ingestInteractions: every kind of line PostgreSQL would
 * refuse, placed in the middle of a large body. The promise checked: the bad line alone is
 * rejected with its line number and a reason, every valid line of the same body is stored,
 * and the answer is never a 500.
 */

const post = (app: TestApp, body: string | Buffer) =>
  fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body });

describe('POST /ingest: one bad line among 10,000', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest', EARSHOT_INGEST_MAX_BYTES: String(64 * 1024 * 1024) }, 'hostile');
  });
  afterAll(async () => {
    await app?.close();
  });

  BAD_LINES.forEach((bad, k) => {
    it(`${bad.kind} at line 5,000 of 10,000: that line is rejected with its reason, the 9,999 others are stored`, { timeout: 240_000 }, async () => {
      const base = 1_000_000 * (k + 1);
      const lines: string[] = [];
      for (let i = 1; i <= 10_000; i++) lines.push(i === 5_000 ? bad.line(base + i) : JSON.stringify(message(base + i)));
      const started = Date.now();
      const res = await post(app, ndjson(lines));
      const ms = Date.now() - started;
      expect(res.status).toBe(200);
      const json = (await res.json()) as { accepted: number; duplicates: number; rejected: { line: number; error: string }[] };
      expect(json.rejected).toEqual([{ line: 5_000, error: expect.stringMatching(bad.reason) }]);
      expect(json.accepted).toBe(9_999);
      // exactly this body's ids: a pattern would also count rows other tests of this file store
      const ids = Array.from({ length: 10_000 }, (_, j) => `ext-${base + j + 1}`);
      const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE external_id = ANY($1::text[])`, [ids])) as { n: number }[];
      expect(n).toBe(9_999);
      console.info(`ingest-hostile: ${bad.kind}: 10,000 lines in ${ms} ms`);
    });
  });

  it('a line PostgreSQL itself refuses at line 5,000 of 10,000 is found by bisection and rejected alone', { timeout: 240_000 }, async () => {
    // A rule of the database the edge does not know, so the line reaches the batch insert.
    await app.db.ds.query(`ALTER TABLE interaction ADD CONSTRAINT test_refused CHECK (text NOT LIKE '%refused-by-the-database%')`);
    try {
      const body = (prefix: string, bad: boolean) =>
        ndjson(Array.from({ length: 10_000 }, (_, j) => message(j + 1, { externalId: `${prefix}-${j + 1}`, ...(bad && j + 1 === 5_000 ? { text: 'refused-by-the-database' } : {}) })));
      let started = Date.now();
      const clean = await post(app, body('clean', false));
      const cleanMs = Date.now() - started;
      expect(await clean.json()).toMatchObject({ accepted: 10_000, rejected: [] });
      started = Date.now();
      const res = await post(app, body('dbbad', true));
      const badMs = Date.now() - started;
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ accepted: 9_999, duplicates: 0, rejected: [{ line: 5_000, error: expect.stringMatching(/^rejected by the database \(SQLSTATE 23514\)/) }] });
      const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE external_id LIKE 'dbbad-%'`)) as { n: number }[];
      expect(n).toBe(9_999);
      console.info(`ingest-hostile: 10,000 valid lines ${cleanMs} ms; with one refused by PostgreSQL at line 5,000 ${badMs} ms (bisection)`);
    } finally {
      await app.db.ds.query(`ALTER TABLE interaction DROP CONSTRAINT test_refused`);
    }
  });

  it('rejects a line that is not valid UTF-8 and stores its neighbours', async () => {
    const good1 = Buffer.from(JSON.stringify(message(95_000_001)) + '\n');
    const bad = Buffer.concat([Buffer.from(JSON.stringify(message(95_000_002)).slice(0, -2)), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]);
    const good2 = Buffer.from(JSON.stringify(message(95_000_003)));
    const res = await post(app, Buffer.concat([good1, bad, good2]));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: 2, duplicates: 0, rejected: [{ line: 2, error: expect.stringMatching(/not valid UTF-8/) }] });
  });

  it('rejects oversized metadata with the limit and its variable', async () => {
    const res = await post(app, ndjson([message(9_100_001, { metadata: { blob: 'x'.repeat(70_000) } }), message(9_100_002)]));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      accepted: 1,
      duplicates: 0,
      rejected: [{ line: 1, error: expect.stringMatching(/metadata: .*over the limit of 65536 bytes \(EARSHOT_INGEST_MAX_METADATA_BYTES\)/) }],
    });
  });
});

describe('ingestInteractions: bad entries among 1,000', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest' }, 'hostilegql');
  });
  afterAll(async () => {
    await app?.close();
  });

  const MUTATION = `mutation($input: [InteractionInput!]!) { ingestInteractions(input: $input) { accepted duplicates rejected { line error } } }`;

  it('rejects each bad entry by its position with a reason and stores every other one', { timeout: 120_000 }, async () => {
    // The entries are JSON text already: the 5,000-deep one cannot go through JSON.stringify.
    // GraphQL spells the direction as its enum value.
    const asInput = (line: string) => line.replace('"direction":"inbound"', '"direction":"INBOUND"');
    const input: string[] = [];
    const badAt = new Map<number, RegExp>();
    for (let i = 1; i <= 1_000; i++) {
      const b = BAD_LINES[(i / 90) | 0];
      if (i % 90 === 45 && b) {
        input.push(asInput(b.line(20_000_000 + i)));
        // occurredAt is a DateTimeISO here: the scalar turns 9999-12-31T23:59:59-14:00 into year
        // 10000, which no RFC 3339 string can carry, so the edge names the format instead
        badAt.set(i, b.kind === '9999-12-31T23:59:59-14:00' ? /occurredAt: .*(in the future|must match format "date-time")/ : b.reason);
      } else input.push(asInput(JSON.stringify(message(20_000_000 + i))));
    }
    expect(badAt.size).toBe(BAD_LINES.length);
    const res = await fetch(`${app.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"query":${JSON.stringify(MUTATION)},"variables":{"input":[${input.join(',')}]}}`,
    });
    const r = (await res.json()) as { data: { ingestInteractions: { accepted: number; duplicates: number; rejected: { line: number; error: string }[] } }; errors?: unknown };
    expect(r.errors).toBeUndefined();
    expect(res.status).toBe(200);
    const out = r.data.ingestInteractions;
    expect(out.accepted).toBe(1_000 - badAt.size);
    expect(out.rejected.map((x) => x.line)).toEqual([...badAt.keys()]);
    for (const rej of out.rejected) expect(rej.error).toMatch(badAt.get(rej.line)!);
    const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction`)) as { n: number }[];
    expect(n).toBe(1_000 - badAt.size);
  });
});

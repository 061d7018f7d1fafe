import { brotliCompressSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

const post = (app: TestApp, body: string, type = 'application/x-ndjson', headers: Record<string, string> = {}) =>
  fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': type, ...headers }, body });

describe('POST /ingest on real PostgreSQL', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_INGEST_MAX_BYTES: String(4 * 1024 * 1024) }, 'ingest');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('stores 985 of 1,000 lines: 5 repeats are duplicates, 10 malformed are rejected by line', async () => {
    const lines: unknown[] = [];
    for (let i = 0; i < 985; i++) lines.push(message(i));
    const badAt = new Set([3, 50, 100, 200, 300, 400, 500, 600, 700, 999]);
    const bad = ['{"source": "x", ', 'not json at all', '{}', '[1,2,3]', JSON.stringify(message(1, { source: 'myspace' })),
      JSON.stringify(message(2, { occurredAt: 'yesterday' })), JSON.stringify(message(3, { direction: 'sideways' })),
      JSON.stringify(message(4, { author: {} })), JSON.stringify(message(5, { text: 42 })), JSON.stringify({ ...message(6), externalId: undefined })];
    const repeatsAt = new Set([10, 20, 30, 40, 990]);
    const body: unknown[] = [];
    let v = 0;
    let b = 0;
    for (let line = 0; body.length < 1000; line++) {
      if (badAt.has(line)) body.push(bad[b++]);
      else if (repeatsAt.has(line)) body.push(message(line % 7));
      else body.push(lines[v++]);
    }
    expect(v).toBe(985);

    const total = async () => (await app.gql<{ interactions: { totalCount: number } }>('{ interactions { totalCount } }')).data.interactions.totalCount;
    const before = await total();
    const res = await post(app, ndjson(body));
    expect(res.status).toBe(200);
    const json = (await res.json()) as { accepted: number; duplicates: number; rejected: { line: number; error: string }[] };
    expect(json.accepted).toBe(985);
    expect(json.duplicates).toBe(5);
    expect(json.rejected.map((r) => r.line)).toEqual([...badAt].map((i) => i + 1).sort((x, y) => x - y));
    expect(json.rejected[0]!.error).toMatch(/malformed JSON/);
    expect(json.rejected.find((r) => r.error.includes('myspace') || r.error.includes('source: must be one of'))).toBeDefined();

    expect((await total()) - before).toBe(985);
  });

  it('counts a body sent twice as all duplicates and stores nothing new', async () => {
    const body = ndjson([message(5000), message(5001)]);
    expect(await (await post(app, body)).json()).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
    expect(await (await post(app, body)).json()).toEqual({ accepted: 0, duplicates: 2, rejected: [] });
  });

  it('stores lines that two clients send at once exactly once, and answers both', async () => {
    // 300 lines in both bodies, 100 of their own in each: a batch that meets the other's rows,
    // not yet committed when it looked for stored ones, is stored again without them
    const shared = Array.from({ length: 300 }, (_, i) => message(7000 + i));
    const a = [...shared, ...Array.from({ length: 100 }, (_, i) => message(7400 + i))];
    const b = [...Array.from({ length: 100 }, (_, i) => message(7600 + i)), ...shared.slice().reverse()];
    const [ra, rb] = await Promise.all([post(app, ndjson(a)), post(app, ndjson(b))]);
    expect([ra.status, rb.status]).toEqual([200, 200]);
    const [ja, jb] = (await Promise.all([ra.json(), rb.json()])) as { accepted: number; duplicates: number; rejected: unknown[] }[];
    expect(ja!.accepted + jb!.accepted).toBe(500);
    expect(ja!.duplicates + jb!.duplicates).toBe(300);
    const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE external_id = ANY($1::text[])`, [
      [...a, ...b].map((m) => m.externalId as string),
    ])) as { n: number }[];
    expect(n).toBe(500);
  });

  it('rejects a 1 MB text with a reason and keeps the valid lines of the same body', async () => {
    const res = await post(app, ndjson([message(6000, { text: 'a'.repeat(1024 * 1024) }), message(6001)]));
    expect(res.status).toBe(200);
    const json = (await res.json()) as { accepted: number; rejected: { line: number; error: string }[] };
    expect(json.accepted).toBe(1);
    expect(json.rejected).toEqual([{ line: 1, error: expect.stringContaining('longer than the limit') }]);
  });

  it('answers 415 for another content type and 413 over the size limit', async () => {
    const wrongType = await post(app, JSON.stringify(message(7000)), 'application/json');
    expect(wrongType.status).toBe(415);
    expect(await wrongType.json()).toMatchObject({ error: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
    const huge = await post(app, 'x'.repeat(4 * 1024 * 1024 + 10));
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
  });

  it('answers 415 for a compressed body, on /ingest and /graphql, and stores nothing of it', async () => {
    const externalId = 'gzip-body-1';
    const body = gzipSync(ndjson([message(7100, { externalId })]));
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' }, body });
    expect(res.status).toBe(415);
    expect(res.headers.get('accept-encoding')).toBe('identity');
    expect(await res.json()).toEqual({ error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Content-Encoding "gzip" is not accepted: send the body uncompressed' } });
    const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE external_id = $1`, [externalId])) as { n: number }[];
    expect(n).toBe(0);
    // the same body uncompressed, with the encoding named as none, is stored
    const plain = await post(app, ndjson([message(7100, { externalId })]), 'application/x-ndjson', { 'content-encoding': 'Identity' });
    expect(await plain.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [] });

    const gql = await fetch(`${app.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'br' },
      body: brotliCompressSync(JSON.stringify({ query: '{ __typename }' })),
    });
    expect(gql.status).toBe(415);
    // in the shape GraphQL clients read: errors[].extensions.code
    expect(await gql.json()).toEqual({ errors: [{ message: expect.stringContaining('"br"'), extensions: { code: 'UNSUPPORTED_MEDIA_TYPE' } }] });
  });

  it('answers /graphql over its size limit with 413 in GraphQL\'s error shape', async () => {
    const query = `{ __typename ${' '.repeat(2 * 1024 * 1024)}}`;
    const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ errors: [{ message: 'the body is larger than the limit of 2097152 bytes (the GraphQL request limit)', extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
  });

  it('attaches interactions of one author to one customer and replies to the customer they answer', async () => {
    const author = { handle: '@Jane_Doe', displayName: 'Jane Doe', email: 'Jane.Doe@Example.com' };
    await post(app, ndjson([
      message(8000, { author, text: 'I was charged twice, this is awful' }),
      message(8001, { source: 'email', author: { email: ' jane.doe@example.com ' }, text: 'Still waiting for my refund' }),
      message(8002, { direction: 'outbound', inReplyTo: 'ext-8000', author: { handle: 'brand' }, text: 'Sorry, DM us' }),
    ]));
    const r = await app.gql<{ customers: { edges: { node: { displayName: string; identities: { kind: string; value: string }[]; sentiment: { interactionCount: number; label: string }; interactions: { totalCount: number } } }[] } }>(
      `{ customers(first: 5, filter: { search: "jane doe" }) { edges { node { displayName identities { kind value }
         sentiment { interactionCount label } interactions(first: 10) { totalCount } } } } }`,
    );
    expect(r.data.customers.edges).toHaveLength(1);
    const jane = r.data.customers.edges[0]!.node;
    expect(jane.identities).toEqual(expect.arrayContaining([{ kind: 'EMAIL', value: 'jane.doe@example.com' }, { kind: 'HANDLE', value: 'x:jane_doe' }]));
    expect(jane.interactions.totalCount).toBe(3);
    expect(jane.sentiment.interactionCount).toBe(2);
    expect(jane.sentiment.label).toBe('NEGATIVE');
  });

  it('gives a reply to a reply the customer of the complaint, wherever the batch boundaries fall', async () => {
    const author = { handle: 'chain_ana', displayName: 'Chain Ana' };
    const brand = { handle: 'brand' };
    // the complaint in one request; the brand's reply and its follow-up reply (to the reply) in
    // the next, so the first reply's answered message is stored and the second's is in its batch
    expect(await (await post(app, ndjson([message(8100, { author, text: 'My parcel never arrived' })]))).json()).toMatchObject({ accepted: 1 });
    expect(
      await (await post(app, ndjson([
        // the follow-up first: lines need not come in order
        message(8102, { direction: 'outbound', inReplyTo: 'ext-8101', author: brand, text: 'Update: it left the depot' }),
        message(8101, { direction: 'outbound', inReplyTo: 'ext-8100', author: brand, text: 'Sorry, we are on it' }),
      ]))).json(),
    ).toMatchObject({ accepted: 2 });
    const owners = (await app.db.ds.query(
      `SELECT i.external_id, ci.value FROM interaction i LEFT JOIN customer_identity ci ON ci.customer_id = i.customer_id AND ci.kind = 'handle'
        WHERE i.external_id IN ('ext-8100', 'ext-8101', 'ext-8102') ORDER BY 1`,
    )) as { external_id: string; value: string | null }[];
    expect(owners).toEqual([
      { external_id: 'ext-8100', value: 'x:chain_ana' },
      { external_id: 'ext-8101', value: 'x:chain_ana' },
      { external_id: 'ext-8102', value: 'x:chain_ana' },
    ]);
  });

  it('keeps everything across a restart on the same database', async () => {
    // its own instance and database: the shared app stays up for the other tests, in any order
    const own = await startTestApp({}, 'ingest-restart');
    let closed = false;
    try {
      await post(own, ndjson([message(9000), message(9001), message(9002)]));
      const before = (await own.gql<{ interactions: { totalCount: number } }>('{ interactions { totalCount } }')).data.interactions.totalCount;
      expect(before).toBe(3);
      await own.stop();
      closed = true;
      await restartAndCount(own.database.url, before);
    } finally {
      if (!closed) await own.stop();
      await own.database.drop();
    }
  });

  async function restartAndCount(url: string, before: number): Promise<void> {
    const { startApp } = await import('../../src/app');
    const { loadConfig } = await import('../../src/config/config');
    const { createLogger } = await import('../../src/shared/logger');
    const restarted = await startApp(loadConfig({ PORT: '0', HOST: '127.0.0.1', DATABASE_URL: url }), createLogger('error'));
    try {
      const res = await fetch(`${restarted.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ interactions { totalCount } }' }),
      });
      expect(((await res.json()) as { data: { interactions: { totalCount: number } } }).data.interactions.totalCount).toBe(before);
    } finally {
      await restarted.stop();
    }
  }
});

import { type Admin, type Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { groupLag, kafkaEnv, kafkaNames, produce, testKafka, waitFor } from '../support/kafka-fixtures';

type Summary = { accepted: number; duplicates: number; rejected: { line: number; error: string }[] };

const post = async (app: TestApp, body: string): Promise<{ status: number; json: Summary }> => {
  const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body });
  return { status: res.status, json: (await res.json()) as Summary };
};

const INGEST = 'mutation($input: [InteractionInput!]!) { ingestInteractions(input: $input) { accepted duplicates rejected { line error } } }';

/** A message of its own: tag letters only (digit runs read as phone numbers). */
type Msg = Record<string, unknown> & { text: string; direction: string; author: { handle: string } };
const tagged = (tag: string, over: Record<string, unknown> = {}): Msg =>
  ({ ...message(0), eventId: `evt-${tag}`, externalId: `ext-${tag}`, author: { handle: `h${tag}`, displayName: `Who ${tag}` }, ...over }) as unknown as Msg;

const letters = (n: number) => {
  let s = '';
  do {
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26);
  } while (n > 0);
  return s;
};

/** What a loser leaves behind: customers, identities, items and outbox references that no stored row explains. */
async function traces(app: TestApp) {
  const q = async (sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as Record<string, unknown>[];
  return {
    // customers with no interaction and no CRM record
    orphanCustomers: await q(`SELECT c.id FROM customer c WHERE c.merged_into_id IS NULL
        AND NOT EXISTS (SELECT 1 FROM interaction i WHERE i.customer_id = c.id)`),
    orphanIdentities: await q(`SELECT ci.value FROM customer_identity ci
        WHERE NOT EXISTS (SELECT 1 FROM interaction i WHERE i.customer_id = ci.customer_id)`),
    outboxMissing: await q(`SELECT x FROM outbox_batch b CROSS JOIN LATERAL unnest(b.interaction_ids) x
        WHERE NOT EXISTS (SELECT 1 FROM interaction i WHERE i.id = x)`),
    outboxTwice: await q(`SELECT x FROM outbox_batch b CROSS JOIN LATERAL unnest(b.interaction_ids) x GROUP BY x HAVING count(*) > 1`),
    outboxCustomerMissing: await q(`SELECT x FROM outbox_batch b CROSS JOIN LATERAL unnest(b.customer_ids) x
        WHERE NOT EXISTS (SELECT 1 FROM customer c WHERE c.id = x)`),
    interactionsWithoutOutbox: await q(`SELECT i.external_id FROM interaction i
        WHERE NOT EXISTS (SELECT 1 FROM outbox_batch b WHERE i.id = ANY(b.interaction_ids))`),
  };
}

const clean = { orphanCustomers: [], orphanIdentities: [], outboxMissing: [], outboxTwice: [], outboxCustomerMissing: [], interactionsWithoutOutbox: [] };

describe('ingest: one key, other content, through every door at once', () => {
  const names = kafkaNames('idemconf');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'api,ingest', EARSHOT_INGEST_MAX_BYTES: String(16 * 1024 * 1024) }), 'idemconf');
  });
  afterAll(async () => {
    await app?.close();
    await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin?.disconnect();
  });

  it('one body: the first line wins, the second is a duplicate, its author leaves nothing', async () => {
    const first = tagged('onefirst', { text: 'I love this, great service!' });
    const second = tagged('onefirst', {
      text: 'My parcel is late and nobody answers. Terrible.',
      author: { handle: 'hloserone', displayName: 'Loser One', email: 'loser.one@example.com' },
      occurredAt: '2026-10-01T00:00:00.000Z',
      direction: 'inbound',
    });
    const r = await post(app, ndjson([first, second]));
    expect(r).toEqual({ status: 200, json: { accepted: 1, duplicates: 1, rejected: [] } });
    const rows = await app.db.ds.query(`SELECT text, author_handle FROM interaction WHERE external_id = 'ext-onefirst'`);
    expect(rows).toEqual([{ text: first.text, author_handle: 'honefirst' }]);
    expect(await app.db.ds.query(`SELECT 1 FROM customer_identity WHERE value IN ('x:hloserone', 'loser.one@example.com')`)).toEqual([]);
    expect(await app.db.ds.query(`SELECT 1 FROM listening_item WHERE thread_key = 'ext-onefirst'`)).toEqual([]);
    expect(await traces(app)).toEqual(clean);
  });

  it('two bodies at once, and three doors at once: each key stored once, the answers agree with what is stored, losers leave no trace', async () => {
    const KEYS = 3_000;
    const variant = (i: number, who: string) =>
      tagged(`conf${letters(i)}`, {
        eventId: `evt-${who}-${letters(i)}`,
        text: who === 'a' ? 'I love this, great service!' : who === 'b' ? 'My parcel is late and nobody answers. Terrible.' : 'How do I change my password?',
        author: { handle: `h${who}${letters(i)}`, displayName: `${who} ${letters(i)}`, email: `${who}.${letters(i)}@example.com` },
        occurredAt: new Date(Date.UTC(2026, 10, 2) + (who.charCodeAt(0) - 97) * 3_600_000 + i * 1000).toISOString(),
        direction: who === 'c' ? 'outbound' : 'inbound',
      });
    const a = Array.from({ length: KEYS }, (_, i) => variant(i, 'a'));
    // the second half first: a's first batches and b's first batches hold different keys
    const b = Array.from({ length: KEYS }, (_, i) => variant((i + KEYS / 2) % KEYS, 'b'));
    const c = Array.from({ length: KEYS }, (_, i) => variant(i, 'c'));
    const [ra, rb, rc] = await Promise.all([
      post(app, ndjson(a)),
      post(app, ndjson(b)),
      (async () => {
        // GraphQL, at most 1,000 per call
        const out: Summary = { accepted: 0, duplicates: 0, rejected: [] };
        for (let i = 0; i < KEYS; i += 1000) {
          const r = await app.gql<{ ingestInteractions: Summary }>(INGEST, { input: c.slice(i, i + 1000).map((m) => ({ ...m, direction: m.direction.toUpperCase() })) });
          expect(r.errors).toBeUndefined();
          out.accepted += r.data.ingestInteractions.accepted;
          out.duplicates += r.data.ingestInteractions.duplicates;
        }
        return { status: 200, json: out };
      })(),
      produce(
        kafka,
        names.topic,
        Array.from({ length: KEYS }, (_, i) => variant(i, 'd')).map((m) => ({ key: m.author.handle, value: JSON.stringify(m) })),
      ),
    ]);
    await waitFor('the group to commit every offset', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000, 100);
    expect([ra.status, rb.status, rc.status]).toEqual([200, 200, 200]);
    const rows = (await app.db.ds.query(`SELECT external_id, author_handle FROM interaction WHERE external_id LIKE 'ext-conf%'`)) as { external_id: string; author_handle: string }[];
    expect(rows).toHaveLength(KEYS);
    const winners = { a: 0, b: 0, c: 0, d: 0 } as Record<string, number>;
    for (const r of rows) winners[r.author_handle[1]!]!++;
    expect(ra.json.accepted).toBe(winners.a);
    expect(rb.json.accepted).toBe(winners.b);
    expect(rc.json.accepted).toBe(winners.c);
    expect(ra.json.accepted + ra.json.duplicates).toBe(KEYS);
    expect(rb.json.accepted + rb.json.duplicates).toBe(KEYS);
    expect(rc.json.accepted + rc.json.duplicates).toBe(KEYS);
    // every stored row's author has exactly its own identities; the losers' have none
    const candidates = ['a', 'b', 'c', 'd'].flatMap((w) => Array.from({ length: KEYS }, (_, i) => [`x:h${w}${letters(i)}`, `${w}.${letters(i)}@example.com`]).flat());
    const ids = (await app.db.ds.query(`SELECT value FROM customer_identity WHERE value = ANY($1::text[])`, [candidates])) as { value: string }[];
    const expected = rows.filter((r) => r.author_handle[1] !== 'c').flatMap((r) => [`x:${r.author_handle}`, `${r.author_handle[1]}.${r.author_handle.slice(2)}@example.com`]);
    expect(ids.map((i) => i.value).sort()).toEqual(expected.sort());
    const items = (await app.db.ds.query(`SELECT l.thread_key, i.author_handle FROM listening_item l JOIN interaction i ON i.id = l.interaction_id WHERE l.thread_key LIKE 'ext-conf%'`)) as { author_handle: string }[];
    expect(items.every((i) => i.author_handle[1] === 'b' || i.author_handle[1] === 'd')).toBe(true);
    expect(await traces(app)).toEqual(clean);
  });
});

describe('ingest: replies that point at themselves, at another source, or in a cycle', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest' }, 'idemreply');
  });
  afterAll(async () => {
    await app?.close();
  });

  const complaint = 'My parcel is late and nobody answers. Terrible.';
  const at = (min: number) => new Date(Date.UTC(2026, 10, 3) + min * 60_000).toISOString();
  const stored = async (ids: string[]) =>
    (await app.db.ds.query(`SELECT source, external_id, thread_key, customer_id IS NOT NULL AS owned FROM interaction WHERE external_id = ANY($1::text[]) ORDER BY external_id, source`, [
      ids.map((i) => `ext-${i}`),
    ])) as { source: string; external_id: string; thread_key: string | null; owned: boolean }[];
  const items = async (ids: string[]) =>
    (await app.db.ds.query(`SELECT l.thread_key, l.status, i.external_id FROM listening_item l JOIN interaction i ON i.id = l.interaction_id WHERE i.external_id = ANY($1::text[]) ORDER BY l.thread_key`, [
      ids.map((i) => `ext-${i}`),
    ])) as { thread_key: string; status: string; external_id: string }[];

  it('a message that replies to itself, inbound or outbound, is stored once and starts its own thread', async () => {
    const r = await post(
      app,
      ndjson([
        tagged('selfin', { text: complaint, inReplyTo: 'ext-selfin', occurredAt: at(0) }),
        tagged('selfout', { direction: 'outbound', author: { handle: 'brand' }, text: '@hselfin sorry about that', inReplyTo: 'ext-selfout', occurredAt: at(1) }),
      ]),
    );
    expect(r).toEqual({ status: 200, json: { accepted: 2, duplicates: 0, rejected: [] } });
    expect(await stored(['selfin', 'selfout'])).toEqual([
      { source: 'x', external_id: 'ext-selfin', thread_key: null, owned: true },
      // it names no one it answers: nobody's
      { source: 'x', external_id: 'ext-selfout', thread_key: null, owned: false },
    ]);
    expect(await items(['selfin'])).toEqual([{ thread_key: 'ext-selfin', status: 'open', external_id: 'ext-selfin' }]);
  });

  it('a reply to a message of another source answers nothing there', async () => {
    await post(app, ndjson([tagged('othersrc', { source: 'facebook', text: complaint, occurredAt: at(0) })]));
    const r = await post(app, ndjson([tagged('othersrcreply', { direction: 'outbound', author: { handle: 'brand' }, text: 'we are on it', inReplyTo: 'ext-othersrc', occurredAt: at(5) })]));
    expect(r.json).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(await stored(['othersrc', 'othersrcreply'])).toEqual([
      { source: 'facebook', external_id: 'ext-othersrc', thread_key: null, owned: true },
      { source: 'x', external_id: 'ext-othersrcreply', thread_key: 'ext-othersrc', owned: false },
    ]);
    expect(await items(['othersrc'])).toEqual([{ thread_key: 'ext-othersrc', status: 'open', external_id: 'ext-othersrc' }]);
  });

  it('A replies to B and B to A, in one body or across bodies, inbound or outbound: stored, one item a thread, no loop', async () => {
    // across bodies: inbound A → B first, then B → A
    expect((await post(app, ndjson([tagged('cyca', { text: complaint, inReplyTo: 'ext-cycb', occurredAt: at(0) })]))).json.accepted).toBe(1);
    expect((await post(app, ndjson([tagged('cycb', { text: complaint, inReplyTo: 'ext-cyca', occurredAt: at(1) })]))).json.accepted).toBe(1);
    // across bodies, outbound: two brand replies naming each other
    expect((await post(app, ndjson([tagged('cycoa', { direction: 'outbound', author: { handle: 'brand' }, text: 'thanks', inReplyTo: 'ext-cycob', occurredAt: at(2) })]))).json.accepted).toBe(1);
    expect((await post(app, ndjson([tagged('cycob', { direction: 'outbound', author: { handle: 'brand' }, text: 'thanks', inReplyTo: 'ext-cycoa', occurredAt: at(3) })]))).json.accepted).toBe(1);
    // one body: a three-cycle of outbound replies and a two-cycle of complaints, in a 600-line body (two batches)
    const body = [
      tagged('ringa', { direction: 'outbound', author: { handle: 'brand' }, text: 'a', inReplyTo: 'ext-ringc', occurredAt: at(4) }),
      tagged('ringb', { direction: 'outbound', author: { handle: 'brand' }, text: 'b', inReplyTo: 'ext-ringa', occurredAt: at(5) }),
      tagged('pairb', { text: complaint, inReplyTo: 'ext-paira', occurredAt: at(7) }),
      ...Array.from({ length: 596 }, (_, i) => tagged(`fill${letters(i)}`, { occurredAt: at(10 + i) })),
      tagged('ringc', { direction: 'outbound', author: { handle: 'brand' }, text: 'c', inReplyTo: 'ext-ringb', occurredAt: at(6) }),
      tagged('paira', { text: complaint, inReplyTo: 'ext-pairb', occurredAt: at(8) }),
    ];
    expect((await post(app, ndjson(body))).json).toEqual({ accepted: 601, duplicates: 0, rejected: [] });
    const rows = await stored(['cyca', 'cycb', 'cycoa', 'cycob', 'ringa', 'ringb', 'ringc', 'paira', 'pairb']);
    expect(rows).toHaveLength(9);
    // the two complaints of each cycle share one item
    expect((await items(['cyca', 'cycb'])).length).toBe(1);
    expect((await items(['paira', 'pairb'])).length).toBe(1);
    // the brand's replies answer no customer
    expect(rows.filter((r) => r.external_id.startsWith('ext-cyco') || r.external_id.startsWith('ext-ring')).every((r) => !r.owned)).toBe(true);
    // the service still answers
    expect((await app.gql<{ interactions: { totalCount: number } }>('{ interactions { totalCount } }')).data.interactions.totalCount).toBeGreaterThan(600);
  });
});

describe('ingest: 10,000 lines of one author, 10,000 new authors, and two such bodies at once in opposite order', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest', EARSHOT_INGEST_MAX_BYTES: String(32 * 1024 * 1024) }, 'idembulk');
  });
  afterAll(async () => {
    await app?.close();
  });
  const N = 10_000;
  const count = async (sql: string, params: unknown[] = []) => ((await app.db.ds.query(sql, params)) as { n: number }[])[0]!.n;

  it('one author, 10,000 lines: one customer, one identity', async () => {
    const body = Array.from({ length: N }, (_, i) => tagged(`solo${letters(i)}`, { author: { handle: 'hsolo', displayName: 'Solo', email: 'solo@example.com' }, occurredAt: new Date(Date.UTC(2026, 10, 4) + i * 1000).toISOString() }));
    const r = await post(app, ndjson(body));
    expect(r).toEqual({ status: 200, json: { accepted: N, duplicates: 0, rejected: [] } });
    expect(await count(`SELECT count(DISTINCT customer_id)::int AS n FROM interaction WHERE author_handle = 'hsolo'`)).toBe(1);
    expect(await count(`SELECT count(*)::int AS n FROM customer_identity WHERE value IN ('x:hsolo', 'solo@example.com')`)).toBe(2);
  });

  it('two bodies of 10,000 new authors each, 5,000 in common in opposite order, at once: no deadlock, one customer per author', async () => {
    const author = (i: number) => ({ handle: `hmany${letters(i)}`, displayName: `Many ${letters(i)}`, email: `many.${letters(i)}@example.com` });
    const line = (who: string, i: number) => tagged(`many${who}${letters(i)}`, { author: author(i), occurredAt: new Date(Date.UTC(2026, 10, 5) + i * 1000).toISOString() });
    // authors 0..9,999 in a, 5,000..14,999 in b; the common ones in reverse order in b
    const a = Array.from({ length: N }, (_, i) => line('a', i));
    const b = [...Array.from({ length: N / 2 }, (_, i) => line('b', N - 1 - i)), ...Array.from({ length: N / 2 }, (_, i) => line('b', N + i))];
    // a deadlock's victim is retried (ingest-lanes.test.ts); what must not happen is a 503 or a second customer
    const [ra, rb] = await Promise.all([post(app, ndjson(a)), post(app, ndjson(b))]);
    expect(ra).toEqual({ status: 200, json: { accepted: N, duplicates: 0, rejected: [] } });
    expect(rb).toEqual({ status: 200, json: { accepted: N, duplicates: 0, rejected: [] } });
    expect(await count(`SELECT count(DISTINCT customer_id)::int AS n FROM interaction WHERE external_id LIKE 'ext-many%'`)).toBe(15_000);
    expect(await count(`SELECT count(*)::int AS n FROM interaction WHERE external_id LIKE 'ext-many%' AND customer_id IS NULL`)).toBe(0);
    expect(await count(`SELECT count(*)::int AS n FROM customer_identity WHERE value LIKE 'x:hmany%' OR value LIKE 'many.%'`)).toBe(30_000);
    expect(await traces(app)).toEqual(clean);
  });
});

describe('ingest: every line one status, in order, when a body mixes bad lines, repeats and valid ones', () => {
  const names = kafkaNames('idemstatus');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;
  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'api,ingest' }), 'idemstatus');
    // a line the database itself refuses, past the edge's checks
    await app.db.ds.query(`ALTER TABLE interaction ADD CONSTRAINT test_refused CHECK (text NOT LIKE '%refused-by-the-database%')`);
  });
  afterAll(async () => {
    await app?.close();
    await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin?.disconnect();
  });

  /** malformed, refused, blank, its repeat, a valid line, its repeat, a refused repeat, an edge-rejected line */
  const mixed = (tag: string) => [
    '{"source": "x",',
    tagged(`${tag}k`, { text: 'refused-by-the-database' }),
    '',
    tagged(`${tag}k`, { text: 'refused-by-the-database, again' }),
    tagged(`${tag}k`, { text: 'the same key, content the database takes' }),
    tagged(`${tag}l`),
    tagged(`${tag}k`, { text: 'a later repeat' }),
    tagged(`${tag}l`, { text: 'a repeat with other content' }),
    'null',
  ];
  const storedOf = (tag: string) =>
    app.db.ds.query(`SELECT external_id, text FROM interaction WHERE external_id IN ($1, $2) ORDER BY external_id`, [`ext-${tag}k`, `ext-${tag}l`]);
  const expected = (tag: string) => [
    { external_id: `ext-${tag}k`, text: 'the same key, content the database takes' },
    { external_id: `ext-${tag}l`, text: tagged('x').text },
  ];

  it('POST /ingest: a repeat of a line the database refused is stored (the first stored wins, and that one was not)', async () => {
    const r = await post(app, ndjson(mixed('sth')));
    expect(r.status).toBe(200);
    // one status a line: 8 non-blank lines, rejections in line order
    expect(r.json).toEqual({ accepted: 2, duplicates: 2, rejected: [expect.objectContaining({ line: 1 }), expect.objectContaining({ line: 2 }), expect.objectContaining({ line: 4 }), expect.objectContaining({ line: 9 })] });
    expect(r.json.rejected[1]!.error).toMatch(/rejected by the database/);
    expect(await storedOf('sth')).toEqual(expected('sth'));
  });

  it('ingestInteractions: the same', async () => {
    const input = mixed('stg').filter((l) => typeof l !== 'string');
    const r = await app.gql<{ ingestInteractions: Summary }>(INGEST, { input: input.map((m) => ({ ...m, direction: m.direction.toUpperCase() })) });
    expect(r.errors).toBeUndefined();
    expect(r.data.ingestInteractions).toEqual({ accepted: 2, duplicates: 2, rejected: [expect.objectContaining({ line: 1 }), expect.objectContaining({ line: 2 })] });
    expect(await storedOf('stg')).toEqual(expected('stg'));
  });

  it('Kafka (repeats reach the pipeline there): the same', async () => {
    // one partition's order: one key for all
    await produce(kafka, names.topic, mixed('stk').filter((l) => l !== '').map((l) => ({ key: 'one', value: typeof l === 'string' ? l : JSON.stringify(l) })));
    await waitFor('the group to commit every offset', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000, 100);
    expect(await storedOf('stk')).toEqual(expected('stk'));
  });
});

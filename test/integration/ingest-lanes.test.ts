import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// A large /ingest body is stored in lanes at once (EARSHOT_INGEST_LANES). The promise: what is
// stored is what one lane stores — the same customers, the same listening items in the same
// state — because a conversation never spans two lanes. Checked by sending one body of
// conversations that cross batch boundaries to two services, one lane and three, and comparing
// what a care desk and an analyst would read.

const T0 = Date.UTC(2026, 10, 2, 8, 0, 0);
const MIN = 60_000;
const PEOPLE = 300;

function conversationBody(): Record<string, unknown>[] {
  const events: { at: number; m: Record<string, unknown> }[] = [];
  const add = (at: number, m: Record<string, unknown>) => events.push({ at, m: { eventId: `e-${m.externalId as string}`, source: 'x', occurredAt: new Date(at).toISOString(), ...m } });
  const brand = { handle: 'brand', displayName: 'Brand Care' };
  for (let p = 0; p < PEOPLE; p++) {
    const base = T0 + p * 10_000;
    const handle = `lane${p}`;
    const author = {
      handle,
      displayName: `Lane ${p}`,
      ...(p % 5 === 0 ? { email: `lane${p}@example.com` } : {}),
      ...(p % 7 === 0 ? { phone: `+1415555${String(1000 + p).padStart(4, '0')}` } : {}),
    };
    const complaint = 'My parcel is late and nobody answers. Terrible.';
    add(base, { externalId: `${handle}-1`, direction: 'inbound', author, text: complaint });
    add(base + 30 * MIN, { externalId: `${handle}-2`, direction: 'outbound', inReplyTo: `${handle}-1`, author: brand, text: 'Sorry about that, we are looking into it.' });
    add(base + 60 * MIN, { externalId: `${handle}-3`, direction: 'inbound', inReplyTo: `${handle}-2`, author, text: 'Still nothing. This is awful.' });
    add(base + 90 * MIN, { externalId: `${handle}-4`, direction: 'outbound', author: brand, text: `@${handle} we have refunded you.` });
    add(base + 120 * MIN, { externalId: `${handle}-5`, direction: 'inbound', author, text: 'I love this, great service!' });
    // a second account of the same person, joined by the e-mail: left unanswered
    if (p % 5 === 0) add(base + 150 * MIN, { externalId: `${handle}b-1`, direction: 'inbound', author: { handle: `${handle}b`, displayName: `Lane ${p} (alt)`, email: `lane${p}@example.com` }, text: complaint });
    // a complaint of the same author within the window joins the author's item and reopens it
    if (p % 3 === 0) add(base + 200 * MIN, { externalId: `${handle}-6`, direction: 'inbound', author, text: 'And now the replacement is broken. Terrible.' });
  }
  return events.sort((a, b) => a.at - b.at).map((e) => e.m);
}

interface Snapshot {
  customers: unknown[];
  interactions: unknown[];
  items: unknown[];
}

async function snapshot(app: TestApp): Promise<Snapshot> {
  const q = (sql: string) => app.db.ds.query(sql) as Promise<unknown[]>;
  // customers named by their identities, not their random ids
  const customers = await q(`
    SELECT string_agg(ci.kind || ':' || ci.value, ' ' ORDER BY ci.kind, ci.value) AS identities,
           c.interaction_count, round(c.sentiment_score::numeric, 9)::text AS score, c.sentiment_label, c.last_interaction_at
      FROM customer c JOIN customer_identity ci ON ci.customer_id = c.id
     WHERE c.merged_into_id IS NULL
     GROUP BY c.id ORDER BY identities`);
  const interactions = await q(`
    SELECT i.external_id, (SELECT min(ci.kind || ':' || ci.value) FROM customer_identity ci WHERE ci.customer_id = i.customer_id) AS customer
      FROM interaction i ORDER BY i.external_id`);
  const items = await q(`
    SELECT li.thread_key, li.status, li.reopened_count, li.first_response_seconds, li.author_handle, li.sla_seconds, li.due_at,
           li.opened_at, li.last_inbound_at, i.external_id AS first, l.external_id AS last
      FROM listening_item li JOIN interaction i ON i.id = li.interaction_id JOIN interaction l ON l.id = li.last_interaction_id
     ORDER BY li.source, li.thread_key`);
  return { customers, interactions, items };
}

/** Whether the lines were committed in line order: each transaction id no smaller than the one of the line before. */
async function committedInLineOrder(app: TestApp, externalIds: string[]): Promise<boolean> {
  const rows = (await app.db.ds.query(`SELECT external_id, xmin::text::bigint AS tx FROM interaction`)) as { external_id: string; tx: string }[];
  const tx = new Map(rows.map((r) => [r.external_id, Number(r.tx)]));
  return externalIds.every((id, i) => i === 0 || tx.get(id)! >= tx.get(externalIds[i - 1]!)!);
}

describe('POST /ingest in lanes', () => {
  const body = conversationBody();
  const ids = body.map((m) => m.externalId as string);
  let one: TestApp;
  let three: TestApp;
  beforeAll(async () => {
    [one, three] = await Promise.all([startTestApp({ EARSHOT_INGEST_LANES: '1', EARSHOT_GAP_ESCALATION: 'off' }, 'lanes1'), startTestApp({ EARSHOT_INGEST_LANES: '3', EARSHOT_GAP_ESCALATION: 'off' }, 'lanes3')]);
  });
  afterAll(async () => {
    await Promise.all([one?.close(), three?.close()]);
  });

  it(`stores ${body.length} lines of ${PEOPLE} conversations in three lanes exactly as one lane does`, { timeout: 120_000 }, async () => {
    expect(body.length).toBe(PEOPLE * 5 + PEOPLE / 5 + PEOPLE / 3);
    for (const app of [one, three]) {
      const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(body) });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ accepted: body.length, duplicates: 0, rejected: [] });
    }
    // the control: one lane commits in line order; three lanes did not (they ran at once)
    expect(await committedInLineOrder(one, ids)).toBe(true);
    expect(await committedInLineOrder(three, ids)).toBe(false);

    const [a, b] = await Promise.all([snapshot(one), snapshot(three)]);
    // what both stored, in absolute terms first
    expect(a.customers).toHaveLength(PEOPLE); // the brand is no customer; a second account joins its person by e-mail
    expect(a.interactions).toHaveLength(body.length);
    const items = a.items as { thread_key: string; status: string; reopened_count: number; last: string }[];
    const lane3 = items.find((i) => i.thread_key === 'lane3-1')!;
    expect(lane3).toMatchObject({ status: 'open', reopened_count: 2, last: 'lane3-6' });
    const lane1 = items.find((i) => i.thread_key === 'lane1-1')!;
    expect(lane1).toMatchObject({ status: 'answered', reopened_count: 1, last: 'lane1-3' });
    expect(items.find((i) => i.thread_key === 'lane5b-1')).toMatchObject({ status: 'open', reopened_count: 0 });
    // and then: the same, row for row
    expect(b.customers).toEqual(a.customers);
    expect(b.interactions).toEqual(a.interactions);
    expect(b.items).toEqual(a.items);
  });
});

describe('POST /ingest in lanes when the database fails midway', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_INGEST_LANES: '3' }, 'lanesfail');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('answers 503 with how many lines were stored, and the same body sent again stores the rest once', { timeout: 120_000 }, async () => {
    // a failure the service must treat as transient (SQLSTATE 53000, insufficient resources), on one
    // line late in the body: the lanes stop, what they stored stays
    await app.db.ds.query(`
      CREATE FUNCTION lanes_fail() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.external_id = 'midway-1400' THEN RAISE EXCEPTION 'out of something' USING ERRCODE = '53000'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER lanes_fail BEFORE INSERT ON interaction FOR EACH ROW EXECUTE FUNCTION lanes_fail();`);
    const body = ndjson(Array.from({ length: 1_600 }, (_, i) => message(i, { externalId: `midway-${i}`, eventId: `midway-${i}` })));
    const send = () => fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body });
    // this test's rows only: the other test of this service stores its own
    const count = async () => ((await app.db.ds.query(`SELECT count(*)::int AS n, count(DISTINCT external_id)::int AS d FROM interaction WHERE external_id LIKE 'midway-%'`)) as { n: number; d: number }[])[0]!;

    let stored: number;
    try {
      const failed = await send();
      expect(failed.status).toBe(503);
      const { error } = (await failed.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      stored = (await count()).n;
      expect(stored).toBeGreaterThan(0);
      expect(stored).toBeLessThan(1_600);
      expect(error.message).toContain(`${stored} lines were stored before it failed`);
    } finally {
      await app.db.ds.query(`DROP TRIGGER lanes_fail ON interaction`);
    }

    const again = await send();
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ accepted: 1_600 - stored, duplicates: stored, rejected: [] });
    expect(await count()).toEqual({ n: 1_600, d: 1_600 });
  });

  it('stores a batch chosen as a deadlock victim again, and answers 200', { timeout: 120_000 }, async () => {
    // the first two tries of the batch holding this line fail as PostgreSQL's deadlock victim
    // would (SQLSTATE 40P01); a sequence counts the tries, as it is not rolled back with them
    await app.db.ds.query(`
      CREATE SEQUENCE lanes_victim_tries;
      CREATE FUNCTION lanes_victim() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.external_id = 'victim-700' AND nextval('lanes_victim_tries') <= 2 THEN
          RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER lanes_victim BEFORE INSERT ON interaction FOR EACH ROW EXECUTE FUNCTION lanes_victim();`);
    try {
      const lines = Array.from({ length: 1_200 }, (_, i) => message(i, { externalId: `victim-${i}`, eventId: `victim-${i}` }));
      const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ accepted: 1_200, duplicates: 0, rejected: [] });
      expect(await app.db.ds.query(`SELECT last_value::int AS tries FROM lanes_victim_tries`)).toEqual([{ tries: 3 }]);
      expect(await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE external_id LIKE 'victim-%'`)).toEqual([{ n: 1_200 }]);
    } finally {
      await app.db.ds.query(`DROP TRIGGER lanes_victim ON interaction`);
    }
  });
});

describe('POST /ingest: more lanes than pooled connections', () => {
  it('stores five concurrent 2,000-line bodies of 300 shared authors on a pool of two: every line once, one customer per author', { timeout: 120_000 }, async () => {
    const app = await startTestApp({ DATABASE_POOL_SIZE: '2', DATABASE_INGEST_POOL_SIZE: '2', EARSHOT_INGEST_LANES: '3', EARSHOT_GAP_ESCALATION: 'off' }, 'lanespool');
    try {
      // 15 lanes want a connection at once; the authors of every body are the same 300 people
      const bodies = Array.from({ length: 5 }, (_, k) =>
        ndjson(Array.from({ length: 2_000 }, (_, i) => message(i, { externalId: `pool${k}-${i}`, eventId: `pool${k}-${i}`, author: { handle: `pooled${i % 300}` } }))),
      );
      const answers = await Promise.all(
        bodies.map(async (body) => {
          const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body });
          return { status: res.status, body: await res.json() };
        }),
      );
      expect(answers).toEqual(Array.from({ length: 5 }, () => ({ status: 200, body: { accepted: 2_000, duplicates: 0, rejected: [] } })));
      expect(await app.db.ds.query(`SELECT count(*)::int AS n, count(DISTINCT external_id)::int AS d FROM interaction`)).toEqual([{ n: 10_000, d: 10_000 }]);
      expect(await app.db.ds.query(`SELECT count(*)::int AS n FROM customer WHERE merged_into_id IS NULL`)).toEqual([{ n: 300 }]);
      expect(await app.db.ds.query(`SELECT count(*)::int AS n FROM customer_identity WHERE kind = 'handle'`)).toEqual([{ n: 300 }]);
    } finally {
      await app.close();
    }
  });
});

describe('POST /ingest in lanes on data nobody here chose', () => {
  it('stores 3,000 lines of FEBRL authors and TweetEval texts, with random threads and mentions, in three lanes as one lane does', { timeout: 120_000 }, async () => {
    const shared = path.resolve(process.cwd(), '../shared/data');
    const texts = fs.readFileSync(path.join(shared, 'sentiment/tweeteval_val_text.txt'), 'utf8').split('\n').filter(Boolean);
    // rec_id, given_name, surname, …, soc_sec_id: duplicates of one person share or misspell names
    const people = fs.readFileSync(path.join(shared, 'identity/dataset2.csv'), 'utf8').split('\n').slice(1).filter(Boolean).map((l) => l.split(',').map((x) => x.trim()));
    let seed = 42;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const lines: { externalId: string; inReplyTo?: string; author: { handle: string } }[] = [];
    for (let i = 0; i < 3_000; i++) {
      const p = people[Math.floor(rnd() * 600)]!;
      const handle = `${p[1]}${p[2]}`.replace(/[^a-z]/g, '') || `anon${i}`;
      const base = { eventId: `febrl-${i}`, source: 'x', externalId: `febrl-${i}`, occurredAt: new Date(Date.UTC(2026, 10, 1) + i * 20_000).toISOString(), text: texts[i % texts.length]! };
      const person = { handle, displayName: `${p[1]} ${p[2]}` };
      if (i > 10 && rnd() < 0.3) {
        // a reply (the brand's, or the customer's) to any line before, threaded or by @mention only
        const parent = lines[Math.floor(rnd() * lines.length)]!;
        const outbound = rnd() < 0.6;
        lines.push({
          ...base,
          direction: outbound ? 'outbound' : 'inbound',
          ...(rnd() < 0.7 ? { inReplyTo: parent.externalId } : {}),
          author: outbound ? { handle: 'brand' } : { ...person, ...(p[10] ? { phone: `+1415${p[10].padStart(7, '0').slice(-7)}` } : {}) },
          text: outbound ? `@${parent.author.handle} ${base.text}` : base.text,
        } as (typeof lines)[number]);
      } else lines.push({ ...base, direction: 'inbound', author: { ...person, ...(rnd() < 0.3 ? { email: `${handle}@example.com` } : {}) } } as (typeof lines)[number]);
    }
    const snaps: Snapshot[] = [];
    for (const lanes of ['1', '3']) {
      const app = await startTestApp({ EARSHOT_INGEST_LANES: lanes, EARSHOT_GAP_ESCALATION: 'off' }, `lanesfebrl${lanes}`);
      try {
        const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
        expect(await res.json()).toEqual({ accepted: 3_000, duplicates: 0, rejected: [] });
        snaps.push(await snapshot(app));
      } finally {
        await app.close();
      }
    }
    expect(snaps[0]!.items.length).toBeGreaterThan(100);
    expect(snaps[1]!.customers).toEqual(snaps[0]!.customers);
    expect(snaps[1]!.interactions).toEqual(snaps[0]!.interactions);
    expect(snaps[1]!.items).toEqual(snaps[0]!.items);
  });
});

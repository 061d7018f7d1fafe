import type { Admin, Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/shared/clock';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, produce, readTopic, stopAndDropTopics, testKafka, waitFor } from '../support/kafka-fixtures';

/**
 * The time of an interaction, as a hostile or broken producer sends it, through every inbound
 * channel (POST /ingest, ingestInteractions, Kafka), and what a user then sees. The promise: a
 * date the service cannot take as the truth (before 1970, more than EARSHOT_INGEST_MAX_FUTURE_DAYS
 * past the service's clock, one day by default, or unreadable) rejects its line alone with the
 * reason; the lines beside it are stored. Before, dates up to ten years ahead were taken: such a
 * line kept its text past retention, opened a listening item due years later, and stood first in
 * its customer's history for years; and on ingestInteractions one unreadable date failed the call.
 */

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();
const FUTURE = /^occurredAt: \S+ is more than 24 hours in the future \(EARSHOT_INGEST_MAX_FUTURE_DAYS\)$/;
const FORMAT = /^occurredAt: must match format "date-time"$/;
const BEFORE = /^occurredAt: \S+ is before 1970-01-01T00:00:00.000Z \(EARSHOT_INGEST_EARLIEST_OCCURRED_AT\)$/;

interface Case {
  what: string;
  at: unknown;
  /** null: stored, at `stored` when given */
  refused: RegExp | null;
  stored?: string;
}

/** occurredAt values a hostile or broken producer sends, with what the edge must answer; strings only. */
function hostileStrings(now: number): Case[] {
  return [
    { what: 'an hour ago', at: iso(now - HOUR), refused: null },
    { what: '23 h ahead (clock skew)', at: iso(now + 23 * HOUR), refused: null },
    { what: '25 h ahead', at: iso(now + 25 * HOUR), refused: FUTURE },
    { what: '9 years ahead', at: iso(now + 9 * 365 * DAY), refused: FUTURE },
    { what: 'year 2999', at: '2999-01-01T00:00:00Z', refused: FUTURE },
    { what: '9999-12-31T23:59:59.999Z', at: '9999-12-31T23:59:59.999Z', refused: FUTURE },
    { what: '+275760 years', at: '+275760-09-13T00:00:00.000Z', refused: FORMAT },
    { what: 'year 1', at: '0001-01-01T00:00:00Z', refused: BEFORE },
    { what: 'year 1900', at: '1900-01-01T00:00:00Z', refused: BEFORE },
    { what: 'a millisecond before the epoch', at: '1969-12-31T23:59:59.999Z', refused: BEFORE },
    { what: 'epoch seconds as a string', at: '1700000000', refused: FORMAT },
    { what: 'nine digits of fraction', at: '2026-11-20T10:00:00.123456789Z', refused: null, stored: '2026-11-20 10:00:00.123+00' },
    { what: '+14:00', at: '2026-11-20T10:00:00+14:00', refused: null, stored: '2026-11-19 20:00:00+00' },
    { what: '-12:00', at: '2026-11-20T10:00:00-12:00', refused: null, stored: '2026-11-20 22:00:00+00' },
    { what: '+23:59', at: '2026-11-20T10:00:00+23:59', refused: null, stored: '2026-11-19 10:01:00+00' },
    { what: 'a leap second', at: '2016-12-31T23:59:60Z', refused: null, stored: '2016-12-31 23:59:59.999+00' },
    { what: 'February 30', at: '2026-02-30T00:00:00Z', refused: FORMAT },
    { what: 'no time zone', at: '2026-11-20T10:00:00', refused: FORMAT },
    { what: 'NaN', at: 'NaN', refused: FORMAT },
    { what: 'Infinity', at: 'Infinity', refused: FORMAT },
    { what: 'empty', at: '', refused: FORMAT },
    { what: '10 kB', at: `2026-11-20T10:00:00${'0'.repeat(10_000)}Z`, refused: FORMAT },
  ];
}

/** The same, plus values of the wrong JSON type (a GraphQL variable cannot carry them as a String). */
function hostileValues(now: number): Case[] {
  return [
    ...hostileStrings(now),
    { what: 'epoch seconds as a number', at: 1.7e9, refused: /^occurredAt: must be string$/ },
    { what: 'epoch milliseconds as a number', at: 1.7e12, refused: /^occurredAt: must be string$/ },
    { what: 'null', at: null, refused: /^occurredAt: must be string$/ },
  ];
}

async function storedTimes(app: TestApp, prefix: string): Promise<Map<string, string>> {
  const rows = (await app.db.ds.query(`SELECT external_id, occurred_at::text AS at FROM interaction WHERE external_id LIKE $1`, [`${prefix}%`])) as { external_id: string; at: string }[];
  return new Map(rows.map((r) => [r.external_id, r.at]));
}

/** Each case's line is `${prefix}${i}`: what was stored is exactly the cases not refused, at their instant. */
function expectStored(stored: Map<string, string>, prefix: string, cases: Case[]): void {
  const want = cases.flatMap((c, i) => (c.refused === null ? [`${prefix}${i}`] : []));
  expect([...stored.keys()].sort()).toEqual(want.sort());
  cases.forEach((c, i) => {
    if (c.stored) expect(stored.get(`${prefix}${i}`), c.what).toBe(c.stored);
  });
}

const MUTATION = `mutation($input: [InteractionInput!]!) { ingestInteractions(input: $input) { accepted duplicates rejected { line error } } }`;

describe('occurredAt at the edge: POST /ingest and ingestInteractions', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest' }, 'tshttp');
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  it('POST /ingest: each hostile timestamp rejects its line alone, with its line number and reason', async () => {
    const cases = hostileValues(Date.now());
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: ndjson(cases.map((c, i) => message(700_000 + i, { externalId: `tsh-${i}`, occurredAt: c.at }))),
    });
    expect(res.status).toBe(200);
    const json = (await res.json()) as { accepted: number; rejected: { line: number; error: string }[] };
    const refused = cases.flatMap((c, i) => (c.refused ? [{ line: i + 1, error: expect.stringMatching(c.refused) }] : []));
    expect(json.rejected).toEqual(refused);
    expect(json.accepted).toBe(cases.length - refused.length);
    expectStored(await storedTimes(app, 'tsh-'), 'tsh-', cases);
  });

  it('ingestInteractions: an unreadable or out-of-range date rejects its entry alone, by its position', async () => {
    const cases = hostileStrings(Date.now());
    // one valid entry first, then every case: a single call
    const input = [
      message(710_000, { externalId: 'tsg-valid', direction: 'INBOUND' }),
      ...cases.map((c, i) => message(710_001 + i, { externalId: `tsg-${i}`, occurredAt: c.at, direction: 'INBOUND' })),
    ];
    const r = await app.gql<{ ingestInteractions: { accepted: number; rejected: { line: number; error: string }[] } }>(MUTATION, { input });
    expect(r.errors).toBeUndefined();
    expect(r.status).toBe(200);
    const refused = cases.flatMap((c, i) => (c.refused ? [{ line: i + 2, error: expect.stringMatching(c.refused) }] : []));
    expect(r.data.ingestInteractions.rejected).toEqual(refused);
    expect(r.data.ingestInteractions.accepted).toBe(1 + cases.length - refused.length);
    const stored = await storedTimes(app, 'tsg-');
    expect(stored.has('tsg-valid')).toBe(true);
    expectStored(new Map([...stored].filter(([id]) => /^tsg-\d+$/.test(id))), 'tsg-', cases);
  });

  it('ingestInteractions: a date of the wrong JSON type is a GraphQL type error naming the entry; nothing is stored', async () => {
    for (const at of [1.7e9, 1.7e12, null]) {
      const input = [message(720_000, { externalId: 'tsg-typed-ok', direction: 'INBOUND' }), message(720_001, { externalId: 'tsg-typed-bad', occurredAt: at, direction: 'INBOUND' })];
      const r = await app.gql(MUTATION, { input });
      expect(r.status).toBe(400);
      expect(r.errors?.[0]).toMatchObject({ message: expect.stringContaining('input[1].occurredAt'), extensions: { code: 'BAD_USER_INPUT' } });
    }
    expect((await storedTimes(app, 'tsg-typed')).size).toBe(0);
  });

  it('date arguments of queries at the ends of what they take are answered, never a 500', async () => {
    const ranges: [string, string][] = [
      ['0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z'],
      ['1970-01-01T00:00:00Z', '1970-01-01T00:00:00.001Z'],
      ['9999-12-30T00:00:00Z', '9999-12-31T23:59:59.999Z'],
      ['2026-12-01T00:00:00Z', '2026-11-01T00:00:00Z'],
      ['2026-11-01T00:00:00+23:59', '2026-11-01T00:00:00-23:59'],
      ['+275760-09-13T00:00:00Z', '2026-11-01T00:00:00Z'],
      ['0000-01-01T00:00:00Z', '2026-11-01T00:00:00Z'],
      ['NaN', 'Infinity'],
    ];
    const queries = [
      `query($f: DateTimeISO!, $t: DateTimeISO!) { listeningGap(from: $f, to: $t) { received ignored } }`,
      `query($f: DateTimeISO!, $t: DateTimeISO!) { departmentInsights(from: $f, to: $t) { department volume } }`,
      `query($f: DateTimeISO!, $t: DateTimeISO!) { sentimentTrend(scope: ALL, bucket: WEEK, from: $f, to: $t) { start count } }`,
      `query($f: DateTimeISO!, $t: DateTimeISO!) { interactions(first: 5, filter: { from: $f, to: $t }) { totalCount } }`,
      `query($f: DateTimeISO!, $t: DateTimeISO!) { listeningItems(first: 5, filter: { from: $f, to: $t }) { totalCount } }`,
    ];
    for (const q of queries) {
      for (const [f, t] of ranges) {
        const started = Date.now();
        const r = await app.gql(q, { f, t });
        const where = `${q.slice(40, 70)} ${f}..${t}: ${JSON.stringify(r.errors ?? r.data).slice(0, 200)}`;
        expect(r.status, where).toBeLessThan(500);
        expect(r.errors?.[0]?.extensions?.code ?? 'none', where).toMatch(/^(none|BAD_USER_INPUT|BAD_REQUEST)$/);
        expect(Date.now() - started, where).toBeLessThan(5_000);
      }
    }
  });
});

describe('occurredAt at the edge: Kafka', () => {
  const names = kafkaNames('tskafka');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'ingest', KAFKA_TOPIC_PARTITIONS: '1' }), 'tskafka');
  }, 120_000);

  afterAll(() => stopAndDropTopics(app, admin, names));

  it('each hostile timestamp is dead-lettered alone with its reason; the partition moves on', async () => {
    const cases = hostileValues(Date.now());
    await produce(kafka, names.topic, [
      ...cases.map((c, i) => ({ key: 'k', value: JSON.stringify(message(730_000 + i, { externalId: `tsk-${i}`, occurredAt: c.at })), headers: { 'test-case': String(i) } })),
      { key: 'k', value: JSON.stringify(message(730_999, { externalId: 'tsk-last' })) },
    ]);
    await waitFor('the message after the cases', async () => (await storedTimes(app, 'tsk-last')).size === 1, 60_000);
    expectStored(new Map([...(await storedTimes(app, 'tsk-'))].filter(([id]) => id !== 'tsk-last')), 'tsk-', cases);
    const want = cases.flatMap((c, i) => (c.refused ? [i] : []));
    const letters = await waitFor('every dead letter', async () => {
      const got = (await readTopic(kafka, names.dlq)).filter((l) => l.headers['test-case'] !== undefined);
      return got.length >= want.length ? got : null;
    }, 60_000);
    expect(letters.map((l) => Number(l.headers['test-case']))).toEqual(want);
    for (const l of letters) {
      const c = cases[Number(l.headers['test-case'])]!;
      expect(l.headers['x-error'], c.what).toMatch(c.refused!);
      expect(l.headers['x-error-kind'], c.what).toMatch(/^(schema-violation|invalid-value)$/);
    }
  }, 120_000);
});

describe("the future limit is measured against the service's clock", () => {
  const clock = new ManualClock();
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest', EARSHOT_INGEST_MAX_FUTURE_DAYS: '1' }, 'tsclock', undefined, { clock });
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  it('a date two days past the wall clock is taken when the service clock is three days ahead of it', async () => {
    clock.advance(3 * DAY);
    const wall = Date.now();
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: ndjson([message(740_000, { externalId: 'tsc-yesterday', occurredAt: iso(wall + 2 * DAY) }), message(740_001, { externalId: 'tsc-ahead', occurredAt: iso(clock.now() + 2 * DAY) })]),
    });
    expect(await res.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [{ line: 2, error: expect.stringMatching(FUTURE) }] });
    expect([...(await storedTimes(app, 'tsc-')).keys()]).toEqual(['tsc-yesterday']);
  });
});

describe('what a user sees after a producer sends dates years ahead', () => {
  const clock = new ManualClock();
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest,sync', EARSHOT_RETENTION_DAYS: '30', EARSHOT_GAP_ESCALATION: 'off' }, 'tsseen', undefined, { clock });
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  it("the customer's summary, history, open items and retention follow the real interaction", async () => {
    const now = clock.now();
    const complaint = 'My parcel is late and nobody answers. Terrible.';
    const ahead = iso(now + 9 * 365 * DAY);
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: ndjson([
        message(750_000, { externalId: 'tss-ahead-a', occurredAt: ahead, author: { handle: 'tssahead' }, text: complaint }),
        message(750_001, { externalId: 'tss-real-b', occurredAt: iso(now - HOUR), author: { handle: 'tssreal' }, text: complaint }),
        message(750_002, { externalId: 'tss-ahead-b', occurredAt: ahead, author: { handle: 'tssreal' }, text: 'Thanks, all good now, love it!' }),
      ]),
    });
    // before: all three stored; the complaint's item due in 2035, never overdue, kept with its text past retention;
    // the second author's summary last interacted in 2035, scored +0.87 from the fake praise, and showed it first
    expect(await res.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [1, 3].map((line) => ({ line, error: expect.stringMatching(FUTURE) })) });
    const items = await app.gql<{ openItems: { totalCount: number; edges: { node: Record<string, any> }[] } }>(
      `{ openItems(first: 10) { totalCount edges { node { dueAt interaction { occurredAt } customer { displayName sentiment { lastInteractionAt score } interactions(first: 1) { edges { node { text } } } } } } } }`,
    );
    expect(items.data.openItems.totalCount).toBe(1);
    const item = items.data.openItems.edges[0]!.node;
    expect(Date.parse(item.dueAt)).toBe(now - HOUR + 4 * HOUR);
    expect(item.customer.displayName).toBe('tssreal');
    expect(item.customer.sentiment.lastInteractionAt).toBe(iso(now - HOUR));
    expect(item.customer.sentiment.score).toBeLessThan(0);
    expect(item.customer.interactions.edges[0].node.text).toBe(complaint);

    // 31 days later nothing of what was stored holds text any more
    const task = app.services.retention.task;
    await task.waitForRuns(1);
    clock.advance(31 * DAY);
    await task.waitForRuns(2);
    const rows = (await app.db.ds.query(`SELECT external_id, redacted_at IS NOT NULL AS redacted, text FROM interaction WHERE external_id LIKE 'tss-%'`)) as { external_id: string; redacted: boolean; text: string }[];
    expect(rows).toEqual([{ external_id: 'tss-real-b', redacted: true, text: '' }]);
  });
});

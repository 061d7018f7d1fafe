import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/sql';
import { rebuildCustomerRollups } from '../../src/sentiment/rollups';
import { updateCustomerSummaries } from '../../src/sentiment/rollups.repository';
import { toGlobalId } from '../../src/graphql/relay';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// The customer's sentiment summary is kept on its row as decayed sums, updated once per batch
// (src/sentiment/rollups.ts): whatever order the days arrive in, it must equal the summary
// computed from the customer's stored interactions, which merges and re-scores rebuild.

const DAY = 86_400_000;

describe('customer summary on the customer row', () => {
  let app: TestApp;

  beforeAll(async () => {
    // one test below sends dates years ahead, as a service whose operator widened the window may take
    app = await startTestApp({ EARSHOT_INGEST_MAX_FUTURE_DAYS: '3650' }, 'customersummary');
  }, 120_000);

  afterAll(async () => {
    await app?.close();
  });

  async function post(lines: unknown[]): Promise<void> {
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(res.status).toBe(200);
  }

  /** The summary as the daily rows it replaced defined it, computed from the interactions. */
  async function expected(customerId: string): Promise<{ score: number; trend: number | null; count: number }> {
    const [row] = (await app.db.ds.query(
      `WITH d AS (SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, sentiment_score AS s FROM interaction WHERE customer_id = $1 AND direction = 'inbound'),
            m AS (SELECT max(day) AS ref FROM d)
       SELECT sum(s * power(0.5::float8, (m.ref - day)::float8 / 30)) / sum(power(0.5::float8, (m.ref - day)::float8 / 30)) AS score,
              avg(s) FILTER (WHERE day > current_date - 30) - avg(s) FILTER (WHERE day <= current_date - 30 AND day > current_date - 60) AS trend,
              count(*)::int AS count
         FROM d, m GROUP BY m.ref`,
      [customerId],
    )) as { score: number; trend: number | null; count: number }[];
    return row!;
  }

  async function stored(customerId: string): Promise<{ score: number; trend: number | null; count: number; label: string }> {
    const [row] = (await app.db.ds.query(
      `SELECT sentiment_score AS score, sentiment_trend AS trend, interaction_count AS count, sentiment_label AS label FROM customer WHERE id = $1`,
      [customerId],
    )) as { score: number; trend: number | null; count: number; label: string }[];
    return row!;
  }

  /** Messages by one author, `daysAgo` days before now; external ids `prefix-handle-0`, `-1`, … */
  function author(handle: string, prefix: string, displayName: string): (daysAgo: number, text: string) => Record<string, unknown> {
    const now = Date.now();
    let n = 0;
    return (daysAgo, text) =>
      message(0, {
        eventId: `${prefix}-${handle}-${n}`,
        externalId: `${prefix}-${handle}-${n++}`,
        occurredAt: new Date(now - daysAgo * DAY).toISOString(),
        author: { handle, displayName },
        text,
      });
  }

  it('equals the summary of the stored interactions when days arrive out of order, and after a rebuild', async () => {
    const handle = `s${randomUUID().slice(0, 8)}`; // an X handle: at most 15 characters
    const at = author(handle, 'sum', 'Summary Person');
    const good = 'I love this, great service!';
    const bad = 'My parcel is late and nobody answers. Terrible.';
    // newest first, then older days (late arrivals), then a batch spanning many days, then outbound
    await post([at(3, good), at(4, bad)]);
    await post([at(45, bad), at(40, bad)]);
    await post([at(200, good), at(10, good), at(50, bad), at(0.5, bad), at(400, good)]);
    await post([{ ...at(0.2, 'We are on it, sorry!'), direction: 'outbound', author: { handle: 'brand' } }]);

    const [{ customer_id: customerId }] = (await app.db.ds.query(
      `SELECT customer_id FROM interaction WHERE external_id = $1`,
      [`sum-${handle}-0`],
    )) as { customer_id: string }[];
    const want = await expected(customerId);
    const got = await stored(customerId);
    expect(got.count).toBe(9);
    expect(got.count).toBe(want.count);
    expect(got.score).toBeCloseTo(want.score, 9);
    expect(want.trend).not.toBeNull();
    expect(got.trend).toBeCloseTo(want.trend!, 9);

    // the rebuild merges and re-scores use gives the same summary from the interactions alone
    await rebuildCustomerRollups(app.db.ds, [customerId]);
    const rebuilt = await stored(customerId);
    expect(rebuilt.count).toBe(got.count);
    expect(rebuilt.score).toBeCloseTo(got.score, 9);
    expect(rebuilt.trend).toBeCloseTo(got.trend!, 9);
    expect(rebuilt.label).toBe(got.label);

    // the daily view agrees with the interactions
    const [{ n: daily }] = (await app.db.ds.query(`SELECT sum(interaction_count)::int AS n FROM customer_sentiment_daily WHERE customer_id = $1`, [customerId])) as { n: number }[];
    expect(daily).toBe(9);
  });

  it('keeps the trend\'s days on the row: only the window\'s, filled from the interactions for a row that had none', async () => {
    const handle = `d${randomUUID().slice(0, 8)}`;
    const at = author(handle, 'days', 'Days Person');
    await post([at(3, 'I love this, great service!'), at(40, 'Terrible, nobody answers.'), at(70, 'Terrible again.')]);
    const [{ customer_id: customerId }] = (await app.db.ds.query(`SELECT customer_id FROM interaction WHERE external_id = $1`, [`days-${handle}-0`])) as {
      customer_id: string;
    }[];
    // as a row stored before the column existed: no days yet
    await app.db.ds.query(`UPDATE customer SET sentiment_days = NULL WHERE id = $1`, [customerId]);
    await post([at(1, 'Still waiting for a refund, awful.'), at(3, 'Great help from the team today.')]);

    const want = await expected(customerId);
    const got = await stored(customerId);
    expect(got.count).toBe(5);
    expect(got.trend).toBeCloseTo(want.trend!, 9);
    // the row holds (day, count, sum) for the days of the last 60 only, oldest first, as the interactions give them
    const [{ days }] = (await app.db.ds.query(`SELECT sentiment_days AS days FROM customer WHERE id = $1`, [customerId])) as { days: number[] }[];
    const fromInteractions = (await app.db.ds.query(
      `SELECT ((occurred_at AT TIME ZONE 'UTC')::date - date '1970-01-01')::float8 AS day, count(*)::float8 AS n, sum(sentiment_score) AS s
         FROM interaction WHERE customer_id = $1 AND direction = 'inbound' AND (occurred_at AT TIME ZONE 'UTC')::date > current_date - 60
        GROUP BY 1 ORDER BY 1`,
      [customerId],
    )) as { day: number; n: number; s: number }[];
    expect(fromInteractions.map((r) => r.n)).toEqual([1, 2, 1]);
    expect(days.length).toBe(3 * fromInteractions.length);
    fromInteractions.forEach((r, i) => {
      expect(days[3 * i]).toBe(r.day);
      expect(days[3 * i + 1]).toBe(r.n);
      expect(days[3 * i + 2]).toBeCloseTo(r.s, 9);
    });
  });

  it('keeps one day entry for dates more than 60 days ahead, however many', async () => {
    const handle = `f${randomUUID().slice(0, 8)}`;
    const at = author(handle, 'ahead', 'Ahead Person');
    // ingest admits dates years ahead when EARSHOT_INGEST_MAX_FUTURE_DAYS allows (3650 here): each would be a day of its own
    await post([at(1, 'Still waiting for a refund, awful.'), at(40, 'Fine.'), at(-400, 'Great help from the team.'), at(-800, 'Terrible.'), at(-1200, 'I love it.')]);
    const [{ customer_id: customerId }] = (await app.db.ds.query(`SELECT customer_id FROM interaction WHERE external_id = $1`, [`ahead-${handle}-0`])) as {
      customer_id: string;
    }[];
    const [{ days, today }] = (await app.db.ds.query(`SELECT sentiment_days AS days, (current_date - date '1970-01-01')::float8 AS today FROM customer WHERE id = $1`, [
      customerId,
    ])) as { days: number[]; today: number }[];
    expect(days.length).toBe(9);
    expect([days[0], days[3]]).toEqual([today - 40, today - 1]);
    expect(days.slice(6, 8)).toEqual([today + 61, 3]);
    // all of them count as recent, as the interactions say
    const want = await expected(customerId);
    expect(want.trend).not.toBeNull();
    expect((await stored(customerId)).trend).toBeCloseTo(want.trend!, 9);
  });

  it("updates a customer with a long history without reading its interactions", async () => {
    const [{ id }] = (await app.db.ds.query(`INSERT INTO customer (display_name) VALUES ('Long History') RETURNING id`)) as { id: string }[];
    // 3,000 inbound interactions over the last 60 days, then the summary built from them
    await app.db.ds.query(
      `INSERT INTO interaction (source, external_id, text, occurred_at, direction, sentiment_score, sentiment_label, sentiment_confidence, intent, customer_id)
       SELECT 'x', 'long-' || $1 || '-' || g, 'filler', now() - (g % 59) * interval '1 day' - interval '1 hour', 'inbound', ((g % 5) - 2) / 2.0, 'neutral', 0.5, 'other', $1::uuid
         FROM generate_series(1, 3000) g`,
      [id],
    );
    await rebuildCustomerRollups(app.db.ds, [id]);
    const before = await stored(id);
    expect(before.trend).toBeCloseTo((await expected(id)).trend!, 9);

    // what an ingest batch does for this customer (one more interaction today), run under EXPLAIN ANALYZE
    const plans: { 'Node Type': string; 'Relation Name'?: string; 'Actual Loops'?: number; Plans?: unknown[] }[] = [];
    const qr = app.db.ds.createQueryRunner();
    await qr.connect();
    try {
      await qr.startTransaction();
      const explaining = {
        query: async (sql: string, params?: unknown[]) => {
          const [row] = (await qr.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params)) as { 'QUERY PLAN': { Plan: (typeof plans)[number] }[] }[];
          plans.push(row!['QUERY PLAN'][0]!.Plan);
          return [[], 0];
        },
      } as unknown as Db;
      const today = new Date().toISOString().slice(0, 10);
      await updateCustomerSummaries(explaining, { ids: [id], seen: [new Date().toISOString()], added: [1], days: { keys: [id], days: [today], n: [1], sum: [-0.5] }, returning: false });
      const after = (await qr.query(`SELECT sentiment_trend AS trend, interaction_count AS count FROM customer WHERE id = $1`, [id])) as { trend: number; count: number }[];
      expect(after[0]!.count).toBe(before.count + 1);
      expect(after[0]!.trend).not.toBeCloseTo(before.trend!, 6);
    } finally {
      await qr.rollbackTransaction();
      await qr.release();
    }
    const walk = (n: (typeof plans)[number]): (typeof plans)[number][] => [n, ...((n.Plans ?? []) as (typeof plans)[number][]).flatMap(walk)];
    const read = plans.flatMap(walk).filter((n) => n['Relation Name'] === 'interaction' && (n['Actual Loops'] ?? 0) > 0);
    expect(plans).toHaveLength(1);
    expect(read).toEqual([]);
  });

  it('shows the trend as of today: a quiet customer\'s days leave the windows as time passes', async () => {
    const handle = `q${randomUUID().slice(0, 8)}`;
    const displayName = `Quiet ${handle}`;
    const at = author(handle, 'quiet', displayName);
    await post([at(0.5, 'I love this, great service!'), at(20, 'My parcel is late and nobody answers. Terrible.'), at(35, 'Great support, thank you so much!')]);
    const [{ customer_id: customerId }] = (await app.db.ds.query(`SELECT customer_id FROM interaction WHERE external_id = $1`, [`quiet-${handle}-0`])) as { customer_id: string }[];
    const id = toGlobalId('Customer', customerId);
    const read = async () => {
      const byId = await app.gql<{ customer: { sentiment: { trend: number | null } } }>('query($id: ID!) { customer(id: $id) { sentiment { trend } } }', { id });
      const listed = await app.gql<{ customers: { edges: { node: { sentiment: { trend: number | null } } }[] } }>(
        'query($q: String) { customers(first: 5, filter: { search: $q }) { edges { node { sentiment { trend } } } } }',
        { q: displayName },
      );
      expect(byId.errors).toBeUndefined();
      expect(listed.errors).toBeUndefined();
      expect(listed.data.customers.edges).toHaveLength(1);
      expect(listed.data.customers.edges[0]!.node.sentiment.trend).toBe(byId.data.customer.sentiment.trend);
      return byId.data.customer.sentiment.trend;
    };
    const written = (await stored(customerId)).trend;
    expect(written).not.toBeNull();
    expect(await read()).toBeCloseTo(written!, 9);

    // Time passes with nothing new from this customer: the row and its interactions move back by
    // `days`, as they would look that many days later.
    const passes = async (days: number) => {
      await app.db.ds.query(`UPDATE interaction SET occurred_at = occurred_at - make_interval(days => $2) WHERE customer_id = $1`, [customerId, days]);
      await app.db.ds.query(
        `UPDATE customer SET sentiment_days = (SELECT array_agg(CASE WHEN o % 3 = 1 THEN v - $2 ELSE v END ORDER BY o) FROM unnest(sentiment_days) WITH ORDINALITY AS u(v, o))
          WHERE id = $1`,
        [customerId, days],
      );
    };
    // 15 days later: the day 20 ago is now 35 ago, in the window before; the trend moves
    await passes(15);
    const later = await expected(customerId);
    expect(later.trend).not.toBeNull();
    expect(later.trend).not.toBeCloseTo(written!, 3);
    expect(await read()).toBeCloseTo(later.trend!, 9);
    // 45 days later: nothing in the last 30 days, so no trend; the stored one is as of the last update
    await passes(30);
    expect((await expected(customerId)).trend).toBeNull();
    expect(await read()).toBeNull();
    expect((await stored(customerId)).trend).toBeCloseTo(written!, 9);
  });

  it('counts the trend in UTC days whatever the session\'s time zone', async () => {
    // A zone whose date differs from UTC's now (UTC+14 from 10:00 UTC, UTC-11 before), and days
    // around the 30-day boundary that the two dates would put in different windows.
    const [{ hour }] = (await app.db.ds.query(`SELECT extract(hour FROM now() AT TIME ZONE 'UTC')::int AS hour`)) as { hour: number }[];
    const ahead = hour >= 10;
    const qr = app.db.ds.createQueryRunner();
    try {
      await qr.startTransaction();
      await qr.query(`SET LOCAL TimeZone = '${ahead ? 'Pacific/Kiritimati' : 'Pacific/Pago_Pago'}'`);
      const [{ trend, local, utc }] = (await qr.query(
        `WITH t AS (SELECT ((now() AT TIME ZONE 'UTC')::date - date '1970-01-01')::float8 AS t)
         SELECT customer_trend(ARRAY[t.t - $1, 1, 1.0, t.t - 45, 1, 0.0]::float8[], NULL) AS trend, current_date AS local, (now() AT TIME ZONE 'UTC')::date AS utc FROM t`,
        [ahead ? 29 : 30],
      )) as { trend: number | null; local: string; utc: string }[];
      expect(String(local)).not.toBe(String(utc));
      // by UTC days: 29 days ago is recent and 45 in the window before (1.0 − 0.0); 30 days ago is in the window before, so nothing is recent
      expect(trend).toBe(ahead ? 1 : null);
    } finally {
      await qr.rollbackTransaction().catch(() => undefined);
      await qr.release();
    }
  });
});

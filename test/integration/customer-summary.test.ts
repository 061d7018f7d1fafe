import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rebuildCustomerRollups } from '../../src/sentiment/rollups';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// The customer's sentiment summary is kept on its row as decayed sums, updated once per batch
// (src/sentiment/rollups.ts): whatever order the days arrive in, it must equal the summary
// computed from the customer's stored interactions, which merges and re-scores rebuild.

const DAY = 86_400_000;

describe('customer summary on the customer row', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({}, 'customersummary');
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

  it('equals the summary of the stored interactions when days arrive out of order, and after a rebuild', async () => {
    const handle = `s${randomUUID().slice(0, 8)}`; // an X handle: at most 15 characters
    const now = Date.now();
    let n = 0;
    const at = (daysAgo: number, text: string) =>
      message(0, {
        eventId: `sum-${handle}-${n}`,
        externalId: `sum-${handle}-${n++}`,
        occurredAt: new Date(now - daysAgo * DAY).toISOString(),
        author: { handle, displayName: 'Summary Person' },
        text,
      });
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
});

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';

// customer_days_window (migration CustomerDaysWindow) replaced the summary update's SQL for a
// customer's day sums and trend. It must answer what that SQL answered, on any triples.

/** The rule as the summary update wrote it in SQL before the function (the reference). */
const SQL_RULE = `
  SELECT coalesce(array_agg(f.v ORDER BY g.day, f.k), '{}') AS days,
         sum(g.s) FILTER (WHERE f.k = 1 AND g.day > $2 - 30) / nullif(sum(g.n) FILTER (WHERE f.k = 1 AND g.day > $2 - 30), 0)
         - sum(g.s) FILTER (WHERE f.k = 1 AND g.day <= $2 - 30) / nullif(sum(g.n) FILTER (WHERE f.k = 1 AND g.day <= $2 - 30), 0) AS trend
    FROM (SELECT least(u.day, $2 + 61) AS day, sum(u.n) AS n, sum(u.s) AS s
            FROM (SELECT ($1::float8[])[k] AS day, ($1::float8[])[k + 1] AS n, ($1::float8[])[k + 2] AS s
                    FROM generate_series(1, coalesce(cardinality($1::float8[]), 0), 3) k) u
           WHERE u.day > $2 - 60 GROUP BY 1 HAVING sum(u.n) <> 0) g
    CROSS JOIN LATERAL (VALUES (1, g.day), (2, g.n), (3, g.s)) AS f(k, v)`;

interface Window {
  days: number[];
  trend: number | null;
}

describe('customer_days_window', () => {
  let app: TestApp;
  const TODAY = 20_790;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api' }, 'dayswindow');
  }, 120_000);

  afterAll(async () => {
    await app?.stop();
    await app?.database.drop();
  });

  const fn = async (triples: number[] | null, today = TODAY): Promise<Window> =>
    ((await app.db.ds.query('SELECT w.days, w.trend FROM customer_days_window($1::float8[], $2::int) w', [triples, today])) as Window[])[0]!;
  const reference = async (triples: number[] | null, today = TODAY): Promise<Window> => ((await app.db.ds.query(SQL_RULE, [triples, today])) as Window[])[0]!;

  it('keeps the window, adds up one day, drops a day whose count is 0 and clamps days far ahead', async () => {
    const w = await fn([
      TODAY - 70, 5, 4, // before the window: dropped
      TODAY - 40, 2, -1, // the earlier 30 days
      TODAY - 2, 1, 0.5,
      TODAY - 2, 1, 0.25, // the same day again: added up
      TODAY - 1, 1, 0.9,
      TODAY - 1, -1, -0.9, // retracted: the day's count is 0, so it goes
      TODAY + 500, 1, 1, // far ahead: counted as today + 61
    ]);
    expect(w.days).toEqual([TODAY - 40, 2, -1, TODAY - 2, 2, 0.75, TODAY + 61, 1, 1]);
    // recent mean (0.75 + 1) / 3 minus earlier mean -1 / 2
    expect(w.trend).toBeCloseTo(1.75 / 3 + 0.5, 12);
    expect(await fn(null)).toEqual({ days: [], trend: null });
    expect((await fn([TODAY - 3, 1, 0.4])).trend).toBeNull();
  });

  it('answers what the SQL it replaced answered, on 400 generated day lists', async () => {
    const triple = fc.tuple(fc.integer({ min: TODAY - 90, max: TODAY + 120 }), fc.integer({ min: -2, max: 3 }), fc.double({ min: -3, max: 3, noNaN: true }));
    await fc.assert(
      fc.asyncProperty(fc.array(triple, { maxLength: 40 }), async (list) => {
        const flat = list.flat();
        const [got, want] = await Promise.all([fn(flat), reference(flat)]);
        expect(got.days.length).toBe(want.days.length);
        // the same days and counts; sums and trend alike up to the order of float additions
        got.days.forEach((v, i) => expect(v).toBeCloseTo(want.days[i]!, 9));
        if (want.trend === null) expect(got.trend).toBeNull();
        else expect(got.trend).toBeCloseTo(want.trend, 9);
      }),
      { numRuns: 400, seed: 20261202 },
    );
  });
});

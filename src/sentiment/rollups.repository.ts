import type { DataSource } from 'typeorm';
import { batchIds, exec, modify, rows, type Db } from '../db/sql';
import type { CustomerSummaryRow } from '../outbox/outbox-events';
import { NEGATIVE_THRESHOLD, POSITIVE_THRESHOLD } from './analyzer';

/**
 * Every SQL statement over the derived sentiment tables (./rollups.ts owns them and works out
 * what to write): the daily rollups per department and per topic, and the stored customer summary.
 */

/** Replaces a daily rollup table's rows with the sums of the inbound interactions `i` that `from` joins to each `keyExpr`. */
async function rebuildDaily(ds: DataSource, table: string, keyColumn: string, keyExpr: string, from: string): Promise<void> {
  await ds.transaction(async (em) => {
    await exec(em, `LOCK TABLE ${table} IN EXCLUSIVE MODE`);
    await exec(em, `DELETE FROM ${table}`);
    await exec(em, `
      INSERT INTO ${table} (${keyColumn}, day, interaction_count, score_sum, negative_count, positive_count)
      SELECT ${keyExpr}, (i.occurred_at AT TIME ZONE 'UTC')::date, count(*), sum(i.sentiment_score),
             count(*) FILTER (WHERE i.sentiment_label = 'negative'), count(*) FILTER (WHERE i.sentiment_label = 'positive')
        FROM ${from}
       WHERE i.direction = 'inbound'
       GROUP BY 1, 2`);
  });
}

/** Department rollups from the stored tags: what they would be had every interaction arrived today. */
export function rebuildDepartmentRollups(ds: DataSource): Promise<void> {
  return rebuildDaily(ds, 'department_sentiment_daily', 'department_id', 'x.department_id',
    `(SELECT DISTINCT it.interaction_id, t.department_id FROM interaction_topic it JOIN topic t ON t.id = it.topic_id) x
        JOIN interaction i ON i.id = x.interaction_id`);
}

/**
 * Topic rollups from the stored tags and scores. Writers keep them in step through
 * `applyRollups` (rollups.ts); a change of every score (a re-score) rebuilds them instead.
 */
export function rebuildTopicRollups(ds: DataSource): Promise<void> {
  return rebuildDaily(ds, 'topic_sentiment_daily', 'topic_id', 'it.topic_id', 'interaction_topic it JOIN interaction i ON i.id = it.interaction_id');
}

/** Adds per-(key, day) sums to a daily rollup table, in the given (key) order. */
export async function upsertDaily(
  db: Db,
  table: 'department_sentiment_daily' | 'topic_sentiment_daily',
  keyColumn: string,
  keyType: string,
  v: { keys: readonly string[]; days: readonly string[]; n: readonly number[]; sum: readonly number[]; neg: readonly number[]; pos: readonly number[] },
): Promise<void> {
  await exec(
    db,
    `INSERT INTO ${table} AS t (${keyColumn}, day, interaction_count, score_sum, negative_count, positive_count)
     SELECT * FROM unnest($1::${keyType}[], $2::date[], $3::int[], $4::float8[], $5::int[], $6::int[])
     ON CONFLICT (${keyColumn}, day) DO UPDATE SET
       interaction_count = t.interaction_count + EXCLUDED.interaction_count,
       score_sum = t.score_sum + EXCLUDED.score_sum,
       negative_count = t.negative_count + EXCLUDED.negative_count,
       positive_count = t.positive_count + EXCLUDED.positive_count`,
    [v.keys, v.days, v.n, v.sum, v.neg, v.pos],
  );
}

/**
 * Customer `c`'s trend as of today, for readers (the API, the CRM write-back): the
 * `customer_trend` function (migration CustomerTrendAsOfToday) over the row's day sums, by the
 * same rule as the update below. The stored `sentiment_trend` is the trend as of the customer's
 * last update; a quiet customer's trend moves as its days leave the windows. Kafka's
 * customer-sentiment.v1 events carry the stored one: an event tells the state it announces.
 */
export const CUSTOMER_TREND = 'customer_trend(c.sentiment_days, c.sentiment_trend)';

/**
 * The same trend as of a given UTC day, `todayParam` a query parameter holding days since 1970
 * (`utcDay`): for background work on an injected clock (the CRM write-back and its daily refresh).
 */
export const customerTrendOn = (todayParam: string) => `customer_trend(c.sentiment_days, c.sentiment_trend, ${todayParam}::float8)`;

/** The UTC day of `ms` (since 1970), as `customer_trend` counts days. */
export const utcDay = (ms: number) => Math.floor(ms / 86_400_000);

/** Today as a UTC day, whatever the session's TimeZone (`current_date` is the session's). */
const UTC_TODAY = `(now() AT TIME ZONE 'UTC')::date`;

/** The trend's lower bound: the 60 UTC days it reads end today. */
const TREND_FROM = `((${UTC_TODAY} - 60)::timestamp AT TIME ZONE 'UTC')`;

/**
 * One UPDATE of the stored summaries of customers `ids` (sorted), as `refreshCustomerSummaries`
 * (./rollups.ts) describes them: with `days` (what each customer just gained, per UTC day, each
 * customer's days together) the
 * count and the decayed sums are incremented, without them they are summed from every inbound
 * interaction of the customer. `seen` (ISO times or null) moves `last_interaction_at` forward.
 */
export async function updateCustomerSummaries(
  db: Db,
  u: {
    ids: readonly string[];
    seen: readonly (string | null)[];
    added: readonly number[];
    days: { keys: readonly string[]; days: readonly string[]; n: readonly number[]; sum: readonly number[] } | null;
    returning: boolean;
  },
): Promise<CustomerSummaryRow[]> {
  const incremental = u.days !== null;
  const returning = u.returning;
  // Incremental: the batch's days are summed relative to its own newest day (`xs.bref`); the SET
  // then rescales the row's stored sums and the batch's to the later of the two reference days.
  // Everything read from the row is read from the target row `c` itself, so a concurrent update
  // of the same customer (READ COMMITTED re-reads the row after waiting for its lock) is never lost.
  // Past 500 half-lives (41 years: a weight of 3e-151 beside the newest day's 1) a day weighs 0.
  // PostgreSQL raises "value out of range: underflow" when power() or a product of two floats
  // comes out as 0 from non-zero inputs (power(0.5, x) past x = 1,074); with an earliest
  // occurredAt before ~1938 (EARSHOT_INGEST_EARLIEST_OCCURRED_AT) or a wider future limit, a
  // customer's interaction 89 years from another was refused by the database
  // (test/integration/output-contract-fuzz.test.ts, widest limits). A weight of 0 keeps the stored
  // sums, rescaled again by later batches, out of that range too.
  const half = (days: string) => `(CASE WHEN (${days})::float8 / 30 > 500 THEN 0::float8 ELSE power(0.5::float8, (${days})::float8 / 30) END)`;
  const ref = incremental ? 'greatest(c.sentiment_ref, xs.bref)' : 'acc.ref';
  const ws = incremental
    ? `(coalesce(c.sentiment_wsum * ${half(`${ref} - c.sentiment_ref`)}, 0) + coalesce(xs.ws * ${half(`${ref} - xs.bref`)}, 0))`
    : 'acc.ws';
  const wn = incremental
    ? `(coalesce(c.sentiment_wn * ${half(`${ref} - c.sentiment_ref`)}, 0) + coalesce(xs.wn * ${half(`${ref} - xs.bref`)}, 0))`
    : 'acc.wn';
  const score = `(${ws} / nullif(${wn}, 0))`;
  const sums = incremental
    ? `x AS (SELECT * FROM unnest($4::uuid[], $5::date[], $6::float8[], $7::float8[]) AS x(id, day, n, sum)),
       xa AS (SELECT x.id, max(x.day) AS day FROM x GROUP BY x.id),
       xs AS (SELECT x.id, xa.day AS bref, sum(x.sum * ${half('xa.day - x.day')}) AS ws, sum(x.n * ${half('xa.day - x.day')}) AS wn
                FROM x JOIN xa ON xa.id = x.id GROUP BY x.id, xa.day)`
    : `x AS (SELECT i.customer_id AS id, (i.occurred_at AT TIME ZONE 'UTC')::date AS day, i.sentiment_score AS score
               FROM interaction i WHERE i.customer_id = ANY($1::uuid[]) AND i.direction = 'inbound'),
       r AS (SELECT x.id, max(x.day) AS ref FROM x GROUP BY x.id),
       acc AS (SELECT x.id, r.ref, sum(x.score * ${half('r.ref - x.day')}) AS ws, sum(${half('r.ref - x.day')}) AS wn, count(*)::int AS n
                 FROM x JOIN r ON r.id = x.id GROUP BY x.id, r.ref)`;
  // The trend (the mean of the last 30 UTC days minus that of the 30 before) comes from the
  // customer's inbound sums per day of the last 60 days, kept on the row in `sentiment_days`
  // (day since 1970, count, sum; oldest first). A batch adds its own days to the row's and drops
  // the days gone out of the window, so it reads no interaction: the cost is bounded by 60 days
  // plus the days ahead that ingest admits, not by the customer's history. Before, each batch
  // read every inbound interaction of the last 60 days of each of its customers. A row still
  // without days (NULL: it existed before the column) sums its interactions once, batch included
  // (already inserted), and a rebuild always does. Read from the target row `c`, as the sums are.
  // Days more than 60 ahead (ingest admits up to EARSHOT_INGEST_MAX_FUTURE_DAYS: one day by
  // default, up to 1,000 years when an operator widens it) share one entry, dated 61 days ahead as of the update, so a row holds at most 122
  // days whatever dates an author sends. They count as recent, as they would one by one, but
  // leave the recent window 91 days after they were last merged, before their own dates would.
  const epochDay = `(${UTC_TODAY} - date '1970-01-01')`;
  const ofInteractions = `SELECT i.id, ((i.occurred_at AT TIME ZONE 'UTC')::date - date '1970-01-01')::float8 AS day, 1::float8 AS n, i.sentiment_score AS s
                 FROM interaction i WHERE i.customer_id = c.id AND i.occurred_at >= ${TREND_FROM} AND i.direction = 'inbound'`;
  // The customer's triples: from its interactions (a rebuild, or a row without days yet, whose
  // interactions include the batch's), or the row's with the batch's appended ($10, this
  // customer's slice). `customer_days_window` (migration CustomerDaysWindow) keeps the window
  // (the 60 days back and 61 ahead above live there) and computes the trend in one pass; the same rule in SQL (generate_series, GROUP BY and
  // array_agg per row) took about 36 µs a customer against 14.
  // (ordered by interaction too, so that the triples of two interactions of one day stay whole)
  const fromInteractions = `(SELECT array_agg(f.v ORDER BY o.day, o.id, f.k) FROM (${ofInteractions}) o
                 CROSS JOIN LATERAL (VALUES (1, o.day), (2, o.n), (3, o.s)) AS f(k, v))`;
  const triples = incremental
    ? `CASE WHEN c.sentiment_days IS NULL THEN ${fromInteractions}
            ELSE c.sentiment_days || ($10::float8[])[3 * ids.dfirst - 2 : 3 * (ids.dfirst + ids.dcount - 1)] END`
    : fromInteractions;
  const daysAndTrend = `(sentiment_days, sentiment_trend) = (SELECT w.days, w.trend FROM customer_days_window(${triples}, ${epochDay}) w)`;
  // Likewise `c.id = ANY($1)` lets the customer rows be found by their key: joined only through
  // the CTE, the planner read all of `customer` into a hash (13,334 rows, 15 ms per batch) until
  // the table grew large enough for the index to look cheaper.
  const joinSums = incremental ? 'LEFT JOIN xs ON xs.id = ids.id' : 'LEFT JOIN acc ON acc.id = ids.id';
  // The batch's days of customer ids[i] are the entries dfirst[i] … dfirst[i] + dcount[i] - 1 of
  // the day arrays (1-based): each customer reads only its own.
  const offsets = u.days ? dayOffsets(u.ids, u.days.keys) : null;
  // TypeORM answers an UPDATE … RETURNING with [rows, affected]
  const { rows: out } = await modify<CustomerSummaryRow>(
    db,
    `WITH ids AS (SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::int[]${offsets ? ', $8::int[], $9::int[]' : ''}) AS x(id, seen, added${offsets ? ', dfirst, dcount' : ''})),
     ${sums}
     UPDATE customer c SET
       sentiment_wsum = ${ws},
       sentiment_wn = ${wn},
       sentiment_ref = ${ref},
       sentiment_score = ${score},
       sentiment_label = CASE WHEN ${score} IS NULL THEN NULL WHEN ${score} >= ${POSITIVE_THRESHOLD} THEN 'positive'
                              WHEN ${score} <= ${NEGATIVE_THRESHOLD} THEN 'negative' ELSE 'neutral' END,
       ${daysAndTrend},
       interaction_count = ${incremental ? 'c.interaction_count + ids.added' : 'coalesce(acc.n, 0)'},
       last_interaction_at = greatest(c.last_interaction_at, ids.seen),
       updated_at = now()
     FROM ids ${joinSums}
     WHERE c.id = ids.id AND c.id = ANY (${batchIds(1)})
     ${returning ? 'RETURNING c.id, c.display_name, c.sentiment_score, c.sentiment_label, c.sentiment_trend, c.interaction_count, c.last_interaction_at, c.updated_at' : ''}`,
    [u.ids, u.seen, u.added, ...(u.days && offsets ? [u.days.keys, u.days.days, u.days.n, u.days.sum, offsets.first, offsets.count, dayTriples(u.days)] : [])],
  );
  return returning ? out : [];
}

/** The batch's days as `sentiment_days` holds them: (day since 1970, count, sum), entry by entry. */
function dayTriples(d: { days: readonly string[]; n: readonly number[]; sum: readonly number[] }): number[] {
  const out = new Array<number>(d.days.length * 3);
  d.days.forEach((day, i) => {
    out[3 * i] = Date.parse(`${day}T00:00:00Z`) / 86_400_000;
    out[3 * i + 1] = d.n[i]!;
    out[3 * i + 2] = d.sum[i]!;
  });
  return out;
}

/**
 * Where each of `ids`' entries start in `keys` (1-based) and how many there are. The entries come
 * grouped by customer (refreshCustomerSummaries sorts them by customer and day); a customer whose
 * entries are split would have some of its days left out, so that is refused.
 */
function dayOffsets(ids: readonly string[], keys: readonly string[]): { first: number[]; count: number[] } {
  const first = new Map<string, number>();
  const count = new Map<string, number>();
  keys.forEach((k, i) => {
    if (!first.has(k)) first.set(k, i + 1);
    else if (keys[i - 1] !== k) throw new Error(`updateCustomerSummaries: the days of customer ${k} are not together`);
    count.set(k, (count.get(k) ?? 0) + 1);
  });
  return { first: ids.map((id) => first.get(id) ?? 1), count: ids.map((id) => count.get(id) ?? 0) };
}

/** Moves customers' last interaction time to their newest interaction's. */
export async function updateLastInteraction(db: Db, customerIds: readonly string[]): Promise<void> {
  await exec(db, `UPDATE customer c SET last_interaction_at = (SELECT max(occurred_at) FROM interaction i WHERE i.customer_id = c.id) WHERE c.id = ANY($1::uuid[])`, [customerIds]);
}

/** Interactions with their score, label, topics and the topics' departments (for a rollup correction). */
export function storedTags(
  db: Db,
  interactionIds: readonly string[],
): Promise<{ occurred_at: Date; direction: 'inbound' | 'outbound'; score: number; label: string; topics: number[]; departments: number[] }[]> {
  return rows(
    db,
    `SELECT i.occurred_at, i.direction, i.sentiment_score AS score, i.sentiment_label AS label,
            coalesce(array_agg(it.topic_id) FILTER (WHERE it.topic_id IS NOT NULL), '{}') AS topics,
            coalesce(array_agg(DISTINCT t.department_id) FILTER (WHERE t.department_id IS NOT NULL), '{}') AS departments
       FROM interaction i
       LEFT JOIN interaction_topic it ON it.interaction_id = i.id
       LEFT JOIN topic t ON t.id = it.topic_id
      WHERE i.id = ANY($1::uuid[])
      GROUP BY i.id`,
    [interactionIds],
  );
}

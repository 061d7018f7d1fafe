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

/** The trend's lower bound: the 60 UTC days it reads end today. */
const TREND_FROM = `((current_date - 60)::timestamp AT TIME ZONE 'UTC')`;

/**
 * One UPDATE of the stored summaries of customers `ids` (sorted), as `refreshCustomerSummaries`
 * (./rollups.ts) describes them: with `days` (what each customer just gained, per UTC day) the
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
  const half = (days: string) => `power(0.5::float8, (${days})::float8 / 30)`;
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
  // The trend reads each customer's last 60 days through interaction_customer_idx, one customer
  // at a time (a LATERAL … OFFSET 0). As one query over `customer_id = ANY(…)` the planner chose,
  // in bench:ingest, a bitmap scan of interaction_page_idx over every interaction of the last 60
  // days (84,000 rows read for 1,590 kept, 8,900 buffers, 64 ms of a 74 ms statement per batch):
  // work that grew with the table, the largest statement of the write path (README, "Ingest").
  // Likewise `c.id = ANY($1)` lets the customer rows be found by their key: joined only through
  // the CTE, the planner read all of `customer` into a hash (13,334 rows, 15 ms per batch) until
  // the table grew large enough for the index to look cheaper. With both conditions the planner
  // expects one row from that join and may put the trend in the inner side of a nested loop, so
  // the trend is MATERIALIZED: computed once per customer whatever the join order.
  const joinSums = incremental ? 'LEFT JOIN xs ON xs.id = ids.id' : 'LEFT JOIN acc ON acc.id = ids.id';
  // TypeORM answers an UPDATE … RETURNING with [rows, affected]
  const { rows: out } = await modify<CustomerSummaryRow>(
    db,
    `WITH ids AS (SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::int[]) AS x(id, seen, added)),
     ${sums},
     tr AS MATERIALIZED (
       SELECT ids.id AS customer_id, t.recent, t.prior
         FROM ids CROSS JOIN LATERAL (
           SELECT sum(i.sentiment_score) FILTER (WHERE (i.occurred_at AT TIME ZONE 'UTC')::date > current_date - 30)
                    / nullif(count(*) FILTER (WHERE (i.occurred_at AT TIME ZONE 'UTC')::date > current_date - 30), 0) AS recent,
                  sum(i.sentiment_score) FILTER (WHERE (i.occurred_at AT TIME ZONE 'UTC')::date <= current_date - 30
                                                    AND (i.occurred_at AT TIME ZONE 'UTC')::date > current_date - 60)
                    / nullif(count(*) FILTER (WHERE (i.occurred_at AT TIME ZONE 'UTC')::date <= current_date - 30
                                                    AND (i.occurred_at AT TIME ZONE 'UTC')::date > current_date - 60), 0) AS prior
             FROM interaction i
            WHERE i.customer_id = ids.id AND i.occurred_at >= ${TREND_FROM} AND i.direction = 'inbound'
           OFFSET 0) t)
     UPDATE customer c SET
       sentiment_wsum = ${ws},
       sentiment_wn = ${wn},
       sentiment_ref = ${ref},
       sentiment_score = ${score},
       sentiment_label = CASE WHEN ${score} IS NULL THEN NULL WHEN ${score} >= ${POSITIVE_THRESHOLD} THEN 'positive'
                              WHEN ${score} <= ${NEGATIVE_THRESHOLD} THEN 'negative' ELSE 'neutral' END,
       sentiment_trend = tr.recent - tr.prior,
       interaction_count = ${incremental ? 'c.interaction_count + ids.added' : 'coalesce(acc.n, 0)'},
       last_interaction_at = greatest(c.last_interaction_at, ids.seen),
       updated_at = now()
     FROM ids ${joinSums} LEFT JOIN tr ON tr.customer_id = ids.id
     WHERE c.id = ids.id AND c.id = ANY (${batchIds(1)})
     ${returning ? 'RETURNING c.id, c.display_name, c.sentiment_score, c.sentiment_label, c.sentiment_trend, c.interaction_count, c.last_interaction_at, c.updated_at' : ''}`,
    [u.ids, u.seen, u.added, ...(u.days ? [u.days.keys, u.days.days, u.days.n, u.days.sum] : [])],
  );
  return returning ? out : [];
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

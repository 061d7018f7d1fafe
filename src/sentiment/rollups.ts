import type { QueryRunner } from 'typeorm';
import type { CustomerSummaryRow } from '../outbox/outbox-events';
import { NEGATIVE_THRESHOLD, POSITIVE_THRESHOLD } from './analyzer';

/**
 * The one owner of the derived sentiment tables: the daily rollups per customer
 * (`customer_sentiment_daily`), per department (`department_sentiment_daily`) and per topic
 * (`topic_sentiment_daily`), and the summary stored on `customer`.
 *
 * One mechanism for all three rollups: the writer hands over what each interaction contributes,
 * they are summed in memory and upserted once per (key, day) per transaction, in key order
 * (so concurrent writers never deadlock on them). Corrections (a re-tag, a merge) apply the
 * difference the same way, or rebuild the keys involved from the stored interactions.
 *
 * What must stay true: every rollup equals what summing its stored inbound interactions by
 * UTC day gives; only inbound interactions count.
 */
export interface RollupContribution {
  customerId: string | null;
  /** ms since the epoch */
  occurredAt: number;
  direction: 'inbound' | 'outbound';
  score: number;
  label: string;
  topicIds: readonly number[];
  departmentIds: readonly number[];
}

type Q = Pick<QueryRunner, 'query'>;
interface Agg {
  n: number;
  sum: number;
  neg: number;
  pos: number;
}

const DAY_MS = 86_400_000;
const dayOf = (t: number) => new Date(Math.floor(t / DAY_MS) * DAY_MS).toISOString().slice(0, 10);

/**
 * Adds (sign 1) or removes (sign -1) interactions' contributions to the three daily rollups.
 * Returns the customers touched with the latest time seen for each, and how many inbound
 * interactions each gained (for their summaries).
 */
export async function applyRollups(
  qr: Q,
  items: readonly RollupContribution[],
  sign: 1 | -1 = 1,
): Promise<{ lastSeen: Map<string, number>; added: Map<string, number> }> {
  const byCustomer = new Map<string, Agg>();
  const byDepartment = new Map<string, Agg>();
  const byTopic = new Map<string, Agg>();
  const lastSeen = new Map<string, number>();
  const added = new Map<string, number>();
  const add = (m: Map<string, Agg>, key: string, it: RollupContribution) => {
    let a = m.get(key);
    if (!a) m.set(key, (a = { n: 0, sum: 0, neg: 0, pos: 0 }));
    a.n += sign;
    a.sum += sign * it.score;
    if (it.label === 'negative') a.neg += sign;
    if (it.label === 'positive') a.pos += sign;
  };
  for (const it of items) {
    if (it.customerId) lastSeen.set(it.customerId, Math.max(lastSeen.get(it.customerId) ?? 0, it.occurredAt));
    if (it.direction !== 'inbound') continue;
    const day = dayOf(it.occurredAt);
    if (it.customerId) {
      add(byCustomer, `${it.customerId}|${day}`, it);
      added.set(it.customerId, (added.get(it.customerId) ?? 0) + sign);
    }
    for (const d of new Set(it.departmentIds)) add(byDepartment, `${d}|${day}`, it);
    for (const t of new Set(it.topicIds)) add(byTopic, `${t}|${day}`, it);
  }
  await upsert(qr, 'customer_sentiment_daily', 'customer_id', 'uuid', byCustomer);
  await upsert(qr, 'department_sentiment_daily', 'department_id', 'int', byDepartment);
  await upsert(qr, 'topic_sentiment_daily', 'topic_id', 'int', byTopic);
  return { lastSeen, added };
}

async function upsert(qr: Q, table: string, keyColumn: string, keyType: string, m: Map<string, Agg>): Promise<void> {
  if (m.size === 0) return;
  const entries = [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const keys: string[] = [];
  const days: string[] = [];
  for (const [k] of entries) {
    const bar = k.indexOf('|');
    keys.push(k.slice(0, bar));
    days.push(k.slice(bar + 1));
  }
  await qr.query(
    `INSERT INTO ${table} AS t (${keyColumn}, day, interaction_count, score_sum, negative_count, positive_count)
     SELECT * FROM unnest($1::${keyType}[], $2::date[], $3::int[], $4::float8[], $5::int[], $6::int[])
     ON CONFLICT (${keyColumn}, day) DO UPDATE SET
       interaction_count = t.interaction_count + EXCLUDED.interaction_count,
       score_sum = t.score_sum + EXCLUDED.score_sum,
       negative_count = t.negative_count + EXCLUDED.negative_count,
       positive_count = t.positive_count + EXCLUDED.positive_count`,
    [keys, days, entries.map(([, a]) => a.n), entries.map(([, a]) => a.sum), entries.map(([, a]) => a.neg), entries.map(([, a]) => a.pos)],
  );
}

/** Days before a customer's newest interaction that still count for its score: older ones weigh < 2^-24. */
export const SUMMARY_HORIZON_DAYS = 730;

/**
 * Recomputes the stored sentiment summary of customers from their daily rollups:
 * a time-decayed mean (half-life 30 days), the 30-day trend (mean of the last 30 days
 * minus the 30 before) and the count of scored inbound interactions. `lastSeen` (ms), when
 * given, moves `last_interaction_at` forward. One UPDATE per customer per call.
 *
 * With `added` (the inbound interactions each customer just gained; the ingest pipeline) the
 * count is incremented and only the daily rows of the last `SUMMARY_HORIZON_DAYS` before the
 * customer's newest interaction are read, so the cost does not grow with a customer's history
 * (the decay weights cancel in the mean, so dropping older days changes it by < 2^-24).
 * Without it (after a merge or unmerge) the count is summed from every daily row.
 */
export async function refreshCustomerSummaries(
  qr: Q,
  customerIds: readonly string[],
  lastSeen?: ReadonlyMap<string, number>,
  opts: { returning?: boolean; added?: ReadonlyMap<string, number> } = {},
): Promise<CustomerSummaryRow[]> {
  if (customerIds.length === 0) return [];
  const returning = opts.returning ?? true;
  const incremental = opts.added !== undefined;
  const order = [...new Set(customerIds)].sort();
  // TypeORM answers an UPDATE … RETURNING with [rows, affected]
  const [rows] = (await qr.query(
    `WITH ids AS (SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::int[]) AS x(id, seen, added)),
     d AS (
       SELECT s.*, -- float8, not numeric: numeric power() cost 15 µs a row
              power(0.5::float8, greatest(0, current_date - s.day)::float8 / 30.0) AS w
         FROM ids JOIN customer c0 ON c0.id = ids.id
         JOIN customer_sentiment_daily s ON s.customer_id = ids.id
        WHERE greatest(c0.last_interaction_at, ids.seen) IS NULL
           OR s.day > (greatest(c0.last_interaction_at, ids.seen) AT TIME ZONE 'UTC')::date - ${SUMMARY_HORIZON_DAYS}),
     agg AS (
       SELECT customer_id,
              sum(score_sum * w) / nullif(sum(interaction_count * w), 0) AS score,
              sum(score_sum) FILTER (WHERE day > current_date - 30)
                / nullif(sum(interaction_count) FILTER (WHERE day > current_date - 30), 0) AS recent,
              sum(score_sum) FILTER (WHERE day <= current_date - 30 AND day > current_date - 60)
                / nullif(sum(interaction_count) FILTER (WHERE day <= current_date - 30 AND day > current_date - 60), 0) AS prior
         FROM d GROUP BY customer_id)
     UPDATE customer c SET
       sentiment_score = agg.score,
       sentiment_label = CASE WHEN agg.score IS NULL THEN NULL WHEN agg.score >= ${POSITIVE_THRESHOLD} THEN 'positive'
                              WHEN agg.score <= ${NEGATIVE_THRESHOLD} THEN 'negative' ELSE 'neutral' END,
       sentiment_trend = agg.recent - agg.prior,
       interaction_count = ${
         incremental
           ? 'c.interaction_count + ids.added'
           : 'coalesce((SELECT sum(a.interaction_count)::int FROM customer_sentiment_daily a WHERE a.customer_id = c.id), 0)'
       },
       last_interaction_at = greatest(c.last_interaction_at, ids.seen),
       updated_at = now()
     FROM ids LEFT JOIN agg ON agg.customer_id = ids.id
     WHERE c.id = ids.id
     ${returning ? 'RETURNING c.id, c.display_name, c.sentiment_score, c.sentiment_label, c.sentiment_trend, c.interaction_count, c.last_interaction_at, c.updated_at' : ''}`,
    [
      order,
      order.map((id) => (lastSeen?.has(id) ? new Date(lastSeen.get(id)!).toISOString() : null)),
      order.map((id) => opts.added?.get(id) ?? 0),
    ],
  )) as [CustomerSummaryRow[], number];
  return returning ? rows : [];
}

/**
 * Rebuilds the daily sentiment rollups of customers from their interactions, the last
 * interaction time, and the stored summaries (after a merge, unmerge or unlink moved
 * interactions between them).
 * Must stay true: the result equals what ingesting the customer's interactions one by one would
 * have produced (inbound only, days in UTC).
 */
export async function rebuildCustomerRollups(qr: Q, customerIds: readonly string[]): Promise<CustomerSummaryRow[]> {
  const sorted = [...new Set(customerIds)].sort();
  await qr.query(`DELETE FROM customer_sentiment_daily WHERE customer_id = ANY($1::uuid[])`, [sorted]);
  await qr.query(
    `INSERT INTO customer_sentiment_daily (customer_id, day, interaction_count, score_sum, negative_count, positive_count)
     SELECT customer_id, (occurred_at AT TIME ZONE 'UTC')::date, count(*), sum(sentiment_score),
            count(*) FILTER (WHERE sentiment_label = 'negative'), count(*) FILTER (WHERE sentiment_label = 'positive')
       FROM interaction WHERE customer_id = ANY($1::uuid[]) AND direction = 'inbound'
      GROUP BY 1, 2`,
    [sorted],
  );
  await qr.query(`UPDATE customer c SET last_interaction_at = (SELECT max(occurred_at) FROM interaction i WHERE i.customer_id = c.id) WHERE c.id = ANY($1::uuid[])`, [sorted]);
  return refreshCustomerSummaries(qr, sorted);
}

/**
 * The department and topic rollups of stored interactions, read back for a correction:
 * what `applyRollups` must remove before their tags change (the re-tag job).
 */
export async function storedContributions(qr: Q, interactionIds: readonly string[]): Promise<RollupContribution[]> {
  if (interactionIds.length === 0) return [];
  const rows: { occurred_at: Date; direction: 'inbound' | 'outbound'; score: number; label: string; topics: number[]; departments: number[] }[] = await qr.query(
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
  // customer rollups do not depend on tags: leave them out of a tag correction
  return rows.map((r) => ({ customerId: null, occurredAt: r.occurred_at.getTime(), direction: r.direction, score: r.score, label: r.label, topicIds: r.topics, departmentIds: r.departments }));
}

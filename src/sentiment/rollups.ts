import type { QueryRunner } from 'typeorm';
import type { CustomerSummaryRow } from '../outbox/outbox-events';
import { NEGATIVE_THRESHOLD, POSITIVE_THRESHOLD } from './analyzer';

/**
 * The one owner of the derived sentiment tables: the daily rollups per department
 * (`department_sentiment_daily`) and per topic (`topic_sentiment_daily`), and the summary stored
 * on `customer`. The daily rollup per customer (`customer_sentiment_daily`) is a view over
 * `interaction` (migration CustomerSummaryOnRow1766800000001): nothing writes it.
 *
 * One mechanism for both rollup tables: the writer hands over what each interaction contributes,
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

/** What a batch adds to each customer's summary, per (customer, UTC day) of its inbound interactions. */
export type CustomerDays = Map<string, Agg>;

const DAY_MS = 86_400_000;
const dayOf = (t: number) => new Date(Math.floor(t / DAY_MS) * DAY_MS).toISOString().slice(0, 10);

/**
 * Adds (sign 1) or removes (sign -1) interactions' contributions to the department and topic
 * daily rollups. Returns the customers touched with the latest time seen for each, how many
 * inbound interactions each gained, and their sums per day (for their summaries:
 * `refreshCustomerSummaries`).
 */
export async function applyRollups(
  qr: Q,
  items: readonly RollupContribution[],
  sign: 1 | -1 = 1,
): Promise<{ lastSeen: Map<string, number>; added: Map<string, number>; days: CustomerDays }> {
  const byCustomer: CustomerDays = new Map();
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
  await upsert(qr, 'department_sentiment_daily', 'department_id', 'int', byDepartment);
  await upsert(qr, 'topic_sentiment_daily', 'topic_id', 'int', byTopic);
  return { lastSeen, added, days: byCustomer };
}

const splitKeys = (entries: [string, Agg][]) => {
  const keys: string[] = [];
  const days: string[] = [];
  for (const [k] of entries) {
    const bar = k.indexOf('|');
    keys.push(k.slice(0, bar));
    days.push(k.slice(bar + 1));
  }
  return { keys, days };
};
const byKey = ([a]: [string, Agg], [b]: [string, Agg]) => (a < b ? -1 : a > b ? 1 : 0);

async function upsert(qr: Q, table: string, keyColumn: string, keyType: string, m: Map<string, Agg>): Promise<void> {
  if (m.size === 0) return;
  const entries = [...m.entries()].sort(byKey);
  const { keys, days } = splitKeys(entries);
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

/** The trend's lower bound: the 60 UTC days it reads end today. */
const TREND_FROM = `((current_date - 60)::timestamp AT TIME ZONE 'UTC')`;

/**
 * Recomputes the stored sentiment summary of customers: a time-decayed mean (half-life 30
 * days), the 30-day trend (mean of the last 30 days minus the 30 before) and the count of
 * scored inbound interactions. `lastSeen` (ms), when given, moves `last_interaction_at`
 * forward. One UPDATE per customer per call.
 *
 * The decayed mean is kept on the row as Σ score·w and Σ w with w = 2^((day − ref)/30) for a
 * reference day `sentiment_ref` (the newest day seen): the ratio does not depend on the
 * reference, so a batch rescales the stored sums to the newer reference day and adds its own days, each
 * weighted by its own age (exact, order-independent). The trend reads the customer's inbound
 * interactions of the last 60 days (`interaction_customer_idx`), so neither part grows with a
 * customer's history.
 *
 * With `added` and `days` (what each customer just gained; the ingest pipeline) the count and
 * the sums are incremented. Without them (after a merge, unmerge or re-score) they are summed
 * from every inbound interaction of the customer.
 */
export async function refreshCustomerSummaries(
  qr: Q,
  customerIds: readonly string[],
  lastSeen?: ReadonlyMap<string, number>,
  opts: { returning?: boolean; added?: ReadonlyMap<string, number>; days?: CustomerDays } = {},
): Promise<CustomerSummaryRow[]> {
  if (customerIds.length === 0) return [];
  const returning = opts.returning ?? true;
  const incremental = opts.added !== undefined && opts.days !== undefined;
  const order = [...new Set(customerIds)].sort();
  const entries = incremental ? [...opts.days!.entries()].sort(byKey) : [];
  const { keys, days } = splitKeys(entries);
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
  const joinSums = incremental ? 'LEFT JOIN xs ON xs.id = ids.id' : 'LEFT JOIN acc ON acc.id = ids.id';
  // TypeORM answers an UPDATE … RETURNING with [rows, affected]
  const [rows] = (await qr.query(
    `WITH ids AS (SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::int[]) AS x(id, seen, added)),
     ${sums},
     tr AS (
       SELECT i.customer_id,
              sum(i.sentiment_score) FILTER (WHERE (i.occurred_at AT TIME ZONE 'UTC')::date > current_date - 30)
                / nullif(count(*) FILTER (WHERE (i.occurred_at AT TIME ZONE 'UTC')::date > current_date - 30), 0) AS recent,
              sum(i.sentiment_score) FILTER (WHERE (i.occurred_at AT TIME ZONE 'UTC')::date <= current_date - 30
                                                AND (i.occurred_at AT TIME ZONE 'UTC')::date > current_date - 60)
                / nullif(count(*) FILTER (WHERE (i.occurred_at AT TIME ZONE 'UTC')::date <= current_date - 30
                                                AND (i.occurred_at AT TIME ZONE 'UTC')::date > current_date - 60), 0) AS prior
         FROM interaction i
        WHERE i.customer_id = ANY($1::uuid[]) AND i.occurred_at >= ${TREND_FROM} AND i.direction = 'inbound'
        GROUP BY i.customer_id)
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
     WHERE c.id = ids.id
     ${returning ? 'RETURNING c.id, c.display_name, c.sentiment_score, c.sentiment_label, c.sentiment_trend, c.interaction_count, c.last_interaction_at, c.updated_at' : ''}`,
    [
      order,
      order.map((id) => (lastSeen?.has(id) ? new Date(lastSeen.get(id)!).toISOString() : null)),
      order.map((id) => opts.added?.get(id) ?? 0),
      ...(incremental ? [keys, days, entries.map(([, a]) => a.n), entries.map(([, a]) => a.sum)] : []),
    ],
  )) as [CustomerSummaryRow[], number];
  return returning ? rows : [];
}

/**
 * Recomputes customers' last interaction time and stored summaries from their interactions
 * (after a merge, unmerge, unlink or re-score moved or changed interactions). Their daily
 * rollup is a view over `interaction`, so there is nothing else to rebuild.
 * Must stay true: the result equals what ingesting the customer's interactions one by one would
 * have produced (inbound only, days in UTC).
 */
export async function rebuildCustomerRollups(qr: Q, customerIds: readonly string[]): Promise<CustomerSummaryRow[]> {
  const sorted = [...new Set(customerIds)].sort();
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

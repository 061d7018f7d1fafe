import type { Db } from '../db/sql';
import type { CustomerSummaryRow } from '../outbox/outbox-events';
import { storedTags, updateCustomerSummaries, updateLastInteraction, upsertDaily } from './rollups.repository';

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

type Q = Db;
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

/** A batch's contributions summed in memory (`sumRollups`), before any row is written. */
export interface RollupSums {
  /** customers touched, with the latest time seen for each (ms) */
  lastSeen: Map<string, number>;
  /** inbound interactions each customer gained */
  added: Map<string, number>;
  /** each customer's sums per UTC day */
  days: CustomerDays;
  byDepartment: Map<string, Agg>;
  byTopic: Map<string, Agg>;
}

/**
 * Adds (sign 1) or removes (sign -1) interactions' contributions to the department and topic
 * daily rollups. Returns the customers touched with the latest time seen for each, how many
 * inbound interactions each gained, and their sums per day (for their summaries:
 * `refreshCustomerSummaries`).
 */
export async function applyRollups(qr: Q, items: readonly RollupContribution[], sign: 1 | -1 = 1): Promise<RollupSums> {
  const sums = sumRollups(items, sign);
  await writeRollups(qr, sums);
  return sums;
}

/**
 * `applyRollups` in two steps, for a writer that wants the rollup rows last: every writer of a
 * busy day adds to the same few (department, day) and (topic, day) rows, and each holds their
 * locks until it commits. Written just before the commit (the ingest writes only its outbox row
 * after them), another batch waits for them for the commit only, not for the rest of the
 * transaction.
 */
export function sumRollups(items: readonly RollupContribution[], sign: 1 | -1 = 1): RollupSums {
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
  return { lastSeen, added, days: byCustomer, byDepartment, byTopic };
}

/** The department and topic rollup rows of `sumRollups`, upserted in key order. */
export async function writeRollups(qr: Q, sums: RollupSums): Promise<void> {
  await upsert(qr, 'department_sentiment_daily', 'department_id', 'int', sums.byDepartment);
  await upsert(qr, 'topic_sentiment_daily', 'topic_id', 'int', sums.byTopic);
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

async function upsert(qr: Q, table: 'department_sentiment_daily' | 'topic_sentiment_daily', keyColumn: string, keyType: string, m: Map<string, Agg>): Promise<void> {
  if (m.size === 0) return;
  const entries = [...m.entries()].sort(byKey);
  const { keys, days } = splitKeys(entries);
  await upsertDaily(qr, table, keyColumn, keyType, { keys, days, n: entries.map(([, a]) => a.n), sum: entries.map(([, a]) => a.sum), neg: entries.map(([, a]) => a.neg), pos: entries.map(([, a]) => a.pos) });
}

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
  return updateCustomerSummaries(qr, {
    ids: order,
    seen: order.map((id) => (lastSeen?.has(id) ? new Date(lastSeen.get(id)!).toISOString() : null)),
    added: order.map((id) => opts.added?.get(id) ?? 0),
    days: incremental ? { keys, days, n: entries.map(([, a]) => a.n), sum: entries.map(([, a]) => a.sum) } : null,
    returning,
  });
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
  await updateLastInteraction(qr, sorted);
  return refreshCustomerSummaries(qr, sorted);
}

/**
 * The department and topic rollups of stored interactions, read back for a correction:
 * what `applyRollups` must remove before their tags change (the re-tag job).
 */
export async function storedContributions(qr: Q, interactionIds: readonly string[]): Promise<RollupContribution[]> {
  if (interactionIds.length === 0) return [];
  const rows = await storedTags(qr, interactionIds);
  // customer rollups do not depend on tags: leave them out of a tag correction
  return rows.map((r) => ({ customerId: null, occurredAt: r.occurred_at.getTime(), direction: r.direction, score: r.score, label: r.label, topicIds: r.topics, departmentIds: r.departments }));
}

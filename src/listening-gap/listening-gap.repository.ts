import { customerJson, type CustomerJsonRow } from '../customers/customer.repository';
import { batchIds, exec, firstRow, modify, rows, type Db } from '../db/sql';
import { cursorOrderName, keyset, type SortKey, type Window } from '../graphql/keyset';
import { isTimestamp, type Page } from '../graphql/relay';
import { INTERACTION_COLUMNS, interactionJson, type InteractionJsonRow } from '../interactions/interaction.repository';
import { ListeningItemOrder, type ListeningItemFilter, type ListeningItemStatus } from './listening-gap.type';

/**
 * Every SQL statement of the listening gap as the API and the escalation job use it (the queue,
 * people's actions on items, the gap figures, insights and trends, escalation claims), each
 * returning a declared row type; and those of the ingest-time tracker (./listening-gap.tracker.ts),
 * which run inside the ingest pipeline's (or the re-score's) transaction.
 */

export interface ItemRow {
  id: string;
  customer_id: string | null;
  interaction_id: string;
  last_interaction_id: string;
  status: ListeningItemStatus;
  source: string;
  department: string;
  topic_department: string;
  assigned_user: string | null;
  intent: string;
  sentiment_score: number;
  opened_at: Date;
  last_opened_at: Date;
  sla_seconds: number;
  due_at: Date;
  first_response_at: Date | null;
  first_response_seconds: number | null;
  responded_by: string | null;
  closed_at: Date | null;
  close_reason: string | null;
  reopened_count: number;
  escalated_at: Date | null;
  escalation_system: string | null;
  escalation_case_id: string | null;
  escalation_case_url: string | null;
  urgency: number;
  now_ms: string;
  /** with {@link ItemPrefetch.customer}: the item's customer (its survivor when merged); null without one */
  prefetched_customer?: CustomerJsonRow | null;
  /** with {@link ItemPrefetch.interaction}: the interaction that opened the item */
  prefetched_interaction?: InteractionJsonRow | null;
  /** with {@link ItemPrefetch.lastInteraction}: the latest inbound interaction of the thread */
  prefetched_last_interaction?: InteractionJsonRow | null;
}

/**
 * What a page of items brings along in its own statement, read ahead of the fields that resolve
 * it (src/listening-gap/listening-items.lookahead.ts): for each, the columns the selection reads
 * (null: all of them); absent: not selected, left to the DataLoaders.
 */
export interface ItemPrefetch {
  /** the item's own columns (ItemRow's) its selected fields read; all of them when null or absent */
  columns?: ReadonlySet<string> | null;
  customer?: ReadonlySet<string> | null;
  interaction?: ReadonlySet<string> | null;
  lastInteraction?: ReadonlySet<string> | null;
}

/** The interactions an item names, by the field that resolves each: the item's column and the alias of its prefetch. */
const ITEM_INTERACTIONS = [
  { field: 'interaction', column: 'interaction_id', as: 'prefetched_interaction' },
  { field: 'lastInteraction', column: 'last_interaction_id', as: 'prefetched_last_interaction' },
] as const;

/** The prefetched values as select-list entries (alias `c` inside the customer's subquery is the survivor). */
function prefetchColumns(p: ItemPrefetch): string {
  const out: string[] = [];
  if (p.customer !== undefined) {
    // as CustomerService.byIds resolves it: a merged-away customer answers its survivor
    out.push(`(SELECT ${customerJson(p.customer)} FROM customer m JOIN customer c ON c.id = coalesce(m.merged_into_id, m.id)
       WHERE m.id = li.customer_id) AS prefetched_customer`);
  }
  for (const { field, column, as } of ITEM_INTERACTIONS) {
    const columns = p[field];
    if (columns !== undefined) out.push(`(SELECT ${interactionJson(columns)} FROM (SELECT ${INTERACTION_COLUMNS} FROM interaction i WHERE i.id = li.${column}) i) AS ${as}`);
  }
  return out.map((x) => `, ${x}`).join('');
}

/** The orders of `listeningItems` (openItems is its own list, in the URGENCY order only). */
const ITEM_ORDERS: Record<Exclude<ListeningItemOrder, ListeningItemOrder.URGENCY>, SortKey> = {
  [ListeningItemOrder.OLDEST]: { name: 'listeningItems:oldest', expr: 'li.last_opened_at', type: 'timestamptz', desc: false },
  [ListeningItemOrder.NEWEST]: { name: 'listeningItems:newest', expr: 'li.last_opened_at', type: 'timestamptz', desc: true },
  [ListeningItemOrder.DUE]: { name: 'listeningItems:due', expr: 'li.due_at', type: 'timestamptz', desc: false },
  // the only order no change moves an item in (the others are by reopening, due time or urgency):
  // a walk over every item in it sees each once
  [ListeningItemOrder.OPENED]: { name: 'listeningItems:opened', expr: 'li.opened_at', type: 'timestamptz', desc: false },
};

/**
 * Urgency of an open item at `$now`: how far it is through its SLA (1.0 = due now, grows past it),
 * plus its negativity (0..1), plus customer value where known (log of the customer's interaction
 * count, and 0.5 when the customer has a CRM record). Written once, used for ORDER BY and cursor.
 * The customer's value is its survivor's once it is merged away: an item keeps the customer it
 * opened with, and a merge moves that customer's interactions and CRM records to the survivor (the
 * merged-away row ranked the person's complaint with no CRM record and no interactions). Looked
 * up in the expression, for merged-away customers only: a second join on the survivor made the
 * queue's statement about half as slow again.
 */
const URGENCY = `(extract(epoch FROM ($NOW::timestamptz - li.last_opened_at)) / li.sla_seconds
   + greatest(0, -li.sentiment_score)
   + 0.1 * ln(1 + coalesce(CASE WHEN c.merged_into_id IS NULL THEN c.interaction_count
                                ELSE (SELECT s.interaction_count FROM customer s WHERE s.id = c.merged_into_id) END, 0))
   + CASE WHEN EXISTS (SELECT 1 FROM crm_record r WHERE r.customer_id = coalesce(c.merged_into_id, li.customer_id) AND r.deleted_at IS NULL) THEN 0.5 ELSE 0 END)`;

/** An item's columns (ItemRow) and the SQL each is read with; `$NOW` is the clock of the page. */
const ITEM_COLUMN_SQL: Record<string, string> = {
  id: 'li.id', customer_id: 'li.customer_id', interaction_id: 'li.interaction_id', last_interaction_id: 'li.last_interaction_id',
  status: 'li.status', source: 'li.source', department: 'coalesce(ad.name, d.name)', topic_department: 'd.name',
  assigned_user: 'li.assigned_user', intent: 'li.intent', sentiment_score: 'li.sentiment_score', opened_at: 'li.opened_at',
  last_opened_at: 'li.last_opened_at', sla_seconds: 'li.sla_seconds', due_at: 'li.due_at', first_response_at: 'li.first_response_at',
  first_response_seconds: 'li.first_response_seconds', responded_by: 'li.responded_by', closed_at: 'li.closed_at',
  close_reason: 'li.close_reason', reopened_count: 'li.reopened_count', escalated_at: 'li.escalated_at',
  escalation_system: 'li.escalation_system', escalation_case_id: 'li.escalation_case_id', escalation_case_url: 'li.escalation_case_url',
  urgency: `${URGENCY}::float8`, now_ms: '(extract(epoch FROM $NOW::timestamptz) * 1000)::bigint',
};

/**
 * The select list of an item: the `columns` a selection reads (ItemPrefetch.columns), or all of
 * them; always the id. A column left out is absent from the row, and no selected field reads it.
 */
function itemColumns(columns: ReadonlySet<string> | null | undefined, now: string): string {
  return Object.entries(ITEM_COLUMN_SQL)
    .filter(([name]) => !columns || columns.has(name) || name === 'id')
    .map(([name, sql]) => (sql === `li.${name}` ? sql : `${sql.replaceAll('$NOW', now)} AS ${name}`))
    .join(', ');
}

const ITEM_FROM = `listening_item li
  JOIN department d ON d.id = li.department_id
  LEFT JOIN department ad ON ad.id = li.assigned_department_id
  LEFT JOIN customer c ON c.id = li.customer_id`;

/** The default department must exist before the first item without a topic arrives. */
export async function ensureDepartment(db: Db, name: string): Promise<void> {
  await exec(db, `INSERT INTO department (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, [name]);
}

/**
 * Items under the filter in the asked order, keyset-paged, at `at` (the service's clock). URGENCY
 * depends on the clock: the clock of the first page is part of the order's name, so later pages
 * (and their cursors) keep ranking by it. `list` names the API's list in cursors: `openItems`
 * (open items, URGENCY) and `listeningItems` take each other's cursors as refused.
 */
export async function itemPage<T>(
  db: Db,
  filter: ListeningItemFilter & { overdueOnly?: boolean | null },
  order: ListeningItemOrder,
  w: Window,
  map: (r: ItemRow) => T,
  prefetch: ItemPrefetch = {},
  at: Date = new Date(),
  list: 'listeningItems' | 'openItems' = 'listeningItems',
): Promise<Page<T>> {
  let now = at.toISOString();
  const named = cursorOrderName(w.after) ?? cursorOrderName(w.before);
  const urgencyAt = `${list}:urgency@`;
  if (order === ListeningItemOrder.URGENCY && named?.startsWith(urgencyAt) && isTimestamp(named.slice(urgencyAt.length))) now = named.slice(urgencyAt.length);
  const params: unknown[] = [now];
  // $1 (the clock) is referenced always, so the count query can bind it too
  const where = [`$1::timestamptz IS NOT NULL`];
  const add = (sql: (p: string) => string, v: unknown) => {
    params.push(v);
    where.push(sql(`$${params.length}`));
  };
  if (filter.status?.length) add((p) => `li.status = ANY(${p}::text[])`, filter.status);
  if (filter.department) add((p) => `coalesce(ad.name, d.name) = ${p}`, filter.department);
  if (filter.channel) add((p) => `li.source = ${p}`, filter.channel);
  if (filter.assignee) add((p) => `li.assigned_user = ${p}`, filter.assignee);
  if (filter.from) add((p) => `li.opened_at >= ${p}`, filter.from);
  if (filter.to) add((p) => `li.opened_at < ${p}`, filter.to);
  if (filter.overdueOnly) where.push(`li.status = 'open' AND li.due_at < $1::timestamptz`);
  const countParams = [...params];
  const countWhere = where.join(' AND ');
  const urgency = URGENCY.replace('$NOW', '$1::timestamptz');
  const sort: SortKey =
    order === ListeningItemOrder.URGENCY
      ? { name: `${urgencyAt}${now}`, expr: `(${urgency})::float8`, type: 'float8', desc: true }
      : ITEM_ORDERS[order];
  const k = keyset(sort, 'li.id', w, params);
  params.push(k.limit);
  const page = await rows<ItemRow & { sort_key: string }>(
    db,
    `SELECT ${itemColumns(prefetch.columns, '$1')}, (${sort.expr})::text AS sort_key${prefetchColumns(prefetch)}
       FROM ${ITEM_FROM} WHERE ${[...where, ...k.conditions].join(' AND ')}
      ORDER BY ${k.orderBy} LIMIT $${params.length}`,
    params,
  );
  return k.page(page, map, (r) => [r.sort_key, r.id], async () => (await firstRow<{ total: number }>(db, `SELECT count(*)::int AS total FROM ${ITEM_FROM} WHERE ${countWhere}`, countParams))!.total);
}

/** Items by id, their age and "overdue" at `now` (the service's clock). */
export function itemsByIds(db: Db, ids: readonly string[], now: Date): Promise<ItemRow[]> {
  return rows(
    db,
    `SELECT ${itemColumns(null, '$2')}
       FROM ${ITEM_FROM} WHERE li.id = ANY($1::uuid[])`,
    [ids, now],
  );
}

export interface ItemEventRow {
  item_id: string;
  kind: string;
  actor: string | null;
  at: Date;
  detail: Record<string, unknown> | null;
}

/**
 * The events of many items, oldest first. The opening is implied by the item row (no event row
 * is written for it: migration ImpliedOpenedEvent1766800000000) and sorts before any event of
 * the same instant, as its row did when it was written first.
 */
export function itemEvents(db: Db, itemIds: readonly string[]): Promise<ItemEventRow[]> {
  return rows(
    db,
    `SELECT item_id, kind, actor, at, detail FROM (
       SELECT li.id AS item_id, 'opened' AS kind, 'ingest' AS actor, li.opened_at AS at,
              jsonb_build_object('channel', li.source, 'intent', li.intent) AS detail, 0::bigint AS id
         FROM listening_item li WHERE li.id = ANY($1::uuid[])
       UNION ALL
       SELECT item_id, kind, actor, at, detail, id FROM listening_item_event WHERE item_id = ANY($1::uuid[])
     ) e ORDER BY at, id`,
    [itemIds],
  );
}

/** Every department with its topics and its open items now. */
export function departmentsWithOpenItems(db: Db): Promise<{ name: string; topics: string[]; open_items: number }[]> {
  return rows(
    db,
    `SELECT d.name,
            coalesce((SELECT array_agg(t.name ORDER BY t.name) FROM topic t WHERE t.department_id = d.id), '{}') AS topics,
            (SELECT count(*)::int FROM listening_item li WHERE li.status = 'open' AND coalesce(li.assigned_department_id, li.department_id) = d.id) AS open_items
       FROM department d ORDER BY d.name`,
  );
}

/** The id of a department or topic by name. */
export async function idByName(db: Db, table: 'department' | 'topic', name: string): Promise<number | null> {
  const row = await firstRow<{ id: number }>(db, `SELECT id FROM ${table} WHERE name = $1`, [name]);
  return row?.id ?? null;
}

// ---- people's actions (each recorded with its actor by the item's event trigger) ----------------

/** An open item answered by a person at `now` (the service's clock); how many rows changed (0: it was not open). */
export async function markItemResponded(db: Db, id: string, actor: string, now: Date): Promise<number> {
  const r = await modify(
    db,
    `WITH actor AS (SELECT set_config('earshot.actor', $2, true))
     UPDATE listening_item SET status = 'answered', closed_at = $3::timestamptz, close_reason = 'marked_responded',
            first_response_at = coalesce(first_response_at, greatest($3::timestamptz, opened_at)),
            first_response_seconds = coalesce(first_response_seconds, greatest(0, extract(epoch FROM $3::timestamptz - opened_at))::int),
            responded_by = coalesce(responded_by, 'person'), assigned_user = coalesce(assigned_user, $2), updated_at = now()
       FROM actor WHERE id = $1 AND status = 'open'`,
    [id, actor, now],
  );
  return r.count;
}

/** An open item closed with a reason at `now` (the service's clock); how many rows changed. */
export async function closeItem(db: Db, id: string, reason: string, actor: string, now: Date): Promise<number> {
  const r = await modify(
    db,
    `WITH actor AS (SELECT set_config('earshot.actor', $3, true))
     UPDATE listening_item SET status = 'closed', closed_at = $4::timestamptz, close_reason = $2, assigned_user = coalesce(assigned_user, $3), updated_at = now()
      FROM actor WHERE id = $1 AND status = 'open'`,
    [id, reason, actor, now],
  );
  return r.count;
}

/** Routes an item to a department and/or a user ('' clears the user, null keeps it); how many rows changed. */
export async function assignItem(db: Db, id: string, departmentId: number | null, user: string | null, actor: string): Promise<number> {
  const r = await modify(
    db,
    `WITH actor AS (SELECT set_config('earshot.actor', $4, true))
     UPDATE listening_item SET
       assigned_department_id = coalesce($2::int, assigned_department_id),
       assigned_user = CASE WHEN $3::text IS NULL THEN assigned_user ELSE nullif($3::text, '') END,
       updated_at = now()
      FROM actor WHERE id = $1`,
    [id, departmentId, user, actor],
  );
  return r.count;
}

// ---- figures -----------------------------------------------------------------------------------

export interface FigureRow {
  department: string | null;
  channel: string | null;
  g_department: number;
  g_channel: number;
  received: number;
  answered: number;
  ignored: number;
  pending: number;
  dismissed: number;
  median: number | null;
  p90: number | null;
}

/**
 * received / answered / ignored … for items opened in [from, to): overall, per department, per
 * channel (GROUPING SETS); an open item is pending or ignored at `now` (the service's clock).
 */
export function gapFigures(db: Db, from: Date, to: Date, now: Date, department?: string | null, channel?: string | null): Promise<FigureRow[]> {
  const params: unknown[] = [from, to, now];
  const where = ['li.opened_at >= $1', 'li.opened_at < $2'];
  if (department) {
    params.push(department);
    where.push(`coalesce(ad.name, d.name) = $${params.length}`);
  }
  if (channel) {
    params.push(channel);
    where.push(`li.source = $${params.length}`);
  }
  return rows(
    db,
    `WITH w AS (
       SELECT coalesce(ad.name, d.name) AS department, li.source AS channel, li.status, li.due_at, li.first_response_at,
              li.first_response_seconds, li.closed_at
         FROM listening_item li
         JOIN department d ON d.id = li.department_id
         LEFT JOIN department ad ON ad.id = li.assigned_department_id
        WHERE ${where.join(' AND ')})
     SELECT department, channel, GROUPING(department) AS g_department, GROUPING(channel) AS g_channel,
            count(*)::int AS received,
            count(*) FILTER (WHERE first_response_at <= due_at)::int AS answered,
            count(*) FILTER (WHERE (first_response_at IS NULL AND status = 'open' AND due_at < $3::timestamptz)
                                OR first_response_at > due_at
                                OR (first_response_at IS NULL AND status <> 'open' AND closed_at > due_at))::int AS ignored,
            count(*) FILTER (WHERE first_response_at IS NULL AND status = 'open' AND due_at >= $3::timestamptz)::int AS pending,
            count(*) FILTER (WHERE first_response_at IS NULL AND status <> 'open' AND closed_at <= due_at)::int AS dismissed,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY first_response_seconds) AS median,
            percentile_cont(0.9) WITHIN GROUP (ORDER BY first_response_seconds) AS p90
       FROM w GROUP BY GROUPING SETS ((), (department), (channel))`,
    params,
  );
}

// ---- insights and trends -----------------------------------------------------------------------

/** Per department: inbound volume, average and negatives in [fromDay, toDay) and the average of the window before. */
export function departmentVolumes(db: Db, fromDay: string, toDay: string): Promise<{ name: string; volume: number; avg: number | null; negative: number; prev: number | null }[]> {
  return rows(
    db,
    `SELECT d.name,
            coalesce(sum(s.interaction_count) FILTER (WHERE s.day >= $1::date), 0)::int AS volume,
            sum(s.score_sum) FILTER (WHERE s.day >= $1::date) / nullif(sum(s.interaction_count) FILTER (WHERE s.day >= $1::date), 0) AS avg,
            coalesce(sum(s.negative_count) FILTER (WHERE s.day >= $1::date), 0)::int AS negative,
            sum(s.score_sum) FILTER (WHERE s.day < $1::date) / nullif(sum(s.interaction_count) FILTER (WHERE s.day < $1::date), 0) AS prev
       FROM department d
       LEFT JOIN department_sentiment_daily s ON s.department_id = d.id
            AND s.day >= $1::date - ($2::date - $1::date) AND s.day < $2::date
      GROUP BY d.name ORDER BY d.name`,
    [fromDay, toDay],
  );
}

export interface TopicVolumeRow {
  id: number;
  name: string;
  label: string;
  department: string;
  volume: number;
  negative: number;
  avg: number | null;
}

/** Topics with inbound volume in [fromDay, toDay). */
export function topicVolumes(db: Db, fromDay: string, toDay: string): Promise<TopicVolumeRow[]> {
  return rows(
    db,
    `SELECT t.id, t.name, t.label, d.name AS department, sum(s.interaction_count)::int AS volume,
            sum(s.negative_count)::int AS negative, sum(s.score_sum) / nullif(sum(s.interaction_count), 0) AS avg
       FROM topic_sentiment_daily s JOIN topic t ON t.id = s.topic_id JOIN department d ON d.id = t.department_id
      WHERE s.day >= $1::date AND s.day < $2::date
      GROUP BY t.id, t.name, t.label, d.name HAVING sum(s.interaction_count) > 0`,
    [fromDay, toDay],
  );
}

/** Open items, and those overdue at `now` (the service's clock), per (routed) department. */
export function openItemsByDepartment(db: Db, now: Date): Promise<{ department: string; open: number; overdue: number }[]> {
  return rows(
    db,
    `SELECT coalesce(ad.name, d.name) AS department, count(*)::int AS open, count(*) FILTER (WHERE li.due_at < $1::timestamptz)::int AS overdue
       FROM listening_item li JOIN department d ON d.id = li.department_id LEFT JOIN department ad ON ad.id = li.assigned_department_id
      WHERE li.status = 'open' GROUP BY 1`,
    [now],
  );
}

/** Up to two newest negative inbound interactions per topic in [from, to). */
export function negativeExamples(db: Db, topicIds: readonly number[], from: Date, to: Date): Promise<{ topic_id: number; id: string }[]> {
  // Newest first through the interaction time index, checking the topic per row: a few rows per topic.
  return rows(
    db,
    `SELECT t.id AS topic_id, x.id FROM unnest($1::int[]) AS t(id) CROSS JOIN LATERAL (
       SELECT i.id FROM interaction i
        WHERE i.occurred_at >= $2 AND i.occurred_at < $3 AND i.direction = 'inbound' AND i.sentiment_label = 'negative'
          AND EXISTS (SELECT 1 FROM interaction_topic it WHERE it.interaction_id = i.id AND it.topic_id = t.id)
        ORDER BY i.occurred_at DESC, i.id DESC LIMIT 2) x`,
    [topicIds, from, to],
  );
}

export type TrendSource = { kind: 'rollup'; table: 'customer_sentiment_daily' | 'department_sentiment_daily' | 'topic_sentiment_daily'; column: 'customer_id' | 'department_id' | 'topic_id' } | { kind: 'interactions'; filter: 'customer' | 'department' | 'topic' | 'all' };

/** Inbound sentiment per bucket of `unit` in [from, to), every bucket present (0 when empty). */
export function trendBuckets(
  db: Db,
  source: TrendSource,
  unit: 'hour' | 'day' | 'week',
  from: Date,
  to: Date,
  key: unknown,
): Promise<{ start: Date; n: number; avg: number | null; neg: number; pos: number }[]> {
  const interval = `1 ${unit}`;
  let data: string;
  if (source.kind === 'rollup') {
    data = `SELECT date_trunc('${unit}', s.day::timestamp) AS b, sum(s.interaction_count)::int AS n, sum(s.score_sum) AS sum,
                   sum(s.negative_count)::int AS neg, sum(s.positive_count)::int AS pos
              FROM ${source.table} s WHERE s.${source.column} = $3 AND s.day >= ($1 AT TIME ZONE 'UTC')::date AND s.day < ($2 AT TIME ZONE 'UTC')
             GROUP BY 1`;
  } else {
    const filter =
      source.filter === 'customer'
        ? 'AND i.customer_id = $3::uuid'
        : source.filter === 'department'
          ? 'AND EXISTS (SELECT 1 FROM interaction_topic it JOIN topic t ON t.id = it.topic_id WHERE it.interaction_id = i.id AND t.department_id = $3::int)'
          : source.filter === 'topic'
            ? 'AND EXISTS (SELECT 1 FROM interaction_topic it WHERE it.interaction_id = i.id AND it.topic_id = $3::int)'
            : 'AND $3::text IS NULL';
    data = `SELECT date_trunc('${unit}', i.occurred_at AT TIME ZONE 'UTC') AS b, count(*)::int AS n, sum(i.sentiment_score) AS sum,
                   count(*) FILTER (WHERE i.sentiment_label = 'negative')::int AS neg, count(*) FILTER (WHERE i.sentiment_label = 'positive')::int AS pos
              FROM interaction i WHERE i.direction = 'inbound' AND i.occurred_at >= $1 AND i.occurred_at < $2 ${filter}
             GROUP BY 1`;
  }
  return rows(
    db,
    `WITH data AS (${data})
     SELECT (g.b AT TIME ZONE 'UTC') AS start, coalesce(data.n, 0) AS n, data.sum / nullif(data.n, 0) AS avg,
            coalesce(data.neg, 0) AS neg, coalesce(data.pos, 0) AS pos
       FROM generate_series(date_trunc('${unit}', $1 AT TIME ZONE 'UTC'), ($2 AT TIME ZONE 'UTC') - interval '1 microsecond', interval '${interval}') AS g(b)
       LEFT JOIN data ON data.b = g.b ORDER BY g.b`,
    [from, to, key],
  );
}

// ---- escalation --------------------------------------------------------------------------------

/**
 * Claims up to `limit` items open and past due at `now` (the job's clock) but due at or after
 * `horizon` (null: no bound), not escalated yet (or whose lease lapsed by `now`), under a fresh
 * token, leaving out `exclude` (the items this run tried already); their ids. The due-time range
 * is read on `listening_item_open_idx`: items due before the horizon are never read again.
 */
export async function claimOverdueItems(db: Db, claim: string, now: Date, horizon: Date | null, leaseSeconds: number, limit: number, exclude: readonly string[] = []): Promise<string[]> {
  const r = await modify<{ id: string }>(
    db,
    `UPDATE listening_item li SET escalation_state = 'pending', escalation_claim = $1,
            escalation_lease_until = $5::timestamptz + make_interval(secs => $2), escalation_attempts = li.escalation_attempts + 1
      WHERE li.id IN (
        SELECT id FROM listening_item
         WHERE status = 'open' AND due_at < $5::timestamptz AND due_at >= coalesce($6::timestamptz, '-infinity')
           AND (escalation_state IS NULL OR (escalation_state = 'pending' AND escalation_lease_until < $5::timestamptz))
           AND NOT (id = ANY($4::uuid[]))
         ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED)
        AND (li.escalation_state IS NULL OR li.escalation_state = 'pending')
      RETURNING li.id`,
    [claim, leaseSeconds, limit, exclude, now, horizon],
  );
  return r.rows.map((x) => x.id);
}

/**
 * How many open items not escalated passed the horizon since the previous run: those due in
 * [`previous`, `horizon`) (they aged past it), and those made since the previous run (ids above
 * `afterId`: uuidv7, in order of creation, on the primary key) already due before `previous` (a
 * backfill). The first run of a process (`previous` null) counts every one due before `horizon`.
 * Both reads are index ranges bounded by the previous run, so no item is read (or counted) twice.
 * `maxId`: the newest item now, the next run's `afterId`.
 */
export async function passedHorizon(db: Db, horizon: Date, previous: Date | null, afterId: string | null): Promise<{ n: number; maxId: string | null }> {
  const row = await firstRow<{ aged: number; made: number; max_id: string | null }>(
    db,
    `SELECT (SELECT count(*)::int FROM listening_item
              WHERE status = 'open' AND escalation_state IS DISTINCT FROM 'done'
                AND due_at < $1::timestamptz AND due_at >= coalesce($2::timestamptz, '-infinity')) AS aged,
            (SELECT count(*)::int FROM listening_item
              WHERE $2::timestamptz IS NOT NULL AND id > $3::uuid
                AND status = 'open' AND escalation_state IS DISTINCT FROM 'done' AND due_at < $2::timestamptz) AS made,
            (SELECT id FROM listening_item ORDER BY id DESC LIMIT 1)::text AS max_id`,
    [horizon, previous, afterId ?? '00000000-0000-0000-0000-000000000000'],
  );
  return { n: (row?.aged ?? 0) + (row?.made ?? 0), maxId: row?.max_id ?? afterId };
}

/**
 * Gives up a claim whose item no longer is what the claim took (open and past due at `now`): a reply
 * answered it, or a person closed it, while the job escalated the items before it. Only on the
 * item's first attempt, when no CRM call can have made its case yet: a retry goes on, and its upsert
 * finds (and records) the case a crashed attempt made. True when released; the item then looks
 * never claimed, so it is escalated again only once it is open and overdue again.
 */
export async function releaseStaleClaim(db: Db, id: string, claim: string, now: Date): Promise<boolean> {
  const r = await modify<{ id: string }>(
    db,
    `UPDATE listening_item SET escalation_state = NULL, escalation_claim = NULL, escalation_lease_until = NULL, escalation_attempts = 0
      WHERE id = $1 AND escalation_claim = $2 AND escalation_state = 'pending' AND escalation_attempts = 1
        AND (status <> 'open' OR due_at >= $3::timestamptz)
      RETURNING id`,
    [id, claim, now],
  );
  return r.rows.length > 0;
}

/** What an escalation needs of a claimed item: the item, its first interaction and its (current) customer. */
export interface ClaimedItem {
  id: string;
  customer_id: string | null;
  source: string;
  intent: string;
  sentiment_score: number;
  opened_at: Date;
  due_at: Date;
  sla_seconds: number;
  assigned_user: string | null;
  department: string;
  interaction_id: string;
  external_id: string;
  url: string | null;
  text: string;
  occurred_at: Date;
  display_name: string | null;
  /** what the check for stored replies before an escalation looks them up by */
  thread_key: string;
  author_handle: string | null;
  last_inbound_at: Date;
}

export function claimedItems(db: Db, ids: readonly string[]): Promise<ClaimedItem[]> {
  return rows(
    db,
    `SELECT li.id, coalesce(c.merged_into_id, li.customer_id) AS customer_id, li.source, li.intent, li.sentiment_score, li.opened_at,
            li.due_at, li.sla_seconds, li.assigned_user, coalesce(ad.name, d.name) AS department,
            i.id AS interaction_id, i.external_id, i.url, i.text, i.occurred_at, c.display_name,
            li.thread_key, li.author_handle, li.last_inbound_at
       FROM listening_item li
       JOIN department d ON d.id = li.department_id
       LEFT JOIN department ad ON ad.id = li.assigned_department_id
       JOIN interaction i ON i.id = li.interaction_id
       LEFT JOIN customer c ON c.id = li.customer_id
      WHERE li.id = ANY($1::uuid[]) ORDER BY li.due_at`,
    [ids],
  );
}

/**
 * Records an escalation as done, only under our claim: 'done', 'erased' (done, but the customer was
 * erased after the claim read the item: `eraseListeningItems` re-keys its thread), or null (the
 * lease lapsed and another runner took it).
 */
export async function escalationDone(
  db: Db,
  id: string,
  claim: string,
  escalatedAt: Date,
  crmCase: { system: string; id: string; url: string | null } | null,
): Promise<'done' | 'erased' | null> {
  const r = await modify<{ id: string; erased: boolean }>(
    db,
    `UPDATE listening_item SET escalation_state = 'done', escalated_at = $3, escalation_system = $4, escalation_case_id = $5,
            escalation_case_url = $6, escalation_error = NULL, escalation_lease_until = NULL, updated_at = now()
      WHERE id = $1 AND escalation_claim = $2 AND escalation_state = 'pending'
      RETURNING id, starts_with(thread_key, 'erased:') AS erased`,
    [id, claim, escalatedAt, crmCase?.system ?? null, crmCase?.id ?? null, crmCase?.url ?? null],
  );
  const row = r.rows[0];
  return row ? (row.erased ? 'erased' : 'done') : null;
}

/**
 * A case made for an item whose customer was erased during the CRM call: queued for the CRM
 * clean-up of that customer's erasure (which saw no case yet), and the request waits for it again.
 * Returns false when no erasure names the customer.
 */
export async function queueErasedCase(db: Db, customerId: string | null, entry: { system: string; objectType: string; itemId: string; origin: string }): Promise<boolean> {
  if (customerId === null) return false;
  const r = await rows<{ id: string }>(
    db,
    `WITH e AS (SELECT id FROM erasure_request WHERE erased_customer_ids @> ARRAY[$1::uuid] ORDER BY created_at DESC LIMIT 1),
          q AS (INSERT INTO crm_erasure (erasure_id, system, kind, object_type, external_id, origin)
                SELECT e.id, $2, 'case', $3, $4, $5 FROM e RETURNING erasure_id)
     UPDATE erasure_request SET status = 'crm_pending', completed_at = NULL WHERE id IN (SELECT erasure_id FROM q) RETURNING id`,
    [customerId, entry.system, entry.objectType, entry.itemId, entry.origin],
  );
  return r.length > 0;
}

/**
 * Keeps the claim after a failure (a retry upserts the same case) with a shorter lease, for a sooner
 * retry: 30 s (of the job's clock, `now`) after the first failed attempt, doubling with each one up to 6 hours. Before, every
 * failed item was tried again every run for ever, whatever the CRM answered (a validation rule that
 * refuses every case spent an API call per overdue item per minute from the org's daily allowance).
 */
export async function escalationFailed(db: Db, id: string, claim: string, error: string, now: Date): Promise<void> {
  await exec(
    db,
    `UPDATE listening_item SET escalation_error = $3,
            escalation_lease_until = $4::timestamptz + least(interval '30 seconds' * power(2, least(greatest(escalation_attempts - 1, 0), 20)), interval '6 hours')
      WHERE id = $1 AND escalation_claim = $2 AND escalation_state = 'pending'`,
    [id, claim, error, now],
  );
}

/** A customer's live records in one CRM, newest first, with the organisation each names. */
export function customerCrmRecords(
  db: Db,
  customerId: string,
  system: string,
): Promise<{ customer_id: string; system: string; object_type: string; external_id: string; owner_id: string | null; account_id: string | null }[]> {
  return rows(
    db,
    `SELECT customer_id, system, object_type, external_id, owner_id,
            coalesce(payload->>'AccountId', payload->'associatedCompanyIds'->>0) AS account_id
       FROM crm_record WHERE customer_id = $1 AND system = $2 AND deleted_at IS NULL
      ORDER BY modstamp DESC NULLS LAST`,
    [customerId, system],
  );
}

// ---- the ingest-time tracker (./listening-gap.tracker.ts), inside the pipeline's transaction ----

/** An item as the tracker plans it: loaded (and locked) or new, changed or not. */
export interface TrackedItem {
  id: string;
  isNew: boolean;
  dirty: boolean;
  source: string;
  threadKey: string;
  interactionId: string;
  lastInteractionId: string;
  /** for an item loaded from the table: its last interaction as stored, kept when this batch's candidate is not stored */
  storedLastInteractionId?: string;
  authorKey: string | null;
  customerId: string | null;
  department: string;
  intent: string;
  score: number;
  status: 'open' | 'answered' | 'closed';
  openedAt: number;
  lastOpenedAt: number;
  lastInboundAt: number;
  slaSeconds: number;
  dueAt: number;
  firstResponseAt: number | null;
  firstResponseSeconds: number | null;
  respondedBy: string | null;
  closedAt: number | null;
  closeReason: string | null;
  reopenedCount: number;
}

/** A stored item as the tracker loads it. */
export interface TrackedItemRow {
  id: string;
  source: string;
  thread_key: string;
  interaction_id: string;
  last_interaction_id: string;
  author_handle: string | null;
  customer_id: string | null;
  department: string;
  intent: string;
  sentiment_score: number;
  status: 'open' | 'answered' | 'closed';
  opened_at: Date;
  last_opened_at: Date;
  last_inbound_at: Date;
  sla_seconds: number;
  due_at: Date;
  first_response_at: Date | null;
  first_response_seconds: number | null;
  responded_by: string | null;
  closed_at: Date | null;
  close_reason: string | null;
  reopened_count: number;
}

const ts = (n: number | null) => (n === null ? null : new Date(n).toISOString());

/** The thread root of stored messages by (source, external id). */
export function threadRoots(db: Db, sources: readonly string[], externalIds: readonly string[]): Promise<{ source: string; external_id: string; root: string }[]> {
  return rows(
    db,
    `SELECT i.source, i.external_id, i.root FROM unnest($1::text[], $2::text[]) AS x(source, external_id)
       CROSS JOIN LATERAL (
         SELECT i.source, i.external_id, coalesce(i.thread_key, i.external_id) AS root FROM interaction i
          WHERE i.source = x.source AND i.external_id = x.external_id OFFSET 0) i`,
    [sources, externalIds],
  );
}

/**
 * The ids of the items of the threads ($1 sources, $2 thread keys), one thread at a time on
 * `listening_item_thread_key` whatever the table's size: `OFFSET 0` keeps the planner from turning
 * it into one join that scans every item (ingest-explain.test.ts).
 */
const ITEMS_BY_THREAD = `SELECT l.id FROM unnest($1::text[], $2::text[]) AS t(source, thread_key)
            CROSS JOIN LATERAL (SELECT l.id FROM listening_item l WHERE l.source = t.source AND l.thread_key = t.thread_key OFFSET 0) l`;

/**
 * Loads and locks (in id order) the items of the threads, and per author those whose last inbound
 * message is the latest, at or after `since` (one, but for a tie): the only ones of theirs a
 * message without a thread may join or a reply addressed to them may answer (the tracker's
 * `recentOf` takes the latest; an item of theirs that a message of the batch moves later is one of
 * its threads, loaded as such). Two index lookups per author on `listening_item_author_idx`.
 * Before, every item of the author in the window was loaded and locked for each batch: 5,000
 * replies addressed to an author with 20,000 open items took 16-20 s, against 1.1 s for another
 * author, and the cost grew with the author's items.
 */
export function lockTrackedItems(
  db: Db,
  k: { threadSources: readonly string[]; threadKeys: readonly string[]; authorSources: readonly string[]; authors: readonly string[]; since: string },
  /** false: read only (the check after a batch's commit looks before it locks) */
  lock = true,
): Promise<TrackedItemRow[]> {
  return rows(
    db,
    `SELECT li.id, li.source, li.thread_key, li.interaction_id, li.last_interaction_id, li.author_handle, li.customer_id,
              d.name AS department, li.intent, li.sentiment_score, li.status, li.opened_at, li.last_opened_at, li.last_inbound_at,
              li.sla_seconds, li.due_at, li.first_response_at, li.first_response_seconds, li.responded_by, li.closed_at,
              li.close_reason, li.reopened_count
         FROM listening_item li JOIN department d ON d.id = li.department_id
        WHERE li.id = ANY (ARRAY(
          -- per thread, and per author on listening_item_author_idx whatever the table's size:
          -- OFFSET 0 keeps the planner from turning this into one join that scans every item
          ${ITEMS_BY_THREAD}
          UNION
          SELECT l.id FROM unnest($3::text[], $4::text[]) AS a(source, author)
            CROSS JOIN LATERAL (
              SELECT l.id FROM listening_item l
               WHERE l.source = a.source AND lower(l.author_handle) = a.author AND l.author_handle IS NOT NULL
                 AND l.last_inbound_at = (
                   SELECT max(m.last_inbound_at) FROM listening_item m
                    WHERE m.source = a.source AND lower(m.author_handle) = a.author AND m.author_handle IS NOT NULL
                      AND m.last_inbound_at >= $5::timestamptz) OFFSET 0) l))
        ORDER BY li.id${lock ? `
        FOR UPDATE OF li` : ''}`,
    [k.threadSources, k.threadKeys, k.authorSources, k.authors, k.since],
  );
}

/** Loads and locks (in id order) the items of threads by (source, thread key). */
export function lockItemsOfThreads(
  db: Db,
  sources: readonly string[],
  threadKeys: readonly string[],
): Promise<{ id: string; source: string; thread_key: string; status: string; customer_id: string | null }[]> {
  return rows(
    db,
    `SELECT li.id, li.source, li.thread_key, li.status, li.customer_id FROM listening_item li
        WHERE li.id = ANY (ARRAY(
          ${ITEMS_BY_THREAD}))
        ORDER BY li.id FOR UPDATE OF li`,
    [sources, threadKeys],
  );
}

/** Lowers items' scores to the given ones where those are lower. */
export async function lowerItemScores(db: Db, ids: readonly string[], scores: readonly number[]): Promise<void> {
  await exec(
    db,
    `UPDATE listening_item li SET sentiment_score = least(li.sentiment_score, x.score), updated_at = now()
           FROM unnest($1::uuid[], $2::float8[]) AS x(id, score) WHERE li.id = x.id AND x.score < li.sentiment_score`,
    [ids, scores],
  );
}

/**
 * Per item the first company reply stored at or after `opened`, or null: one in its thread
 * (source, root), or one with no `inReplyTo` addressed to its author (`authors`, null: none) up to
 * `until`. Each lookup on its index, per item whatever the tables' size: replies deeper in the
 * thread carry its key (`interaction_thread_idx`), direct ones name the root
 * (`interaction_reply_idx`), addressed ones their recipient (`interaction_recipient_idx`).
 */
export function firstReplies(
  db: Db,
  k: { sources: readonly string[]; roots: readonly string[]; opened: readonly string[]; authors: readonly (string | null)[]; until: readonly string[] },
): Promise<{ source: string; root: string; first: Date | null }[]> {
  return rows(
    db,
    `SELECT x.source, x.root, least(
                (SELECT min(i.occurred_at) FROM interaction i
                  WHERE i.source = x.source AND i.thread_key = x.root AND i.direction = 'outbound' AND i.occurred_at >= x.opened),
                (SELECT min(i.occurred_at) FROM interaction i
                  WHERE i.source = x.source AND i.in_reply_to = x.root AND i.direction = 'outbound' AND i.occurred_at >= x.opened),
                (SELECT min(i.occurred_at) FROM interaction i
                  WHERE i.source = x.source AND i.recipient_key = x.author AND i.occurred_at >= x.opened AND i.occurred_at <= x.until)) AS first
         FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[]) AS x(source, root, opened, author, until)`,
    [k.sources, k.roots, k.opened, k.authors, k.until],
  );
}

/**
 * An item a re-score opens (times in ms; `responseAt`: when a company reply already stored answers
 * it, if one does; the item is closed by it only when `status` is answered).
 */
export interface RescoredItem {
  id: string;
  source: string;
  threadKey: string;
  interactionId: string;
  lastInteractionId: string;
  author: string | null;
  customerId: string | null;
  department: string;
  intent: string;
  score: number;
  status: string;
  openedAt: number;
  lastInboundAt: number;
  sla: number;
  due: number;
  responseAt: number | null;
  responseSeconds: number | null;
}

/** Inserts the items a re-score opens (a thread that has one already keeps it); how many were inserted. */
export async function insertRescoredItems(db: Db, items: readonly RescoredItem[]): Promise<number> {
  const inserted = await rows<{ '?column?': number }>(
    db,
    `INSERT INTO listening_item (id, source, thread_key, interaction_id, last_interaction_id, author_handle, customer_id, department_id,
          intent, sentiment_score, status, opened_at, last_opened_at, last_inbound_at, sla_seconds, due_at, first_response_at,
          first_response_seconds, responded_by, closed_at, close_reason)
       SELECT x.id, x.source, x.thread_key, x.iid, x.last_iid, x.author, x.customer, d.id, x.intent, x.score, x.status, x.opened,
              x.opened, x.last_inbound, x.sla, x.due, x.fr_at, x.fr_s, CASE WHEN x.fr_at IS NULL THEN NULL ELSE 'reply' END,
              CASE WHEN x.status = 'answered' THEN x.fr_at END, CASE WHEN x.status = 'answered' THEN 'reply' END
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::uuid[], $6::text[], $7::uuid[], $8::text[], $9::text[],
                     $10::float8[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::int[], $15::timestamptz[],
                     $16::timestamptz[], $17::int[])
           AS x(id, source, thread_key, iid, last_iid, author, customer, dept, intent, score, status, opened, last_inbound, sla, due, fr_at, fr_s)
         JOIN department d ON d.name = x.dept
       ON CONFLICT (source, thread_key) DO NOTHING
       RETURNING 1`,
    [
      items.map((r) => r.id),
      items.map((r) => r.source),
      items.map((r) => r.threadKey),
      items.map((r) => r.interactionId),
      items.map((r) => r.lastInteractionId),
      items.map((r) => r.author),
      items.map((r) => r.customerId),
      items.map((r) => r.department),
      items.map((r) => r.intent),
      items.map((r) => r.score),
      items.map((r) => r.status),
      items.map((r) => ts(r.openedAt)),
      items.map((r) => ts(r.lastInboundAt)),
      items.map((r) => r.sla),
      items.map((r) => ts(r.due)),
      items.map((r) => ts(r.responseAt)),
      items.map((r) => r.responseSeconds),
    ],
  );
  return inserted.length;
}

/** Inserts new items of the accepted interactions (`accepted`: the interaction ids actually inserted). */
export async function insertItems(db: Db, fresh: readonly TrackedItem[], accepted: ReadonlySet<string>): Promise<void> {
  await exec(
    db,
    `INSERT INTO listening_item (id, source, thread_key, interaction_id, last_interaction_id, author_handle, customer_id, department_id,
            intent, sentiment_score, status, opened_at, last_opened_at, last_inbound_at, sla_seconds, due_at, first_response_at,
            first_response_seconds, responded_by, closed_at, close_reason, reopened_count)
         SELECT x.id, x.source, x.thread_key, x.iid, x.last_iid, x.author, x.customer, d.id, x.intent, x.score, x.status, x.opened,
                x.last_opened, x.last_inbound, x.sla, x.due, x.fr_at, x.fr_s, x.by, x.closed, x.reason, x.reopened
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::uuid[], $6::text[], $7::uuid[], $8::text[], $9::text[],
                       $10::float8[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::int[], $15::timestamptz[],
                       $16::timestamptz[], $17::int[], $18::text[], $19::timestamptz[], $20::text[], $21::timestamptz[], $22::int[])
             AS x(id, source, thread_key, iid, last_iid, author, customer, dept, intent, score, status, opened, last_inbound, sla, due,
                  fr_at, fr_s, by, closed, reason, last_opened, reopened)
           JOIN department d ON d.name = x.dept
         ON CONFLICT (source, thread_key) DO NOTHING`,
    [
      fresh.map((i) => i.id),
      fresh.map((i) => i.source),
      fresh.map((i) => i.threadKey),
      fresh.map((i) => i.interactionId),
      fresh.map((i) => (accepted.has(i.lastInteractionId) ? i.lastInteractionId : i.interactionId)),
      fresh.map((i) => i.authorKey),
      fresh.map((i) => i.customerId),
      fresh.map((i) => i.department),
      fresh.map((i) => i.intent),
      fresh.map((i) => i.score),
      fresh.map((i) => i.status),
      fresh.map((i) => ts(i.openedAt)),
      fresh.map((i) => ts(i.lastInboundAt)),
      fresh.map((i) => i.slaSeconds),
      fresh.map((i) => ts(i.dueAt)),
      fresh.map((i) => ts(i.firstResponseAt)),
      fresh.map((i) => i.firstResponseSeconds),
      fresh.map((i) => i.respondedBy),
      fresh.map((i) => ts(i.closedAt)),
      fresh.map((i) => i.closeReason),
      fresh.map((i) => ts(i.lastOpenedAt)),
      fresh.map((i) => i.reopenedCount),
    ],
  );
}

/** Writes the changes of loaded items. */
export async function updateItems(db: Db, changed: readonly TrackedItem[]): Promise<void> {
  await exec(
    db,
    `UPDATE listening_item li SET
           status = x.status, last_opened_at = x.last_opened, last_inbound_at = x.last_inbound, last_interaction_id = x.last_iid,
           sentiment_score = x.score, customer_id = x.customer, sla_seconds = x.sla, due_at = x.due,
           first_response_at = x.fr_at, first_response_seconds = x.fr_s, responded_by = x.by, closed_at = x.closed,
           close_reason = x.reason, reopened_count = x.reopened, updated_at = now()
         FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::uuid[], $6::float8[], $7::uuid[], $8::int[],
                     $9::timestamptz[], $10::timestamptz[], $11::int[], $12::text[], $13::timestamptz[], $14::text[], $15::int[])
           AS x(id, status, last_opened, last_inbound, last_iid, score, customer, sla, due, fr_at, fr_s, by, closed, reason, reopened)
        WHERE li.id = x.id AND li.id = ANY (${batchIds(1)})`,
    [
      changed.map((i) => i.id),
      changed.map((i) => i.status),
      changed.map((i) => ts(i.lastOpenedAt)),
      changed.map((i) => ts(i.lastInboundAt)),
      changed.map((i) => i.lastInteractionId),
      changed.map((i) => i.score),
      changed.map((i) => i.customerId),
      changed.map((i) => i.slaSeconds),
      changed.map((i) => ts(i.dueAt)),
      changed.map((i) => ts(i.firstResponseAt)),
      changed.map((i) => i.firstResponseSeconds),
      changed.map((i) => i.respondedBy),
      changed.map((i) => ts(i.closedAt)),
      changed.map((i) => i.closeReason),
      changed.map((i) => i.reopenedCount),
    ],
  );
}

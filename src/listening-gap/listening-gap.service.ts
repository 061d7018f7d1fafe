import type { DataSource } from 'typeorm';
import type { Principal } from '../auth/auth.service';
import { Intent } from '../graphql/enums';
import { decodeCursor, encodeCursor, fromGlobalId, isTimestamp, pageSize, toGlobalId, toPage, type Page } from '../graphql/relay';
import { AppError } from '../shared/app-error';
import type { ListeningGapConfig } from './listening-gap.config';
import {
  ListeningItem,
  ListeningItemStatus,
  TrendBucket,
  TrendScope,
  type ChannelGap,
  type DepartmentGap,
  type DepartmentInsight,
  type GapFigures,
  type ListeningGap,
  type TopicInsight,
  type TrendPoint,
} from './listening-gap.type';

interface ItemRow {
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
}

const MAX_WINDOW_DAYS = 3660;
const MAX_BUCKETS = 5000;

/**
 * Urgency of an open item at `$now`: how far it is through its SLA (1.0 = due now, grows past it),
 * plus its negativity (0..1), plus customer value where known (log of the customer's interaction
 * count, and 0.5 when the customer has a CRM record). Written once, used for ORDER BY and cursor.
 */
const URGENCY = `(extract(epoch FROM ($NOW::timestamptz - li.last_opened_at)) / li.sla_seconds
   + greatest(0, -li.sentiment_score)
   + 0.1 * ln(1 + coalesce(c.interaction_count, 0))
   + CASE WHEN EXISTS (SELECT 1 FROM crm_record r WHERE r.customer_id = li.customer_id AND r.deleted_at IS NULL) THEN 0.5 ELSE 0 END)`;

const ITEM_COLUMNS = `li.id, li.customer_id, li.interaction_id, li.last_interaction_id, li.status, li.source,
  coalesce(ad.name, d.name) AS department, d.name AS topic_department, li.assigned_user, li.intent, li.sentiment_score,
  li.opened_at, li.last_opened_at, li.sla_seconds, li.due_at, li.first_response_at, li.first_response_seconds, li.responded_by,
  li.closed_at, li.close_reason, li.reopened_count, li.escalated_at, li.escalation_system, li.escalation_case_id, li.escalation_case_url`;

const ITEM_FROM = `listening_item li
  JOIN department d ON d.id = li.department_id
  LEFT JOIN department ad ON ad.id = li.assigned_department_id
  LEFT JOIN customer c ON c.id = li.customer_id`;

function toItem(r: ItemRow): ListeningItem {
  const now = Number(r.now_ms);
  const i = new ListeningItem();
  i.id = toGlobalId('ListeningItem', r.id);
  i.uuid = r.id;
  i.customerUuid = r.customer_id;
  i.interactionUuid = r.interaction_id;
  i.lastInteractionUuid = r.last_interaction_id;
  i.status = r.status;
  i.channel = r.source;
  i.department = r.department;
  i.topicDepartment = r.topic_department;
  i.assignedUser = r.assigned_user;
  i.intent = r.intent as Intent;
  i.sentimentScore = r.sentiment_score;
  i.openedAt = r.opened_at;
  i.lastOpenedAt = r.last_opened_at;
  i.slaSeconds = r.sla_seconds;
  i.dueAt = r.due_at;
  i.overdue = r.status === 'open' && r.due_at.getTime() < now;
  i.ageSeconds = Math.max(0, Math.round((now - r.last_opened_at.getTime()) / 1000));
  i.urgency = Number(r.urgency);
  i.firstResponseAt = r.first_response_at;
  i.firstResponseSeconds = r.first_response_seconds;
  i.respondedBy = r.responded_by;
  i.closedAt = r.closed_at;
  i.closeReason = r.close_reason;
  i.reopenedCount = r.reopened_count;
  i.escalation = r.escalated_at ? { escalatedAt: r.escalated_at, system: r.escalation_system, caseId: r.escalation_case_id, caseUrl: r.escalation_case_url } : null;
  return i;
}

function checkWindow(from: Date, to: Date): void {
  if (!(from instanceof Date) || !(to instanceof Date) || Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) throw AppError.badInput('from and to must be date-times');
  if (to.getTime() <= from.getTime()) throw AppError.badInput('to must be after from');
  if (to.getTime() - from.getTime() > MAX_WINDOW_DAYS * 86_400_000) throw AppError.badInput(`the window may span at most ${MAX_WINDOW_DAYS} days`);
}

interface FigureRow {
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

function figures(r: FigureRow | undefined): GapFigures {
  const received = r?.received ?? 0;
  const ignored = r?.ignored ?? 0;
  return {
    received,
    answered: r?.answered ?? 0,
    ignored,
    pending: r?.pending ?? 0,
    dismissed: r?.dismissed ?? 0,
    ignoredShare: received > 0 ? ignored / received : 0,
    medianFirstResponseSeconds: r?.median ?? null,
    p90FirstResponseSeconds: r?.p90 ?? null,
  };
}

/**
 * The listening gap as the API shows it: the queue of items waiting for an answer, what people do
 * with them, and the figures per department and channel.
 *
 * Must stay true: figures count each item once, in the window of its `opened_at`, routed to its
 * assigned department when it has one; a person's action on an item is recorded with who did it.
 */
export class ListeningGapService {
  constructor(
    private readonly ds: DataSource,
    private readonly config: ListeningGapConfig,
  ) {}

  /** The default department must exist before the first item without a topic arrives. */
  async ensureDefaultDepartment(): Promise<void> {
    await this.ds.query(`INSERT INTO department (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, [this.config.defaultDepartment]);
  }

  /** Open items, most urgent first; the urgency clock is frozen at the first page (kept in the cursor). */
  async openItems(args: { department?: string | null; channel?: string | null; overdueOnly?: boolean | null; first?: number | null; after?: string | null }): Promise<Page<ListeningItem>> {
    const n = pageSize(args.first);
    const cursor = decodeCursor(args.after);
    let now = new Date().toISOString();
    let after: { urgency: number; id: string } | null = null;
    if (cursor) {
      const [asOf, urgency] = cursor.sort.split('|');
      if (!asOf || !isTimestamp(asOf) || urgency === undefined || Number.isNaN(Number(urgency))) throw AppError.badInput(`invalid cursor: ${JSON.stringify(args.after)}`);
      now = asOf;
      after = { urgency: Number(urgency), id: cursor.id };
    }
    const params: unknown[] = [now];
    // $1 (the clock) is referenced even without overdueOnly, so the count query can bind it too
    const where = [`li.status = 'open'`, `$1::timestamptz IS NOT NULL`];
    const add = (sql: (p: string) => string, v: unknown) => {
      params.push(v);
      where.push(sql(`$${params.length}`));
    };
    if (args.department) add((p) => `coalesce(ad.name, d.name) = ${p}`, args.department);
    if (args.channel) add((p) => `li.source = ${p}`, args.channel);
    if (args.overdueOnly) where.push(`li.due_at < $1::timestamptz`);
    const countParams = [...params];
    const countWhere = where.join(' AND ');
    const urgency = URGENCY.replace('$NOW', '$1');
    if (after) {
      params.push(after.urgency, after.id);
      where.push(`(${urgency}, li.id) < ($${params.length - 1}::float8, $${params.length}::uuid)`);
    }
    params.push(n + 1);
    const [rows, [count]] = await Promise.all([
      this.ds.query(
        `SELECT ${ITEM_COLUMNS}, ${urgency}::float8 AS urgency, (extract(epoch FROM $1::timestamptz) * 1000)::bigint AS now_ms
           FROM ${ITEM_FROM} WHERE ${where.join(' AND ')}
          ORDER BY urgency DESC, li.id DESC LIMIT $${params.length}`,
        params,
      ) as Promise<ItemRow[]>,
      this.ds.query(`SELECT count(*)::int AS total FROM ${ITEM_FROM} WHERE ${countWhere}`, countParams) as Promise<{ total: number }[]>,
    ]);
    return toPage(rows.map(toItem), n, count!.total, (i) => encodeCursor(`${now}|${i.urgency}`, i.uuid));
  }

  async byIds(ids: readonly string[]): Promise<(ListeningItem | null)[]> {
    const rows: ItemRow[] = await this.ds.query(
      `SELECT ${ITEM_COLUMNS}, ${URGENCY.replace('$NOW', 'now()')}::float8 AS urgency, (extract(epoch FROM now()) * 1000)::bigint AS now_ms
         FROM ${ITEM_FROM} WHERE li.id = ANY($1::uuid[])`,
      [ids],
    );
    const byId = new Map(rows.map((r) => [r.id, toItem(r)]));
    return ids.map((id) => byId.get(id) ?? null);
  }

  private async one(id: string): Promise<ListeningItem> {
    const [item] = await this.byIds([id]);
    if (!item) throw AppError.notFound('listening item');
    return item;
  }

  /** A person answered outside the channels Earshot sees (phone, DM): the first response is now. */
  async markResponded(globalId: string, principal: Principal): Promise<ListeningItem> {
    const { id } = fromGlobalId(globalId, 'ListeningItem');
    const [, n] = (await this.ds.query(
      `UPDATE listening_item SET status = 'answered', closed_at = now(), close_reason = 'marked_responded',
              first_response_at = coalesce(first_response_at, greatest(now(), opened_at)),
              first_response_seconds = coalesce(first_response_seconds, greatest(0, extract(epoch FROM now() - opened_at))::int),
              responded_by = coalesce(responded_by, 'person'), assigned_user = coalesce(assigned_user, $2), updated_at = now()
        WHERE id = $1 AND status = 'open'`,
      [id, principal.id],
    )) as [unknown, number];
    const item = await this.one(id);
    if (n === 0 && item.status === ListeningItemStatus.OPEN) throw new AppError('CONFLICT', 'the item changed meanwhile; try again');
    return item;
  }

  /** Closes an item that needs no answer (spam, duplicate, handled elsewhere). */
  async closeItem(globalId: string, reason: string, principal: Principal): Promise<ListeningItem> {
    const { id } = fromGlobalId(globalId, 'ListeningItem');
    const text = reason.trim();
    if (!text) throw AppError.badInput('a reason is required');
    const [, n] = (await this.ds.query(
      `UPDATE listening_item SET status = 'closed', closed_at = now(), close_reason = $2, assigned_user = coalesce(assigned_user, $3), updated_at = now()
        WHERE id = $1 AND status = 'open'`,
      [id, text.slice(0, 500), principal.id],
    )) as [unknown, number];
    const item = await this.one(id);
    if (n === 0 && item.status === ListeningItemStatus.OPEN) throw new AppError('CONFLICT', 'the item changed meanwhile; try again');
    return item;
  }

  /** Routes an item to another department and/or a person; an empty user clears the assignee. */
  async assignItem(globalId: string, department: string | null | undefined, user: string | null | undefined): Promise<ListeningItem> {
    const { id } = fromGlobalId(globalId, 'ListeningItem');
    if ((department === undefined || department === null) && (user === undefined || user === null)) throw AppError.badInput('give a department, a user, or both');
    let departmentId: number | null = null;
    if (department) {
      const [d] = (await this.ds.query(`SELECT id FROM department WHERE name = $1`, [department])) as { id: number }[];
      if (!d) throw AppError.badInput(`unknown department ${JSON.stringify(department)}`);
      departmentId = d.id;
    }
    const [, n] = (await this.ds.query(
      `UPDATE listening_item SET
         assigned_department_id = coalesce($2::int, assigned_department_id),
         assigned_user = CASE WHEN $3::text IS NULL THEN assigned_user ELSE nullif($3::text, '') END,
         updated_at = now()
        WHERE id = $1`,
      [id, departmentId, user === undefined ? null : user],
    )) as [unknown, number];
    if (n === 0) throw AppError.notFound('listening item');
    return this.one(id);
  }

  /** received / answered / ignored … for items opened in [from, to), overall, by department and by channel. */
  async listeningGap(from: Date, to: Date, department?: string | null, channel?: string | null): Promise<ListeningGap> {
    checkWindow(from, to);
    const params: unknown[] = [from, to];
    const where = ['li.opened_at >= $1', 'li.opened_at < $2'];
    if (department) {
      params.push(department);
      where.push(`coalesce(ad.name, d.name) = $${params.length}`);
    }
    if (channel) {
      params.push(channel);
      where.push(`li.source = $${params.length}`);
    }
    const rows: FigureRow[] = await this.ds.query(
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
              count(*) FILTER (WHERE (first_response_at IS NULL AND status = 'open' AND due_at < now())
                                  OR first_response_at > due_at
                                  OR (first_response_at IS NULL AND status <> 'open' AND closed_at > due_at))::int AS ignored,
              count(*) FILTER (WHERE first_response_at IS NULL AND status = 'open' AND due_at >= now())::int AS pending,
              count(*) FILTER (WHERE first_response_at IS NULL AND status <> 'open' AND closed_at <= due_at)::int AS dismissed,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY first_response_seconds) AS median,
              percentile_cont(0.9) WITHIN GROUP (ORDER BY first_response_seconds) AS p90
         FROM w GROUP BY GROUPING SETS ((), (department), (channel))`,
      params,
    );
    const total = rows.find((r) => r.g_department === 1 && r.g_channel === 1);
    const byDepartment: DepartmentGap[] = rows
      .filter((r) => r.g_department === 0)
      .map((r) => ({ department: r.department!, ...figures(r) }))
      .sort((a, b) => b.ignored - a.ignored || a.department.localeCompare(b.department));
    const byChannel: ChannelGap[] = rows
      .filter((r) => r.g_channel === 0)
      .map((r) => ({ channel: r.channel!, ...figures(r) }))
      .sort((a, b) => b.ignored - a.ignored || a.channel.localeCompare(b.channel));
    return { ...figures(total), byDepartment, byChannel };
  }

  /**
   * Per department: inbound volume and average sentiment in [from, to) (whole UTC days, from the
   * daily rollups) against the window of the same length before, top topics and top negative
   * topics with recent negative examples, and the open and overdue items now.
   */
  async departmentInsights(from: Date, to: Date): Promise<DepartmentInsight[]> {
    checkWindow(from, to);
    const fromDay = from.toISOString().slice(0, 10);
    const toDay = to.toISOString().slice(0, 10) === fromDay ? new Date(from.getTime() + 86_400_000).toISOString().slice(0, 10) : to.toISOString().slice(0, 10);
    const [depts, topics, items] = await Promise.all([
      this.ds.query(
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
      ) as Promise<{ name: string; volume: number; avg: number | null; negative: number; prev: number | null }[]>,
      this.ds.query(
        `SELECT t.id, t.name, t.label, d.name AS department, sum(s.interaction_count)::int AS volume,
                sum(s.negative_count)::int AS negative, sum(s.score_sum) / nullif(sum(s.interaction_count), 0) AS avg
           FROM topic_sentiment_daily s JOIN topic t ON t.id = s.topic_id JOIN department d ON d.id = t.department_id
          WHERE s.day >= $1::date AND s.day < $2::date
          GROUP BY t.id, t.name, t.label, d.name HAVING sum(s.interaction_count) > 0`,
        [fromDay, toDay],
      ) as Promise<{ id: number; name: string; label: string; department: string; volume: number; negative: number; avg: number | null }[]>,
      this.ds.query(
        `SELECT coalesce(ad.name, d.name) AS department, count(*)::int AS open, count(*) FILTER (WHERE li.due_at < now())::int AS overdue
           FROM listening_item li JOIN department d ON d.id = li.department_id LEFT JOIN department ad ON ad.id = li.assigned_department_id
          WHERE li.status = 'open' GROUP BY 1`,
      ) as Promise<{ department: string; open: number; overdue: number }[]>,
    ]);
    const toTopic = (t: (typeof topics)[number]): TopicInsight => ({ topic: t.name, label: t.label, volume: t.volume, negativeCount: t.negative, averageSentiment: t.avg, exampleIds: [] });
    const byDept = new Map<string, (typeof topics)[number][]>();
    for (const t of topics) byDept.set(t.department, [...(byDept.get(t.department) ?? []), t]);
    const negative = new Map<string, (typeof topics)[number][]>();
    for (const [d, list] of byDept) negative.set(d, list.filter((t) => t.negative > 0).sort((a, b) => b.negative - a.negative || a.name.localeCompare(b.name)).slice(0, 3));
    const wanted = [...negative.values()].flat();
    const examples = new Map<number, string[]>();
    if (wanted.length > 0) {
      // Newest first through the interaction time index, checking the topic per row: a few rows per topic.
      const rows: { topic_id: number; id: string }[] = await this.ds.query(
        `SELECT t.id AS topic_id, x.id FROM unnest($1::int[]) AS t(id) CROSS JOIN LATERAL (
           SELECT i.id FROM interaction i
            WHERE i.occurred_at >= $2 AND i.occurred_at < $3 AND i.direction = 'inbound' AND i.sentiment_label = 'negative'
              AND EXISTS (SELECT 1 FROM interaction_topic it WHERE it.interaction_id = i.id AND it.topic_id = t.id)
            ORDER BY i.occurred_at DESC, i.id DESC LIMIT 2) x`,
        [wanted.map((t) => t.id), from, to],
      );
      for (const r of rows) examples.set(r.topic_id, [...(examples.get(r.topic_id) ?? []), r.id]);
    }
    const open = new Map(items.map((i) => [i.department, i]));
    return depts.map((d) => ({
      department: d.name,
      volume: d.volume,
      averageSentiment: d.avg,
      previousAverageSentiment: d.prev,
      sentimentChange: d.avg !== null && d.prev !== null ? d.avg - d.prev : null,
      negativeShare: d.volume > 0 ? d.negative / d.volume : 0,
      topTopics: (byDept.get(d.name) ?? []).sort((a, b) => b.volume - a.volume || a.name.localeCompare(b.name)).slice(0, 5).map(toTopic),
      topNegativeTopics: (negative.get(d.name) ?? []).map((t) => ({ ...toTopic(t), exampleIds: examples.get(t.id) ?? [] })),
      openItems: open.get(d.name)?.open ?? 0,
      overdueItems: open.get(d.name)?.overdue ?? 0,
    }));
  }

  /**
   * Inbound sentiment per bucket for a customer, a department, a topic or everything. Day and week
   * buckets come from the daily rollups (customer, department, topic); hours and ALL read the
   * interactions through their time index. Every bucket of the window is present (count 0 when empty).
   */
  async sentimentTrend(scope: TrendScope, id: string | null | undefined, bucket: TrendBucket, from: Date, to: Date): Promise<TrendPoint[]> {
    checkWindow(from, to);
    const step = bucket === TrendBucket.HOUR ? 3_600_000 : bucket === TrendBucket.DAY ? 86_400_000 : 7 * 86_400_000;
    if ((to.getTime() - from.getTime()) / step > MAX_BUCKETS) throw AppError.badInput(`at most ${MAX_BUCKETS} buckets; use a larger bucket or a shorter window`);
    if (scope !== TrendScope.ALL && !id) throw AppError.badInput(`scope ${scope.toUpperCase()} needs an id`);
    let key: unknown = null;
    if (scope === TrendScope.CUSTOMER) key = fromGlobalId(id!, 'Customer').id;
    else if (scope === TrendScope.DEPARTMENT || scope === TrendScope.TOPIC) {
      const table = scope === TrendScope.DEPARTMENT ? 'department' : 'topic';
      const [row] = (await this.ds.query(`SELECT id FROM ${table} WHERE name = $1`, [id])) as { id: number }[];
      if (!row) throw AppError.notFound(`${table} ${JSON.stringify(id)}`);
      key = row.id;
    }
    const unit = bucket === TrendBucket.HOUR ? 'hour' : bucket === TrendBucket.DAY ? 'day' : 'week';
    const interval = `1 ${unit}`;
    let data: string;
    if (bucket !== TrendBucket.HOUR && scope !== TrendScope.ALL) {
      const [table, column] =
        scope === TrendScope.CUSTOMER ? ['customer_sentiment_daily', 'customer_id'] : scope === TrendScope.DEPARTMENT ? ['department_sentiment_daily', 'department_id'] : ['topic_sentiment_daily', 'topic_id'];
      data = `SELECT date_trunc('${unit}', s.day::timestamp) AS b, sum(s.interaction_count)::int AS n, sum(s.score_sum) AS sum,
                     sum(s.negative_count)::int AS neg, sum(s.positive_count)::int AS pos
                FROM ${table} s WHERE s.${column} = $3 AND s.day >= ($1 AT TIME ZONE 'UTC')::date AND s.day < ($2 AT TIME ZONE 'UTC')
               GROUP BY 1`;
    } else {
      const filter =
        scope === TrendScope.CUSTOMER
          ? 'AND i.customer_id = $3::uuid'
          : scope === TrendScope.DEPARTMENT
            ? 'AND EXISTS (SELECT 1 FROM interaction_topic it JOIN topic t ON t.id = it.topic_id WHERE it.interaction_id = i.id AND t.department_id = $3::int)'
            : scope === TrendScope.TOPIC
              ? 'AND EXISTS (SELECT 1 FROM interaction_topic it WHERE it.interaction_id = i.id AND it.topic_id = $3::int)'
              : 'AND $3::text IS NULL';
      data = `SELECT date_trunc('${unit}', i.occurred_at AT TIME ZONE 'UTC') AS b, count(*)::int AS n, sum(i.sentiment_score) AS sum,
                     count(*) FILTER (WHERE i.sentiment_label = 'negative')::int AS neg, count(*) FILTER (WHERE i.sentiment_label = 'positive')::int AS pos
                FROM interaction i WHERE i.direction = 'inbound' AND i.occurred_at >= $1 AND i.occurred_at < $2 ${filter}
               GROUP BY 1`;
    }
    const rows: { start: Date; n: number; avg: number | null; neg: number; pos: number }[] = await this.ds.query(
      `WITH data AS (${data})
       SELECT (g.b AT TIME ZONE 'UTC') AS start, coalesce(data.n, 0) AS n, data.sum / nullif(data.n, 0) AS avg,
              coalesce(data.neg, 0) AS neg, coalesce(data.pos, 0) AS pos
         FROM generate_series(date_trunc('${unit}', $1 AT TIME ZONE 'UTC'), ($2 AT TIME ZONE 'UTC') - interval '1 microsecond', interval '${interval}') AS g(b)
         LEFT JOIN data ON data.b = g.b ORDER BY g.b`,
      [from, to, key],
    );
    return rows.map((r) => ({ start: r.start, count: r.n, averageScore: r.avg, negativeCount: r.neg, positiveCount: r.pos }));
  }
}

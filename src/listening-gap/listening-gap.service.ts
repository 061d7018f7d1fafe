import type { DataSource } from 'typeorm';
import type { Principal } from '../auth/auth.service';
import type { CrmSystemEnum } from '../crm/crm.type';
import { fromCustomerJson } from '../customers/customer.service';
import { fromInteractionJson } from '../interactions/interaction.service';
import { Intent } from '../graphql/enums';
import type { Window } from '../graphql/keyset';
import { fromGlobalId, toGlobalId, type Page } from '../graphql/relay';
import { AppError } from '../shared/app-error';
import { systemClock, type Clock } from '../shared/clock';
import { cutText } from '../shared/text';
import type { ListeningGapConfig } from './listening-gap.config';
import * as repo from './listening-gap.repository';
import type { FigureRow, ItemPrefetch, ItemRow } from './listening-gap.repository';
import {
  ListeningItem,
  ListeningItemOrder,
  ListeningItemStatus,
  type Department,
  type ListeningItemEvent,
  type ListeningItemEventKind,
  type ListeningItemFilter,
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


const MAX_WINDOW_DAYS = 3660;

const MAX_BUCKETS = 5000;




/** Maps an item row; a row of a page carries only the columns its selection reads (ItemPrefetch.columns), so derived values are computed only from what is there. */
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
  i.overdue = r.status === 'open' && !!r.due_at && r.due_at.getTime() < now;
  i.ageSeconds = r.last_opened_at ? Math.max(0, Math.round((now - r.last_opened_at.getTime()) / 1000)) : 0;
  i.urgency = Number(r.urgency);
  i.firstResponseAt = r.first_response_at;
  i.firstResponseSeconds = r.first_response_seconds;
  i.respondedBy = r.responded_by;
  i.closedAt = r.closed_at;
  i.closeReason = r.close_reason;
  i.reopenedCount = r.reopened_count;
  if (r.prefetched_customer !== undefined) i.prefetchedCustomer = r.prefetched_customer && fromCustomerJson(r.prefetched_customer);
  if (r.prefetched_interaction !== undefined) i.prefetchedInteraction = r.prefetched_interaction && fromInteractionJson(r.prefetched_interaction);
  if (r.prefetched_last_interaction !== undefined) i.prefetchedLastInteraction = r.prefetched_last_interaction && fromInteractionJson(r.prefetched_last_interaction);
  i.escalation = r.escalated_at ? { escalatedAt: r.escalated_at, system: r.escalation_system === 'salesforce' || r.escalation_system === 'hubspot' ? (r.escalation_system as CrmSystemEnum) : null, caseId: r.escalation_case_id, caseUrl: r.escalation_case_url } : null;
  return i;
}

function checkWindow(from: Date, to: Date): void {
  if (!(from instanceof Date) || !(to instanceof Date) || Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) throw AppError.badInput('from and to must be date-times');
  if (to.getTime() <= from.getTime()) throw AppError.badInput('to must be after from');
  if (to.getTime() - from.getTime() > MAX_WINDOW_DAYS * 86_400_000) throw AppError.badInput(`the window may span at most ${MAX_WINDOW_DAYS} days`);
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
    /** "now" of every age, "overdue", pending/ignored and person's action, as the escalation job sees it */
    private readonly clock: Clock = systemClock,
  ) {}

  /** The default department must exist before the first item without a topic arrives. */
  async ensureDefaultDepartment(): Promise<void> {
    await repo.ensureDepartment(this.ds, this.config.defaultDepartment);
  }

  /**
   * Open items, most urgent first; the urgency clock is frozen at the first page (kept in the cursor).
   * `prefetch`: the customers and interactions the page's selection reads, fetched in its own statement.
   */
  async openItems(args: { department?: string | null; channel?: string | null; overdueOnly?: boolean | null } & Window, prefetch: ItemPrefetch = {}): Promise<Page<ListeningItem>> {
    return this.list({ status: [ListeningItemStatus.OPEN], department: args.department ?? undefined, channel: args.channel ?? undefined, overdueOnly: args.overdueOnly }, ListeningItemOrder.URGENCY, args, prefetch, 'openItems');
  }

  /** Items of any status under the filter, in the asked order (`prefetch` as for openItems). */
  async listeningItems(filter: ListeningItemFilter, order: ListeningItemOrder, w: Window, prefetch: ItemPrefetch = {}): Promise<Page<ListeningItem>> {
    return this.list(filter, order, w, prefetch);
  }

  private list(
    filter: ListeningItemFilter & { overdueOnly?: boolean | null },
    order: ListeningItemOrder,
    w: Window,
    prefetch: ItemPrefetch,
    name: 'listeningItems' | 'openItems' = 'listeningItems',
  ): Promise<Page<ListeningItem>> {
    return repo.itemPage(this.ds, filter, order, w, toItem, prefetch, this.clock.date(), name);
  }

  /** The history of many items, oldest first: who opened, answered, escalated, assigned, closed them, and when. */
  async historyOf(itemIds: readonly string[]): Promise<ListeningItemEvent[][]> {
    const rows = await repo.itemEvents(this.ds, itemIds);
    const grouped = new Map<string, ListeningItemEvent[]>();
    for (const r of rows) {
      const list = grouped.get(r.item_id) ?? [];
      list.push({ kind: r.kind as ListeningItemEventKind, actor: r.actor, at: r.at, detail: r.detail ? JSON.stringify(r.detail) : null });
      grouped.set(r.item_id, list);
    }
    return itemIds.map((id) => grouped.get(id) ?? []);
  }

  /** Every department, with its topics and open items now. */
  async departments(): Promise<Department[]> {
    const rows = await repo.departmentsWithOpenItems(this.ds);
    return rows.map((r) => ({ name: r.name, topics: r.topics, openItems: r.open_items }));
  }

  async byIds(ids: readonly string[]): Promise<(ListeningItem | null)[]> {
    const rows = await repo.itemsByIds(this.ds, ids, this.clock.date());
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
    const n = await repo.markItemResponded(this.ds, id, principal.id, this.clock.date());
    const item = await this.one(id);
    if (n === 0 && item.status === ListeningItemStatus.OPEN) throw new AppError('CONFLICT', 'the item changed meanwhile; try again');
    return item;
  }

  /** Closes an item that needs no answer (spam, duplicate, handled elsewhere). */
  async closeItem(globalId: string, reason: string, principal: Principal): Promise<ListeningItem> {
    const { id } = fromGlobalId(globalId, 'ListeningItem');
    const text = reason.trim();
    if (!text) throw AppError.badInput('a reason is required');
    const kept = cutText(text, 500);
    const n = await repo.closeItem(this.ds, id, kept, principal.id, this.clock.date());
    const item = await this.one(id);
    if (n === 0 && item.status === ListeningItemStatus.OPEN) throw new AppError('CONFLICT', 'the item changed meanwhile; try again');
    // an answered or closed item keeps its own outcome: saying "closed" would drop the reason silently
    if (n === 0 && item.status === ListeningItemStatus.CLOSED && item.closeReason === kept) return item;
    if (n === 0) throw new AppError('CONFLICT', `the item is already ${item.status} (${item.closeReason ?? 'no reason'}); only open items can be closed`, { status: item.status });
    return item;
  }

  /** Routes an item to another department and/or a person; an empty user clears the assignee. */
  async assignItem(globalId: string, department: string | null | undefined, user: string | null | undefined, principal?: Principal): Promise<ListeningItem> {
    const { id } = fromGlobalId(globalId, 'ListeningItem');
    if ((department === undefined || department === null) && (user === undefined || user === null)) throw AppError.badInput('give a department, a user, or both');
    let departmentId: number | null = null;
    if (department) {
      const d = await repo.idByName(this.ds, 'department', department);
      if (d === null) throw AppError.badInput(`unknown department ${JSON.stringify(department)}`);
      departmentId = d;
    }
    const n = await repo.assignItem(this.ds, id, departmentId, user === undefined ? null : user, principal?.id ?? '');
    if (n === 0) throw AppError.notFound('listening item');
    return this.one(id);
  }

  /** received / answered / ignored … for items opened in [from, to), overall, by department and by channel. */
  async listeningGap(from: Date, to: Date, department?: string | null, channel?: string | null): Promise<ListeningGap> {
    checkWindow(from, to);
    const rows = await repo.gapFigures(this.ds, from, to, this.clock.date(), department, channel);
    const total = rows.find((r) => r.g_department === 1 && r.g_channel === 1);
    const byDepartment: DepartmentGap[] = rows
      .filter((r) => r.g_department === 0)
      .map((r) => ({ department: r.department!, ...figures(r) }))
      .sort((a, b) => b.ignored - a.ignored || a.department.localeCompare(b.department, 'en'));
    const byChannel: ChannelGap[] = rows
      .filter((r) => r.g_channel === 0)
      .map((r) => ({ channel: r.channel!, ...figures(r) }))
      .sort((a, b) => b.ignored - a.ignored || a.channel.localeCompare(b.channel, 'en'));
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
      repo.departmentVolumes(this.ds, fromDay, toDay),
      repo.topicVolumes(this.ds, fromDay, toDay),
      repo.openItemsByDepartment(this.ds, this.clock.date()),
    ]);
    const toTopic = (t: (typeof topics)[number]): TopicInsight => ({ topic: t.name, label: t.label, volume: t.volume, negativeCount: t.negative, averageSentiment: t.avg, exampleIds: [] });
    const byDept = new Map<string, (typeof topics)[number][]>();
    for (const t of topics) byDept.set(t.department, [...(byDept.get(t.department) ?? []), t]);
    const negative = new Map<string, (typeof topics)[number][]>();
    for (const [d, list] of byDept) negative.set(d, list.filter((t) => t.negative > 0).sort((a, b) => b.negative - a.negative || a.name.localeCompare(b.name, 'en')).slice(0, 3));
    const wanted = [...negative.values()].flat();
    const examples = new Map<number, string[]>();
    if (wanted.length > 0) {
      const rows = await repo.negativeExamples(this.ds, wanted.map((t) => t.id), from, to);
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
      topTopics: (byDept.get(d.name) ?? []).sort((a, b) => b.volume - a.volume || a.name.localeCompare(b.name, 'en')).slice(0, 5).map(toTopic),
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
      const found = await repo.idByName(this.ds, table, id!);
      if (found === null) throw AppError.notFound(`${table} ${JSON.stringify(id)}`);
      key = found;
    }
    const unit = bucket === TrendBucket.HOUR ? 'hour' : bucket === TrendBucket.DAY ? 'day' : 'week';
    const source: repo.TrendSource =
      bucket !== TrendBucket.HOUR && scope !== TrendScope.ALL
        ? scope === TrendScope.CUSTOMER
          ? { kind: 'rollup', table: 'customer_sentiment_daily', column: 'customer_id' }
          : scope === TrendScope.DEPARTMENT
            ? { kind: 'rollup', table: 'department_sentiment_daily', column: 'department_id' }
            : { kind: 'rollup', table: 'topic_sentiment_daily', column: 'topic_id' }
        : { kind: 'interactions', filter: scope === TrendScope.CUSTOMER ? 'customer' : scope === TrendScope.DEPARTMENT ? 'department' : scope === TrendScope.TOPIC ? 'topic' : 'all' };
    const rows = await repo.trendBuckets(this.ds, source, unit, from, to, key);
    return rows.map((r) => ({ start: r.start, count: r.n, averageScore: r.avg, negativeCount: r.neg, positiveCount: r.pos }));
  }
}

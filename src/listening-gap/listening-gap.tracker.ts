import type { DataSource, QueryRunner } from 'typeorm';
import type { Db } from '../db/sql';
import { inTransaction } from '../db/transaction';
import { limitLockWait } from '../interactions/interaction.repository';
import { addBusinessSeconds } from './business-hours';
import { slaFor, type ListeningGapConfig } from './listening-gap.config';
import {
  firstReplies,
  insertItems,
  insertRescoredItems,
  lockItemsOfThreads,
  lockTrackedItems,
  lowerItemScores,
  threadRoots,
  updateItems,
  type RescoredItem,
  type TrackedItem,
  type TrackedItemRow,
} from './listening-gap.repository';
import { uuidv7 } from '../shared/uuidv7';

/** What the tracker needs of an interaction on its way into the database. */
export interface TrackedMessage {
  id: string;
  source: string;
  externalId: string;
  inReplyTo: string | null;
  direction: 'inbound' | 'outbound';
  occurredAt: number;
  /** the author's handle (or email) at the source */
  authorKey: string | null;
  /** outbound only: whom it addresses (metadata.recipientHandle or a leading @handle) */
  recipientKey: string | null;
  intent: string;
  score: number;
  /** the analyzer's "unhappy" (negative, complaint or churn threat): always opens an item */
  unhappy?: boolean;
  customerId: string | null;
  /** departments of its topics, strongest topic first */
  departments: string[];
}

/** A stored inbound interaction with its new scores, as the re-score job hands it over. */
export interface RescoredMessage {
  id: string;
  source: string;
  externalId: string;
  /** the stored thread_key (null: it starts its thread) */
  threadKey: string | null;
  direction: 'inbound' | 'outbound';
  occurredAt: number;
  authorKey: string | null;
  customerId: string | null;
  intent: string;
  score: number;
  departments: string[];
}

type ItemState = TrackedItem;

export interface GapPlan {
  /** per interaction id: the thread it belongs to, or null when it starts its own */
  threadKeys: Map<string, string | null>;
  /**
   * per interaction id of a company reply that names no message but its addressee: the addressee's
   * key, stored with the reply (`interaction.recipient_key`) so a complaint that arrives after it
   * finds it
   */
  recipientKeys: Map<string, string>;
  items: ItemState[];
  /** what to look at again once the batch is committed (`settle`); null when nothing */
  followUp: GapFollowUp | null;
}

/**
 * What a committed batch leaves to check (`settle`): its new items still waiting for a first
 * response, the threads of its replies that found no item, and whom its replies address. A
 * transaction does not see the rows of another one not committed yet, so a reply and the complaint
 * it answers stored at the same moment by two transactions (two partitions, two requests) missed
 * each other, and the item stayed open.
 */
export interface GapFollowUp {
  /** the batch's new items as it stored them: answered by a stored reply as at ingest (`storedAnswers`) */
  items: AnswerCandidate[];
  /** threads of the batch's replies that found no item */
  threads: [source: string, threadKey: string][];
  /** (source, addressee key in lower case) of the batch's replies that name no message */
  authors: [source: string, author: string][];
  /** an addressee's latest item counts when its last inbound message is at or after this (ms) */
  since: number;
  /**
   * the batch's inbound messages that are not the first of their item's thread (source, the item's
   * thread, the message's id), of items still waiting: a reply to one of them committing meanwhile
   * did not see it, so it keeps the message's id as its thread (absent: none)
   */
  joined?: [source: string, threadKey: string, externalId: string][];
}

/** A new item as the lookup of the replies already stored for it sees it (times in ms). */
export interface AnswerCandidate {
  source: string;
  threadKey: string;
  authorKey: string | null;
  openedAt: number;
  lastInboundAt: number;
}

const k = (a: string, b: string) => `${a}\u0000${b}`;

/**
 * The candidates of loaded items, each also under the ids of messages of its thread that replies
 * may name as their thread (`aliases`: source, the item's thread, the id): a reply stored while
 * the message it names was not yet kept that id (settle). Only in the thread: no author.
 */
function withAliases<T extends AnswerCandidate & { item: ItemState }>(rows: readonly T[], aliases: readonly [string, string, string][]): (AnswerCandidate & { item: ItemState })[] {
  if (aliases.length === 0) return [...rows];
  const byThread = new Map<string, string[]>();
  for (const [source, threadKey, id] of aliases) {
    const list = byThread.get(k(source, threadKey));
    if (list) list.push(id);
    else byThread.set(k(source, threadKey), [id]);
  }
  return rows.flatMap((c) => [
    c,
    ...[...new Set(byThread.get(k(c.source, c.threadKey)) ?? [])].map((id) => ({ source: c.source, threadKey: id, authorKey: null, openedAt: c.openedAt, lastInboundAt: c.lastInboundAt, item: c.item })),
  ]);
}

/** An item as loaded (`lockTrackedItems`), as the tracker plans with it. */
function trackedItemOf(r: TrackedItemRow): ItemState {
  return {
    id: r.id,
    isNew: false,
    dirty: false,
    source: r.source,
    threadKey: r.thread_key,
    interactionId: r.interaction_id,
    lastInteractionId: r.last_interaction_id,
    storedLastInteractionId: r.last_interaction_id,
    authorKey: r.author_handle,
    customerId: r.customer_id,
    department: r.department,
    intent: r.intent,
    score: r.sentiment_score,
    status: r.status,
    openedAt: r.opened_at.getTime(),
    lastOpenedAt: r.last_opened_at.getTime(),
    lastInboundAt: r.last_inbound_at.getTime(),
    slaSeconds: r.sla_seconds,
    dueAt: r.due_at.getTime(),
    firstResponseAt: r.first_response_at?.getTime() ?? null,
    firstResponseSeconds: r.first_response_seconds,
    respondedBy: r.responded_by,
    closedAt: r.closed_at?.getTime() ?? null,
    closeReason: r.close_reason,
    reopenedCount: r.reopened_count,
  };
}

/**
 * How long before the message it names a reply may be stamped and still answer it: the clocks of a
 * brand's tools and of a network disagree by that much. A reply stamped earlier than that answers
 * something else. Applied the same whether the reply or the message is stored first.
 */
export const REPLY_CLOCK_SKEW_MS = 5 * 60_000;

/**
 * Keeps `listening_item` in step with ingest, inside the pipeline's transaction: inbound
 * complaints and questions (and any message the analyzer calls unhappy, or strongly negative) open or reopen the item of their
 * thread, outbound replies answer it. Set-based: per batch one query for thread roots, one that
 * loads and locks the items involved, one for replies already stored in the threads of new items
 * or addressed to their authors, one insert and one update, whatever the batch size.
 *
 * Must stay true: a thread (source + root externalId) has at most one item; events are applied
 * in the order they happened, so a reply and a later complaint in one batch leave the item open;
 * the first response is recorded once and never moved; whether a reply answers a new item does
 * not depend on which of the two arrived first, nor on which committed first when two transactions
 * stored them at the same moment (`settle`, after each commit).
 */
export class ListeningGapTracker {
  constructor(private readonly config: ListeningGapConfig) {}

  opens(m: Pick<TrackedMessage, 'direction' | 'intent' | 'score' | 'unhappy'>): boolean {
    return m.direction === 'inbound' && (m.unhappy === true || this.config.intents.includes(m.intent) || m.score <= this.config.negativeThreshold);
  }

  dueAt(from: number, department: string, channel: string): { sla: number; due: number } {
    const sla = slaFor(this.config, department, channel);
    return { sla, due: addBusinessSeconds(new Date(from), sla, this.config.businessHours).getTime() };
  }

  /** Works out threads and item changes; call before the interactions are inserted (they carry the thread). */
  async plan(qr: Pick<QueryRunner, 'query'>, batch: TrackedMessage[]): Promise<GapPlan> {
    const threadKeys = new Map<string, string | null>();
    const recipientKeys = new Map<string, string>();
    if (batch.length === 0) return { threadKeys, recipientKeys, items: [], followUp: null };
    const ordered = [...batch].sort((a, b) => a.occurredAt - b.occurredAt || (a.direction === b.direction ? 0 : a.direction === 'inbound' ? -1 : 1));
    const inBatch = new Map(batch.map((m) => [k(m.source, m.externalId), m]));

    const parents = batch.filter((m) => m.inReplyTo && !inBatch.has(k(m.source, m.inReplyTo)));
    const roots = new Map<string, string>();
    if (parents.length > 0) {
      const rows = await threadRoots(qr, parents.map((m) => m.source), parents.map((m) => m.inReplyTo!));
      for (const r of rows) roots.set(k(r.source, r.external_id), r.root);
    }
    const keyOf = new Map<string, string>();
    const rootOf = (m: TrackedMessage): string => {
      const known = keyOf.get(m.id);
      if (known) return known;
      if (!m.inReplyTo) return m.externalId;
      const parent = inBatch.get(k(m.source, m.inReplyTo));
      // A reply to a message not seen (yet) joins the thread that message will start.
      return parent && parent !== m ? (keyOf.get(parent.id) ?? roots.get(k(m.source, m.inReplyTo)) ?? m.inReplyTo) : (roots.get(k(m.source, m.inReplyTo)) ?? m.inReplyTo);
    };
    // first pass: preliminary roots, to know which items to load
    for (const m of ordered) keyOf.set(m.id, rootOf(m));

    const threadPairs = new Map<string, [string, string]>();
    const authorPairs = new Map<string, [string, string]>();
    let earliest = Infinity;
    for (const m of ordered) {
      threadPairs.set(k(m.source, keyOf.get(m.id)!), [m.source, keyOf.get(m.id)!]);
      const who = m.inReplyTo ? null : m.direction === 'inbound' ? m.authorKey : m.recipientKey;
      if (who) {
        authorPairs.set(k(m.source, who), [m.source, who]);
        earliest = Math.min(earliest, m.occurredAt);
      }
    }
    const tp = [...threadPairs.values()];
    const ap = [...authorPairs.values()];
    const rows = await lockTrackedItems(qr, {
      threadSources: tp.map((p) => p[0]),
      threadKeys: tp.map((p) => p[1]),
      authorSources: ap.map((p) => p[0]),
      authors: ap.map((p) => p[1]),
      since: new Date((Number.isFinite(earliest) ? earliest : Date.now()) - this.config.replyWindowSeconds * 1000).toISOString(),
    });

    const items: ItemState[] = rows.map(trackedItemOf);
    const byThread = new Map(items.map((i) => [k(i.source, i.threadKey), i]));
    const byAuthor = new Map<string, ItemState[]>();
    const indexAuthor = (i: ItemState) => {
      if (!i.authorKey) return;
      const key = k(i.source, i.authorKey.toLowerCase());
      const list = byAuthor.get(key);
      if (list) list.push(i);
      else byAuthor.set(key, [i]);
    };
    items.forEach(indexAuthor);
    const window = this.config.replyWindowSeconds * 1000;
    const recentOf = (source: string, who: string | null, t: number): ItemState | undefined => {
      if (!who) return undefined;
      let best: ItemState | undefined;
      for (const i of byAuthor.get(k(source, who)) ?? []) {
        if (i.lastInboundAt >= t - window && (!best || i.lastInboundAt > best.lastInboundAt)) best = i;
      }
      return best;
    };

    // second pass: events in the order they happened
    keyOf.clear();
    // replies of this batch that came before any item of their thread, and those addressed to an
    // author (every one: a complaint later in the batch may open a new item): not stored yet, so
    // the lookup of stored replies below cannot see one stamped within the skew before the complaint
    const earlyReplies = new Map<string, number[]>();
    const earlyAddressed = new Map<string, number[]>();
    const remember = (map: Map<string, number[]>, key: string, t: number) => {
      const list = map.get(key);
      if (list) list.push(t);
      else map.set(key, [t]);
    };
    // for the check after the commit (settle): replies that found no item, and whom replies address
    const settleThreads = new Map<string, [string, string]>();
    const settleAuthors = new Map<string, [string, string]>();
    let settleSince = Infinity;
    const joinedBy: [ItemState, TrackedMessage][] = [];
    for (const m of ordered) {
      const root = rootOf(m);
      keyOf.set(m.id, root);
      const t = m.occurredAt;
      if (m.direction === 'inbound') {
        if (!this.opens(m)) continue;
        let item = byThread.get(k(m.source, root));
        if (!item && !m.inReplyTo) item = recentOf(m.source, m.authorKey, t);
        if (item) {
          keyOf.set(m.id, item.threadKey);
          if (item.threadKey !== m.externalId) joinedBy.push([item, m]);
          item.dirty = true;
          item.score = Math.min(item.score, m.score);
          item.customerId ??= m.customerId;
          if (t >= item.lastInboundAt) {
            item.lastInboundAt = t;
            item.lastInteractionId = m.id;
          }
          if (item.status !== 'open') {
            // A new complaint in an answered or closed thread: the clock starts again.
            const { sla, due } = this.dueAt(t, item.department, item.source);
            Object.assign(item, { status: 'open', lastOpenedAt: t, slaSeconds: sla, dueAt: due, closedAt: null, closeReason: null, reopenedCount: item.reopenedCount + 1 });
          }
          continue;
        }
        const department = m.departments[0] ?? this.config.defaultDepartment;
        const { sla, due } = this.dueAt(t, department, m.source);
        const created: ItemState = {
          id: uuidv7(),
          isNew: true,
          dirty: true,
          source: m.source,
          threadKey: root,
          interactionId: m.id,
          lastInteractionId: m.id,
          authorKey: m.authorKey,
          customerId: m.customerId,
          department,
          intent: m.intent,
          score: m.score,
          status: 'open',
          openedAt: t,
          lastOpenedAt: t,
          lastInboundAt: t,
          slaSeconds: sla,
          dueAt: due,
          firstResponseAt: null,
          firstResponseSeconds: null,
          respondedBy: null,
          closedAt: null,
          closeReason: null,
          reopenedCount: 0,
        };
        items.push(created);
        if (root !== m.externalId) joinedBy.push([created, m]);
        byThread.set(k(created.source, created.threadKey), created);
        indexAuthor(created);
      } else {
        let item = byThread.get(k(m.source, root));
        if (!m.inReplyTo && m.recipientKey) {
          recipientKeys.set(m.id, m.recipientKey);
          remember(earlyAddressed, k(m.source, m.recipientKey), t);
          // every one: an item of the author newer than the one it finds may be committing now
          settleAuthors.set(k(m.source, m.recipientKey), [m.source, m.recipientKey]);
          settleSince = Math.min(settleSince, t - window);
        }
        if (!item && !m.inReplyTo) item = recentOf(m.source, m.recipientKey, t);
        if (!item) {
          if (m.inReplyTo) {
            remember(earlyReplies, k(m.source, root), t);
            settleThreads.set(k(m.source, root), [m.source, root]);
          }
          continue;
        }
        keyOf.set(m.id, item.threadKey);
        // the same skew whether the reply names the message or its author (REPLY_CLOCK_SKEW_MS)
        if (item.status !== 'open' || t < item.lastOpenedAt - REPLY_CLOCK_SKEW_MS) continue;
        item.dirty = true;
        item.status = 'answered';
        item.closedAt = Math.max(t, item.lastOpenedAt);
        item.closeReason = 'reply';
        if (item.firstResponseAt === null) {
          item.firstResponseAt = Math.max(t, item.openedAt);
          item.firstResponseSeconds = Math.round((item.firstResponseAt - item.openedAt) / 1000);
          item.respondedBy = 'reply';
        }
      }
    }
    // A company reply stored before the message it answers (out-of-order ingest: the reply names a
    // message not seen yet, and carries its thread, or names its author) answers the new item;
    // before, the item stayed open and was escalated although the customer had their answer. One
    // query, only for new items.
    const unanswered = items.filter((i) => i.isNew && i.status === 'open' && i.firstResponseAt === null);
    const answers = await this.storedAnswers(qr, unanswered, (i) => [
      ...(earlyReplies.get(k(i.source, i.threadKey)) ?? []),
      ...(i.authorKey ? (earlyAddressed.get(k(i.source, i.authorKey.toLowerCase())) ?? []) : []),
    ]);
    unanswered.forEach((i, n) => {
      const at = answers[n];
      if (at === null || at === undefined) return;
      Object.assign(i, { firstResponseAt: at, firstResponseSeconds: Math.round((at - i.openedAt) / 1000), respondedBy: 'reply' });
      // a complaint of this batch after that reply still waits for its answer
      if (at >= i.lastInboundAt) Object.assign(i, { status: 'answered', closedAt: at, closeReason: 'reply' });
    });
    for (const m of batch) {
      const key = keyOf.get(m.id)!;
      threadKeys.set(m.id, key === m.externalId ? null : key);
    }
    // new items still waiting for a first response: a reply committing meanwhile answers them
    const waiting = unanswered.filter((i) => i.firstResponseAt === null).map(({ source, threadKey, authorKey, openedAt, lastInboundAt }) => ({ source, threadKey, authorKey, openedAt, lastInboundAt }));
    const joined = joinedBy
      .filter(([i]) => i.status === 'open' && i.firstResponseAt === null && i.reopenedCount === 0)
      .map(([i, m]): [string, string, string] => [i.source, i.threadKey, m.externalId]);
    const followUp =
      waiting.length + settleThreads.size + settleAuthors.size + joined.length > 0
        ? { items: waiting, threads: [...settleThreads.values()], authors: [...settleAuthors.values()], since: settleSince, joined }
        : null;
    return { threadKeys, recipientKeys, items: items.filter((i) => i.dirty), followUp };
  }

  /**
   * After the batch's commit: answers the items that a company reply stored at the same moment by
   * another transaction answers. The batch's new items are looked up as at ingest (`storedAnswers`,
   * the same code and rule: in its thread, or addressed to its author within the reply window,
   * stamped no earlier than REPLY_CLOCK_SKEW_MS before it opened; the first response at the reply's
   * time), as if the reply had been stored first. For the batch's replies, the items of the threads
   * they found no item in, and the latest item of each author they address (the one such a reply
   * answers), are looked up the same way, as if the complaint had been stored first. Only items
   * open, never answered and never reopened (as a complaint opens one) change.
   *
   * Why it closes the gap: of two transactions, one storing a complaint that opens an item and the
   * other a reply that answers it, each missing the other's rows, each runs this after its own
   * commit, so the one that commits second runs it after the other's commit too and its statements
   * see both the item and the reply. The reply committing second finds the item by the reply's
   * thread or addressee; the complaint committing second finds the reply for its new item. When both
   * find it, the second finds it answered and changes nothing. A process that stops between its
   * commit and this check leaves the item open to the escalation job, which runs this check on the
   * items it claims before it escalates them.
   *
   * Cost: one statement for a batch with new items and no replies (the lookup of stored replies for
   * them, index probes per item), one more for the items of its replies; a transaction (lock, look
   * again, write) only when a reply answers one. Returns how many items it answered.
   */
  async settle(ds: DataSource, f: GapFollowUp | null, opts: { lockTimeoutMs?: number } = {}): Promise<number> {
    if (!f || f.items.length + f.threads.length + f.authors.length + (f.joined?.length ?? 0) === 0) return 0;
    // A reply to a message not the first of its thread, stored while that message was (by another
    // transaction), kept the message's id as its thread: each side names the item's thread by that id too
    const aliases = [...(f.joined ?? []), ...(await this.threadsOfParents(ds, f.threads))];
    const aliasThreads = aliases.map(([source, threadKey]): [string, string] => [source, threadKey]);
    // first without a lock or a transaction: mostly nothing answers, and that is all it costs
    const seen = f.threads.length + f.authors.length + aliases.length > 0 ? await this.itemsOfReplies(ds, { ...f, threads: [...f.threads, ...aliasThreads] }, false) : [];
    const found = await this.storedAnswers(ds, [...f.items, ...withAliases(seen, aliases)]);
    if (found.every((at) => at === null)) return 0;
    return inTransaction(ds, async (qr) => {
      // after a batch's commit, as long as its own transaction would wait for a lock (an item held by
      // a slow transaction): then it fails and only logs, and the escalation job checks again. Before,
      // it waited as long as the lock was held, and the batch was not acknowledged meanwhile
      if (opts.lockTimeoutMs) await limitLockWait(qr, opts.lockTimeoutMs);
      // again, locked, as the items are now (the batch's own by their threads and authors)
      const mine = new Set(f.items.map((i) => k(i.source, i.threadKey)));
      const rows = await this.itemsOfReplies(
        qr,
        {
          threads: [...f.threads, ...aliasThreads, ...f.items.map((i): [string, string] => [i.source, i.threadKey])],
          authors: [...f.authors, ...f.items.filter((i) => i.authorKey).map((i): [string, string] => [i.source, i.authorKey!.toLowerCase()])],
          since: Math.min(f.since, ...f.items.map((i) => i.lastInboundAt)),
        },
        true,
        // the batch's new items: addressed replies count whether or not the item is its author's latest, as at ingest
        (i) => mine.has(k(i.source, i.threadKey)),
      );
      const candidates = withAliases(rows, aliases);
      const answers = await this.storedAnswers(qr, candidates);
      // per item the earliest reply any of its candidates found
      const firstOf = new Map<ItemState, number>();
      candidates.forEach((c, n) => {
        const at = answers[n];
        if (at === null || at === undefined) return;
        firstOf.set(c.item, Math.min(firstOf.get(c.item) ?? Infinity, at));
      });
      const answered: ItemState[] = [];
      for (const [i, at] of firstOf) {
        // as for a new item at ingest: a message of the thread after that reply still waits for one
        Object.assign(i, { firstResponseAt: at, firstResponseSeconds: Math.round((at - i.openedAt) / 1000), respondedBy: 'reply' });
        if (at >= i.lastInboundAt) Object.assign(i, { status: 'answered', closedAt: at, closeReason: 'reply' });
        answered.push(i);
      }
      if (answered.length > 0) await updateItems(qr, answered);
      return answered.length;
    });
  }

  /**
   * For the threads of replies that found no item (each the id of the message the reply names, not
   * stored when the reply was): the thread that message belongs to now that it is stored, where it
   * is another (source, that thread, the message's id). One statement, a probe per thread.
   */
  private async threadsOfParents(db: Db, threads: GapFollowUp['threads']): Promise<[string, string, string][]> {
    if (threads.length === 0) return [];
    const found = await threadRoots(db, threads.map((t) => t[0]), threads.map((t) => t[1]));
    return found.filter((r) => r.root !== r.external_id).map((r): [string, string, string] => [r.source, r.root, r.external_id]);
  }

  /**
   * The items open, never answered and never reopened of the threads and the latest of each author
   * (`lockTrackedItems`, `lock`: locked), as candidates for `storedAnswers`: addressed replies count
   * only for an author's latest item, unless `anyOfAuthor` says otherwise.
   */
  private async itemsOfReplies(
    qr: Db,
    f: Pick<GapFollowUp, 'threads' | 'authors' | 'since'>,
    lock: boolean,
    anyOfAuthor: (i: ItemState) => boolean = () => false,
  ): Promise<(AnswerCandidate & { item: ItemState })[]> {
    const rows = await lockTrackedItems(
      qr,
      {
        threadSources: f.threads.map((p) => p[0]),
        threadKeys: f.threads.map((p) => p[1]),
        authorSources: f.authors.map((p) => p[0]),
        authors: f.authors.map((p) => p[1]),
        since: new Date(Number.isFinite(f.since) ? f.since : 0).toISOString(),
      },
      lock,
    );
    // per author asked for: the last inbound message of their latest item (as lockTrackedItems finds it)
    const asked = new Set(f.authors.map(([source, author]) => k(source, author)));
    const latest = new Map<string, number>();
    for (const r of rows) {
      const key = r.author_handle ? k(r.source, r.author_handle.toLowerCase()) : null;
      if (key && asked.has(key)) latest.set(key, Math.max(latest.get(key) ?? -Infinity, r.last_inbound_at.getTime()));
    }
    return rows
      .filter((r) => r.status === 'open' && r.first_response_at === null && r.reopened_count === 0)
      .map(trackedItemOf)
      .map((i) => {
        const who = i.authorKey ? k(i.source, i.authorKey.toLowerCase()) : null;
        const isLatest = who !== null && i.lastInboundAt >= f.since && latest.get(who) === i.lastInboundAt;
        return { source: i.source, threadKey: i.threadKey, authorKey: isLatest || anyOfAuthor(i) ? i.authorKey : null, openedAt: i.openedAt, lastInboundAt: i.lastInboundAt, item: i };
      });
  }

  /**
   * When company replies already stored (and `early` ones of the batch, not stored yet) first
   * answer new items, null where none does: the one rule of ingest and re-score. A reply answers
   * an item when it is in the item's thread, or names no message but the item's author and is
   * stamped within the reply window after the item's last inbound message; and is stamped no
   * earlier than REPLY_CLOCK_SKEW_MS before the item opened. One stamped within the skew before it
   * answers at the opening (0 s). One statement for all the items, each lookup on an index.
   */
  private async storedAnswers(qr: Db, items: readonly AnswerCandidate[], early: (i: AnswerCandidate) => number[] = () => []): Promise<(number | null)[]> {
    if (items.length === 0) return [];
    const window = this.config.replyWindowSeconds * 1000;
    const from = (i: AnswerCandidate) => i.openedAt - REPLY_CLOCK_SKEW_MS;
    const found = await firstReplies(qr, {
      sources: items.map((i) => i.source),
      roots: items.map((i) => i.threadKey),
      opened: items.map((i) => new Date(from(i)).toISOString()),
      authors: items.map((i) => i.authorKey?.toLowerCase() ?? null),
      until: items.map((i) => new Date(i.lastInboundAt + window).toISOString()),
    });
    // one row per item, in order (unnest keeps it: no join, no grouping)
    return items.map((i, n) => {
      let stamped = found[n]?.first?.getTime() ?? Infinity;
      for (const at of early(i)) if (at >= from(i) && at <= i.lastInboundAt + window && at < stamped) stamped = at;
      return stamped === Infinity ? null : Math.max(stamped, i.openedAt);
    });
  }

  /**
   * After a re-score: opens items for stored inbound messages that now open one (same rule as at
   * ingest) and whose thread has none, and lowers the score of open items to their new minimum.
   * An item that exists is never reopened or closed here: answered and closed threads stay so.
   * A company reply already stored answers a new item as it would have at ingest (`storedAnswers`,
   * the same code: the clock skew, replies addressed to its author); the item is answered unless a
   * message of its thread came after that reply, otherwise open, due by the SLA from when the
   * message happened. Threads are the reply chains stored with the messages (the author-window
   * join of live ingest is not replayed for old messages). Returns the customers whose open items
   * changed.
   */
  async applyRescored(qr: Pick<QueryRunner, 'query'>, batch: RescoredMessage[], openSince: number | null): Promise<{ opened: number; customers: string[] }> {
    const unhappy = batch.filter((m) => this.opens(m));
    if (unhappy.length === 0) return { opened: 0, customers: [] };
    const rootOf = (m: RescoredMessage) => m.threadKey ?? m.externalId;
    const threads = new Map<string, RescoredMessage[]>();
    for (const m of [...unhappy].sort((a, b) => a.occurredAt - b.occurredAt)) {
      const key = k(m.source, rootOf(m));
      const list = threads.get(key);
      if (list) list.push(m);
      else threads.set(key, [m]);
    }
    const pairs = [...threads.values()].map((ms) => ms[0]!);
    const existing = await lockItemsOfThreads(qr, pairs.map((m) => m.source), pairs.map(rootOf));
    const customers = new Set<string>();
    const lowered = existing.filter((r) => r.status === 'open');
    if (lowered.length > 0) {
      const min = lowered.map((r) => Math.min(...threads.get(k(r.source, r.thread_key))!.map((m) => m.score)));
      await lowerItemScores(qr, lowered.map((r) => r.id), min);
    }
    const known = new Set(existing.map((r) => k(r.source, r.thread_key)));
    const fresh = [...threads.entries()]
      .filter(([key]) => !known.has(key))
      .map(([, ms]) => ms.filter((m) => openSince === null || m.occurredAt >= openSince))
      .filter((ms) => ms.length > 0);
    if (fresh.length === 0) return { opened: 0, customers: [] };

    // the replies already stored answer it as they would have at ingest (storedAnswers: the skew,
    // replies addressed to the author); before, only replies in its thread stamped after it did
    const answers = await this.storedAnswers(
      qr,
      fresh.map((ms) => ({ source: ms[0]!.source, threadKey: rootOf(ms[0]!), authorKey: ms[0]!.authorKey, openedAt: ms[0]!.occurredAt, lastInboundAt: ms.at(-1)!.occurredAt })),
    );
    const rows: RescoredItem[] = fresh.map((ms, n) => {
      const first = ms[0]!;
      const last = ms.at(-1)!;
      const department = first.departments[0] ?? this.config.defaultDepartment;
      const { sla, due } = this.dueAt(first.occurredAt, department, first.source);
      const reply = answers[n] ?? null;
      // as at ingest: a message of the thread after the answer still waits for one
      const answered = reply !== null && reply >= last.occurredAt;
      if (first.customerId && !answered) customers.add(first.customerId);
      return {
        id: uuidv7(),
        source: first.source,
        threadKey: rootOf(first),
        interactionId: first.id,
        lastInteractionId: last.id,
        author: first.authorKey,
        customerId: first.customerId,
        department,
        intent: first.intent,
        score: Math.min(...ms.map((m) => m.score)),
        status: answered ? 'answered' : 'open',
        openedAt: first.occurredAt,
        lastInboundAt: last.occurredAt,
        sla,
        due,
        responseAt: reply,
        responseSeconds: reply === null ? null : Math.round((reply - first.occurredAt) / 1000),
      };
    });
    const opened = await insertRescoredItems(qr, rows);
    return { opened, customers: [...customers] };
  }

  /** Writes the plan; `accepted` are the interaction ids that were actually inserted. */
  async write(qr: Pick<QueryRunner, 'query'>, plan: GapPlan, accepted: Set<string>): Promise<void> {
    const fresh = plan.items.filter((i) => i.isNew && accepted.has(i.interactionId));
    const changed = plan.items.filter((i) => !i.isNew);
    // a candidate of this batch that was not stored (a duplicate) leaves the last interaction as it was
    for (const i of changed) if (i.lastInteractionId !== i.storedLastInteractionId && !accepted.has(i.lastInteractionId)) i.lastInteractionId = i.storedLastInteractionId ?? i.interactionId;
    if (fresh.length > 0) {
      await insertItems(qr, fresh, accepted);
    }
    if (changed.length > 0) {
      await updateItems(qr, changed);
    }
  }
}

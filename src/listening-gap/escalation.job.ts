import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { advisoryUnlock, tryAdvisoryLock } from '../db/sql';
import { CASE_DESCRIPTION_MAX_CHARS, type CaseInput, type CrmClient, type CrmSystem } from '../crm/crm.port';
import { enqueueOutbox } from '../outbox/outbox';
import { OUTBOX_TOPICS, type OutboxRow } from '../outbox/outbox-events';
import { systemClock, type Clock } from '../shared/clock';
import type { Logger } from '../shared/logger';
import { cutText } from '../shared/text';
import { TaskRunner, type TaskDeps } from '../shared/task-runner';
import { escalationTargetFor, type ListeningGapConfig } from './listening-gap.config';
import * as repo from './listening-gap.repository';
import { ListeningGapTracker } from './listening-gap.tracker';

/** Advisory-lock key of the escalation leader (one runner at a time across replicas). */
const ESCALATION_LOCK = 7_401_001;
/** A claim older than this is taken over: its runner died between the claim and the commit. */
const LEASE_SECONDS = 300;
const BATCH = 50;

export interface EscalationReport {
  claimed: number;
  escalated: number;
  failed: number;
  /** overdue items that passed EARSHOT_GAP_ESCALATION_HORIZON_HOURS since the previous run, not escalated */
  skipped: number;
  /** false: another replica holds the leader lock */
  ran: boolean;
}

type Claimed = repo.ClaimedItem;


/**
 * Escalates overdue listening items: a Salesforce Case or HubSpot ticket (per department) linked
 * to the customer's CRM record and owner, and one `listening-gap.v1` event.
 *
 * Must stay true — never two cases or two events for one item, across restarts and replicas:
 * 1. an item is claimed by a guarded UPDATE (`escalation_state` null, or a lapsed lease) with a
 *    fresh claim token, under a leader advisory lock;
 * 2. the CRM call is an upsert keyed by the item id, so a retry after a crash between the call
 *    and the commit finds the record it created;
 * 3. the move to `done` and the outbox row are one transaction, conditional on the claim token,
 *    and `done` is final.
 * An item due longer ago than the horizon (`escalationHorizonSeconds`) is not escalated: a backfill
 * of old complaints made a case and an event for each. It is counted once (a metric, one log line
 * per run) and otherwise stays what it is in the figures; a new complaint reopening it with a new
 * due time is escalated as any other.
 * "Overdue", leases and `escalatedAt` are read from the injected clock. An item answered or closed
 * after the claim, before its first CRM call, gets no case (its claim is given up); one answered
 * during the call keeps the case it got, recorded on the item.
 */
export class EscalationJob {
  private readonly clients = new Map<CrmSystem, CrmClient>();
  /** what "overdue", leases and escalatedAt are measured by: tests move it instead of back-dating rows */
  private readonly clock: Clock;
  private readonly onSkipped?: (n: number) => void;
  /** looks for a stored reply that answers an item before it is escalated (the same code as ingest) */
  private readonly gap: ListeningGapTracker;
  /** the horizon of the previous run and the newest item then: what was counted as skipped already */
  private counted: { horizon: Date; maxId: string | null } | null = null;
  /** one pass every escalationIntervalMs on the sync role */
  readonly task: TaskRunner<EscalationReport>;

  constructor(
    private readonly ds: DataSource,
    clients: CrmClient[],
    private readonly config: ListeningGapConfig,
    private readonly publicUrl: string,
    private readonly log: Logger,
    deps: TaskDeps & { onSkipped?: (n: number) => void } = {},
  ) {
    for (const c of clients) this.clients.set(c.system, c);
    this.clock = deps.clock ?? systemClock;
    this.onSkipped = deps.onSkipped;
    this.gap = new ListeningGapTracker(config);
    this.task = new TaskRunner({
      name: 'escalation',
      intervalMs: config.escalationIntervalMs,
      firstRunAfterMs: Math.min(1_000, config.escalationIntervalMs),
      ...deps,
      log,
      run: ({ stopping }) => this.runOnce(stopping),
    });
  }

  /** Runs every `escalationIntervalMs` until stop(); does nothing when escalation is off. */
  start(): void {
    if (!this.config.escalation) {
      this.log.info('listening-gap escalation is off (EARSHOT_GAP_ESCALATION=off)');
      return;
    }
    this.task.start();
  }

  async stop(): Promise<void> {
    await this.task.stop();
  }

  /** One pass over every overdue item not escalated yet, as the leader; a standby returns ran=false. */
  async runOnce(stopping: () => boolean = () => this.task.isStopped): Promise<EscalationReport> {
    const report: EscalationReport = { claimed: 0, escalated: 0, failed: 0, skipped: 0, ran: false };
    const qr = this.ds.createQueryRunner();
    await qr.connect();
    try {
      if (!(await tryAdvisoryLock(qr, ESCALATION_LOCK))) return report;
      report.ran = true;
      try {
        report.skipped = await this.countSkipped();
        // Each item at most once per run: a failed one's lease may lapse while the run goes on (a
        // slow or refusing CRM), and before, the run claimed it again and never ended.
        const tried: string[] = [];
        for (;;) {
          const claim = randomUUID();
          const claimed = await this.claim(claim, tried);
          for (const item of claimed) tried.push(item.id);
          report.claimed += claimed.length;
          for (const item of claimed) {
            const outcome = await this.escalate(item, claim);
            if (outcome === true) report.escalated++;
            else if (outcome === false) report.failed++;
          }
          if (claimed.length < BATCH || stopping()) break;
        }
      } finally {
        await advisoryUnlock(qr, ESCALATION_LOCK);
      }
    } finally {
      await qr.release();
    }
    if (report.claimed > 0) this.log.info(report, 'listening-gap escalation run');
    if (report.skipped > 0) {
      this.log.info({ skipped: report.skipped, horizonHours: this.config.escalationHorizonSeconds / 3600 }, 'overdue listening items past the escalation horizon (EARSHOT_GAP_ESCALATION_HORIZON_HOURS) not escalated');
    }
    return report;
  }

  /** The oldest due time still escalated at the clock's now; null without a horizon. */
  private horizon(): Date | null {
    const h = this.config.escalationHorizonSeconds;
    return h > 0 ? new Date(this.clock.now() - h * 1000) : null;
  }

  /** Counts (metric) the items that passed the horizon since the previous run, each once. */
  private async countSkipped(): Promise<number> {
    const horizon = this.horizon();
    if (!horizon) return 0;
    const previous = this.counted;
    const { n, maxId } = await repo.passedHorizon(this.ds, horizon, previous?.horizon ?? null, previous?.maxId ?? null);
    // a clock that steps back does not count the same range again
    this.counted = { horizon: previous && previous.horizon > horizon ? previous.horizon : horizon, maxId };
    if (n > 0) this.onSkipped?.(n);
    return n;
  }

  private async claim(claim: string, exclude: readonly string[]): Promise<Claimed[]> {
    const ids = await repo.claimOverdueItems(this.ds, claim, this.clock.date(), this.horizon(), LEASE_SECONDS, BATCH, exclude);
    if (ids.length === 0) return [];
    const items = await repo.claimedItems(this.ds, ids);
    await this.answeredMeanwhile(items);
    return items;
  }

  /**
   * Answers the claimed items that a stored reply answers (ListeningGapTracker.settle, the check
   * ingest runs after each commit): one a process stopped before checking, between its commit and
   * its check, when a reply and the complaint were stored at the same moment by two transactions.
   * `escalate` then gives up their claim as for any item answered since the claim. Before, such an
   * item got a case and an event although the customer had their answer.
   */
  private async answeredMeanwhile(items: readonly Claimed[]): Promise<void> {
    try {
      const n = await this.gap.settle(this.ds, {
        // as for the items a batch's replies find: a reply addressed to the author answers their latest item only
        items: [],
        threads: items.map((i) => [i.source, i.thread_key]),
        authors: items.filter((i) => i.author_handle !== null).map((i) => [i.source, i.author_handle!.toLowerCase()]),
        since: Math.min(...items.map((i) => i.last_inbound_at.getTime())),
        // a reply to the message that opened the item, stored while that message was, names it as its
        // thread when it is not the thread's first (a complaint under a brand post)
        joined: items.filter((i) => i.external_id !== i.thread_key).map((i): [string, string, string] => [i.source, i.thread_key, i.external_id]),
      });
      if (n > 0) this.log.info({ answered: n }, 'overdue listening items answered by a stored reply before their escalation');
    } catch (e) {
      // the escalation goes on as before
      this.log.warn({ err: (e as Error).message }, 'looking up stored replies for overdue listening items failed');
    }
  }

  /** true: escalated; false: failed (or taken over); null: answered or closed since the claim, claim given up. */
  private async escalate(item: Claimed, claim: string): Promise<boolean | null> {
    const target = escalationTargetFor(this.config, item.department);
    const client = target.system === 'none' ? undefined : this.clients.get(target.system);
    try {
      // The claim read the batch before the CRM calls of the items ahead of this one, which take
      // a while (up to minutes while the API budget paces them). Before, an item answered
      // meanwhile still got its case and its event.
      if (await repo.releaseStaleClaim(this.ds, item.id, claim, this.clock.date())) return null;
      let crmCase: { system: CrmSystem; id: string; url: string | null } | null = null;
      if (client) {
        const input = await this.caseInput(item, client.system, target.ownerId);
        const ref = await client.createCase(input);
        crmCase = { system: client.system, id: ref.externalId, url: ref.url };
      } else if (target.system !== 'none') {
        this.log.warn({ item: item.id, system: target.system }, 'escalation target CRM is not configured; publishing the event without a case');
      }
      const escalatedAt = this.clock.date();
      return await this.ds.transaction(async (em) => {
        const done = await repo.escalationDone(em, item.id, claim, escalatedAt, crmCase);
        // Our lease lapsed and another runner took over: it records (and announces) the same case.
        if (done === null) return false;
        if (done === 'erased') {
          // The customer was erased during the CRM call: no event with their text; the case just
          // made goes to the erasure's CRM clean-up. Before, both outlived the erasure.
          const queued = crmCase && (await repo.queueErasedCase(em, item.customer_id, { system: crmCase.system, objectType: crmCase.system === 'salesforce' ? 'Case' : 'tickets', itemId: item.id, origin: item.source }));
          if (crmCase && !queued) this.log.warn({ item: item.id, system: crmCase.system }, 'escalated item was erased meanwhile; no erasure request found to clean its case up');
          return false;
        }
        await enqueueOutbox(em, [this.event(item, escalatedAt, crmCase)]);
        return true;
      });
    } catch (e) {
      const message = (e as Error).message.slice(0, 1000);
      this.log.warn({ item: item.id, err: message }, 'escalation failed; retried when the lease lapses');
      // Keep the claim (state pending) so a retry upserts the same record; shorten the lease for a sooner retry.
      await repo.escalationFailed(this.ds, item.id, claim, message, this.clock.date());
      return false;
    }
  }

  /** Links the case to the customer's person record (and its organisation) in that CRM, and to its owner. */
  private async caseInput(item: Claimed, system: CrmSystem, fallbackOwner: string | null): Promise<CaseInput> {
    const records = item.customer_id ? await repo.customerCrmRecords(this.ds, item.customer_id, system) : [];
    const person = records.find((r) => r.object_type === 'Contact' || r.object_type === 'contacts');
    const org = records.find((r) => r.object_type === 'Account' || r.object_type === 'companies');
    const lead = records.find((r) => r.object_type === 'Lead');
    const overdueH = Math.max(0, (this.clock.now() - item.due_at.getTime()) / 3_600_000);
    const head = `${item.display_name ?? 'A customer'} wrote on ${item.source} at ${item.occurred_at.toISOString()} and has had no answer:`;
    const tail = [
      item.url ? `Original: ${item.url}` : null,
      `Department: ${item.department}; intent: ${item.intent}; sentiment ${item.sentiment_score.toFixed(2)}.`,
      `First response was due ${item.due_at.toISOString()} (SLA ${Math.round(item.sla_seconds / 60)} min); ${overdueH.toFixed(1)} h overdue.`,
      lead ? `Salesforce Lead: ${lead.external_id}` : null,
      item.customer_id ? `Earshot: ${this.publicUrl}/customers/${item.customer_id}` : null,
    ]
      .filter((l) => l !== null)
      .join('\n');
    const description = `${head}\n\n${caseText(item.text, CASE_DESCRIPTION_MAX_CHARS - head.length - tail.length - 4)}\n\n${tail}`;
    return {
      idempotencyKey: item.id,
      subject: `Unanswered ${item.intent.replace('_', ' ')} on ${item.source} (${item.department})`,
      description,
      origin: item.source,
      priority: item.sentiment_score <= -0.5 || item.intent === 'churn_threat' ? 'high' : 'medium',
      contactId: person?.external_id ?? null,
      accountId: person?.account_id ?? org?.external_id ?? null,
      ownerId: person?.owner_id ?? org?.owner_id ?? lead?.owner_id ?? fallbackOwner,
    };
  }

  private event(item: Claimed, escalatedAt: Date, crmCase: { system: CrmSystem; id: string; url: string | null } | null): OutboxRow {
    const eventId = randomUUID();
    return {
      topic: OUTBOX_TOPICS.listeningGap.name,
      key: item.id,
      headers: { 'schema-version': OUTBOX_TOPICS.listeningGap.version, 'event-id': eventId, 'content-type': 'application/json' },
      payload: {
        schemaVersion: 1,
        eventId,
        type: 'item.escalated',
        itemId: item.id,
        customerId: item.customer_id,
        department: item.department,
        assignedUser: item.assigned_user,
        channel: item.source,
        intent: item.intent,
        sentimentScore: item.sentiment_score,
        openedAt: item.opened_at.toISOString(),
        dueAt: item.due_at.toISOString(),
        slaSeconds: item.sla_seconds,
        escalatedAt: escalatedAt.toISOString(),
        overdueSeconds: Math.max(0, Math.round((escalatedAt.getTime() - item.due_at.getTime()) / 1000)),
        interaction: {
          id: item.interaction_id,
          source: item.source,
          externalId: item.external_id,
          url: item.url,
          text: item.text,
          occurredAt: item.occurred_at.toISOString(),
        },
        case: crmCase,
        url: item.customer_id ? `${this.publicUrl}/customers/${item.customer_id}` : this.publicUrl,
      },
    };
  }
}

/**
 * The customer's text in a case description of limited room: whole when it fits, else its start
 * and a line saying how long it was, so that the lines after it (the SLA, the link to Earshot)
 * always reach the CRM. Before, the whole description was cut at the CRM's limit, and a long
 * review or transcript took the link with it.
 */
export function caseText(text: string, room: number): string {
  if (text.length <= room) return text;
  const note = `\n[… cut: the message has ${text.length} characters; the whole text is in Earshot]`;
  return `${cutText(text, Math.max(0, room - note.length))}${note}`;
}

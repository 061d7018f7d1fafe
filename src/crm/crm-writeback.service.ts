import { Counter, Gauge, type Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import { systemClock, type Clock } from '../shared/clock';
import type { Logger } from '../shared/logger';
import { TaskRunner, type TaskDeps } from '../shared/task-runner';
import type { CrmConfig } from './crm.config';
import { CrmBudgetExhausted, CrmRetryLater, withWaitDeadline } from './crm-budget';
import { outcomesBeforeStop, type CrmClient, type CrmSystem, type WriteBackKey, type WriteBackOutcome, type WriteBackUpdate, type WriteBackValues } from './crm.port';
import * as repo from './crm.repository';
import { utcDay } from '../sentiment/rollups.repository';
import type { DesiredRow } from './crm.repository';

export type { DesiredRow } from './crm.repository';

export interface WriteBackRunReport {
  customers: number;
  records: number;
  written: number;
  failed: number;
  unchanged: number;
  /** HTTP calls spent, per system */
  apiCalls: Partial<Record<CrmSystem, number>>;
  budgetExhausted: boolean;
  /** systems that asked (Retry-After) for no call before a time, and that time */
  pausedUntil: Partial<Record<CrmSystem, Date>>;
}

const DAY_MS = 86_400_000;
/** records a trend refresh reads per statement */
const TREND_PAGE = 5_000;
const round = (n: number | null, digits = 3) => (n === null ? null : Math.round(n * 10 ** digits) / 10 ** digits);
const KEYS: WriteBackKey[] = ['score', 'label', 'trend', 'openComplaints', 'lastInteraction', 'url'];
/**
 * Passes after which a customer whose records the CRM itself keeps refusing (a validation rule, a
 * lock that never clears) is given up: with the queue's backoff (1 s doubling) the last try comes
 * about 34 minutes after the first. Failed calls (network, 5xx, a missing field refusing the whole
 * call) are not counted: an outage or a setup mistake must not drop values, only delay them.
 */
export const MAX_RECORD_ATTEMPTS = 12;

/** The values a CRM record should show for its customer. */
export function desiredValues(r: Pick<DesiredRow, 'customer_id' | 'sentiment_score' | 'sentiment_label' | 'sentiment_trend' | 'last_interaction_at' | 'open_complaints'>, publicUrl: string): WriteBackValues {
  return {
    score: round(r.sentiment_score),
    label: r.sentiment_label,
    trend: round(r.sentiment_trend),
    openComplaints: Number(r.open_complaints),
    lastInteraction: r.last_interaction_at ? new Date(r.last_interaction_at).toISOString() : null,
    url: `${publicUrl}/customers/${r.customer_id}`,
  };
}

/** Only what differs from what was last written (everything when nothing was). */
export function changedValues(desired: WriteBackValues, written: Partial<WriteBackValues> | null): Partial<WriteBackValues> {
  const out: Partial<WriteBackValues> = {};
  for (const k of KEYS) {
    if (!written || !(k in written) || written[k] !== desired[k]) (out as Record<string, unknown>)[k] = desired[k];
  }
  return out;
}

/**
 * Writes customers' sentiment onto their CRM records, from the `crm_writeback` outbox that
 * database triggers fill (migrations/1764300000000-CrmSync.ts). A pass leases a batch of due
 * customers, computes each live record's values, sends only those that changed since the last
 * successful write (crm_record.written_values), grouped per system and object in the largest
 * batches each API takes, then records per-record outcomes.
 *
 * Must stay true: a queue row is removed only when every record of the customer was written (or
 * failed for good), and only if the customer was not enqueued again meanwhile; a crash leaves the
 * lease to expire and the next pass redoes the batch, sending nothing already written; a record
 * that failed is retried with backoff (one the CRM itself refused, MAX_RECORD_ATTEMPTS times; a failed
 * call, until it goes through); a spent budget postpones that system's records to the next window,
 * and a Retry-After longer than a call waits in place postpones them until it passes, with no call
 * to that system before; every pass with records not written logs one warning per system and object.
 *
 * The 30-day trend moves while a customer stays quiet (days leave its windows), and nothing then
 * changes that would queue the customer: once a day (`trendRefresh`, the first run at start) every
 * written record whose trend is no longer the trend of the day queues its customer again.
 */
export class CrmWritebackService {
  private readonly clients = new Map<CrmSystem, CrmClient>();
  /** polls the queue every writeBackPollMs, draining it while passes find work */
  readonly task: TaskRunner<WriteBackRunReport>;
  /** daily: queues customers whose records show a trend that has since moved */
  readonly trendRefresh: TaskRunner<number>;
  private readonly clock: Clock;
  /** records given up after MAX_RECORD_ATTEMPTS refusals, by system and object */
  private readonly givenUp: Counter<'system' | 'object'> | null = null;

  constructor(
    private readonly ds: DataSource,
    clients: CrmClient[],
    private readonly config: Pick<CrmConfig, 'writeBack' | 'writeBackPollMs' | 'writeBackLeaseMs'>,
    private readonly publicUrl: string,
    private readonly log: Logger,
    private readonly batchCustomers = 2_000,
    deps: TaskDeps = {},
    registry?: Registry,
  ) {
    for (const c of clients) this.clients.set(c.system, c);
    if (registry) {
      this.givenUp = new Counter({
        name: 'earshot_crm_writeback_given_up_total',
        help: `CRM records whose write-back was given up after the CRM refused them ${MAX_RECORD_ATTEMPTS} times (a validation rule, a lock that never clears), by system and object; written again on the customer's next change`,
        labelNames: ['system', 'object'] as const,
        registers: [registry],
      });
      const paused = new Gauge({
        name: 'earshot_crm_paused_until_seconds',
        help: 'Unix time until which a CRM asked (Retry-After, or a backoff after a 429) that no call be sent to it, by system; 0 when not paused',
        labelNames: ['system'] as const,
        registers: [registry],
        collect: () => {
          for (const c of this.clients.values()) paused.labels(c.system).set((c.budget.snapshot().pausedUntil?.getTime() ?? 0) / 1000);
        },
      });
    }
    this.clock = deps.clock ?? systemClock;
    this.task = new TaskRunner({
      name: 'crm-writeback',
      intervalMs: config.writeBackPollMs,
      ...deps,
      log,
      run: () => this.runOnce(),
      again: (r) => r.customers > 0 && !r.budgetExhausted && Object.keys(r.pausedUntil).length === 0,
    });
    this.trendRefresh = new TaskRunner({ name: 'crm-trend-refresh', intervalMs: DAY_MS, ...deps, log, run: ({ stopping }) => this.refreshTrends(stopping) });
  }

  /** Polls the queue, and refreshes trends daily, until stop(); a no-op with write-back off or no CRM configured. */
  start(): void {
    if (!this.config.writeBack || this.clients.size === 0) return;
    this.task.start();
    this.trendRefresh.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.task.stop(), this.trendRefresh.stop()]);
  }

  /**
   * Queues the customers of every written live record whose trend, rounded as it is written, is no
   * longer the customer's trend today (the injected clock's UTC day), in pages of TREND_PAGE
   * records by id; the write-back's next poll sends the new trend (and nothing unchanged). Returns
   * how many customers it queued (one with records on two pages counts twice).
   */
  async refreshTrends(stopping: () => boolean = () => false): Promise<number> {
    const today = utcDay(this.clock.now());
    const t0 = Date.now();
    let after = repo.FIRST_RECORD_ID;
    let records = 0;
    let queued = 0;
    for (;;) {
      if (stopping()) break;
      const page = await repo.trendPage(this.ds, today, after, TREND_PAGE);
      records += page.length;
      // compared as the write-back compares (changedValues): a stored value that is not the number
      // or null it wrote is stale too, never a cast that fails the walk. A record of a CRM or
      // object no longer written back is left alone, as the write-back leaves it.
      const stale = [...new Set(page.filter((r) => round(r.trend) !== r.written_trend && this.writesBack(r.system, r.object_type)).map((r) => r.customer_id))];
      if (stale.length) {
        await repo.enqueueWriteback(this.ds, stale);
        queued += stale.length;
        this.log.info({ records, queued }, 'CRM trend refresh progress');
      }
      if (page.length < TREND_PAGE) break;
      after = page[page.length - 1]!.record_id;
    }
    this.log.info({ records, queued, ms: Date.now() - t0 }, 'CRM trend refresh finished');
    return queued;
  }

  /** True when records of this system and object get written back. */
  private writesBack(system: CrmSystem, objectType: string): boolean {
    return this.clients.get(system)?.writeBackObjects.includes(objectType) ?? false;
  }

  async pending(): Promise<number> {
    return repo.writebackQueueLength(this.ds);
  }

  /** One pass over at most `batchCustomers` due customers. */
  async runOnce(): Promise<WriteBackRunReport> {
    const report: WriteBackRunReport = { customers: 0, records: 0, written: 0, failed: 0, unchanged: 0, apiCalls: {}, budgetExhausted: false, pausedUntil: {} };
    // Leases and backoff run on the injected clock (tests move it instead of sleeping).
    const now = this.clock.date();
    const claimed = await repo.claimWriteback(this.ds, this.batchCustomers, this.config.writeBackLeaseMs, now);
    const lease = this.config.writeBackLeaseMs;
    const leaseEnd = now.getTime() + lease - Math.min(5_000, Math.floor(lease / 10));
    if (claimed.length === 0) return report;
    report.customers = claimed.length;
    const ids = claimed.map((c) => c.customer_id);

    // A merged-away customer's records have moved to the survivor (its own trigger enqueued it).
    const rows = await repo.desiredRows(this.ds, ids, utcDay(now.getTime()));
    const retry = new Map<string, string>();
    const groups = new Map<string, { client: CrmClient; objectType: string; items: { row: DesiredRow; desired: WriteBackValues; update: WriteBackUpdate }[] }>();
    for (const row of rows) {
      if (!this.writesBack(row.system, row.object_type)) continue;
      const client = this.clients.get(row.system)!;
      report.records++;
      const desired = desiredValues(row, this.publicUrl);
      const values = changedValues(desired, row.written_values);
      if (Object.keys(values).length === 0) {
        report.unchanged++;
        continue;
      }
      const key = `${row.system}\u0000${row.object_type}`;
      const g = groups.get(key) ?? { client, objectType: row.object_type, items: [] };
      g.items.push({ row, desired, update: { externalId: row.external_id, values } });
      groups.set(key, g);
    }

    const done: { id: string; values: Partial<WriteBackValues> }[] = [];
    const failed: { id: string; error: string }[] = [];
    /** customers with a retriable failure of a whole call: never given up */
    const callFailed = new Set<string>();
    /** refused records, per system and object, for one warning per pass */
    const refused = new Map<string, { system: CrmSystem; objectType: string; records: number; errors: Set<string>; sample: string[] }>();
    /** records the CRM refused this pass (retriable, the record itself), per customer */
    const refusedOf = new Map<string, { system: CrmSystem; objectType: string }[]>();
    /** systems not to call before a time (a spent budget, a Retry-After), and the time */
    const held = new Map<CrmSystem, Date>();
    /** customers with records postponed to such a time: the latest of their times */
    const notBefore = new Map<string, Date>();
    const postpone = (customerId: string, until: Date, why: string) => {
      retry.set(customerId, why);
      const t = notBefore.get(customerId);
      if (!t || t < until) notBefore.set(customerId, until);
    };
    for (const g of groups.values()) {
      const heldUntil = held.get(g.client.system);
      if (heldUntil) {
        for (const it of g.items) postpone(it.row.customer_id, heldUntil, `waiting until ${heldUntil.toISOString()} to call ${g.client.system} again`);
        continue;
      }
      const before = g.client.budget.snapshot().usedToday;
      const outcome = (o: WriteBackOutcome, it: (typeof g.items)[number]) => {
        if (o.ok) {
          done.push({ id: it.row.record_id, values: it.desired });
          report.written++;
        } else {
          failed.push({ id: it.row.record_id, error: o.error ?? 'failed' });
          report.failed++;
          if (o.retriable !== false) retry.set(it.row.customer_id, o.error ?? 'failed');
          if (o.retriable !== false && o.scope !== 'record') callFailed.add(it.row.customer_id);
          if (o.retriable !== false && o.scope === 'record') refusedOf.set(it.row.customer_id, [...(refusedOf.get(it.row.customer_id) ?? []), { system: g.client.system, objectType: g.objectType }]);
          const key = `${g.client.system}\u0000${g.objectType}`;
          const r = refused.get(key) ?? { system: g.client.system, objectType: g.objectType, records: 0, errors: new Set<string>(), sample: [] };
          r.records++;
          if (r.errors.size < 5) r.errors.add((o.error ?? 'failed').slice(0, 300));
          if (r.sample.length < 5) r.sample.push(it.row.external_id);
          refused.set(key, r);
        }
      };
      try {
        // No in-place wait of the calls outlives the lease (a margin left to record the outcomes):
        // a longer one stops this system's calls and postpones its records instead.
        const outcomes = await withWaitDeadline(leaseEnd, () => g.client.writeBack(g.objectType, g.items.map((i) => i.update)));
        outcomes.forEach((o, k) => outcome(o, g.items[k]!));
      } catch (e) {
        if (!(e instanceof CrmBudgetExhausted)) throw e;
        // The calls before the stop went through: their outcomes are recorded, and only the
        // records not sent wait (a pass of several calls used to send them all again after it).
        const sent = new Map((outcomesBeforeStop.get(e) ?? []).map((o) => [o.externalId, o]));
        const rest = g.items.filter((it) => {
          const o = sent.get(it.update.externalId);
          if (o) outcome(o, it);
          return !o;
        });
        // Only this system waits: the other CRM's records are written meanwhile. Nothing is
        // dropped: the customers come back at that time, and no call to this system is made
        // before (a Retry-After used to fail the call and come back a second later).
        held.set(g.client.system, e.until);
        for (const it of rest) postpone(it.row.customer_id, e.until, e.message);
        if (e instanceof CrmRetryLater) {
          report.pausedUntil[g.client.system] = e.until;
          this.log.warn({ system: g.client.system, objectType: g.objectType, records: rest.length, until: e.until.toISOString(), reason: e.message }, 'CRM write-back paused: the CRM asked to wait (Retry-After); no call to it until then');
        } else {
          report.budgetExhausted = true;
          this.log.warn({ system: g.client.system, until: e.until }, 'CRM write-back paused: daily API budget spent');
        }
      } finally {
        report.apiCalls[g.client.system] = (report.apiCalls[g.client.system] ?? 0) + g.client.budget.snapshot().usedToday - before;
      }
    }

    if (done.length) {
      await repo.recordsWritten(this.ds, done);
    }
    if (failed.length) {
      await repo.recordsFailed(this.ds, failed);
    }
    for (const r of refused.values()) {
      // Failures were visible only at debug level (and in crm_record.writeback_error): a missing
      // field or property, or a validation rule, failed every record without a word in the logs.
      this.log.warn({ system: r.system, objectType: r.objectType, records: r.records, errors: [...r.errors], externalIds: r.sample }, 'CRM write-back: records not written');
    }
    // A customer whose records the CRM refused MAX_RECORD_ATTEMPTS times is released: the error stays
    // on the record (crm_record.writeback_error) and its next change queues it again.
    const givenUp = claimed.filter((c) => retry.has(c.customer_id) && !callFailed.has(c.customer_id) && !notBefore.has(c.customer_id) && c.attempts + 1 >= MAX_RECORD_ATTEMPTS);
    for (const c of givenUp) {
      this.log.warn({ customerId: c.customer_id, attempts: c.attempts + 1, error: retry.get(c.customer_id) }, 'CRM write-back: giving up on records the CRM keeps refusing until the customer changes again');
      for (const r of refusedOf.get(c.customer_id) ?? []) this.givenUp?.labels(r.system, r.objectType).inc();
      retry.delete(c.customer_id);
    }
    const finished = claimed.filter((c) => !retry.has(c.customer_id));
    if (finished.length) {
      // Rows enqueued again since the claim (a newer change) stay; locked ones are being re-enqueued.
      // enqueued_at travels as text: a JS Date would drop the microseconds the comparison needs.
      await repo.releaseWriteback(this.ds, finished);
    }
    if (givenUp.length) {
      // A customer given up on that changed since the claim stays queued for its change: with a
      // fresh count, as a change after the release would have (it used to keep the spent count and
      // get one try before it was given up again).
      await repo.restartWritebackAttempts(this.ds, givenUp);
    }
    const again = claimed.filter((c) => retry.has(c.customer_id));
    if (again.length) {
      await repo.retryWriteback(
        this.ds,
        again.map((c) => ({ customerId: c.customer_id, error: retry.get(c.customer_id)!, until: notBefore.get(c.customer_id) ?? null })),
        this.clock.date(),
      );
    }
    this.log.debug({ ...report }, 'CRM write-back pass');
    return report;
  }
}

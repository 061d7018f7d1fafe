import type { DataSource } from 'typeorm';
import { systemClock, type Clock } from '../shared/clock';
import type { Logger } from '../shared/logger';
import { TaskRunner, type TaskDeps } from '../shared/task-runner';
import * as repo from './privacy.repository';

const DAY_MS = 86_400_000;
const CHUNK = 5_000;
/**
 * How far the host's clock may run ahead of the database server's before retention refuses to run:
 * hosts kept by NTP agree within milliseconds; a step of minutes or more is a wrong clock, and the
 * run would redact interactions younger than the limit, which cannot be undone.
 */
export const MAX_CLOCK_AHEAD_MS = 10 * 60_000;

/** The run was refused: the host's clock is ahead of the database server's (see RetentionJob). */
export class RetentionClockError extends Error {
  constructor(
    readonly hostClock: Date,
    readonly databaseClock: Date,
    readonly aheadMs: number,
  ) {
    super(
      `retention refused to run: this host's clock (${hostClock.toISOString()}) is ${Math.round(aheadMs / 1000)} s ahead of the database server's ` +
        `(${databaseClock.toISOString()}), more than ${MAX_CLOCK_AHEAD_MS / 60_000} min; nothing was redacted. Fix the host's clock (NTP); the next daily run checks again`,
    );
    this.name = 'RetentionClockError';
  }
}

export interface RetentionStatus {
  enabled: boolean;
  days: number | null;
  running: boolean;
  runs: number;
  lastRunAt: Date | null;
  /** interactions that occurred before this lose their text and author details */
  lastCutoff: Date | null;
  redactedLastRun: number;
  redactedTotal: number;
  /** why the last run redacted nothing on purpose (RetentionClockError); null once a run goes ahead */
  lastRefusal: string | null;
}

/**
 * Retention (EARSHOT_RETENTION_DAYS): once a day, interactions older than the limit lose their
 * text, URL, metadata, explanation and author details (handle, display name, which identity wrote
 * them); their scores, intent, topics, customer link and every rollup stay.
 *
 * Must stay true: set-based chunks of CHUNK rows, each committed on its own (a restart goes on
 * where it stopped; `redacted_at` marks done rows, so nothing is redone); off when unset.
 *
 * A run redacts nothing when this host's clock is more than MAX_CLOCK_AHEAD_MS ahead of the
 * database server's `clock_timestamp()` (a VM restored with a wrong clock, NTP stepping a year
 * ahead): it logs the two clocks at error level and fails with RetentionClockError, which the task
 * counts as an error run (`earshot_task_run_duration_seconds_count{task="retention",outcome="error"}`).
 * A clock behind is let through: it only redacts later. The check reads the host's clock
 * (`Date.now()`), which the service's clock is in production; the cutoff stays on the injected
 * clock, so tests move days forward on a ManualClock while the host and database still agree.
 */
export class RetentionJob {
  readonly task: TaskRunner<number>;
  private readonly clock: Clock;
  private lastRunAt: Date | null = null;
  private lastCutoff: Date | null = null;
  private redactedLastRun = 0;
  private redactedTotal = 0;
  private lastRefusal: string | null = null;

  constructor(
    private readonly ds: DataSource,
    private readonly days: number | null,
    private readonly log: Logger,
    deps: TaskDeps & { onRedacted?: (n: number) => void } = {},
  ) {
    this.clock = deps.clock ?? systemClock;
    this.onRedacted = deps.onRedacted;
    this.task = new TaskRunner({ name: 'retention', intervalMs: DAY_MS, ...deps, log, run: ({ stopping }) => this.runOnce(stopping) });
  }

  private readonly onRedacted?: (n: number) => void;

  /** Daily from now on the sync role; logs once and does nothing when retention is off. */
  start(): void {
    if (this.days === null) {
      this.log.info('retention is off: interactions are kept (EARSHOT_RETENTION_DAYS unset)');
      return;
    }
    this.task.start();
  }

  stop(): Promise<void> {
    return this.task.stop();
  }

  status(): RetentionStatus {
    return {
      enabled: this.days !== null,
      days: this.days,
      running: this.task.running,
      runs: this.task.runsDone,
      lastRunAt: this.lastRunAt,
      lastCutoff: this.lastCutoff,
      redactedLastRun: this.redactedLastRun,
      redactedTotal: this.redactedTotal,
      lastRefusal: this.lastRefusal,
    };
  }

  /** Interactions past the limit still holding text (what the next run will do). */
  async pending(): Promise<number> {
    if (this.days === null) return 0;
    return repo.countUnredactedBefore(this.ds, this.cutoff());
  }

  private cutoff(): Date {
    return new Date(this.clock.now() - (this.days ?? 0) * DAY_MS);
  }

  /** One pass: every interaction older than the limit, in chunks; returns how many it redacted. */
  async runOnce(stopping: () => boolean = () => false): Promise<number> {
    if (this.days === null) return 0;
    await this.checkHostClock();
    const cutoff = this.cutoff();
    this.lastRunAt = this.clock.date();
    this.lastCutoff = cutoff;
    this.redactedLastRun = 0;
    // the run's length on the monotonic clock: a step of the host's clock mid-run is not its length
    const t0 = performance.now();
    for (;;) {
      if (stopping()) break;
      const n = (await this.ds.transaction((em) => repo.redactOldInteractions(em, cutoff, CHUNK))).length;
      if (n === 0) break;
      this.redactedLastRun += n;
      this.redactedTotal += n;
      this.onRedacted?.(n);
      this.log.info({ redacted: this.redactedLastRun, cutoff }, 'retention progress');
    }
    this.log.info({ redacted: this.redactedLastRun, cutoff, days: this.days, ms: Math.round(performance.now() - t0) }, 'retention run finished');
    return this.redactedLastRun;
  }

  /**
   * Throws RetentionClockError when this host's clock runs more than the bound ahead of the
   * database server's. The host's time is taken half-way through the round trip, so a slow query
   * does not read as skew.
   */
  private async checkHostClock(): Promise<void> {
    const before = Date.now();
    const databaseNow = await repo.databaseClock(this.ds);
    const host = before + (Date.now() - before) / 2;
    const database = databaseNow.getTime();
    const aheadMs = host - database;
    if (aheadMs <= MAX_CLOCK_AHEAD_MS) {
      this.lastRefusal = null;
      return;
    }
    const err = new RetentionClockError(new Date(host), new Date(database), aheadMs);
    this.lastRefusal = err.message;
    this.log.error({ hostClock: err.hostClock, databaseClock: err.databaseClock, aheadMs, maxAheadMs: MAX_CLOCK_AHEAD_MS }, 'retention run refused: this host\'s clock is ahead of the database server\'s');
    throw err;
  }
}

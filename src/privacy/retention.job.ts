import type { DataSource } from 'typeorm';
import { systemClock, type Clock } from '../shared/clock';
import type { Logger } from '../shared/logger';
import { TaskRunner, type TaskDeps } from '../shared/task-runner';
import * as repo from './privacy.repository';

const DAY_MS = 86_400_000;
const CHUNK = 5_000;

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
}

/**
 * Retention (EARSHOT_RETENTION_DAYS): once a day, interactions older than the limit lose their
 * text, URL, metadata, explanation and author details (handle, display name, which identity wrote
 * them); their scores, intent, topics, customer link and every rollup stay.
 *
 * Must stay true: set-based chunks of CHUNK rows, each committed on its own (a restart goes on
 * where it stopped; `redacted_at` marks done rows, so nothing is redone); off when unset.
 */
export class RetentionJob {
  readonly task: TaskRunner<number>;
  private readonly clock: Clock;
  private lastRunAt: Date | null = null;
  private lastCutoff: Date | null = null;
  private redactedLastRun = 0;
  private redactedTotal = 0;

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
    const cutoff = this.cutoff();
    this.lastRunAt = this.clock.date();
    this.lastCutoff = cutoff;
    this.redactedLastRun = 0;
    const t0 = Date.now();
    for (;;) {
      if (stopping()) break;
      const n = (await this.ds.transaction((em) => repo.redactOldInteractions(em, cutoff, CHUNK))).length;
      if (n === 0) break;
      this.redactedLastRun += n;
      this.redactedTotal += n;
      this.onRedacted?.(n);
      this.log.info({ redacted: this.redactedLastRun, cutoff }, 'retention progress');
    }
    this.log.info({ redacted: this.redactedLastRun, cutoff, days: this.days, ms: Date.now() - t0 }, 'retention run finished');
    return this.redactedLastRun;
  }
}

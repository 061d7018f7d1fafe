import type { Logger } from './logger';
import { systemClock, type Clock, type TimerHandle } from './clock';
import { outsideRequest } from './request-context';

export interface TaskRunnerOptions<R> {
  /** names the task in logs and metrics (`crm-sync`, `escalation` …) */
  name: string;
  /** time between the end of one run and the start of the next; null: runs only when asked */
  intervalMs: number | null;
  /** delay of the first run after start() (default: at once) */
  firstRunAfterMs?: number;
  /** one run; `stopping()` turns true when stop() is called, so long runs can end early */
  run: (ctx: { stopping: () => boolean }) => Promise<R>;
  /** run again at once while this holds (draining a queue) */
  again?: (result: R) => boolean;
  clock?: Clock;
  log: Logger;
  /** called after every run (metrics) */
  onRun?: (name: string, outcome: 'ok' | 'error', seconds: number) => void;
}

/**
 * The one way Earshot runs background work: on an interval, on demand, or both.
 *
 * Must stay true: at most one run of a task at a time in the process (asking while one runs
 * joins it, or, for trigger(), queues exactly one more run after it); an error is logged and
 * counted and never stops the schedule; stop() starts no new run and resolves once the run in
 * flight has finished; `runsDone` counts finished runs (failed ones too), so tests wait for
 * "N runs done" instead of sleeping, and time comes from the injected clock.
 */
export class TaskRunner<R = unknown> {
  private readonly clock: Clock;
  private timer: TimerHandle | null = null;
  private current: Promise<R> | null = null;
  private rerun = false;
  private started = false;
  private stopped = false;
  private done = 0;
  private failed = 0;
  private lastErr: string | null = null;
  private waiters: { n: number; resolve: () => void }[] = [];

  constructor(private readonly opts: TaskRunnerOptions<R>) {
    this.clock = opts.clock ?? systemClock;
  }

  get name(): string {
    return this.opts.name;
  }

  /** Finished runs, successful or not. */
  get runsDone(): number {
    return this.done;
  }

  /** Runs that threw. */
  get errors(): number {
    return this.failed;
  }

  get lastError(): string | null {
    return this.lastErr;
  }

  get running(): boolean {
    return this.current !== null;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Runs every interval until stop(); idempotent. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    if (this.opts.intervalMs !== null) this.schedule(this.opts.firstRunAfterMs ?? 0);
  }

  /** No new runs; resolves when the run in flight has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.rerun = false;
    await this.current?.catch(() => undefined);
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /** Runs now, or joins the run in flight; rejects with the run's error (which is also logged and counted). */
  runNow(): Promise<R> {
    if (this.current) return this.current;
    const p = outsideRequest(() => this.execute());
    this.current = p;
    void p
      .catch(() => undefined)
      .finally(() => {
        if (this.current === p) this.current = null;
        this.afterRun();
        // after the next run is scheduled, so a waiter sees the runner at rest
        const ready = this.waiters.filter((w) => w.n <= this.done);
        this.waiters = this.waiters.filter((w) => w.n > this.done);
        for (const w of ready) w.resolve();
      });
    return p;
  }

  /** Starts a run in the background; while one runs, exactly one more follows it. */
  trigger(): void {
    if (this.stopped) return;
    if (this.current) {
      this.rerun = true;
      return;
    }
    void this.runNow().catch(() => undefined);
  }

  /** Resolves once `n` runs in all have finished (or the runner stopped); rejects after `timeoutMs`. */
  waitForRuns(n: number, timeoutMs = 60_000): Promise<void> {
    if (this.done >= n || this.stopped) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.opts.name}: ${this.done} of ${n} runs done after ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      });
    });
  }

  /** Resolves when no run is in flight or queued. */
  async idle(): Promise<void> {
    while (this.current) await this.current.catch(() => undefined);
  }

  private async execute(): Promise<R> {
    const t0 = performance.now();
    let outcome: 'ok' | 'error' = 'ok';
    try {
      for (;;) {
        const r = await this.opts.run({ stopping: () => this.stopped });
        if (this.stopped || !this.opts.again?.(r)) return r;
      }
    } catch (e) {
      outcome = 'error';
      this.failed++;
      this.lastErr = (e as Error).message;
      this.opts.log.error({ task: this.opts.name, err: (e as Error).message }, 'background task run failed');
      throw e;
    } finally {
      this.done++;
      this.opts.onRun?.(this.opts.name, outcome, (performance.now() - t0) / 1000);
    }
  }

  private afterRun(): void {
    if (this.stopped) return;
    if (this.rerun) {
      this.rerun = false;
      this.trigger();
      return;
    }
    if (this.started && this.opts.intervalMs !== null) this.schedule(this.opts.intervalMs);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (this.stopped || this.current) return;
      void this.runNow().catch(() => undefined);
    }, ms);
  }
}

/** What every background service passes on to its runner: the clock and the metrics hook. */
export interface TaskDeps {
  clock?: Clock;
  onRun?: (name: string, outcome: 'ok' | 'error', seconds: number) => void;
}

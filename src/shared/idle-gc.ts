import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from './logger';

export interface IdleGcOptions {
  /** how often the process looks at itself (default 5 s) */
  intervalMs?: number;
  /** event-loop utilisation over the last interval below which the process counts as idle enough (default 0.25) */
  idleBelow?: number;
  /** heap or RSS growth since the last full collection that is worth giving back (default 64 MB) */
  minGrowthBytes?: number;
  /**
   * how long the event loop must have been idle, interval after interval, before a collection
   * (default 30 s). The collection shrinks the young generation and drops compiled code, so the
   * next burst starts cold: after 5 s, every short lull between bursts cost the burst after it
   * (bench:graphql's 10-second pauses: the burst after each began with answers of 100–330 ms
   * against a p50 of 30 ms, V8's own memory reducer contributing; see src/service-flags.ts)
   */
  quietForMs?: number;
  /** the clock (ms), for tests */
  now?: () => number;
}

/**
 * Gives memory back after a burst of load. V8 collects the old generation only when
 * allocation pushes it to, so a process that goes quiet after a burst keeps its peak heap
 * (measured: 200 concurrent customer pages left 450 MB of heap and 680 MB RSS, of which a
 * full collection freed all but 84 MB of heap and 240 MB RSS). Once the event loop has been
 * idle for `quietForMs` (interval after interval) and the heap or the RSS has grown by
 * `minGrowthBytes` since the last full collection, this runs one; it costs tens of milliseconds
 * of an idle process.
 *
 * What must stay true: never runs while the event loop is busy (over a quarter of the last
 * interval; a Kafka backlog drained slowly still counts as quiet), nor before it has been quiet
 * for `quietForMs`; at most one collection per interval, and none again until memory grows anew;
 * the timer never keeps the process alive.
 */
export class IdleGc {
  private timer: NodeJS.Timeout | null = null;
  private lastElu = performance.eventLoopUtilization();
  private baseline = process.memoryUsage().heapUsed;
  private rssBaseline = process.memoryUsage().rss;
  private readonly gc = exposeGc();
  /** when the current run of idle intervals began, or null while busy */
  private quietSince: number | null = null;
  collections = 0;

  constructor(
    private readonly log: Logger,
    private readonly opts: IdleGcOptions = {},
  ) {}

  start(): void {
    if (!this.gc) {
      this.log.warn('cannot trigger garbage collection: memory freed after load is given back only when V8 decides to');
      return;
    }
    this.timer ??= setInterval(() => this.tick(), this.opts.intervalMs ?? 5_000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One look: collects when idle and grown. Returns whether it collected. */
  tick(): boolean {
    const elu = performance.eventLoopUtilization(this.lastElu);
    this.lastElu = performance.eventLoopUtilization();
    const { heapUsed, rss } = process.memoryUsage();
    if (heapUsed < this.baseline) this.baseline = heapUsed;
    // RSS falls some seconds after a collection (V8 unmaps freed pages lazily): follow it down.
    if (rss < this.rssBaseline) this.rssBaseline = rss;
    const now = (this.opts.now ?? Date.now)();
    if (elu.utilization >= (this.opts.idleBelow ?? 0.25)) {
      this.quietSince = null;
      return false;
    }
    // the interval that just ended was quiet: the run of quiet began at its start at the latest
    this.quietSince ??= now - (this.opts.intervalMs ?? 5_000);
    if (!this.gc || now - this.quietSince < (this.opts.quietForMs ?? 30_000)) return false;
    // Either garbage V8 has not collected yet, or pages it collected during the load but still
    // holds (measured: heap 250 MB, RSS 734 MB after a soak; a full collection let both go).
    const growth = this.opts.minGrowthBytes ?? 64 * 1024 * 1024;
    if (heapUsed - this.baseline < growth && rss - this.rssBaseline < growth) return false;
    const started = performance.now();
    // 'last-resort' is V8's low-memory collection: rounds until nothing more dies, compaction,
    // the young generation shrunk and pooled pages unmapped. A plain major collection freed the
    // heap but left RSS at 770 MB after a soak with Kafka.
    this.gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    const after = process.memoryUsage();
    this.baseline = after.heapUsed;
    // Not lower: when RSS does not come down, collecting again would not bring it down either.
    this.rssBaseline = Math.max(after.rss, rss);
    this.collections++;
    this.log.info(
      { heapBeforeMb: mb(heapUsed), heapAfterMb: mb(after.heapUsed), rssAfterMb: mb(after.rss), ms: Math.round(performance.now() - started) },
      'idle: collected garbage left by the last burst of load',
    );
    // The next interval's utilisation must not count the collection itself.
    this.lastElu = performance.eventLoopUtilization();
    return true;
  }
}

const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);

/** `gc()` without starting Node with --expose-gc: the flag applies to contexts created after it is set. */
type GcFunction = (options?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async'; flavor?: 'regular' | 'last-resort' }) => void;

function exposeGc(): GcFunction | null {
  const existing = (globalThis as { gc?: GcFunction }).gc;
  if (typeof existing === 'function') return existing;
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as GcFunction) : null;
  } catch {
    return null;
  }
}

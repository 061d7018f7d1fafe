import { existsSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../shared/logger';
import type { RelayHandle, RelayMetrics } from './outbox-relay';
import type { RelayWorkerData, RelayWorkerMessage } from './outbox-relay.worker';

/** How long the thread may take past its drain to end by itself before it is terminated. */
const STOP_GRACE_MS = 3_000;

/** The compiled worker entry, or null when running from TypeScript sources (tests): then the relay runs in process. */
export function relayWorkerFile(): string | null {
  const file = path.join(__dirname, 'outbox-relay.worker.js');
  return __filename.endsWith('.js') && existsSync(file) ? file : null;
}

/**
 * The outbox relay in a worker thread of its own: publishing (kafkajs encoding, CRCs, the
 * relay's queries) no longer competes with the consumer and the pipeline for the ingest event
 * loop. Same guarantees as `OutboxRelay`, which runs unchanged inside the thread; leadership,
 * health and metrics come back as messages (at most 100 ms old).
 */
export class ThreadedRelay implements RelayHandle {
  private worker: Worker | null = null;
  private leader = false;
  private relayHealth: string | null = null;
  private threadError: string | null = null;
  private stopped: (() => void) | null = null;
  private flushed: (() => void)[] = [];

  constructor(
    private readonly file: string,
    private readonly data: RelayWorkerData,
    private readonly metrics: RelayMetrics,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const worker = new Worker(this.file, { workerData: this.data });
    this.worker = worker;
    await new Promise<void>((resolve, reject) => {
      worker.on('message', (m: RelayWorkerMessage) => {
        if (m.type === 'started') resolve();
        else if (m.type === 'failed') reject(new Error(m.message));
        else if (m.type === 'state') {
          this.leader = m.leader;
          this.relayHealth = m.health;
        } else if (m.type === 'metrics') {
          for (const [topic, n] of m.published) this.metrics.published(topic, n);
          for (const [topic, n] of m.oversized) this.metrics.oversized(topic, n);
          for (const [seconds, n] of m.delays) this.metrics.delay(seconds, n);
          if (m.backlog !== null) this.metrics.backlog(m.backlog);
          if (m.parked !== null) this.metrics.parked(m.parked);
          if (m.cpuMicros > 0) this.metrics.cpu?.(m.cpuMicros);
        } else if (m.type === 'flushed') this.flushed.shift()?.();
        else if (m.type === 'stopped') this.stopped?.();
      });
      worker.on('error', (e) => {
        this.threadError = `outbox relay thread failed: ${e.message}`;
        this.log.error({ err: e }, 'outbox relay thread failed');
        reject(e);
      });
      worker.on('exit', (code) => {
        this.leader = false;
        for (const resolve of this.flushed.splice(0)) resolve();
        if (this.stopped === null) this.threadError ??= `outbox relay thread exited (${code})`;
        this.stopped?.();
      });
    });
  }

  isLeader(): boolean {
    return this.leader;
  }

  health(): string | null {
    return this.threadError ?? this.relayHealth;
  }

  /** Asks the thread to report now; its messages arrive in order, so its metrics are in once it answers. */
  flushMetrics(): Promise<void> {
    const worker = this.worker;
    if (!worker) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.flushed.push(resolve);
      worker.postMessage({ type: 'flush' });
    });
  }

  /**
   * Lets the thread drain for `drainMs`, and ends it at most STOP_GRACE_MS later. Against a broker
   * out of reach the cycle in flight waits on kafkajs' retries, which do not help: the thread was
   * given 15 s more, and a SIGTERM then took 20 s, past EARSHOT_SHUTDOWN_TIMEOUT_MS (15 s). Rows
   * not marked sent wait for the next leader (consumers dedupe on event-id).
   */
  async stop(drainMs = 5_000): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.worker = null;
    const done = new Promise<void>((resolve) => (this.stopped = resolve));
    worker.postMessage({ type: 'stop', drainMs });
    await Promise.race([done, new Promise((r) => setTimeout(r, drainMs + STOP_GRACE_MS).unref())]);
    await worker.terminate();
    this.leader = false;
  }
}

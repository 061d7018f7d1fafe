// Entry of the outbox relay's worker thread (see outbox-relay-thread.ts): the relay's producer,
// its Kafka encoding and its queries run here, off the ingest event loop.
// Tracing first (a thread has its own OpenTelemetry globals): the publish spans continue the
// trace stored with each outbox row, as the relay does in process.
import { tracing } from '../tracing/register';
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config/config';
import { createRelayProducer } from '../ingest/kafka-client';
import { createLogger } from '../shared/logger';
import { OutboxRelay, type OutboxRelayOptions, type RelayDatabase, type RelayMetrics } from './outbox-relay';

export interface RelayWorkerData {
  settings: Config['kafka'];
  db: RelayDatabase;
  opts: OutboxRelayOptions;
  logLevel: string;
}

export type RelayWorkerMessage =
  | { type: 'started' }
  | { type: 'failed'; message: string }
  | { type: 'state'; leader: boolean; health: string | null }
  | { type: 'metrics'; published: [string, number][]; oversized: [string, number][]; delays: [number, number][]; backlog: number | null; parked: number | null; cpuMicros: number }
  | { type: 'stopped' }
  | { type: 'flushed' };

const port = parentPort!;
const data = workerData as RelayWorkerData;
const log = createLogger(data.logLevel, { component: 'outbox-relay', thread: 'relay' });
const published = new Map<string, number>();
const oversized = new Map<string, number>();
let delays: [number, number][] = [];
let backlog: number | null = null;
let parked: number | null = null;
const sink: RelayMetrics = {
  published: (topic, n) => published.set(topic, (published.get(topic) ?? 0) + n),
  oversized: (topic, n) => oversized.set(topic, (oversized.get(topic) ?? 0) + n),
  delay: (seconds, n) => void delays.push([seconds, n]),
  backlog: (n) => void (backlog = n),
  parked: (rows) => void (parked = rows),
};
const relay = new OutboxRelay(createRelayProducer(data.settings, log), data.db, data.settings, sink, log, data.opts);

// this thread's own CPU time, reported as it grows
let cpuBefore = process.threadCpuUsage();

function flush(): void {
  const cpuNow = process.threadCpuUsage();
  const cpuMicros = cpuNow.user - cpuBefore.user + cpuNow.system - cpuBefore.system;
  if (published.size > 0 || oversized.size > 0 || delays.length > 0 || backlog !== null || parked !== null || cpuMicros >= 1_000) {
    cpuBefore = cpuNow;
    port.postMessage({ type: 'metrics', published: [...published], oversized: [...oversized], delays, backlog, parked, cpuMicros } satisfies RelayWorkerMessage);
    published.clear();
    oversized.clear();
    delays = [];
    backlog = null;
    parked = null;
  }
  port.postMessage({ type: 'state', leader: relay.isLeader(), health: relay.health() } satisfies RelayWorkerMessage);
}
const timer = setInterval(flush, 100);

port.on('message', (m: { type: 'stop'; drainMs: number } | { type: 'flush' }) => {
  if (m.type === 'flush') {
    flush();
    port.postMessage({ type: 'flushed' } satisfies RelayWorkerMessage);
    return;
  }
  if (m.type !== 'stop') return;
  void relay.stop(m.drainMs).finally(async () => {
    await tracing?.shutdown().catch(() => undefined);
    clearInterval(timer);
    flush();
    port.postMessage({ type: 'stopped' } satisfies RelayWorkerMessage);
  });
});

relay.start().then(
  () => {
    flush();
    port.postMessage({ type: 'started' } satisfies RelayWorkerMessage);
  },
  (e: unknown) => port.postMessage({ type: 'failed', message: (e as Error).message } satisfies RelayWorkerMessage),
);

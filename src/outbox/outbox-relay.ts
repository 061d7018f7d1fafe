import { Pool } from 'pg';
import type { Span } from '@opentelemetry/api';
import { PinnedClient } from '../db/session-settings';
import { keepWhileIdle } from '../db/sql';
import { authorHandleFor, displayNameFor, PUBLIC_VIEWER } from '../auth/pii.policy';
import { contextFromHeaders, SpanKind, SpanStatusCode, trace, traceHeaders, tracer } from '../shared/tracing';
import type { Config } from '../config/config';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import {
  deleteSentOutboxRows,
  dueParkedOutboxRow,
  markOutboxRowsFailed,
  markOutboxRowsSent,
  outboxBacklog,
  parkOutboxRows,
  pendingOutboxRows,
  tryLeadOutbox,
  type OutboxEventRow,
  type PendingOutboxRow,
} from './outbox.repository';
import { outboxEvents, type OutboxParts } from './outbox-render';
import type { RelayMessage, RelayProducer } from './relay-producer';
import { missingTopicOf, recordBytes, sendHalving, splitIntoRequests } from '../shared/kafka-requests';

/** Where the relay reads the outbox: its own small pool, so it can run in a worker thread. */
export interface RelayDatabase {
  url: string;
  /** search_path of every connection (tests isolate themselves in a schema) */
  schema?: string;
}

/** What the relay reports; the Prometheus metrics in process, messages to it from a worker thread. */
export interface RelayMetrics {
  published(topic: string, n: number): void;
  /** events too large to publish on their own, left out */
  oversized(topic: string, n: number): void;
  delay(seconds: number, n: number): void;
  backlog(n: number): void;
  /** unsent rows parked: left out of the queue after failing on their own, retried apart */
  parked(rows: number): void;
  /** CPU time the relay's thread used (µs), when it runs in a thread of its own */
  cpu?(micros: number): void;
}

/** The relay as the ingest role sees it, in process or in a worker thread. */
export interface RelayHandle {
  start(): Promise<void>;
  stop(drainMs?: number): Promise<void>;
  isLeader(): boolean;
  health(): string | null;
  /** Resolves once every metric observed so far has reached the process's registry. */
  flushMetrics(): Promise<void>;
}

export function metricsSink(metrics: Metrics): RelayMetrics {
  return {
    published: (topic, n) => metrics.outboxPublished.inc({ topic }, n),
    oversized: (topic, n) => metrics.outboxOversized.inc({ topic }, n),
    delay: (seconds, n) => {
      for (let i = 0; i < n; i++) metrics.outboxPublishDelay.observe(seconds);
    },
    backlog: (n) => metrics.outboxBacklog.set(n),
    parked: (rows) => metrics.outboxParkedRows.set(rows),
    cpu: (micros) => metrics.outboxRelayCpu.inc(micros / 1e6),
  };
}


/** Advisory-lock key (first half) of the relay leader; the second half is the schema's hash. */
const RELAY_LOCK_NAMESPACE = 7_041_976;

export interface OutboxRelayOptions {
  /** events per Kafka request at most: whole outbox rows while they fit, a larger row in slices */
  batchSize?: number;
  /** how long sent outbox rows are kept (seconds) */
  retentionSeconds?: number;
  /** how often a standby replica tries to become the leader */
  standbyRetryMs?: number;
  /** readiness fails when publishing has failed for this long */
  unhealthyAfterMs?: number;
  /**
   * failed attempts after which the oldest row, failing on its own while the row after it can be
   * published, is parked (left out of the queue, retried apart); 0 never parks (default 5)
   */
  parkAfterAttempts?: number;
  /** a parked row is tried again this long after it was parked, twice as long after each further failure (default 60 s) */
  parkedRetryMs?: number;
  /** ... at most this long (default 1 h) */
  maxParkedRetryMs?: number;
}

/** Events sent in one Kafka request: whole rows, or a slice of one part of a larger row. */
interface Chunk {
  /** whole outbox_batch rows, rendered in row order */
  rows: string[];
  /** or events `lo`..`hi` (seq) of one part of one row */
  slice: { id: string; part: number; lo: number; hi: number } | null;
  /** events */
  size: number;
  /** rows whose last event is in this chunk (marked sent once it is acknowledged), with their events */
  completes: Map<string, number>;
  /** rows with events in this chunk */
  touches: string[];
  /** which parts of its whole rows hold events (a slice reads its own part) */
  parts: OutboxParts;
}

interface PreparedBatch {
  chunk: Chunk;
  /** in row order */
  messages: RelayMessage[];
  /** events per topic, for the metrics */
  perTopic: Map<string, number>;
  spans: Span[];
}

/**
 * Publishes the outbox to Kafka: `interactions.enriched.v1`, `customer-sentiment.v1` and the
 * events written as given (`listening-gap.v1`, tombstones). One `outbox_batch` row per writing
 * transaction; its events are rendered when published from the rows they describe, as the `outbox`
 * view defines them (./outbox-render.ts), and the row is
 * marked sent once, then deleted after `EARSHOT_OUTBOX_RETENTION_HOURS`.
 *
 * What must stay true:
 * - a row is marked sent only after Kafka acknowledged all its events from all in-sync replicas (acks -1,
 *   idempotent producer, one request in flight), so a crash publishes it again rather than
 *   never: delivery is at least once, and the `event-id` header lets consumers dedupe;
 * - rows are published in `id` order by one leader at a time (a session advisory lock, per
 *   database and schema; the one exception: a row parked after failing on its own while the
 *   rows after it could be published goes out later, when it can, see `parkFailingHead`). Two
 *   writers of the same key serialise on the customer's row lock
 *   before they take outbox ids, so per key — which is what Kafka orders by — id order is
 *   commit order, and with a single publisher it is also publish order;
 * - key = `message_key`; a null payload is published as a tombstone (null value);
 * - the headers stored with the row (schema-version, event-id, content-type) travel with it.
 */
export class OutboxRelay implements RelayHandle {
  private readonly pool: Pool;
  private readonly batchSize: number;
  private readonly standbyRetryMs: number;
  private readonly unhealthyAfterMs: number;
  private lockClient: PinnedClient | null = null;
  private leader = false;
  private running = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private woken = false;
  private failingSince: number | null = null;
  private lastError: string | null = null;
  private lastBacklogAt = 0;
  private lastRetentionAt = 0;
  private readonly retentionSeconds: number;
  private readonly parkAfterAttempts: number;
  private readonly parkedRetryMs: number;
  private readonly maxParkedRetryMs: number;
  private lastParkedCheckAt = 0;
  /** the rows of the chunk whose render or send failed last in this cycle (null: none did) */
  private lastFailed: string[] | null = null;

  constructor(
    private readonly producer: RelayProducer,
    private readonly db: RelayDatabase,
    private readonly settings: Config['kafka'],
    private readonly metrics: RelayMetrics,
    private readonly log: Logger,
    opts: OutboxRelayOptions = {},
  ) {
    this.pool = new Pool({
      connectionString: db.url,
      // a chunk's parts are read at once (up to 3) while the chunk before is marked sent
      max: 4,
      application_name: 'earshot-outbox-relay',
      connectionTimeoutMillis: 10_000,
      options: db.schema ? `-c search_path=${db.schema}` : undefined,
      // the session settings rendering depends on (float digits of scores), whatever the database's defaults
      Client: PinnedClient,
    });
    // An idle connection dropped by the server: the pool replaces it; the cycle that needs it retries.
    this.pool.on('error', (e) => this.log.warn({ err: e }, 'outbox relay pool connection lost'));
    this.batchSize = opts.batchSize ?? 500;
    this.standbyRetryMs = opts.standbyRetryMs ?? 2_000;
    this.unhealthyAfterMs = opts.unhealthyAfterMs ?? 30_000;
    this.retentionSeconds = opts.retentionSeconds ?? settings.outboxRetentionHours * 3600;
    this.parkAfterAttempts = opts.parkAfterAttempts ?? 5;
    this.parkedRetryMs = opts.parkedRetryMs ?? 60_000;
    this.maxParkedRetryMs = opts.maxParkedRetryMs ?? 3_600_000;
  }

  async start(): Promise<void> {
    await this.producer.connect();
    this.running = true;
    this.loop = this.run();
  }

  /** In process the metrics are recorded as they happen: nothing waits. */
  async flushMetrics(): Promise<void> {}

  /** True while this replica holds the leader lock and publishes. */
  isLeader(): boolean {
    return this.leader;
  }

  /** null when publishing works (or this replica is a standby), else why not. */
  health(): string | null {
    if (this.failingSince !== null && Date.now() - this.failingSince > this.unhealthyAfterMs) {
      return `outbox relay cannot publish since ${new Date(this.failingSince).toISOString()}: ${this.lastError}`;
    }
    return null;
  }

  /** Stops after the cycle in flight, publishing what is left for up to `drainMs`. */
  async stop(drainMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.poke();
    await this.loop;
    if (this.leader && drainMs > 0) {
      const deadline = Date.now() + drainMs;
      try {
        while (Date.now() < deadline && (await this.publishOnce()) > 0);
      } catch (e) {
        this.log.warn({ err: e }, 'outbox relay could not drain before stopping; the rows wait for the next leader');
      }
    }
    await this.releaseLeadership();
    await this.producer.disconnect().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
    this.log.info('outbox relay stopped');
  }

  private poke(): void {
    this.woken = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    let backoff = this.settings.outboxPollMs;
    while (this.running) {
      try {
        if (!this.leader && !(await this.tryLead())) {
          await this.idle(this.standbyRetryMs);
          continue;
        }
        this.lastFailed = null;
        await this.retryParked();
        await this.publishAll();
        this.failingSince = null;
        backoff = this.settings.outboxPollMs;
        await this.updateBacklog(false);
        await this.idle(this.settings.outboxPollMs);
      } catch (e) {
        this.failingSince ??= Date.now();
        this.lastError = (e as Error).message;
        const missing = missingTopicOf(e);
        if (missing !== null) {
          // not created again: the row is parked as any row failing on its own (the rows of other topics after it go on)
          if (await this.topicMissing(missing)) {
            backoff = this.settings.outboxPollMs;
            continue;
          }
        } else this.log.warn({ err: e, retryInMs: backoff }, 'outbox relay cycle failed; retrying');
        if (await this.parkFailingHead()) {
          // the rows after it went out: go on at once
          backoff = this.settings.outboxPollMs;
          continue;
        }
        await this.idle(backoff);
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  /**
   * An output topic is gone (deleted while Earshot runs): with KAFKA_CREATE_TOPICS it is created
   * again as at start and publishing goes on at once (returns true); otherwise readiness names
   * it until someone creates it. Every event waits in the outbox meanwhile: nothing is dropped.
   */
  private async topicMissing(topic: string): Promise<boolean> {
    const what = topic ? `output topic ${topic}` : 'an output topic';
    let created: string[] = [];
    try {
      created = (await this.producer.createMissingTopics?.()) ?? [];
    } catch (e) {
      this.log.warn({ err: e }, 'could not check the output topics');
    }
    if (created.length > 0) {
      this.log.error(
        { topics: created },
        'output topics did not exist (deleted while Earshot runs?): created again as at start; the events waiting in the outbox are published now (what a deleted topic held is gone for its consumers)',
      );
      return true;
    }
    // short and plain: /readyz shows it (publicReason in src/http/http-server.ts)
    this.lastError = `${what} does not exist, create it (its events wait in the outbox)`;
    this.log.error(
      { topic: topic || undefined },
      `outbox relay: ${what} does not exist${this.producer.createMissingTopics ? ' and could not be created' : ' (KAFKA_CREATE_TOPICS=false)'}: create it; its events wait in the outbox`,
    );
    return false;
  }

  /** Waits for a NOTIFY, a stop, or `ms`. */
  private idle(ms: number): Promise<void> {
    if (this.woken || !this.running) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.wake = null;
        self.woken = false;
        resolve();
      }
      this.wake = done;
    });
  }

  /** Takes the leader lock on a dedicated session, which also LISTENs for new rows. */
  private async tryLead(): Promise<boolean> {
    if (!this.lockClient) {
      const client = new PinnedClient({
        connectionString: this.db.url,
        application_name: 'earshot-outbox-relay',
        connectionTimeoutMillis: 5_000,
        keepAlive: true,
        options: this.db.schema ? `-c search_path=${this.db.schema}` : undefined,
      });
      client.on('error', (e) => {
        // The session, and with it the lock, is gone: another replica may lead now.
        this.log.warn({ err: e }, 'outbox relay lost its leader session');
        this.leader = false;
        if (this.lockClient === client) this.lockClient = null;
        client.end().catch(() => undefined);
      });
      client.on('notification', () => this.poke());
      await client.connect();
      await keepWhileIdle(client);
      this.lockClient = client;
    }
    const schema = this.db.schema ?? 'public';
    if (!(await tryLeadOutbox(this.lockClient, RELAY_LOCK_NAMESPACE, hash32(schema)))) return false;
    this.leader = true;
    this.log.info('outbox relay is the leader: publishing');
    return true;
  }

  private async releaseLeadership(): Promise<void> {
    const client = this.lockClient;
    this.lockClient = null;
    this.leader = false;
    // Ending the session releases the advisory lock and the LISTEN.
    if (client) await client.end().catch(() => undefined);
  }

  /**
   * Publishes the oldest unsent outbox rows until none is left; returns how many events.
   * Pipelined by chunks of at most `batchSize` events: the next chunk is read and rendered while
   * Kafka acknowledges the one before it, so the wait for PostgreSQL and the wait for the broker
   * overlap. A row larger than a chunk (an ingest batch of 500 interactions is about 830 events)
   * is rendered and sent in slices, so its first events are on their way while the rest are
   * rendered; it is marked sent when its last slice is acknowledged. Chunks are still sent one at
   * a time, in row order (row, part, seq: the order they always had), and a chunk that fails to
   * send stops the ones after it; the rows it touched are published again, whole, later.
   */
  private async publishAll(): Promise<number> {
    let total = 0;
    let queue: Chunk[] = [];
    let inFlight: Promise<number> | null = null;
    let inFlightIds: string[] = [];
    try {
      for (;;) {
        if (queue.length === 0) queue = await this.plan(inFlightIds);
        const chunk = queue.shift();
        const next = chunk ? await this.render(chunk) : null;
        if (inFlight) {
          const sending: Promise<number> = inFlight;
          inFlight = null;
          try {
            total += await sending;
          } catch (e) {
            for (const span of next?.spans ?? []) span.end();
            throw e;
          }
          await this.updateBacklog(false);
        }
        if (!next) return total;
        if (!this.running) {
          // finish the rows begun, then stop
          total += await this.send(next);
          for (const rest of queue) total += await this.send(await this.render(rest));
          return total;
        }
        inFlight = this.send(next);
        // a failure is seen by the await above (or the finally below), not as an unhandled rejection
        inFlight.catch(() => undefined);
        inFlightIds = next.chunk.touches;
      }
    } finally {
      if (inFlight) await inFlight.catch(() => undefined);
    }
  }

  /** The oldest unsent rows, chunk by chunk: read, render, send, mark sent (what `stop()` drains with). */
  private async publishOnce(): Promise<number> {
    let total = 0;
    for (const chunk of await this.plan([])) total += await this.send(await this.render(chunk));
    return total;
  }

  /**
   * Splits the oldest unsent outbox rows (leaving out `busy`, rows being sent) into chunks of at
   * most `batchSize` events: whole rows together while they fit, a larger row in slices of one
   * part's consecutive events.
   */
  private async plan(busy: string[]): Promise<Chunk[]> {
    return this.chunksOf(await pendingOutboxRows(this.pool, busy));
  }

  /**
   * `pending` rows (in id order) as chunks. The first row, when it failed before, is a chunk of
   * its own: whether it fails again is then its own doing (see `parkFailingHead`).
   */
  private chunksOf(pending: readonly PendingOutboxRow[]): Chunk[] {
    const chunks: Chunk[] = [];
    let group: Chunk | null = null;
    let planned = 0;
    for (const p of pending) {
      const n = p.n0 + p.n1 + p.n2;
      // about `batchSize` events per cycle of reading the table, as before, but at least a row
      if (planned > 0 && planned + n > this.batchSize * 4) break;
      const alone = planned === 0 && p.attempts > 0;
      planned += n;
      if (n <= this.batchSize) {
        if (group && group.size + n > this.batchSize) group = null;
        if (!group) chunks.push((group = { rows: [], slice: null, size: 0, completes: new Map(), touches: [], parts: [false, false, false] }));
        group.rows.push(p.id);
        group.parts = [group.parts[0] || p.n0 > 0, group.parts[1] || p.n1 > 0, group.parts[2] || p.n2 > 0];
        group.size += n;
        group.completes.set(p.id, n);
        group.touches.push(p.id);
        if (alone) group = null;
        continue;
      }
      group = null;
      const slices: Chunk[] = [];
      for (const [part, count] of [p.n0, p.n1, p.n2].entries()) {
        for (let lo = 1; lo <= count; lo += this.batchSize) {
          const hi = Math.min(count, lo + this.batchSize - 1);
          slices.push({ rows: [], slice: { id: p.id, part, lo, hi }, size: hi - lo + 1, completes: new Map(), touches: [p.id], parts: [part === 0, part === 1, part === 2] });
        }
      }
      slices[slices.length - 1]!.completes.set(p.id, n);
      chunks.push(...slices);
    }
    return chunks;
  }

  /** Renders a chunk's events from the rows as they are now (./outbox-render.ts; the `outbox` view defines them). */
  private async render(chunk: Chunk): Promise<PreparedBatch> {
    let rows: OutboxEventRow[];
    try {
      rows = await outboxEvents(this.pool, chunk.slice ? { slice: chunk.slice } : { ids: chunk.rows }, chunk.parts);
    } catch (e) {
      await this.failed(chunk, e);
      throw e;
    }
    const messages: RelayMessage[] = [];
    const perTopic = new Map<string, number>();
    // A row written inside a trace is published in a child span of it, whose context the Kafka
    // message carries on: produced message → committed row → published event, one trace.
    const spans: Span[] = [];
    for (const r of rows) {
      const topic = `${this.settings.outputTopicPrefix}${r.topic}`;
      perTopic.set(topic, (perTopic.get(topic) ?? 0) + 1);
      let headers = r.headers;
      if (headers.traceparent) {
        const parent = contextFromHeaders(headers);
        const span = tracer().startSpan(`${topic} publish`, { kind: SpanKind.PRODUCER, attributes: { 'messaging.system': 'kafka', 'messaging.operation.type': 'send', 'messaging.destination.name': topic, 'earshot.outbox.id': String(r.batch_id) } }, parent);
        spans.push(span);
        headers = { ...headers, ...traceHeaders(trace.setSpan(parent, span)) };
      }
      messages.push({ topic, key: r.message_key, value: publicValue(r), headers });
    }
    return { chunk, messages, perTopic, spans };
  }

  /** Sends a rendered chunk (acks from all in-sync replicas), then marks the rows it completes sent; returns its size. */
  private async send(batch: PreparedBatch): Promise<number> {
    const { chunk, messages, spans } = batch;
    const split = splitIntoRequests(messages, this.settings.maxRequestBytes);
    const oversized: { message: RelayMessage; bytes: number; refusedByBroker?: boolean }[] = split.oversized.map((o) => ({ message: o.record, bytes: o.bytes }));
    let ackedAt = performance.now();
    try {
      for (const request of split.requests) {
        // a topic whose max.message.bytes is under KAFKA_MAX_REQUEST_BYTES: its halves, down to the event it refuses alone
        const refusals = await sendHalving(request, (ms) => this.producer.send(ms), async (m) => void oversized.push({ message: m, bytes: recordBytes(m), refusedByBroker: true }));
        if (refusals > 0) this.log.warn({ events: request.length, refusals, limit: this.settings.maxRequestBytes }, 'the broker refused requests as too large: sent again in halves (set KAFKA_MAX_REQUEST_BYTES under the output topics\' max.message.bytes)');
      }
      for (const span of spans) span.end();
      ackedAt = performance.now();
    } catch (e) {
      for (const span of spans) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
        span.end();
      }
      await this.failed(chunk, e);
      throw e;
    }
    for (const { message, bytes, refusedByBroker } of oversized) {
      // Kafka refuses it, and retrying would hold back every event after it for ever
      this.log.error(
        { topic: message.topic, key: message.key, eventId: message.headers['event-id'], bytes, limit: this.settings.maxRequestBytes, outboxRows: chunk.touches },
        refusedByBroker
          ? 'outbox event refused by the broker as too large on its own (the topic\'s max.message.bytes is under KAFKA_MAX_REQUEST_BYTES): not published (what it describes stays in the database)'
          : 'outbox event larger than KAFKA_MAX_REQUEST_BYTES: not published (what it describes stays in the database)',
      );
      this.metrics.oversized(message.topic, 1);
      batch.perTopic.set(message.topic, batch.perTopic.get(message.topic)! - 1);
    }
    for (const [topic, n] of batch.perTopic) if (n > 0) this.metrics.published(topic, n);
    if (chunk.completes.size > 0) {
      const sent = await markOutboxRowsSent(this.pool, [...chunk.completes.keys()], (performance.now() - ackedAt) / 1000);
      // one observation per event: its outbox row's commit to the broker's ack
      for (const d of sent) this.metrics.delay(d.delay, chunk.completes.get(d.id) ?? 0);
      await this.applyRetention();
    }
    return chunk.size;
  }

  /** Records a failed attempt on the rows a chunk touched (not while the database itself fails). */
  private async failed(chunk: Chunk, e: unknown): Promise<void> {
    this.lastFailed = chunk.touches;
    await markOutboxRowsFailed(this.pool, chunk.touches, String((e as Error).message)).catch(() => undefined);
  }

  /**
   * After a failed cycle: when the oldest row has failed `parkAfterAttempts` times, the last time
   * just now and alone, tries the first row after it (and after the rows behind it that failed as
   * often). If that one is published, the oldest row is tried once more, and if it fails again the
   * failure is the older rows' own (the broker and the database work), and they are parked: left
   * out of the queue, logged, counted, and retried apart (`retryParked`) until they go out. If the
   * row after them fails too, the failure is everyone's (the broker or the database is away):
   * nothing is parked, and the relay retries in order as before. Returns whether it made progress.
   *
   * What this gives up for a parked row: its events reach Kafka after those of later rows, so for
   * its keys the order is no longer commit order (rendered events carry the state at publish time;
   * consumers dedupe by `event-id`). What it keeps: nothing is dropped, and a broker outage parks
   * nothing, since the row after the head fails as well.
   */
  private async parkFailingHead(): Promise<boolean> {
    const failed = this.lastFailed;
    this.lastFailed = null;
    if (this.parkAfterAttempts <= 0 || !this.running || failed === null || failed.length !== 1) return false;
    try {
      const pending = await pendingOutboxRows(this.pool, []);
      if (pending[0]?.id !== failed[0] || pending[0].attempts < this.parkAfterAttempts) return false;
      let i = 0;
      while (i < pending.length && pending[i]!.attempts >= this.parkAfterAttempts) i++;
      const probe = pending[i];
      // nothing behind them to tell whose failure it is: they hold nothing back either
      if (!probe) return false;
      try {
        for (const chunk of this.chunksOf([probe])) await this.send(await this.render(chunk));
      } catch (e) {
        this.log.warn({ err: e, outboxRow: probe.id, failingRow: pending[0]!.id }, 'the outbox row after the failing one fails too: not parking (the broker or the database is away)');
        return false;
      }
      // once more, now that a row went through: a broker back just after the head failed parks
      // nothing (the row after it is then the one published out of order)
      try {
        for (const chunk of this.chunksOf([pending[0]!])) await this.send(await this.render(chunk));
        this.log.warn({ outboxRow: pending[0]!.id, after: probe.id }, 'the failing outbox row went out on another try; not parked');
        return true;
      } catch {
        // its own failure, a third time in a row
      }
      const parked = await parkOutboxRows(this.pool, pending.slice(0, i).map((p) => p.id));
      for (const p of parked) {
        this.log.error(
          { outboxRow: p.id, attempts: p.attempts, lastError: p.last_error, retryInMs: this.parkedRetryMs },
          'outbox row parked: it failed on its own while the rows after it are published; it is retried apart until it goes out (earshot_outbox_rows_parked)',
        );
      }
      await this.updateBacklog(true);
      return true;
    } catch (e) {
      this.log.warn({ err: e }, 'could not check the failing outbox row');
      return false;
    }
  }

  /**
   * Tries the parked rows that are due, one at a time, oldest first, while they go out; one that
   * fails again is parked anew (its next try later). Checked at most once a second.
   */
  private async retryParked(): Promise<void> {
    if (this.parkAfterAttempts <= 0 || Date.now() - this.lastParkedCheckAt < 1_000) return;
    this.lastParkedCheckAt = Date.now();
    for (;;) {
      const row = await dueParkedOutboxRow(this.pool, this.parkAfterAttempts, this.parkedRetryMs / 1000, this.maxParkedRetryMs / 1000);
      if (!row || !this.running) return;
      try {
        for (const chunk of this.chunksOf([row])) await this.send(await this.render(chunk));
        this.log.warn({ outboxRow: row.id, attempts: row.attempts + 1 }, 'parked outbox row published');
        await this.updateBacklog(true);
      } catch (e) {
        this.lastFailed = null;
        await parkOutboxRows(this.pool, [row.id]).catch(() => undefined);
        this.log.warn({ err: e, outboxRow: row.id, attempts: row.attempts + 1 }, 'parked outbox row failed again; tried again later');
        return;
      }
    }
  }

  /** Deletes rows sent longer ago than the retention (a bounded batch at most once a minute). */
  private async applyRetention(): Promise<void> {
    if (Date.now() - this.lastRetentionAt < 60_000) return;
    this.lastRetentionAt = Date.now();
    await deleteSentOutboxRows(this.pool, this.retentionSeconds);
  }

  private async updateBacklog(force: boolean): Promise<void> {
    if (!force && Date.now() - this.lastBacklogAt < 1_000) return;
    this.lastBacklogAt = Date.now();
    const { events, parkedRows } = await outboxBacklog(this.pool);
    this.metrics.backlog(events);
    this.metrics.parked(parkedRows);
  }
}

/**
 * The published value: rendered events go through the PII policy (src/auth/pii.policy.ts) as a
 * role without PII sees them — no email or phone in the author of interactions.enriched.v1 or
 * in the display name of customer-sentiment.v1. The payload is parsed and written again only
 * when the policy hides something; otherwise it goes out byte for byte.
 */
function publicValue(r: OutboxEventRow): string | null {
  if (r.payload === null || r.part === 2) return r.payload;
  const displayName = displayNameFor(PUBLIC_VIEWER, r.display_name);
  if (r.part === 1) {
    if (displayName === r.display_name) return r.payload;
    const v = JSON.parse(r.payload) as { displayName: string | null };
    v.displayName = displayName;
    return JSON.stringify(v);
  }
  const handle = authorHandleFor(PUBLIC_VIEWER, r.author_source ?? '', r.author_handle);
  if (handle === r.author_handle && displayName === r.display_name) return r.payload;
  const v = JSON.parse(r.payload) as { author: { handle: string | null; displayName: string | null } };
  v.author = { handle, displayName };
  return JSON.stringify(v);
}

/** 31-bit FNV-1a: a stable int4 advisory-lock key for a schema name. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) & 0x7fffffff;
}

import { Pool } from 'pg';
import type { Span } from '@opentelemetry/api';
import { pgConnection } from '../db/pg-connection';
import { PinnedClient } from '../db/session-settings';
import { keepWhileIdle } from '../db/sql';
import { isStatementTimeout } from '../db/failures';
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
  type OutboxSelection,
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
  /** those rows with their counts (a render cut by the statement_timeout reads them in smaller pieces) */
  rowCounts: PendingOutboxRow[];
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
 * How many rows or events one statement of a kind takes: halved when PostgreSQL cancels it
 * (an operator's `statement_timeout`), doubled back, up to `full`, after 32 statements in a
 * row that went through at the size of the time.
 */
class StatementSize {
  private size: number;
  private fits = 0;
  constructor(readonly full: number) {
    this.size = full;
  }
  get current(): number {
    return this.size;
  }
  /** After a statement of `n` was cancelled: the size to try next (under `n`), or null when `n` was one already. */
  cut(n: number): number | null {
    if (n <= 1) return null;
    this.size = Math.max(1, Math.min(this.size, Math.floor(n / 2)));
    this.fits = 0;
    return this.size;
  }
  fit(): void {
    if (this.size < this.full && ++this.fits >= 32) {
      this.size = Math.min(this.full, this.size * 2);
      this.fits = 0;
    }
  }
}

/**
 * A statement of the relay cancelled by PostgreSQL (57014): the relay cancels none of its own, so
 * this is the database's `statement_timeout` or an operator's `pg_cancel_backend`; either way, the
 * same statement in smaller pieces goes through (`isStatementTimeout` counts every 57014).
 */
const cancelled = isStatementTimeout;

/** What one render statement reads: whole rows, or events `lo`..`hi` of one part of one row; `size` events. */
type Piece = { rows: PendingOutboxRow[]; size: number } | { slice: { id: string; part: number; lo: number; hi: number }; size: number };

const eventsOf = (p: PendingOutboxRow): number => p.n0 + p.n1 + p.n2;

/** `pieces` again, none above `limit` events: rows grouped while they fit, a larger row or slice cut into slices of one part. */
function cutPieces(pieces: readonly Piece[], limit: number): Piece[] {
  const out: Piece[] = [];
  let group: { rows: PendingOutboxRow[]; size: number } | null = null;
  const slices = (id: string, part: number, lo: number, hi: number) => {
    group = null;
    for (let from = lo; from <= hi; from += limit) {
      const to = Math.min(hi, from + limit - 1);
      out.push({ slice: { id, part, lo: from, hi: to }, size: to - from + 1 });
    }
  };
  for (const piece of pieces) {
    if ('slice' in piece) {
      slices(piece.slice.id, piece.slice.part, piece.slice.lo, piece.slice.hi);
      continue;
    }
    for (const row of piece.rows) {
      const n = eventsOf(row);
      if (n > limit) {
        for (const [part, count] of [row.n0, row.n1, row.n2].entries()) if (count > 0) slices(row.id, part, 1, count);
        continue;
      }
      if (group && group.size + n > limit) group = null;
      if (!group) out.push((group = { rows: [], size: 0 }));
      group.rows.push(row);
      group.size += n;
    }
  }
  return out;
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
  /**
   * since when publishing fails: `at` on the monotonic clock (how long it has failed), `date` on
   * the wall clock (what /readyz names). On the wall clock alone, a host clock stepped forward made
   * /readyz fail at once on a failure a second old, and one stepped back hid an outage for the step.
   */
  private failingSince: { at: number; date: Date } | null = null;
  private lastError: string | null = null;
  /**
   * when the backlog, the retention and the parked rows were last looked at, on the monotonic clock
   * (performance.now()): on the wall clock a host clock stepped back an hour stopped all three for
   * that hour (a parked row due again waited the hour out)
   */
  private lastBacklogAt = -Infinity;
  private lastRetentionAt = -Infinity;
  private readonly retentionSeconds: number;
  private readonly parkAfterAttempts: number;
  private readonly parkedRetryMs: number;
  private readonly maxParkedRetryMs: number;
  private lastParkedCheckAt = -Infinity;
  /** the rows of the chunk whose render or send failed last in this cycle (null: none did) */
  private lastFailed: string[] | null = null;
  /** rows per read of the queue, events per render statement, rows per marking, deletion and backlog count: cut by a statement_timeout */
  private readonly pendingSize = new StatementSize(256);
  private readonly renderSize: StatementSize;
  private readonly markSize = new StatementSize(10_000);
  private readonly deleteSize = new StatementSize(10_000);
  private readonly backlogSize = new StatementSize(1_000_000);
  /** whether the log has said that the database's statement_timeout cuts the relay's statements */
  private timeoutNoted = false;
  /**
   * Rows whose events Kafka acknowledged but whose marking failed (its statement cancelled even
   * for the row alone, or the database away): left out of the queue, so that they are not
   * published again, and marked at the start of the next cycles; with their events and the time
   * of the acknowledgement. A new leader after this one publishes them again (at least once).
   */
  private readonly unmarked = new Map<string, { events: number; ackedAt: number }>();
  /** the row of the one event whose own statement was cancelled in the render that failed last */
  private failingRow: string | null = null;

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
      // as the data sources' pools (src/db/data-source.ts): at least the URL's connect_timeout
      connectionTimeoutMillis: Math.max(10_000, pgConnection(db.url).connectTimeoutMs ?? 0),
      options: db.schema ? `-c search_path=${db.schema}` : undefined,
      // the session settings rendering depends on (float digits of scores), whatever the database's defaults
      Client: PinnedClient,
    });
    // An idle connection dropped by the server: the pool replaces it; the cycle that needs it retries.
    this.pool.on('error', (e) => this.log.warn({ err: e }, 'outbox relay pool connection lost'));
    this.batchSize = opts.batchSize ?? 500;
    this.renderSize = new StatementSize(this.batchSize);
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
    if (this.failingSince !== null && performance.now() - this.failingSince.at > this.unhealthyAfterMs) {
      return `outbox relay cannot publish since ${this.failingSince.date.toISOString()}: ${this.lastError}`;
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
      // on the monotonic clock: a host clock stepped back mid-drain made a 5 s drain last the step
      const deadline = performance.now() + drainMs;
      try {
        while (performance.now() < deadline && (await this.publishOnce()) > 0);
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
        await this.markUnmarked();
        await this.retryParked();
        await this.publishAll();
        this.failingSince = null;
        backoff = this.settings.outboxPollMs;
        await this.updateBacklog(false);
        await this.idle(this.settings.outboxPollMs);
      } catch (e) {
        this.failingSince ??= { at: performance.now(), date: new Date() };
        this.lastError = (e as Error).message;
        const missing = missingTopicOf(e);
        const alone = cancelled(e) && this.lastFailed !== null;
        if (missing !== null) {
          // not created again: the row is parked as any row failing on its own (the rows of other topics after it go on)
          if (await this.topicMissing(missing)) {
            backoff = this.settings.outboxPollMs;
            continue;
          }
        } else if (alone) {
          // short and plain: /readyz shows it (publicReason in src/http/http-server.ts)
          this.lastError = 'the statement_timeout of the database cancels the statements of an outbox row even one event at a time';
          this.log.warn(
            { err: e, outboxRows: this.lastFailed, retryInMs: backoff, parkAfterAttempts: this.parkAfterAttempts },
            "an outbox row's statement ran past the database's statement_timeout even for one event alone: counted as a failed attempt of the row; it is parked once it fails on its own while the rows after it go out",
          );
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
    return this.chunksOf(await this.pending(busy));
  }

  /** The oldest unsent rows, leaving out `busy` and the rows waiting for their marking; fewer at a time while a statement_timeout cuts the read. */
  private async pending(busy: readonly string[]): Promise<PendingOutboxRow[]> {
    const leftOut = this.unmarked.size > 0 ? [...busy, ...this.unmarked.keys()] : busy;
    for (;;) {
      const limit = this.pendingSize.current;
      try {
        const rows = await pendingOutboxRows(this.pool, leftOut, limit);
        this.pendingSize.fit();
        return rows;
      } catch (e) {
        this.cutOrThrow(e, 'the read of the queue', limit, this.pendingSize);
      }
    }
  }

  /**
   * After a statement of `n` rows or events failed: returns the size to try again with when the
   * database cancelled it and it can be cut, saying so in the log once; else throws `e`.
   */
  private cutOrThrow(e: unknown, what: string, n: number, size: StatementSize): number {
    if (!cancelled(e)) throw e;
    const next = size.cut(n);
    if (next === null) throw e;
    if (!this.timeoutNoted) {
      this.timeoutNoted = true;
      this.log.warn(
        { err: e, statement: what, from: n, to: next },
        "the database's statement_timeout cancels the outbox relay's statements: it now reads, renders and marks in smaller pieces, down to one row or event (nothing is parked or published twice for it; a higher statement_timeout for Earshot's role publishes in full batches again). Said once; an event whose own statement still runs past it is logged as failing",
      );
    } else this.log.debug({ statement: what, from: n, to: next }, 'outbox relay statement cut by the statement_timeout');
    return next;
  }

  /**
   * `pending` rows (in id order) as chunks. A row that failed before is a chunk of its own:
   * whether it fails again is then its own doing (see `parkFailingHead`), and the rows before it
   * go out without it (it was only the first row: a row whose event alone ran past the
   * statement_timeout held back the rows grouped before it in its chunk, cycle after cycle).
   */
  private chunksOf(pending: readonly PendingOutboxRow[]): Chunk[] {
    const chunks: Chunk[] = [];
    let group: Chunk | null = null;
    let planned = 0;
    for (const p of pending) {
      const n = p.n0 + p.n1 + p.n2;
      // about `batchSize` events per cycle of reading the table, as before, but at least a row
      if (planned > 0 && planned + n > this.batchSize * 4) break;
      const alone = p.attempts > 0;
      planned += n;
      if (n <= this.batchSize) {
        if (group && (alone || group.size + n > this.batchSize)) group = null;
        if (!group) chunks.push((group = { rows: [], rowCounts: [], slice: null, size: 0, completes: new Map(), touches: [], parts: [false, false, false] }));
        group.rows.push(p.id);
        group.rowCounts.push(p);
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
          slices.push({ rows: [], rowCounts: [], slice: { id: p.id, part, lo, hi }, size: hi - lo + 1, completes: new Map(), touches: [p.id], parts: [part === 0, part === 1, part === 2] });
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
    this.failingRow = null;
    try {
      rows = await this.readEvents(chunk);
    } catch (e) {
      // an event cancelled on its own: the failure is its row's, not the other rows' of the chunk
      await this.failed(chunk, e, this.failingRow);
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

  /**
   * A chunk's events, read in one statement per part while that fits the database's
   * statement_timeout; a statement it cancels is read again in halves, down to one event (the
   * pieces in row order, so the events keep theirs). Only an event whose own statement is
   * cancelled fails the chunk.
   */
  private async readEvents(chunk: Chunk): Promise<OutboxEventRow[]> {
    const whole: Piece = chunk.slice ? { slice: chunk.slice, size: chunk.size } : { rows: chunk.rowCounts, size: chunk.size };
    if (this.renderSize.current < chunk.size) return this.readPieces(cutPieces([whole], this.renderSize.current));
    // the whole chunk in one read, its parts at once (as when nothing is cut)
    try {
      const rows = await outboxEvents(this.pool, chunk.slice ? { slice: chunk.slice } : { ids: chunk.rows }, chunk.parts);
      this.renderSize.fit();
      return rows;
    } catch (e) {
      if (chunk.size <= 1 && cancelled(e)) return this.readPieces([whole]);
      return this.readPieces(cutPieces([whole], this.cutOrThrow(e, 'the render of events', chunk.size, this.renderSize)));
    }
  }

  /** `pieces` one statement each, in order; one cancelled is cut smaller; one event cancelled twice in a row fails the chunk. */
  private async readPieces(pieces: Piece[]): Promise<OutboxEventRow[]> {
    const out: OutboxEventRow[] = [];
    let todo = pieces;
    let again = false;
    while (todo.length > 0) {
      const piece = todo[0]!;
      const sel: OutboxSelection = 'slice' in piece ? { slice: piece.slice } : { ids: piece.rows.map((r) => r.id) };
      const parts: OutboxParts = 'slice' in piece ? [false, false, false] : [piece.rows.some((r) => r.n0 > 0), piece.rows.some((r) => r.n1 > 0), piece.rows.some((r) => r.n2 > 0)];
      try {
        for (const e of await outboxEvents(this.pool, sel, parts)) out.push(e);
        this.renderSize.fit();
        todo = todo.slice(1);
        again = false;
      } catch (e) {
        // one event: once more before it counts as the row's own failure (a loaded server's hiccup passes)
        if (piece.size <= 1 && cancelled(e) && !again) {
          again = true;
          continue;
        }
        if (piece.size <= 1 && cancelled(e)) this.failingRow = 'slice' in piece ? piece.slice.id : (piece.rows[0]?.id ?? null);
        todo = cutPieces(todo, this.cutOrThrow(e, 'the render of events', piece.size, this.renderSize));
      }
    }
    return out;
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
      await this.markSent([...chunk.completes].map(([id, events]) => ({ id, events })), ackedAt);
      await this.applyRetention();
    }
    return chunk.size;
  }

  /**
   * Marks rows sent whose events Kafka acknowledged at `ackedAt`, as many per statement as the
   * database's statement_timeout lets through (down to one). A row whose marking fails all the
   * same waits in `unmarked` (left out of the queue: not published again) for the next cycle;
   * throws when the database itself failed.
   */
  private async markSent(rows: { id: string; events: number }[], ackedAt: number): Promise<void> {
    let todo = rows;
    let again = false;
    while (todo.length > 0) {
      const part = todo.slice(0, this.markSize.current);
      try {
        const sent = await markOutboxRowsSent(this.pool, part.map((r) => r.id), (performance.now() - ackedAt) / 1000);
        this.markSize.fit();
        const events = new Map(part.map((r) => [r.id, r.events]));
        // one observation per event: its outbox row's commit to the broker's ack
        for (const d of sent) this.metrics.delay(d.delay, events.get(d.id) ?? 0);
        for (const r of part) this.unmarked.delete(r.id);
        todo = todo.slice(part.length);
        again = false;
      } catch (e) {
        if (cancelled(e) && part.length > 1) {
          this.cutOrThrow(e, 'the marking of sent rows', part.length, this.markSize);
          continue;
        }
        if (cancelled(e) && !again) {
          again = true;
          continue;
        }
        for (const r of todo) {
          if (!this.unmarked.has(r.id)) {
            this.log.warn({ err: e, outboxRow: r.id }, 'outbox row published, but marking it sent failed: it is not published again for it, and marked at the next cycle');
          }
          this.unmarked.set(r.id, { events: r.events, ackedAt });
        }
        if (!cancelled(e)) throw e;
        return;
      }
    }
  }

  /** Marks the rows published before whose marking failed (see `unmarked`). */
  private async markUnmarked(): Promise<void> {
    const byAck = new Map<number, { id: string; events: number }[]>();
    for (const [id, { events, ackedAt }] of this.unmarked) {
      const list = byAck.get(ackedAt) ?? [];
      list.push({ id, events });
      byAck.set(ackedAt, list);
    }
    for (const [ackedAt, rows] of byAck) await this.markSent(rows, ackedAt);
  }

  /** Records a failed attempt on the rows a chunk touched (not while the database itself fails). */
  private async failed(chunk: Chunk, e: unknown, row: string | null = null): Promise<void> {
    this.lastFailed = row === null ? chunk.touches : [row];
    await markOutboxRowsFailed(this.pool, this.lastFailed, String((e as Error).message)).catch(() => undefined);
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
      const pending = await this.pending([]);
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
    if (this.parkAfterAttempts <= 0 || performance.now() - this.lastParkedCheckAt < 1_000) return;
    this.lastParkedCheckAt = performance.now();
    for (;;) {
      const row = await dueParkedOutboxRow(this.pool, this.parkAfterAttempts, this.parkedRetryMs / 1000, this.maxParkedRetryMs / 1000);
      // published already, its marking waits (`unmarked`): not published again
      if (!row || !this.running || this.unmarked.has(row.id)) return;
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

  /**
   * Deletes rows sent longer ago than the retention: at most 10,000 at most once a minute, in as
   * many statements as the database's statement_timeout needs (for at most 2 s). A failure is
   * logged and tried again a minute later; it never fails the publishing.
   */
  private async applyRetention(): Promise<void> {
    if (performance.now() - this.lastRetentionAt < 60_000) return;
    this.lastRetentionAt = performance.now();
    const started = performance.now();
    let deleted = 0;
    try {
      while (deleted < 10_000 && performance.now() - started < 2_000) {
        const limit = Math.min(this.deleteSize.current, 10_000 - deleted);
        let n: number;
        try {
          n = await deleteSentOutboxRows(this.pool, this.retentionSeconds, limit);
          this.deleteSize.fit();
        } catch (e) {
          this.cutOrThrow(e, 'the deletion of sent rows', limit, this.deleteSize);
          continue;
        }
        deleted += n;
        if (n < limit) break;
      }
    } catch (e) {
      this.log.warn({ err: e, deleted }, 'could not delete the sent outbox rows past the retention; tried again in a minute');
    }
  }

  /**
   * The backlog and parked gauges, counted over the unsent rows in as many statements as the
   * database's statement_timeout needs. A count that fails leaves the gauges as they were: it
   * never fails the publishing.
   */
  private async updateBacklog(force: boolean): Promise<void> {
    if (!force && performance.now() - this.lastBacklogAt < 1_000) return;
    this.lastBacklogAt = performance.now();
    let events = 0;
    let parkedRows = 0;
    let after: string | null = null;
    try {
      for (;;) {
        const limit = this.backlogSize.current;
        let piece: Awaited<ReturnType<typeof outboxBacklog>>;
        try {
          piece = await outboxBacklog(this.pool, after, limit);
          this.backlogSize.fit();
        } catch (e) {
          this.cutOrThrow(e, 'the count of the backlog', limit, this.backlogSize);
          continue;
        }
        events += piece.events;
        parkedRows += piece.parkedRows;
        if (piece.rows < limit || piece.lastId === null) break;
        after = piece.lastId;
      }
    } catch (e) {
      this.log.debug({ err: e }, 'could not count the outbox backlog');
      return;
    }
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

import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { parseMessage, type InteractionMessage } from '../interactions/interaction-message';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { contextFromHeaders, inSpan, SpanKind, trace } from '../shared/tracing';
import type { RecordInteractionsService } from '../interactions/record-interactions.service';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import { DeadLetterPublisher, isPermanentDataError, validationKind, type DeadLetter } from './dead-letter';
import { ensureTopics, type KafkaSettings } from './kafka-client';

export interface KafkaConsumerOptions {
  /** messages per pipeline call, i.e. per database transaction and per offset commit */
  chunkSize?: number;
  /** first and longest wait between retries of a transient failure */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** readiness fails when the broker has not been heard from for this long */
  contactTimeoutMs?: number;
}

interface Control {
  isRunning(): boolean;
  isStale(): boolean;
  heartbeat(): Promise<void>;
}

interface ChunkResult {
  accepted: number;
  duplicates: number;
  letters: DeadLetter[];
}

/** Thrown out of a retry loop when the consumer stops or loses the partition meanwhile. */
class Abandoned extends Error {}

/**
 * The `ingest` role's Kafka consumer: reads the configured topics in one consumer group and
 * feeds each chunk of a partition's batch to the same pipeline as POST /ingest.
 *
 * What must stay true:
 * - an offset is committed only after the chunk's database transaction has committed and its
 *   dead letters are acknowledged by the broker, so a crash at any point redelivers, never loses;
 * - redelivery never duplicates, because the pipeline ignores a known (source, externalId);
 * - a partition's messages are processed in offset order, one chunk at a time;
 * - a transient failure (database down, deadlock, timeout, broker error) makes the partition
 *   wait and retry the same chunk with exponential backoff, forever: it never skips;
 * - only a message that can never succeed (bad JSON, schema violation, too large, rejected by
 *   the database for its content) goes to `<topic>.dlq`;
 * - `stop()` lets the chunk in flight finish and commit, then leaves the group.
 */
export class KafkaIngestConsumer {
  private readonly consumer: Consumer;
  private readonly dlq: DeadLetterPublisher;
  private readonly chunkSize: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private readonly contactTimeoutMs: number;
  private readonly stopSignal = new AbortController();
  private state: 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' = 'idle';
  private problem: string | null = 'not started';
  private lastContact = 0;
  private joined = false;
  private joinWaiters: (() => void)[] = [];

  constructor(
    private readonly kafka: Kafka,
    private readonly settings: KafkaSettings,
    private readonly recorder: RecordInteractionsService,
    private readonly maxTextBytes: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    opts: KafkaConsumerOptions = {},
  ) {
    this.chunkSize = opts.chunkSize ?? 500;
    this.retryInitialMs = opts.retryInitialMs ?? 200;
    this.retryMaxMs = opts.retryMaxMs ?? 5_000;
    this.contactTimeoutMs = opts.contactTimeoutMs ?? 45_000;
    this.dlq = new DeadLetterPublisher(kafka, metrics);
    this.consumer = kafka.consumer({
      groupId: settings.groupId,
      sessionTimeout: settings.sessionTimeoutMs,
      heartbeatInterval: Math.min(3_000, Math.floor(settings.sessionTimeoutMs / 3)),
      // Consumption must resume after any crash: a stopped consumer would stall ingest silently.
      retry: { initialRetryTime: 300, retries: 10, maxRetryTime: 10_000, restartOnFailure: async () => this.state === 'running' },
      allowAutoTopicCreation: false,
      // An idle long-poll delays stop() by up to this long; the broker answers sooner whenever data arrives.
      maxWaitTimeInMs: 1_000,
    });
    this.watchEvents();
  }

  /**
   * Connects, creates missing topics (when allowed), subscribes and starts consuming.
   * Resolves once consumption runs; joining the group continues in the background.
   */
  async start(): Promise<void> {
    this.state = 'starting';
    this.problem = 'connecting to the broker';
    await ensureTopics(this.kafka, this.settings, this.log);
    await this.dlq.connect();
    await this.consumer.connect();
    // A new group starts at the beginning: messages produced before the first start count too.
    await this.consumer.subscribe({ topics: [...this.settings.topics], fromBeginning: true });
    this.problem = 'joining the consumer group';
    this.state = 'running';
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.settings.concurrency,
      eachBatch: (payload) => this.eachBatch(payload),
    });
    this.log.info({ topics: this.settings.topics, groupId: this.settings.groupId, concurrency: this.settings.concurrency }, 'kafka consumer started');
  }

  /** Resolves once this member has joined its group (after `start`). */
  whenJoined(): Promise<void> {
    if (this.joined) return Promise.resolve();
    return new Promise((resolve) => this.joinWaiters.push(resolve));
  }

  /** null when consuming normally, else why not (for /readyz). */
  health(): string | null {
    if (this.state !== 'running') return `kafka consumer is ${this.state}`;
    if (this.problem) return `kafka consumer: ${this.problem}`;
    const silent = Date.now() - this.lastContact;
    if (silent > this.contactTimeoutMs) return `kafka consumer: no answer from the broker for ${Math.round(silent / 1000)} s`;
    return null;
  }

  /** Stops fetching, lets the chunk in flight finish and commit, leaves the group, disconnects. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    this.state = 'stopping';
    // Wakes a partition that waits between retries: its chunk was not committed and will be redelivered.
    this.stopSignal.abort();
    await this.consumer.disconnect().catch((e: unknown) => this.log.warn({ err: e }, 'kafka consumer disconnect failed'));
    await this.dlq.disconnect().catch(() => undefined);
    this.state = 'stopped';
    this.metrics.kafkaConsumerLag.reset();
    this.log.info('kafka consumer stopped');
  }

  private watchEvents(): void {
    const { events } = this.consumer;
    const touch = () => {
      this.lastContact = Date.now();
    };
    this.consumer.on(events.HEARTBEAT, touch);
    this.consumer.on(events.FETCH, touch);
    this.consumer.on(events.COMMIT_OFFSETS, touch);
    this.consumer.on(events.GROUP_JOIN, (e) => {
      touch();
      this.joined = true;
      this.problem = null;
      // A partition that moved to another member must not keep reporting this member's lag.
      this.metrics.kafkaConsumerLag.reset();
      this.log.info({ memberId: e.payload.memberId, assignment: e.payload.memberAssignment }, 'kafka consumer joined its group');
      for (const w of this.joinWaiters.splice(0)) w();
    });
    this.consumer.on(events.CRASH, (e) => {
      this.problem = `crashed (${e.payload.error.message}); restarting: ${e.payload.restart}`;
      this.log.error({ err: e.payload.error, restart: e.payload.restart }, 'kafka consumer crashed');
    });
    this.consumer.on(events.DISCONNECT, () => {
      if (this.state === 'running') this.problem = 'disconnected from the broker';
    });
  }

  private async eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, commitOffsetsIfNecessary, heartbeat, isRunning, isStale } = payload;
    const { topic, partition } = batch;
    const control: Control = { isRunning, isStale, heartbeat };
    const highWatermark = BigInt(batch.highWatermark);
    for (let i = 0; i < batch.messages.length; i += this.chunkSize) {
      if (!isRunning() || isStale()) return;
      const chunk = batch.messages.slice(i, i + this.chunkSize);
      let result: ChunkResult;
      try {
        result = await this.retrying(topic, partition, control, 'record', () => this.recordChunk(topic, partition, chunk));
        // Dead letters are acknowledged before the offset moves past them.
        await this.retrying(topic, partition, control, 'dead-letter', () => this.dlq.send(result.letters));
      } catch (e) {
        if (e instanceof Abandoned) return;
        throw e;
      }
      const last = chunk[chunk.length - 1]!.offset;
      resolveOffset(last);
      const next = BigInt(last) + 1n;
      await commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition, offset: next.toString() }] }] });
      this.count(topic, result);
      this.metrics.kafkaConsumerLag.set({ topic, partition: String(partition) }, Number(highWatermark > next ? highWatermark - next : 0n));
      await heartbeat();
    }
  }

  private count(topic: string, r: ChunkResult): void {
    this.metrics.kafkaMessages.inc({ topic, result: 'accepted' }, r.accepted);
    this.metrics.kafkaMessages.inc({ topic, result: 'duplicate' }, r.duplicates);
    this.metrics.kafkaMessages.inc({ topic, result: 'dead_letter' }, r.letters.length);
    this.metrics.ingested.inc({ channel: 'kafka', result: 'accepted' }, r.accepted);
    this.metrics.ingested.inc({ channel: 'kafka', result: 'duplicate' }, r.duplicates);
    this.metrics.ingested.inc({ channel: 'kafka', result: 'rejected' }, r.letters.length);
  }

  /** Validates a chunk and records its valid messages in one transaction; throws only transient errors. */
  private async recordChunk(topic: string, partition: number, chunk: KafkaMessage[]): Promise<ChunkResult> {
    const letters: DeadLetter[] = [];
    const valid: { message: KafkaMessage; parsed: InteractionMessage }[] = [];
    for (const message of chunk) {
      const value = message.value;
      if (value === null || value.length === 0) {
        letters.push({ topic, partition, message, kind: 'empty', reason: 'the message has no value' });
      } else if (value.length > this.settings.maxMessageBytes) {
        letters.push({ topic, partition, message, kind: 'too-large', reason: `the message is ${value.length} bytes, over the limit of ${this.settings.maxMessageBytes} (KAFKA_MAX_MESSAGE_BYTES)` });
      } else {
        const r = parseMessage(value, this.maxTextBytes);
        if (r.ok) valid.push({ message, parsed: r.message });
        else letters.push({ topic, partition, message, kind: validationKind(r.error), reason: r.error });
      }
    }
    const end = this.metrics.ingestBatchDuration.startTimer();
    const out = await this.recordIsolating(topic, partition, valid, letters);
    end();
    // Letters in offset order make the DLQ read like the input.
    letters.sort((a, b) => (BigInt(a.message.offset) < BigInt(b.message.offset) ? -1 : 1));
    return { ...out, letters };
  }

  /**
   * Records the items; when the database rejects the batch for the content of some message,
   * halves the batch until the offending messages are alone, and dead-letters only those.
   */
  private async recordIsolating(
    topic: string,
    partition: number,
    items: { message: KafkaMessage; parsed: InteractionMessage }[],
    letters: DeadLetter[],
  ): Promise<{ accepted: number; duplicates: number }> {
    if (items.length === 0) return { accepted: 0, duplicates: 0 };
    try {
      // The chunk continues the trace of its first traced message; the others are links.
      const contexts = items.map((i) => contextFromHeaders(i.message.headers as Record<string, unknown>)).filter((c) => trace.getSpanContext(c));
      const out = await inSpan(
        `${topic} process`,
        {
          kind: SpanKind.CONSUMER,
          parent: contexts[0] ?? ROOT_CONTEXT,
          links: contexts.slice(1).map((c) => ({ context: trace.getSpanContext(c)! })),
          attributes: { 'messaging.system': 'kafka', 'messaging.operation.type': 'process', 'messaging.destination.name': topic, 'messaging.destination.partition.id': String(partition), 'messaging.batch.message_count': items.length },
        },
        () => this.recorder.record(items.map((i) => i.parsed)),
      );
      return { accepted: out.accepted, duplicates: out.duplicates };
    } catch (e) {
      if (!isPermanentDataError(e)) throw e;
      if (items.length === 1) {
        letters.push({ topic, partition, message: items[0]!.message, kind: 'rejected-by-database', reason: (e as Error).message });
        return { accepted: 0, duplicates: 0 };
      }
      const mid = Math.ceil(items.length / 2);
      const a = await this.recordIsolating(topic, partition, items.slice(0, mid), letters);
      const b = await this.recordIsolating(topic, partition, items.slice(mid), letters);
      return { accepted: a.accepted + b.accepted, duplicates: a.duplicates + b.duplicates };
    }
  }

  /** Runs `fn` until it succeeds, waiting with exponential backoff and jitter between attempts. */
  private async retrying<T>(topic: string, partition: number, control: Control, what: string, fn: () => Promise<T>): Promise<T> {
    let delay = this.retryInitialMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const out = await fn();
        if (attempt > 1) {
          this.problem = null;
          this.log.info({ topic, partition, attempts: attempt }, `${what} succeeded after transient failures; partition resumes`);
        }
        return out;
      } catch (e) {
        if (!control.isRunning() || control.isStale() || this.stopSignal.signal.aborted) throw new Abandoned();
        this.metrics.kafkaRetries.inc({ topic });
        const wait = Math.round(delay * (0.75 + Math.random() * 0.5));
        const log = attempt === 1 || attempt % 10 === 0 ? this.log.warn.bind(this.log) : this.log.debug.bind(this.log);
        log({ err: e, topic, partition, attempt, waitMs: wait }, `${what} failed transiently; partition pauses and retries`);
        await sleep(wait, this.stopSignal.signal);
        if (this.stopSignal.signal.aborted) throw new Abandoned();
        // Keeps group membership through a long outage; throws when a rebalance took the partition.
        await control.heartbeat();
        delay = Math.min(delay * 2, this.retryMaxMs);
      }
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

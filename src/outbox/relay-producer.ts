import { ProduceAcks, Producer, stringSerializers, type ProducerOptions, type SASLMechanismValue } from '@platformatic/kafka';
import type { Kafka } from 'kafkajs';
import type { Config } from '../config/config';
import { keyHash } from './partitioner';
import { IdempotentKafkajsProducer } from '../shared/kafkajs-producer';
import { UNSENT } from '../shared/kafka-requests';

/** One event as the relay publishes it: a null key goes to any partition, a null value is a tombstone. */
export interface RelayMessage {
  topic: string;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

/**
 * The relay's producer. What every implementation must keep: idempotent (producer id and
 * sequence numbers, so a request the client itself sends again is not written twice; a send
 * attempted again may write what the broker took the first time again, same event-id), acks from all in-sync replicas,
 * one send at a time, `send` resolving only once the broker acknowledged every message in it,
 * the messages of one partition written in the order given, and a keyed message on partition
 * `toPositive(murmur2(key)) % partitions`, as the Java client's default partitioner and kafkajs'
 * put it (`partitioner.ts`).
 */
export interface RelayProducer {
  connect(): Promise<void>;
  send(messages: readonly RelayMessage[]): Promise<void>;
  disconnect(): Promise<void>;
  /**
   * Creates the output topics that do not exist and returns their names; absent when Earshot
   * may not create topics (KAFKA_CREATE_TOPICS=false).
   */
  createMissingTopics?: () => Promise<string[]>;
}

/** Whether @platformatic/kafka deems every error in the chain worth another attempt (its own rule). */
function retriable(e: unknown, depth = 0): boolean {
  if (e === null || typeof e !== 'object' || depth > 5) return true;
  const err = e as { canRetry?: unknown; errors?: unknown; cause?: unknown };
  if (err.canRetry === false) return false;
  return [...(Array.isArray(err.errors) ? err.errors : []), err.cause].every((inner) => inner === undefined || retriable(inner, depth + 1));
}

/**
 * The partitions ("topic:partition") the broker acknowledged in a produce that failed as a whole:
 * those of the destinations that answered without error (`produced`), and those a refusing
 * answer reports written (error code 0 beside the refused ones).
 */
export function acknowledgedPartitions(e: unknown): Set<string> {
  const written = new Set<string>();
  const seen = new Set<unknown>();
  const visit = (err: unknown, depth: number): void => {
    if (err === null || typeof err !== 'object' || depth > 6 || seen.has(err)) return;
    seen.add(err);
    const x = err as {
      produced?: { offsets?: { topic: string; partition: number }[] };
      response?: { responses?: { name?: string; partitionResponses?: { index: number; errorCode: number }[] }[] };
      errors?: unknown;
      cause?: unknown;
    };
    for (const o of x.produced?.offsets ?? []) written.add(`${o.topic}:${o.partition}`);
    for (const t of Array.isArray(x.response?.responses) ? x.response.responses : []) {
      for (const p of t.partitionResponses ?? []) if (p.errorCode === 0 && t.name !== undefined) written.add(`${t.name}:${p.index}`);
    }
    for (const inner of Array.isArray(x.errors) ? x.errors : []) visit(inner, depth + 1);
    visit(x.cause, depth + 1);
  };
  visit(e, 0);
  return written;
}

/** Where keyless events go: round robin, as kafkajs spread them. */
function roundRobin(): () => number {
  let next = Math.floor(Math.random() * 0x7fffffff);
  return () => (next = (next + 1) & 0x7fffffff);
}

/**
 * @platformatic/kafka: about a third less CPU per event than kafkajs in the relay (see README,
 * bench:ingest), mostly because records are written into one growing buffer instead of a
 * zero-filled buffer per record and header, and CRC32C is native (@node-rs/crc32) or WebAssembly.
 * Its own murmur2 is computed with BigInt (and its default partitioner is not Java's: it keeps the
 * sign bit), so the partition comes from `keyHash` here.
 */
export class PlatformaticRelayProducer implements RelayProducer {
  private readonly producer: Producer<string | null, string | null, string, string>;
  private readonly retries: number;
  private readonly pause: (attempt: number) => Promise<void>;
  private readonly keyless = roundRobin();

  /**
   * `retries`: how often a failed request is retried within one `send` (8; fewer where a failure
   * should surface at once). `pause`: the wait before retry `attempt` (0-based; 600 ms doubling
   * to 10 s). `metadataMaxAgeMs`: how long the topics' metadata is used before it is fetched
   * again (the library's 5 s). The last two are for tests that must order a retry after an event.
   */
  constructor(
    settings: Config['kafka'],
    clientSuffix: string,
    opts: { retries?: number; pause?: (attempt: number) => Promise<void>; metadataMaxAgeMs?: number } = {},
  ) {
    if (!settings.brokers || settings.brokers.length === 0) throw new Error('KAFKA_BROKERS is not set');
    const options: ProducerOptions<string | null, string | null, string, string> = {
      clientId: `${settings.clientId}-${clientSuffix}`,
      bootstrapBrokers: [...settings.brokers],
      connectTimeout: 3_000,
      ...(opts.metadataMaxAgeMs !== undefined ? { metadataMaxAge: opts.metadataMaxAgeMs } : {}),
      timeout: 30_000,
      requestTimeout: 30_000,
      // One attempt per send: `send` below retries, placing the events again each time. The
      // library's own retries (and its resend on stale metadata) look the partition it placed an
      // event on up in metadata fetched again: after an operator recreated an output topic with
      // fewer partitions that partition is gone, a TypeError was thrown out of a socket callback
      // and the send never settled (the relay waited for ever; in its thread, the thread died).
      // `false`, not 0: an idempotent producer given 0 or 1 retries retries for ever.
      retries: false,
      repeatOnStaleMetadata: false,
      idempotent: true,
      acks: ProduceAcks.ALL,
      autocreateTopics: false,
      // at most one request per connection in flight: order per partition needs no resequencing
      maxInflights: 1,
      serializers: stringSerializers as ProducerOptions<string | null, string | null, string, string>['serializers'],
    };
    // TLS and SASL as every other Kafka client of Earshot (kafka-client.ts)
    if (settings.ssl) options.tls = {};
    if (settings.sasl) options.sasl = { mechanism: settings.sasl.mechanism.toUpperCase() as SASLMechanismValue, username: settings.sasl.username, password: settings.sasl.password };
    this.producer = new Producer(options);
    this.retries = opts.retries ?? 8;
    this.pause = opts.pause ?? ((attempt) => new Promise((resolve) => setTimeout(resolve, Math.min(300 * 2 ** (attempt + 1), 10_000))));
  }

  async connect(): Promise<void> {
    // the producer id, as kafkajs' connect() of an idempotent producer fetched it: fails at start when the broker is away
    await this.attempts(() => this.producer.initIdempotentProducer({}));
  }

  /**
   * Each attempt places the events still unwritten on the partitions of the topic as the broker
   * last described it (metadata fetched again after a failure), so a topic recreated with fewer
   * partitions is written once its new metadata is read. The broker writes each partition of a
   * produce request on its own: when some partitions of an attempt are refused (a leader not yet
   * ready on a topic just created, too few in-sync replicas, a leader moving), those it
   * acknowledged are not sent again, only the refused ones. A request that failed as a whole (a
   * timeout, a lost connection) is sent again with new sequence numbers, and what the broker
   * wrote of it without acknowledging is written twice (consumers dedupe on event-id).
   */
  async send(messages: readonly RelayMessage[]): Promise<void> {
    if (messages.length === 0) return;
    let pending: readonly RelayMessage[] = messages;
    try {
      await this.attempts(async () => {
        const placed = await this.place(pending);
        try {
          await this.producer.send({ messages: placed as RelayMessage[] });
          pending = [];
        } catch (e) {
          const written = acknowledgedPartitions(e);
          if (written.size > 0) pending = pending.filter((_, i) => !written.has(`${placed[i]!.topic}:${placed[i]!.partition}`));
          throw e;
        }
      });
    } catch (e) {
      // what is still unwritten, for a caller that sends again (`sendHalving`: only those)
      if (pending.length < messages.length && e !== null && typeof e === 'object') Object.defineProperty(e, UNSENT, { value: pending, configurable: true });
      throw e;
    }
  }

  /** The messages with their partition fixed: murmur2 of the key (as `partitioner.ts`), keyless ones round robin. */
  private async place(messages: readonly RelayMessage[]): Promise<(RelayMessage & { partition: number })[]> {
    const topics = [...new Set(messages.map((m) => m.topic))];
    const metadata = await this.producer.metadata({ topics });
    return messages.map((m) => {
      const count = metadata.topics.get(m.topic)!.partitionsCount;
      // a literal, not a spread: a spread cost 1 µs an event
      return { topic: m.topic, key: m.key, value: m.value, headers: m.headers, partition: (m.key ? keyHash(Buffer.from(m.key, 'utf8')) : this.keyless()) % count };
    });
  }

  /** Brief broker hiccups: up to `retries` more attempts, 600 ms doubling to 10 s apart; the relay's loop retries beyond that. */
  private async attempts(fn: () => Promise<unknown>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await fn();
        return;
      } catch (e) {
        if (attempt >= this.retries || !retriable(e)) throw e;
        this.producer.clearMetadata();
        await this.pause(attempt);
      }
    }
  }

  async disconnect(): Promise<void> {
    await this.producer.close();
  }
}

/**
 * kafkajs, as the relay published before: `EARSHOT_OUTBOX_PRODUCER=kafkajs`, for brokers older than
 * @platformatic/kafka supports (Kafka 3.5), and to compare. Same partitions (kafkajs' Java-compatible
 * default partitioner).
 */
export class KafkajsRelayProducer implements RelayProducer {
  private readonly producer: IdempotentKafkajsProducer;

  constructor(kafka: Kafka) {
    this.producer = new IdempotentKafkajsProducer(kafka);
  }

  connect(): Promise<void> {
    return this.producer.connect();
  }

  send(messages: readonly RelayMessage[]): Promise<void> {
    return this.producer.send(messages);
  }

  disconnect(): Promise<void> {
    return this.producer.disconnect();
  }
}

import { ProduceAcks, Producer, stringSerializers, type ProducerOptions, type SASLMechanismValue } from '@platformatic/kafka';
import type { Kafka } from 'kafkajs';
import type { Config } from '../config/config';
import { keyHash } from './partitioner';
import { IdempotentKafkajsProducer } from '../shared/kafkajs-producer';

/** One event as the relay publishes it: a null key goes to any partition, a null value is a tombstone. */
export interface RelayMessage {
  topic: string;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

/**
 * The relay's producer. What every implementation must keep: idempotent (producer id and
 * sequence numbers, so a retried request is not written twice), acks from all in-sync replicas,
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

  /** `retries`: how often a failed request is retried within one `send` (8; fewer where a failure should surface at once) */
  constructor(settings: Config['kafka'], clientSuffix: string, opts: { retries?: number } = {}) {
    if (!settings.brokers || settings.brokers.length === 0) throw new Error('KAFKA_BROKERS is not set');
    const keyless = roundRobin();
    const options: ProducerOptions<string | null, string | null, string, string> = {
      clientId: `${settings.clientId}-${clientSuffix}`,
      bootstrapBrokers: [...settings.brokers],
      connectTimeout: 3_000,
      timeout: 30_000,
      requestTimeout: 30_000,
      // brief broker hiccups are retried here (the same producer id and sequence numbers, so the
      // broker drops what it already has); the relay's loop retries beyond that
      retries: opts.retries ?? 8,
      retryDelay: (_client, _op, attempt) => Math.min(300 * 2 ** attempt, 10_000),
      idempotent: true,
      acks: ProduceAcks.ALL,
      autocreateTopics: false,
      // at most one request per connection in flight: order per partition needs no resequencing
      maxInflights: 1,
      serializers: stringSerializers as ProducerOptions<string | null, string | null, string, string>['serializers'],
      partitioner: (_message, key) => (key ? keyHash(key) : keyless()),
    };
    // TLS and SASL as every other Kafka client of Earshot (kafka-client.ts)
    if (settings.ssl) options.tls = {};
    if (settings.sasl) options.sasl = { mechanism: settings.sasl.mechanism.toUpperCase() as SASLMechanismValue, username: settings.sasl.username, password: settings.sasl.password };
    this.producer = new Producer(options);
  }

  async connect(): Promise<void> {
    // the producer id, as kafkajs' connect() of an idempotent producer fetched it: fails at start when the broker is away
    await this.producer.initIdempotentProducer({});
  }

  async send(messages: readonly RelayMessage[]): Promise<void> {
    if (messages.length === 0) return;
    await this.producer.send({ messages: messages as RelayMessage[] });
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

import { Partitioners, type IHeaders, type Kafka, type KafkaMessage, type Producer } from 'kafkajs';
import { isRetriable, sqlState } from '../db/failures';
import type { RejectionKind } from '../interactions/interaction-message';
import type { Metrics } from '../shared/metrics';
import { deadLetterTopic } from './kafka-client';

/** Why a message can never be processed; the `x-error-kind` header. */
export type DeadLetterKind =
  | RejectionKind
  | 'empty'
  /** refused by PostgreSQL for its content (a SQLSTATE that retrying cannot fix) */
  | 'rejected-by-database'
  /** the pipeline failed on it alone without a SQLSTATE (RangeError, TypeError …) */
  | 'unprocessable'
  /** part of a batch this consumer cannot decompress (codec unavailable, corrupt data) */
  | 'undecodable-batch';

export interface DeadLetter {
  topic: string;
  partition: number;
  message: KafkaMessage;
  kind: DeadLetterKind;
  reason: string;
}

/** Header values longer than this are cut: a reason is for humans, not a second payload. */
const MAX_REASON_CHARS = 2_000;

/** The error kind of a validation message from `parseMessage`. */
export function validationKind(error: string): DeadLetterKind {
  if (error.startsWith('malformed JSON')) return 'malformed-json';
  if (error.includes('longer than the limit')) return 'too-large';
  return 'schema-violation';
}

/**
 * The dead-letter record of a message: the original key and bytes, the original headers,
 * and `x-*` headers naming the error and where the message came from.
 *
 * What must stay true: the value is the original bytes, unchanged, so the message can be
 * replayed to its topic once the producer or Earshot is fixed.
 */
export function deadLetterRecord(d: DeadLetter, failedAt: Date = new Date()): { key: Buffer | null; value: Buffer | null; headers: IHeaders } {
  const ts = Number(d.message.timestamp);
  return {
    key: d.message.key ?? null,
    value: d.message.value ?? null,
    headers: {
      ...(d.message.headers ?? {}),
      'x-error': d.reason.length > MAX_REASON_CHARS ? `${d.reason.slice(0, MAX_REASON_CHARS)}…` : d.reason,
      'x-error-kind': d.kind,
      'x-original-topic': d.topic,
      'x-original-partition': String(d.partition),
      'x-original-offset': d.message.offset,
      'x-original-timestamp': Number.isFinite(ts) && ts >= 0 ? new Date(ts).toISOString() : String(d.message.timestamp),
      'x-failed-at': failedAt.toISOString(),
    },
  };
}

/**
 * True for a database failure that will fail again however often the same message is
 * retried: anything but a connection, lock, serialization or deadlock failure (see
 * src/db/failures.ts, the one classification of the write path).
 */
export function isPermanentDataError(e: unknown): boolean {
  return e !== null && e !== undefined && !isRetriable(e);
}

export { sqlState };

/**
 * Writes dead letters to `<topic>.dlq` with an idempotent producer and acks from all
 * in-sync replicas; `send` resolves only once the broker has them, so the caller may then
 * commit the original offsets.
 */
export class DeadLetterPublisher {
  private readonly producer: Producer;

  constructor(
    kafka: Kafka,
    private readonly metrics: Metrics,
  ) {
    this.producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
    });
  }

  connect(): Promise<void> {
    return this.producer.connect();
  }

  disconnect(): Promise<void> {
    return this.producer.disconnect();
  }

  async send(letters: DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    const byTopic = new Map<string, DeadLetter[]>();
    for (const d of letters) byTopic.set(d.topic, [...(byTopic.get(d.topic) ?? []), d]);
    const failedAt = new Date();
    await this.producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic].map(([topic, ds]) => ({ topic: deadLetterTopic(topic), messages: ds.map((d) => deadLetterRecord(d, failedAt)) })),
    });
    for (const d of letters) this.metrics.kafkaDeadLetters.inc({ topic: d.topic, kind: d.kind });
  }
}

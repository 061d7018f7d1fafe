import { Partitioners, type IHeaders, type Kafka, type KafkaMessage, type Producer } from 'kafkajs';
import type { Metrics } from '../shared/metrics';
import { deadLetterTopic } from './kafka-client';

/** Why a message can never be processed; the `x-error-kind` header. */
export type DeadLetterKind = 'malformed-json' | 'schema-violation' | 'too-large' | 'empty' | 'rejected-by-database';

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

/** PostgreSQL error classes that depend on the data of a message, not on the server's state. */
const PERMANENT_SQLSTATES = [/^22/, /^23502$/, /^23514$/, /^54/];

/**
 * True only for a database error that will fail again however often the same message is
 * retried (invalid text such as NUL bytes, a value out of range, a check violation).
 *
 * What must stay true: every other error — connection refused or terminated, pool timeout,
 * deadlock (40P01), serialization failure (40001), admin shutdown (57P01), unknown errors —
 * is transient, so that an outage pauses consumption and never dead-letters good data.
 */
export function isPermanentDataError(e: unknown): boolean {
  const code = sqlState(e);
  return code !== null && PERMANENT_SQLSTATES.some((re) => re.test(code));
}

function sqlState(e: unknown): string | null {
  if (!e || typeof e !== 'object') return null;
  const err = e as { code?: unknown; driverError?: { code?: unknown } };
  const code = err.driverError?.code ?? err.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

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

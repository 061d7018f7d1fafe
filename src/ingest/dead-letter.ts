import type { IHeaders, Kafka, KafkaMessage } from 'kafkajs';
import { isRetriable, sqlState } from '../db/failures';
import type { RejectionKind } from '../interactions/interaction-message';
import { missingTopicOf, recordBytes, sendHalving, splitIntoRequests } from '../shared/kafka-requests';
import { IdempotentKafkajsProducer } from '../shared/kafkajs-producer';
import type { Logger } from '../shared/logger';
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

/** The last instant a JavaScript Date holds (year 275760). */
const MAX_DATE_MS = 8.64e15;

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
  // Kafka's timestamp is any int64 (-1 when unset) and a broker keeps what the producer wrote;
  // a Date ends at 8.64e15 ms, past which toISOString threw and the letter was retried for ever.
  const readable = Number.isFinite(ts) && ts >= 0 && ts <= MAX_DATE_MS;
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
      'x-original-timestamp': readable ? new Date(ts).toISOString() : String(d.message.timestamp),
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

/** A dead-letter record with its topic, as the publisher sends it. */
interface LetterRecord {
  topic: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: IHeaders;
}

/** Keys longer than this are dropped with the value when a letter cannot go whole. */
const MAX_KEPT_KEY_BYTES = 1_024;

/**
 * A letter too large to go whole (over KAFKA_MAX_REQUEST_BYTES, or refused by the DLQ topic):
 * without the original value and headers (and a long key), with `x-value-dropped` saying how
 * large it was and where to find it; the `x-*` headers stay. Such a letter is replayed by
 * re-producing its offset from the source, as an undecodable batch's letters are.
 */
export function withoutValue(r: LetterRecord, bytes: number): LetterRecord {
  const headers: IHeaders = {};
  for (const [k, v] of Object.entries(r.headers)) if (k.startsWith('x-')) headers[k] = v;
  headers['x-value-dropped'] =
    `the letter was ${bytes} bytes with the original value and headers, more than the dead-letter topic takes (KAFKA_MAX_REQUEST_BYTES or its max.message.bytes): ` +
    `re-produce offset ${String(r.headers['x-original-offset'])} of partition ${String(r.headers['x-original-partition'])} of ${String(r.headers['x-original-topic'])} from the source`;
  return { topic: r.topic, key: r.key !== null && r.key.length <= MAX_KEPT_KEY_BYTES ? r.key : null, value: null, headers };
}

/**
 * Writes dead letters to `<topic>.dlq` with an idempotent producer and acks from all
 * in-sync replicas; `send` resolves only once the broker has them, so the caller may then
 * commit the original offsets.
 *
 * A partition's letters go out in requests of at most KAFKA_MAX_REQUEST_BYTES, in order. Before,
 * a chunk's letters were one request: 500 malformed messages of 8 kB, or a few texts over
 * EARSHOT_INGEST_MAX_TEXT_BYTES, made a record batch the broker refused, and the consumer retried
 * it for ever while its partition stalled. A letter too large on its own, or refused alone by the
 * DLQ topic, goes without its value (`withoutValue`).
 */
export class DeadLetterPublisher {
  private readonly producer: IdempotentKafkajsProducer;

  constructor(
    kafka: Kafka,
    private readonly metrics: Metrics,
    private readonly maxRequestBytes: number,
    /**
     * creates the dead-letter topics that do not exist (absent with KAFKA_CREATE_TOPICS=false): a
     * `.dlq` topic deleted while Earshot runs stalled its input partition at the next bad message
     */
    private readonly createMissingTopics?: () => Promise<string[]>,
    private readonly log?: Logger,
  ) {
    // replaced after a "too large" refusal (kafkajs keeps stale sequence numbers otherwise)
    this.producer = new IdempotentKafkajsProducer(kafka);
  }

  connect(): Promise<void> {
    return this.producer.connect();
  }

  disconnect(): Promise<void> {
    return this.producer.disconnect();
  }

  async send(letters: DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    const failedAt = new Date();
    const records = letters.map((d): LetterRecord => {
      const r = { topic: deadLetterTopic(d.topic), ...deadLetterRecord(d, failedAt) };
      const bytes = recordBytes(r);
      return bytes > this.maxRequestBytes ? withoutValue(r, bytes) : r;
    });
    for (const request of splitIntoRequests(records, this.maxRequestBytes).requests) {
      const send = () =>
        sendHalving(
          request,
          (rs) => this.producer.send(rs),
          // refused alone by the DLQ topic (a smaller max.message.bytes): it goes without its value
          (r) => this.producer.send([withoutValue(r, recordBytes(r))]),
        );
      try {
        await send();
      } catch (e) {
        const missing = missingTopicOf(e);
        if (missing === null) throw e;
        const created = (await this.createMissingTopics?.().catch(() => [])) ?? [];
        if (created.length === 0) {
          const topic = missing || request[0]!.topic;
          this.log?.error({ topic }, `dead-letter topic ${topic} does not exist${this.createMissingTopics ? ' and could not be created' : ' (KAFKA_CREATE_TOPICS=false)'}: create it; its input partition waits`);
          throw new DeadLetterTopicMissing(topic, e);
        }
        this.log?.error({ topics: created }, 'dead-letter topics did not exist (deleted while Earshot runs?): created again as at start; the waiting letters are written now');
        await send();
      }
    }
    for (const d of letters) this.metrics.kafkaDeadLetters.inc({ topic: d.topic, kind: d.kind });
  }
}

/** A dead-letter topic that does not exist and was not created: the partition waits for it. */
export class DeadLetterTopicMissing extends Error {
  constructor(
    readonly topic: string,
    cause: unknown,
  ) {
    super(`dead-letter topic ${topic} does not exist`, { cause });
  }
}

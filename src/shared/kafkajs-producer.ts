import type { IHeaders, Kafka, Producer } from 'kafkajs';
import { javaCompatiblePartitioner } from '../outbox/partitioner';
import { isTooLargeError } from './kafka-requests';

/** One record and the topic it goes to. */
export interface TopicRecord {
  topic: string;
  key: string | Buffer | null;
  value: string | Buffer | null;
  headers: IHeaders;
}

/**
 * A kafkajs idempotent producer (acks from all in-sync replicas, one request in flight, the Java
 * client's default partitioner, no topic auto-creation), as the outbox relay
 * (`EARSHOT_OUTBOX_PRODUCER=kafkajs`) and the dead-letter publisher use it.
 *
 * A request refused as too large for one partition may have been written for the others, and
 * kafkajs then keeps those partitions' old sequence numbers: every later send would be refused as
 * out of order. So after such a refusal the producer is replaced (a new producer id starts its
 * sequences afresh) before the error is thrown on; the caller decides what to send next. The
 * same after a partition the producer knew is gone (an output topic recreated by an operator with
 * fewer partitions: kafkajs retried on the new partitions with the old sequence numbers, and the
 * relay was refused as out of order for ever) and after any refusal as out of order.
 */
export class IdempotentKafkajsProducer {
  private producer: Producer;

  constructor(private readonly kafka: Kafka) {
    this.producer = this.create();
  }

  private create(): Producer {
    return this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      // kafkajs' default partitioner, with a murmur2 that does not block on long keys
      createPartitioner: javaCompatiblePartitioner,
      allowAutoTopicCreation: false,
    });
  }

  connect(): Promise<void> {
    return this.producer.connect();
  }

  disconnect(): Promise<void> {
    return this.producer.disconnect();
  }

  /** Sends `records` as one request; resolves once the broker acknowledged every one. */
  async send(records: readonly TopicRecord[]): Promise<void> {
    if (records.length === 0) return;
    const byTopic = new Map<string, { key: string | Buffer | null; value: string | Buffer | null; headers: IHeaders }[]>();
    for (const { topic, key, value, headers } of records) {
      let list = byTopic.get(topic);
      if (!list) byTopic.set(topic, (list = []));
      list.push({ key, value, headers });
    }
    try {
      await this.producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
    } catch (e) {
      if (isTooLargeError(e) || causedBy(e, RENEWED_AFTER)) {
        await this.producer.disconnect().catch(() => undefined);
        this.producer = this.create();
        await this.producer.connect();
      }
      throw e;
    }
  }
}

/** Errors after which kafkajs' sequence numbers no longer match the broker's (see IdempotentKafkajsProducer). */
const RENEWED_AFTER = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'OUT_OF_ORDER_SEQUENCE_NUMBER']);

/** Whether `error` or one it wraps (kafkajs' retries wrap the last one) is a Kafka protocol error of one of these types. */
function causedBy(error: unknown, types: Set<string>, depth = 0): boolean {
  if (error === null || typeof error !== 'object' || depth > 5) return false;
  const e = error as { type?: unknown; errors?: unknown; cause?: unknown; originalError?: unknown };
  if (typeof e.type === 'string' && types.has(e.type)) return true;
  return [...(Array.isArray(e.errors) ? e.errors : []), e.cause, e.originalError].some((inner) => causedBy(inner, types, depth + 1));
}

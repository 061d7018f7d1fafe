import { KafkaJSConnectionClosedError, KafkaJSConnectionError, KafkaJSNonRetriableError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { KafkaStartError } from './kafka-pipeline';

// What kafkajs throws after its retries at start (measured with `serve`: KAFKA_BROKERS=127.0.0.1:1
// gave up after 36 s, 127.0.0.1:5432 — PostgreSQL, no Kafka listener — after 43 s); main printed
// `earshot: KafkaJSNonRetriableError` and a stack, naming neither the variable nor the brokers.
describe('Kafka brokers that cannot be reached at start', () => {
  it('are named in one line with the cause kafkajs wrapped', () => {
    const refused = new KafkaJSNonRetriableError(new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:1'));
    expect(new KafkaStartError(['127.0.0.1:1'], refused, 36_400).message).toBe(
      'cannot reach the Kafka brokers 127.0.0.1:1 (KAFKA_BROKERS) in 36 s: Connection error: connect ECONNREFUSED 127.0.0.1:1',
    );
  });

  it('ask whether a peer that hangs up at once is a Kafka listener, or one that wants TLS or SASL', () => {
    const hungUp = new KafkaJSNonRetriableError(new KafkaJSConnectionClosedError('Closed connection'));
    const e = new KafkaStartError(['127.0.0.1:5432', 'b2:9092'], hungUp, 43_000);
    expect(e.message).toBe(
      'cannot reach the Kafka brokers 127.0.0.1:5432,b2:9092 (KAFKA_BROKERS) in 43 s: Closed connection (the other end hung up: is it a Kafka listener, and does it want KAFKA_SSL or KAFKA_SASL_MECHANISM?)',
    );
    expect(e.name).toBe('KafkaStartError');
    expect(e.message).not.toContain('\n');
  });
});

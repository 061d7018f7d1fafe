import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/config';
import { recordBytes } from '../shared/kafka-requests';
import { deadLetterRecord, isPermanentDataError, validationKind, withoutValue } from './dead-letter';
import { deadLetterTopic, topicSpecs } from './kafka-client';

describe('dead letters', () => {
  it('keep the original key, bytes and headers, and name the error and origin in x-* headers', () => {
    const value = Buffer.from('{"not json');
    const record = deadLetterRecord(
      {
        topic: 'interactions.v1',
        partition: 2,
        message: { key: Buffer.from('author-1'), value, headers: { trace: 'abc' }, offset: '41', timestamp: String(Date.UTC(2026, 0, 2)), attributes: 0 },
        kind: 'malformed-json',
        reason: 'malformed JSON: Unterminated string',
      },
      new Date(Date.UTC(2026, 0, 3)),
    );
    expect(record.value).toBe(value);
    expect(record.key?.toString()).toBe('author-1');
    expect(record.headers).toEqual({
      trace: 'abc',
      'x-error': 'malformed JSON: Unterminated string',
      'x-error-kind': 'malformed-json',
      'x-original-topic': 'interactions.v1',
      'x-original-partition': '2',
      'x-original-offset': '41',
      'x-original-timestamp': '2026-01-02T00:00:00.000Z',
      'x-failed-at': '2026-01-03T00:00:00.000Z',
    });
    expect(deadLetterTopic('interactions.v1')).toBe('interactions.v1.dlq');
  });

  it('too large to go whole: the x-* headers stay, the value, the original headers and a long key go, and x-value-dropped says where the message is', () => {
    const letter = (key: Buffer) => ({
      topic: 'interactions.v1.dlq',
      ...deadLetterRecord({ topic: 'interactions.v1', partition: 1, message: { key, value: Buffer.alloc(2_000_000, 0x61), headers: { bulky: 'h'.repeat(50_000) }, offset: '7', timestamp: '0', attributes: 0 }, kind: 'too-large', reason: 'the message is 2000000 bytes' }),
    });
    const full = letter(Buffer.from('author-9'));
    const small = withoutValue(full, recordBytes(full));
    expect(small.value).toBeNull();
    expect(small.key?.toString()).toBe('author-9');
    expect(small.topic).toBe('interactions.v1.dlq');
    expect(Object.keys(small.headers).sort()).toEqual(['x-error', 'x-error-kind', 'x-failed-at', 'x-original-offset', 'x-original-partition', 'x-original-timestamp', 'x-original-topic', 'x-value-dropped']);
    expect(small.headers['x-value-dropped']).toBe(
      `the letter was ${recordBytes(full)} bytes with the original value and headers, more than the dead-letter topic takes (KAFKA_MAX_REQUEST_BYTES or its max.message.bytes): re-produce offset 7 of partition 1 of interactions.v1 from the source`,
    );
    expect(recordBytes(small)).toBeLessThan(4_000);
    expect(withoutValue(letter(Buffer.alloc(5_000, 0x6b)), 1).key).toBeNull();
  });

  it('classify validation errors by kind', () => {
    expect(validationKind('malformed JSON: Unexpected token')).toBe('malformed-json');
    expect(validationKind('text: longer than the limit of 1024 bytes')).toBe('too-large');
    expect(validationKind("missing required field 'text'")).toBe('schema-violation');
  });

  it('treat every failure but connection and concurrency ones as permanent', () => {
    expect(isPermanentDataError({ code: '22021' })).toBe(true); // NUL byte in text
    expect(isPermanentDataError({ driverError: { code: '22P02' } })).toBe(true);
    expect(isPermanentDataError({ code: '23502' })).toBe(true);
    expect(isPermanentDataError({ code: '23505' })).toBe(true);
    expect(isPermanentDataError(new RangeError('Maximum call stack size exceeded'))).toBe(true);
    for (const transient of [{ code: '40P01' }, { code: '40001' }, { code: '57P01' }, { code: '08006' }, { code: 'ECONNREFUSED' }, new Error('Connection terminated unexpectedly'), null]) {
      expect(isPermanentDataError(transient)).toBe(false);
    }
  });
});

describe('topic specs', () => {
  it('create input and dead-letter topics, and a compacted sentiment topic with the output prefix', () => {
    const config = loadConfig({ KAFKA_BROKERS: '127.0.0.1:9092', KAFKA_TOPICS: 'a,b', KAFKA_TOPIC_PARTITIONS: '6', KAFKA_OUTPUT_TOPIC_PREFIX: 'staging.' });
    const specs = topicSpecs(config.kafka);
    expect(specs.map((s) => s.topic)).toEqual(['a', 'a.dlq', 'b', 'b.dlq', 'staging.interactions.enriched.v1', 'staging.listening-gap.v1', 'staging.customer-erasure.v1', 'staging.interactions.reassigned.v1', 'staging.customer-sentiment.v1']);
    expect(specs.every((s) => s.numPartitions === 6)).toBe(true);
    expect(specs.at(-1)!.configEntries).toEqual([{ name: 'cleanup.policy', value: 'compact' }]);
    expect(specs.at(-2)!.configEntries).toBeUndefined();
  });
});

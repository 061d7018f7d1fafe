import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/config';
import { deadLetterRecord, isPermanentDataError, validationKind } from './dead-letter';
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

  it('classify validation errors by kind', () => {
    expect(validationKind('malformed JSON: Unexpected token')).toBe('malformed-json');
    expect(validationKind('text: longer than the limit of 1024 bytes')).toBe('too-large');
    expect(validationKind("missing required field 'text'")).toBe('schema-violation');
  });

  it('treat only data errors as permanent: outages, deadlocks and unknown errors are retried', () => {
    expect(isPermanentDataError({ code: '22021' })).toBe(true); // NUL byte in text
    expect(isPermanentDataError({ driverError: { code: '22P02' } })).toBe(true);
    expect(isPermanentDataError({ code: '23502' })).toBe(true);
    for (const transient of [{ code: '40P01' }, { code: '40001' }, { code: '57P01' }, { code: '08006' }, { code: 'ECONNREFUSED' }, new Error('Connection terminated unexpectedly'), { code: '23505' }, null]) {
      expect(isPermanentDataError(transient)).toBe(false);
    }
  });
});

describe('topic specs', () => {
  it('create input and dead-letter topics, and a compacted sentiment topic with the output prefix', () => {
    const config = loadConfig({ KAFKA_BROKERS: '127.0.0.1:9092', KAFKA_TOPICS: 'a,b', KAFKA_TOPIC_PARTITIONS: '6', KAFKA_OUTPUT_TOPIC_PREFIX: 'staging.' });
    const specs = topicSpecs(config.kafka);
    expect(specs.map((s) => s.topic)).toEqual(['a', 'a.dlq', 'b', 'b.dlq', 'staging.interactions.enriched.v1', 'staging.listening-gap.v1', 'staging.customer-erasure.v1', 'staging.customer-sentiment.v1']);
    expect(specs.every((s) => s.numPartitions === 6)).toBe(true);
    expect(specs.at(-1)!.configEntries).toEqual([{ name: 'cleanup.policy', value: 'compact' }]);
    expect(specs.at(-2)!.configEntries).toBeUndefined();
  });
});

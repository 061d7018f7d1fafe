import { describe, expect, it } from 'vitest';
import { missingTopicOf } from './kafka-requests';

// The shapes the two producers fail with when a topic is gone (seen on the real broker:
// test/integration/kafka-output-topic-deleted.test.ts); any other failure is not a missing topic.
describe('missingTopicOf', () => {
  it('names the topic of @platformatic/kafka, alone or among the errors of a failed send', () => {
    expect(missingTopicOf(new Error('Unknown topic p.interactions.enriched.v1.'))).toBe('p.interactions.enriched.v1');
    const multiple = Object.assign(new Error('Producing messages failed.'), { errors: [new Error('timeout'), new Error('Unknown topic a.b.')] });
    expect(missingTopicOf(multiple)).toBe('a.b');
  });

  it("reads kafkajs' UNKNOWN_TOPIC_OR_PARTITION through its retry wrapper, without a name", () => {
    const protocol = Object.assign(new Error('This server does not host this topic-partition'), { type: 'UNKNOWN_TOPIC_OR_PARTITION' });
    expect(missingTopicOf(Object.assign(new Error('retries exceeded'), { originalError: protocol }))).toBe('');
  });

  it('is null for other failures, and for errors that nest without end', () => {
    expect(missingTopicOf(new Error('Producing messages failed.'))).toBeNull();
    expect(missingTopicOf(Object.assign(new Error('x'), { type: 'NOT_LEADER_FOR_PARTITION' }))).toBeNull();
    expect(missingTopicOf('Unknown topic x.')).toBeNull();
    const loop: { message: string; cause?: unknown } = { message: 'loop' };
    loop.cause = loop;
    expect(missingTopicOf(loop)).toBeNull();
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RelayMessage } from '../outbox/relay-producer';
import { isTooLargeError, RECORD_OVERHEAD_BYTES, recordBytes, sendHalving, splitIntoRequests, UNSENT } from './kafka-requests';

const msg = fc.record({
  topic: fc.constantFrom('a.interactions.enriched.v1', 'a.customer-sentiment.v1'),
  key: fc.option(fc.string({ unit: 'grapheme', maxLength: 40 }), { nil: null }),
  value: fc.option(fc.oneof(fc.string({ unit: 'grapheme', maxLength: 300 }), fc.string({ minLength: 400, maxLength: 3_000 })), { nil: null }),
  headers: fc.dictionary(fc.constantFrom('schema-version', 'event-id', 'traceparent'), fc.string({ maxLength: 60 })),
});

describe('splitIntoRequests', () => {
  it('keeps every message once, in order, in requests of at most maxBytes; only a message larger than maxBytes on its own is set aside', () => {
    fc.assert(
      fc.property(fc.array(msg, { maxLength: 60 }), fc.integer({ min: 200, max: 8_000 }), (messages, maxBytes) => {
        const { requests, oversized } = splitIntoRequests(messages, maxBytes);
        for (const r of requests) {
          expect(r.length).toBeGreaterThan(0);
          expect(r.reduce((a, m) => a + recordBytes(m), 0)).toBeLessThanOrEqual(maxBytes);
        }
        expect(oversized.every((o) => o.bytes > maxBytes && o.bytes === recordBytes(o.record))).toBe(true);
        // nothing lost, nothing twice, order kept (the requests are sent one after the other)
        const sent = requests.flat();
        expect([...sent, ...oversized.map((o) => o.record)].length).toBe(messages.length);
        expect(sent).toEqual(messages.filter((m) => recordBytes(m) <= maxBytes));
        expect(oversized.map((o) => o.record)).toEqual(messages.filter((m) => recordBytes(m) > maxBytes));
        // a request is cut only where the next message would not fit
        for (let i = 1; i < requests.length; i++) {
          const before = requests[i - 1]!.reduce((a, m) => a + recordBytes(m), 0);
          expect(before + recordBytes(requests[i]![0]!)).toBeGreaterThan(maxBytes);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('counts bytes, not characters, and the headers', () => {
    const m: RelayMessage = { topic: 't', key: 'é', value: '😀', headers: { 'event-id': 'x' } };
    expect(recordBytes(m)).toBe(RECORD_OVERHEAD_BYTES + 2 + 4 + 10 + 8 + 1);
    expect(recordBytes({ key: null, value: null, headers: {} })).toBe(RECORD_OVERHEAD_BYTES);
    // a dead letter as kafkajs takes it: Buffers, a header with several values, one left undefined
    expect(recordBytes({ key: Buffer.from('ab'), value: Buffer.alloc(100), headers: { h: [Buffer.from('x'), 'yz'], u: undefined } })).toBe(RECORD_OVERHEAD_BYTES + 2 + 100 + (10 + 1 + 1) + (10 + 1 + 2));
  });

  it('500 events of 8 kB go out in requests under 1,000,000 bytes; one of 1.5 MB is set aside', () => {
    const review = (i: number): RelayMessage => ({ topic: 'e', key: `k${i}`, value: 'x'.repeat(8_400), headers: { 'schema-version': '1' } });
    const { requests, oversized } = splitIntoRequests([...Array.from({ length: 250 }, (_, i) => review(i)), { topic: 'e', key: 'big', value: '\\u0001'.repeat(262_000), headers: {} }, ...Array.from({ length: 250 }, (_, i) => review(250 + i))], 1_000_000);
    expect(requests.flat()).toHaveLength(500);
    expect(requests.length).toBe(5);
    expect(oversized.map((o) => o.record.key)).toEqual(['big']);
  });
});

describe('isTooLargeError', () => {
  it('finds the broker’s answer however the client wraps it', () => {
    // @platformatic/kafka 2.12: AggregateError (PLT_KFK_MULTIPLE) > AggregateError (PLT_KFK_RESPONSE) > protocol error
    const protocol = Object.assign(new Error('The request included a message larger than the max message size the server will accept.'), { apiId: 'MESSAGE_TOO_LARGE', apiCode: 10, canRetry: false });
    expect(isTooLargeError(new AggregateError([new AggregateError([protocol], 'Received response with error while executing API Produce(v11)')], 'Producing messages failed.'))).toBe(true);
    expect(isTooLargeError(Object.assign(new Error('batch'), { apiId: 'RECORD_LIST_TOO_LARGE' }))).toBe(true);
    // kafkajs: KafkaJSProtocolError with `type`, possibly inside a retrier's error
    const kafkajs = Object.assign(new Error('The request included a message larger than the max message size the server will accept'), { type: 'MESSAGE_TOO_LARGE', retriable: false });
    expect(isTooLargeError(kafkajs)).toBe(true);
    expect(isTooLargeError(Object.assign(new Error('retries exhausted'), { cause: kafkajs }))).toBe(true);
    expect(isTooLargeError(Object.assign(new Error('retries exhausted'), { originalError: kafkajs }))).toBe(true);
  });

  it('is false for every other failure, and for what is not an error', () => {
    const cyclic: { errors: unknown[]; cause?: unknown } = { errors: [] };
    cyclic.errors.push(cyclic);
    cyclic.cause = cyclic;
    for (const e of [new Error('connect ECONNREFUSED'), Object.assign(new Error('x'), { apiId: 'NOT_LEADER_OR_FOLLOWER' }), new AggregateError([new Error('timeout')]), null, undefined, 'MESSAGE_TOO_LARGE', 42, cyclic]) {
      expect(isTooLargeError(e)).toBe(false);
    }
  });
});

describe('sendHalving', () => {
  const tooLarge = () => Object.assign(new Error('too large'), { type: 'MESSAGE_TOO_LARGE' });

  it('sends what a broker with a per-request limit takes, in order, halving refused requests; only a record too large alone is refused', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 40 }), fc.integer({ min: 10, max: 120 }), async (sizes, limit) => {
        const records = sizes.map((size, id) => ({ id, size }));
        const written: number[] = [];
        const refused: number[] = [];
        const send = async (rs: { id: number; size: number }[]) => {
          if (rs.reduce((a, r) => a + r.size, 0) > limit) throw new AggregateError([new AggregateError([tooLarge()])], 'Producing messages failed.');
          written.push(...rs.map((r) => r.id));
        };
        const refusals = await sendHalving(records, send, async (r) => void refused.push(r.id));
        expect(refused).toEqual(records.filter((r) => r.size > limit).map((r) => r.id));
        expect(written).toEqual(records.filter((r) => r.size <= limit).map((r) => r.id));
        expect(refusals > 0).toBe(sizes.reduce((a, b) => a + b, 0) > limit);
      }),
      { numRuns: 300 },
    );
  });

  it('with a send that says what it left unwritten (UNSENT), writes every record once, each partition in order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ size: fc.integer({ min: 1, max: 50 }), p: fc.integer({ min: 0, max: 3 }) }), { maxLength: 40 }), fc.integer({ min: 10, max: 120 }), async (specs, limit) => {
        const records = specs.map((r, id) => ({ id, ...r }));
        const written: { id: number; p: number }[] = [];
        const refused: number[] = [];
        // as a broker writes a produce request: each partition on its own, refused when its batch is over the limit
        const send = async (rs: typeof records) => {
          const unsent: typeof records = [];
          for (const p of new Set(rs.map((r) => r.p))) {
            const batch = rs.filter((r) => r.p === p);
            if (batch.reduce((a, r) => a + r.size, 0) > limit) unsent.push(...batch);
            else written.push(...batch);
          }
          if (unsent.length === 0) return;
          const e = new AggregateError([tooLarge()], 'Producing messages failed.');
          throw Object.defineProperty(e, UNSENT, { value: rs.filter((r) => unsent.includes(r)) });
        };
        await sendHalving(records, send, async (r) => void refused.push(r.id));
        expect(refused.sort((a, b) => a - b)).toEqual(records.filter((r) => r.size > limit).map((r) => r.id));
        const ids = written.map((w) => w.id);
        expect(new Set(ids).size).toBe(ids.length);
        expect([...ids].sort((a, b) => a - b)).toEqual(records.filter((r) => r.size <= limit).map((r) => r.id));
        for (const p of [0, 1, 2, 3]) {
          const order = written.filter((w) => w.p === p).map((w) => w.id);
          expect(order).toEqual([...order].sort((a, b) => a - b));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('passes any other failure on, untouched', async () => {
    const boom = new Error('connect ECONNREFUSED');
    await expect(sendHalving([1, 2], async () => Promise.reject(boom), async () => {})).rejects.toBe(boom);
  });
});

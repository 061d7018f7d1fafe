import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

// patches/kafkajs+2.2.4.patch: kafkajs 2.2.4 re-armed a timer on every connection after every
// response, with a negative delay when nothing was throttled, which Node.js runs after 1 ms. Every
// connection (consumer, coordinator, dead-letter producer, admin) woke the process a thousand times
// a second, idle or not, and Node.js 24 printed a TimeoutNegativeWarning. These check the queue
// as patched: no timer when nothing waits, and what waits is still sent.

// eslint-disable-next-line @typescript-eslint/no-require-imports
const RequestQueue = require('kafkajs/src/network/requestQueue') as new (o: object) => Queue;

interface Queue {
  push(r: { entry: Entry; expectResponse: boolean; sendRequest: () => void }): void;
  fulfillRequest(r: { correlationId: number; payload: Buffer; size: number }): void;
  maybeThrottle(ms: number | null): void;
  destroy(): void;
  throttleCheckTimeoutId: unknown;
  pending: unknown[];
}
interface Entry {
  correlationId: number;
  apiKey: number;
  apiName: string;
  apiVersion: number;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

function queue(maxInFlightRequests: number | null = null): Queue {
  return new RequestQueue({ maxInFlightRequests, requestTimeout: 30_000, enforceRequestTimeout: false, clientId: 'spec', broker: '127.0.0.1:9092', logger: quiet });
}

/** Pushes a request that adds its id to `sent` when it goes out; resolves with its response. */
function request(q: Queue, correlationId: number, sent: number[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    q.push({
      entry: { correlationId, apiKey: 3, apiName: 'Metadata', apiVersion: 6, resolve, reject },
      expectResponse: true,
      sendRequest: () => sent.push(correlationId),
    });
  });
}

describe('kafkajs request queue (patched)', () => {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  beforeEach(() => {
    warnings.length = 0;
    process.on('warning', onWarning);
  });
  afterEach(() => {
    process.off('warning', onWarning);
    vi.useRealTimers();
  });

  it('arms no timer once a response leaves nothing waiting, and warns of no negative timeout', async () => {
    const q = queue();
    const sent: number[] = [];
    const answered = request(q, 1, sent);
    expect(sent).toEqual([1]);
    q.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
    await answered;
    // before the patch: a timer of -Date.now() ms, re-armed every millisecond from then on
    expect(q.throttleCheckTimeoutId).toBeNull();
    await new Promise((r) => setImmediate(r));
    expect(warnings.filter((w) => w.name === 'TimeoutNegativeWarning')).toEqual([]);
    q.destroy();
  });

  it('still sends a request queued behind the in-flight limit when one is answered, then goes quiet', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const q = queue(1);
    const sent: number[] = [];
    const first = request(q, 1, sent);
    const second = request(q, 2, sent);
    expect(sent).toEqual([1]);
    expect(q.pending).toHaveLength(1);
    q.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
    await first;
    expect(sent).toEqual([1, 2]);
    q.fulfillRequest({ correlationId: 2, payload: Buffer.alloc(0), size: 0 });
    await second;
    // the check armed while request 2 waited runs once and finds nothing to re-arm for
    vi.advanceTimersByTime(10);
    expect(q.throttleCheckTimeoutId).toBeNull();
    q.destroy();
  });

  it('still sends a request queued while the broker throttles, once the throttle ends', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const q = queue();
    const sent: number[] = [];
    q.maybeThrottle(500);
    void request(q, 7, sent);
    expect(sent).toEqual([]);
    vi.advanceTimersByTime(499);
    expect(sent).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([7]);
    expect(q.pending).toHaveLength(0);
    q.destroy();
  });
});

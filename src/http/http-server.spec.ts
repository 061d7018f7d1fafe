import dns from 'node:dns';
import { afterEach, describe, expect, it } from 'vitest';
import { listenWhileStarting, publicReason } from './http-server';

describe('/readyz reasons', () => {
  it("keep a component's own words and drop a driver's or broker's raw error", () => {
    expect(publicReason('database unreachable')).toBe('database unreachable');
    expect(publicReason('kafka consumer is stopped')).toBe('kafka consumer is stopped');
    expect(publicReason('kafka consumer: no answer from the broker for 50 s')).toBe('kafka consumer: no answer from the broker for 50 s');
    expect(publicReason('kafka consumer: connect ECONNREFUSED 10.0.3.7:9092')).toBe('kafka consumer (details in the log)');
    expect(publicReason('outbox relay cannot publish since 2026-11-30T10:00:00.000Z: SASL authentication failed for user "earshot"')).toBe(
      'outbox relay cannot publish since 2026-11-30T10:00:00.000Z (details in the log)',
    );
  });
});

describe('the listener on a HOST that names no host', () => {
  const lookup = dns.lookup;
  afterEach(() => {
    dns.lookup = lookup;
  });

  // It failed in getaddrinfo, which main.ts did not know as the listener's: a stack trace, exit 1.
  // The resolver answers here as it does for a typo (no DNS query leaves the machine).
  it('fails as the listener, naming the host and the port, so that main.ts says so in one line', async () => {
    dns.lookup = ((hostname: string, _options: unknown, callback?: (err: Error) => void) => {
      const cb = (typeof _options === 'function' ? _options : callback) as (err: Error) => void;
      process.nextTick(() => cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname })));
    }) as typeof dns.lookup;
    await expect(listenWhileStarting(4901, 'earshot-api.internal', () => 'starting')).rejects.toMatchObject({ code: 'ENOTFOUND', syscall: 'listen', address: 'earshot-api.internal', port: 4901 });
  });
});

import { describe, expect, it } from 'vitest';
import { publicReason } from './http-server';

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

import { describe, expect, it } from 'vitest';
import { persistIsolating } from './isolate-lines';

/** An all-or-nothing batch store that refuses some values the way PostgreSQL does. */
function store(refuse: (v: number) => unknown) {
  const stored: number[] = [];
  let calls = 0;
  const persist = async (batch: number[]) => {
    calls++;
    for (const v of batch) {
      const e = refuse(v);
      if (e) throw e;
    }
    stored.push(...batch);
    return { accepted: batch.length, duplicates: 0 };
  };
  return { stored, persist, calls: () => calls };
}

describe('persistIsolating', () => {
  it('stores a clean batch in one call', async () => {
    const s = store(() => null);
    const out = await persistIsolating([1, 2, 3], s.persist);
    expect(out).toEqual({ accepted: 3, duplicates: 0, rejected: [], attempts: 1, timeoutSplits: 0 });
  });

  it('rejects exactly the refused items, each with its reason, and stores all others', async () => {
    const items = Array.from({ length: 500 }, (_, i) => i);
    const s = store((v) => (v === 17 || v === 250 || v === 499 ? Object.assign(new Error(`bad ${v}`), { code: '22021' }) : null));
    const out = await persistIsolating(items, s.persist);
    expect(out.rejected).toEqual([17, 250, 499].map((v) => ({ index: v, error: `rejected by the database (SQLSTATE 22021): bad ${v}`, sqlState: '22021' })));
    expect(out.accepted).toBe(497);
    expect(s.stored.sort((a, b) => a - b)).toEqual(items.filter((v) => ![17, 250, 499].includes(v)));
    // about 2·k·log2(n) calls, far from one per item
    expect(s.calls()).toBeLessThan(60);
  });

  it('treats an error without a SQLSTATE (RangeError) as the item\'s own', async () => {
    const s = store((v) => (v === 2 ? new RangeError('Maximum call stack size exceeded') : null));
    const out = await persistIsolating([1, 2, 3], s.persist);
    expect(out.rejected).toEqual([{ index: 1, error: expect.stringMatching(/too deeply nested/), sqlState: null }]);
    expect(out.accepted).toBe(2);
  });

  it('throws a retriable failure unchanged instead of rejecting anything', async () => {
    const outage = Object.assign(new Error('Connection terminated unexpectedly'), {});
    const s = store(() => outage);
    await expect(persistIsolating([1, 2, 3], s.persist)).rejects.toBe(outage);
    const deadlock = store((v) => (v === 3 ? { code: '40P01', message: 'deadlock detected' } : null));
    await expect(persistIsolating([1, 2, 3, 4], deadlock.persist)).rejects.toMatchObject({ code: '40P01' });
  });
});

import { describe, expect, it } from 'vitest';
import { createLogger } from './logger';
import { IdleGc } from './idle-gc';

describe('IdleGc', () => {
  it('gives back garbage once the process is idle, and only when the heap grew', () => {
    const gc = new IdleGc(createLogger('silent'), { idleBelow: 1.01, minGrowthBytes: 32 * 1024 * 1024 });
    // nothing grew yet: no collection
    expect(gc.tick()).toBe(false);
    // ~100 MB of garbage that no allocation will push V8 to collect
    let keep: unknown[] | null = Array.from({ length: 200 }, () => new Array(64 * 1024).fill({ x: 1 }));
    keep = null;
    const before = process.memoryUsage().heapUsed;
    expect(keep).toBeNull();
    expect(gc.tick()).toBe(true);
    expect(process.memoryUsage().heapUsed).toBeLessThan(before - 32 * 1024 * 1024);
    // the heap is back at its baseline: no second collection
    expect(gc.tick()).toBe(false);
    expect(gc.collections).toBe(1);
  });

  it('never collects while the event loop is busy', () => {
    const gc = new IdleGc(createLogger('silent'), { idleBelow: 0, minGrowthBytes: 0 });
    Array.from({ length: 50 }, () => new Array(64 * 1024).fill(1));
    expect(gc.tick()).toBe(false);
    expect(gc.collections).toBe(0);
  });
});

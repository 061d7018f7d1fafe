import { describe, expect, it } from 'vitest';
import { createLogger } from './logger';
import { IdleGc } from './idle-gc';

describe('IdleGc', () => {
  it('gives back garbage once the process is idle, and only when the heap grew', () => {
    const gc = new IdleGc(createLogger('silent'), { idleBelow: 1.01, minGrowthBytes: 32 * 1024 * 1024, quietForMs: 0 });
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

  it('waits until the process has been quiet for quietForMs, interval after interval', () => {
    let now = 0;
    const gc = new IdleGc(createLogger('silent'), { idleBelow: 1.01, minGrowthBytes: 0, intervalMs: 5_000, quietForMs: 30_000, now: () => now });
    let garbage: unknown[] | null = Array.from({ length: 20 }, () => new Array(64 * 1024).fill({ x: 1 }));
    garbage = null;
    expect(garbage).toBeNull();
    // quiet intervals of 5 s: the sixth completes 30 s of quiet
    for (let i = 1; i <= 5; i++) {
      now = i * 5_000;
      expect(gc.tick(), `after ${i * 5} s`).toBe(false);
    }
    now = 30_000;
    expect(gc.tick()).toBe(true);
    expect(gc.collections).toBe(1);
  });

  it('starts counting the quiet again after a busy interval', () => {
    let now = 0;
    let busy = false;
    const opts = { minGrowthBytes: 0, intervalMs: 5_000, quietForMs: 10_000, now: () => now };
    // idleBelow decides what counts as busy: above any utilisation while `busy`, below none otherwise
    const gc = new IdleGc(createLogger('silent'), {
      ...opts,
      get idleBelow() {
        return busy ? -1 : 1.01;
      },
    });
    now = 5_000;
    expect(gc.tick()).toBe(false);
    busy = true;
    now = 10_000;
    expect(gc.tick()).toBe(false);
    busy = false;
    now = 15_000;
    expect(gc.tick(), 'only 5 s quiet since the busy interval').toBe(false);
    now = 20_000;
    expect(gc.tick()).toBe(true);
  });

  it('never collects while the event loop is busy', () => {
    const gc = new IdleGc(createLogger('silent'), { idleBelow: 0, minGrowthBytes: 0 });
    Array.from({ length: 50 }, () => new Array(64 * 1024).fill(1));
    expect(gc.tick()).toBe(false);
    expect(gc.collections).toBe(0);
  });
});

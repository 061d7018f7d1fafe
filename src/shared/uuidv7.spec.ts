import { afterEach, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { uuidv7 } from './uuidv7';

const SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** The 48-bit time an id carries. */
const msOf = (id: string) => parseInt(id.replace(/-/g, '').slice(0, 12), 16);

describe('uuidv7', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is a version 7, variant 10 UUID carrying its millisecond, for any time in its 48 bits', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 48 - 1 }), (ms) => {
        const id = uuidv7(ms);
        expect(id).toMatch(SHAPE);
        expect(msOf(id)).toBe(ms);
      }),
    );
  });

  it('sorts by time: an id of a later millisecond is greater, as text and as PostgreSQL compares uuids (bytes)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 48 - 2 }), fc.integer({ min: 1, max: 10_000 }), (ms, later) => {
        const t = Math.min(ms + later, 2 ** 48 - 1);
        expect(uuidv7(ms) < uuidv7(t)).toBe(true);
      }),
    );
  });

  it('defaults to now, and keeps out-of-range times in its 48 bits instead of writing other bits', () => {
    const before = Date.now();
    const ms = msOf(uuidv7());
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(Date.now());
    for (const [input, carried] of [[-5, 0], [2 ** 60, 2 ** 48 - 1], [NaN, 0], [1.9, 1]] as const) {
      const id = uuidv7(input);
      expect(id).toMatch(SHAPE);
      expect(msOf(id)).toBe(carried);
    }
  });

  it('does not repeat: 200,000 ids of one millisecond are distinct (74 random bits each)', () => {
    const ids = new Set(Array.from({ length: 200_000 }, () => uuidv7(1_700_000_000_000)));
    expect(ids.size).toBe(200_000);
  });

  it('made at the process clock, never runs back when the host clock steps back (NTP, a VM restored from a snapshot)', () => {
    // now: no id this process made before is later
    const t = Date.now();
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(t);
    const before = uuidv7();
    vi.setSystemTime(t + 1);
    const last = uuidv7();
    // the clock steps back an hour: the rows made now are made after those made before the step.
    // Before, their ids sorted an hour before them: a job walking the table by id (re-score,
    // re-tag) had already passed them, and the gap metrics' "made since the last run" missed them
    vi.setSystemTime(t - 3_600_000);
    const after = Array.from({ length: 100 }, () => uuidv7());
    for (const id of after) {
      expect(id).toMatch(SHAPE);
      expect(id > before).toBe(true);
      expect(msOf(id)).toBe(msOf(last));
    }
    // it carries the clock's time again once the clock has caught up
    vi.setSystemTime(t + 2);
    expect(msOf(uuidv7())).toBe(t + 2);
    // a time given is carried as given
    expect(msOf(uuidv7(t - 3_600_000))).toBe(t - 3_600_000);
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { uuidv7 } from './uuidv7';

const SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** The 48-bit time an id carries. */
const msOf = (id: string) => parseInt(id.replace(/-/g, '').slice(0, 12), 16);

describe('uuidv7', () => {
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
});

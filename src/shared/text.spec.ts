import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cutText } from './text';

describe('cutText', () => {
  it('returns a prefix of at most max units that never splits a surrogate pair, and is at most one unit shorter than slice', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'é', '😀', '\ud800', '\udc00', '👍🏽', '\u0000') }), fc.integer({ min: 0, max: 40 }), (s, max) => {
        const cut = cutText(s, max);
        expect(s.startsWith(cut)).toBe(true);
        expect(cut.length).toBeLessThanOrEqual(max);
        expect(cut.length).toBeGreaterThanOrEqual(Math.min(s.length, max) - 1);
        // well-formed input stays well-formed: no pair is cut in half
        if (s.isWellFormed()) expect(cut.isWellFormed()).toBe(true);
        if (s.length <= max) expect(cut).toBe(s);
      }),
      { numRuns: 1_000 },
    );
  });

  it('keeps the emoji whole or leaves it out', () => {
    expect(cutText('ab😀', 3)).toBe('ab');
    expect(cutText('ab😀', 4)).toBe('ab😀');
    expect(cutText('ab😀c', 4)).toBe('ab😀');
    expect(cutText('abc', 0)).toBe('');
  });
});

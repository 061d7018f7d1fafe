import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { jsonBeyond, jsonNestingBeyond } from './json-depth';

/** Levels of objects and arrays of a parsed value (a scalar is 0). */
function depthOf(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  const children = Array.isArray(v) ? v : Object.values(v as Record<string, unknown>);
  let d = 0;
  for (const c of children) d = Math.max(d, depthOf(c));
  return d + 1;
}

describe('jsonBeyond', () => {
  it('reads the depth of valid JSON exactly, brackets and escaped quotes inside strings included', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.string({ unit: fc.constantFrom('[', ']', '{', '}', '"', '\\', 'a') }), (v, s) => {
        const text = JSON.stringify([s, v, { [s]: s }]);
        const d = depthOf(JSON.parse(text));
        expect(jsonNestingBeyond(text, d)).toBeNull();
        expect(jsonNestingBeyond(text, d - 1)).not.toBeNull();
      }),
      { numRuns: 500 },
    );
  });

  it('names the top-level member the deep value is in', () => {
    const text = '{"a\\"]":"[[[","meta\\u0064ata":{"x":[[[1]]]},"b":1}';
    expect(jsonNestingBeyond(text, 5)).toBeNull();
    expect(jsonNestingBeyond(text, 4)).toEqual({ bound: 'depth', at: text.indexOf('[1'), member: 'metadata' });
    expect(jsonNestingBeyond('[[[[1]]]]', 2)).toEqual({ bound: 'depth', at: 2, member: null });
    expect(jsonNestingBeyond('{"text":"x"}', 0)).toEqual({ bound: 'depth', at: 0, member: null });
  });

  it('counts objects and arrays outside strings', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (v) => {
        const text = JSON.stringify({ '[{': v, k: '{[]}' });
        const count = (x: unknown): number => (x === null || typeof x !== 'object' ? 0 : 1 + (Array.isArray(x) ? x : Object.values(x as object)).reduce((a: number, c) => a + count(c), 0));
        const all = count(JSON.parse(text));
        expect(jsonBeyond(text, Infinity, all)).toBeNull();
        expect(jsonBeyond(text, Infinity, all - 1)).toMatchObject({ bound: 'containers' });
      }),
      { numRuns: 300 },
    );
    expect(jsonBeyond('{"a":1,"metadata":{"x":[{},{},{}]}}', 100, 4)).toEqual({ bound: 'containers', at: 27, member: 'metadata' });
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { arrayParam, withArrayParams } from './array-param';

const { prepareValue } = require('pg/lib/utils') as { prepareValue(value: unknown): unknown };

/** Strings full of what an array literal must escape or quote. */
const text = fc.oneof(
  fc.string({ unit: 'grapheme' }),
  fc.array(fc.constantFrom('"', '\\', ',', '{', '}', ' ', 'NULL', '', 'é', '😀', '\n', "'"), { maxLength: 12 }).map((a) => a.join('')),
);
const element = fc.oneof(
  text,
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.date({ noInvalidDate: true }),
  // what the fast path leaves to the driver
  fc.array(text, { maxLength: 3 }),
  fc.dictionary(fc.string(), text, { maxKeys: 2 }),
  fc.uint8Array({ maxLength: 4 }).map((a) => Buffer.from(a)),
);

describe('array parameters', () => {
  it("are written as the pg driver writes them, whatever the elements", () => {
    fc.assert(
      fc.property(fc.array(element, { maxLength: 20 }), (values) => {
        const written = arrayParam(values);
        expect(typeof written === 'string' ? written : prepareValue(written)).toBe(prepareValue(values));
      }),
      { numRuns: 2_000, seed: 20261201 },
    );
  });

  it('take the fast path for flat strings, numbers, booleans, Dates and nulls', () => {
    expect(arrayParam(['a"b', 'c\\d', null, 1.5, true, new Date('2026-12-01T00:00:00Z')])).toBeTypeOf('string');
    expect(arrayParam([['nested']])).toEqual([['nested']]);
    expect(arrayParam([])).toBe('{}');
  });

  it('change only the arrays of a statement and leave its other parameters alone', () => {
    const params = [['x', 'y'], 'plain', 7, null, { a: 1 }];
    const out = withArrayParams(params)!;
    expect(out).toEqual(['{"x","y"}', 'plain', 7, null, { a: 1 }]);
    expect(params[0]).toEqual(['x', 'y']);
    const none = ['a', 1];
    expect(withArrayParams(none)).toBe(none);
    expect(withArrayParams(undefined)).toBeUndefined();
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringifyAnswer, stringifyJson } from './fast-json';

/** strings mixing ASCII, Latin-1, astral and lone surrogates, quotes, backslashes and the placeholder's own characters */
const text = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.constantFrom('a', 'é', '😀', '"', '\\', '\u0000', '\u0001', '0', '1', ':', ',', '[', '\ud800', '\u2028') }),
);
const answer = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, text, fc.integer(), fc.double({ noNaN: true }), fc.boolean(), fc.constant(null), tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 6 }),
  object: fc.dictionary(text, tie('value'), { maxKeys: 6 }),
})).value;

describe('stringifyAnswer', () => {
  it('reads back as the same value as JSON.stringify, ends with a newline, and leaves the answer as it was, for any answer', () => {
    fc.assert(
      fc.property(answer, (value) => {
        const before = JSON.stringify(value);
        const out = stringifyAnswer(value);
        expect(out.endsWith('\n')).toBe(true);
        expect(JSON.parse(out)).toEqual(JSON.parse(before));
        expect(JSON.stringify(value)).toBe(before);
        expect(JSON.parse(stringifyJson(value))).toEqual(JSON.parse(before));
      }),
      { numRuns: 2000 },
    );
  });

  it('writes text beyond Latin-1 as \\u escapes and the rest as JSON.stringify does', () => {
    const value = { data: { a: 'café', b: 'ok 😀', c: ['x', 'Ωmega'], d: 1 } };
    const out = stringifyAnswer(value);
    expect(out).toBe('{"data":{"a":"café","b":"ok \\ud83d\\ude00","c":["x","\\u03a9mega"],"d":1}}\n');
    expect(value.data.b).toBe('ok 😀');
  });

  it('is not fooled by strings that look like its placeholders', () => {
    for (const trap of ['\u0000\u00010', '"\u0000\u00010', 'a\\"\u0000\u00011', '\u0000\u00011']) {
      const value = { data: { trap, wide: '😀', more: [trap, '€'] } };
      expect(JSON.parse(stringifyAnswer(value))).toEqual(value);
    }
    const keyed = { data: { ['\u0000\u00010']: '😀' } };
    expect(JSON.parse(stringifyAnswer(keyed))).toEqual(keyed);
  });

  it('answers as JSON.stringify does for values nested deeper than its walk can go, and leaves them unchanged', () => {
    for (const depth of [1_000, 3_000]) {
      let value: unknown = 'é😀';
      for (let i = 0; i < depth; i++) value = { a: value };
      const before = JSON.stringify(value);
      expect(JSON.parse(stringifyJson(value))).toEqual(JSON.parse(before));
      expect(JSON.stringify(value)).toBe(before);
    }
  });

  it('serializes values with toJSON as JSON.stringify does', () => {
    const value = { data: { when: new Date('2026-12-01T00:00:00.000Z'), wide: '😀' } };
    expect(JSON.parse(stringifyAnswer(value))).toEqual(JSON.parse(JSON.stringify(value)));
  });

  it('leaves out inherited properties and keeps own ones, as JSON.stringify does', () => {
    const value = { data: Object.assign(Object.create({ inherited: '😀 no', also: 1 }) as object, { own: '😀 yes', n: 2 }) };
    expect(stringifyJson(value)).toBe(JSON.stringify(value).replace('😀', '\\ud83d\\ude00'));
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { firstJsonItems, inRowOrder } from './outbox-render';

// The relay takes an event's explanation items from the stored JSON text without parsing it
// (firstJsonItems); the `outbox` view takes them with json_agg. Both must give the same JSON.

/** A JSON array's text as a `json` column may hold it: compact, indented, or with odd spacing. */
const arrayText = fc
  .tuple(fc.array(fc.jsonValue(), { maxLength: 30 }), fc.constantFrom<string | number | undefined>(undefined, 0, 2, '\t'), fc.constantFrom('', ' ', '\n  '))
  .map(([items, indent, pad]) => ({ items, text: `${pad}${JSON.stringify(items, null, indent)}${pad}` }));

describe('firstJsonItems', () => {
  it('gives the first items of any JSON array, as JSON.parse and slice would', () => {
    fc.assert(
      fc.property(arrayText, fc.integer({ min: 1, max: 35 }), ({ items, text }, max) => {
        const out = firstJsonItems(text, max);
        expect(JSON.parse(out)).toEqual(JSON.parse(JSON.stringify(items.slice(0, max))));
        if (items.length <= max) expect(out).toBe(text);
        // the items are copied as written, not re-serialised
        else expect(text.trimStart().startsWith(out.slice(0, -1))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('is not misled by commas, brackets, quotes and escapes inside strings and nested values', () => {
    const tricky = [
      { token: 'a, b', weight: 1 },
      { token: '] }, {', weight: -2 },
      { token: '"quoted"\\', weight: 0.5 },
      [1, [2, 3], { x: ',' }],
      '\\"],',
      { token: 'é 😀 \u2028', weight: 1e-7 },
    ];
    const text = JSON.stringify(tricky);
    for (let max = 1; max <= tricky.length + 1; max++) expect(JSON.parse(firstJsonItems(text, max))).toEqual(tricky.slice(0, max));
    expect(firstJsonItems('[]', 20)).toBe('[]');
    expect(firstJsonItems(' [ ] ', 1)).toBe(' [ ] ');
  });

  it('leaves what is not an array as it is', () => {
    for (const v of ['{"a":[1,2,3]}', '"x,y"', '12', 'null', '']) expect(firstJsonItems(v, 1)).toBe(v);
  });

  it('refuses a count below one', () => {
    expect(() => firstJsonItems('[1,2]', 0)).toThrow(RangeError);
  });
});

describe('inRowOrder', () => {
  it('puts events read in any order into (row, seq) order, rows compared as numbers', () => {
    const event = fc.record({ batch_id: fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }).map(String), seq: fc.integer({ min: 1, max: 100_000 }) });
    fc.assert(
      fc.property(fc.uniqueArray(event, { selector: (e) => `${e.batch_id}:${e.seq}`, maxLength: 200 }), (events) => {
        const expected = [...events].sort((a, b) => (BigInt(a.batch_id) < BigInt(b.batch_id) ? -1 : BigInt(a.batch_id) > BigInt(b.batch_id) ? 1 : a.seq - b.seq));
        expect(inRowOrder([...events].reverse())).toEqual(expected);
      }),
    );
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { COPY_NULL, copyBoolean, copyJson, copyNumber, copyText } from './copy-text';

/** COPY's text-format reading of one field, as the server does it (the escapes written here). */
function read(field: string): string | null {
  if (field === COPY_NULL) return null;
  return field.replace(/\\(.)/gs, (_, c: string) => ({ t: '\t', n: '\n', r: '\r' })[c] ?? c);
}

describe('COPY text fields', () => {
  it('never leave a separator or a lone backslash in a field, and read back as written', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'grapheme' }), fc.array(fc.constantFrom('\\', '\t', '\n', '\r', 'N', '.', 'a', 'é', '😀')).map((a) => a.join(''))), (s) => {
        const f = copyText(s);
        expect(f).not.toMatch(/[\t\n\r]/);
        expect(f.replace(/\\\\/g, '')).not.toMatch(/\\(?![tnr])/);
        expect(read(f)).toBe(s);
      }),
    );
  });

  it('write null, numbers, booleans and JSON as PostgreSQL reads them', () => {
    expect(copyText(null)).toBe('\\N');
    expect(copyText('\\N')).toBe('\\\\N');
    expect(copyNumber(-0.125)).toBe('-0.125');
    expect(copyNumber(Number.NaN)).toBe('\\N');
    expect(copyNumber(Infinity)).toBe('\\N');
    expect(copyBoolean(false)).toBe('f');
    expect(copyBoolean(undefined)).toBe('\\N');
    expect(copyJson(undefined)).toBe('\\N');
    expect(copyJson({ a: 'tab\there', b: '\\' })).toBe('{"a":"tab\\\\there","b":"\\\\\\\\"}');
    expect(read(copyJson({ a: 'line\nbreak' }))).toBe(JSON.stringify({ a: 'line\nbreak' }));
  });
});

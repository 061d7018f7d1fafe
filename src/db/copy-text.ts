/**
 * Fields in COPY's text format (PostgreSQL, `COPY … FROM STDIN`): columns separated by a tab,
 * rows ended by a newline, `\N` for null, and a backslash, tab, newline or carriage return inside a
 * value written as `\\`, `\t`, `\n`, `\r`. Every other character is taken as it is, so any string
 * PostgreSQL can store round-trips (checked against a real server in
 * test/integration/ingest-copy.test.ts).
 */
export const COPY_NULL = '\\N';

const SPECIAL = /[\\\t\n\r]/;
const SPECIAL_ALL = /[\\\t\n\r]/g;
const ESCAPED: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

export function copyText(s: string | null | undefined): string {
  if (s === null || s === undefined) return COPY_NULL;
  return SPECIAL.test(s) ? s.replace(SPECIAL_ALL, (c) => ESCAPED[c]!) : s;
}

/** A number, or null for none; NaN and ±Infinity are null too (as JSON would have them). */
export function copyNumber(n: number | null | undefined): string {
  return typeof n === 'number' && Number.isFinite(n) ? String(n) : COPY_NULL;
}

export function copyBoolean(b: boolean | null | undefined): string {
  return b === null || b === undefined ? COPY_NULL : b ? 't' : 'f';
}

/** A json or jsonb value: its JSON text, or null for null and undefined. */
export function copyJson(v: unknown): string {
  if (v === null || v === undefined) return COPY_NULL;
  const s = JSON.stringify(v) as string | undefined;
  return s === undefined ? COPY_NULL : copyText(s);
}

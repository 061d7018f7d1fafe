// the driver's own conversion of one value (typed here: @types/pg does not describe this file)
const { prepareValue } = require('pg/lib/utils') as { prepareValue(value: unknown): unknown };

/**
 * Array parameters as PostgreSQL array literals, written faster than the pg driver writes them
 * and to the same text. The driver runs two regex replaces over every element (to escape `\` and
 * `"`) even when, as for nearly every uuid, key and day an ingest batch sends, there is nothing to
 * escape; here an element is scanned once and copied when it is clean. `bench:ingest` sends about
 * 30 arrays of one element per interaction in a batch. Anything but a flat array of strings,
 * numbers, booleans, Dates and nulls is left to the driver, so its text is the driver's in
 * every case (src/db/array-param.spec.ts checks that against the driver's own function).
 */
export function arrayParam(values: readonly unknown[]): string | readonly unknown[] {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const v = values[i];
    if (v === null || v === undefined) out += 'NULL';
    else if (typeof v === 'string') out += element(v);
    // the driver writes these with toString(), which never gives a quote or a backslash
    else if (typeof v === 'number' || typeof v === 'boolean') out += `"${String(v)}"`;
    else if (v instanceof Date) out += element(prepareValue(v) as string);
    else return values;
  }
  return out + '}';
}

function element(s: string): string {
  return s.indexOf('"') === -1 && s.indexOf('\\') === -1 ? `"${s}"` : `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A statement's parameters with each top-level array written by {@link arrayParam}. */
export function withArrayParams(params: readonly unknown[] | undefined): unknown[] | undefined {
  if (params === undefined) return undefined;
  let out: unknown[] | null = null;
  for (let i = 0; i < params.length; i++) {
    const p = params[i];
    if (!Array.isArray(p)) continue;
    out ??= params.slice();
    out[i] = arrayParam(p);
  }
  return out ?? (params as unknown[]);
}

/**
 * `JSON.stringify` without V8's slow path for text outside Latin-1: for GraphQL answers (Apollo's
 * `stringifyResult`) and the JSON Earshot hands PostgreSQL and Kafka.
 *
 * V8 (Node 24) writes JSON through a fast one-byte path; one string anywhere in the answer with a
 * character above U+00FF (an emoji in one customer's message) sends the whole answer down the slow
 * path and makes the result a two-byte string, which is slow again to encode as UTF-8 for the
 * socket. Measured on bench:graphql's 66 kB customer page, which holds 6 such characters (300
 * fresh copies, minimum / median of 7 rounds): 1.51 / 1.55 ms to stringify and encode it with
 * JSON.stringify, 0.40 / 0.52 ms this way; 0.31 / 0.50 ms when the page holds none.
 *
 * What it does: the strings holding such characters are set aside and replaced in place by
 * numbered placeholders, the answer is stringified (one-byte, fast), each placeholder is replaced
 * by its string's JSON with every non-ASCII character escaped (`\uXXXX`, as RFC 8259 allows:
 * parsers read the same value), and the original strings are put back, so the answer object is
 * left as it was. When any string or key of the answer could be read as a placeholder, or the
 * placeholders found are not exactly those set, it answers `JSON.stringify` instead: the output
 * always parses to the same value as Apollo's.
 */

const WIDE = /[^\u0000-\u00ff]/;
const NON_ASCII = /[^\u0000-\u007f]/g;
/** A placeholder's start: NUL then SOH, which no GraphQL answer we write holds at a string's start. */
const MARK = '\u0000\u0001';
/** How a placeholder's start reads in JSON.stringify's output. */
const MARK_JSON = '"\\u0000\\u0001';

type Holder = Record<string, unknown> | unknown[];

/** A one-byte copy of ASCII text (a replace on a two-byte string answers a two-byte string). */
function oneByte(ascii: string): string {
  return Buffer.from(ascii, 'latin1').toString('latin1');
}

function escapeWide(s: string): string {
  return oneByte(JSON.stringify(s).replace(NON_ASCII, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

class Placeholders {
  readonly wide: string[] = [];
  readonly holders: Holder[] = [];
  readonly keys: (string | number)[] = [];
  /** a string or key that reads like a placeholder, or a value with toJSON: JSON.stringify alone */
  clash = false;

  visit(v: unknown): void {
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) this.value(v, i, v[i]);
    } else if (v !== null && typeof v === 'object') {
      // serialized as it chooses, unseen by this walk: JSON.stringify alone is sure to be right
      if (typeof (v as { toJSON?: unknown }).toJSON === 'function') {
        this.clash = true;
        return;
      }
      const o = v as Record<string, unknown>;
      // own enumerable keys, in JSON.stringify's order; for-in walks V8's enum cache where
      // Object.keys copies it into a new array for every object (46 kB per customer page)
      for (const k in o) {
        if (!Object.hasOwn(o, k)) continue;
        if (k.charCodeAt(0) === 0) this.clash = true;
        this.value(o, k, o[k]);
      }
    }
  }

  private value(holder: Holder, key: string | number, x: unknown): void {
    if (typeof x === 'string') {
      if (x.charCodeAt(0) === 0) this.clash = true;
      if (WIDE.test(x)) {
        // recorded before the holder changes: restore() puts back whatever a failed walk changed
        this.wide.push(x);
        this.holders.push(holder);
        this.keys.push(key);
        (holder as Record<string | number, unknown>)[key] = MARK + (this.wide.length - 1);
      }
    } else if (x !== null && typeof x === 'object') this.visit(x);
  }

  restore(): void {
    for (let i = 0; i < this.keys.length; i++) (this.holders[i] as Record<string | number, unknown>)[this.keys[i]!] = this.wide[i];
  }
}

/** A GraphQL answer as Apollo writes it (JSON, then a newline). */
export function stringifyAnswer(value: unknown): string {
  return `${stringifyJson(value)}\n`;
}

/** JSON text of a JSON-like value (no replacer, no indent): the same value as `JSON.stringify`'s reads back. */
export function stringifyJson(value: unknown): string {
  const p = new Placeholders();
  try {
    p.visit(value);
  } catch {
    // nested deeper than this walk's stack allows (JSON.stringify's own goes a little further):
    // a RangeError, or a SyntaxError when V8 runs out of stack compiling WIDE there (seen when a
    // deep answer was the first to meet it); JSON.stringify answers, or throws as it would have
    p.restore();
    return JSON.stringify(value);
  }
  if (p.wide.length === 0) return JSON.stringify(value);
  let out: string;
  try {
    out = JSON.stringify(value);
  } finally {
    p.restore();
  }
  if (p.clash) return JSON.stringify(value);
  let spliced = '';
  let from = 0;
  let found = 0;
  let search = 0;
  for (;;) {
    const at = out.indexOf(MARK_JSON, search);
    if (at < 0) break;
    search = at + 1;
    // a string token starts after ':', '[' or ','; a quote inside a string is escaped (\")
    const before = out.charCodeAt(at - 1);
    if (before !== 0x3a && before !== 0x5b && before !== 0x2c) continue;
    const end = out.indexOf('"', at + MARK_JSON.length);
    const i = Number(out.slice(at + MARK_JSON.length, end));
    if (end < 0 || !Number.isInteger(i) || i !== found) return JSON.stringify(value);
    spliced += out.slice(from, at) + escapeWide(p.wide[i]!);
    from = end + 1;
    search = from;
    found++;
  }
  if (found !== p.wide.length) return JSON.stringify(value);
  return spliced + out.slice(from);
}

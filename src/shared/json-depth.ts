/**
 * The shape of JSON text, read before JSON.parse: how deep it nests, how many objects and arrays
 * it holds. V8's JSON.parse costs far more per byte for these than for anything else: a 2 MB line
 * of `[` (a million levels) took 1.4-2.5 s, 2 MB of `{},` 0.4 s, where 2 MB of text takes 16 ms.
 * Text that nests deeper, or holds more of them, than any valid value of its kind can be refused
 * unread.
 */

/** Where the text first goes past a bound, and the top-level member it is in. */
export interface JsonBeyond {
  /** `depth`: nested deeper than allowed; `containers`: more objects and arrays than allowed */
  bound: 'depth' | 'containers';
  /** index in the text of the `{` or `[` that went past the bound */
  at: number;
  /** the key of the top-level object's member that `{` or `[` is in, or null (the top level is no object, or the key is unreadable) */
  member: string | null;
}

/**
 * The first `{` or `[` (outside strings) past `maxDepth` levels of nesting or past `maxContainers`
 * objects and arrays in all, or null when there is none. Exact for valid JSON; for text that is
 * not JSON it reads brackets outside what look like strings, which is all the caller needs
 * (JSON.parse would refuse it). Linear in the length of the text: inside strings, from quote to
 * quote (indexOf), so a long text costs a small fraction of JSON.parse (0.003 ms for 250 kB
 * without quotes, 0.3 ms with one every eight characters, where JSON.parse takes 1.2 ms).
 */
export function jsonBeyond(text: string, maxDepth: number, maxContainers = Infinity): JsonBeyond | null {
  const n = text.length;
  let depth = 0;
  let containers = 0;
  let topIsObject = false;
  // the last string closed at depth 1 (in the top-level object: a key, or a value before the next key)
  let keyStart = -1;
  let keyEnd = -1;
  // the key of the member of the top-level object the text is in, while depth >= 2
  let memberStart = -1;
  let memberEnd = -1;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      const start = i;
      for (;;) {
        const q = text.indexOf('"', i + 1);
        if (q < 0) return null; // an unterminated string: not JSON, and nothing after it counts
        // escaped when an odd number of backslashes precedes it
        let b = q - 1;
        while (text.charCodeAt(b) === 92 /* \ */) b--;
        i = q;
        if ((q - 1 - b) % 2 === 0) break;
      }
      if (depth === 1) {
        keyStart = start;
        keyEnd = i;
      }
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      depth++;
      containers++;
      if (depth === 1) topIsObject = c === 123;
      else if (depth === 2) {
        memberStart = keyStart;
        memberEnd = keyEnd;
      }
      if (depth > maxDepth || containers > maxContainers) {
        return { bound: depth > maxDepth ? 'depth' : 'containers', at: i, member: topIsObject && depth >= 2 ? keyOf(text, memberStart, memberEnd) : null };
      }
    } else if (c === 125 /* } */ || c === 93 /* ] */) depth--;
  }
  return null;
}

/** {@link jsonBeyond} with a bound on nesting alone. */
export function jsonNestingBeyond(text: string, maxDepth: number): JsonBeyond | null {
  return jsonBeyond(text, maxDepth);
}

function keyOf(text: string, start: number, end: number): string | null {
  if (start < 0) return null;
  try {
    const k: unknown = JSON.parse(text.slice(start, end + 1));
    return typeof k === 'string' ? k : null;
  } catch {
    return null;
  }
}

// String comparators for record linkage. Hand-written because none of the installed packages
// provides them; each is the textbook algorithm and is tested against published values.

/**
 * Jaro–Winkler similarity (Winkler 1990; prefix scale 0.1, prefix up to 4 characters).
 *
 * Must stay true: the result is in [0, 1], symmetric, 1 only for equal strings and 0 when either
 * string is empty.
 */
export function jaroWinkler(a: string, b: string): number {
  if (a === b) return a.length === 0 ? 0 : 1;
  const la = a.length;
  const lb = b.length;
  if (la === 0 || lb === 0) return 0;
  const range = Math.max(0, Math.floor(Math.max(la, lb) / 2) - 1);
  // Bit sets as numbers would cap length at 32; names and addresses can be longer.
  const matchedB = new Uint8Array(lb);
  const matchedA = new Uint8Array(la);
  let matches = 0;
  for (let i = 0; i < la; i++) {
    const lo = Math.max(0, i - range);
    const hi = Math.min(lb - 1, i + range);
    const ca = a.charCodeAt(i);
    for (let j = lo; j <= hi; j++) {
      if (matchedB[j] === 0 && b.charCodeAt(j) === ca) {
        matchedB[j] = 1;
        matchedA[i] = 1;
        matches++;
        break;
      }
    }
  }
  if (matches === 0) return 0;
  let k = 0;
  let halfTranspositions = 0;
  for (let i = 0; i < la; i++) {
    if (matchedA[i] === 0) continue;
    while (matchedB[k] === 0) k++;
    if (a.charCodeAt(i) !== b.charCodeAt(k)) halfTranspositions++;
    k++;
  }
  const t = halfTranspositions / 2;
  const jaro = (matches / la + matches / lb + (matches - t) / matches) / 3;
  let prefix = 0;
  const maxPrefix = Math.min(4, la, lb);
  while (prefix < maxPrefix && a.charCodeAt(prefix) === b.charCodeAt(prefix)) prefix++;
  return jaro + prefix * 0.1 * (1 - jaro);
}

const SOUNDEX_CODES: Record<string, string> = {
  b: '1', f: '1', p: '1', v: '1',
  c: '2', g: '2', j: '2', k: '2', q: '2', s: '2', x: '2', z: '2',
  d: '3', t: '3',
  l: '4',
  m: '5', n: '5',
  r: '6',
};

/**
 * American Soundex (the census rules: h and w do not separate equal codes, vowels do).
 *
 * Must stay true: four characters (letter + three digits) for any input with a letter, '' otherwise.
 */
export function soundex(raw: string): string {
  const s = raw.toLowerCase().replace(/[^a-z]/g, '');
  if (s.length === 0) return '';
  let out = s[0]!.toUpperCase();
  let last = SOUNDEX_CODES[s[0]!] ?? '';
  for (let i = 1; i < s.length && out.length < 4; i++) {
    const ch = s[i]!;
    const code = SOUNDEX_CODES[ch];
    if (code) {
      if (code !== last) out += code;
      last = code;
    } else if (ch !== 'h' && ch !== 'w') {
      last = '';
    }
  }
  return (out + '000').slice(0, 4);
}

/**
 * True when `a` and `b` differ by at most one substitution, insertion, deletion or swap of two
 * adjacent characters (the usual typing errors), without computing a full edit distance.
 */
export function withinOneEdit(a: string, b: string): boolean {
  if (a === b) return true;
  const la = a.length;
  const lb = b.length;
  if (Math.abs(la - lb) > 1) return false;
  let i = 0;
  while (i < la && i < lb && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (la === lb) {
    if (a.slice(i + 1) === b.slice(i + 1)) return true;
    return i + 1 < la && a[i] === b[i + 1] && a[i + 1] === b[i] && a.slice(i + 2) === b.slice(i + 2);
  }
  return la > lb ? a.slice(i + 1) === b.slice(i) : a.slice(i) === b.slice(i + 1);
}

// Common English-language diminutives, both directions through the canonical form. Small on
// purpose: each entry must be common enough that a table miss would cost recall.
const NICKNAME_GROUPS: readonly string[][] = [
  ['robert', 'rob', 'bob', 'bobby', 'robbie', 'bert'],
  ['william', 'will', 'bill', 'billy', 'willy', 'liam'],
  ['elizabeth', 'liz', 'lizzie', 'beth', 'betty', 'eliza', 'libby', 'lisa'],
  ['margaret', 'maggie', 'meg', 'peggy', 'marge', 'margie'],
  ['richard', 'rick', 'dick', 'rich', 'ricky'],
  ['james', 'jim', 'jimmy', 'jamie'],
  ['john', 'jack', 'johnny', 'jon'],
  ['jonathan', 'jon', 'jonny'],
  ['michael', 'mike', 'mick', 'mikey', 'mickey'],
  ['thomas', 'tom', 'tommy'],
  ['joseph', 'joe', 'joey'],
  ['charles', 'charlie', 'chuck', 'chas'],
  ['christopher', 'chris', 'kit'],
  ['christine', 'chris', 'chrissy', 'tina'],
  ['daniel', 'dan', 'danny'],
  ['matthew', 'matt'],
  ['anthony', 'tony'],
  ['andrew', 'andy', 'drew'],
  ['edward', 'ed', 'eddie', 'ted', 'ned'],
  ['nicholas', 'nick', 'nicky'],
  ['benjamin', 'ben', 'benny'],
  ['samuel', 'sam', 'sammy'],
  ['samantha', 'sam', 'sammy'],
  ['alexander', 'alex', 'sandy', 'xander'],
  ['alexandra', 'alex', 'sandra', 'sandy', 'lexie'],
  ['katherine', 'kate', 'kathy', 'katie', 'kat', 'kitty'],
  ['catherine', 'cate', 'cathy', 'catie', 'kate'],
  ['jennifer', 'jen', 'jenny'],
  ['jessica', 'jess', 'jessie'],
  ['rebecca', 'becky', 'becca'],
  ['patricia', 'pat', 'patty', 'trish'],
  ['patrick', 'pat', 'paddy'],
  ['susan', 'sue', 'suzy'],
  ['deborah', 'deb', 'debbie'],
  ['victoria', 'vicky', 'tori'],
  ['stephen', 'steve', 'stevie'],
  ['steven', 'steve', 'stevie'],
  ['timothy', 'tim', 'timmy'],
  ['gregory', 'greg'],
  ['jeffrey', 'jeff'],
  ['kenneth', 'ken', 'kenny'],
  ['ronald', 'ron', 'ronnie'],
  ['donald', 'don', 'donnie'],
  ['lawrence', 'larry'],
  ['harold', 'harry', 'hal'],
  ['henry', 'harry', 'hank'],
  ['frederick', 'fred', 'freddie'],
  ['peter', 'pete'],
  ['david', 'dave', 'davey'],
  ['joshua', 'josh'],
  ['zachary', 'zach', 'zack'],
  ['nathan', 'nate'],
  ['nathaniel', 'nate', 'nat'],
  ['abigail', 'abby', 'abbie'],
  ['amanda', 'mandy'],
  ['dorothy', 'dot', 'dottie'],
  ['theresa', 'terry', 'tess'],
  ['frances', 'fran', 'frankie'],
  ['francis', 'frank', 'frankie'],
  ['isabella', 'bella', 'izzy'],
  ['madeline', 'maddie', 'maddy'],
  ['mitchell', 'mitch'],
  ['jacqueline', 'jackie'],
  ['joshua', 'josh'],
  ['phillip', 'phil', 'philip'],
  ['raymond', 'ray'],
  ['douglas', 'doug'],
  ['gerald', 'gerry', 'jerry'],
  ['leonard', 'leo', 'len', 'lenny'],
  ['gabrielle', 'gabby', 'gabi'],
];

const NICKNAMES = new Map<string, Set<string>>();
for (const group of NICKNAME_GROUPS) {
  for (const name of group) {
    let set = NICKNAMES.get(name);
    if (!set) NICKNAMES.set(name, (set = new Set()));
    for (const other of group) if (other !== name) set.add(other);
  }
}

/** True when one given name is a common diminutive of the other (bob / robert, liz / elizabeth). */
export function isNickname(a: string, b: string): boolean {
  return NICKNAMES.get(a)?.has(b) ?? false;
}

/**
 * Soft token-set similarity (a symmetric Monge–Elkan over Jaro–Winkler): each token is matched to
 * its best counterpart on the other side. Robust to reordered, added and split tokens, which is
 * how addresses differ between systems ("meldrum street, forster centre" / "forster centre, meldrum street").
 */
export function tokenSimilarity(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  return (mongeElkan(a, b) + mongeElkan(b, a)) / 2;
}

function mongeElkan(a: readonly string[], b: readonly string[]): number {
  let sum = 0;
  for (const ta of a) {
    let best = 0;
    for (const tb of b) {
      const s = jaroWinkler(ta, tb);
      if (s > best) best = s;
      if (best === 1) break;
    }
    sum += best;
  }
  return sum / a.length;
}

// Tokenizer and lexicon valence (VADER's lexicon, Hutto and Gilbert 2014, extended with
// customer-service words, emoji and hashtags): the inputs of the model's features
// (./model/features.ts), which apply VADER's rules (negation, boosters, "but", emphasis) as
// separately explained pieces.
import { CUSTOMER_SERVICE_LEXICON, EMOJI_LEXICON, HASHTAG_LEXICON, type Lexicon, loadLexicon } from './sentiment.lexicon';

export const TOKEN_WORD = 0;
export const TOKEN_HASHTAG = 1;
export const TOKEN_EMOJI = 2;
export const TOKEN_EMOTICON = 3;
export const TOKEN_CLAUSE = 4;
export const TOKEN_END = 5;
/** a link or an @mention: no sentiment of their own, but news posts carry links and customers address brands */
export const TOKEN_URL = 6;
export const TOKEN_MENTION = 7;

export interface Token {
  /** surface form (curly apostrophes straightened) */
  text: string;
  /** lower case; for hashtags the body without '#' */
  lower: string;
  kind: number;
  /**
   * set when the analyzer read a folded text (./text-fold.ts) and the token was written otherwise,
   * or for a contraction typed without its apostrophe ("dont", read as "don't"): its spelling in
   * the text as written (lower case, a hashtag without '#'), which explanations show
   */
  shown?: string;
}

/** Text beyond this many characters is not scored; keeps a 1 MB message linear and bounded. */
export const MAX_SCORED_CHARS = 100_000;

// One pass over the text. Order matters: URLs and mentions before emoticons (":/" in URLs),
// emoticons before words ("xD"), and a lookbehind so "8:30" is not read as a face. "…" (U+2026)
// ends a sentence as "..." does (it was no token at all: the sentence went on past it).
const TOKEN_RE =
  /(https?:\/\/\S+|www\.\S+)|(@[\p{L}\p{N}_.]+)|#([\p{L}\p{N}_]+)|((?<![\p{L}\p{N}])(?:[:;=][-'’^o]?[)(\]\[dDpPoO3*/\\|@$]+|<\/?3+|\^_*\^))|([\p{L}\p{N}]+(?:['’][\p{L}]+)*)|(\p{Extended_Pictographic})|([.!?\u2026]+|\n+)|([,;:()\u2013\u2014])/gu;

/**
 * Splits text into words, hashtags, emoji, emoticons, links, @mentions, clause and sentence marks.
 * Linear in the input. Links and mentions keep only their kind (`<url>`, `<@mention>`).
 *
 * TOKEN_RE defines the tokens. A word of ASCII letters and digits that ends before an ASCII
 * character other than an apostrophe is taken without it (most words of most posts: no match
 * array, one string less); everything else, and a word that may start a link, goes to the
 * expression from where it starts. The spec compares this with the expression alone
 * ({@link tokenizeByExpression}) on the texts of ../shared/data and on generated text.
 *
 * With `spans`, each token's start and end in `text` are appended to it (two numbers a token).
 */
export function tokenize(text: string, spans?: number[]): Token[] {
  const out: Token[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    // no token starts at a space, a tab or a carriage return
    if (c === 32 || c === 9 || c === 13) {
      i++;
      continue;
    }
    if (isAsciiAlnum(c) && !(c === 104 /* h */ && (text.startsWith('http://', i) || text.startsWith('https://', i))) && !(c === 119 /* w */ && text.startsWith('www.', i))) {
      let j = i + 1;
      while (j < n && isAsciiAlnum(text.charCodeAt(j))) j++;
      const next = j < n ? text.charCodeAt(j) : 0;
      // the word ends here unless a letter, digit or apostrophe form of the expression goes on
      if (j === n || (next < 128 && next !== 39 /* ' */)) {
        out.push(wordToken(text.slice(i, j)));
        if (spans) spans.push(i, j);
        i = j;
        continue;
      }
    }
    const m = matchFrom(text, i, out);
    if (m < 0) break;
    // every token's text is its match, with as many units (an apostrophe straightened is one unit)
    if (spans) spans.push(m - out[out.length - 1]!.text.length, m);
    i = m;
  }
  return out;
}

/** The tokens as TOKEN_RE alone finds them: what {@link tokenize} must equal. */
export function tokenizeByExpression(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while ((i = matchFrom(text, i, out)) >= 0);
  return out;
}

function isAsciiAlnum(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57);
}

/**
 * Contractions typed without their apostrophe, read as with it ("dont" as "don't"): to the model
 * they were other words, learned from fewer texts (removing the apostrophe from these changed 8.5%
 * of the labels of the validation texts holding one, earshot-linear-2026.12.3). Whole tokens,
 * only those that are no English word without it (not "ill", "well", "were", "its", "shell",
 * "hell", "wed", "id", "lets", "hes", "shed", "whos"). "wont" and "cant" are words too, but rare
 * ones ("as is his wont", "thieves' cant"): none of the 366 "cant" and 138 "wont" in
 * ../shared/data is one, and VADER already counts both as negators. "im" is also German: German
 * text is not scored, but in "Rock im Park" (16 lines of the data, English tweets about the
 * festival) it is read as "i'm" too.
 */
const APOSTROPHE_LESS: ReadonlyMap<string, string> = new Map(
  [
    'dont', 'didnt', 'doesnt', 'cant', 'wont', 'isnt', 'wasnt', 'arent', 'werent', 'havent', 'hasnt', 'hadnt',
    'shouldnt', 'couldnt', 'wouldnt', 'mustnt', 'aint', 'im', 'ive', 'youre', 'theyre', 'youve', 'theyve',
  ].map((w): [string, string] => [w, w === 'im' || w === 'ive' ? `i'${w.slice(1)}` : w.endsWith('nt') ? `${w.slice(0, -1)}'t` : w.replace(/(re|ve)$/, "'$1")]),
);
/**
 * The apostrophe form of `lower` when it is a key of {@link APOSTROPHE_LESS}. Only a word of 2 to 8
 * letters ending in "nt", "ve", "re" or the word "im" is looked up: a look-up of every word made
 * the tokenizer 40% slower (0.9 µs a tweet), this test 15–25% (0.2–0.3 µs).
 */
function apostropheForm(lower: string): string | undefined {
  const n = lower.length;
  if (n < 2 || n > 8) return undefined;
  const last = lower.charCodeAt(n - 1);
  const prev = lower.charCodeAt(n - 2);
  const may = last === 116 /* t */ ? prev === 110 /* n */ : last === 101 /* e */ ? prev === 118 /* v */ || prev === 114 /* r */ : n === 2 && last === 109; /* im */
  return may ? APOSTROPHE_LESS.get(lower) : undefined;
}

/** A word token: lower case for the model, a contraction typed without its apostrophe with it. */
function wordToken(w: string): Token {
  const lower = w.toLowerCase();
  const c = apostropheForm(lower);
  return c === undefined ? { text: w, lower, kind: TOKEN_WORD } : { text: w, lower: c, kind: TOKEN_WORD, shown: lower };
}

/** Adds the first token TOKEN_RE finds at or after `from`; returns where it ended, or -1 for none. */
function matchFrom(text: string, from: number, out: Token[]): number {
  TOKEN_RE.lastIndex = from;
  const m = TOKEN_RE.exec(text);
  if (m === null) return -1;
  if (m[1] !== undefined) out.push({ text: m[0], lower: '<url>', kind: TOKEN_URL });
  else if (m[2] !== undefined) out.push({ text: m[0], lower: '<@mention>', kind: TOKEN_MENTION });
  else if (m[3] !== undefined) out.push({ text: m[0], lower: m[3].toLowerCase(), kind: TOKEN_HASHTAG });
  else if (m[4] !== undefined) {
    // ":’(" is ":'(" with smart punctuation on
    const e = m[4].indexOf('’') >= 0 ? m[4].replace('’', "'") : m[4];
    out.push({ text: e, lower: e.toLowerCase(), kind: TOKEN_EMOTICON });
  } else if (m[5] !== undefined) {
    out.push(wordToken(m[5].indexOf('’') >= 0 ? m[5].replace(/’/g, "'") : m[5]));
  } else if (m[6] !== undefined) out.push({ text: m[6], lower: m[6], kind: TOKEN_EMOJI });
  else if (m[7] !== undefined) out.push({ text: m[7], lower: m[7], kind: TOKEN_END });
  else out.push({ text: m[0], lower: m[0], kind: TOKEN_CLAUSE });
  return TOKEN_RE.lastIndex;
}

const MAX_DERIVED_MEMO = 50_000;
/**
 * Longer words are derived every time, not kept: the memo lives as long as the process, and
 * without this bound 50,000 texts each with a new 100,000-letter word kept 5 GB (measured: 210 MB
 * after 1,000 such texts). No word of the lexicon is near this long.
 */
const MAX_DERIVED_MEMO_WORD = 40;
const DERIVED_DAMP = 0.9;
// Longest suffix first; each maps to the ending its base takes.
const SUFFIXES: [string, string][] = [
  ['iness', 'y'], ['ness', ''], ['ily', 'y'], ['ably', 'able'], ['ibly', 'ible'], ['ly', ''], ['ies', 'y'], ['ied', 'y'],
  ['ing', ''], ['ing', 'e'], ['ed', ''], ['ed', 'e'], ['es', ''], ['s', ''], ['est', ''], ['ful', ''],
];
const ELONGATED = /(\p{L})\1\1/u;
const ELONG_TO_2 = /(\p{L})\1{2,}/gu;
const ELONG_TO_1 = /(\p{L})\1+/gu;

function baseEmoji(e: string): string {
  return e.replace(/[\uFE0F\u{1F3FB}-\u{1F3FF}]/gu, '');
}

/**
 * Lexicon look-ups. Stateless after construction (apart from a bounded memo) and safe to share.
 */
export class SentimentEngine {
  private readonly lex: Lexicon;
  private readonly squashed = new Map<string, number>();
  // Derived-form look-ups are memoised: word frequencies are Zipfian, so a small cache hits often.
  private readonly derived = new Map<string, number>();

  constructor() {
    this.lex = loadLexicon();
    for (const [text, value] of this.lex) if (text.indexOf(' ') >= 0) this.squashed.set(text.replace(/ /g, ''), value);
    for (const k of Object.keys(CUSTOMER_SERVICE_LEXICON)) if (k.indexOf(' ') >= 0) this.squashed.set(k.replace(/ /g, ''), CUSTOMER_SERVICE_LEXICON[k]);
  }

  /** Valence of one token before context rules, or 0. */
  valence(tok: Token): number {
    switch (tok.kind) {
      case TOKEN_WORD: {
        const v = this.lex.get(tok.lower);
        if (v !== undefined) return v;
        if (tok.lower.length < 4) return 0;
        const memo = this.derived.get(tok.lower);
        if (memo !== undefined) return memo;
        const d = this.derive(tok.lower);
        if (this.derived.size < MAX_DERIVED_MEMO && tok.lower.length <= MAX_DERIVED_MEMO_WORD) this.derived.set(tok.lower, d);
        return d;
      }
      case TOKEN_HASHTAG:
        return HASHTAG_LEXICON.get(tok.lower) ?? this.lex.get(tok.lower) ?? this.squashed.get(tok.lower) ?? 0;
      case TOKEN_EMOJI:
        return EMOJI_LEXICON.get(tok.lower) ?? EMOJI_LEXICON.get(baseEmoji(tok.lower)) ?? 0;
      case TOKEN_EMOTICON:
        return this.lex.get(tok.lower) ?? 0;
      default:
        return 0;
    }
  }

  /**
   * Valence of a word the lexicon lacks, from its elongation-free spelling ("goooood") or a
   * derived form's base ("gorgeously" -> "gorgeous", "disappoints" -> "disappoint"), damped a
   * little because derivation can shift meaning.
   */
  private derive(w: string): number {
    if (ELONGATED.test(w)) {
      const two = w.replace(ELONG_TO_2, '$1$1');
      const v2 = this.lex.get(two) ?? this.lex.get(two.replace(ELONG_TO_1, '$1'));
      if (v2 !== undefined) return v2;
    }
    for (const [suffix, repl] of SUFFIXES) {
      if (w.length - suffix.length < 3 || !w.endsWith(suffix)) continue;
      const base = w.slice(0, w.length - suffix.length) + repl;
      const v = this.lex.get(base);
      if (v !== undefined && base.indexOf(' ') < 0) return v * DERIVED_DAMP;
    }
    return 0;
  }
}

export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

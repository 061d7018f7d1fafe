// Features of the linear sentiment/complaint model: hashed word unigrams (negation-scoped),
// bigrams and character 3-5-grams, plus VADER-style lexicon valence split into its token-level
// pieces. Shared by training and inference, so what is trained is exactly what is scored.
//
// Every feature value is an entry (bucket, value, owner): the owner is the token (or bigram, or
// signal) the value came from. A linear model's logit is then a sum over entries, and grouping
// the entries' contributions by owner explains the logit exactly, with nothing left over.
import { BOOSTERS, CONTRAST_AFTER, NEGATORS } from '../sentiment.lexicon';
import {
  type SentimentEngine,
  type Token,
  TOKEN_CLAUSE,
  TOKEN_EMOJI,
  TOKEN_END,
  TOKEN_HASHTAG,
  TOKEN_MENTION,
  TOKEN_WORD,
} from '../sentiment.engine';

/** Dense (named) features sit below the hashed buckets. */
export const F_LEX_POS = 0;
export const F_LEX_NEG = 1;
export const DENSE_FEATURES = 8;

const SEED_WORD = 0x3c6ef372;
const SEED_NEG = 0x6a09e667;
const SEED_BIGRAM = 0x510e527f;
const SEED_CHAR = 0x1f83d9ab;
const SEED_PUNCT = 0x5be0cd19;
const SEED_POLITE = 0x9b05688c;
const SEED_NEGATES_NEGATIVE = 0x1f83d9ac;
const START = 0x243f6a88;

/** VADER's constants: booster step, caps emphasis, "!" emphasis, normalisation alpha. */
const CAPS_INCR = 0.733;
const BANG_INCR = 0.292;
const ALPHA = 15;
const NEGATE_POSITIVE = -0.74;
const NEGATE_NEGATIVE = -0.5;
/** Negation reaches this many words, within the clause. */
const NEG_SCOPE = 3;
const MAX_WORD_CHARS = 24;

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function isCaps(t: string): boolean {
  return t.length > 1 && t !== t.toLowerCase() && t === t.toUpperCase();
}

/**
 * Punctuation marks as features: "?", "??", "!", "!!", "?!", "..." ("." alone carries nothing);
 * "…" (U+2026) is "...".
 */
function punctClass(t: string): number {
  let q = 0;
  let b = 0;
  let d = 0;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c === 63) q++;
    else if (c === 33) b++;
    else if (c === 46) d++;
    else if (c === 0x2026) d += 3;
  }
  if (q > 0 && b > 0) return 5;
  if (q > 0) return q > 1 ? 2 : 1;
  if (b > 0) return b > 1 ? 4 : 3;
  return d > 1 ? 6 : 0;
}

/**
 * The features of one text, in reusable buffers: entries `idx[i]`, `val[i]`, `owner[i]` for
 * i < n. Owners: token i is slot i, the bigram ending at token i is slot T + i, ALL CAPS
 * emphasis is slot 2T. Not thread-safe; one per analyzer.
 */
export class FeatureVector {
  n = 0;
  idx = new Int32Array(512);
  val = new Float64Array(512);
  owner = new Int32Array(512);
  tokens: readonly Token[] = [];
  /** per token: index of the negator whose scope it is in, else -1 */
  negatedBy = new Int32Array(128);
  /** per token: {@link ROLE_PLAIN}, or how the token is read in its context (irony, politeness, intensifier) */
  role = new Uint8Array(128);

  push(idx: number, val: number, owner: number): void {
    if (this.n === this.idx.length) {
      const size = this.idx.length * 2;
      const i2 = new Int32Array(size);
      i2.set(this.idx);
      this.idx = i2;
      const v2 = new Float64Array(size);
      v2.set(this.val);
      this.val = v2;
      const o2 = new Int32Array(size);
      o2.set(this.owner);
      this.owner = o2;
    }
    this.idx[this.n] = idx;
    this.val[this.n] = val;
    this.owner[this.n] = owner;
    this.n++;
  }

  /**
   * Human-readable name of a slot, for explanations: tokens as written, or with `written` false as
   * the model read them (the same, but for a text the analyzer folded).
   */
  slotName(slot: number, written = true): string {
    const shown = written ? shownOf : lowerOf;
    const T = this.tokens.length;
    if (slot === 2 * T) return 'ALL CAPS (emphasis)';
    if (slot >= T) {
      const i = slot - T;
      // The bigram's first word: the previous token of the same sentence (clause marks and
      // intensifiers, which have no word features, skipped).
      let j = i - 1;
      while (j >= 0 && (this.tokens[j]!.kind === TOKEN_CLAUSE || this.role[j] === ROLE_INTENSIFIER)) j--;
      return j >= 0 && isFeatureToken(this.tokens[j]!) ? `${shown(this.tokens[j]!)} ${shown(this.tokens[i]!)}` : shown(this.tokens[i]!);
    }
    const t = this.tokens[slot]!;
    if (t.kind === TOKEN_END) return ((written ? t.shown : undefined) ?? t.text).trim() || '(line break)';
    if (t.kind === TOKEN_HASHTAG) return `#${shown(t)}`;
    const role = this.role[slot]!;
    if (role === ROLE_IRONIC) return `${shown(t)} (irony)`;
    if (role === ROLE_POLITE) return `${shown(t)} (politeness)`;
    const neg = this.negatedBy[slot]!;
    if (neg >= 0) return neg === slot - 1 ? `${shown(this.tokens[neg]!)} ${shown(t)}` : `${shown(this.tokens[neg]!)} … ${shown(t)}`;
    if (t.kind === TOKEN_WORD && CONTRAST_AFTER.has(t.lower)) return `${shown(t)} (contrast)`;
    return shown(t);
  }
}

/** A token read as written. */
export const ROLE_PLAIN = 0;
/**
 * A positive word used as an interjection that opens a sentence ("Great, another delay.", "Oh
 * wonderful. Late again.") in a message with a grievance: read as irony, like a negated word
 * (its word feature is the negated one, its valence flips as a negation's would, no character
 * n-grams).
 */
export const ROLE_IRONIC = 1;
/**
 * A politeness formula ("thanks", "please", "appreciate", "kind regards") in a message with a
 * grievance: a feature of its own and no lexicon valence, so courtesy does not count as praise.
 */
export const ROLE_POLITE = 2;
/**
 * An intensifier right before a word with valence ("very bad"): it acts only through the lexicon
 * (the word's valence pushed away from 0), with no word, bigram or character feature of its own,
 * so the words around it read exactly as without it.
 */
export const ROLE_INTENSIFIER = 3;
/**
 * A negator whose scope holds a word of negative valence ("no complaints", "not bad", "never had
 * an issue"): a word feature of its own. In the training sets a negation mostly goes with a
 * negative label, so the plain "not", "no", "never" learn "negative"; a negated negative word is
 * praise or relief as often as not, and shared with the plain negator it read as a grievance.
 */
export const ROLE_NEGATES_NEGATIVE = 4;

/** Opening fillers an ironic interjection may follow: "oh great", "just great", "well, wonderful". */
const IRONY_OPENERS = new Set(['oh', 'just', 'well', 'yeah', 'yay', 'wow', 'so', 'how', 'ah', 'ohh']);
/** Politeness words; "kind" only before "regards". */
const POLITE = new Set(['thanks', 'thank', 'thx', 'ty', 'tks', 'please', 'pls', 'plz', 'appreciate', 'appreciated', 'regards', 'kindly', 'cheers']);
/** Intensifiers that only scale ("more", "most", "too", "less" compare or judge: they keep their features). */
function isPureIntensifier(lower: string): boolean {
  const b = BOOSTERS.get(lower);
  return b !== undefined && b > 0 && lower !== 'too' && lower !== 'more' && lower !== 'most';
}

/** A token as explanations name it: as written (when the analyzer read it folded), else in lower case. */
function shownOf(t: Token): string {
  return t.shown ?? t.lower;
}

function lowerOf(t: Token): string {
  return t.lower;
}

function isFeatureToken(t: Token): boolean {
  return t.kind !== TOKEN_CLAUSE && t.kind !== TOKEN_END;
}

/**
 * Turns tokens into feature entries. `hashBits` fixes the size of the hashed space; the lexicon
 * comes from the VADER-based engine (its `valence` knows VADER's words, our customer-service
 * additions, emoji and hashtags).
 */
export class FeatureExtractor {
  private readonly mask: number;
  private readonly chars = new Int32Array(MAX_WORD_CHARS + 2);
  private wordHash = new Int32Array(128);
  private pieceVal = new Float64Array(256);
  private pieceOwner = new Int32Array(256);
  private pieceSign = new Int8Array(256);
  /** valenced uses of each word so far in the text (`lexicon`) */
  private readonly seen = new Map<string, number>();
  /**
   * A small open-addressing table of the buckets of the group being scaled (`sublinear`): bucket,
   * entries in it, and whether its weight is in the norm yet; sized to the group (a table over all
   * 2^hashBits buckets is 2 MB, touched at random).
   */
  private groupKeys = new Int32Array(256);
  private groupCounts = new Int32Array(256);
  /** the table slot of each entry of the group */
  private entrySlot = new Int32Array(128);

  constructor(
    private readonly engine: SentimentEngine,
    readonly hashBits: number,
  ) {
    this.mask = (1 << hashBits) - 1;
  }

  get dimension(): number {
    return 1 << this.hashBits;
  }

  private bucket(h: number): number {
    const b = fmix(h) & this.mask;
    return b < DENSE_FEATURES ? b + DENSE_FEATURES : b;
  }

  /** Hash of a token's normalised spelling: lower case, letters repeated 3+ times cut to 2, digits as 0. */
  private hashToken(t: Token, seed: number): number {
    const s = t.lower;
    let h = seed;
    let a = -1;
    let b = -2;
    if (t.kind === TOKEN_HASHTAG) h = Math.imul(h ^ 35, 16777619);
    const n = Math.min(s.length, 64);
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c >= 48 && c <= 57) c = 48;
      // Skin tones and variation selectors do not change an emoji's meaning.
      else if (c === 0xfe0f) continue;
      else if (c === 0xd83c && i + 1 < n) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdffb && d <= 0xdfff) {
          i++;
          continue;
        }
      }
      if (c === a && c === b) continue;
      b = a;
      a = c;
      h = Math.imul(h ^ c, 16777619);
    }
    return h;
  }

  private charGrams(t: Token, owner: number, out: FeatureVector, scale: number): void {
    const s = t.lower;
    const buf = this.chars;
    let len = 0;
    buf[len++] = 1;
    let a = -1;
    let b = -2;
    for (let i = 0; i < s.length && len < MAX_WORD_CHARS + 1; i++) {
      let c = s.charCodeAt(i);
      if (c >= 48 && c <= 57) c = 48;
      if (c === a && c === b) continue;
      b = a;
      a = c;
      buf[len++] = c;
    }
    buf[len++] = 2;
    // 3-, 4- and 5-grams from each start in one pass: each longer gram extends the shorter's hash.
    for (let start = 0; start + 3 <= len; start++) {
      let h = SEED_CHAR;
      h = Math.imul(h ^ buf[start]!, 16777619);
      h = Math.imul(h ^ buf[start + 1]!, 16777619);
      for (let k = start + 2; k < len && k < start + 5; k++) {
        h = Math.imul(h ^ buf[k]!, 16777619);
        out.push(this.bucket(h), scale, owner);
      }
    }
  }

  /** Fills `out` with the features of `tokens`. Linear in the number of tokens. */
  extract(tokens: readonly Token[], out: FeatureVector, valence: Float64Array): void {
    out.n = 0;
    out.tokens = tokens;
    const T = tokens.length;
    if (out.negatedBy.length < T) out.negatedBy = new Int32Array(T * 2);
    if (this.wordHash.length < T) this.wordHash = new Int32Array(T * 2);
    const negatedBy = out.negatedBy;

    // Negation scope and word-level hashes.
    let words = 0;
    let caps = 0;
    let negator = -1;
    let scopeLeft = 0;
    for (let i = 0; i < T; i++) {
      const t = tokens[i]!;
      negatedBy[i] = -1;
      if (t.kind === TOKEN_CLAUSE || t.kind === TOKEN_END) {
        scopeLeft = 0;
        continue;
      }
      if (t.kind === TOKEN_WORD) {
        words++;
        if (isCaps(t.text)) caps++;
        if (NEGATORS.has(t.lower) || t.lower.endsWith("n't")) {
          negator = i;
          scopeLeft = NEG_SCOPE;
          continue;
        }
      }
      if (scopeLeft > 0) {
        negatedBy[i] = negator;
        scopeLeft--;
      }
    }

    this.closeNegation(tokens, out, valence);
    this.roles(tokens, out, valence);
    const role = out.role;

    // Word unigrams and bigrams (one group), character n-grams (another), each scaled to unit norm.
    const start = out.n;
    let prev = START;
    for (let i = 0; i < T; i++) {
      const t = tokens[i]!;
      if (t.kind === TOKEN_CLAUSE) continue;
      if (role[i] === ROLE_INTENSIFIER) continue;
      if (t.kind === TOKEN_END) {
        const p = punctClass(t.text);
        if (p !== 0) out.push(this.bucket(SEED_PUNCT ^ p), 1, i);
        prev = START;
        continue;
      }
      const hw = this.hashToken(t, SEED_WORD);
      this.wordHash[i] = hw;
      const r = role[i]!;
      out.push(this.bucket(r === ROLE_POLITE ? hw ^ SEED_POLITE : r === ROLE_NEGATES_NEGATIVE ? hw ^ SEED_NEGATES_NEGATIVE : negatedBy[i]! >= 0 || r === ROLE_IRONIC ? hw ^ SEED_NEG : hw), 1, i);
      // a politeness word's bigrams are its own too ("thank you" in a complaint is not praise)
      const hb = r === ROLE_POLITE ? hw ^ SEED_POLITE : hw;
      out.push(this.bucket(Math.imul(prev, 0x9e3779b1) ^ hb ^ SEED_BIGRAM), 1, T + i);
      prev = hb;
    }
    this.sublinear(out, start);

    const cStart = out.n;
    for (let i = 0; i < T; i++) {
      const t = tokens[i]!;
      if ((t.kind === TOKEN_WORD || t.kind === TOKEN_HASHTAG) && (role[i] === ROLE_PLAIN || role[i] === ROLE_NEGATES_NEGATIVE)) this.charGrams(t, i, out, 1);
    }
    this.sublinear(out, cStart);

    this.lexicon(tokens, out, valence, caps > 0 && caps < words);
  }

  /**
   * How each token is read in its context ({@link ROLE_IRONIC}, {@link ROLE_POLITE},
   * {@link ROLE_INTENSIFIER}). A grievance is a word with negative valence outside a negation's
   * scope, or one with positive valence inside it ("not happy"); irony and politeness need one.
   */
  private roles(tokens: readonly Token[], out: FeatureVector, valence: Float64Array): void {
    const T = tokens.length;
    if (out.role.length < T) out.role = new Uint8Array(T * 2);
    const role = out.role;
    const negatedBy = out.negatedBy;
    // lastGrievance: the last token that is a grievance (irony needs one after it). A clause
    // conceded before "but" holds none ("I was worried at first but it was fixed, thanks!").
    let lastGrievance = -1;
    let candidate = -1;
    for (let i = 0; i < T; i++) {
      role[i] = ROLE_PLAIN;
      const t = tokens[i]!;
      if (t.kind === TOKEN_END) {
        if (candidate >= 0) lastGrievance = candidate;
        candidate = -1;
        continue;
      }
      if (t.kind === TOKEN_WORD && CONTRAST_AFTER.has(t.lower)) {
        candidate = -1;
        continue;
      }
      const v = valence[i]!;
      if (v === 0 || (t.kind === TOKEN_WORD && (NEGATORS.has(t.lower) || POLITE.has(t.lower) || BOOSTERS.has(t.lower)))) continue;
      if ((v < 0 && negatedBy[i]! < 0) || (v > 0 && negatedBy[i]! >= 0)) candidate = i;
    }
    if (candidate >= 0) lastGrievance = candidate;
    let sentenceStart = true;
    let words = 0;
    for (let i = 0; i < T; i++) {
      const t = tokens[i]!;
      if (t.kind === TOKEN_END) {
        sentenceStart = true;
        words = 0;
        continue;
      }
      if (t.kind !== TOKEN_WORD) {
        if (t.kind !== TOKEN_CLAUSE && t.kind !== TOKEN_MENTION) sentenceStart = false;
        continue;
      }
      const lower = t.lower;
      if (isPureIntensifier(lower) && i + 1 < T && valence[i + 1] !== 0 && tokens[i + 1]!.kind === TOKEN_WORD && !NEGATORS.has(tokens[i + 1]!.lower)) role[i] = ROLE_INTENSIFIER;
      else if (lastGrievance >= 0 && (POLITE.has(lower) || (lower === 'kind' && i + 1 < T && tokens[i + 1]!.lower === 'regards'))) role[i] = ROLE_POLITE;
      else if (
        lastGrievance > i &&
        sentenceStart &&
        valence[i]! > 0 &&
        negatedBy[i]! < 0 &&
        i + 1 < T &&
        (tokens[i + 1]!.kind === TOKEN_CLAUSE || tokens[i + 1]!.kind === TOKEN_END)
      )
        role[i] = ROLE_IRONIC;
      words++;
      // an interjection may follow an opening filler ("oh great,"), nothing else
      if (!(words === 1 && IRONY_OPENERS.has(lower))) sentenceStart = false;
    }
    for (let i = 0; i < T; i++) {
      const n = negatedBy[i]!;
      if (n < 0 || valence[i]! >= 0 || role[n] !== ROLE_PLAIN) continue;
      const t = tokens[i]!;
      if (t.kind === TOKEN_WORD && (NEGATORS.has(t.lower) || BOOSTERS.has(t.lower))) continue;
      role[n] = ROLE_NEGATES_NEGATIVE;
    }
  }

  /**
   * Ends a negation's scope after the first word with valence it negates: in "not bad slow
   * service" only "bad" is negated, so "slow" stays a grievance and the word the negator's role
   * ({@link ROLE_NEGATES_NEGATIVE} or plain) is decided by is the one it actually negates.
   */
  private closeNegation(tokens: readonly Token[], out: FeatureVector, valence: Float64Array): void {
    const T = tokens.length;
    const negatedBy = out.negatedBy;
    let closed = -1;
    for (let i = 0; i < T; i++) {
      const n = negatedBy[i]!;
      if (n < 0) continue;
      if (n === closed) {
        negatedBy[i] = -1;
        continue;
      }
      const t = tokens[i]!;
      if (valence[i]! !== 0 && !(t.kind === TOKEN_WORD && (NEGATORS.has(t.lower) || BOOSTERS.has(t.lower)))) closed = n;
    }
  }

  /**
   * Scales the entries from `from` on (one group, word or character) to unit norm with sublinear
   * term frequency: a bucket met c times in the text weighs 1 + ln c in all, not c, shared evenly
   * by its c entries so that the explanation still adds up. With every count 1 this is the plain
   * 1/sqrt(n) of before. Without it a repeated token's share of the logit grew as the square root
   * of its repetitions: 1,000 "📦" after "… charged twice … Not happy." made the complaint
   * positive 0.98; a bucket's share now stays within its weight however often it repeats.
   */
  private sublinear(out: FeatureVector, from: number): void {
    const n = out.n;
    if (n === from) return;
    const m = n - from;
    let size = 64;
    while (size < 2 * m) size *= 2;
    if (this.groupKeys.length < size) {
      this.groupKeys = new Int32Array(size);
      this.groupCounts = new Int32Array(size);
    }
    if (this.entrySlot.length < m) this.entrySlot = new Int32Array(2 * m);
    const keys = this.groupKeys;
    const counts = this.groupCounts;
    const slotOf = this.entrySlot;
    const mask = size - 1;
    keys.fill(-1, 0, size);
    const { idx, val } = out;
    for (let e = from; e < n; e++) {
      const b = idx[e]!;
      let s = Math.imul(b, 0x9e3779b1) >>> 0;
      for (s &= mask; keys[s] !== b; s = (s + 1) & mask) {
        if (keys[s] === -1) {
          keys[s] = b;
          counts[s] = 0;
          break;
        }
      }
      counts[s]!++;
      slotOf[e - from] = s;
    }
    // the norm sums each bucket once, at its first entry, in entry order (as it always has)
    let norm2 = 0;
    for (let e = from; e < n; e++) {
      const s = slotOf[e - from]!;
      const c = counts[s]!;
      if (c <= 0) continue;
      // most buckets hold one entry: its weight is 1 + ln 1 = 1 exactly, without the logarithm
      const w = c === 1 ? 1 : 1 + Math.log(c);
      norm2 += w * w;
      counts[s] = -c; // counted in the norm once
    }
    const scale = 1 / Math.sqrt(norm2);
    for (let e = from; e < n; e++) {
      const c = -counts[slotOf[e - from]!]!;
      val[e] = c === 1 ? scale : ((1 + Math.log(c)) / c) * scale;
    }
  }

  private np = 0;

  /** Appends one lexicon piece (a method, so no closure is allocated per text). */
  private readonly pushPiece = (v: number, owner: number, sign: number): void => {
    if (v === 0) return;
    let np = this.np;
    if (np === this.pieceVal.length) {
      const size = np * 2;
      const a = new Float64Array(size);
      a.set(this.pieceVal);
      this.pieceVal = a;
      const b = new Int32Array(size);
      b.set(this.pieceOwner);
      this.pieceOwner = b;
      const c = new Int8Array(size);
      c.set(this.pieceSign);
      this.pieceSign = c;
    }
    this.pieceVal[np] = v;
    this.pieceOwner[np] = owner;
    this.pieceSign[np] = sign;
    this.np = ++np;
  };

  /**
   * VADER-style valence, kept as pieces (a word's own valence, a booster's push, a negation's
   * flip, a "but"'s reweighting, "!" emphasis) each owned by the token that caused it. The
   * pieces are normalised together like VADER's compound, S / sqrt(S² + 15), and enter the
   * model as two dense features (positive and negative valence).
   */
  private lexicon(tokens: readonly Token[], out: FeatureVector, valence: Float64Array, capDiff: boolean): void {
    const T = tokens.length;
    this.np = 0;
    this.seen.clear();
    const capsSlot = 2 * T;
    const pushPiece = this.pushPiece;
    let s0 = 0;
    for (let end = 0; end <= T; end++) {
      if (end < T && tokens[end]!.kind !== TOKEN_END) continue;
      // One sentence: tokens s0..end-1, terminated by tokens[end] (if any).
      let contrast = -1;
      for (let i = s0; i < end; i++) {
        const t = tokens[i]!;
        if (t.kind === TOKEN_WORD && CONTRAST_AFTER.has(t.lower)) {
          contrast = i;
          break;
        }
      }
      let items = 0;
      let sentenceSum = 0;
      for (let i = s0; i < end; i++) {
        const t = tokens[i]!;
        const v0 = valence[i]!;
        if (v0 === 0) continue;
        const r = out.role[i]!;
        if (r === ROLE_POLITE) continue;
        if (t.kind === TOKEN_WORD) {
          if (NEGATORS.has(t.lower)) continue;
          if (BOOSTERS.has(t.lower) && i + 1 < end && valence[i + 1] !== 0) continue;
        }
        const sign = v0 > 0 ? 1 : -1;
        const pStart = this.np;
        let v = v0;
        pushPiece(v0, i, 0);
        if (t.kind === TOKEN_WORD) {
          if (capDiff && isCaps(t.text)) {
            pushPiece(sign * CAPS_INCR, capsSlot, 0);
            v += sign * CAPS_INCR;
          }
          for (let j = 1; j <= 3; j++) {
            const k = i - j;
            if (k < s0) break;
            const p = tokens[k]!;
            if (p.kind === TOKEN_CLAUSE) break;
            const b = p.kind === TOKEN_WORD ? BOOSTERS.get(p.lower) : undefined;
            if (b !== undefined) {
              const d = b * sign * (j === 1 ? 1 : j === 2 ? 0.95 : 0.9);
              pushPiece(d, k, 0);
              v += d;
            }
          }
          const neg = out.negatedBy[i]!;
          if (neg >= 0 || r === ROLE_IRONIC) {
            const nv = v * (v > 0 ? NEGATE_POSITIVE : NEGATE_NEGATIVE);
            pushPiece(nv - v, neg >= 0 ? neg : i, 0);
            v = nv;
          }
        }
        if (contrast >= 0) {
          const f = i < contrast ? 0.5 : 1.5;
          pushPiece(v * (f - 1), contrast, 0);
          v *= f;
        }
        // The k-th use of the same word (or emoji) in a text adds ln(k / (k − 1)) of its valence,
        // so c uses weigh 1 + ln c in all: ten "ok" after a complaint no longer outvote it.
        const seen = this.seen.get(t.lower) ?? 0;
        this.seen.set(t.lower, seen + 1);
        if (seen > 0) {
          const damp = Math.log((seen + 1) / seen);
          for (let p = pStart; p < this.np; p++) this.pieceVal[p]! *= damp;
          v *= damp;
        }
        const s = v > 0 ? 1 : -1;
        for (let p = pStart; p < this.np; p++) this.pieceSign[p] = s;
        items++;
        sentenceSum += v;
      }
      if (end < T && items > 0 && sentenceSum !== 0) {
        let bangs = 0;
        const term = tokens[end]!.text;
        for (let k = 0; k < term.length; k++) if (term.charCodeAt(k) === 33) bangs++;
        if (bangs > 0) pushPiece((sentenceSum > 0 ? 1 : -1) * Math.min(bangs, 4) * BANG_INCR, end, sentenceSum > 0 ? 1 : -1);
      }
      s0 = end + 1;
    }

    let S = 0;
    const np = this.np;
    for (let p = 0; p < np; p++) S += this.pieceVal[p]!;
    const c = 1 / Math.sqrt(S * S + ALPHA);
    for (let p = 0; p < np; p++) out.push(this.pieceSign[p]! > 0 ? F_LEX_POS : F_LEX_NEG, this.pieceVal[p]! * c, this.pieceOwner[p]!);
  }
}

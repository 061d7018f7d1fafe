// A rule-based scorer in the spirit of VADER (Hutto and Gilbert, 2014), reimplemented so that it
// runs in one linear pass, explains every contribution and can be extended with customer-service
// phrases, emoji, hashtags and per-sentence weighting that the vader-sentiment package lacks.
import {
  B_DECR,
  BOOSTERS,
  CONCESSIVE,
  CONTRAST_AFTER,
  CUSTOMER_SERVICE_LEXICON,
  EMOJI_LEXICON,
  HASHTAG_LEXICON,
  type Lexicon,
  loadLexicon,
  NEGATORS,
  POST_BOOSTERS,
} from './sentiment.lexicon';

export const TOKEN_WORD = 0;
export const TOKEN_HASHTAG = 1;
export const TOKEN_EMOJI = 2;
export const TOKEN_EMOTICON = 3;
export const TOKEN_CLAUSE = 4;
export const TOKEN_END = 5;

export interface Token {
  /** surface form (curly apostrophes straightened) */
  text: string;
  /** lower case; for hashtags the body without '#' */
  lower: string;
  kind: number;
}

/** Tunable constants; the defaults are the values the evaluation reports. */
export interface EngineParams {
  /** VADER's normalisation constant: score = S / sqrt(S² + alpha) per sentence */
  alpha: number;
  /** multiplier for a negated positive word */
  negatePositive: number;
  /** multiplier for a negated negative word ("not bad" is mildly positive, not great) */
  negateNegative: number;
  /** ALL-CAPS emphasis added to a sentiment word when not everything is in caps */
  capsIncrement: number;
  /** weight of the clause before "but" / after "although" */
  contrastBefore: number;
  /** weight of the clause after "but" */
  contrastAfter: number;
  /** damping of a sentence that ends with a single question mark */
  questionDamp: number;
  /** weight of a sentence without sentiment, relative to |sentence score| */
  neutralSentenceWeight: number;
  /** extra weight of the last sentence (where reviews conclude) */
  lastSentenceWeight: number;
}

export const DEFAULT_ENGINE_PARAMS: Readonly<EngineParams> = Object.freeze({
  alpha: 15,
  negatePositive: -0.74,
  negateNegative: -0.5,
  capsIncrement: 0.733,
  contrastBefore: 0.5,
  contrastAfter: 1.5,
  questionDamp: 0.7,
  neutralSentenceWeight: 0.15,
  lastSentenceWeight: 1.25,
});

/** Text beyond this many characters is not scored; keeps a 1 MB message linear and bounded. */
export const MAX_SCORED_CHARS = 100_000;
const MAX_EXPLANATION = 12;
const MAX_DISTINCT_SIGNALS = 4_096;

// One pass over the text. Order matters: URLs and mentions before emoticons (":/" in URLs),
// emoticons before words ("xD"), and a lookbehind so "8:30" is not read as a face.
const TOKEN_RE =
  /(https?:\/\/\S+|www\.\S+)|(@[\p{L}\p{N}_.]+)|#([\p{L}\p{N}_]+)|((?<![\p{L}\p{N}])(?:[:;=][-'^o]?[)(\]\[dDpPoO3*/\\|@$]+|<\/?3+|\^_*\^))|([\p{L}\p{N}]+(?:['’][\p{L}]+)*)|(\p{Extended_Pictographic})|([.!?]+|\n+)|([,;:()\u2013\u2014])/gu;

/**
 * Splits text into words, hashtags, emoji, emoticons, clause and sentence marks. Linear in the
 * input; URLs and @mentions are dropped because they carry no sentiment of their own.
 */
export function tokenize(text: string): Token[] {
  const out: Token[] = [];
  TOKEN_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = TOKEN_RE.exec(text)) !== null) {
    if (m[1] !== undefined || m[2] !== undefined) continue;
    if (m[3] !== undefined) out.push({ text: m[0], lower: m[3].toLowerCase(), kind: TOKEN_HASHTAG });
    else if (m[4] !== undefined) out.push({ text: m[4], lower: m[4].toLowerCase(), kind: TOKEN_EMOTICON });
    else if (m[5] !== undefined) {
      const w = m[5].indexOf('’') >= 0 ? m[5].replace(/’/g, "'") : m[5];
      out.push({ text: w, lower: w.toLowerCase(), kind: TOKEN_WORD });
    } else if (m[6] !== undefined) out.push({ text: m[6], lower: m[6], kind: TOKEN_EMOJI });
    else if (m[7] !== undefined) out.push({ text: m[7], lower: m[7], kind: TOKEN_END });
    else out.push({ text: m[0], lower: m[0], kind: TOKEN_CLAUSE });
  }
  return out;
}

export interface Signal {
  token: string;
  weight: number;
}

export interface SentimentScore {
  /** in [-1, 1] */
  score: number;
  /** contributions sorted by |weight|, at most 12; weights on VADER's -4..+4 valence scale */
  explanation: Signal[];
  /** summed positive and negative valence, for confidence */
  positive: number;
  negative: number;
  /** number of sentiment-bearing signals */
  signals: number;
  words: number;
  sentences: number;
  truncated: boolean;
}

interface Phrase {
  words: string[];
  value: number;
  text: string;
}

function isCaps(t: string): boolean {
  return t.length > 1 && t !== t.toLowerCase() && t === t.toUpperCase();
}

const MAX_DERIVED_MEMO = 50_000;
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
 * The scorer. Stateless after construction and safe to share; `score` never throws on a string.
 */
export class SentimentEngine {
  private readonly lex: Lexicon;
  private readonly phrases = new Map<string, Phrase[]>();
  private readonly squashed = new Map<string, number>();
  // Derived-form look-ups are memoised: word frequencies are Zipfian, so a small cache hits often.
  private readonly derived = new Map<string, number>();
  readonly params: EngineParams;

  constructor(params: Partial<EngineParams> = {}) {
    this.params = { ...DEFAULT_ENGINE_PARAMS, ...params };
    this.lex = loadLexicon();
    for (const [text, value] of this.lex) {
      if (text.indexOf(' ') < 0) continue;
      const words = text.split(' ');
      const list = this.phrases.get(words[0]) ?? [];
      list.push({ words, value, text });
      this.phrases.set(words[0], list);
      this.squashed.set(words.join(''), value);
    }
    for (const list of this.phrases.values()) list.sort((a, b) => b.words.length - a.words.length);
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
        if (this.derived.size < MAX_DERIVED_MEMO) this.derived.set(tok.lower, d);
        return d;
      }
      case TOKEN_HASHTAG:
        return HASHTAG_LEXICON[tok.lower] ?? this.lex.get(tok.lower) ?? this.squashed.get(tok.lower) ?? 0;
      case TOKEN_EMOJI:
        return EMOJI_LEXICON[tok.lower] ?? EMOJI_LEXICON[baseEmoji(tok.lower)] ?? 0;
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

  /**
   * Scores already tokenized text. Guarantees: score in [-1, 1]; 0 when nothing carries
   * sentiment; work linear in the number of tokens.
   */
  scoreTokens(tokens: Token[], truncated = false): SentimentScore {
    const p = this.params;
    let words = 0;
    let caps = 0;
    for (const t of tokens) {
      if (t.kind === TOKEN_WORD) {
        words++;
        if (isCaps(t.text)) caps++;
      }
    }
    // VADER's rule: caps only emphasise when the writer did not type everything in caps.
    const capDiff = caps > 0 && caps < words;
    // Base valences once per token: the rules below look at neighbours' valences repeatedly.
    const vals = new Float64Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      const k = tokens[i].kind;
      if (k !== TOKEN_CLAUSE && k !== TOKEN_END) vals[i] = this.valence(tokens[i]);
    }

    const signals = new Map<string, number>();
    const addSignal = (token: string, weight: number) => {
      if (weight === 0) return;
      const prev = signals.get(token);
      if (prev !== undefined) signals.set(token, prev + weight);
      else if (signals.size < MAX_DISTINCT_SIGNALS) signals.set(token, weight);
    };

    let positive = 0;
    let negative = 0;
    let count = 0;
    let sentences = 0;
    let weightSum = 0;
    let weighted = 0;
    const sentenceScores: { c: number; items: { label: string; v: number }[]; extra: Signal[] }[] = [];

    let start = 0;
    for (let i = 0; i <= tokens.length; i++) {
      if (i < tokens.length && tokens[i].kind !== TOKEN_END) continue;
      const end = i;
      const terminator = i < tokens.length ? tokens[i].text : '';
      if (end > start) {
        sentences++;
        const r = this.scoreSentence(tokens, vals, start, end, terminator, capDiff);
        if (r.items.length > 0) sentenceScores.push(r);
      }
      start = i + 1;
    }

    for (let s = 0; s < sentenceScores.length; s++) {
      const { c, items, extra } = sentenceScores[s];
      let w = p.neutralSentenceWeight + Math.abs(c);
      if (s === sentenceScores.length - 1 && sentenceScores.length > 1) w *= p.lastSentenceWeight;
      weightSum += w;
      weighted += w * c;
      for (const it of items) {
        if (it.v > 0) positive += it.v;
        else negative += it.v;
        count++;
        addSignal(it.label, it.v);
      }
      for (const e of extra) addSignal(e.token, e.weight);
    }
    const score = weightSum > 0 && count > 0 ? clamp(weighted / weightSum, -1, 1) : 0;

    const explanation: Signal[] = [];
    for (const [token, weight] of signals) explanation.push({ token, weight: round3(weight) });
    explanation.sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
    if (explanation.length > MAX_EXPLANATION) explanation.length = MAX_EXPLANATION;
    if (truncated) explanation.push({ token: `(only the first ${MAX_SCORED_CHARS} characters were scored)`, weight: 0 });
    return { score, explanation, positive, negative, signals: count, words, sentences, truncated };
  }

  private scoreSentence(
    toks: Token[],
    vals: Float64Array,
    from: number,
    to: number,
    terminator: string,
    capDiff: boolean,
  ): { c: number; items: { label: string; v: number; at: number }[]; extra: Signal[] } {
    const p = this.params;
    const items: { label: string; v: number; at: number }[] = [];
    const extra: Signal[] = [];
    let contrastAt = -1;
    let contrastWord = '';
    let concessiveAt = -1;

    for (let i = from; i < to; i++) {
      const tok = toks[i];
      if (tok.kind === TOKEN_CLAUSE) continue;
      if (tok.kind === TOKEN_WORD) {
        if (contrastAt < 0 && CONTRAST_AFTER.has(tok.lower)) {
          contrastAt = i;
          contrastWord = tok.lower;
          continue;
        }
        if (concessiveAt < 0 && contrastAt < 0 && CONCESSIVE.has(tok.lower)) {
          concessiveAt = i;
          continue;
        }
      }

      let v = 0;
      let last = i;
      let phrase: Phrase | undefined;
      if (tok.kind === TOKEN_WORD) {
        const cands = this.phrases.get(tok.lower);
        if (cands) {
          for (const ph of cands) {
            if (i + ph.words.length > to) continue;
            let ok = true;
            for (let k = 1; k < ph.words.length; k++) {
              if (toks[i + k].lower !== ph.words[k]) {
                ok = false;
                break;
              }
            }
            if (ok) {
              phrase = ph;
              break;
            }
          }
        }
      }
      if (phrase) {
        v = phrase.value;
        last = i + phrase.words.length - 1;
      } else {
        const booster = tok.kind === TOKEN_WORD ? BOOSTERS[tok.lower] : undefined;
        v = vals[i];
        // A booster with its own valence ("so", "mad", "damn") acts as a booster when a
        // sentiment word follows, and keeps its own meaning otherwise ("I'm mad").
        if (booster !== undefined && (v === 0 || (i + 1 < to && vals[i + 1] !== 0))) continue;
        // "kind of" / "sort of" dampen what follows; "kind" (2.4 in VADER) is not praise there.
        if ((tok.lower === 'kind' || tok.lower === 'sort') && i + 1 < to && toks[i + 1].lower === 'of') continue;
        if (tok.kind === TOKEN_WORD && NEGATORS.has(tok.lower) && v < 0) {
          // "no"/"nothing" flip their neighbours; scored on their own they would double count.
          let next = i + 1;
          while (next < to && toks[next].kind === TOKEN_WORD && BOOSTERS[toks[next].lower] !== undefined) next++;
          if (next < to && next <= i + 3 && vals[next] !== 0) continue;
        }
      }
      if (v === 0) {
        i = last;
        continue;
      }

      const sign = v > 0 ? 1 : -1;
      let first = i;
      if (tok.kind === TOKEN_WORD && !phrase) {
        if (capDiff && isCaps(tok.text)) v += sign * p.capsIncrement;
        if (tok.lower.length > 3 && ELONGATED.test(tok.lower)) v += sign * 0.293;
      }
      let negations = 0;
      // Negators and boosters modify words; an emoji or hashtag stands on its own
      // ("nobody helps 😡" is angry, not un-angry).
      const reach = tok.kind === TOKEN_WORD ? 3 : 0;
      for (let j = 1; j <= reach; j++) {
        const k = i - j;
        if (k < from) break;
        const prev = toks[k];
        if (prev.kind === TOKEN_CLAUSE) break;
        if (prev.kind !== TOKEN_WORD) continue;
        const b = BOOSTERS[prev.lower];
        if (b !== undefined) {
          let s = b * sign * (j === 1 ? 1 : j === 2 ? 0.95 : 0.9);
          if (capDiff && isCaps(prev.text)) s += sign * p.capsIncrement;
          v += s;
          first = k;
        } else if (prev.lower === 'of' && k - 1 >= from && (toks[k - 1].lower === 'kind' || toks[k - 1].lower === 'sort')) {
          v += sign * B_DECR;
          first = k - 1;
        }
        if (NEGATORS.has(prev.lower) || prev.lower.endsWith("n't")) {
          negations++;
          first = k;
        } else if (prev.lower === 'least' && !(k - 1 >= from && (toks[k - 1].lower === 'at' || toks[k - 1].lower === 'very'))) {
          negations++;
          first = k;
        }
      }
      if (negations % 2 === 1) v *= v > 0 ? p.negatePositive : p.negateNegative;
      if (last + 1 < to && toks[last + 1].kind === TOKEN_WORD) {
        const post = POST_BOOSTERS[toks[last + 1].lower];
        if (post !== undefined) {
          v += sign * post;
          last++;
        }
      }
      let label = '';
      for (let k = first; k <= last; k++) {
        if (toks[k].kind === TOKEN_CLAUSE) continue;
        label = label ? `${label} ${toks[k].text}` : toks[k].text;
      }
      items.push({ label, v, at: i });
      i = last;
    }

    if (items.length === 0) return { c: 0, items, extra };

    // Contrast: the clause after "but" carries the conclusion.
    if (contrastAt >= 0) {
      let delta = 0;
      for (const it of items) {
        const f = it.at < contrastAt ? p.contrastBefore : p.contrastAfter;
        delta += it.v * (f - 1);
        it.v *= f;
      }
      extra.push({ token: `${contrastWord} (contrast)`, weight: delta });
    } else if (concessiveAt >= 0) {
      // "Although X, Y": X concedes, Y concludes. "Y, although X": X concedes.
      let clauseEnd = to;
      if (concessiveAt <= from + 1) {
        for (let k = concessiveAt + 1; k < to; k++) {
          if (toks[k].kind === TOKEN_CLAUSE) {
            clauseEnd = k;
            break;
          }
        }
      }
      let delta = 0;
      for (const it of items) {
        let f = 1;
        if (it.at > concessiveAt && it.at < clauseEnd) f = p.contrastBefore;
        else if (clauseEnd < to && it.at > clauseEnd) f = p.contrastAfter;
        delta += it.v * (f - 1);
        it.v *= f;
      }
      extra.push({ token: `${toks[concessiveAt].lower} (concession)`, weight: delta });
    }

    let sum = 0;
    for (const it of items) sum += it.v;

    // Punctuation emphasis (VADER's constants), counted per sentence rather than per text.
    let bangs = 0;
    let questions = 0;
    for (let k = 0; k < terminator.length; k++) {
      if (terminator.charCodeAt(k) === 33) bangs++;
      else if (terminator.charCodeAt(k) === 63) questions++;
    }
    let amp = Math.min(bangs, 4) * 0.292;
    if (questions > 1) amp += questions <= 3 ? questions * 0.18 : 0.96;
    if (amp > 0 && sum !== 0) {
      const d = sum > 0 ? amp : -amp;
      sum += d;
      extra.push({ token: `${terminator.slice(0, 4)} (emphasis)`, weight: d });
    } else if (questions === 1 && bangs === 0 && sum !== 0) {
      // A plain question asks about sentiment more than it expresses it ("is it any good?").
      const d = sum * (p.questionDamp - 1);
      sum += d;
      extra.push({ token: '? (question)', weight: d });
    }
    return { c: sum / Math.sqrt(sum * sum + p.alpha), items, extra };
  }
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

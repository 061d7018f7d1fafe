// The analyzer every department reads: sentiment and complaint from the trained linear model
// (src/sentiment/model) with its exact explanation, intent, topics routed to departments, and
// language. Composition only; the parts live in their own modules.
import { classifyIntent, COMPLAINT_CUE, COMPLAINT_CUE_PROBABILITY, cueText, type Intent, isPlainHowToQuestion } from './intent.classifier';
import { detectLanguage } from './language';
import { defaultModel, HEAD_COMPLAINT, HEAD_NEGATIVE, HEAD_NEUTRAL, HEAD_POSITIVE, HEADS, type LinearModel } from './model/linear-model';
import { F_LEX_NEG } from './model/features';
import { Featurizer } from './model/trainer';
import { MAX_SCORED_CHARS, round3, tokenize } from './sentiment.engine';
import { decodeEntities, decodePercent, type FoldedText, foldText, normalizeTokens, tokenizeFolded } from './text-fold';
import { DEFAULT_TAXONOMY, type TaxonomyTopic, TopicMatcher, type TopicMatch } from './topic.matcher';

export type { Intent } from './intent.classifier';
export type { TaxonomyTopic, TopicMatch } from './topic.matcher';
export { DEFAULT_TAXONOMY } from './topic.matcher';

export type SentimentLabel = 'negative' | 'neutral' | 'positive';

export interface Analysis {
  /** in [-1, 1]: tanh(logit) */
  score: number;
  /** the model's three-class decision; never positive with a score ≤ 0 nor negative with one ≥ 0 */
  label: SentimentLabel;
  /** in [0, 1]: the probability of the label; at most {@link UNSUPPORTED_LANGUAGE_CONFIDENCE} for a language without a model */
  confidence: number;
  intent: Intent;
  intentConfidence: number;
  /** the complaint model's decision and probability */
  complaint: boolean;
  complaintProbability: number;
  /** negative, or a complaint, or a churn threat: opens a listening item when inbound */
  unhappy: boolean;
  /** ISO 639-1 code (`mis` for a script without one, ./language.ts), or `und` when undetermined */
  lang: string;
  topics: TopicMatch[];
  /**
   * What moved the score, strongest first: tokens, bigrams and signals (negation, intensifiers,
   * "but", "!", ALL CAPS, emoji, a star rating), then "(other features)" and "(baseline)". The
   * weights add up to `logit` (to rounding).
   */
  explanation: { token: string; weight: number }[];
  /** score = tanh(logit); logit = the sum of the explanation's weights */
  logit: number;
  /** the versioned name of the model that scored this */
  model: string;
}

export interface AnalyzeOptions {
  /**
   * the language the source declared; detection runs when absent. One written in Latin letters
   * (or `und`) is overruled by text plainly in another script (./language.ts): `lang` is then the
   * script's, and the declared one is kept nowhere. Not in the explanation: a re-score, which
   * declares the stored `lang`, would drop it and count every such row as changed.
   */
  lang?: string | null;
  /** star rating, 1..ratingScale */
  rating?: number | null;
  ratingScale?: number;
}

/**
 * Score thresholds for labels of averages (a customer's or a department's time-decayed score) and
 * of texts scored with a star rating: >= POSITIVE_THRESHOLD is `positive`, <= NEGATIVE_THRESHOLD
 * `negative`, between `neutral`. A single text's label is the model's three-class decision.
 */
export const POSITIVE_THRESHOLD = 0.35;
export const NEGATIVE_THRESHOLD = -0.35;
/** Languages with a lexicon. Text detected as anything else is neutral with low confidence. */
export const SUPPORTED_LANGUAGES: ReadonlySet<string> = new Set(['en']);
export const UNSUPPORTED_LANGUAGE_CONFIDENCE = 0.2;
/** Weight of the star rating in a language without a model. */
export const RATING_WEIGHT = 0.5;
/**
 * A star rating's share of the logit, per unit of rating (-1 for 1 of 5 .. 1 for 5 of 5): 1.5
 * makes a 1-star review with neutral words score about -0.9, and a 5-star one with mildly
 * negative words still positive. Not learned (no training text has a rating).
 */
export const RATING_LOGIT_WEIGHT = 1.5;
const MAX_EXPLANATION = 12;
/**
 * Characters of a token an explanation names, with "…" when cut: one 100,000-letter word made a
 * 260 kB explanation (2.6 times the text), stored and published with every enriched event.
 */
export const MAX_EXPLANATION_TOKEN = 64;

/** `token`, cut to MAX_EXPLANATION_TOKEN characters (never inside a surrogate pair). */
export function shortToken(token: string): string {
  if (token.length <= MAX_EXPLANATION_TOKEN) return token;
  let cut = MAX_EXPLANATION_TOKEN - 1;
  const c = token.charCodeAt(cut - 1);
  if (c >= 0xd800 && c <= 0xdbff) cut--;
  return `${token.slice(0, cut)}…`;
}

/** Maps a score to its label with the documented thresholds. */
export function labelFor(score: number): SentimentLabel {
  return score >= POSITIVE_THRESHOLD ? 'positive' : score <= NEGATIVE_THRESHOLD ? 'negative' : 'neutral';
}

export class SentimentAnalyzer {
  private readonly taxonomy: TaxonomyTopic[];
  private readonly topics: TopicMatcher;
  private readonly model: LinearModel;
  private readonly featurizer: Featurizer;
  private readonly z = new Float64Array(HEADS + 1);
  private readonly scratch = { acc: new Float64Array(256) };
  private readonly fold: (text: string) => FoldedText;
  /** HTML entities, elongation, decorative emoji and all-capitals read plain too (./text-fold.ts) */
  private readonly foldAll: boolean;

  /**
   * `fold: false` reads texts exactly as written, as every analyzer did before ./text-fold.ts:
   * for the evaluation, which measures what folding is worth (`--perturb`).
   */
  constructor(opts: { taxonomy?: TaxonomyTopic[]; model?: LinearModel; fold?: boolean } = {}) {
    this.taxonomy = opts.taxonomy ?? DEFAULT_TAXONOMY;
    this.topics = new TopicMatcher(this.taxonomy);
    this.model = opts.model ?? defaultModel();
    this.featurizer = sharedFeaturizer(this.model.header.hashBits);
    this.fold = opts.fold === false ? asWritten : foldText;
    this.foldAll = opts.fold !== false;
  }

  /** The versioned name of the model that scores (recorded with what it scored). */
  get modelName(): string {
    return this.model.name;
  }

  /** Only the taxonomy topics of a text: what re-tagging after a taxonomy edit needs. */
  topicsOf(text: string): TopicMatch[] {
    const sliced = decodePercent(text.length > MAX_SCORED_CHARS ? text.slice(0, MAX_SCORED_CHARS) : text);
    if (!this.foldAll) return this.topics.match(tokenize(this.fold(sliced).text));
    // read as analyze() reads it, or a re-tag would move the topics ingest gave ("paaarcel laaate")
    return this.topics.match(normalizeTokens(tokenize(this.fold(decodeEntities(sliced)).text)));
  }

  /**
   * Pure and synchronous; never throws on any input (non-strings are treated as text). Work is
   * bounded: only the first MAX_SCORED_CHARS characters are scored, so a 1 MB text costs about
   * as much as a 100 kB one. Everything is read from the folded text (./text-fold.ts: what reads
   * the same to a person reads the same here); explanations name tokens as they were written.
   */
  analyze(text: string, opts: AnalyzeOptions = {}): Analysis {
    const input = typeof text === 'string' ? text : text == null ? '' : String(text);
    const truncated = input.length > MAX_SCORED_CHARS;
    // a URL-encoded text is read decoded, as training reads it (./text-fold.ts, decodePercent)
    const sliced = decodePercent(truncated ? input.slice(0, MAX_SCORED_CHARS) : input);
    let written = this.foldAll ? decodeEntities(sliced) : sliced;
    let folded = this.fold(written);
    // an entity the fold revealed ("＆ａｍｐ；", "&am\u200bp;"): decoded, and named as folded
    if (this.foldAll && folded.origin !== null && folded.text.indexOf('&') >= 0) {
      const d = decodeEntities(folded.text);
      if (d !== folded.text) folded = this.fold((written = d));
    }
    const scored = folded.text;
    const read = tokenizeFolded(folded, written);
    const tokens = this.foldAll ? normalizeTokens(read) : read;
    const lang = detectLanguage(scored, opts?.lang, tokens);
    const topics = this.topics.match(tokens);
    const rating = ratingScore(opts?.rating, opts?.ratingScale);
    const ratingItem = rating === null ? null : { token: `rating ${opts.rating}/${opts.ratingScale ?? 5}`, weight: round3(rating * RATING_LOGIT_WEIGHT) };

    if (lang !== 'und' && !SUPPORTED_LANGUAGES.has(lang)) {
      // No model for this language: an honest "don't know" beats a confident wrong answer. A
      // star rating is language-independent, so it still counts, at low confidence.
      const score = rating === null ? 0 : round3(rating * RATING_WEIGHT);
      const label = labelFor(score);
      const intent = classifyIntent(scored.includes('?') ? '?' : '', { negative: false, positive: false, complaint: false });
      const logit = rating === null ? 0 : round6(Math.atanh(Math.max(-0.999, Math.min(0.999, score))));
      return {
        score,
        label,
        confidence: UNSUPPORTED_LANGUAGE_CONFIDENCE,
        intent: intent.intent,
        intentConfidence: Math.min(0.3, intent.confidence),
        complaint: false,
        complaintProbability: 0,
        unhappy: label === 'negative',
        lang,
        topics,
        // the rating is all the logit holds here (at RATING_WEIGHT, not the model's RATING_LOGIT_WEIGHT)
        explanation: [{ token: `(no sentiment model for language '${lang}')`, weight: 0 }, ...(ratingItem ? [{ token: ratingItem.token, weight: round3(logit) }] : [])],
        logit,
        model: this.model.name,
      };
    }
    // only white space (a line break, a tab: the transcript of a silent call) says nothing; its
    // line-break tokens alone read as mildly negative, and opened a listening item
    if ((tokens.length === 0 || scored.trim().length === 0) && rating === null) return this.empty(lang, topics);

    const fv = this.featurizer.featuresOfTokens(tokens);
    const z = this.z;
    const { items, logit: textLogit } = this.model.explain(fv, MAX_EXPLANATION - 2, this.scratch, z);
    let logit = textLogit;
    if (ratingItem) {
      logit += rating! * RATING_LOGIT_WEIGHT;
      items.push(ratingItem);
    }
    const score = round3(Math.tanh(logit));
    const th = this.model.header.thresholds;
    const probs = softmax3(z[HEAD_NEGATIVE]!, z[HEAD_NEUTRAL]!, z[HEAD_POSITIVE]!);
    let label: SentimentLabel;
    if (rating !== null) label = labelFor(score);
    else {
      const n = z[HEAD_NEGATIVE]! + th.negativeOffset;
      const p = z[HEAD_POSITIVE]! + th.positiveOffset;
      const z1 = z[HEAD_NEUTRAL]!;
      label = n >= z1 && n >= p ? 'negative' : p > z1 && p > n ? 'positive' : 'neutral';
      // The label never contradicts the direction of the score, nor calls a near-zero score polar.
      const m = th.minPolarScore ?? 0;
      if ((label === 'positive' && score <= m) || (label === 'negative' && score >= -m)) label = 'neutral';
    }
    const complaintProbability = 1 / (1 + Math.exp(-z[HEAD_COMPLAINT]!));
    let complaint = complaintProbability >= th.complaint || (complaintProbability >= COMPLAINT_CUE_PROBABILITY && COMPLAINT_CUE.test(cueText(scored.length > 5_000 ? scored.slice(0, 5_000) : scored)));
    // "How do I reset my password?": topic words (account, password, email) lean negative in the
    // training sets, but a how-to question without a negative word or a sign of grievance is a
    // question. The score and its explanation stay what the model computed.
    if ((label === 'negative' || complaint) && rating === null && !hasNegativeWord(fv) && isPlainHowToQuestion(scored)) {
      if (label === 'negative') label = 'neutral';
      complaint = false;
    }
    const intent = classifyIntent(scored, { negative: label === 'negative', positive: label === 'positive', complaint, complaintProbability });
    const unhappy = label === 'negative' || complaint || intent.intent === 'churn_threat';
    const explanation = items.map((e) => ({ token: shortToken(e.token), weight: round3(e.weight) }));
    if (truncated) explanation.push({ token: `(only the first ${MAX_SCORED_CHARS} characters were scored)`, weight: 0 });
    const confidence = rating !== null ? Math.max(Math.abs(score), 0.5) : label === 'negative' ? probs[0] : label === 'positive' ? probs[2] : probs[1];
    return {
      score,
      label,
      confidence: round3(confidence),
      intent: intent.intent,
      intentConfidence: intent.confidence,
      complaint,
      complaintProbability: round3(complaintProbability),
      unhappy,
      lang,
      topics,
      explanation,
      logit: round6(logit),
      model: this.model.name,
    };
  }

  private empty(lang: string, topics: TopicMatch[]): Analysis {
    return {
      score: 0,
      label: 'neutral',
      confidence: 0.5,
      intent: 'other',
      intentConfidence: 0.5,
      complaint: false,
      complaintProbability: 0,
      unhappy: false,
      lang,
      topics,
      explanation: [],
      logit: 0,
      model: this.model.name,
    };
  }
}

function asWritten(text: string): FoldedText {
  return { text, origin: null };
}

/** True when a word of the text has negative lexicon valence (after negation and "but"). */
function hasNegativeWord(fv: { n: number; idx: Int32Array; val: Float64Array }): boolean {
  for (let e = fv.n - 1; e >= 0; e--) if (fv.idx[e] === F_LEX_NEG && fv.val[e]! !== 0) return true;
  return false;
}

// One featurizer (and its lexicon engine) per process and hash size: analyzers are rebuilt on
// every taxonomy edit, the lexicon is not.
const featurizers = new Map<number, Featurizer>();
function sharedFeaturizer(hashBits: number): Featurizer {
  let f = featurizers.get(hashBits);
  if (!f) featurizers.set(hashBits, (f = new Featurizer(hashBits)));
  return f;
}

function softmax3(a: number, b: number, c: number): [number, number, number] {
  const m = Math.max(a, b, c);
  const ea = Math.exp(a - m);
  const eb = Math.exp(b - m);
  const ec = Math.exp(c - m);
  const s = ea + eb + ec;
  return [ea / s, eb / s, ec / s];
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

/**
 * Only white space (a line break, a tab: the transcript of a silent call) and no rating that
 * counts: nothing to score. The built-in analyzer reads such a text as neutral without its model,
 * and the scorer sends it to no model server (./sentiment.scorer.ts).
 */
export function saysNothing(text: unknown, rating?: number | null, ratingScale?: number): boolean {
  return ratingScore(rating, ratingScale) === null && (typeof text === 'string' ? text : text == null ? '' : String(text)).trim().length === 0;
}

/**
 * A rating mapped linearly to [-1, 1], or null when absent or out of range. Stars run from 1 (3 of
 * 5 is 0); a scale of 10 or more runs from 0, as interactions.v1 has it for NPS-style surveys
 * (`metadata.ratingScale` 10: 0 is -1, 5 is 0). Before, a 0 of 10, the least likely to recommend,
 * was out of range and counted for nothing.
 */
export function ratingScore(rating: number | null | undefined, scale: number | undefined = 5): number | null {
  const max = typeof scale === 'number' && Number.isFinite(scale) && scale > 1 ? scale : 5;
  const min = max >= 10 ? 0 : 1;
  if (typeof rating !== 'number' || !Number.isFinite(rating) || rating < min || rating > max) return null;
  return (rating - (min + max) / 2) / ((max - min) / 2);
}

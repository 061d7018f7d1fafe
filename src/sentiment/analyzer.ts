// The analyzer every department reads: sentiment with its explanation, intent, topics routed to
// departments, and language. Composition only; the parts live in their own modules.
import { classifyIntent, type Intent } from './intent.classifier';
import { detectLanguage } from './language';
import { type EngineParams, MAX_SCORED_CHARS, round3, SentimentEngine, tokenize } from './sentiment.engine';
import { DEFAULT_TAXONOMY, type TaxonomyTopic, TopicMatcher, type TopicMatch } from './topic.matcher';

export type { Intent } from './intent.classifier';
export type { TaxonomyTopic, TopicMatch } from './topic.matcher';
export { DEFAULT_TAXONOMY } from './topic.matcher';

export type SentimentLabel = 'negative' | 'neutral' | 'positive';

export interface Analysis {
  /** in [-1, 1] */
  score: number;
  label: SentimentLabel;
  /** in [0, 1]; at most {@link UNSUPPORTED_LANGUAGE_CONFIDENCE} for a language without a lexicon */
  confidence: number;
  intent: Intent;
  intentConfidence: number;
  /** ISO 639-1 code, or `und` when undetermined */
  lang: string;
  topics: TopicMatch[];
  /** the words and signals that moved the score, by |weight|; weights on the -4..+4 valence scale */
  explanation: { token: string; weight: number }[];
  /** the name and version of the model that scored it; stored with every interaction */
  model: string;
}

export interface AnalyzeOptions {
  /** the language the source declared; detection runs when absent */
  lang?: string | null;
  /** star rating, 1..ratingScale */
  rating?: number | null;
  ratingScale?: number;
}

/**
 * Label thresholds. A score >= POSITIVE_THRESHOLD is `positive`, <= NEGATIVE_THRESHOLD is
 * `negative`, anything between is `neutral`. Wider than VADER's ±0.05 because a single mildly
 * rated word ("like", "please", "ok") should not make a post positive. Chosen by sweeping 0.05..0.5
 * on the even-numbered lines of the TweetEval validation set (macro-F1 0.591 at 0.35, 0.593 at
 * 0.4; the lower one was kept so mild complaints still count as negative); the odd-numbered lines
 * are reported separately as held out.
 */
export const POSITIVE_THRESHOLD = 0.35;
export const NEGATIVE_THRESHOLD = -0.35;
/** Languages with a lexicon. Text detected as anything else is neutral with low confidence. */
export const SUPPORTED_LANGUAGES: ReadonlySet<string> = new Set(['en']);
export const UNSUPPORTED_LANGUAGE_CONFIDENCE = 0.2;
/** Weight of the star rating when the text also carries sentiment (the rest is the text). */
export const RATING_WEIGHT = 0.5;
/** What interactions scored by this analyzer record as their model. */
export const BUILT_IN_MODEL = 'earshot-lexicon-v1';

/** Maps a score to its label with the documented thresholds. */
export function labelFor(score: number): SentimentLabel {
  return score >= POSITIVE_THRESHOLD ? 'positive' : score <= NEGATIVE_THRESHOLD ? 'negative' : 'neutral';
}

export class SentimentAnalyzer {
  private readonly taxonomy: TaxonomyTopic[];
  private readonly topics: TopicMatcher;
  private readonly engine: SentimentEngine;

  constructor(opts: { taxonomy?: TaxonomyTopic[]; params?: Partial<EngineParams> } = {}) {
    this.taxonomy = opts.taxonomy ?? DEFAULT_TAXONOMY;
    this.topics = new TopicMatcher(this.taxonomy);
    this.engine = new SentimentEngine(opts.params);
  }

  /** Only the taxonomy topics of a text: what re-tagging after a taxonomy edit needs. */
  topicsOf(text: string): TopicMatch[] {
    return this.topics.match(tokenize(text.length > MAX_SCORED_CHARS ? text.slice(0, MAX_SCORED_CHARS) : text));
  }

  /**
   * Pure and synchronous; never throws on any input (non-strings are treated as text). Work is
   * bounded: only the first MAX_SCORED_CHARS characters are scored, so a 1 MB text costs about
   * as much as a 100 kB one.
   */
  analyze(text: string, opts: AnalyzeOptions = {}): Analysis {
    const input = typeof text === 'string' ? text : text == null ? '' : String(text);
    const truncated = input.length > MAX_SCORED_CHARS;
    const scored = truncated ? input.slice(0, MAX_SCORED_CHARS) : input;
    const lang = detectLanguage(scored, opts?.lang);
    const tokens = tokenize(scored);
    const topics = this.topics.match(tokens);
    const rating = ratingScore(opts?.rating, opts?.ratingScale);

    if (lang !== 'und' && !SUPPORTED_LANGUAGES.has(lang)) {
      // No lexicon: an honest "don't know" beats a confident wrong answer. A star rating is
      // language-independent, so it still counts, at low confidence.
      const score = rating === null ? 0 : round3(rating * RATING_WEIGHT);
      const intent = classifyIntent(scored.includes('?') ? '?' : '', 0, NEGATIVE_THRESHOLD, POSITIVE_THRESHOLD);
      return {
        score,
        label: labelFor(score),
        confidence: UNSUPPORTED_LANGUAGE_CONFIDENCE,
        intent: intent.intent,
        intentConfidence: Math.min(0.3, intent.confidence),
        lang,
        topics,
        explanation: [
          { token: `(no sentiment lexicon for language '${lang}')`, weight: 0 },
          ...(rating === null ? [] : [{ token: `rating ${opts.rating}/${opts.ratingScale ?? 5}`, weight: round3(rating * 4) }]),
        ],
        model: BUILT_IN_MODEL,
      };
    }

    const s = this.engine.scoreTokens(tokens, truncated);
    let score = s.score;
    const explanation = s.explanation.slice();
    if (rating !== null) {
      score = s.signals > 0 ? RATING_WEIGHT * rating + (1 - RATING_WEIGHT) * s.score : rating;
      explanation.push({ token: `rating ${opts.rating}/${opts.ratingScale ?? 5}`, weight: round3(rating * 4) });
      explanation.sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
    }
    score = round3(Math.max(-1, Math.min(1, score)));
    const label = labelFor(score);
    const intent = classifyIntent(scored, score, NEGATIVE_THRESHOLD, POSITIVE_THRESHOLD);
    return {
      score,
      label,
      confidence: confidenceFor(score, label, s.positive, s.negative, s.signals, rating),
      intent: intent.intent,
      intentConfidence: intent.confidence,
      lang,
      topics,
      explanation,
      model: BUILT_IN_MODEL,
    };
  }
}

/** A star rating mapped linearly to [-1, 1] (3 of 5 is 0), or null when absent or out of range. */
export function ratingScore(rating: number | null | undefined, scale: number | undefined = 5): number | null {
  const max = typeof scale === 'number' && Number.isFinite(scale) && scale > 1 ? scale : 5;
  if (typeof rating !== 'number' || !Number.isFinite(rating) || rating < 1 || rating > max) return null;
  return (rating - (1 + max) / 2) / ((max - 1) / 2);
}

function confidenceFor(score: number, label: SentimentLabel, pos: number, neg: number, signals: number, rating: number | null): number {
  let c: number;
  if (signals === 0 && rating === null) {
    // Nothing sentiment-bearing: neutral is likely but we have no evidence either way.
    c = 0.55;
  } else {
    const mass = pos - neg;
    const agreement = mass > 0 ? Math.abs(pos + neg) / mass : 1;
    const evidence = Math.min(1, signals / 4);
    if (label === 'neutral') {
      // Closer to zero and with less mixed evidence = surer that it is neutral.
      const margin = 1 - Math.abs(score) / POSITIVE_THRESHOLD;
      c = 0.35 + 0.3 * margin + 0.1 * (1 - evidence);
    } else {
      c = 0.3 + 0.35 * Math.min(1, Math.abs(score) / 0.8) + 0.2 * agreement + 0.1 * evidence;
    }
    if (rating !== null) c += Math.sign(rating) === Math.sign(score) ? 0.1 : -0.1;
  }
  return round3(Math.max(0, Math.min(1, c)));
}

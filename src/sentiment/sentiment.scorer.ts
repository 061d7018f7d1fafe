import type { Logger } from '../shared/logger';
import { labelFor, saysNothing, shortToken, type Analysis, type TopicMatch } from './analyzer';
import { normalizeLanguageTag } from './language';
import { RemoteModelError, type RemoteResult, type RemoteSentimentModel, type ScoreItem } from './remote-model.client';
import type { LoadedTaxonomy, TaxonomyService } from './taxonomy.service';

export type { ScoreItem } from './remote-model.client';

/**
 * Scores batches of texts: the built-in analyzer always (language, topics, intent, and the fallback),
 * and, when EARSHOT_SENTIMENT_URL is set, the team's model server for sentiment.
 *
 * Must stay true: one Analysis per item, in order, whatever the server does (fails, hangs, answers
 * garbage, or the breaker is open: those items keep the built-in analysis); `model` names the model
 * whose score each Analysis carries; never throws for the server's sake.
 */
export class SentimentScorer {
  constructor(
    private readonly taxonomy: Pick<TaxonomyService, 'current'>,
    private readonly remote: RemoteSentimentModel | null,
    private readonly log: Logger,
    private readonly batchSize = 64,
  ) {}

  get external(): boolean {
    return this.remote !== null;
  }

  /**
   * Analyzes every item. Pass the taxonomy the caller already loaded so topics and their ids come
   * from one snapshot. Call it outside any database transaction: it may wait on the network.
   */
  async analyzeBatch(items: ScoreItem[], loaded?: LoadedTaxonomy): Promise<Analysis[]> {
    const tax = loaded ?? (await this.taxonomy.current());
    const local = items.map((it) => tax.analyzer.analyze(it.text, { lang: it.lang, rating: it.rating, ratingScale: it.ratingScale }));
    if (!this.remote || items.length === 0) return local;
    const remote = this.remote;
    const byName = new Map(tax.topics.map((t) => [t.name, t]));
    // only white space: neutral, as the built-in analysis read it; before, the server was asked
    // (and its score of nothing opened listening items for silent calls)
    const sent = items.flatMap((it, i) => (saysNothing(it.text, it.rating, it.ratingScale) ? [] : [i]));
    const chunks: number[] = [];
    for (let start = 0; start < sent.length; start += this.batchSize) chunks.push(start);
    // Chunks go out together; the client caps what is in flight per process.
    await Promise.all(
      chunks.map(async (start) => {
        const at = sent.slice(start, start + this.batchSize);
        // the language the built-in analysis settled on when the text's script overruled the
        // declared one ("en" stamped on Japanese, ./language.ts): the server is told "ja" too
        const slice = at.map((n) => {
          const it = items[n]!;
          const lang = local[n]!.lang;
          const declared = normalizeLanguageTag(it.lang);
          return declared !== null && declared !== lang ? { ...it, lang } : it;
        });
        try {
          const batch = await remote.score(slice);
          batch.results.forEach((r, i) => (local[at[i]!] = withRemote(local[at[i]!]!, r, batch.model, byName)));
        } catch (e) {
          const kind = e instanceof RemoteModelError ? e.kind : 'error';
          // breaker_open is the steady state of an outage: logged once by the breaker, not per batch
          if (kind !== 'breaker_open') this.log.warn({ kind, err: (e as Error).message, texts: slice.length }, 'sentiment model server failed; built-in model used for this batch');
        }
      }),
    );
    return local;
  }
}

/**
 * The server's sentiment over the built-in analysis. What the server did not send (lang, intent,
 * topics, explanation) stays the built-in analyzer's; the explanation never pretends the built-in
 * words explain the server's score.
 */
export function withRemote(base: Analysis, r: RemoteResult, model: string, topics: Map<string, { name: string; department: string }>): Analysis {
  const score = Math.round(r.score * 1000) / 1000;
  let intent = base.intent;
  let intentConfidence = base.intentConfidence;
  if (r.intent) {
    intent = r.intent;
    intentConfidence = r.intentConfidence ?? 0.5;
  } else if (r.complaint === true && intent !== 'complaint' && intent !== 'churn_threat') {
    intent = 'complaint';
    intentConfidence = r.intentConfidence ?? 0.5;
  } else if (r.complaint === false && intent === 'complaint') {
    intent = 'other';
    intentConfidence = r.intentConfidence ?? 0.5;
  }
  const matched: TopicMatch[] | null = r.topics
    ? [...new Set(r.topics)].flatMap((name) => {
        const t = topics.get(name);
        return t ? [{ name: t.name, department: t.department, matched: [] }] : [];
      })
    : null;
  const label = r.label ?? labelFor(score);
  const complaint = r.complaint ?? base.complaint;
  return {
    score,
    label,
    confidence: r.confidence ?? 0.5,
    intent,
    intentConfidence,
    complaint,
    complaintProbability: r.complaint === undefined ? base.complaintProbability : r.complaint ? 1 : 0,
    unhappy: label === 'negative' || complaint || intent === 'churn_threat',
    // keeps score = tanh(logit); the server's own explanation (if any) need not add up to it
    logit: Math.round(Math.atanh(Math.max(-0.999999, Math.min(0.999999, score))) * 1e6) / 1e6,
    lang: r.lang ?? base.lang,
    topics: matched ?? base.topics,
    explanation: r.explanation?.slice(0, 50).map((e) => ({ token: shortToken(wellFormed(e.token)), weight: e.weight })) ?? [{ token: `(scored by ${model}; no explanation given)`, weight: 0 }],
    model,
  };
}

/**
 * A server's token with each lone UTF-16 surrogate (JSON "\ud800") made U+FFFD, as the built-in
 * tokens (from texts the ingest edge checked) never hold one: kept, it went into every enriched
 * event as an escape strict JSON readers refuse, and no revert to jsonb could cast it.
 */
function wellFormed(token: string): string {
  return (token as unknown as { toWellFormed(): string }).toWellFormed();
}

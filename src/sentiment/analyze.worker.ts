// Runs on a worker thread (piscina): large analyzeText inputs are scored here, off the event loop.
import { SentimentAnalyzer, type Analysis, type TaxonomyTopic } from './analyzer';

export interface AnalyzeTask {
  text: string;
  lang?: string | null;
  /** identifies `taxonomy`: the analyzer is rebuilt only when it changes */
  taxonomyKey: string;
  taxonomy: TaxonomyTopic[];
}

let cached: { key: string; analyzer: SentimentAnalyzer } | null = null;

export default function analyze(task: AnalyzeTask): Analysis {
  if (cached?.key !== task.taxonomyKey) cached = { key: task.taxonomyKey, analyzer: new SentimentAnalyzer({ taxonomy: task.taxonomy }) };
  return cached.analyzer.analyze(task.text, { lang: task.lang });
}

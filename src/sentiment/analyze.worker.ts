// Runs on a worker thread (piscina): large analyzeText inputs are scored here, off the event loop.
import { SentimentAnalyzer, type Analysis, type TaxonomyTopic } from './analyzer';
import { loadDefaultModel } from './model/linear-model';

export interface AnalyzeTask {
  text: string;
  lang?: string | null;
  /** identifies `taxonomy`: the analyzer is rebuilt only when it changes */
  taxonomyKey: string;
  taxonomy: TaxonomyTopic[];
  /** the weights file the main thread loaded (EARSHOT_SENTIMENT_MODEL_FILE), so both score alike */
  modelFile?: string;
}

let cached: { key: string; analyzer: SentimentAnalyzer } | null = null;

export default function analyze(task: AnalyzeTask): Analysis {
  if (cached?.key !== task.taxonomyKey) {
    loadDefaultModel(task.modelFile);
    cached = { key: task.taxonomyKey, analyzer: new SentimentAnalyzer({ taxonomy: task.taxonomy }) };
  }
  return cached.analyzer.analyze(task.text, { lang: task.lang });
}

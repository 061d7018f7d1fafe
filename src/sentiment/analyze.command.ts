// Core of `earshot analyze`: texts in on one stream, one JSON analysis per line out, in order.
import { once } from 'node:events';
import readline from 'node:readline';
import { type Analysis, type AnalyzeOptions, SentimentAnalyzer, type TaxonomyTopic } from './analyzer';

export interface AnalyzeCommandOptions {
  /** when true each line is a JSON object with `text` (and optional `lang`, `rating`, `ratingScale`) */
  jsonl: boolean;
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  taxonomy?: TaxonomyTopic[];
}

/** The fields written for each line; the same as GraphQL's analyzeText. */
export function toOutputRecord(a: Analysis): Record<string, unknown> {
  return {
    score: a.score,
    label: a.label,
    confidence: a.confidence,
    intent: a.intent,
    intentConfidence: a.intentConfidence,
    lang: a.lang,
    topics: a.topics.map((t) => ({ name: t.name, department: t.department })),
    explanation: a.explanation,
  };
}

function parseJsonLine(line: string): { text: string; opts: AnalyzeOptions } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    return { error: `invalid JSON: ${(e as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { error: 'expected a JSON object with a "text" field' };
  const o = value as Record<string, unknown>;
  if (typeof o.text !== 'string') return { error: 'missing string field "text"' };
  return {
    text: o.text,
    opts: {
      lang: typeof o.lang === 'string' ? o.lang : null,
      rating: typeof o.rating === 'number' ? o.rating : null,
      ratingScale: typeof o.ratingScale === 'number' ? o.ratingScale : undefined,
    },
  };
}

/**
 * Reads `input` line by line and writes exactly one JSON object per input line to `output`, in
 * input order (a bad JSON line yields `{"error": ...}` and processing continues). Memory stays
 * bounded whatever the input size: output is batched and the reader waits for `drain` whenever
 * `write()` returns false. Resolves with the number of lines once everything is written; does
 * not end `output`. `failed` counts the lines answered with `{"error"}`.
 */
export async function runAnalyzeCommand(opts: AnalyzeCommandOptions): Promise<{ lines: number; failed: number }> {
  const analyzer = new SentimentAnalyzer({ taxonomy: opts.taxonomy });
  const rl = readline.createInterface({ input: opts.input, crlfDelay: Infinity });
  let lines = 0;
  let failed = 0;
  let batch = '';
  const flush = async () => {
    if (!batch) return;
    const chunk = batch;
    batch = '';
    if (!opts.output.write(chunk)) await once(opts.output as NodeJS.EventEmitter, 'drain');
  };
  for await (const line of rl) {
    lines++;
    let record: Record<string, unknown>;
    if (opts.jsonl) {
      if (line.trim() === '') record = { error: 'empty line' };
      else {
        const parsed = parseJsonLine(line);
        record = 'error' in parsed ? { error: parsed.error } : toOutputRecord(analyzer.analyze(parsed.text, parsed.opts));
      }
    } else {
      record = toOutputRecord(analyzer.analyze(line));
    }
    if ('error' in record) failed++;
    batch += JSON.stringify(record) + '\n';
    // Writing in ~64 kB chunks keeps per-write overhead low on 100,000-line runs.
    if (batch.length >= 65_536) await flush();
  }
  await flush();
  return { lines, failed };
}

// Core of `earshot analyze`: texts in on one stream, one JSON analysis per line out, in order.
import { once } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import { type Analysis, type AnalyzeOptions, SentimentAnalyzer, type TaxonomyTopic } from './analyzer';
import { MAX_SCORED_CHARS } from './sentiment.engine';

/**
 * Longest `--jsonl` line read whole; a longer one is answered with `{"error"}`. Plain lines keep
 * their first MAX_SCORED_CHARS + 1 characters (all the analyzer reads, and enough for it to say
 * that it truncated). readline held a whole line in memory: /dev/zero or a 600 MB line ended the
 * process with "RangeError: Invalid string length" and a stack trace.
 */
export const MAX_JSONL_LINE_CHARS = 16 * 1024 * 1024;

/**
 * The lines of `input` (split at \n, \r\n or a lone \r, as readline did; a leading BOM dropped),
 * each cut to its first `maxChars` characters: memory stays bounded whatever the input.
 */
async function* boundedLines(input: NodeJS.ReadableStream, maxChars: number): AsyncGenerator<{ line: string; overlong: boolean }> {
  const decoder = new StringDecoder('utf8');
  let parts: string[] = [];
  let kept = 0;
  let overlong = false;
  let skipLf = false;
  let first = true;
  let ready: { line: string; overlong: boolean }[] = [];
  const take = (s: string) => {
    if (s.length === 0) return;
    const room = maxChars - kept;
    if (s.length > room) {
      if (room > 0) parts.push(s.slice(0, room));
      kept = maxChars;
      overlong = true;
    } else {
      parts.push(s);
      kept += s.length;
    }
  };
  const end = () => {
    ready.push({ line: parts.join(''), overlong });
    parts = [];
    kept = 0;
    overlong = false;
  };
  const scan = (text: string) => {
    if (text.length === 0) return;
    if (first) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let start = 0;
    if (skipLf && text.charCodeAt(0) === 10) start = 1;
    skipLf = false;
    const breaks = /[\r\n]/g;
    breaks.lastIndex = start;
    for (let m = breaks.exec(text); m; m = breaks.exec(text)) {
      take(text.slice(start, m.index));
      end();
      start = m.index + 1;
      if (text.charCodeAt(m.index) === 13) {
        if (start === text.length) skipLf = true;
        else if (text.charCodeAt(start) === 10) start++;
      }
      breaks.lastIndex = start;
    }
    take(text.slice(start));
  };
  for await (const chunk of input) {
    scan(typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer));
    if (ready.length > 0) {
      const lines = ready;
      ready = [];
      yield* lines;
    }
  }
  scan(decoder.end());
  if (kept > 0 || overlong) end();
  yield* ready;
}

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
    complaint: a.complaint,
    complaintProbability: a.complaintProbability,
    unhappy: a.unhappy,
    lang: a.lang,
    topics: a.topics.map((t) => ({ name: t.name, department: t.department })),
    explanation: a.explanation,
    logit: a.logit,
    model: a.model,
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
  let lines = 0;
  let failed = 0;
  let batch = '';
  const flush = async () => {
    if (!batch) return;
    const chunk = batch;
    batch = '';
    if (!opts.output.write(chunk)) await once(opts.output as NodeJS.EventEmitter, 'drain');
  };
  for await (const { line, overlong } of boundedLines(opts.input, opts.jsonl ? MAX_JSONL_LINE_CHARS : MAX_SCORED_CHARS + 1)) {
    lines++;
    let record: Record<string, unknown>;
    if (opts.jsonl) {
      if (overlong) record = { error: `line longer than ${MAX_JSONL_LINE_CHARS} characters` };
      else if (line.trim() === '') record = { error: 'empty line' };
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

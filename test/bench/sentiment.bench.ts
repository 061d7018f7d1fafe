// Throughput of the analyzer on one core: `npm run bench:sentiment`.
// Tweet-length texts are the TweetEval validation tweets (real posts, 2,000 of them, cycled);
// the transcript is 5,000 words assembled from them, as a call transcript would arrive.
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { SentimentAnalyzer } from '../../src/sentiment/analyzer';
import { languageDetectorAvailable } from '../../src/sentiment/language';
import { defaultModel, modelPath } from '../../src/sentiment/model/linear-model';

const DATA_DIR = path.resolve(process.env.EARSHOT_DATA_DIR ?? path.join(process.cwd(), '../shared/data'), 'sentiment');
const DURATION_MS = Number(process.env.BENCH_MS ?? 5_000);
const WINDOWS = 10;

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

/** Texts per CPU-second of this process over `texts`, cycled for about `ms`. */
function perCpuSecondOf(analyzer: SentimentAnalyzer, texts: string[], ms: number): number {
  for (const t of texts) analyzer.analyze(t);
  let n = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    for (let i = 0; i < 500; i++) analyzer.analyze(texts[(n + i) % texts.length]!);
    n += 500;
  }
  const cpu = process.cpuUsage(cpu0);
  return n / ((cpu.user + cpu.system) / 1e6);
}

/**
 * The text field of the Sanders corpus (../shared/data/sentiment-train): tweets about four
 * brands in English, Spanish, German, French, Dutch and others, so the language detector runs
 * on many of them; [] when the set is not there.
 */
function multilingualTweets(): string[] {
  const file = path.join(DATA_DIR, '..', 'sentiment-train', 'sanders_twitter', 'full-corpus.csv');
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => /"((?:[^"]|"")*)"\s*$/.exec(line)?.[1]?.replaceAll('""', '"') ?? '')
    .filter((t) => t.trim() !== '');
}

function main(): void {
  const tweets = fs.readFileSync(path.join(DATA_DIR, 'tweeteval_val_text.txt'), 'utf8').split('\n').filter((t) => t.trim() !== '');
  // Model load: read, gunzip, dequantise; the first call in the process is the real cost.
  const l0 = performance.now();
  const model = defaultModel();
  const loadMs = performance.now() - l0;
  const modelBytes = fs.statSync(modelPath()).size;
  const a0 = performance.now();
  const analyzer = new SentimentAnalyzer();
  const firstAnalyzerMs = performance.now() - a0;
  const avgChars = tweets.reduce((s, t) => s + t.length, 0) / tweets.length;

  // Warm-up so the JIT has compiled the hot paths before timing.
  for (let i = 0; i < 4_000; i++) analyzer.analyze(tweets[i % tweets.length]);

  // Several short windows: on a shared machine other processes steal time in bursts, so the
  // median window is reported (and the best, which is what the code does on an idle core).
  let n = 0;
  let sink = 0;
  const windows: number[] = [];
  // CPU time of this process over the same windows: on a shared machine a wall-clock window also
  // counts the time other processes held the core, CPU time only what the analysis itself took.
  const cpu0 = process.cpuUsage();
  for (let w = 0; w < WINDOWS; w++) {
    let count = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < DURATION_MS / WINDOWS) {
      for (let i = 0; i < 1_000; i++) sink += analyzer.analyze(tweets[(n + i) % tweets.length]).score;
      n += 1_000;
      count += 1_000;
    }
    windows.push((count / (performance.now() - t0)) * 1000);
  }
  const cpu = process.cpuUsage(cpu0);
  const perCpuSecond = n / ((cpu.user + cpu.system) / 1e6);
  windows.sort((a, b) => a - b);
  const perSecond = windows[Math.floor(windows.length / 2)];
  const best = windows[windows.length - 1];

  // Per-text latency, timed individually (adds timer overhead, so throughput above is the figure).
  const lat = new Float64Array(20_000);
  for (let i = 0; i < lat.length; i++) {
    const s = performance.now();
    sink += analyzer.analyze(tweets[i % tweets.length]).score;
    lat[i] = performance.now() - s;
  }
  lat.sort();

  const words: string[] = [];
  for (let i = 0; words.length < 5_000; i++) words.push(...tweets[i % tweets.length].split(/\s+/).filter(Boolean));
  const transcript = words.slice(0, 5_000).join(' ');
  const runs: number[] = [];
  for (let i = 0; i < 25; i++) {
    const s = performance.now();
    sink += analyzer.analyze(transcript).score;
    runs.push(performance.now() - s);
  }
  runs.sort((a, b) => a - b);

  const big = 'The parcel was late again and support never answered. '.repeat(Math.ceil(1_048_576 / 55)).slice(0, 1_048_576);
  const sBig = performance.now();
  sink += analyzer.analyze(big).score;
  const bigMs = performance.now() - sBig;

  const sanders = multilingualTweets();
  const sandersPerCpuSecond = sanders.length > 0 ? perCpuSecondOf(analyzer, sanders, DURATION_MS / 2) : null;
  // The heap the collector marks at every major collection, and how long one full collection
  // takes, with the analyzer and the language detector loaded (their tables are the live part).
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  gc();
  const g0 = performance.now();
  gc();
  const fullGcMs = performance.now() - g0;
  const heapMb = v8.getHeapStatistics().used_heap_size / 1048576;

  console.log('## Sentiment analyzer benchmark (one core, Node ' + process.version + ')');
  console.log('');
  console.log(`language detector loaded: ${languageDetectorAvailable() ? 'yes (eld)' : 'NO: every text is und, figures exclude detection'}`);
  console.log('');
  console.log('| measure | value |');
  console.log('| --- | --- |');
  console.log(`| tweet-length texts per second, median of ${WINDOWS} windows (avg ${avgChars.toFixed(0)} chars, ${n} texts) | ${Math.round(perSecond).toLocaleString('en-US')} |`);
  console.log(`| tweet-length texts per second, best window | ${Math.round(best).toLocaleString('en-US')} |`);
  console.log(`| tweet-length texts per CPU-second of this process (user + system, same windows) | ${Math.round(perCpuSecond).toLocaleString('en-US')} |`);
  if (sandersPerCpuSecond !== null) console.log(`| multilingual tweets (Sanders, ${sanders.length}) per CPU-second of this process | ${Math.round(sandersPerCpuSecond).toLocaleString('en-US')} |`);
  console.log(`| heap in use after a full collection, analyzer and detector loaded | ${heapMb.toFixed(1)} MB |`);
  console.log(`| one full garbage collection of that heap | ${fullGcMs.toFixed(1)} ms |`);
  console.log(`| per tweet p50 / p99 | ${(percentile(lat, 50) * 1000).toFixed(1)} µs / ${(percentile(lat, 99) * 1000).toFixed(1)} µs |`);
  console.log(`| 5,000-word transcript (${transcript.length} chars), median of 25 | ${runs[12].toFixed(2)} ms |`);
  console.log(`| 1 MB text (first 100,000 chars scored) | ${bigMs.toFixed(1)} ms |`);
  console.log(`| model ${model.name}: file size | ${(modelBytes / 1048576).toFixed(2)} MB |`);
  console.log(`| model load (read, gunzip, dequantise), once per process | ${loadMs.toFixed(0)} ms |`);
  console.log(`| first analyzer (lexicon and feature tables) | ${firstAnalyzerMs.toFixed(0)} ms |`);
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ textsPerSecond: Math.round(perSecond), bestWindow: Math.round(best), textsPerCpuSecond: Math.round(perCpuSecond), multilingualPerCpuSecond: sandersPerCpuSecond === null ? null : Math.round(sandersPerCpuSecond), heapMb, fullGcMs, p50us: percentile(lat, 50) * 1000, p99us: percentile(lat, 99) * 1000, transcriptMs: runs[12], bigMs, modelBytes, loadMs, firstAnalyzerMs }));
  }
  if (Number.isNaN(sink)) console.log('unreachable');
  // The target is one core's throughput: met when either the wall-clock median or the CPU-time
  // figure reaches it (the latter is what a loaded, shared machine can still measure).
  process.exitCode = Math.max(perSecond, perCpuSecond) >= 20_000 && loadMs <= 300 && modelBytes <= 20 * 1048576 ? 0 : 1;
}

main();

// Evaluation of the sentiment analyzer against human ratings, with VADER (the vader-sentiment
// package) scored on the same texts in the same run. `npm run eval:sentiment`.
// Exits non-zero when Earshot does not beat VADER on TweetEval accuracy and macro-F1.
import fs from 'node:fs';
import path from 'node:path';
import { POSITIVE_THRESHOLD, type SentimentLabel, SentimentAnalyzer } from '../../src/sentiment/analyzer';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const vader = require('vader-sentiment') as { SentimentIntensityAnalyzer: { polarity_scores(text: string): { compound: number } } };

const DATA_DIR = path.resolve(process.env.EARSHOT_DATA_DIR ?? path.join(process.cwd(), '../shared/data'), 'sentiment');

const PUBLISHED: Record<string, { r: number; f1: number }> = {
  amazon: { r: 0.565, f1: 0.63 },
  movie: { r: 0.451, f1: 0.61 },
  nytimes: { r: 0.492, f1: 0.55 },
};
const FILES: Record<string, string> = {
  amazon: 'amazonReviewSnippets_GroundTruth.txt',
  movie: 'movieReviewSnippets_GroundTruth.txt',
  nytimes: 'nytEditorialSnippets_GroundTruth.txt',
};

interface Rated {
  text: string;
  rating: number;
}

function readRated(file: string): Rated[] {
  const out: Rated[] = [];
  for (const line of fs.readFileSync(path.join(DATA_DIR, file), 'utf8').split(/\r?\n/)) {
    const a = line.indexOf('\t');
    const b = line.indexOf('\t', a + 1);
    if (a < 0 || b < 0) continue;
    const rating = Number(line.slice(a + 1, b));
    if (Number.isFinite(rating)) out.push({ rating, text: line.slice(b + 1) });
  }
  return out;
}

export function pearson(x: number[], y: number[]): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxx === 0 || syy === 0 ? 0 : sxy / Math.sqrt(sxx * syy);
}

/**
 * Positive-vs-negative on items whose human rating is not exactly 0. A score > 0 predicts
 * positive, < 0 negative; a score of exactly 0 predicts nothing and counts as wrong for both
 * systems. F1 is the macro average of the positive and negative classes.
 */
function binary(scores: number[], ratings: number[]): { acc: number; f1: number; n: number } {
  let n = 0;
  let correct = 0;
  const tp = { pos: 0, neg: 0 };
  const predicted = { pos: 0, neg: 0 };
  const actual = { pos: 0, neg: 0 };
  for (let i = 0; i < scores.length; i++) {
    if (ratings[i] === 0) continue;
    n++;
    const gold = ratings[i] > 0 ? 'pos' : 'neg';
    actual[gold]++;
    const pred = scores[i] > 0 ? 'pos' : scores[i] < 0 ? 'neg' : null;
    if (pred) predicted[pred]++;
    if (pred === gold) {
      correct++;
      tp[gold]++;
    }
  }
  const f = (c: 'pos' | 'neg') => {
    const p = predicted[c] ? tp[c] / predicted[c] : 0;
    const r = actual[c] ? tp[c] / actual[c] : 0;
    return p + r ? (2 * p * r) / (p + r) : 0;
  };
  return { acc: correct / n, f1: (f('pos') + f('neg')) / 2, n };
}

const LABELS: SentimentLabel[] = ['negative', 'neutral', 'positive'];

function threeClass(pred: SentimentLabel[], gold: SentimentLabel[]): { acc: number; macroF1: number; macroRecall: number } {
  let correct = 0;
  let f1 = 0;
  let rec = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === gold[i]) correct++;
  for (const c of LABELS) {
    let tp = 0;
    let pc = 0;
    let gc = 0;
    for (let i = 0; i < pred.length; i++) {
      if (pred[i] === c) pc++;
      if (gold[i] === c) gc++;
      if (pred[i] === c && gold[i] === c) tp++;
    }
    const p = pc ? tp / pc : 0;
    const r = gc ? tp / gc : 0;
    f1 += p + r ? (2 * p * r) / (p + r) : 0;
    rec += r;
  }
  return { acc: correct / pred.length, macroF1: f1 / 3, macroRecall: rec / 3 };
}

const vaderLabel = (c: number): SentimentLabel => (c >= 0.05 ? 'positive' : c <= -0.05 ? 'negative' : 'neutral');
const f3 = (x: number) => x.toFixed(3);
/** Even-numbered lines (0, 2, ...) were used for tuning, odd-numbered lines were held out. */
const half = <T>(xs: T[], parity: number) => xs.filter((_, i) => i % 2 === parity);

function main(): number {
  const analyzer = new SentimentAnalyzer();
  const rows: string[] = [];
  rows.push('| set | n (rating≠0) | published VADER r / F1 | VADER (same run) r / acc / F1 | Earshot r / acc / F1 | Earshot held-out half r / acc / F1 |');
  rows.push('| --- | --- | --- | --- | --- | --- |');
  let beatsPublished = true;
  for (const [name, file] of Object.entries(FILES)) {
    const data = readRated(file);
    const ratings = data.map((d) => d.rating);
    const v = data.map((d) => vader.SentimentIntensityAnalyzer.polarity_scores(d.text).compound);
    const e = data.map((d) => analyzer.analyze(d.text).score);
    const vb = binary(v, ratings);
    const eb = binary(e, ratings);
    const er = pearson(e, ratings);
    const hr = pearson(half(e, 1), half(ratings, 1));
    const hb = binary(half(e, 1), half(ratings, 1));
    if (er <= PUBLISHED[name].r || eb.f1 <= PUBLISHED[name].f1) beatsPublished = false;
    rows.push(
      `| ${name} | ${eb.n} | ${PUBLISHED[name].r} / ${PUBLISHED[name].f1} | ${f3(pearson(v, ratings))} / ${f3(vb.acc)} / ${f3(vb.f1)} | ` +
        `**${f3(er)} / ${f3(eb.acc)} / ${f3(eb.f1)}** | ${f3(hr)} / ${f3(hb.acc)} / ${f3(hb.f1)} |`,
    );
  }

  const texts = fs.readFileSync(path.join(DATA_DIR, 'tweeteval_val_text.txt'), 'utf8').split('\n');
  const labels = fs.readFileSync(path.join(DATA_DIR, 'tweeteval_val_labels.txt'), 'utf8').split('\n');
  const gold: SentimentLabel[] = [];
  const tweets: string[] = [];
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i].trim();
    if (l === '') continue;
    gold.push(LABELS[Number(l)]);
    tweets.push(texts[i] ?? '');
  }
  const vp = tweets.map((t) => vaderLabel(vader.SentimentIntensityAnalyzer.polarity_scores(t).compound));
  const ep = tweets.map((t) => analyzer.analyze(t).label);
  const vt = threeClass(vp, gold);
  const et = threeClass(ep, gold);
  const vtHeld = threeClass(half(vp, 1), half(gold, 1));
  const etHeld = threeClass(half(ep, 1), half(gold, 1));
  const etTune = threeClass(half(ep, 0), half(gold, 0));

  const out: string[] = [];
  out.push(`## Sentiment evaluation (data: ../shared/data/sentiment)`);
  out.push('');
  out.push('VADER ground-truth sets: Pearson r of score vs mean human rating (all items); positive/negative accuracy and');
  out.push('macro-F1 on items whose rating is not exactly 0 (score > 0 = positive, < 0 = negative, exactly 0 = wrong).');
  out.push('Held-out half = odd-numbered lines. No per-sentence lookup; a few general rule choices (which derived-word suffixes to');
  out.push('fall back on, the weight of "like") were compared on the even-numbered lines only.');
  out.push('');
  out.push(...rows);
  out.push('');
  out.push(`TweetEval validation (${gold.length} tweets, 3 classes). VADER: compound ±0.05. Earshot: labels at ±${POSITIVE_THRESHOLD},`);
  out.push('thresholds swept on the even-numbered lines (tuning half); odd-numbered lines held out.');
  out.push('');
  out.push('| system | accuracy | macro-F1 | macro-recall | held-out half acc / macro-F1 | tuning half acc / macro-F1 |');
  out.push('| --- | --- | --- | --- | --- | --- |');
  out.push(`| VADER (vader-sentiment, same run) | ${f3(vt.acc)} | ${f3(vt.macroF1)} | ${f3(vt.macroRecall)} | ${f3(vtHeld.acc)} / ${f3(vtHeld.macroF1)} | |`);
  out.push(`| Earshot | **${f3(et.acc)}** | **${f3(et.macroF1)}** | ${f3(et.macroRecall)} | ${f3(etHeld.acc)} / ${f3(etHeld.macroF1)} | ${f3(etTune.acc)} / ${f3(etTune.macroF1)} |`);
  console.log(out.join('\n'));

  const beatsTweetEval = et.acc > vt.acc && et.macroF1 > vt.macroF1;
  console.log('');
  console.log(`beats published VADER r and F1 on all three sets: ${beatsPublished ? 'yes' : 'NO'}`);
  console.log(`beats VADER on TweetEval accuracy and macro-F1: ${beatsTweetEval ? 'yes' : 'NO'}`);
  return beatsTweetEval && beatsPublished ? 0 : 1;
}

process.exitCode = main();

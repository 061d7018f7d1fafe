// Evaluation of the sentiment/complaint model on data it never trained on, with VADER (the
// vader-sentiment package) scored on the same texts in the same run. `npm run eval:sentiment`.
//
// - held out: bucket 0 (by a hash of the normalised text) of every set, and all of TweetEval
//   validation; the committed model was trained on buckets 2..9 and tuned on bucket 1;
// - ACL 2019 complaints: 10-fold cross-validation (folds = the hash buckets), as the paper did;
// - cross-set: a model trained without a set, tested on all of it.
// Options: --quick (no cross-set trainings), --cross-only (only them), --json (a JSON summary as
// the last line), --perturb (only this: the held-out texts perturbed as ./perturbations.ts does,
// scored as written and folded, see src/sentiment/text-fold.ts).
// Exits non-zero when a target of issue 10 is missed (with --perturb: when a perturbation the
// analyzer folds costs more than 0.005 of macro-F1).
import { loadCorpus, type Example, NEGATIVE, NEUTRAL, POSITIVE, TEST_BUCKET, VALIDATION_BUCKET } from '../../src/sentiment/model/datasets';
import { defaultModel, type LinearModel } from '../../src/sentiment/model/linear-model';
import { EVAL_ONLY_SETS, trainingExamples } from '../../src/sentiment/model/train.command';
import {
  DEFAULT_TRAIN_CONFIG,
  Featurizer,
  logitsOf,
  macroF1,
  pearson,
  sigmoid,
  train,
  tune,
  unhappyTruth,
} from '../../src/sentiment/model/trainer';
import { SentimentAnalyzer } from '../../src/sentiment/analyzer';
import { PERTURBATIONS } from './perturbations';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const vader = require('vader-sentiment') as { SentimentIntensityAnalyzer: { polarity_scores(text: string): { compound: number } } };

const quick = process.argv.includes('--quick');
const crossOnly = process.argv.includes('--cross-only');
const noCv = process.argv.includes('--no-cv');
const asJson = process.argv.includes('--json');
const perturb = process.argv.includes('--perturb');
const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '–');

interface Pred {
  label: 0 | 1 | 2;
  score: number;
  complaint: boolean;
  unhappy: boolean;
}

/** What the service decides: the analyzer itself (language detection and intent rules included). */
function modelPreds(model: LinearModel, texts: string[], fold = true): Pred[] {
  const analyzer = new SentimentAnalyzer({ model, fold });
  return texts.map((t) => {
    const a = analyzer.analyze(t);
    return { label: a.label === 'negative' ? NEGATIVE : a.label === 'positive' ? POSITIVE : NEUTRAL, score: a.score, complaint: a.complaint, unhappy: a.unhappy };
  });
}

function vaderPreds(texts: string[]): Pred[] {
  return texts.map((t) => {
    const c = vader.SentimentIntensityAnalyzer.polarity_scores(t).compound;
    const label = c >= 0.05 ? POSITIVE : c <= -0.05 ? NEGATIVE : NEUTRAL;
    return { label, score: c, complaint: label === NEGATIVE, unhappy: label === NEGATIVE };
  });
}

interface Metrics {
  n: number;
  perClass?: number[];
  macroF1?: number;
  complaintF1?: number;
  complaintMacroF1?: number;
  unhappyRecall?: number;
  falseFlags?: number;
  pearson?: number;
}

function metrics(ex: Example[], p: Pred[]): Metrics {
  const m: Metrics = { n: ex.length };
  const s = ex.map((e, i) => [e, p[i]!] as const).filter(([e]) => e.sentiment !== undefined);
  if (s.length > 0) {
    const classes = new Set(s.map(([e]) => e.sentiment));
    const cls = classes.has(NEUTRAL) ? [0, 1, 2] : [0, 2];
    const r = macroF1(s.map(([e]) => e.sentiment!), s.map(([, q]) => q.label), cls);
    m.perClass = r.perClass;
    m.macroF1 = r.macro;
  }
  const c = ex.map((e, i) => [e, p[i]!] as const).filter(([e]) => e.complaint !== undefined);
  if (c.length > 0) {
    const r = macroF1(c.map(([e]) => e.complaint!), c.map(([, q]) => (q.complaint ? 1 : 0)), [0, 1]);
    m.complaintF1 = r.perClass[1];
    m.complaintMacroF1 = r.macro;
  }
  if (ex.some((e) => e.toCompany)) {
    let tp = 0;
    let pos = 0;
    let fp = 0;
    let neg = 0;
    ex.forEach((e, i) => {
      const u = unhappyTruth(e);
      if (u === undefined) return;
      if (u) {
        pos++;
        if (p[i]!.unhappy) tp++;
      } else {
        neg++;
        if (p[i]!.unhappy) fp++;
      }
    });
    if (pos + neg > 0) {
      m.unhappyRecall = tp / Math.max(1, pos);
      m.falseFlags = fp / Math.max(1, neg);
    }
  }
  if (ex.some((e) => e.rating !== undefined)) m.pearson = pearson(p.map((q) => q.score), ex.map((e) => e.rating!));
  return m;
}

function row(name: string, who: string, m: Metrics): string {
  return `| ${name} | ${who} | ${m.n} | ${m.perClass ? m.perClass.map(f3).join(' / ') : '–'} | ${f3(m.macroF1 ?? NaN)} | ${f3(m.complaintF1 ?? NaN)} / ${f3(m.complaintMacroF1 ?? NaN)} | ${m.unhappyRecall === undefined ? '–' : `${f3(m.unhappyRecall)} / ${f3(m.falseFlags!)}`} | ${f3(m.pearson ?? NaN)} |`;
}

const HEADER = [
  '| set | system | n | F1 per class (neg / neu / pos) | macro-F1 | complaint F1 / macro-F1 | unhappy recall / false flags | Pearson r |',
  '| --- | --- | --- | --- | --- | --- | --- | --- |',
];

/** Perturbations the analyzer folds (the others it reads as its training texts had them). */
const FOLDED_PERTURBATIONS = new Set(['zero-width', 'full-width', 'math-bold', 'math-italic', 'nfd', 'zalgo-light', 'homoglyph', 'all-caps', 'elongation', 'html-entities', 'emoji']);

/**
 * Held-out texts (as in main) perturbed in ways a reader does not notice or reads alike, scored as
 * written (the analyzer before src/sentiment/text-fold.ts) and folded (the analyzer now). Returns
 * whether every perturbation the analyzer folds stays within 0.005 of the plain macro-F1.
 */
function perturbationReport(corpus: ReturnType<typeof loadCorpus>, model: LinearModel, out: string[], summary: Record<string, unknown>): boolean {
  const held: Example[] = [];
  for (const [name, list] of corpus.sets) for (const e of name === 'tweeteval' ? list : list.filter((x) => x.bucket === TEST_BUCKET)) held.push(e);
  const groups: [string, (e: Example) => boolean][] = [
    ['TweetEval validation', (e) => e.set === 'tweeteval'],
    ['SemEval test split', (e) => e.set === 'semeval'],
    ['messages to companies, pooled', (e) => !!e.toCompany],
  ];
  const texts = held.map((e) => e.text);
  const plain = modelPreds(model, texts);
  /** macro-F1 of each group, then of every held-out text with a sentiment label (three classes) */
  const scores = (p: Pred[]) => {
    const per = groups.map(([, pick]) => {
      const idx = held.flatMap((e, i) => (pick(e) ? [i] : []));
      return metrics(idx.map((i) => held[i]!), idx.map((i) => p[i]!));
    });
    const s = held.flatMap((e, i) => (e.sentiment === undefined ? [] : [i]));
    const all = macroF1(s.map((i) => held[i]!.sentiment!), s.map((i) => p[i]!.label), [0, 1, 2]).macro;
    return { per, all };
  };
  const base = scores(plain);
  out.push(`## Perturbed held-out texts (${held.length}): macro-F1 plain / perturbed as written / perturbed folded`, '');
  out.push(`| perturbation | texts changed | ${groups.map(([g]) => g).join(' | ')} | all held-out, three classes | unhappy recall, messages to companies |`);
  out.push(`| --- | --- | ${groups.map(() => '---').join(' | ')} | --- | --- |`);
  const trio = (a: number | undefined, b: number | undefined, c: number | undefined) => `${f3(a ?? NaN)} / ${f3(b ?? NaN)} / ${f3(c ?? NaN)}`;
  const result: Record<string, unknown> = {};
  let ok = true;
  for (const p of PERTURBATIONS) {
    const perturbed = texts.map((t) => p.apply(t));
    const changed = perturbed.filter((t, i) => t !== texts[i]).length;
    const written = scores(modelPreds(model, perturbed, false));
    const folded = scores(modelPreds(model, perturbed));
    const cells = groups.map((_, g) => trio(base.per[g]!.macroF1, written.per[g]!.macroF1, folded.per[g]!.macroF1));
    const u = groups.length - 1;
    out.push(`| ${p.name} (${p.about}) | ${changed} | ${cells.join(' | ')} | ${trio(base.all, written.all, folded.all)} | ${trio(base.per[u]!.unhappyRecall, written.per[u]!.unhappyRecall, folded.per[u]!.unhappyRecall)} |`);
    result[p.name] = { changed, plain: base.all, asWritten: written.all, folded: folded.all, groups: Object.fromEntries(groups.map(([g], i) => [g, { plain: base.per[i]!.macroF1, asWritten: written.per[i]!.macroF1, folded: folded.per[i]!.macroF1 }])) };
    if (FOLDED_PERTURBATIONS.has(p.name) && folded.all < base.all - 0.005) ok = false;
  }
  out.push('', `Folded perturbations (${[...FOLDED_PERTURBATIONS].join(', ')}) within 0.005 of the plain macro-F1: ${ok ? 'met' : 'MISSED'}.`);
  summary.perturbations = result;
  return ok;
}

function main(): number {
  const t0 = performance.now();
  const corpus = loadCorpus();
  const model = defaultModel();
  if (perturb) {
    const out: string[] = [];
    const summary: Record<string, unknown> = { model: model.name };
    const ok = perturbationReport(corpus, model, out, summary);
    out.push(`(${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    console.log(out.join('\n'));
    if (asJson) console.log(JSON.stringify(summary));
    return ok ? 0 : 1;
  }
  const f = new Featurizer(model.header.hashBits);
  const out: string[] = [];
  const summary: Record<string, unknown> = { model: model.name };
  out.push(`## Sentiment evaluation: ${model.name} against VADER (same run)`, '');
  out.push('Held out: bucket 0 of every set (a hash of the normalised text; never trained on, never tuned on); TweetEval validation entirely.', '');
  out.push(...HEADER);

  let po: Metrics = { n: 0 };
  let cv = { macro: 0, perClass: [0, 0] };
  const heldOut: Record<string, Metrics> = {};
  if (!crossOnly) {
    const pooled: { ex: Example[]; ours: Pred[]; vader: Pred[] } = { ex: [], ours: [], vader: [] };
    for (const [name, list] of corpus.sets) {
      const ex = name === 'tweeteval' ? list : list.filter((e) => e.bucket === TEST_BUCKET);
      if (ex.length === 0) continue;
      const texts = ex.map((e) => e.text);
      const ours = modelPreds(model, texts);
      const vp = vaderPreds(texts);
      const mo = metrics(ex, ours);
      heldOut[name] = mo;
      out.push(row(name, 'Earshot', mo), row(name, 'VADER', metrics(ex, vp)));
      if (ex[0]!.toCompany) {
        pooled.ex.push(...ex);
        pooled.ours.push(...ours);
        pooled.vader.push(...vp);
      }
    }
    po = metrics(pooled.ex, pooled.ours);
    const pv = metrics(pooled.ex, pooled.vader);
    out.push(row('**messages to companies, pooled**', 'Earshot', po), row('**messages to companies, pooled**', 'VADER', pv));
    summary.heldOut = heldOut;
    summary.toCompanies = { earshot: po, vader: pv };

    // ACL 2019 complaints, 10-fold: the complaint head only sees complaint-labelled texts, so it is
    // trained on the complaint sets alone (same weights as in a full run, up to example order).
    const acl = corpus.sets.get('acl2019')!;
    const others = [...(corpus.sets.get('xfincorp') ?? []), ...(corpus.sets.get('cesamard') ?? [])].filter((e) => e.bucket !== TEST_BUCKET);
    const truth: number[] = [];
    const predicted: number[] = [];
    const vaderPred: number[] = [];
    const atShipped: number[] = [];
    const inFold: number[] = [];
    const foldThresholds: number[] = [];
    const complaintOnly = (list: Example[]) => list.filter((e) => e.complaint !== undefined).map((e) => ({ ...e, sentiment: undefined }));
    for (let fold = 0; fold < (noCv ? 0 : 10); fold++) {
      const test = acl.filter((e) => e.bucket === fold);
      const trainAcl = acl.filter((e) => e.bucket !== fold);
      const m = train(complaintOnly([...others, ...trainAcl]), DEFAULT_TRAIN_CONFIG, `cv-${fold}`);
      const l = logitsOf(m, test.map((e) => e.text), f);
      // A threshold chosen inside the training folds only: 3-fold cross-validation over them,
      // the threshold that maximises macro-F1 on their out-of-fold predictions.
      const t = aclThresholdWithin(trainAcl, others, complaintOnly, f, fold);
      foldThresholds.push(t);
      test.forEach((e, i) => {
        truth.push(e.complaint!);
        predicted.push(sigmoid(l[i]!.complaint) >= 0.5 ? 1 : 0);
        inFold.push(sigmoid(l[i]!.complaint) >= t ? 1 : 0);
        atShipped.push(sigmoid(l[i]!.complaint) >= model.header.thresholds.complaint ? 1 : 0);
        vaderPred.push(vader.SentimentIntensityAnalyzer.polarity_scores(e.text).compound <= -0.05 ? 1 : 0);
      });
    }
    cv = macroF1(truth, predicted, [0, 1]);
    const cvInFold = macroF1(truth, inFold, [0, 1]);
    const cvVader = macroF1(truth, vaderPred, [0, 1]);
    out.push('', `### ACL 2019 complaints, 10-fold cross-validation (${truth.length} tweets; threshold 0.5; VADER: compound ≤ -0.05 as "complaint")`, '');
    out.push('| system | complaint F1 | macro-F1 | accuracy |', '| --- | --- | --- | --- |');
    const acc = (p: number[]) => p.filter((x, i) => x === truth[i]).length / truth.length;
    const cvShipped = macroF1(truth, atShipped, [0, 1]);
    out.push(`| Earshot (probability ≥ 0.5) | ${f3(cv.perClass[1]!)} | ${f3(cv.macro)} | ${f3(acc(predicted))} |`);
    out.push(`| Earshot (threshold chosen inside each training fold by 3-fold CV there: ${foldThresholds.join(', ')}) | ${f3(cvInFold.perClass[1]!)} | ${f3(cvInFold.macro)} | ${f3(acc(inFold))} |`);
    out.push(`| Earshot (the service's threshold, ${model.header.thresholds.complaint}, set for unhappy false flags) | ${f3(cvShipped.perClass[1]!)} | ${f3(cvShipped.macro)} | ${f3(acc(atShipped))} |`);
    out.push(`| VADER | ${f3(cvVader.perClass[1]!)} | ${f3(cvVader.macro)} | ${f3(acc(vaderPred))} |`);
    summary.aclCv = { macroF1: cv.macro, complaintF1: cv.perClass[1], inFoldThresholdMacroF1: cvInFold.macro, foldThresholds, vaderMacroF1: cvVader.macro };

  }

  if (!quick) {
    out.push('', '### Cross-set: trained without a set, tested on all of it (thresholds re-tuned on the other sets\' validation split)', '');
    out.push(...HEADER);
    const cross: Record<string, Metrics> = {};
    // Fewer epochs than the shipped model (4): the figures show transfer, and each run costs minutes.
    const cfg = { ...DEFAULT_TRAIN_CONFIG, epochs: 2 };
    for (const left of ['sanders', 'apple', 'acl2019']) {
      const exclude = new Set([...EVAL_ONLY_SETS, left]);
      const all = trainingExamples(corpus.sets, exclude);
      const trainSet = all.filter((e) => e.bucket !== TEST_BUCKET && e.bucket !== VALIDATION_BUCKET);
      const m = tune(train(trainSet, cfg, `without-${left}`), all);
      const ex = corpus.sets.get(left)!;
      const mo = metrics(ex, modelPreds(m, ex.map((e) => e.text)));
      cross[left] = mo;
      out.push(row(`${left} (all ${ex.length})`, 'Earshot without it', mo), row(`${left} (all ${ex.length})`, 'VADER', metrics(ex, vaderPreds(ex.map((e) => e.text)))));
    }
    summary.crossSet = cross;
  }

  const targets = crossOnly ? {} : {
    semevalMacroF1: (heldOut.semeval?.macroF1 ?? 0) >= 0.62,
    aclCvMacroF1: cv.macro >= 0.8,
    unhappy: (po.unhappyRecall ?? 0) >= 0.8 && (po.falseFlags ?? 1) <= 0.15,
  };
  summary.targets = targets;
  if (!crossOnly) out.push('', `Targets: SemEval held-out macro-F1 ≥ 0.62: ${targets.semevalMacroF1 ? 'met' : 'MISSED'}; ACL 2019 10-fold macro-F1 ≥ 0.80: ${targets.aclCvMacroF1 ? 'met' : 'MISSED'}; unhappy recall ≥ 0.80 at ≤ 15% false flags (messages to companies, pooled): ${targets.unhappy ? 'met' : 'MISSED'}.`);
  out.push(`(${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  console.log(out.join('\n'));
  if (asJson) console.log(JSON.stringify(summary));
  return Object.values(targets).every(Boolean) ? 0 : 1;
}

/**
 * The complaint threshold for one outer fold, from its training folds alone: the ACL 2019 training
 * folds are split in three by bucket, each third predicted by a model trained on the rest (and the
 * other complaint sets), and the threshold in 0.30..0.70 with the best macro-F1 on those
 * predictions is returned. The outer test fold is never looked at.
 */
function aclThresholdWithin(trainAcl: Example[], others: Example[], complaintOnly: (l: Example[]) => Example[], f: Featurizer, fold: number): number {
  const buckets = [...new Set(trainAcl.map((e) => e.bucket))].sort((a, b) => a - b);
  const truth: number[] = [];
  const probs: number[] = [];
  for (let g = 0; g < 3; g++) {
    const held = new Set(buckets.filter((_, j) => j % 3 === g));
    const m = train(complaintOnly([...others, ...trainAcl.filter((e) => !held.has(e.bucket))]), DEFAULT_TRAIN_CONFIG, `cv-${fold}-inner-${g}`);
    const h = trainAcl.filter((e) => held.has(e.bucket));
    const l = logitsOf(m, h.map((e) => e.text), f);
    h.forEach((e, i) => {
      truth.push(e.complaint!);
      probs.push(sigmoid(l[i]!.complaint));
    });
  }
  let best = { f1: -1, t: 0.5 };
  for (let k = 0; k <= 20; k++) {
    const t = Math.round((0.3 + k * 0.02) * 100) / 100;
    const f1 = macroF1(truth, probs.map((p) => (p >= t ? 1 : 0)), [0, 1]).macro;
    if (f1 > best.f1 + 1e-12) best = { f1, t };
  }
  return best.t;
}

process.exitCode = main();

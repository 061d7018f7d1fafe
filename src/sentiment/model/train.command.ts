// `npm run train`: trains the sentiment/complaint model on the training split of every set,
// chooses its thresholds on the validation split and writes models/<name>.bin.gz.
// Options: --seed N, --epochs N, --hash-bits N, --out FILE, --name NAME; --save-raw FILE keeps the
// untuned weights and --from-raw FILE re-tunes them without training again.
import fs from 'node:fs';
import path from 'node:path';
import { loadCorpus, type Example, TEST_BUCKET, VALIDATION_BUCKET } from './datasets';
import { DEFAULT_MODEL_NAME, LinearModel } from './linear-model';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig, train, tune, weightsHash } from './trainer';

/** Sets never trained on: evaluation only. */
export const EVAL_ONLY_SETS = new Set(['tweeteval']);

export function trainingExamples(sets: Map<string, Example[]>, exclude: ReadonlySet<string> = EVAL_ONLY_SETS): Example[] {
  const out: Example[] = [];
  for (const [name, list] of sets) {
    if (exclude.has(name)) continue;
    for (const e of list) out.push(e);
  }
  return out;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function main(): void {
  const t0 = performance.now();
  const cfg: TrainConfig = {
    ...DEFAULT_TRAIN_CONFIG,
    seed: Number(arg('seed') ?? DEFAULT_TRAIN_CONFIG.seed),
    epochs: Number(arg('epochs') ?? DEFAULT_TRAIN_CONFIG.epochs),
    hashBits: Number(arg('hash-bits') ?? DEFAULT_TRAIN_CONFIG.hashBits),
  };
  const name = arg('name') ?? DEFAULT_MODEL_NAME;
  const out = path.resolve(arg('out') ?? path.join(process.cwd(), 'models', `${name}.bin.gz`));
  const corpus = loadCorpus();
  const all = trainingExamples(corpus.sets);
  const trainSet = all.filter((e) => e.bucket !== TEST_BUCKET && e.bucket !== VALIDATION_BUCKET);
  console.log(`loaded ${all.length} texts in ${corpus.sets.size} sets; training on ${trainSet.length} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  const rawFile = arg('from-raw');
  const raw = rawFile ? LinearModel.deserialize(fs.readFileSync(rawFile)) : train(trainSet, cfg, name);
  console.log(`trained in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (arg('save-raw')) fs.writeFileSync(arg('save-raw')!, raw.serialize());
  const model = tune(raw, all);
  model.header.training.heldOut = { test: `bucket ${TEST_BUCKET} of every set`, validation: `bucket ${VALIDATION_BUCKET} (thresholds only)`, never: [...EVAL_ONLY_SETS] };
  const bytes = model.serialize();
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, bytes);
  console.log(JSON.stringify({ out, bytes: bytes.length, k: model.header.k, thresholds: model.header.thresholds, validation: model.header.training.validation, sha256: weightsHash(model) }, null, 1));
  console.log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

if (require.main === module) main();

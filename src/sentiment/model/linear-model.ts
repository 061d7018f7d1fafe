// The trained linear model: four heads (negative, neutral, positive as one softmax; complaint as
// a logistic) over the hashed features of ./features.ts. The weights are a committed artifact
// (models/<name>.bin.gz): gzip of a magic line, a JSON header and int16 weights per head.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { DENSE_FEATURES, type FeatureVector } from './features';

export const HEAD_NEGATIVE = 0;
export const HEAD_NEUTRAL = 1;
export const HEAD_POSITIVE = 2;
export const HEAD_COMPLAINT = 3;
export const HEADS = 4;

const MAGIC = 'EARSHOT-LINEAR-1\n';

/** Decision constants chosen on the validation split (never the test split) after training. */
export interface ModelThresholds {
  /** added to the negative and positive logits before the three-class argmax */
  negativeOffset: number;
  positiveOffset: number;
  /** complaint when its probability is at least this */
  complaint: number;
  /** a polar label needs |score| above this (and of its sign), else neutral */
  minPolarScore: number;
}

export interface ModelHeader {
  name: string;
  hashBits: number;
  bias: number[];
  /**
   * score = tanh(k · (z_positive − z_negative) + lexiconBlend · lexicon), where lexicon is the
   * VADER-style compound valence the features already carry; both fitted on rated validation
   * texts so the score tracks intensity, not only direction.
   */
  k: number;
  lexiconBlend: number;
  thresholds: ModelThresholds;
  /** how it was trained: sets, seed, counts; written into the model card */
  training: Record<string, unknown>;
  /** sha256 of the int16 weights, the reproducibility check */
  weightsSha256?: string;
}

export interface ExplanationItem {
  token: string;
  weight: number;
}

/** One scoring's raw numbers. */
export interface Logits {
  negative: number;
  neutral: number;
  positive: number;
  complaint: number;
  /** the normalised lexicon valence, in [-1, 1] */
  lexicon: number;
}

export class LinearModel {
  /** weights as stored: q[bucket * HEADS + head] · scales[head] */
  readonly q: Int16Array;
  readonly scales: readonly number[];

  /**
   * Holds the weights in their stored form (int16 per head with a scale): 4 bytes per bucket
   * rather than 16 keeps the tables that a short post touches in cache, and the model scored is
   * bit for bit the model stored.
   */
  constructor(
    readonly header: ModelHeader,
    q: Int16Array,
    scales: readonly number[],
  ) {
    if (q.length !== (1 << header.hashBits) * HEADS) throw new Error(`model ${header.name}: weights do not match hashBits ${header.hashBits}`);
    this.q = q;
    this.scales = scales;
  }

  /** Quantises trained float weights (weights[bucket * HEADS + head]). */
  static fromFloat(header: ModelHeader, weights: Float32Array): LinearModel {
    const { q, scales } = quantize(weights);
    return new LinearModel(header, q, scales);
  }

  /** The same weights under another header (thresholds, calibration). */
  withHeader(header: ModelHeader): LinearModel {
    return new LinearModel(header, this.q, this.scales);
  }

  get name(): string {
    return this.header.name;
  }

  /** The weights as floats (what the model computes with), for inspection and tests. */
  get weights(): Float32Array {
    const w = new Float32Array(this.q.length);
    for (let i = 0; i < w.length; i++) w[i] = this.q[i]! * this.scales[i % HEADS]!;
    return w;
  }

  logits(fv: FeatureVector, out: Float64Array): void {
    const q = this.q;
    const b = this.header.bias;
    let z0 = 0;
    let z1 = 0;
    let z2 = 0;
    let z3 = 0;
    let lex = 0;
    const { idx, val, n } = fv;
    for (let e = 0; e < n; e++) {
      const i = idx[e]!;
      const o = i * HEADS;
      const v = val[e]!;
      if (i < DENSE_FEATURES) lex += v;
      z0 += q[o]! * v;
      z1 += q[o + 1]! * v;
      z2 += q[o + 2]! * v;
      z3 += q[o + 3]! * v;
    }
    const sc = this.scales;
    out[0] = b[0]! + z0 * sc[0]!;
    out[1] = b[1]! + z1 * sc[1]!;
    out[2] = b[2]! + z2 * sc[2]!;
    out[3] = b[3]! + z3 * sc[3]!;
    out[4] = lex;
  }

  /** The logit of the score: score = tanh(polarityLogit). */
  polarityLogit(z: ArrayLike<number>): number {
    return this.header.k * (z[2]! - z[0]!) + this.header.lexiconBlend * z[4]!;
  }

  /**
   * The polarity logit (see {@link polarityLogit}) split by owner: the strongest `top` owners by
   * |contribution| (same names merged), then "(other features)" with the rest and "(baseline)"
   * with the bias. The weights add up to the logit exactly (before any rounding by the caller).
   * Also fills `z` with the logits, as {@link logits} does.
   */
  explain(fv: FeatureVector, top: number, scratch: { acc: Float64Array }, z: Float64Array = new Float64Array(HEADS + 1)): { items: ExplanationItem[]; logit: number } {
    const T = fv.tokens.length;
    const slots = 2 * T + 1;
    if (scratch.acc.length < slots) scratch.acc = new Float64Array(slots * 2);
    const acc = scratch.acc;
    acc.fill(0, 0, slots);
    const q = this.q;
    const k = this.header.k;
    const lambda = this.header.lexiconBlend;
    const b = this.header.bias;
    const sc = this.scales;
    const s0k = sc[0]! * k;
    const s2k = sc[2]! * k;
    // One pass fills the logits and the per-owner contributions: the weights are read once.
    let z0 = 0;
    let z1 = 0;
    let z2 = 0;
    let z3 = 0;
    let lex = 0;
    const { idx, val, owner, n } = fv;
    for (let e = 0; e < n; e++) {
      const i = idx[e]!;
      const o = i * HEADS;
      const v = val[e]!;
      const q0 = q[o]!;
      const q2 = q[o + 2]!;
      z0 += q0 * v;
      z1 += q[o + 1]! * v;
      z2 += q2 * v;
      z3 += q[o + 3]! * v;
      if (i < DENSE_FEATURES) {
        lex += v;
        acc[owner[e]!]! += v * (q2 * s2k - q0 * s0k + lambda);
      } else acc[owner[e]!]! += v * (q2 * s2k - q0 * s0k);
    }
    z[0] = b[0]! + z0 * sc[0]!;
    z[1] = b[1]! + z1 * sc[1]!;
    z[2] = b[2]! + z2 * sc[2]!;
    z[3] = b[3]! + z3 * sc[3]!;
    z[4] = lex;
    const baseline = (b[2]! - b[0]!) * k;
    // The strongest `top` slots by insertion into a short sorted list (posts have few slots).
    const best: number[] = [];
    let total = baseline;
    for (let s = 0; s < slots; s++) {
      const c = acc[s]!;
      if (c === 0) continue;
      total += c;
      const a = Math.abs(c);
      if (best.length === top && a <= Math.abs(acc[best[top - 1]!]!)) continue;
      if (best.length < top) best.push(s);
      let p = best.length - 1;
      while (p > 0 && Math.abs(acc[best[p - 1]!]!) < a) {
        best[p] = best[p - 1]!;
        p--;
      }
      best[p] = s;
    }
    const items: ExplanationItem[] = [];
    // slots the model read alike are one item, named as the first was written ("d\u200bay" and
    // "da\u200by" are one "day"): keyed by the name as read
    const keys: string[] = [];
    const folded = fv.tokens.some((t) => t.shown !== undefined);
    let shown = 0;
    for (const s of best) {
      const key = fv.slotName(s, false);
      const c = acc[s]!;
      shown += c;
      const same = keys.indexOf(key);
      if (same >= 0) items[same]!.weight += c;
      else {
        keys.push(key);
        items.push({ token: folded ? fv.slotName(s) : key, weight: c });
      }
    }
    if (items.length < best.length) items.sort((x, y) => Math.abs(y.weight) - Math.abs(x.weight));
    const rest = total - baseline - shown;
    if (rest !== 0) items.push({ token: '(other features)', weight: rest });
    items.push({ token: '(baseline)', weight: baseline });
    return { items, logit: total };
  }

  /** The artifact: gzip(magic, header length, header JSON, int16 weights quantised per head). */
  serialize(): Buffer {
    const q = this.q;
    const header = { ...this.header, scales: this.scales, weightsSha256: sha256(q) };
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(json.length, 0);
    return zlib.gzipSync(Buffer.concat([Buffer.from(MAGIC, 'latin1'), len, json, Buffer.from(q.buffer, q.byteOffset, q.byteLength)]), { level: 9 });
  }

  static deserialize(buf: Buffer): LinearModel {
    const raw = zlib.gunzipSync(buf);
    if (raw.subarray(0, MAGIC.length).toString('latin1') !== MAGIC) throw new Error('not an Earshot linear model file');
    const len = raw.readUInt32LE(MAGIC.length);
    const start = MAGIC.length + 4;
    const header = JSON.parse(raw.subarray(start, start + len).toString('utf8')) as ModelHeader & { scales: number[] };
    const body = raw.subarray(start + len);
    // Copied into an aligned buffer; the file is little-endian like every platform Node runs on.
    const q = new Int16Array(body.byteLength / 2);
    new Uint8Array(q.buffer).set(body.subarray(0, q.byteLength));
    const { scales, ...rest } = header;
    return new LinearModel(rest, q, scales);
  }
}

function quantize(w: Float32Array): { q: Int16Array; scales: number[] } {
  const max = new Array<number>(HEADS).fill(0);
  for (let i = 0; i < w.length; i++) max[i % HEADS] = Math.max(max[i % HEADS]!, Math.abs(w[i]!));
  const scales = max.map((m) => (m > 0 ? m / 32767 : 1));
  const q = new Int16Array(w.length);
  for (let i = 0; i < w.length; i++) q[i] = Math.round(w[i]! / scales[i % HEADS]!);
  return { q, scales };
}

export function sha256(a: ArrayBufferView): string {
  return crypto.createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');
}

/** The committed model's name; the file is models/<name>.bin.gz. */
export const DEFAULT_MODEL_NAME = 'earshot-linear-2026.12.4';

/**
 * Finds models/<file> from this module's folder upwards (the source tree and dist/ both sit
 * under the package root), so the model loads the same from `src` under vitest and from `dist`.
 */
export function modelPath(file = `${DEFAULT_MODEL_NAME}.bin.gz`): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'models', file);
    if (fs.existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error(`sentiment model ${file} not found in a models/ folder above ${__dirname}`);
}

let loaded: LinearModel | undefined;
let loadedFrom: string | undefined;

/** The file the built-in model was loaded from (worker threads load the same one). */
export function defaultModelFile(): string | undefined {
  return loadedFrom;
}

/** The built-in model's weights cannot be used: missing, unreadable or corrupt. */
export class ModelLoadError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`sentiment model ${file}: ${reason}. Restore it from git (models/ is committed) or rebuild it with \`npm run train\`.`);
    this.name = 'ModelLoadError';
  }
}

/**
 * Reads, checks and keeps the built-in model from `file` (default: the committed weights). Throws
 * {@link ModelLoadError}, naming the file, when it is missing, unreadable or corrupt: the service
 * calls this before it starts anything, so it never runs without a model. A second call returns
 * the model already loaded.
 */
export function loadDefaultModel(file?: string | null): LinearModel {
  if (loaded) return loaded;
  let where = file ?? '';
  try {
    where ||= modelPath();
  } catch (e) {
    throw new ModelLoadError(path.join('models', `${DEFAULT_MODEL_NAME}.bin.gz`), `not found (${(e as Error).message})`);
  }
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(where);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelLoadError(where, code === 'ENOENT' ? 'file not found' : `cannot be read (${code ?? (e as Error).message})`);
  }
  let model: LinearModel;
  try {
    model = LinearModel.deserialize(bytes);
  } catch (e) {
    throw new ModelLoadError(where, `corrupt (${(e as Error).message})`);
  }
  const stored = model.header.weightsSha256;
  if (stored !== undefined && stored !== sha256(model.q)) throw new ModelLoadError(where, 'corrupt (its weights do not match the sha256 in its header)');
  loaded = model;
  loadedFrom = where;
  return loaded;
}

/** The built-in model, read once per process (see {@link loadDefaultModel}). */
export function defaultModel(): LinearModel {
  return loaded ?? loadDefaultModel();
}

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
  constructor(
    readonly header: ModelHeader,
    /** weights[bucket * HEADS + head] */
    readonly weights: Float32Array,
  ) {
    if (weights.length !== (1 << header.hashBits) * HEADS) throw new Error(`model ${header.name}: weights do not match hashBits ${header.hashBits}`);
  }

  get name(): string {
    return this.header.name;
  }

  logits(fv: FeatureVector, out: Float64Array): void {
    const w = this.weights;
    const b = this.header.bias;
    let z0 = b[0]!;
    let z1 = b[1]!;
    let z2 = b[2]!;
    let z3 = b[3]!;
    let lex = 0;
    const { idx, val, n } = fv;
    for (let e = 0; e < n; e++) {
      const i = idx[e]!;
      const o = i * HEADS;
      const v = val[e]!;
      if (i < DENSE_FEATURES) lex += v;
      z0 += w[o]! * v;
      z1 += w[o + 1]! * v;
      z2 += w[o + 2]! * v;
      z3 += w[o + 3]! * v;
    }
    out[0] = z0;
    out[1] = z1;
    out[2] = z2;
    out[3] = z3;
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
    const w = this.weights;
    const k = this.header.k;
    const lambda = this.header.lexiconBlend;
    const b = this.header.bias;
    // One pass fills the logits and the per-owner contributions: the weights are read once.
    let z0 = b[0]!;
    let z1 = b[1]!;
    let z2 = b[2]!;
    let z3 = b[3]!;
    let lex = 0;
    const { idx, val, owner, n } = fv;
    for (let e = 0; e < n; e++) {
      const i = idx[e]!;
      const o = i * HEADS;
      const v = val[e]!;
      const w0 = w[o]!;
      const w2 = w[o + 2]!;
      z0 += w0 * v;
      z1 += w[o + 1]! * v;
      z2 += w2 * v;
      z3 += w[o + 3]! * v;
      if (i < DENSE_FEATURES) {
        lex += v;
        acc[owner[e]!]! += v * ((w2 - w0) * k + lambda);
      } else acc[owner[e]!]! += v * (w2 - w0) * k;
    }
    z[0] = z0;
    z[1] = z1;
    z[2] = z2;
    z[3] = z3;
    z[4] = lex;
    const baseline = (this.header.bias[2]! - this.header.bias[0]!) * k;
    const live: number[] = [];
    let total = baseline;
    for (let s = 0; s < slots; s++) {
      if (acc[s] === 0) continue;
      total += acc[s]!;
      live.push(s);
    }
    live.sort((x, y) => Math.abs(acc[y]!) - Math.abs(acc[x]!) || x - y);
    const best = live.length > top ? live.slice(0, top) : live;
    const merged = new Map<string, number>();
    let shown = 0;
    for (const s of best) {
      const name = fv.slotName(s);
      merged.set(name, (merged.get(name) ?? 0) + acc[s]!);
      shown += acc[s]!;
    }
    const items: ExplanationItem[] = [];
    for (const [token, weight] of merged) items.push({ token, weight });
    items.sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
    const rest = total - baseline - shown;
    if (Math.abs(rest) > 0) items.push({ token: '(other features)', weight: rest });
    items.push({ token: '(baseline)', weight: baseline });
    return { items, logit: total };
  }

  /** The artifact: gzip(magic, header length, header JSON, int16 weights quantised per head). */
  serialize(): Buffer {
    const { q, scales } = quantize(this.weights);
    const header = { ...this.header, scales, weightsSha256: sha256(q) };
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
    const w = new Float32Array(q.length);
    for (let i = 0; i < q.length; i++) w[i] = q[i]! * header.scales[i % HEADS]!;
    const { scales: _scales, ...rest } = header;
    return new LinearModel(rest, w);
  }

  /** The same model with its weights as stored (int16), so evaluation sees what the service runs. */
  roundTrip(): LinearModel {
    return LinearModel.deserialize(this.serialize());
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
export const DEFAULT_MODEL_NAME = 'earshot-linear-2026.11';

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

/** The committed model, read once per process. */
export function defaultModel(): LinearModel {
  loaded ??= LinearModel.deserialize(fs.readFileSync(modelPath()));
  return loaded;
}

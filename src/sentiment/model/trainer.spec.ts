import { describe, expect, it } from 'vitest';
import { SentimentAnalyzer } from '../analyzer';
import { bucketOf, dedupeKey, type Example, NEGATIVE, NEUTRAL, POSITIVE } from './datasets';
import { LinearModel } from './linear-model';
import { DEFAULT_TRAIN_CONFIG, train, weightsHash } from './trainer';

// A small fixed subset: templated customer posts with known labels, the same on every run.
function subset(): Example[] {
  const pos = ['great service', 'love the new app', 'thanks for the quick fix', 'amazing support team', 'best delivery ever'];
  const neg = ['terrible service', 'still no refund', 'lost my bag again', 'the app keeps crashing', 'worst delivery ever'];
  const neu = ['the store opens at nine', 'my order ships on monday', 'is the blue one in stock', 'new menu out today', 'call us at 5'];
  const out: Example[] = [];
  const add = (text: string, sentiment: 0 | 1 | 2, complaint?: 0 | 1) => {
    const key = dedupeKey(text);
    out.push({ text, set: 'fixture', sentiment, ...(complaint === undefined ? {} : { complaint }), key, bucket: bucketOf(key) });
  };
  for (let i = 0; i < 20; i++) {
    add(`${pos[i % 5]} #${i}`, POSITIVE, 0);
    add(`@brand ${neg[i % 5]} ${i}`, NEGATIVE, 1);
    add(`${neu[i % 5]} (${i})`, NEUTRAL);
  }
  return out;
}

const cfg = { ...DEFAULT_TRAIN_CONFIG, hashBits: 12, epochs: 3 };

describe('training', () => {
  it('is reproducible: same data and seed give the same weights hash; another seed gives another', () => {
    const a = train(subset(), cfg, 'fixture');
    const b = train(subset(), cfg, 'fixture');
    expect(weightsHash(a)).toBe(weightsHash(b));
    expect(Array.from(a.weights)).toEqual(Array.from(b.weights));
    const c = train(subset(), { ...cfg, seed: cfg.seed + 1 }, 'fixture');
    expect(weightsHash(c)).not.toBe(weightsHash(a));
  });

  it('learns the fixture, and the stored model scores exactly like the trained one', () => {
    const model = train(subset(), cfg, 'fixture');
    const stored = LinearModel.deserialize(model.serialize());
    expect(Array.from(stored.weights)).toEqual(Array.from(model.weights));
    const tuned = model.withHeader({ ...model.header, k: 1, lexiconBlend: 0 });
    const an = new SentimentAnalyzer({ model: tuned });
    expect(an.analyze('@brand still no refund 3', { lang: 'en' }).score).toBeLessThan(0);
    expect(an.analyze('great service #3', { lang: 'en' }).score).toBeGreaterThan(0);
    expect(an.analyze('@brand lost my bag again', { lang: 'en' }).complaint).toBe(true);
  });

  it('splits by a hash of the normalised text, so retweets and copies land in the same split', () => {
    const a = 'RT @someone: Lost my bag AGAIN!!! https://t.co/abc';
    const b = 'lost my bag again https://t.co/xyz';
    expect(dedupeKey(a)).toBe(dedupeKey(b));
    expect(bucketOf(dedupeKey(a))).toBe(bucketOf(dedupeKey(b)));
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PERTURBATIONS } from '../../test/eval/perturbations';
import { SentimentAnalyzer } from './analyzer';
import { decodeEntities, normalizeTokens } from './text-fold';
import { tokenize } from './sentiment.engine';

// A styling a reader does not notice leaves the label alone: on real held-out messages (the first
// 600 tweets of TweetEval validation, never trained on), each perturbation of
// test/eval/perturbations.ts keeps at least 98% of labels. The figures on all 12,547 held-out
// texts are in text-fold.ts and the README (`npm run eval:sentiment -- --perturb`).

const analyzer = new SentimentAnalyzer();
const SAMPLE = fs
  .readFileSync(path.resolve(process.cwd(), '../shared/data/sentiment/tweeteval_val_text.txt'), 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '')
  .slice(0, 600);
/** Adding a link and an @mention is not held to this: the model learned them (news posts carry links). */
const HELD = PERTURBATIONS.filter((p) => p.name !== 'url-mention');
const plain = SAMPLE.map((t) => analyzer.analyze(t).label);

describe('labels of real messages under perturbations that do not change their reading', () => {
  it('has the sample it needs', () => {
    expect(SAMPLE).toHaveLength(600);
    expect(HELD.map((p) => p.name)).toEqual(expect.arrayContaining(['all-caps', 'title-case', 'lower-case', 'zero-width', 'full-width', 'math-bold', 'math-italic', 'homoglyph', 'elongation', 'whitespace', 'html-entities', 'emoji', 'punctuation-runs']));
  });

  for (const p of HELD) {
    it(`keeps at least 98% of labels with ${p.name} (${p.about})`, () => {
      const differing: string[] = [];
      SAMPLE.forEach((t, i) => {
        const q = p.apply(t);
        if (analyzer.analyze(q).label !== plain[i]) differing.push(q);
      });
      expect(differing.length / SAMPLE.length, differing.slice(0, 5).join('\n')).toBeLessThanOrEqual(0.02);
    });
  }
});

describe('the reading', () => {
  it('decodes HTML entities, leaving the impossible ones', () => {
    expect(decodeEntities("don&#39;t &amp; won&#x27;t &lt;3 &quot;ok&quot;&nbsp;&apos;")).toBe(`don't & won't <3 "ok" '`);
    expect(decodeEntities('&#0; &#xD800; &#1114112; &foo; AT&T')).toBe('&#0; &#xD800; &#1114112; &foo; AT&T');
    const t = 'no entity here';
    expect(decodeEntities(t)).toBe(t);
  });

  it('reads elongated words as the plain word, keeping a double letter the word has', () => {
    const lower = (s: string) => normalizeTokens(tokenize(s)).map((t) => t.lower);
    expect(lower('sooooo baaaaad, goooood tooooo!!!')).toEqual(['so', 'bad', ',', 'good', 'too', '!!!']);
    expect(lower('zzz 1000 aa')).toEqual(['z', '1000', 'aa']);
    // named as written in explanations
    const a = analyzer.analyze('this is baaaaad');
    expect(a.explanation.map((e) => e.token)).toContain('baaaaad');
  });

  it('scores a message alike with decorative emoji, in capitals, escaped, elongated', () => {
    const m = "@acme I don't like it, still no refund. Terrible service";
    const base = analyzer.analyze(m);
    expect(base.label).toBe('negative');
    for (const v of [`${m} 📦📱`, m.toUpperCase(), m.replace(/'/g, '&#39;'), m.replace('Terrible', 'Terriiiible').replace('no', 'nooooo')]) {
      const a = analyzer.analyze(v);
      expect(a.label, v).toBe('negative');
      expect(a.unhappy, v).toBe(true);
    }
    // an emoji with valence still counts
    expect(analyzer.analyze('ok 😡').score).toBeLessThan(analyzer.analyze('ok 📦').score);
  });

  it('gives a re-tag the topics ingest gave, on elongated and escaped text', () => {
    for (const t of ['My paaaarcel is laaaate again, refund please', 'parcel &amp; delivery late, I want a refund &#128545;', 'PARCEL LATE!!! REFUND']) {
      expect(analyzer.topicsOf(t).map((m) => m.name), t).toEqual(analyzer.analyze(t).topics.map((m) => m.name));
    }
  });
});

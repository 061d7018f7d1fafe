import { describe, expect, it } from 'vitest';
import { MAX_EXPLANATION_TOKEN, SentimentAnalyzer } from './analyzer';

const analyzer = new SentimentAnalyzer();

describe('explanation size', () => {
  it('names a very long word by its first characters, so the explanation stays small whatever the text', () => {
    const word = 'terrible' + 'a'.repeat(99_990);
    const a = analyzer.analyze(`${word} service, I hate it`);
    const json = JSON.stringify(a.explanation);
    // 12 items at most, each cut: a few kilobytes, not 2.6 times the text (260 kB before)
    expect(json.length).toBeLessThan(4_000);
    for (const e of a.explanation) expect(e.token.length).toBeLessThanOrEqual(MAX_EXPLANATION_TOKEN + 60);
    expect(a.explanation.some((e) => e.token.endsWith('…') && e.token.startsWith('terribleaaa'))).toBe(true);
  });

  it('never cuts inside a surrogate pair', () => {
    for (let pad = 0; pad < 4; pad++) {
      const a = analyzer.analyze(`${'x'.repeat(pad)}${'😡'.repeat(200)} awful`);
      for (const e of a.explanation) expect(e.token.isWellFormed()).toBe(true);
    }
  });

  it('leaves ordinary tokens as they were', () => {
    const a = analyzer.analyze('The delivery was late and the support was useless');
    expect(a.explanation.every((e) => !e.token.endsWith('…'))).toBe(true);
    expect(a.explanation.map((e) => e.token)).toContain('useless');
  });
});

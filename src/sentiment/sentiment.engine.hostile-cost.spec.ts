import { describe, expect, it } from 'vitest';
import { SentimentEngine, TOKEN_WORD } from './sentiment.engine';

describe('SentimentEngine on hostile words', () => {
  it('keeps no long word in its memo of derived forms, which lives as long as the process', () => {
    const engine = new SentimentEngine();
    const memo = (engine as unknown as { derived: Map<string, number> }).derived;
    // 2,000 texts each with a new 50,000-letter word: before the bound, the memo kept all of them (100 MB)
    for (let i = 0; i < 2_000; i++) {
      const w = `q${i.toString(36)}${'x'.repeat(50_000)}ly`;
      expect(engine.valence({ text: w, lower: w, kind: TOKEN_WORD })).toBe(0);
    }
    let chars = 0;
    for (const k of memo.keys()) chars += k.length;
    expect(chars).toBeLessThanOrEqual(2_000 * 40);
    // ordinary words are still remembered, and answer as before
    const good = engine.valence({ text: 'gooooood', lower: 'gooooood', kind: TOKEN_WORD });
    expect(good).toBeGreaterThan(0);
    expect(memo.get('gooooood')).toBe(good);
    expect(engine.valence({ text: 'gooooood', lower: 'gooooood', kind: TOKEN_WORD })).toBe(good);
  });

  it('answers a long word as a short one of the same shape (derived, not remembered)', () => {
    const engine = new SentimentEngine();
    const long = `${'a'.repeat(45)}sadly`;
    expect(engine.valence({ text: long, lower: long, kind: TOKEN_WORD })).toBe(engine.valence({ text: long, lower: long, kind: TOKEN_WORD }));
  });
});

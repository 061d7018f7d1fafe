import { describe, expect, it } from 'vitest';
import { DEFAULT_TAXONOMY, labelFor, NEGATIVE_THRESHOLD, POSITIVE_THRESHOLD, SentimentAnalyzer } from './analyzer';

const analyzer = new SentimentAnalyzer();
const score = (text: string) => analyzer.analyze(text, { lang: 'en' }).score;
const tokens = (text: string) => analyzer.analyze(text, { lang: 'en' }).explanation.map((e) => e.token);

describe('sentiment', () => {
  it('gives a score in [-1, 1], a label from the documented thresholds and a confidence in [0, 1]', () => {
    for (const t of ['I love this', 'I hate this', 'The box is blue', 'WORST. SERVICE. EVER!!!! 😡😡😡']) {
      const a = analyzer.analyze(t);
      expect(a.score).toBeGreaterThanOrEqual(-1);
      expect(a.score).toBeLessThanOrEqual(1);
      expect(a.confidence).toBeGreaterThanOrEqual(0);
      expect(a.confidence).toBeLessThanOrEqual(1);
      expect(a.label).toBe(labelFor(a.score));
    }
    expect(labelFor(POSITIVE_THRESHOLD)).toBe('positive');
    expect(labelFor(NEGATIVE_THRESHOLD)).toBe('negative');
    expect(labelFor(0)).toBe('neutral');
  });

  it('labels plain positive, negative and neutral posts', () => {
    expect(analyzer.analyze('The support team was amazing, thank you so much!').label).toBe('positive');
    expect(analyzer.analyze('Terrible experience, the worst airline I have ever flown with.').label).toBe('negative');
    expect(analyzer.analyze('My order number is 12345 and it ships from Ohio.').label).toBe('neutral');
  });

  it('flips and damps negated words', () => {
    expect(score('the food was good')).toBeGreaterThan(0);
    expect(score('the food was not good')).toBeLessThan(0);
    expect(score("the food wasn't good")).toBeLessThan(0);
    expect(score('the food was not bad')).toBeGreaterThan(0);
    expect(tokens('the food was not good')).toContain('not good');
  });

  it('strengthens with intensifiers and weakens with dampeners', () => {
    expect(score('the service was very good')).toBeGreaterThan(score('the service was good'));
    expect(score('the service was good')).toBeGreaterThan(score('the service was somewhat good'));
    expect(score('delivery was slow af')).toBeLessThan(score('delivery was slow'));
  });

  it('weighs the clause after "but" and after an "although" clause more', () => {
    expect(score('The food was great but the staff were rude and slow')).toBeLessThan(0);
    expect(score('The staff were rude but the food was great')).toBeGreaterThan(0);
    expect(score('Although the food was great, the staff were rude')).toBeLessThan(0);
    expect(tokens('The food was great but the staff were rude')).toContain('but (contrast)');
  });

  it('reads ALL-CAPS and exclamation marks as emphasis', () => {
    expect(score('this is GREAT compared to the rest')).toBeGreaterThan(score('this is great compared to the rest'));
    expect(score('this is great!!!')).toBeGreaterThan(score('this is great'));
    expect(score('this is awful!!!')).toBeLessThan(score('this is awful'));
    expect(tokens('this is great!!!').some((t) => t.includes('emphasis'))).toBe(true);
  });

  it('scores emoji and emoticons', () => {
    expect(score('my flight today 😡')).toBeLessThan(0);
    expect(score('my flight today 😍')).toBeGreaterThan(0);
    expect(score('my flight today :(')).toBeLessThan(0);
    expect(score('my flight today :)')).toBeGreaterThan(0);
    expect(score('thanks ❤️')).toBeGreaterThan(score('thanks'));
  });

  it('understands customer-post slang and abbreviations', () => {
    expect(score('wtf is going on with my order')).toBeLessThan(0);
    expect(score('smh, 3 hours on hold')).toBeLessThan(0);
    expect(score('ffs fix your app')).toBeLessThan(0);
    expect(score('tysm for the quick fix')).toBeGreaterThan(0);
    // "lol" on a complaint is resignation, not joy: it must not flip the post to positive.
    expect(score('package lost again lol')).toBeLessThan(0);
  });

  it('scores hashtags, including squashed phrases', () => {
    expect(score('flight cancelled again #fail')).toBeLessThan(score('flight cancelled again'));
    expect(score('#neveragain')).toBeLessThan(0);
    expect(score('new phone arrived #blessed')).toBeGreaterThan(0);
  });

  it('reads elongated words as their base word, emphasised', () => {
    expect(score('this is goooood')).toBeGreaterThan(0);
    expect(score('sooo slow')).toBeLessThan(0);
    expect(score('I looooove it')).toBeGreaterThan(score('I love it'));
  });

  it('knows customer-service phrases', () => {
    for (const t of ['I was charged twice', 'on hold for an hour', 'my flight was cancelled', 'parcel delayed', 'never again', 'switching to another bank', 'I want a refund']) {
      expect(score(t), t).toBeLessThan(0);
    }
    expect(score('no problem at all')).toBeGreaterThan(0);
  });

  it('combines sentences by strength, not a plain average', () => {
    const mixed = 'I ordered on Monday. It arrived on Friday. The box was brown. The blender is broken and useless.';
    expect(score(mixed)).toBeLessThan(NEGATIVE_THRESHOLD);
    // The conclusion of a review weighs more than its opening.
    expect(score('Great price. But honestly the quality is terrible.')).toBeLessThan(0);
  });

  it('blends a star rating into the score', () => {
    const text = 'It arrived on Tuesday.';
    expect(analyzer.analyze(text, { rating: 1 }).score).toBeLessThan(-0.5);
    expect(analyzer.analyze(text, { rating: 5 }).score).toBeGreaterThan(0.5);
    expect(analyzer.analyze('great product', { rating: 1 }).score).toBeLessThan(analyzer.analyze('great product').score);
    expect(analyzer.analyze(text, { rating: 10, ratingScale: 10 }).score).toBe(1);
    expect(analyzer.analyze(text, { rating: 7 }).score).toBe(0); // outside 1..5: ignored
    expect(analyzer.analyze(text, { rating: 1 }).explanation.map((e) => e.token)).toContain('rating 1/5');
  });

  it('explains itself: tokens sorted by |weight| with signed weights', () => {
    const a = analyzer.analyze('The app keeps crashing and support was rude, but the refund was fast. Thanks!');
    expect(a.explanation.length).toBeGreaterThan(0);
    for (let i = 1; i < a.explanation.length; i++) {
      expect(Math.abs(a.explanation[i - 1].weight)).toBeGreaterThanOrEqual(Math.abs(a.explanation[i].weight));
    }
    expect(a.explanation.find((e) => e.token === 'rude')?.weight).toBeLessThan(0);
  });
});

describe('intent', () => {
  const intent = (t: string) => analyzer.analyze(t).intent;
  it.each([
    ['I was charged twice for the same order and nobody is answering', 'complaint'],
    ['Why is my package still not here? Ordered two weeks ago.', 'complaint'],
    ['How do I change the delivery address on my order?', 'question'],
    ['Does the premium plan include phone support', 'question'],
    ['Huge thanks to Maria at the help desk, she was fantastic!', 'praise'],
    ['Where can I buy the new model in Berlin?', 'purchase_intent'],
    ['Thinking about upgrading to the pro plan, how much is it?', 'purchase_intent'],
    ['Cancel my subscription, I am switching to Netflix.', 'churn_threat'],
    ['Third time this month. Never ordering from you again.', 'churn_threat'],
    ['The store opens at nine on Saturdays.', 'other'],
  ])('%s -> %s', (text, expected) => {
    const a = analyzer.analyze(text);
    expect(a.intent).toBe(expected);
    expect(a.intentConfidence).toBeGreaterThan(0);
    expect(a.intentConfidence).toBeLessThanOrEqual(1);
  });
  it('is other with no text', () => expect(intent('')).toBe('other'));
});

describe('topics', () => {
  const names = (t: string) => analyzer.analyze(t).topics.map((x) => x.name);

  it('routes each default topic to its department', () => {
    const cases: [string, string, string][] = [
      ['I was charged twice on my credit card', 'billing', 'Finance'],
      ['The courier left my parcel in the rain', 'delivery', 'Logistics'],
      ['My flight got cancelled and the next one is delayed', 'delays', 'Operations'],
      ['The handle is defective and cracked after a week', 'quality', 'Product'],
      ['The agent on the phone was rude', 'service', 'Customer Care'],
      ['Way too expensive for what it is', 'pricing', 'Marketing'],
      ['The app crashes at checkout', 'app', 'Digital'],
      ['I cannot reset my password and I am locked out', 'account', 'Digital'],
      ['Still waiting for my refund', 'returns', 'Customer Care'],
    ];
    for (const [text, topic, department] of cases) {
      const match = analyzer.analyze(text).topics.find((t) => t.name === topic);
      expect(match, text).toBeDefined();
      expect(match?.department).toBe(department);
    }
    expect(new Set(DEFAULT_TAXONOMY.map((t) => t.name)).size).toBe(9);
  });

  it('matches whole words and stems, never inside a word', () => {
    expect(names('so happy with it')).not.toContain('app');
    expect(names('great apps')).toContain('app');
    expect(names('they charged me')).toContain('billing');
    expect(names('the charges are wrong')).toContain('billing');
    expect(names('discard this')).not.toContain('billing');
    expect(names('I was on hold for 40 minutes')).toContain('service');
  });

  it('uses the taxonomy it was given', () => {
    const custom = new SentimentAnalyzer({ taxonomy: [{ name: 'food', label: 'Food', department: 'Kitchen', phrases: ['cold fries', 'burger'] }] });
    expect(custom.analyze('Cold fries and a soggy burger').topics).toEqual([{ name: 'food', department: 'Kitchen', matched: ['cold fries', 'burger'] }]);
    expect(custom.analyze('the app crashed').topics).toEqual([]);
  });
});

describe('language', () => {
  it('uses a declared language, normalised to its primary tag', () => {
    expect(analyzer.analyze('I love it', { lang: 'en-GB' }).lang).toBe('en');
  });

  it('gives a language without a lexicon a neutral label and low confidence', () => {
    const a = analyzer.analyze('Le service client est vraiment nul, je veux être remboursé immédiatement', { lang: 'fr' });
    expect(a.lang).toBe('fr');
    expect(a.label).toBe('neutral');
    expect(a.score).toBe(0);
    expect(a.confidence).toBeLessThanOrEqual(0.3);
    expect(a.intentConfidence).toBeLessThanOrEqual(0.3);
  });

  it('gives und for very short text rather than a guess', () => {
    expect(analyzer.analyze('ok thx').lang).toBe('und');
    expect(analyzer.analyze('ok thx').label).toBe('positive');
  });
});

describe('robustness', () => {
  it('handles empty text', () => {
    const a = analyzer.analyze('');
    expect(a).toMatchObject({ score: 0, label: 'neutral', intent: 'other', lang: 'und', topics: [], explanation: [] });
  });

  it('handles emoji-only text', () => {
    const a = analyzer.analyze('😡😡😡');
    expect(a.label).toBe('negative');
    expect(a.explanation[0].token).toBe('😡');
    expect(analyzer.analyze('🙏🏽❤️').score).toBeGreaterThan(0);
  });

  it('handles control characters and odd input without throwing', () => {
    expect(() => analyzer.analyze('\u0000\u0007bad\u001b[31m service\r\n\t')).not.toThrow();
    expect(() => analyzer.analyze(undefined as unknown as string)).not.toThrow();
    expect(() => analyzer.analyze('\uD83D broken surrogate')).not.toThrow();
    expect(() => analyzer.analyze('a'.repeat(100_000))).not.toThrow();
  });

  it('analyzes a 1 MB text quickly and says it was truncated', () => {
    const text = 'The parcel was late again and support never answered. '.repeat(20_000).slice(0, 1_048_576);
    const started = performance.now();
    const a = analyzer.analyze(text);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(a.label).toBe('negative');
    expect(a.explanation.some((e) => e.token.includes('first 100000 characters'))).toBe(true);
  });
});

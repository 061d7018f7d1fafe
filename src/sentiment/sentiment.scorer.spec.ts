import { describe, expect, it } from 'vitest';
import { DEFAULT_TAXONOMY, SentimentAnalyzer } from './analyzer';
import { DEFAULT_MODEL_NAME as BUILT_IN_MODEL } from './model/linear-model';
import { withRemote } from './sentiment.scorer';

const analyzer = new SentimentAnalyzer();
const topics = new Map(DEFAULT_TAXONOMY.map((t) => [t.name, t]));
const base = (text: string) => analyzer.analyze(text, { lang: 'en' });

describe('withRemote: a model server answer over the built-in analysis', () => {
  it('takes score and label from the server, keeps language, topics and intent of the built-in model, and says who scored it', () => {
    const b = base('Where is my parcel? Ordered a week ago.');
    expect(b.model).toBe(BUILT_IN_MODEL);
    const a = withRemote(b, { score: -0.42 }, 'acme-v3', topics);
    expect(a).toMatchObject({ score: -0.42, label: 'negative', confidence: 0.5, lang: b.lang, intent: b.intent, topics: b.topics, model: 'acme-v3' });
    expect(a.explanation).toEqual([{ token: '(scored by acme-v3; no explanation given)', weight: 0 }]);
  });

  it('complaint: true makes a complaint but leaves a churn threat; false undoes a built-in complaint', () => {
    expect(withRemote(base('Flight 22 boarded on time today'), { score: -0.6, complaint: true }, 'm', topics).intent).toBe('complaint');
    const churn = base('I am switching to another airline, done with you');
    expect(churn.intent).toBe('churn_threat');
    expect(withRemote(churn, { score: -0.9, complaint: true }, 'm', topics).intent).toBe('churn_threat');
    const refund = base('Thanks, the refund arrived');
    expect(refund.intent).toBe('complaint');
    expect(withRemote(refund, { score: 0.7, complaint: false }, 'm', topics).intent).toBe('other');
  });

  it('uses intent, lang, topics (taxonomy names only) and explanation when the server sends them', () => {
    const a = withRemote(
      base('hello'),
      { score: 0.9, label: 'positive', confidence: 0.97, intent: 'praise', intentConfidence: 0.8, lang: 'de', topics: ['billing', 'no_such_topic', 'billing'], explanation: [{ token: 'danke', weight: 2.1 }] },
      'm',
      topics,
    );
    expect(a).toMatchObject({ label: 'positive', confidence: 0.97, intent: 'praise', intentConfidence: 0.8, lang: 'de', explanation: [{ token: 'danke', weight: 2.1 }] });
    expect(a.topics).toEqual([{ name: 'billing', department: 'Finance', matched: [] }]);
  });

  it('makes a lone surrogate in a server token U+FFFD and keeps a whole pair', () => {
    const a = withRemote(base('late again'), { score: -0.5, explanation: [{ token: 'late\udc00', weight: -1 }, { token: '\ud83d\ude21', weight: -0.5 }, { token: 'x'.repeat(62) + '\ud800', weight: 0 }] }, 'm', topics);
    expect(a.explanation.map((e) => e.token)).toEqual(['late\ufffd', '\ud83d\ude21', `${'x'.repeat(62)}\ufffd`]);
    expect(a.explanation.every((e) => e.token.isWellFormed())).toBe(true);
  });
});

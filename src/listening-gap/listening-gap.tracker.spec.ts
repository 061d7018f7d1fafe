import { describe, expect, it } from 'vitest';
import { SentimentAnalyzer } from '../sentiment/analyzer';
import { parseListeningGapConfig } from './listening-gap.config';
import { ListeningGapTracker } from './listening-gap.tracker';

function tracker(env: Record<string, string>): ListeningGapTracker {
  const problems: string[] = [];
  const config = parseListeningGapConfig(
    (n) => env[n] ?? null,
    (n, d) => (env[n] === undefined ? d : Number(env[n])),
    problems,
  );
  expect(problems).toEqual([]);
  return new ListeningGapTracker(config);
}

describe('which messages open a listening item', () => {
  const analyzer = new SentimentAnalyzer();

  it('opens for every inbound unhappy message, whatever its intent and the configured intents', () => {
    const t = tracker({ EARSHOT_GAP_INTENTS: 'question' });
    expect(t.opens({ direction: 'inbound', intent: 'other', score: 0.2, unhappy: true })).toBe(true);
    expect(t.opens({ direction: 'inbound', intent: 'other', score: 0.2, unhappy: false })).toBe(false);
    expect(t.opens({ direction: 'outbound', intent: 'complaint', score: -0.9, unhappy: true })).toBe(false);
  });

  it('opens for the unhappy customers the analyzer finds, and not for thanks', () => {
    const t = tracker({ EARSHOT_GAP_INTENTS: 'question' });
    for (const text of ['everything was fine until you lost my bag', 'I will cancel my next four flights', 'still no refund']) {
      const a = analyzer.analyze(text);
      expect(t.opens({ direction: 'inbound', intent: a.intent, score: a.score, unhappy: a.unhappy }), text).toBe(true);
    }
    const thanks = analyzer.analyze('Thank you so much, the crew was wonderful!');
    expect(t.opens({ direction: 'inbound', intent: thanks.intent, score: thanks.score, unhappy: thanks.unhappy })).toBe(false);
  });
});

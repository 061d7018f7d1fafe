import { describe, expect, it, vi } from 'vitest';
import { SentimentAnalyzer } from './analyzer';
import { detectLanguage, languageDetectorAvailable } from './language';

// The script rule stands on its own: here eld is missing (its table does not load), as on an
// install without the package.
vi.mock('./ngram-table', () => ({ NgramTable: { load: () => null } }));

describe('language detection without eld', () => {
  it('still gives text in a script English is never written in its script\'s language', () => {
    expect(languageDetectorAvailable()).toBe(false);
    expect(detectLanguage('最悪のサービスです。返金してください')).toBe('ja');
    expect(detectLanguage('我的订单三个星期还没到，太差了')).toBe('zh');
    expect(detectLanguage('정말 최악의 서비스입니다')).toBe('ko');
    expect(detectLanguage('خدمة سيئة جدا')).toBe('ar');
    expect(detectLanguage('Ужасное обслуживание, верните деньги немедленно')).toBe('ru');
    expect(detectLanguage('बहुत खराब सेवा')).toBe('hi');
    // Latin text cannot be told without eld
    expect(detectLanguage('Le service client est vraiment nul, je veux être remboursé')).toBe('und');
  });

  it('leaves the analyzer\'s answer for an Arabic complaint neutral, not scored by the English model', () => {
    const a = new SentimentAnalyzer().analyze('خدمة سيئة جدا');
    expect(a.lang).toBe('ar');
    expect(a.unhappy).toBe(false);
    expect(a.explanation[0]!.token).toBe("(no sentiment model for language 'ar')");
  });
});

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

  it('lets the script overrule a declared language written in Latin letters, and only that', () => {
    // a source that stamps `en` (or `und`) on everything
    expect(detectLanguage('最悪のサービスです。返金してください', 'en')).toBe('ja');
    expect(detectLanguage('我的订单三个星期还没到，太差了', 'en-US')).toBe('zh');
    expect(detectLanguage('정말 최악의 서비스입니다', 'EN')).toBe('ko');
    expect(detectLanguage('خدمة سيئة جدا', 'und')).toBe('ar');
    expect(detectLanguage('Ужасное обслуживание', 'de')).toBe('ru');
    expect(detectLanguage('שירות גרוע', 'en')).toBe('he');
    expect(detectLanguage('แย่มาก', 'en')).toBe('th');
    expect(detectLanguage('बहुत खराब सेवा', 'en')).toBe('hi');
    // the declaration agrees with the script: Serbian and Azerbaijani in Cyrillic, Sorani in Arabic letters
    expect(detectLanguage('Ужасна услуга', 'sr')).toBe('sr');
    expect(detectLanguage('Ужасна услуга', 'az')).toBe('az');
    expect(detectLanguage('خزمەتگوزاریی خراپ', 'ku')).toBe('ku');
    // Latin, mixed or ambiguous text keeps the declaration
    for (const text of ['Terrible service 最悪', 'my order 注文番号 123 never arrived', '最', '😡😡😡 123 https://例え.jp', 'awful ¯\\_(ツ)_/¯', '']) {
      expect(detectLanguage(text, 'en')).toBe('en');
    }
    // a script not listed keeps it too (English is written in Shavian)
    expect(detectLanguage('𐑞 𐑒𐑨𐑑 𐑕𐑨𐑑 𐑪𐑯 𐑞 𐑥𐑨𐑑', 'en')).toBe('en');
    // a declared language not written in Latin letters stands, on any text
    expect(detectLanguage('Terrible service, I want my money back', 'ja')).toBe('ja');
    expect(detectLanguage('Mujhe refund chahiye, bahut bura service', 'hi')).toBe('hi');
    expect(detectLanguage('最悪のサービスです', 'zh')).toBe('zh');
  });

  it('leaves the analyzer\'s answer for an Arabic complaint neutral, not scored by the English model', () => {
    const a = new SentimentAnalyzer().analyze('خدمة سيئة جدا');
    expect(a.lang).toBe('ar');
    expect(a.unhappy).toBe(false);
    expect(a.explanation[0]!.token).toBe("(no sentiment model for language 'ar')");
    const declared = new SentimentAnalyzer().analyze('خدمة سيئة جدا', { lang: 'en' });
    expect(declared).toMatchObject({ lang: 'ar', label: 'neutral', unhappy: false });
  });
});

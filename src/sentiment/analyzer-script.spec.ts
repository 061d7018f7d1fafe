import { describe, expect, it } from 'vitest';
import { SentimentAnalyzer, type Analysis } from './analyzer';

// Text in a script English is never written in is not English however short: the English
// model scored these (below 20 letters they were `und`): "最悪のサービスです。返金してください"
// came out negative, a complaint, and the Arabic one opened a listening item. A mixed post with a
// real English part is still the English model's.
const analyzer = new SentimentAnalyzer();

/** What text without a model gets: the script's language, neutral, never unhappy, and why. */
function expectNoModel(a: Analysis, lang: string): void {
  expect(a.lang).toBe(lang);
  expect(a.label).toBe('neutral');
  expect(a.unhappy).toBe(false);
  expect(a.complaint).toBe(false);
  expect(a.confidence).toBeLessThanOrEqual(0.2);
  expect(a.explanation.map((e) => e.token)).toEqual([`(no sentiment model for language '${lang}')`]);
}

describe('short complaints in other scripts', () => {
  it.each([
    ['ja', '最悪のサービスです。返金してください'],
    ['zh', '我的订单三个星期还没到，太差了'],
    ['ko', '정말 최악의 서비스입니다'],
    ['ar', 'خدمة سيئة جدا'],
    ['zh', '最悪'],
    ['hi', 'बहुत खराब सेवा'],
    ['th', 'แย่มาก'],
  ])('answer "no sentiment model for %s", not the English model: %s', (lang, text) => {
    expectNoModel(analyzer.analyze(text), lang);
  });

  it('keep a star rating, which is language-independent', () => {
    const a = analyzer.analyze('最悪のサービスです。返金してください', { rating: 1 });
    expect(a.lang).toBe('ja');
    expect(a.label).toBe('negative');
    expect(a.unhappy).toBe(true);
  });
});

// A declared language written in Latin letters (`en` from a source that stamps it on everything)
// no longer hands such text to the English model: the script's language is the answer, as if
// nothing had been declared.
describe('short complaints in other scripts declared `en`', () => {
  it.each([
    ['ja', '最悪のサービスです。返金してください'],
    ['zh', '我的订单三个星期还没到，太差了'],
    ['ko', '정말 최악의 서비스입니다'],
    ['ar', 'خدمة سيئة جدا'],
    ['ru', 'Ужасное обслуживание, верните деньги немедленно'],
    ['uk', 'Жахливе обслуговування, поверніть мені гроші негайно'],
    ['he', 'שירות גרוע, אני רוצה את הכסף שלי בחזרה'],
    ['th', 'แย่มาก'],
    ['hi', 'बहुत खराब सेवा'],
  ])('answer "no sentiment model for %s", not the English model: %s', (lang, text) => {
    expectNoModel(analyzer.analyze(text, { lang: 'en' }), lang);
  });

  it('keep a star rating, which is language-independent', () => {
    const a = analyzer.analyze('最悪のサービスです。返金してください', { lang: 'en-GB', rating: 1 });
    expect(a).toMatchObject({ lang: 'ja', label: 'negative', unhappy: true });
    expect(a.explanation.map((e) => e.token)).toEqual(["(no sentiment model for language 'ja')", 'rating 1/5']);
  });

  it('answer exactly as undeclared text does, declared `en` or `und`', () => {
    for (const text of ['最悪のサービスです。返金してください', 'خدمة سيئة جدا', 'Ужасное обслуживание', 'שירות גרוע']) {
      const plain = analyzer.analyze(text);
      for (const lang of ['en', 'und']) expect(analyzer.analyze(text, { lang })).toEqual(plain);
    }
  });

  // Only a declared language written in Latin letters is overruled. The reverse is left alone: a
  // declared language written in another script stands on Latin text, as romanised Hindi,
  // Japanese or Arabic (declared `hi`, `ja`, `ar`) is no English.
  it('overrule only a declaration in Latin letters the script contradicts', () => {
    expect(analyzer.analyze('Ужасна услуга, вратите ми новац', { lang: 'en' }).lang).not.toBe('en');
    expect(analyzer.analyze('Ужасна услуга, вратите ми новац', { lang: 'sr' }).lang).toBe('sr');
    expect(analyzer.analyze('最悪のサービスです。返金してください', { lang: 'ja' }).explanation.map((e) => e.token)).toEqual(["(no sentiment model for language 'ja')"]);
    const a = analyzer.analyze('Terrible service, I want my money back', { lang: 'ja' });
    expect(a).toMatchObject({ lang: 'ja', label: 'neutral', unhappy: false });
    expect(a.explanation.map((e) => e.token)).toEqual(["(no sentiment model for language 'ja')"]);
  });
});

describe('English complaints with a little of another script', () => {
  it.each([
    'Terrible service 最悪',
    'my order 注文番号 123 never arrived',
    'Worst airline ever, they lost my bag 最',
    'terrible最悪',
    'awful ¯\\_(ツ)_/¯',
    'worst (ノಠ益ಠ)ノ彡┻━┻',
    'This is a disaster ужасно',
    // were uk and de (eld), neutral
    'Worst app ever!!! крашится',
    'Iphone battery sucks 11.2.1 @Apple',
    // invisible letters (Hangul fillers), zero-width characters, full-width and mathematical letters
    'Terrible service ㅤㅤㅤㅤㅤㅤㅤㅤㅤㅤㅤㅤㅤㅤ ᅟᅟᅟᅟᅟᅟᅟᅟᅟᅟᅟᅟ',
    'ter\u200brible ser\u200bvice 最悪',
    'ｔｅｒｒｉｂｌｅ ｓｅｒｖｉｃｅ 最悪',
    '𝐭𝐞𝐫𝐫𝐢𝐛𝐥𝐞 𝐬𝐞𝐫𝐯𝐢𝐜𝐞 最',
    // Cyrillic look-alikes in English words
    'Теrrible sеrvice 最',
  ])('stay scored by the English model and unhappy: %s', (text) => {
    const a = analyzer.analyze(text);
    expect(['en', 'und']).toContain(a.lang);
    expect(a.unhappy).toBe(true);
    expect(a.explanation.some((e) => e.token.startsWith('(no sentiment model'))).toBe(false);
    // declared `en`, exactly as before
    const declared = analyzer.analyze(text, { lang: 'en' });
    expect(declared.lang).toBe('en');
    expect(declared.unhappy).toBe(true);
    expect(declared.explanation.some((e) => e.token.startsWith('(no sentiment model'))).toBe(false);
  });
});

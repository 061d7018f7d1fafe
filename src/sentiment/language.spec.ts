import { describe, expect, it } from 'vitest';
import { SentimentAnalyzer } from './analyzer';
import { detectLanguage, languageDetectorAvailable, normalizeLanguageTag } from './language';

describe('language detection', () => {
  it('has the eld detector installed', () => {
    expect(languageDetectorAvailable()).toBe(true);
  });

  it.each([
    ['en', 'The delivery was late again and nobody from support answered my emails.'],
    ['fr', 'Le service client est vraiment nul, je veux être remboursé'],
    ['de', 'Die Lieferung kam viel zu spät und niemand hat geantwortet'],
    ['es', 'El pedido llegó roto y nadie responde a mis correos'],
    ['nl', 'De bezorging was veel te laat en de klantenservice reageert niet'],
    ['pl', 'Przesyłka dotarła uszkodzona i nikt nie odpowiada'],
    ['ru', 'Доставка задержалась на неделю, ужасный сервис'],
    ['ja', '配送が遅れていて、サポートに連絡しても返事がありません'],
  ])('detects %s', (lang, text) => {
    expect(detectLanguage(text)).toBe(lang);
  });

  it('answers und for short or letter-less text instead of guessing', () => {
    expect(detectLanguage('hi')).toBe('und');
    expect(detectLanguage('ok thx!!')).toBe('und');
    expect(detectLanguage('😡😡😡 !!! 12345')).toBe('und');
    expect(detectLanguage('')).toBe('und');
  });

  // Below 20 letters these were all `und`, and the English model scored them.
  it.each([
    ['ja', '最悪のサービスです。返金してください'],
    ['ja', 'Amazonの配達が遅い'],
    ['zh', '我的订单三个星期还没到，太差了'],
    ['zh', '最悪'],
    ['ko', '정말 최악의 서비스입니다'],
    ['ar', 'خدمة سيئة جدا'],
    ['he', 'שירות גרוע'],
    ['th', 'แย่มาก'],
    ['el', 'πολύ κακό'],
    ['hi', 'बहुत खराब सेवा'],
    ['hi', 'बेकार'],
    ['ru', 'ужасно'],
    ['ru', 'я в шоке'],
    ['uk', 'Жахливий сервіс, поверніть гроші'],
    ['ka', 'ცუდი სერვისი'],
    ['hy', 'շատ վատ ծառայություն'],
    ['km', 'ខ្មែរ'],
    ['mis', 'ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ'],
  ])('gives short text in a script English is never written in its language (%s): %s', (lang, text) => {
    expect(detectLanguage(text)).toBe(lang);
  });

  it('reads the script of the words only: emoji, digits, links, @mentions and hashtags change nothing', () => {
    expect(detectLanguage('最悪のサービスです 😡😡 12345 @acme https://example.com/x www.example.com #fail')).toBe('ja');
    expect(detectLanguage('خدمة سيئة جدا!!! 😡 @acme_support #badservice 2024')).toBe('ar');
    expect(detectLanguage('Terrible service 😡 #最悪のサービス @最悪のサービス https://最悪.jp/最悪のサービス')).toBe('und');
  });

  it('leaves text with a real English part to English', () => {
    for (const text of [
      'Terrible service 最悪',
      'my order 注文番号 123 never arrived',
      'Worst airline ever, they lost my bag 最',
      'bad 最',
      'This is a disaster ужасно',
      // eld said uk and de: its answer counts only for a language written in Latin letters, and digits are no letters
      'Worst app ever!!! крашится',
      'Iphone battery sucks 11.2.1 @Apple',
      'bad ¯\\_(ツ)_/¯',
      'ugh ಠ_ಠ',
      'worst (ノಠ益ಠ)ノ彡┻━┻',
      // Hangul fillers are letters, but invisible
      'Terrible service ㅤㅤㅤㅤㅤㅤㅤㅤㅤㅤㅤㅤㅤㅤ ᅟᅟᅟᅟᅟᅟᅟᅟᅟᅟᅟᅟ',
      // full-width Latin letters are Latin
      'ｔｅｒｒｉｂｌｅ ｓｅｒｖｉｃｅ 最悪',
    ]) {
      expect(['en', 'und'], text).toContain(detectLanguage(text));
    }
  });

  it('lets a declared language win', () => {
    expect(detectLanguage('The delivery was late again and nobody answered.', 'de-AT')).toBe('de');
    expect(normalizeLanguageTag('pt_BR')).toBe('pt');
    expect(normalizeLanguageTag('not a tag!')).toBeNull();
  });
});

describe('text in a language without a lexicon', () => {
  const analyzer = new SentimentAnalyzer();

  it('is neutral with low confidence, never a confident wrong answer', () => {
    for (const text of [
      'Die Lieferung kam viel zu spät und niemand hat geantwortet, absolut schrecklich',
      'Me encanta esta aplicación, funciona muy bien y el soporte es excelente',
    ]) {
      const a = analyzer.analyze(text);
      expect(a.lang).not.toBe('en');
      expect(a.lang).not.toBe('und');
      expect(a.label).toBe('neutral');
      expect(a.score).toBe(0);
      expect(a.confidence).toBeLessThanOrEqual(0.3);
    }
  });
});

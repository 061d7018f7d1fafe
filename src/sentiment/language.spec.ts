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

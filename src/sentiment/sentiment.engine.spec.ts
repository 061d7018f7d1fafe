import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sharedTexts } from '../../test/support/shared-texts';
import { TOKEN_EMOTICON, TOKEN_URL, TOKEN_WORD, tokenize, tokenizeByExpression } from './sentiment.engine';

// Pieces where the tokenizer's shortcut for ASCII words meets the expression: links (and words
// that only start like one), apostrophes of both kinds, letters and digits beyond ASCII, marks,
// emoji, faces after words, every kind of blank, lone surrogates.
const PIECES = [
  'http://x.io', 'https://a.b/c?d=1', 'http:/', 'https', 'www.', 'www.shop.com', 'wwwx', 'xhttp://y', 'HTTP://Z',
  "don't", 'don’t', "rock'n'roll", "x'", "'", '’', 'café', 'cafe\u0301', 'naïve', 'São', 'İstanbul', 'ß', 'Доставка', '配送',
  '8:30', 'abc:)', ':)', ';-p', '<3', '^_^', ':/', '@brand', '@a.b_c', '#fail', '#', '#Great_Day', '😡', '👍🏽', '©',
  '!!', '?', '...', '\n', '\n\n', ',', ';', ':', '(', ')', '–', '—', ' ', '\t', '\r', '\u00a0', '\u2028', '\v',
  'a', 'Z', '0', '42nd', 'B2B', 'x9', '_', '-', '*', '"', '&amp;', '\ud83d', '\ude00', '\u0000',
];

describe('tokenize', () => {
  it('finds what the expression alone finds on every line of ../shared/data', () => {
    const texts = sharedTexts();
    expect(texts.length).toBeGreaterThan(150_000);
    const differing = texts.filter((t) => JSON.stringify(tokenize(t)) !== JSON.stringify(tokenizeByExpression(t)));
    expect(differing.slice(0, 5)).toEqual([]);
  });

  it('finds what the expression alone finds on generated text: pieces that meet the shortcut, any code units, graphemes', () => {
    const text = fc.oneof(
      fc.array(fc.constantFrom(...PIECES), { maxLength: 40 }).map((p) => p.join('')),
      fc.array(fc.constantFrom(...PIECES), { maxLength: 40 }).map((p) => p.join(' ')),
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.string({ unit: 'grapheme', maxLength: 120 }),
    );
    fc.assert(
      fc.property(text, (t) => {
        expect(tokenize(t)).toEqual(tokenizeByExpression(t));
      }),
      { numRuns: 5_000 },
    );
  });

  it('reads words, links and faces as before', () => {
    const kinds = (t: string) => tokenize(t).map((k) => [k.text, k.lower, k.kind]);
    expect(kinds('Great https://x.io :) don’t')).toEqual([
      ['Great', 'great', TOKEN_WORD],
      ['https://x.io', '<url>', TOKEN_URL],
      [':)', ':)', TOKEN_EMOTICON],
      ["don't", "don't", TOKEN_WORD],
    ]);
  });
});

import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sharedTexts } from '../../test/support/shared-texts';
import { NgramTable, type Detection } from './ngram-table';

interface EldResult {
  language: string;
  isReliable(): boolean;
}

/** eld itself, loaded as language.ts loaded it before the table (its "small" entry, by path). */
function eldDetect(): (text: string) => Detection {
  // eld exports only an `import` condition: its entry is found by path, as language.ts did
  const file = (require.resolve.paths('eld') ?? []).map((dir) => path.join(dir, 'eld', 'src', 'entries', 'static.small.js')).find((f) => fs.existsSync(f));
  if (!file) throw new Error('eld is not installed');
  const { eld } = require(file) as { eld: { detect(text: string): EldResult } };
  return (text) => {
    const r = eld.detect(text);
    return { language: r.language, reliable: r.language ? r.isReliable() : false };
  };
}

/**
 * Every fifth line of the text files under ../shared/data, cut as the analyzer cuts (400
 * characters). All 159,771 lines were compared once by hand (no difference); a fifth keeps this
 * test at a few seconds.
 */
const fifthOfSharedTexts = () => sharedTexts({ every: 5, maxChars: 400 });

// Words of several scripts and languages, so generated texts reach many n-grams of the database.
const WORDS = [
  'the', 'delivery', 'was', 'late', 'service', 'nicht', 'geantwortet', 'Lieferung', 'très', 'remboursé', 'llegó',
  'correos', 'bezorging', 'Przesyłka', 'uszkodzona', 'Доставка', 'ужасный', 'сервис', '配送が遅れて', 'サポート', '서비스',
  'ที่', 'γρήγορα', 'שירות', 'خدمة', 'सेवा', 'ბარგი', 'Ծառայություն', 'don’t', "can't", 'São', 'İstanbul', 'ß', 'ǅ',
];

describe('eld over typed arrays (NgramTable)', () => {
  const table = NgramTable.load();
  const eld = eldDetect();

  it('loads from the installed eld package', () => {
    expect(table).not.toBeNull();
  });

  it('answers what eld answers on the texts of ../shared/data', () => {
    const texts = fifthOfSharedTexts();
    expect(texts.length).toBeGreaterThan(20_000);
    const differing = texts.filter((t) => {
      const a = eld(t);
      const b = table!.detect(t);
      return a.language !== b.language || a.reliable !== b.reliable;
    });
    expect(differing.slice(0, 5)).toEqual([]);
    // the sets hold languages other than English too, so more than one branch is exercised
    const reliable = new Set(texts.slice(0, 20_000).map((t) => table!.detect(t)).filter((d) => d.reliable).map((d) => d.language));
    expect(reliable.size).toBeGreaterThan(5);
  });

  it('answers what eld answers on generated text: any code units, lone surrogates, mixed scripts, long words', () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 1200 }),
      fc.string({ unit: 'grapheme', maxLength: 300 }),
      fc.array(fc.oneof(fc.constantFrom(...WORDS), fc.string({ unit: fc.constantFrom('a', 'é', 'ж', '字', '\ud83d', '\ude00', ' ', '-', "'", '’'), maxLength: 90 })), { maxLength: 80 }).map((w) => w.join(' ')),
    );
    fc.assert(
      fc.property(text, (t) => {
        expect(table!.detect(t)).toEqual(eld(t));
      }),
      { numRuns: 3_000 },
    );
  });

  it('answers no language for text without letters, as eld does', () => {
    for (const t of ['', '   ', '12345 !!! ...', '😡😡😡']) expect(table!.detect(t)).toEqual(eld(t));
    expect(table!.detect('').language).toBe('');
  });
});

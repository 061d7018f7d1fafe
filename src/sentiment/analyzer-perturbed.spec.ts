import { describe, expect, it } from 'vitest';
import { HOMOGLYPHS, INVISIBLES, PERTURBATIONS } from '../../test/eval/perturbations';
import { sharedTexts } from '../../test/support/shared-texts';
import { type Analysis, SentimentAnalyzer } from './analyzer';
import { tokenize } from './sentiment.engine';
import { decodeEntities, foldText, normalizeTokens, tokenizeFolded } from './text-fold';
import { cpuMs } from '../../test/support/fastest';
import { warmLanguageDetector } from './language';

// Text that reads the same to a person reads the same to the analyzer (./text-fold.ts), and
// ordinary text reads as before.

const analyzer = new SentimentAnalyzer();
const asWritten = new SentimentAnalyzer({ fold: false });

/** What the analysis says, all but how the explanation spells the tokens. */
function verdict(a: Analysis) {
  const { explanation, ...rest } = a;
  return { ...rest, weights: explanation.map((e) => e.weight) };
}

const COMPLAINT = "@acme I was charged twice for my order and there's still no refund. Terrible service, really disappointed!";
const ACCENTED = 'Thé café’s crème brûlée was awful, naïve staff and still no refund!';
const FOLDED = ['zero-width', 'full-width', 'math-bold', 'nfd', 'zalgo-light', 'homoglyph'];

/** Words and signals of an explanation that name text (not "(baseline)", "ALL CAPS (emphasis)", …). */
function namedWords(a: Analysis): string[] {
  return a.explanation
    .map((e) => e.token)
    .filter((t) => !t.startsWith('(') && t !== 'ALL CAPS (emphasis)' && !t.startsWith('rating '))
    .flatMap((t) => t.replace(/ \(contrast\)$/, '').split(/ … | /))
    .map((w) => w.replace(/^#/, ''));
}

describe('a perturbed complaint', () => {
  const plain = analyzer.analyze(COMPLAINT);

  it('is a negative complaint when plain', () => {
    expect(plain.label).toBe('negative');
    expect(plain.complaint).toBe(true);
    expect(plain.unhappy).toBe(true);
    expect(plain.topics.map((t) => t.name)).toEqual(expect.arrayContaining(['billing', 'returns']));
  });

  for (const name of FOLDED) {
    const p = PERTURBATIONS.find((x) => x.name === name)!;
    it(`scores like its plain form with ${name} (${p.about})`, () => {
      const original = name === 'nfd' ? ACCENTED : COMPLAINT;
      const text = p.apply(original);
      const base = analyzer.analyze(original);
      expect(text).not.toBe(original);
      const a = analyzer.analyze(text);
      expect(verdict(a)).toEqual(verdict(base));
      // explanations name what the customer wrote: every word shown is in the text as written
      const lower = text.toLowerCase();
      for (const w of namedWords(a)) expect(lower, w).toContain(w);
      expect(Math.abs(a.explanation.reduce((s, e) => s + e.weight, 0) - a.logit)).toBeLessThan(0.01);
      expect(analyzer.topicsOf(text)).toEqual(base.topics);
    });
  }

  it('scores like its plain form with several perturbations at once, and with each invisible character and look-alike', () => {
    const all = PERTURBATIONS.filter((p) => FOLDED.includes(p.name) && p.name !== 'nfd');
    const mixed = [...all].reverse().reduce((t, p) => p.apply(t), COMPLAINT);
    expect(verdict(analyzer.analyze(mixed))).toEqual(verdict(plain));
    for (const c of INVISIBLES) expect(verdict(analyzer.analyze(COMPLAINT.replace(/([a-z])([a-z])/g, `$1${c}$2`))), JSON.stringify(c)).toEqual(verdict(plain));
    for (const [latin, cyrillic] of Object.entries(HOMOGLYPHS))
      expect(verdict(analyzer.analyze(COMPLAINT.replaceAll(latin, cyrillic))), cyrillic).toEqual(verdict(plain));
    // the Cyrillic look-alikes everywhere, whole words too ("ех" for "ex"), in an English text
    expect(verdict(analyzer.analyze('Terrible service, my ex bank was better'.replace(/[aeopcx]/g, (c) => HOMOGLYPHS[c]!)))).toEqual(
      verdict(analyzer.analyze('Terrible service, my ex bank was better')),
    );
  });

  it('is one explanation item for a word the model read alike, written with invisibles in different places', () => {
    const base = analyzer.analyze('Awful, awful service. Awful!');
    const a = analyzer.analyze('Aw\u200bful, awf\u200bul service. A\u200cwful!');
    expect(verdict(a)).toEqual(verdict(base));
    expect(base.explanation.filter((e) => e.token === 'awful')).toHaveLength(1);
    // named as first written
    expect(a.explanation.filter((e) => e.token.replace(/[\u200b\u200c]/g, '') === 'awful').map((e) => e.token)).toEqual(['aw\u200bful']);
  });

  it('was read otherwise as written (the analyzer before folding)', () => {
    let differing = 0;
    for (const name of FOLDED.filter((n) => n !== 'nfd')) {
      const a = asWritten.analyze(PERTURBATIONS.find((x) => x.name === name)!.apply(COMPLAINT));
      if (JSON.stringify(verdict(a)) !== JSON.stringify(verdict(plain))) differing++;
    }
    expect(differing).toBe(5);
  });

  it('keeps a full-width how-to question a question, and finds its complaint cue and topics', () => {
    const fw = (s: string) => s.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0));
    for (const t of ['How do I reset my password?', 'Charged twice AGAIN. Unbelievable.', 'Where is my parcel? Still waiting for the courier!']) {
      expect(verdict(analyzer.analyze(fw(t))), t).toEqual(verdict(analyzer.analyze(t)));
    }
    expect(analyzer.analyze(fw('How do I reset my password?')).intent).toBe('question');
  });
});

describe('ordinary text', () => {
  it('folds nothing in the writing of other scripts and in ordinary symbols', () => {
    for (const t of [
      'می‌خواهم', // Persian: the non-joiner is spelling
      'क्‍ष', // Devanagari with a joiner
      '👨‍👩‍👧‍👦 1️⃣ 🏴󠁧󠁢󠁳󠁣󠁴󠁿 ❤️ 👍🏽',
      'アップルストア銀座なう！（株）の高木さん？', // full-width punctuation is Japanese punctuation
      'Доставка опоздала, очень плохо', // Russian: look-alikes among other Cyrillic letters
      'Cервис регистрации', // a Russian word with a Latin C stays Russian
      'Η παράδοση άργησε πολύ', // Greek
      'Dịch vụ rất tệ', // Vietnamese in NFC
      'café naïve São Zoë Ångström ĳs ǆ 1º 2ª ℹ️ ™ № … ½ x² ſ',
      'plain ASCII, with links https://x.io/a and @mentions',
    ]) {
      const f = foldText(t);
      expect(f.origin, t).toBeNull();
      expect(f.text).toBe(t);
    }
  });

  it('folds at most 53 of the 159,771 lines of ../shared/data, each holding a character it folds, and reads every other line as before', () => {
    const texts = sharedTexts();
    expect(texts.length).toBeGreaterThan(150_000);
    // 18 lines, and 35 with an apostrophe written ` ´ or ‘ ("don`t") or small capitals since 2026-12-05
    const FOLDABLE =
      /[\uff01-\uff5e\u{1d400}-\u{1d7ff}]|\p{L}\p{M}|\p{L}\p{Default_Ignorable_Code_Point}+\p{L}|[\u0370-\u052f]|\p{L}[`\u00b4\u2018\u2032]\p{L}|[\u1d00-\u1d22\ua730\ua731]/u;
    const folded = texts.filter((t) => foldText(t).origin !== null);
    expect(folded.length).toBeLessThanOrEqual(53);
    for (const t of folded) expect(FOLDABLE.test(t), t).toBe(true);
    // the explanation's naming and merging are untouched where nothing folds (one line in 16, some
    // 10,000: every line took over a minute on a loaded two-core machine)
    for (const t of texts.filter((_, i) => i % 16 === 0)) {
      if (foldText(t).origin !== null) continue;
      // nor where the reading after the fold changes it (entities, elongation, decorative emoji, all capitals: analyzer-invariance.spec.ts)
      if (decodeEntities(t) !== t || JSON.stringify(normalizeTokens(tokenize(t))) !== JSON.stringify(tokenize(t))) continue;
      expect(analyzer.analyze(t)).toEqual(asWritten.analyze(t));
    }
  });
});

describe('the fold', () => {
  it('drops invisibles inside Latin words only', () => {
    expect(foldText('b\u200bad s\u00adervice').text).toBe('bad service');
    expect(foldText('bad\u200b service\u200b').origin).toBeNull();
    expect(foldText('ok\u200b\u200c\u2060\ufeffay').text).toBe('okay');
  });

  it('folds compatibility letters, full-width punctuation, look-alikes, NFD and decoration', () => {
    expect(foldText('ｔｅｒｒｉｂｌｅ！').text).toBe('terrible!');
    expect(foldText('𝐛𝐚𝐝 𝑏𝑎𝑑 𝒃𝒂𝒅 ⓑⓐⓓ ﬁne').text).toBe('bad bad bad bad fine');
    expect(foldText('bаd').text).toBe('bad'); // Cyrillic а
    expect(foldText('cafe\u0301').text).toBe('café');
    expect(foldText('b\u0303a\u030dd\u0302 cafe\u0301').text).toBe('bad cafe'); // decorated: every mark written apart goes
    expect(foldText('café b\u0303ad').text).toBe('café bad'); // a composed letter as written stays
    expect(foldText('ｂａｄ！ 最悪！').text).toBe('bad！ 最悪！');
  });

  it('maps every unit of the folded text to where it was written, and tokens to their spelling', () => {
    const input = 'Ｔｅｒｒｉｂｌｅ s\u200bervice 𝐛𝐚𝐝 bа̀d #ｆａｉｌ！';
    const f = foldText(input);
    expect(f.text).toBe('Terrible service bad bàd #fail!');
    expect(f.origin!.length).toBe(f.text.length + 1);
    expect(f.origin![f.text.length]).toBe(input.length);
    for (let i = 1; i < f.origin!.length; i++) expect(f.origin![i]).toBeGreaterThanOrEqual(f.origin![i - 1]!);
    const tokens = tokenizeFolded(f, input);
    expect(tokens.map((t) => t.lower)).toEqual(['terrible', 'service', 'bad', 'bàd', 'fail', '!']);
    expect(tokens.map((t) => t.shown)).toEqual(['ｔｅｒｒｉｂｌｅ', 's\u200bervice', '𝐛𝐚𝐝', 'bа̀d', 'ｆａｉｌ', '！']);
    // a bidi override in a word is read past, and not shown: it would reorder the explanation
    const rlo = 'terr\u202eible service';
    expect(verdict(analyzer.analyze(rlo))).toEqual(verdict(analyzer.analyze('terrible service')));
    expect(analyzer.analyze(rlo).explanation.map((e) => e.token).join(' ')).not.toMatch(/\u202e/);
  });

  it('gives every token its span in the text', () => {
    for (const t of ["don’t stop :) @brand #fail https://x.io 😡!! — ok", ...sharedTexts({ every: 997 })]) {
      const spans: number[] = [];
      const tokens = tokenize(t, spans);
      expect(tokens).toEqual(tokenize(t));
      tokens.forEach((tok, k) => {
        const s = t.slice(spans[2 * k], spans[2 * k + 1]);
        expect(s === tok.text ? s : s.replace(/’/g, "'"), t).toBe(tok.text);
      });
    }
  });

  it('takes linear time on 100 kB of hostile text', () => {
    const K = 100_000;
    const inputs: Record<string, string> = {
      zalgo: ('a' + '\u0301\u0302\u0303\u0304'.repeat(5)).repeat(K / 21),
      'a letter and 100,000 marks': 'a' + '\u0301'.repeat(K),
      'marks that compose': 'a\u0301'.repeat(K / 2),
      'one run of invisibles between letters': 'a' + '\u200b'.repeat(K) + 'b',
      'invisibles in one word': 'ab\u200b'.repeat(K / 3),
      'full-width': 'ｈｅｌｌｏ！'.repeat(K / 6),
      'mathematical bold': '𝐛𝐚𝐝 '.repeat(K / 7),
      'one word of Cyrillic and Latin': 'аb'.repeat(K / 2),
      ligatures: 'ﬃ'.repeat(K),
      'Greek in NFD': 'Ό'.normalize('NFD').repeat(K / 2),
      'lone surrogates between marks': 'a\ud800\u0301'.repeat(K / 3),
    };
    analyzer.analyze('warm up: ｂａｄ b\u200bad');
    // the language detector's table is built at start-up in the service (1.3-1.5 s), not inside the timed call
    warmLanguageDetector();
    for (const [name, text] of Object.entries(inputs)) {
      // CPU time: the wall clock of a loaded machine is not the analyzer's cost
      const { ms, value: a } = cpuMs(() => analyzer.analyze(text));
      expect(ms, name).toBeLessThan(3_000);
      expect(Number.isFinite(a.score), name).toBe(true);
    }
    // lone surrogates survive folding
    expect(foldText('a\ud800\u0301b\u200bc').text).toBe('a\ud800\u0301bc');
  });
});

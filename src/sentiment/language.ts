// Language detection with eld (Efficient Language Detector, n-gram based, 60 languages).
// Chosen over tinyld and franc-min: on 2,000 English tweets it was right 99.7% of the time
// (tinyld 93.8-96.4%, franc-min 94.8%) and ran about 30,000 texts/s (the others 4,500-6,000/s).
import { NgramTable } from './ngram-table';
import { type Token, TOKEN_WORD } from './sentiment.engine';

// Script before n-grams. Text mostly in a script English is never written in (kana, Hangul, Han,
// Arabic, Cyrillic …) is not English however short it is; below 20 letters it was `und` and the
// English model scored it ("最悪のサービスです。返金してください": negative, a complaint, from
// hashing words it never saw). The rule, over the letters of the detection window (the first
// DETECTION_WINDOW characters, which eld reads too): emoji, digits, punctuation, marks, links,
// @mentions and hashtags count for nothing, nor do invisible (default-ignorable) letters such as
// the Hangul fillers; the analyzer passes the folded text (./text-fold.ts), so full-width and
// mathematical Latin letters count as Latin, as do letters of no script (Common):
// - a letter of an alphabet or abjad (Latin, Cyrillic, Greek, Arabic, Hebrew …) counts 1, one
//   that stands for a syllable or a word (Han, kana, Hangul, Indic and South-East Asian scripts,
//   Ethiopic) 2;
// - letters of other scripts than Latin count only from writing: not from a word mixing scripts
//   that share no words ("ಠ益ಠ" of a kaomoji; Han goes with kana and Hangul), and a one-letter word
//   ("ツ" in "¯\_(ツ)_/¯", "ω", "Д") only when the text has a longer word in such a script;
// - when those letters weigh more than the Latin letters, the text is in the heaviest of those
//   scripts: its language is eld's answer when eld calls it reliable and writes that language in
//   that script (Han: zh, ja; Arabic: ar, fa, ur, ku; Cyrillic: ru, uk, be, bg, sr; Devanagari:
//   hi, mr), else the script's own (Han with kana: ja; Han alone: zh; Hangul: ko; Arabic: ar;
//   Cyrillic: ru; Hebrew: he; Thai: th; Greek: el; Devanagari: hi; … see SCRIPTS; a script not
//   listed: `mis`, ISO 639's "uncoded languages");
// - else as before: `und` under 20 letters, `en` when plainly English, else eld, whose answer
//   counts only when it is a language written in Latin letters (code-mixed text such as Hindi
//   with more English than Devanagari is read by the English model, as "Terrible service 最悪").
// So a post with a real English part ("Terrible service 最悪", "my order 注文番号 123 never
// arrived") is still read by the English model, and one character of another script added to an
// English complaint cannot take it out of the model's hands: it weighs at most 2, the shortest
// complaint word 3. Without eld a script's own language is the answer. The cost is one look-up
// per character of the window's words (a table, filled on first sight of a code point).
// The rule also overrules a declared language written in Latin letters ("en" stamped by a source
// on everything, Japanese included): see detectLanguage.
/** Texts with fewer letters than this get `und`: n-gram detectors guess wildly on "ok thx". */
export const MIN_LETTERS_FOR_DETECTION = 20;
/** Only the start of a long text is examined; language rarely changes and this bounds the cost. */
const DETECTION_WINDOW = 400;

let table: NgramTable | null | undefined;

/** eld's database as typed arrays (./ngram-table.ts), built on first use; null without eld. */
function loadTable(): NgramTable | null {
  if (table === undefined) table = NgramTable.load();
  return table;
}

/** True when the eld package is installed and loads; without it every text is `und`. */
export function languageDetectorAvailable(): boolean {
  return loadTable() !== null;
}

/**
 * Builds the detector's table now rather than at the first text that is not plainly English
 * (a synchronous build of about 0.4 s, over a second on a busy machine, that would otherwise
 * stall that text's batch and everything else on the event loop). Returns whether the detector
 * is there and how long the build took (0 when it was built already).
 */
export function warmLanguageDetector(): { available: boolean; ms: number } {
  const t0 = performance.now();
  const built = table !== undefined;
  const available = loadTable() !== null;
  return { available, ms: built ? 0 : Math.round(performance.now() - t0) };
}

/**
 * Normalises a declared language tag to its ISO 639-1 primary subtag ("en-US" -> "en"), or
 * returns null when the tag is empty or malformed.
 */
export function normalizeLanguageTag(tag: string | null | undefined): string | null {
  if (!tag) return null;
  // Trailing white space trimmed first: `/^\s*([A-Za-z]{2,3})(?:[-_].*)?\s*$/` read the same tags,
  // but tried every end of `.*` against the white space after it, quadratic in the tag's length
  // (analyzeText(lang:) takes any string: 100 kB of it held the event loop 7 s).
  const m = /^\s*([A-Za-z]{2,3})(?:[-_].*)?$/.exec(tag.trimEnd());
  return m ? m[1].toLowerCase() : null;
}

// Words that are English and nothing else among the languages eld knows in Latin script.
// Left out on purpose: "is", "was", "of", "in", "a", "to", "do", "me", "he", "my", "we", "for",
// "all", "just", "will", "has", "her", "at", which Dutch, German, Spanish, Polish or the
// Scandinavian languages also use.
const ENGLISH_MARKERS = new Set([
  'the', 'and', 'you', 'your', 'this', 'that', 'with', 'have', 'were', 'are', 'what', "i'm", 'im', "don't",
  'dont', "it's", 'they', 'their', 'would', 'been', 'from', 'but', 'not', "can't", 'cant', 'be', 'our', 'can',
  'if', 'when', 'how', 'why', 'who', 'about', 'get', 'got', 'does', 'did', 'should', 'could', 'there', 'which',
  'him', 'she', 'it', 'its', 'like', 'really', 'thanks', 'please', 'love', 'u', 'his', 'them', 'then', 'than',
  'some', 'more', 'after', 'first', 'still', 'only', 'want', 'need', 'know', 'think', 'make', 'going', 'back',
  'year', 'week', 'weekend', 'day', 'night', 'tonight', 'today', 'tomorrow', 'now', 'out', 'off', 'up', 'new',
  'one', 'game', 'watch', 'people', 'because', 'good', 'great', 'best', 'happy', 'monday', 'tuesday',
  'wednesday', 'thursday', 'friday', 'saturday', 'sunday', "haven't", "won't", "here's", "i've", "i'll",
  'wait', 'hope', 'win', 'let', 'order', 'service', 'customer', 'help', 'never', 'again',
  // Frequent in English posts that miss the words above (counted on the training split of the
  // sentiment sets), and English only: not "also", "over", "even", "last", "time", "had", "most",
  // "here", "link", "by", "show", "party", "news", "video", which other languages spell alike.
  'very', 'today', 'movie', 'said', 'says', 'while', 'another', 'before', 'through', 'better', 'without',
  'every', 'right', 'look', 'these', 'yet', 'already', 'being', 'where', "that's", 'years', 'little',
  'other', 'much', 'down', 'made', 'life', 'world', 'work', 'any', 'into', 'anyone', 'watching', 'getting',
  'coming', 'awesome', 'may', 'well',
]);
const WORD_RE = /\p{L}+(?:['’]\p{L}+)?/gu;

/** Languages of eld's database written in Latin letters (eld's `sr` and `ku` are taken as either). */
const LATIN_LANGUAGES: ReadonlySet<string> = new Set(
  'az ca cs da de en es et eu fi fr hr hu is it ku lt lv ms nl no pl pt ro sk sl sq sr sv tl tr vi yo'.split(' '),
);
/**
 * Declared languages the script may overrule: those written in Latin letters (English, which the
 * model reads, and the others a model could be given) and `und`, which declares nothing. A source
 * that stamps `en` on everything had Japanese or Arabic complaints scored by the English model.
 * A declared language written in another script ("ja" on English text) still wins: it is no
 * reason to hand the text to the English model, and a source that says so may know better.
 */
const OVERRULED_BY_SCRIPT: ReadonlySet<string> = new Set([...LATIN_LANGUAGES, 'und']);

interface Script {
  re: RegExp;
  /** the language a text in this script gets when eld cannot tell */
  lang: string;
  /** the languages eld tells apart in this script; absent: eld is not asked */
  eld?: ReadonlySet<string>;
  /** languages of {@link OVERRULED_BY_SCRIPT} also written in this script beside those of `eld`: declared, they stand */
  alsoDeclared?: ReadonlySet<string>;
  /**
   * what one letter counts for: 1 in an alphabet or an abjad; 2 where a letter stands for a
   * syllable or a word (Han, kana, Hangul, the Indic and South-East Asian scripts, whose vowel
   * signs are marks, Ethiopic)
   */
  weight: number;
}

/** Scripts English is never written in, each with its language. Latin, Common and Inherited letters are Latin here. */
const SCRIPTS: readonly Script[] = [
  { re: /[\p{Script=Han}\p{Script=Bopomofo}]/u, lang: 'zh', eld: new Set(['zh', 'ja']), weight: 2 },
  { re: /[\p{Script=Hiragana}\p{Script=Katakana}]/u, lang: 'ja', weight: 2 },
  { re: /\p{Script=Hangul}/u, lang: 'ko', weight: 2 },
  // Azerbaijani in Iran and Malay in Jawi are written in Arabic letters, Azerbaijani once in Cyrillic
  { re: /\p{Script=Arabic}/u, lang: 'ar', eld: new Set(['ar', 'fa', 'ur', 'ku']), alsoDeclared: new Set(['az', 'ms']), weight: 1 },
  { re: /\p{Script=Cyrillic}/u, lang: 'ru', eld: new Set(['ru', 'uk', 'be', 'bg', 'sr']), alsoDeclared: new Set(['az']), weight: 1 },
  { re: /\p{Script=Devanagari}/u, lang: 'hi', eld: new Set(['hi', 'mr']), weight: 2 },
  { re: /\p{Script=Hebrew}/u, lang: 'he', weight: 1 },
  { re: /\p{Script=Thai}/u, lang: 'th', weight: 2 },
  { re: /\p{Script=Greek}/u, lang: 'el', weight: 1 },
  { re: /\p{Script=Bengali}/u, lang: 'bn', weight: 2 },
  { re: /\p{Script=Gurmukhi}/u, lang: 'pa', weight: 2 },
  { re: /\p{Script=Gujarati}/u, lang: 'gu', weight: 2 },
  { re: /\p{Script=Oriya}/u, lang: 'or', weight: 2 },
  { re: /\p{Script=Tamil}/u, lang: 'ta', weight: 2 },
  { re: /\p{Script=Telugu}/u, lang: 'te', weight: 2 },
  { re: /\p{Script=Kannada}/u, lang: 'kn', weight: 2 },
  { re: /\p{Script=Malayalam}/u, lang: 'ml', weight: 2 },
  { re: /\p{Script=Sinhala}/u, lang: 'si', weight: 2 },
  { re: /\p{Script=Lao}/u, lang: 'lo', weight: 2 },
  { re: /\p{Script=Khmer}/u, lang: 'km', weight: 2 },
  { re: /\p{Script=Myanmar}/u, lang: 'my', weight: 2 },
  { re: /\p{Script=Tibetan}/u, lang: 'bo', weight: 2 },
  { re: /\p{Script=Georgian}/u, lang: 'ka', weight: 1 },
  { re: /\p{Script=Armenian}/u, lang: 'hy', weight: 1 },
  { re: /\p{Script=Ethiopic}/u, lang: 'am', weight: 2 },
  { re: /\p{Script=Thaana}/u, lang: 'dv', weight: 2 },
  { re: /\p{Script=Mongolian}/u, lang: 'mn', weight: 1 },
];
/** not a letter that counts: digits, marks, symbols, invisible letters */
const S_NONE = 0;
const S_LATIN = 1;
const S_FIRST = 2;
const S_HAN = S_FIRST;
const S_KANA = S_FIRST + 1;
const S_HANGUL = S_FIRST + 2;
/** a letter of a script SCRIPTS does not list, nor Latin, Common or Inherited */
const S_OTHER = S_FIRST + SCRIPTS.length;
/** flags beside the class: a letter, digit or mark (goes on a word), white space */
const WORDISH = 0x40;
const SPACE = 0x80;
const CLASS = 0x3f;
const LETTER = /\p{L}/u;
const WORD_PART = /[\p{L}\p{N}\p{M}]/u;
const WHITE = /\s/u;
const INVISIBLE = /\p{Default_Ignorable_Code_Point}/u;
const LATIN_SIDE = /[\p{Script=Latin}\p{Script=Common}\p{Script=Inherited}]/u;

/** Every letter is below this (the last, Han, in plane 3); above are tags, selectors, private use. */
const CACHED = 0x40000;
// The class and flags of each code point below CACHED, 1 more: 0 is "not seen yet". An array
// (256 kB, off the heap), so no text of new letters, as 200 rare Han of plane 2, costs 27 tests each.
const info = new Uint8Array(CACHED);

function classify(cp: number): number {
  const s = String.fromCodePoint(cp);
  if (WHITE.test(s)) return SPACE;
  if (!WORD_PART.test(s) || INVISIBLE.test(s)) return S_NONE;
  if (!LETTER.test(s)) return WORDISH | S_NONE;
  for (let k = 0; k < SCRIPTS.length; k++) if (SCRIPTS[k]!.re.test(s)) return WORDISH | (S_FIRST + k);
  return WORDISH | (LATIN_SIDE.test(s) ? S_LATIN : S_OTHER);
}

/** ASCII, looked up without a call */
const ASCII_INFO = Uint8Array.from({ length: 0x80 }, (_, c) =>
  (c >= 97 && c <= 122) || (c >= 65 && c <= 90) ? WORDISH | S_LATIN : c >= 48 && c <= 57 ? WORDISH | S_NONE : c === 32 || (c >= 9 && c <= 13) ? SPACE : S_NONE,
);

/** The class and flags of a code point beyond ASCII. */
function infoOf(cp: number): number {
  if (cp >= CACHED) return classify(cp);
  const c = info[cp]!;
  if (c !== 0) return c - 1;
  const v = classify(cp);
  info[cp] = v + 1;
  return v;
}

/** Letters of the window by script class (S_LATIN, S_FIRST + k, S_OTHER); one detection at a time. */
const counts = new Int32Array(S_OTHER + 1);
/** one-letter words by script class, counted only beside a longer word of another script than Latin */
const lone = new Int32Array(S_OTHER + 1);

/** Han goes with kana (Japanese) and with Hangul (Korean); no other two scripts share a word. */
function together(a: number, b: number): boolean {
  return (a === S_HAN && (b === S_KANA || b === S_HANGUL)) || (b === S_HAN && (a === S_KANA || a === S_HANGUL));
}

/**
 * One pass over the code points of the window: the letters of its words by script into
 * {@link counts}. A word is a run of letters, digits and marks (a vowel sign does not split a
 * Hindi word, as it splits the analyzer's tokens); links, @mentions and hashtags are no words,
 * as they are no word tokens. Letters of other scripts than Latin count only from a word that
 * is writing: not one mixing scripts that share no words ("ಠ益ಠ"), and a word of one such letter
 * ("ツ", "ω", "Д", "ಠ" of a kaomoji) only beside a longer one (see {@link dominantScript}).
 */
function countScripts(sample: string): void {
  counts.fill(0);
  lone.fill(0);
  const n = sample.length;
  let first = -1;
  let second = -1;
  let n1 = 0;
  let n2 = 0;
  let mixed = false;
  let inWord = false;
  let latin = 0;
  /** 1: in a link, to the next white space; 2: in a mention or hashtag, to the next non-word character */
  let skip = 0;
  for (let i = 0; i <= n; ) {
    let v = SPACE;
    let c = 0;
    if (i < n) {
      c = sample.charCodeAt(i);
      if (c < 0x80) {
        v = ASCII_INFO[c]!;
        i++;
      } else {
        const cp = c >= 0xd800 && c <= 0xdbff && i + 1 < n ? sample.codePointAt(i)! : c;
        v = infoOf(cp);
        i += cp > 0xffff ? 2 : 1;
      }
    } else i++;
    if (skip !== 0) {
      if (skip === 1 ? (v & SPACE) === 0 : (v & WORDISH) !== 0 || c === 95 /* _ */ || c === 46 /* . */) continue;
      skip = 0;
    }
    if ((v & WORDISH) !== 0) {
      if (!inWord) {
        // where the tokenizer reads a link (https?://, www.)
        if ((c === 104 && (sample.startsWith('ttp://', i) || sample.startsWith('ttps://', i))) || (c === 119 && sample.startsWith('ww.', i))) {
          skip = 1;
          continue;
        }
        inWord = true;
      }
      const k = v & CLASS;
      if (k === S_LATIN) latin++;
      else if (k === S_NONE) continue;
      else if (first < 0 || k === first) {
        first = k;
        n1++;
      } else if (second < 0 || k === second) {
        second = k;
        n2++;
      } else mixed = true;
      continue;
    }
    // the end of a word
    if (inWord) {
      if (first >= 0 && !mixed && (second < 0 || together(first, second))) {
        if (n1 + n2 === 1) lone[first]++;
        else {
          counts[first] += n1;
          if (second >= 0) counts[second] += n2;
        }
      }
      inWord = false;
      first = second = -1;
      n1 = n2 = 0;
      mixed = false;
    }
    if (c === 64 /* @ */ || c === 35 /* # */) skip = 2;
  }
  counts[S_LATIN] = latin;
}

/**
 * The script rule over {@link counts}: all letters, and the class the text is written in
 * (S_LATIN when the Latin letters weigh as much as the others).
 */
function dominantScript(): { letters: number; script: number } {
  const latin = counts[S_LATIN]!;
  let letters = latin;
  let foreign = 0;
  let best = S_LATIN;
  let bestWeight = 0;
  let words = false;
  for (let k = S_FIRST; k <= S_OTHER && !words; k++) words = counts[k]! > 0;
  for (let k = S_FIRST; k <= S_OTHER; k++) {
    const c = counts[k]! + (words ? lone[k]! : 0);
    if (c === 0) continue;
    letters += c;
    const w = c * (k === S_OTHER ? 1 : SCRIPTS[k - S_FIRST]!.weight);
    foreign += w;
    if (w > bestWeight) {
      bestWeight = w;
      best = k;
    }
  }
  // Japanese: Han with kana beside it
  if (best === S_HAN && counts[S_KANA]! + (words ? lone[S_KANA]! : 0) > 0) best = S_KANA;
  return { letters, script: foreign > latin ? best : S_LATIN };
}

/**
 * At least three words and an eighth of all, or two words and a quarter of all, are English-only
 * function words. A fast path, not a detector: everything else goes to eld, and skipping the
 * n-gram model for the common case keeps the analyzer above 20,000 posts/s on one core.
 */
function plainlyEnglish(hits: number, words: number): boolean {
  return (hits >= 3 && hits * 8 >= words) || (hits >= 2 && hits * 4 >= words);
}

/** Whether the sample is plainly English ({@link plainlyEnglish}), its words found with WORD_RE. */
function englishText(sample: string): boolean {
  let words = 0;
  let hits = 0;
  WORD_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = WORD_RE.exec(sample)) !== null) {
    words++;
    if (ENGLISH_MARKERS.has(m[0].toLowerCase().replace('’', "'"))) hits++;
  }
  return plainlyEnglish(hits, words);
}

/** Words a 400-character window holds, about: the token scan looks at no more. */
const DETECTION_WORDS = 80;

/**
 * {@link englishText} over the analyzer's tokens (already split and lower-cased), so a short post
 * is not split into words twice: the same rule, over the first DETECTION_WORDS words.
 */
function englishTokens(tokens: readonly Token[]): boolean {
  let words = 0;
  let hits = 0;
  for (let i = 0; i < tokens.length && words < DETECTION_WORDS; i++) {
    const t = tokens[i]!;
    if (t.kind !== TOKEN_WORD) continue;
    words++;
    if (ENGLISH_MARKERS.has(t.lower)) hits++;
  }
  return plainlyEnglish(hits, words);
}

/**
 * The language of `text` as an ISO 639-1 code (`mis` for a script without one listed), or `und`
 * when it cannot be told with confidence. Never throws. Text mostly in a script other than Latin
 * gets that script's language, however short (the rule at the top of this file); other text gets
 * `und` with fewer than {@link MIN_LETTERS_FOR_DETECTION} letters, for detections eld itself marks
 * unreliable or in a language not written in Latin letters, and when the detector is not
 * installed. A declared language wins over detection, but for one: a language written in Latin
 * letters (or `und`) declared for text that the same rule finds written in a listed script it is
 * not written in ("en" on Japanese) gets the script's language, as if nothing had been declared.
 * Latin, mixed and ambiguous text (emoji, digits, links, a lone character, more English than the
 * other script) and a text in a script the declared language is written in keep the declaration;
 * so does a text in a script not listed (English is written in Shavian). `tokens` (the
 * analyzer's, of the same text) spares a second split into words.
 */
export function detectLanguage(text: string, declared?: string | null, tokens?: readonly Token[]): string {
  const tag = normalizeLanguageTag(declared);
  if (tag !== null && !OVERRULED_BY_SCRIPT.has(tag)) return tag;
  const sample = text.length > DETECTION_WINDOW ? text.slice(0, DETECTION_WINDOW) : text;
  countScripts(sample);
  const { letters, script } = dominantScript();
  if (script !== S_LATIN) {
    if (script === S_OTHER) return tag ?? 'mis';
    const s = SCRIPTS[script - S_FIRST]!;
    if (tag !== null && (s.eld?.has(tag) === true || s.alsoDeclared?.has(tag) === true)) return tag;
    if (s.eld === undefined) return s.lang;
    const said = eld(sample);
    return said !== null && s.eld.has(said) ? said : s.lang;
  }
  if (tag !== null) return tag;
  if (letters < MIN_LETTERS_FOR_DETECTION) return 'und';
  if (tokens ? englishTokens(tokens) : englishText(sample)) return 'en';
  const said = eld(sample);
  return said !== null && LATIN_LANGUAGES.has(said) ? said : 'und';
}

/** eld's answer when it calls it reliable, else null (also without eld, or if it throws). */
function eld(sample: string): string | null {
  const detector = loadTable();
  if (!detector) return null;
  try {
    const r = detector.detect(sample);
    return r.language && r.reliable ? r.language : null;
  } catch {
    return null;
  }
}

// eld's language detection (the package's "small" database, 60 languages) over typed arrays.
//
// eld holds its database as a JavaScript object: 81,206 n-gram keys, each an object of
// language → score. With it loaded the live heap was 54 MB against 21 MB with this table
// (bench:sentiment), and every major garbage collection of the process marked those objects
// again, whatever the service was doing. Here the same numbers live in a few typed arrays
// (about 3.5 MB, outside the heap the collector traces), and a lookup reads array slots
// instead of walking an object.
//
// Must stay true: detect() answers what eld's own detect() answers (language and isReliable()),
// text for text. ngram-table.spec.ts compares both on every fifth line of ../shared/data and on
// generated strings. The steps below follow eld 2.1's src/languageDetector.js and
// src/LanguageResult.js one for one; what they compute is eld's, not a choice of ours.
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';

interface EldData {
  type: string;
  languages: Record<string, string>;
  ngrams: Record<string, Record<string, number>>;
}

/** What eld's detect() gives, as far as the analyzer uses it. */
export interface Detection {
  /** ISO 639-1 code, or '' when no n-gram of the text is known */
  language: string;
  /** eld's `isReliable()` with its default threshold */
  reliable: boolean;
}

/** eld subtracts this from every stored score to make its database smaller, and adds it back. */
const BASE_NGRAM_SCORE = 53;
/** eld: "handpicked to scale raw scores values" */
const SCALE = 25;
const RELIABLE_RATIO = 0.75;
const EMPTY = 0;

export class NgramTable {
  private readonly mask: number;
  /** the packed key of each slot (chars 0-3) */
  private readonly keyLo: Uint32Array;
  /** chars 4-5 and the length (never 0 in a used slot) */
  private readonly keyHi: Uint32Array;
  /** the slot's scores: entries start .. start + count */
  private readonly start: Uint32Array;
  private readonly count: Uint8Array;
  private readonly entryLang: Uint8Array;
  private readonly entryScore: Uint8Array;
  private readonly scores: Float64Array;
  private readonly codes: string[];
  private readonly avg: Float64Array;

  private constructor(
    data: EldData,
    private readonly separators: RegExp,
    private readonly dictionary: readonly string[],
    avgScore: Record<string, number>,
  ) {
    const languages = Object.keys(data.languages).length;
    this.codes = Array.from({ length: languages }, (_, i) => data.languages[i]!);
    this.avg = Float64Array.from(this.codes, (c) => avgScore[c] ?? NaN);
    this.scores = new Float64Array(languages);
    const keys = Object.keys(data.ngrams);
    let size = 1;
    while (size < keys.length * 3) size <<= 1;
    this.mask = size - 1;
    this.keyLo = new Uint32Array(size);
    this.keyHi = new Uint32Array(size);
    this.start = new Uint32Array(size);
    this.count = new Uint8Array(size);
    let entries = 0;
    for (const k of keys) entries += Object.keys(data.ngrams[k]!).length;
    this.entryLang = new Uint8Array(entries);
    this.entryScore = new Uint8Array(entries);
    let e = 0;
    for (const k of keys) {
      const packed = pack(k);
      if (packed === null) throw new Error(`eld n-gram ${JSON.stringify(k)} does not fit the table`);
      let slot = hash(packed[0], packed[1]) & this.mask;
      while (this.keyHi[slot] !== EMPTY) slot = (slot + 1) & this.mask;
      this.keyLo[slot] = packed[0];
      this.keyHi[slot] = packed[1];
      this.start[slot] = e;
      const scores = data.ngrams[k]!;
      for (const lang in scores) {
        const score = scores[lang]!;
        const l = Number(lang);
        if (!Number.isInteger(score) || score < 0 || score > 255 || !(l >= 0 && l < languages)) throw new Error(`eld n-gram ${JSON.stringify(k)} has a score the table cannot hold`);
        this.entryLang[e] = l;
        this.entryScore[e] = score;
        e++;
      }
      this.count[slot] = e - this.start[slot]!;
    }
  }

  /**
   * Builds the table from the installed eld package (its files read, not imported: an imported
   * module keeps its database alive for the life of the process). null when eld is not installed
   * or its files are not the ones this reads.
   */
  static load(): NgramTable | null {
    for (const dir of require.resolve.paths('eld') ?? []) {
      const root = path.join(dir, 'eld', 'src');
      if (!fs.existsSync(path.join(root, 'ngrams', 'small.js'))) continue;
      try {
        const data = exported(fs.readFileSync(path.join(root, 'ngrams', 'small.js'), 'utf8'), 'ngramsData') as EldData;
        // small modules without imports of their own: required, as eld's entry would import them
        const { separators } = require(path.join(root, 'regexPatterns.js')) as { separators: RegExp };
        const { dictionary } = require(path.join(root, 'dictionary.js')) as { dictionary: string[] };
        const { avgScore } = require(path.join(root, 'avgScore.js')) as { avgScore: Record<string, number> };
        return new NgramTable(data, separators, dictionary, avgScore);
      } catch {
        return null;
      }
    }
    return null;
  }

  /** eld's detect(text): the most likely language and whether eld calls it reliable. */
  detect(text: string): Detection {
    text = text.substring(0, 1000);
    // textProcessor
    this.separators.lastIndex = 0;
    const words = this.utf8Words(text.replace(this.separators, ' ').trim().toLowerCase());
    // getByteNgrams: a set of 4-byte n-grams, stride 3, word edges marked by spaces
    const ngrams = new Set<string>();
    for (const word of words) {
      let len = word.length;
      if (len > 70) len = 70;
      let j: number;
      for (j = 0; j + 4 < len; j += 3) ngrams.add((j === 0 ? ' ' : '') + word.substring(j, j + 4));
      ngrams.add((j === 0 ? ' ' : '') + word.substring(len !== 3 ? len - 4 : 0) + ' ');
    }
    // calculateScores
    const scores = this.scores;
    scores.fill(0);
    for (const ngram of ngrams) {
      const slot = this.find(ngram);
      if (slot < 0) continue;
      const end = this.start[slot]! + this.count[slot]!;
      for (let e = this.start[slot]!; e < end; e++) scores[this.entryLang[e]!] += this.entryScore[e]! + BASE_NGRAM_SCORE;
    }
    // getMaxLang: the first language with the highest positive score
    let best = -1;
    let bestScore = 0;
    for (let l = 0; l < scores.length; l++) {
      if (scores[l]! > 0 && scores[l]! > bestScore) {
        bestScore = scores[l]!;
        best = l;
      }
    }
    if (best < 0) return { language: '', reliable: false };
    return { language: this.codes[best]!, reliable: this.reliable(best, ngrams.size) };
  }

  /**
   * LanguageResult.isReliable() with its default ratio, over orderAndScale's list. eld compares
   * the top score with the second entry's language index (`results[1][0]`), not its score; kept
   * as it is, since the promise is eld's answer.
   */
  private reliable(best: number, numNgrams: number): boolean {
    const scores = this.scores;
    // orderAndScale: [language, scaled score] of the positive scores, highest first (a stable
    // sort, so equal scores keep language order). Only its first two entries are read: kept in
    // one pass, an entry displacing another only when strictly higher, as the stable sort has it.
    let firstLang = -1;
    let firstScore = 0;
    let secondLang = -1;
    let secondScore = 0;
    for (let l = 0; l < scores.length; l++) {
      if (!(scores[l]! > 0)) continue;
      const ngramScore = scores[l]! / numNgrams;
      const scaled = ngramScore / (ngramScore + SCALE);
      if (firstLang < 0 || scaled > firstScore) {
        secondLang = firstLang;
        secondScore = firstScore;
        firstLang = l;
        firstScore = scaled;
      } else if (secondLang < 0 || scaled > secondScore) {
        secondLang = l;
        secondScore = scaled;
      }
    }
    if (firstLang < 0 || numNgrams < 3) return false;
    const nextScore = secondLang >= 0 ? secondLang : 0;
    // the average score of the detected language (getMaxLang's), as eld looks it up
    return !(this.avg[best]! * RELIABLE_RATIO > firstScore || 0.01 > Math.abs(firstScore - nextScore));
  }

  /** The slot of an n-gram, or -1 when the database does not have it. */
  private find(ngram: string): number {
    const packed = pack(ngram);
    if (packed === null) return -1;
    let slot = hash(packed[0], packed[1]) & this.mask;
    for (;;) {
      const hi = this.keyHi[slot]!;
      if (hi === EMPTY) return -1;
      if (hi === packed[1] && this.keyLo[slot] === packed[0]) return slot;
      slot = (slot + 1) & this.mask;
    }
  }

  /** strToUtf8Bytes: words of the text as UTF-8 bytes, one character per byte through eld's dictionary. */
  private utf8Words(str: string): string[] {
    const dictionary = this.dictionary;
    let encoded = '';
    const words: string[] = [];
    let countBytes = 0;
    const cutAfter = 350;
    const enforceCutAfter = 380;
    for (let ii = 0; ii < str.length; ii++) {
      let charCode = str.charCodeAt(ii);
      if (charCode < 0x80) {
        if (charCode === 32) {
          if (encoded !== '') {
            words.push(encoded);
            encoded = '';
          }
          if (countBytes > cutAfter) break;
        } else {
          encoded += str[ii];
        }
        countBytes++;
      } else if (charCode < 0x800) {
        encoded += dictionary[0xc0 | (charCode >> 6)]! + dictionary[0x80 | (charCode & 0x3f)]!;
        countBytes += 2;
      } else if (charCode < 0xd800 || charCode >= 0xe000) {
        encoded += dictionary[0xe0 | (charCode >> 12)]! + dictionary[0x80 | ((charCode >> 6) & 0x3f)]! + dictionary[0x80 | (charCode & 0x3f)]!;
        countBytes += 3;
      } else {
        ii++;
        charCode = 0x10000 + (((charCode & 0x3ff) << 10) | (str.charCodeAt(ii) & 0x3ff));
        encoded +=
          dictionary[0xf0 | (charCode >> 18)]! + dictionary[0x80 | ((charCode >> 12) & 0x3f)]! + dictionary[0x80 | ((charCode >> 6) & 0x3f)]! + dictionary[0x80 | (charCode & 0x3f)]!;
        countBytes += 4;
      }
      if (countBytes > enforceCutAfter) break;
    }
    if (encoded !== '') words.push(encoded);
    return words;
  }
}

const packed2: [number, number] = [0, 0];

/**
 * An n-gram of at most 6 characters, each below 256 (what eld's byte strings are), as two
 * numbers: characters 0-3, then characters 4-5 and the length. null for anything else (not in
 * the database, whose keys all fit). Reuses one pair: read it before the next call.
 */
function pack(s: string): [number, number] | null {
  const n = s.length;
  if (n === 0 || n > 6) return null;
  let lo = 0;
  let hi = n << 16;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) return null;
    if (i < 4) lo |= c << (8 * i);
    else hi |= c << (8 * (i - 4));
  }
  packed2[0] = lo >>> 0;
  packed2[1] = hi;
  return packed2;
}

function hash(lo: number, hi: number): number {
  let h = Math.imul(lo ^ (lo >>> 16), 0x45d9f3b);
  h = Math.imul(h ^ hi ^ (h >>> 16), 0x45d9f3b);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The value of `export const <name> = <literal>` in an ES module's source, evaluated as a
 * literal in an empty context (no globals, no imports), so the module is never loaded.
 */
function exported(source: string, name: string): unknown {
  const marker = `export const ${name} =`;
  const at = source.indexOf(marker);
  if (at < 0) throw new Error(`no ${name} in the module`);
  return vm.runInNewContext(`(${source.slice(at + marker.length).trim().replace(/;\s*$/, '')})`, Object.create(null), { timeout: 10_000 });
}

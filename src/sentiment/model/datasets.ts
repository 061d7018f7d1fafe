// Loads the public labelled sets in `../shared/data/sentiment-train` and the dev sets in
// `../shared/data/sentiment` into one shape, with a fixed split per text. Used by training and
// evaluation only; the service never reads these files.
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';

export const NEGATIVE = 0;
export const NEUTRAL = 1;
export const POSITIVE = 2;
export type Polarity = 0 | 1 | 2;

export interface Example {
  text: string;
  /** short set name, e.g. `semeval`, `acl2019` */
  set: string;
  /** three-class label; two-class sets give only NEGATIVE/POSITIVE */
  sentiment?: Polarity;
  /** complaint label (complaint sets only) */
  complaint?: 0 | 1;
  /** human rating on -4..4 (VADER's snippet sets) */
  rating?: number;
  /** the text normalised for duplicate detection */
  key: string;
  /** 0..9 from a hash of `key`: 0 test, 1 validation, 2..9 training */
  bucket: number;
  /** true for messages customers wrote to a company */
  toCompany?: boolean;
}

export const TEST_BUCKET = 0;
export const VALIDATION_BUCKET = 1;

/**
 * The key that decides a text's split: lower case, without URLs, @mentions, a leading "RT",
 * HTML entities, punctuation and repeated letters. Retweets, copies with another link and
 * re-encoded copies therefore share a key, so duplicates never straddle two splits.
 */
export function dedupeKey(text: string): string {
  return text
    .toLowerCase()
    .replace(/\\u([0-9a-f]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
    .replace(/&(?:amp|lt|gt|quot|#39);/g, ' ')
    .replace(/https?:\/\/\S+|www\.\S+/g, ' ')
    .replace(/(^|\s)rt\s+/g, ' ')
    .replace(/@[\w.]+/g, ' ')
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .replace(/(\p{L})\1{2,}/gu, '$1$1')
    .trim();
}

/** FNV-1a of the key, so the split of a text never depends on file order or on other sets. */
export function bucketOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  h ^= h >>> 13;
  h = Math.imul(h, 0x5bd1e995);
  h ^= h >>> 15;
  return (h >>> 0) % 10;
}

function decodeSemEval(text: string): string {
  return text.replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))).replace(/\\"/g, '"');
}

function make(text: string, set: string, extra: Partial<Example>): Example {
  const key = dedupeKey(text);
  return { text, set, key, bucket: bucketOf(key), ...extra };
}

function readCsv(file: string, opts: { encoding?: BufferEncoding; delimiter?: string; columns?: boolean } = {}): string[][] | Record<string, string>[] {
  const raw = fs.readFileSync(file, opts.encoding ?? 'utf8');
  return parse(raw, {
    columns: opts.columns ?? false,
    delimiter: opts.delimiter ?? ',',
    relax_quotes: true,
    relax_column_count: true,
    skip_empty_lines: true,
    bom: true,
  }) as string[][] | Record<string, string>[];
}

const POL: Record<string, Polarity> = { negative: NEGATIVE, neutral: NEUTRAL, positive: POSITIVE };

/** Keeps the first example of each key within a set: repeated annotations and retweets count once. */
function dedupe(examples: Example[]): Example[] {
  const seen = new Set<string>();
  const out: Example[] = [];
  for (const e of examples) {
    if (!e.key || seen.has(e.key)) continue;
    seen.add(e.key);
    out.push(e);
  }
  return out;
}

export interface Corpus {
  /** every set by name, deduplicated within itself */
  sets: Map<string, Example[]>;
  /** keys of the TweetEval validation tweets: never trained on */
  tweetEvalKeys: Set<string>;
}

export function defaultDataDir(): string {
  return path.resolve(process.env.EARSHOT_DATA_DIR ?? path.join(process.cwd(), '../shared/data'));
}

/** Reads every set. Throws when a file is missing: training on half the data must be noticed. */
export function loadCorpus(dataDir = defaultDataDir()): Corpus {
  const T = path.join(dataDir, 'sentiment-train');
  const S = path.join(dataDir, 'sentiment');
  const sets = new Map<string, Example[]>();

  // TweetEval validation: evaluation only.
  const teText = fs.readFileSync(path.join(S, 'tweeteval_val_text.txt'), 'utf8').split('\n');
  const teLab = fs.readFileSync(path.join(S, 'tweeteval_val_labels.txt'), 'utf8').split('\n');
  const tweeteval: Example[] = [];
  for (let i = 0; i < teText.length; i++) {
    const l = teLab[i]?.trim();
    if (!teText[i]?.trim() || l === undefined || l === '') continue;
    tweeteval.push(make(teText[i]!, 'tweeteval', { sentiment: Number(l) as Polarity }));
  }
  sets.set('tweeteval', tweeteval);
  const tweetEvalKeys = new Set(tweeteval.map((e) => e.key));

  // SemEval 2013-2016 task 4A (TweetEval's source), plus its SMS and LiveJournal test sets.
  const semeval: Example[] = [];
  const sd = path.join(T, 'semeval2013_2016_task4A_gold');
  for (const f of fs.readdirSync(sd).sort()) {
    if (!/\.(txt|tsv)$/.test(f) || /README/i.test(f)) continue;
    const fourCols = f.endsWith('.tsv');
    for (const line of fs.readFileSync(path.join(sd, f), 'utf8').split('\n')) {
      const cols = line.split('\t');
      const label = (fourCols ? cols[2] : cols[1])?.trim();
      const text = (fourCols ? cols.slice(3) : cols.slice(2)).join(' ').trim();
      const pol = label ? POL[label] : undefined;
      if (pol === undefined || !text) continue;
      semeval.push(make(decodeSemEval(text), 'semeval', { sentiment: pol }));
    }
  }
  sets.set('semeval', dedupe(semeval));

  const sanders: Example[] = [];
  for (const r of readCsv(path.join(T, 'sanders_twitter/full-corpus.csv'), { columns: true }) as Record<string, string>[]) {
    const pol = POL[r.Sentiment];
    if (pol !== undefined && r.TweetText) sanders.push(make(r.TweetText, 'sanders', { sentiment: pol, toCompany: true }));
  }
  sets.set('sanders', dedupe(sanders));

  const sts: Example[] = [];
  for (const r of readCsv(path.join(T, 'sts_gold/sts_gold_tweet.csv'), { columns: true, delimiter: ';' }) as Record<string, string>[]) {
    if (r.tweet) sts.push(make(r.tweet, 'sts_gold', { sentiment: r.polarity === '4' ? POSITIVE : NEGATIVE }));
  }
  sets.set('sts_gold', dedupe(sts));

  const s140: Example[] = [];
  for (const r of readCsv(path.join(T, 'sentiment140_test/testdata.manual.2009.06.14.csv'), { columns: true }) as Record<string, string>[]) {
    const pol = r.polarity === '0' ? NEGATIVE : r.polarity === '2' ? NEUTRAL : r.polarity === '4' ? POSITIVE : undefined;
    if (pol !== undefined && r.text) s140.push(make(r.text, 'sentiment140', { sentiment: pol }));
  }
  sets.set('sentiment140', dedupe(s140));

  const apple: Example[] = [];
  for (const r of readCsv(path.join(T, 'apple_twitter_sentiment_crowdflower/Apple-Twitter-Sentiment-DFE.csv'), { columns: true, encoding: 'latin1' }) as Record<string, string>[]) {
    const pol = r.sentiment === '1' ? NEGATIVE : r.sentiment === '3' ? NEUTRAL : r.sentiment === '5' ? POSITIVE : undefined;
    if (pol !== undefined && r.text) apple.push(make(r.text, 'apple', { sentiment: pol, toCompany: true }));
  }
  sets.set('apple', dedupe(apple));

  const sxsw: Example[] = [];
  for (const r of readCsv(path.join(T, 'brand_product_emotion_sxsw_crowdflower/judge-1377884607_tweet_product_company.csv'), { columns: true, encoding: 'latin1' }) as Record<string, string>[]) {
    const e = r.is_there_an_emotion_directed_at_a_brand_or_product;
    const pol = e === 'Negative emotion' ? NEGATIVE : e === 'Positive emotion' ? POSITIVE : e === 'No emotion toward brand or product' ? NEUTRAL : undefined;
    if (pol !== undefined && r.tweet_text) sxsw.push(make(r.tweet_text, 'sxsw', { sentiment: pol }));
  }
  sets.set('sxsw', dedupe(sxsw));

  const uci: Example[] = [];
  for (const f of ['amazon_cells_labelled.txt', 'yelp_labelled.txt', 'imdb_labelled.txt']) {
    for (const line of fs.readFileSync(path.join(T, 'uci_sentiment_labelled_sentences', f), 'utf8').split('\n')) {
      const m = /^(.*)\t\s*([01])\s*$/.exec(line);
      if (m) uci.push(make(m[1]!.trim(), 'uci', { sentiment: m[2] === '1' ? POSITIVE : NEGATIVE }));
    }
  }
  sets.set('uci', dedupe(uci));

  // Financial PhraseBank: the 75%-agreement sentences (latin-1), news rather than customers.
  const fpb: Example[] = [];
  for (const line of fs.readFileSync(path.join(T, 'financial_phrasebank_v1/Sentences_75Agree.txt'), 'latin1').split(/\r?\n/)) {
    const at = line.lastIndexOf('@');
    const pol = at > 0 ? POL[line.slice(at + 1).trim()] : undefined;
    if (pol !== undefined) fpb.push(make(line.slice(0, at).trim(), 'phrasebank', { sentiment: pol }));
  }
  sets.set('phrasebank', dedupe(fpb));

  // ACL 2019 complaints. X-CI's sentiment column for the same tweets is not used: VADER alone
  // reproduces it (macro-F1 0.89 on its held-out split, against 0.45-0.56 on every other set), so it
  // looks machine-made, and learning it would teach VADER's mistakes.
  const acl: Example[] = [];
  for (const r of readCsv(path.join(T, 'complaints_preotiuc2019/complaints-data.csv')) as string[][]) {
    const [, text, label] = r;
    if (!text || (label !== '0' && label !== '1')) continue;
    acl.push(make(text, 'acl2019', { complaint: label === '1' ? 1 : 0, toCompany: true }));
  }
  sets.set('acl2019', dedupe(acl));

  const fin: Example[] = [];
  for (const r of readCsv(path.join(T, 'xfincorp_financial_complaints/X-FINCORP.csv'), { columns: true }) as Record<string, string>[]) {
    const text = r['Complaint/ Opinion'];
    const c = r['Complaint Label'];
    if (!text || (c !== '0' && c !== '1')) continue;
    const pol = POL[(r.Sentiment ?? '').trim().toLowerCase()];
    fin.push(make(text, 'xfincorp', { complaint: c === '1' ? 1 : 0, ...(pol === undefined ? {} : { sentiment: pol }), toCompany: true }));
  }
  sets.set('xfincorp', dedupe(fin));

  const ces: Example[] = [];
  for (const r of readCsv(path.join(T, 'cesamard_aspect_amazon_reviews/CESAMARD-Aspect_Dataset.csv'), { columns: true }) as Record<string, string>[]) {
    const text = (r.Review_S ?? '').replace(/\\n/g, ' ').replace(/\s+/g, ' ').trim();
    const c = r.Complaint;
    if (!text || (c !== '0' && c !== '1')) continue;
    const pol = r.Sentiment === '0' ? NEGATIVE : r.Sentiment === '1' ? NEUTRAL : r.Sentiment === '2' ? POSITIVE : undefined;
    ces.push(make(text, 'cesamard', { complaint: c === '1' ? 1 : 0, ...(pol === undefined ? {} : { sentiment: pol }) }));
  }
  sets.set('cesamard', dedupe(ces));

  // VADER's rated snippets (-4..4): three classes at ±0.5 for training, the rating for Pearson r.
  for (const [name, file] of [
    ['amazon_snippets', 'amazonReviewSnippets_GroundTruth.txt'],
    ['movie_snippets', 'movieReviewSnippets_GroundTruth.txt'],
    ['nyt_snippets', 'nytEditorialSnippets_GroundTruth.txt'],
  ] as const) {
    const out: Example[] = [];
    for (const line of fs.readFileSync(path.join(S, file), 'utf8').split(/\r?\n/)) {
      const a = line.indexOf('\t');
      const b = line.indexOf('\t', a + 1);
      if (a < 0 || b < 0) continue;
      const rating = Number(line.slice(a + 1, b));
      if (!Number.isFinite(rating)) continue;
      out.push(make(line.slice(b + 1), name, { rating, sentiment: rating >= 0.5 ? POSITIVE : rating <= -0.5 ? NEGATIVE : NEUTRAL }));
    }
    sets.set(name, dedupe(out));
  }

  // Nothing that is a TweetEval validation tweet is ever trained on, whichever set holds it.
  for (const [name, list] of sets) {
    if (name === 'tweeteval') continue;
    sets.set(name, list.filter((e) => !tweetEvalKeys.has(e.key)));
  }
  return { sets, tweetEvalKeys };
}

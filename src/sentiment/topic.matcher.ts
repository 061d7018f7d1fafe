import { type Token, TOKEN_HASHTAG, TOKEN_WORD } from './sentiment.engine';

export interface TaxonomyTopic {
  /** stable machine name, e.g. `billing` */
  name: string;
  /** human label, e.g. `Billing and payments` */
  label: string;
  department: string;
  phrases: string[];
}

export interface TopicMatch {
  name: string;
  department: string;
  matched: string[];
}

/**
 * The default taxonomy for customer-facing businesses. Phrases are matched on whole words after
 * light stemming, so "charges" matches "charge" and "app" never matches "happy".
 */
export const DEFAULT_TAXONOMY: TaxonomyTopic[] = [
  {
    name: 'billing',
    label: 'Billing and payments',
    department: 'Finance',
    phrases: ['bill', 'billing', 'billed', 'invoice', 'charge', 'charged', 'charged twice', 'double charged', 'overcharged', 'payment', 'pay', 'card', 'credit card', 'debit', 'direct debit', 'transaction', 'subscription fee', 'statement', 'autopay'],
  },
  {
    name: 'delivery',
    label: 'Delivery and shipping',
    department: 'Logistics',
    phrases: ['delivery', 'deliver', 'delivered', 'shipping', 'ship', 'shipment', 'package', 'parcel', 'courier', 'tracking', 'tracking number', 'dispatch', 'arrived', 'never arrived', 'out for delivery', 'postage', 'driver'],
  },
  {
    name: 'delays',
    label: 'Delays and cancellations',
    department: 'Operations',
    phrases: ['delay', 'delayed', 'late', 'cancelled', 'canceled', 'cancellation', 'cancel', 'postponed', 'rescheduled', 'still waiting', 'waiting for', 'behind schedule', 'missed connection', 'overbooked'],
  },
  {
    name: 'quality',
    label: 'Product quality and defects',
    department: 'Product',
    phrases: ['broken', 'broke', 'defect', 'defective', 'quality', 'faulty', 'stopped working', 'not working', 'damaged', 'cracked', 'fell apart', 'poor quality', 'cheaply made', 'malfunction', 'leaking', 'flimsy'],
  },
  {
    name: 'service',
    label: 'Customer service and staff',
    department: 'Customer Care',
    phrases: ['support', 'agent', 'staff', 'on hold', 'customer service', 'customer care', 'rude', 'representative', 'rep', 'call center', 'helpdesk', 'help desk', 'manager', 'employee', 'no response', 'no reply', 'chat support', 'waiter', 'cashier'],
  },
  {
    name: 'pricing',
    label: 'Pricing',
    department: 'Marketing',
    phrases: ['price', 'pricing', 'priced', 'expensive', 'cheap', 'cost', 'overpriced', 'rip off', 'ripoff', 'fee', 'fees', 'hidden fees', 'discount', 'promo', 'coupon', 'value for money'],
  },
  {
    name: 'app',
    label: 'Website and app',
    department: 'Digital',
    phrases: ['app', 'website', 'site', 'web site', 'crash', 'crashed', 'bug', 'buggy', 'glitch', 'checkout', 'page', 'error message', 'update', 'ios', 'android', 'outage', 'loading', 'down again'],
  },
  {
    name: 'account',
    label: 'Account and login',
    department: 'Digital',
    phrases: ['login', 'log in', 'logged out', 'password', 'account', 'sign in', 'signin', 'locked out', 'two factor', '2fa', 'verification code', 'username', 'reset link', 'profile'],
  },
  {
    name: 'returns',
    label: 'Returns and refunds',
    department: 'Customer Care',
    phrases: ['refund', 'refunded', 'return', 'returned', 'money back', 'exchange', 'return label', 'rma', 'store credit', 'chargeback'],
  },
];

/**
 * A light English stemmer (plural, past, gerund, adverb suffixes, final "e") applied identically
 * to taxonomy phrases and text, so both sides land on the same stem. Deliberately conservative:
 * it never strips a word shorter than four letters, which keeps "app", "bug", "fee" intact.
 */
export function stem(word: string): string {
  let w = word;
  if (w.length <= 3) return w;
  if (w.endsWith("'s")) w = w.slice(0, -2);
  if (w.endsWith('ies') && w.length > 4) w = w.slice(0, -3) + 'y';
  else if (w.endsWith('sses')) w = w.slice(0, -2);
  else if (w.endsWith('ing') && w.length > 5) w = undouble(w.slice(0, -3));
  else if (w.endsWith('ed') && w.length > 4) w = undouble(w.slice(0, -2));
  else if (w.endsWith('es') && w.length > 4 && /(?:ch|sh|x|ss|z)es$/.test(w)) w = w.slice(0, -2);
  else if (w.endsWith('s') && !w.endsWith('ss') && !w.endsWith('us') && w.length > 3) w = w.slice(0, -1);
  if (w.endsWith('e') && w.length > 4) w = w.slice(0, -1);
  return w;
}

// Word frequencies are Zipfian: a bounded memo answers most look-ups without re-stemming.
const STEM_MEMO_MAX = 100_000;
const stemMemo = new Map<string, string>();
function cachedStem(word: string): string {
  let s = stemMemo.get(word);
  if (s === undefined) {
    s = stem(word);
    if (stemMemo.size < STEM_MEMO_MAX && word.length < 40) stemMemo.set(word, s);
  }
  return s;
}

function undouble(w: string): string {
  const n = w.length;
  if (n >= 3 && w[n - 1] === w[n - 2] && !'lsz'.includes(w[n - 1])) return w.slice(0, -1);
  if (n >= 4 && w.endsWith('ll')) return w.slice(0, -1);
  return w;
}

const START_TABLE = 1 << 14;

/** Hash of a word's first two UTF-16 units (one for a one-letter word) into START_TABLE. */
function startKey(w: string): number {
  const a = w.charCodeAt(0);
  const b = w.length > 1 ? w.charCodeAt(1) : 0;
  return (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 1, 0x85ebca6b)) >>> 18;
}

/**
 * Bounds of a topic's phrases, checked by `upsertTopic`. The default taxonomy needs at most 19
 * phrases per topic, 3 words and 17 characters per phrase.
 */
export const TAXONOMY_LIMITS = {
  /** topics in the taxonomy */
  topics: 200,
  /** phrases of one topic */
  phrasesPerTopic: 500,
  /** phrases of all topics together */
  phrasesTotal: 10_000,
  /** words of one phrase: the matcher looks at most this many words ahead of each word */
  wordsPerPhrase: 10,
  /** characters of one phrase */
  charsPerPhrase: 100,
} as const;

/** The words of a phrase as the matcher reads them (lower-cased, not stemmed). */
export function phraseWords(phrase: string): string[] {
  return phrase.toLowerCase().match(/[\p{L}\p{N}]+(?:'[\p{L}]+)?/gu) ?? [];
}

/** A node of the word trie: the phrase whose stems lead here, if any (the first such one). */
interface TrieNode {
  next: Map<string, TrieNode> | null;
  /** index into the taxonomy of the phrase ending here, -1 for none */
  topic: number;
  phrase: string;
}

/**
 * Matches text to taxonomy topics. Compiled once per taxonomy into a trie of phrase stems; at
 * each word the matcher walks the trie as far as the text goes along it (at most
 * {@link TAXONOMY_LIMITS.wordsPerPhrase} words) and keeps the longest phrase it passed, so its
 * cost per text is linear in the text and grows neither with the number of phrases nor with
 * their length. A phrase of more words than that (stored before the bound) never matches.
 */
export class TopicMatcher {
  private readonly root = new Map<string, TrieNode>();
  /**
   * Which two-letter starts some phrase word has (a bitmap over a hash of the first two UTF-16
   * units). {@link stem} never changes a word's first two letters, so a word whose start is not
   * here cannot match and is not stemmed: most words of a post skip the stemmer and its memo.
   */
  private readonly starts = new Uint8Array(START_TABLE);

  private readonly stems: string[] = [];

  constructor(private readonly taxonomy: readonly TaxonomyTopic[]) {
    taxonomy.forEach((topic, index) => {
      for (const phrase of topic.phrases ?? []) {
        if (typeof phrase !== 'string') continue;
        const words = phraseWords(phrase);
        if (words.length === 0 || words.length > TAXONOMY_LIMITS.wordsPerPhrase) continue;
        const stems = words.map(stem);
        for (const w of stems) this.starts[startKey(w)] = 1;
        let level = this.root;
        let node: TrieNode | undefined;
        for (let k = 0; k < stems.length; k++) {
          node = level.get(stems[k]);
          if (!node) level.set(stems[k], (node = { next: null, topic: -1, phrase: '' }));
          if (k < stems.length - 1) level = node.next ??= new Map();
        }
        // the first phrase of these stems wins, as it always did
        if (node!.topic < 0) {
          node!.topic = index;
          node!.phrase = phrase;
        }
      }
    });
  }

  /** Topics in taxonomy order, each with the distinct phrases that matched (at most 5). */
  match(tokens: readonly Token[]): TopicMatch[] {
    const stems = this.stems;
    stems.length = 0;
    let any = false;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if ((t.kind === TOKEN_WORD || t.kind === TOKEN_HASHTAG) && this.starts[startKey(t.lower)] === 1) {
        stems.push(cachedStem(t.lower));
        any = true;
      } else stems.push('');
    }
    if (!any) return [];
    const found = new Map<number, string[]>();
    const n = stems.length;
    for (let i = 0; i < n; i++) {
      if (!stems[i]) continue;
      // the longest phrase starting at word i: the deepest phrase end on the text's path
      let node = this.root.get(stems[i]);
      let best: TrieNode | null = null;
      for (let k = i + 1; node; k++) {
        if (node.topic >= 0) best = node;
        if (k >= n || node.next === null || !stems[k]) break;
        node = node.next.get(stems[k]);
      }
      if (!best) continue;
      const list = found.get(best.topic) ?? [];
      if (list.length < 5 && !list.includes(best.phrase)) list.push(best.phrase);
      found.set(best.topic, list);
    }
    const out: TopicMatch[] = [];
    for (const [index, matched] of [...found].sort((a, b) => a[0] - b[0])) {
      const t = this.taxonomy[index];
      out.push({ name: t.name, department: t.department, matched });
    }
    return out;
  }
}

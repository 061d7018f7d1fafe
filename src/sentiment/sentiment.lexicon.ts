import fs from 'node:fs';
import path from 'node:path';

/**
 * Valences live on VADER's scale: -4 (most negative) to +4 (most positive), the mean of human
 * ratings. Everything added here uses the same scale so VADER's empirically derived rule
 * constants (boosters, caps, punctuation) stay meaningful.
 */
export type Lexicon = Map<string, number>;

/**
 * Customer-service vocabulary that VADER (trained on general social text) rates as neutral or
 * misses, and words whose VADER rating misleads on customer posts. Multi-word entries are
 * matched as phrases before their single words.
 */
export const CUSTOMER_SERVICE_LEXICON: Record<string, number> = {
  refund: -0.6,
  // a problem reported to a company; VADER has none of them ("never had an issue" needs one to negate)
  issue: -0.8,
  issues: -0.8,
  expensive: -0.8,
  'my money back': -1.6,
  'money back': -0.8,
  refunded: 0.4,
  'still not refunded': -2.2,
  'on hold': -1.4,
  'put on hold': -1.6,
  'charged twice': -2.5,
  'double charged': -2.5,
  'charged me twice': -2.5,
  overcharged: -2.2,
  'hidden fees': -2.0,
  'hidden fee': -2.0,
  canceled: -1.0,
  cancelation: -0.8,
  cancellation: -0.8,
  delayed: -1.5,
  late: -0.6,
  'arrived late': -1.6,
  'never arrived': -2.6,
  'never received': -2.5,
  'never showed up': -2.4,
  'not received': -2.0,
  'never again': -2.8,
  'switching to': -1.6,
  'switched to': -1.2,
  'take my business elsewhere': -2.6,
  'cancel my subscription': -1.8,
  'cancel my account': -1.8,
  'cancel my order': -1.2,
  'still waiting': -1.8,
  'no response': -2.0,
  'no reply': -1.9,
  'no one answers': -2.0,
  'nobody answers': -2.0,
  'waste of money': -2.8,
  'waste of time': -2.5,
  'not worth': -2.0,
  'rip off': -2.6,
  ripoff: -2.6,
  'ripped off': -2.6,
  scammed: -2.8,
  overpriced: -1.8,
  unhelpful: -1.8,
  unresponsive: -1.9,
  'customer service sucks': -3.0,
  buggy: -1.6,
  bug: -0.8,
  bugs: -0.8,
  glitch: -1.2,
  glitchy: -1.5,
  crashed: -1.7,
  crashes: -1.7,
  crashing: -1.7,
  outage: -1.8,
  'not working': -2.0,
  'stopped working': -2.2,
  'doesnt work': -2.0,
  "doesn't work": -2.0,
  'does not work': -2.0,
  'fell apart': -2.2,
  'broke after': -2.2,
  'poor quality': -2.4,
  'cheaply made': -2.0,
  flimsy: -1.6,
  'wrong item': -2.0,
  'wrong order': -1.8,
  'lost my package': -2.4,
  'never answered': -2.0,
  'never replied': -2.0,
  'never responded': -2.0,
  'never called back': -2.2,
  'never got back': -2.0,
  'no answer': -1.6,
  // Team and product names whose words VADER rates as warm ("care" 2.2, "support" 1.7, "credit" 1.6):
  // naming the department is not praising it.
  'customer care': 0,
  'customer support': 0,
  'tech support': 0,
  'support team': 0,
  'help desk': 0,
  'credit card': 0,
  'no problem': 1.2,
  'no problems': 1.4,
  'no issues': 1.4,
  'no complaints': 1.6,
  'no worries': 1.2,
  'not bad': 1.0,
  'fast shipping': 1.6,
  'fast delivery': 1.6,
  'quick delivery': 1.6,
  'arrived early': 1.8,
  'ahead of schedule': 1.6,
  'works perfectly': 2.6,
  'works great': 2.6,
  'works like a charm': 2.8,
  'highly recommend': 2.8,
  'would recommend': 2.0,
  'customer for life': 2.8,
  'above and beyond': 2.8,
  'went above and beyond': 3.0,
  'five stars': 2.8,
  '5 stars': 2.8,
  'one star': -2.4,
  '1 star': -2.4,
  'zero stars': -3.0,
  '0 stars': -3.0,
};

/**
 * Evaluative words of product and film reviews that VADER's lexicon lacks (checked against it),
 * rated on the same scale by the same reading of intensity as its neighbours ("mediocre" near
 * "boring" -1.3 .. "awful" -2.0).
 */
export const REVIEW_LEXICON: Record<string, number> = {
  mediocre: -1.8, tedious: -2.0, predictable: -1.0, cliched: -1.5, 'clichéd': -1.5, derivative: -1.2, bland: -1.5,
  engrossing: 2.2, riveting: 2.5, poignant: 1.8, unfunny: -2.0, pretentious: -1.8, overlong: -1.5, plodding: -1.6,
  forgettable: -1.8, formulaic: -1.4, muddled: -1.6, flat: -0.8, lifeless: -2.0, gripping: 2.3, touching: 1.8,
  witty: 2.2, moving: 0.8, inept: -2.0, incoherent: -1.8, shallow: -1.4, sloppy: -1.7, tiresome: -1.8,
  uninspired: -1.8, banal: -1.6, contrived: -1.6, stale: -1.4, hollow: -1.3, pointless: -2.0, amateurish: -1.8,
  clumsy: -1.4, monotonous: -1.6, convoluted: -1.4, overwrought: -1.4, melodramatic: -1.0, schmaltzy: -1.2,
  cheesy: -0.8, corny: -0.9, refreshing: 2.0, inventive: 2.0, imaginative: 2.0, affecting: 1.2, memorable: 2.0,
  sturdy: 1.6, durable: 1.6, reliable: 1.8, junk: -2.2, unwatchable: -2.8, watchable: 1.0, overrated: -1.6,
  underrated: 1.2, intriguing: 1.8, absorbing: 1.8, slow: -0.8, unsatisfying: -1.8, uneven: -1.0, cheap: -0.5,
  'falls flat': -2.0, 'fell flat': -2.0, 'must see': 2.5, 'well made': 2.0, 'well acted': 2.0, 'well written': 2.0,
  'dragged on': -1.5, drags: -1.2, 'nothing new': -1.5, 'too long': -1.2, 'laugh out loud': 2.0,
  'edge of your seat': 2.4, 'thumbs up': 2.2, 'two thumbs up': 2.8, 'thumbs down': -2.2, 'works well': 2.2,
  'easy to use': 2.0, 'hard to use': -1.8, 'difficult to use': -1.8, 'returned it': -1.8, 'sent it back': -1.8,
};

/**
 * Slang, abbreviations and spellings common in customer posts. "lol" is deliberately weaker than
 * VADER's 1.8-2.9: on customer posts it mostly marks sarcasm or resignation, not joy.
 */
export const SLANG_LEXICON: Record<string, number> = {
  lol: 0.6,
  lmao: 0.8,
  lmfao: 0.8,
  smh: -1.6,
  tbh: 0,
  imo: 0,
  idk: -0.2,
  fml: -2.4,
  ffs: -2.4,
  wtf: -2.6,
  wth: -2.0,
  omfg: -1.0,
  ugh: -1.8,
  argh: -1.8,
  yikes: -1.6,
  meh: -0.8,
  trash: -2.2,
  garbage: -2.3,
  dope: 1.8,
  lit: 1.6,
  goat: 1.4,
  ty: 1.5,
  thx: 1.6,
  tysm: 2.4,
  thanx: 1.6,
  luv: 2.6,
  fab: 2.4,
  gr8: 2.6,
  sux: -1.8,
  suxx: -1.8,
  bs: -1.6,
  // VADER rates "like" 1.5, but in posts it is mostly a preposition or filler ("feels like", "like 3 weeks").
  like: 0.6,
  // "please" and "sorry" in customer posts are requests and apologies, not emotions.
  please: 0.2,
  // Discourse markers, not judgements ("honestly the quality is terrible").
  honestly: 0,
  support: 0.3,
  // In customer posts "help" is mostly asked for ("need help", "no help at all"), not given.
  help: 0.8,
  sorry: -0.5,
};

/**
 * A word list looked up by what a text says: a Map, never a plain object, whose look-up would also
 * find Object.prototype's names ("constructor" found the Object function and made the score NaN).
 */
function table(entries: Record<string, number>): ReadonlyMap<string, number> {
  return new Map(Object.entries(entries));
}

/**
 * Hashtags (without '#', lower case) whose meaning differs from their words. Other hashtags are
 * scored by looking their body up as a word or as a squashed phrase (#neveragain = "never again").
 */
export const HASHTAG_LEXICON: ReadonlyMap<string, number> = table({
  fail: -2.5,
  epicfail: -3.0,
  customerservicefail: -2.8,
  worstservice: -3.0,
  neveragain: -2.8,
  notimpressed: -2.2,
  disappointed: -2.2,
  boycott: -2.4,
  scam: -2.7,
  ripoff: -2.6,
  sad: -2.0,
  blessed: 2.4,
  grateful: 2.4,
  thankyou: 2.0,
  love: 2.8,
  winning: 2.2,
  happycustomer: 2.8,
  goodservice: 2.4,
  greatservice: 2.8,
  firstworldproblems: -0.8,
});

/**
 * Emoji valences on the -4..+4 scale, after the Emoji Sentiment Ranking (Kralj Novak et al.,
 * 2015) rescaled, for the emoji customers actually use. Keys are the base code point (variation
 * selectors and skin tones are stripped before lookup).
 */
export const EMOJI_LEXICON: ReadonlyMap<string, number> = table({
  '😂': 0.9, '🤣': 1.2, '😊': 2.6, '☺': 2.4, '😀': 2.2, '😃': 2.3, '😄': 2.4, '😁': 2.2, '😆': 2.0,
  '😅': 0.8, '🙂': 1.6, '🙃': -0.4, '😉': 1.8, '😍': 2.8, '🥰': 3.0, '😘': 2.6, '😗': 1.6, '😙': 1.8,
  '😚': 1.8, '😋': 2.2, '😎': 2.2, '🤩': 3.0, '🥳': 2.8, '🤗': 2.4, '😇': 2.2, '👍': 2.0, '👏': 2.0,
  '🙌': 2.4, '💪': 1.6, '🎉': 2.6, '🎊': 2.4, '✨': 1.6, '🌟': 2.0, '⭐': 1.8, '🔥': 1.4, '💯': 2.2,
  '❤': 3.0, '♥': 2.8, '💕': 2.8, '💖': 2.8, '💗': 2.6, '💓': 2.6, '💞': 2.6, '💘': 2.6, '💙': 2.4,
  '💚': 2.4, '💛': 2.4, '💜': 2.4, '🧡': 2.4, '🤍': 2.2, '😻': 2.6, '🙏': 1.4, '👌': 1.8, '✅': 1.2,
  '🏆': 2.2, '🥇': 2.2, '😌': 1.4, '🤤': 1.2, '😏': 0.4, '🤔': -0.4, '😐': -0.6, '😑': -1.0,
  '😶': -0.6, '🙄': -1.8, '😒': -2.0, '😬': -1.2, '😕': -1.6, '😟': -1.8, '🙁': -1.8, '☹': -2.0,
  '😮': -0.2, '😯': -0.4, '😲': -0.6, '😳': -0.8, '🥺': -0.8, '😦': -1.6, '😧': -1.8, '😨': -2.0,
  '😰': -2.2, '😥': -1.8, '😢': -2.2, '😭': -2.2, '😱': -2.0, '😖': -2.2, '😣': -2.0, '😞': -2.2,
  '😓': -1.8, '😩': -2.2, '😫': -2.2, '🥱': -1.0, '😤': -2.2, '😡': -3.0, '😠': -2.8, '🤬': -3.2,
  '👎': -2.4, '💔': -2.6, '🤮': -3.0, '🤢': -2.6, '💩': -2.4, '🖕': -3.0, '😷': -1.2, '🤒': -1.6,
  '🤕': -1.8, '😴': -0.8, '💤': -0.6, '🤦': -2.0, '🤷': -0.8, '😪': -1.4, '❌': -1.6, '⚠': -1.2,
  '🚫': -1.6, '⛔': -1.6, '🐌': -1.2, '⏳': -0.6, '⌛': -0.6, '🤡': -1.8, '🤯': -1.2, '😵': -1.4,
  '💀': -0.4, '☠': -1.6, '🥲': 0.4, '😹': 1.0, '😿': -2.0, '😾': -2.4,
});

/**
 * ASCII emoticons that the tokenizer keeps whole. Their valences come from VADER's lexicon
 * (which lists them); this list only tells the tokenizer which punctuation runs are faces.
 */
export const EMOTICON_PATTERN = /(?:[:;=][-'^o]?[)(\]\[dDpPoO3*\/\\|@$]+)|(?:<\/?3+)|(?:\^_*\^)|(?:[xX][dD]\b)/;

/**
 * Negators from VADER plus the contraction-less spellings common in posts. A negator flips
 * (and damps) sentiment up to three tokens ahead within the clause.
 */
export const NEGATORS = new Set([
  'aint', 'arent', 'cannot', 'cant', 'couldnt', 'darent', 'didnt', 'doesnt', "ain't", "aren't", "can't",
  "couldn't", "daren't", "didn't", "doesn't", 'dont', 'hadnt', 'hasnt', 'havent', 'isnt', 'mightnt',
  'mustnt', 'neither', "don't", "hadn't", "hasn't", "haven't", "isn't", "mightn't", "mustn't", 'neednt',
  "needn't", 'never', 'none', 'nope', 'nor', 'not', 'nothing', 'nowhere', 'oughtnt', 'shant', 'shouldnt',
  'uhuh', 'wasnt', 'werent', "oughtn't", "shan't", "shouldn't", "wasn't", "weren't", 'without', 'wont',
  'wouldnt', "won't", "wouldn't", 'rarely', 'seldom', 'despite', 'no', 'nobody', 'hardly', 'lack',
  'lacks', 'lacking', 'nah',
]);

/** VADER's empirically derived booster increment (Hutto and Gilbert, 2014). */
export const B_INCR = 0.293;
/** VADER's dampener decrement. */
export const B_DECR = -0.293;

/** Intensifiers (+) and dampeners (-) acting on the next sentiment word, VADER's list plus slang. */
export const BOOSTERS: ReadonlyMap<string, number> = table({
  absolutely: B_INCR, amazingly: B_INCR, awfully: B_INCR, completely: B_INCR, considerably: B_INCR,
  decidedly: B_INCR, deeply: B_INCR, effing: B_INCR, enormously: B_INCR, entirely: B_INCR,
  especially: B_INCR, exceptionally: B_INCR, extremely: B_INCR, fabulously: B_INCR, flipping: B_INCR,
  flippin: B_INCR, fricking: B_INCR, frickin: B_INCR, frigging: B_INCR, friggin: B_INCR, fully: B_INCR,
  fucking: B_INCR, fuckin: B_INCR, greatly: B_INCR, hella: B_INCR, highly: B_INCR, hugely: B_INCR,
  incredibly: B_INCR, intensely: B_INCR, majorly: B_INCR, more: B_INCR, most: B_INCR,
  particularly: B_INCR, purely: B_INCR, quite: B_INCR, really: B_INCR, remarkably: B_INCR, so: B_INCR,
  substantially: B_INCR, thoroughly: B_INCR, totally: B_INCR, tremendously: B_INCR, uber: B_INCR,
  unbelievably: B_INCR, unusually: B_INCR, utterly: B_INCR, very: B_INCR, super: B_INCR, mega: B_INCR,
  insanely: B_INCR, ridiculously: B_INCR, seriously: B_INCR, truly: B_INCR, such: B_INCR, soo: B_INCR,
  sooo: B_INCR, rly: B_INCR, realy: B_INCR, mad: B_INCR, crazy: B_INCR, damn: B_INCR, freaking: B_INCR,
  freakin: B_INCR, bloody: B_INCR, too: B_INCR,
  almost: B_DECR, barely: B_DECR, kinda: B_DECR, kindof: B_DECR, less: B_DECR, little: B_DECR,
  marginally: B_DECR, occasionally: B_DECR, partly: B_DECR, scarcely: B_DECR, slightly: B_DECR,
  somewhat: B_DECR, sorta: B_DECR, sortof: B_DECR, fairly: B_DECR, relatively: B_DECR, pretty: B_DECR * 0.3,
  bit: B_DECR, abit: B_DECR,
});

/**
 * Contrastive conjunctions: the clause after them carries the writer's conclusion, so it
 * weighs more and the clause before weighs less ("good food but rude staff" is negative).
 */
export const CONTRAST_AFTER = new Set(['but', 'however', 'nevertheless', 'nonetheless', 'except']);
/**
 * Concessive words: the clause they open concedes. At the start of a sentence the clause after
 * the comma concludes; in the middle ("great, although pricey") the conceded clause is damped.
 */
export const CONCESSIVE = new Set(['although', 'though', 'tho', 'albeit']);

let cached: Lexicon | undefined;

function vaderLexiconPath(): string {
  // The lexicon ships inside the vader-sentiment package; resolving its package.json finds it
  // wherever npm placed the dependency (hoisted or nested).
  return path.join(path.dirname(require.resolve('vader-sentiment/package.json')), 'vader_lexicon.txt');
}

/**
 * The merged lexicon: VADER's 7,500 rated tokens, then review words, then slang, then the customer-service list
 * (later sources override earlier ones). Loaded once per process; the Map must not be mutated
 * by callers because every analyzer instance shares it.
 */
export function loadLexicon(): Lexicon {
  if (cached) return cached;
  const lex: Lexicon = new Map();
  const raw = fs.readFileSync(vaderLexiconPath(), 'utf8');
  for (const line of raw.split('\n')) {
    const tab = line.indexOf('\t');
    if (tab <= 0) continue;
    const second = line.indexOf('\t', tab + 1);
    const value = Number(line.slice(tab + 1, second > 0 ? second : undefined));
    if (Number.isFinite(value)) lex.set(line.slice(0, tab).toLowerCase(), value);
  }
  for (const [k, v] of Object.entries(REVIEW_LEXICON)) lex.set(k, v);
  for (const [k, v] of Object.entries(SLANG_LEXICON)) lex.set(k, v);
  for (const [k, v] of Object.entries(CUSTOMER_SERVICE_LEXICON)) lex.set(k, v);
  cached = lex;
  return lex;
}

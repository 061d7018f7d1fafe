export type Intent = 'complaint' | 'question' | 'praise' | 'purchase_intent' | 'churn_threat' | 'other';

export interface IntentResult {
  intent: Intent;
  /** in [0, 1] */
  confidence: number;
  /** the cue that decided, for explanations and debugging */
  cue: string;
}

/** Intent cues are read from this many leading characters; the opening states the purpose. */
const INTENT_WINDOW = 5_000;
/**
 * A longer text's opening is read with its runs of white space collapsed, from this many leading
 * characters: 10,000 newlines before a complaint left a window of nothing but white space (intent
 * `other`, "empty"), where the same text without them was a complaint.
 */
const INTENT_SCAN = 64 * 1024;

/** The leading INTENT_WINDOW characters of `text` that are not runs of white space. */
function intentWindow(text: string): string {
  if (text.length <= INTENT_WINDOW) return text;
  return text.slice(0, INTENT_SCAN).replace(/\s+/g, ' ').trimStart().slice(0, INTENT_WINDOW);
}

/** What {@link cueText} changes: white space other than one space, an invisible or control character, ’. */
const UNSPACED = /[^\S ]| {2}|[\u2019\p{Default_Ignorable_Code_Point}\x00-\x08\x0e-\x1f\x7f]/u;

/**
 * `text` as the cues below are written: each run of white space one space (a tab, a line break,
 * U+00A0, U+3000, two spaces), invisible characters (a word joiner, an RTL mark before "how")
 * and control characters gone, ’ as '. "cancel\u00a0my account" was no churn threat, and
 * "\u200fhow do I …" no question.
 */
export function cueText(text: string): string {
  if (!UNSPACED.test(text)) return text;
  return text.replace(/[\p{Default_Ignorable_Code_Point}\x00-\x08\x0e-\x1f\x7f]+/gu, '').replace(/\s+/g, ' ').replace(/\u2019/g, "'");
}

// The cues' contractions match typed without the apostrophe too ("Im leaving", "wont be back",
// "doesnt work"), as the model reads them (../sentiment.engine.ts).
const CHURN =
  /\b(?:cancel(?:l?ing)? my (?:account|subscription|membership|plan|contract|service)|clos(?:e|ing) my account|switch(?:ing|ed)? (?:over )?to|mov(?:e|ing) (?:over )?to (?!the\b|a\b)|never (?:again|(?:buy|buying|order|ordering|use|using|fly|flying|shop|shopping|coming|come)\b[^.!?]{0,40}\bagain)|(?:take|taking) my (?:business|money) elsewhere|done with (?:you|this|your)|last time i(?:'ll| will)? (?:use|order|buy|fly|shop)|(?:i'?m|i am|we're|we are) (?:leaving|out)\b|unsubscrib(?:e|ing)|won'?t be (?:back|renewing|using)|not (?:renewing|coming back)|looking for (?:a |an )?(?:alternative|another provider|other options)|port(?:ing)? my number|#neveragain|#boycott)/;

const PURCHASE =
  /\b(?:(?:want|wanna|going|planning|plan|looking|hoping|ready|about|need|trying) (?:to )?(?:buy|purchase|order|get|upgrade|subscribe|pre-?order)\b|where (?:can|do) i (?:buy|get|order|find)|how much (?:is|are|does|do|for)|(?:do|does) (?:you|it) (?:ship|deliver|come in|sell)|is (?:it|this|the \w+) (?:in stock|available)|(?:back )?in stock\?|interested in (?:buying|getting|the|your|a)|take my money|shut up and take|can'?t wait to (?:buy|get|order|try)|pre-?order|(?:any|is there a) (?:discount|coupon|promo)|add(?:ed)? to (?:my )?cart|price (?:of|for)\b[^?]{0,40}\?|(?:thinking|thought) (?:about|of) (?:buying|getting|ordering|upgrading))/;

// not "can't …" ("Can't wait for the new season"): the word is "can", then "'t"; the other
// negated forms ("don't", "isn't") end no word of the list
const QUESTION_START =
  /^(?:how|what|when|where|why|who|which|can|could|would|will|is|are|do|does|did|should|has|have|any(?:one|body)|is there)\b(?!['’])/;

/**
 * Unmistakable complaint phrases. They lower the complaint model's bar (see
 * {@link COMPLAINT_CUE_PROBABILITY}) where customer-service wording meets general-tweet words
 * the model reads as positive ("Charged twice AGAIN. Unbelievable.").
 */
export const COMPLAINT_CUE =
  /\b(?:charged (?:me )?twice|double[- ]charged|overcharged|still (?:waiting|no|not|hasn'?t|haven'?t)|never (?:arrived|received|showed up|got)|no (?:response|reply|refund)|on hold for|(?:doesn'?t|does not|didn'?t|stopped) work(?:ing)?|broken|defective|damaged|wrong (?:item|order|size)|(?:lost|lose) my|where is my|rip(?:ped)? ?off|scam(?:med)?|waste of|#fail)\b/i;
/** With a cue, the complaint probability needed to call a complaint. */
export const COMPLAINT_CUE_PROBABILITY = 0.5;

/**
 * A request for instructions or permission ("how do I reset my password?", "can I change the
 * email on my account", "is there a way to …"), at the start of the text after a greeting or
 * @mentions. The sentiment sets teach that "account", "password", "email" lean negative (they
 * come up in complaints), so without this such questions were flagged unhappy.
 *
 * As one expression it read `^(?:(?:@[\w.]+|hi|…|folks)[\s,.!:-]*)*` + {@link HOW_TO_REQUEST}:
 * a mention's dots could end it or start the separators after it, so a failed match tried every
 * split of every mention, exponential in their number ("@a..." 14 times and " my account", 81
 * characters, held the event loop 16 s). {@link isHowToRequest} reads the same strings: where the
 * openers (each a mention or a greeting, then separators) can end, then the request from there.
 */
const OPENER_GREETINGS = ['hi', 'hello', 'hey', 'hiya', 'good morning', 'good afternoon', 'good evening', 'team', 'there', 'all', 'guys', 'folks'];
const HOW_TO_REQUEST =
  /(?:(?:please|quick question|question)[\s,.:-]*)?(?:how (?:do|can|could|would|should|may) (?:i|we|you|one)|how to|can (?:i|we)|could (?:i|we)|may (?:i|we)|is (?:it|there) (?:possible|a way|an option)|are there|where (?:do|can|could|would) (?:i|we)|what(?:'s| is| are) the (?:best |easiest |right |quickest )?(?:way|steps|process)|do (?:i|we) (?:need|have) to|i(?:'d| would) like to (?:know|change|update|add)|(?:can|could) you (?:tell|show|explain|help) (?:me|us) (?:how|where))\b/y;
/** `[\s,.!:-]`: what may follow an opener */
const OPENER_SEPARATOR = /[\s,.!:-]/;
/** `[\w.]`: a mention's characters */
const MENTION_CHAR = /[\w.]/;

/** True when `lower` (lower-cased) starts with a how-to request after any openers. Linear in its length. */
function isHowToRequest(lower: string): boolean {
  const n = lower.length;
  // reached[p]: no opener or some sequence of openers ends at p; every p an opener reached has
  // the separators after it reached too (none may open the text)
  const reached = new Uint8Array(n + 1);
  const reach = (from: number): void => {
    for (let k = from; k <= n && reached[k] === 0; k++) {
      reached[k] = 1;
      if (k === n || !OPENER_SEPARATOR.test(lower[k]!)) break;
    }
  };
  reached[0] = 1;
  for (let p = 0; p <= n; p++) {
    if (reached[p] === 0) continue;
    HOW_TO_REQUEST.lastIndex = p;
    if (HOW_TO_REQUEST.test(lower)) return true;
    if (p === n) break;
    // an @mention may end after any of its characters (the rest can be separators or an opener)
    if (lower[p] === '@') for (let j = p + 1; j < n && MENTION_CHAR.test(lower[j]!); j++) reach(j + 1);
    for (const g of OPENER_GREETINGS) if (lower.startsWith(g, p)) reach(p + g.length);
  }
  return false;
}

/**
 * What makes a question a grievance even in how-to form: "why", negation, "still", "again",
 * waiting, repeated "?" or "!", a complaint cue.
 */
const GRIEVANCE =
  /\b(?:why|not|no|never|nobody|nothing|still|again|yet|keeps?|already|tried|trying|waiting|waited|days?|weeks?|hours?|months?|times|can'?t|cannot|won'?t|isn'?t|doesn'?t|didn'?t|haven'?t|hasn'?t|wasn'?t|aren'?t|unable|impossible|ridiculous|seriously|anyone)\b|[a-z]n't\b|\?\s*\?|!/;

/**
 * True for a plain how-to or permission question with no sign of a grievance in its words
 * (the caller adds what the lexicon knows: any negative word makes it a grievance). Such a
 * question is a question, not a complaint, whatever topic words it has.
 */
export function isPlainHowToQuestion(text: string): boolean {
  if (text.length > 600) return false;
  const lower = cueText(text.toLowerCase()).trim();
  return isHowToRequest(lower) && !GRIEVANCE.test(lower) && !COMPLAINT_CUE.test(lower);
}

const PRAISE =
  /\b(?:thank(?:s| you)|thx|ty|kudos|shout ?out|props to|love (?:it|this|you|your|the)|amazing|awesome|excellent|fantastic|great (?:job|service|experience|support|product)|well done|highly recommend|recommend|best \w+ ever|above and beyond|five stars|5 stars)\b/;

/** What the models decided about the text, which the intent rules build on. */
export interface IntentSignals {
  negative: boolean;
  positive: boolean;
  /** the complaint model's decision (learned from the complaint sets) */
  complaint: boolean;
  complaintProbability?: number;
}

/**
 * Classifies what the writer wants. Complaint comes from the trained complaint model (or a
 * negative label); churn threat, purchase intent, question and praise are rules, for want of
 * labelled data. Precedence reflects what the business must act on first: churn threat,
 * purchase intent, complaint, question, praise, other. Complaints and questions feed the
 * listening gap, so a negative question ("why is my order still not here?") is a complaint.
 * Never throws.
 */
export function classifyIntent(text: string, s: IntentSignals): IntentResult {
  const lower = cueText(intentWindow(text).toLowerCase());
  const trimmed = lower.trim();
  if (!trimmed) return { intent: 'other', confidence: 0.5, cue: 'empty' };

  const churn = CHURN.exec(lower);
  if (churn) return { intent: 'churn_threat', confidence: s.negative || s.complaint ? 0.9 : 0.75, cue: churn[0] };

  const hasQuestionMark = lower.includes('?');
  const questionForm = hasQuestionMark || QUESTION_START.test(trimmed);

  // (each rule runs only where its answer can matter: most posts skip the purchase and praise scans)
  const purchase = s.complaint || s.negative ? null : PURCHASE.exec(lower);
  if (purchase) return { intent: 'purchase_intent', confidence: 0.8, cue: purchase[0] };

  if (s.complaint || s.negative) {
    const p = s.complaintProbability ?? 0.5;
    return { intent: 'complaint', confidence: round2(s.complaint ? Math.max(p, 0.55) : 0.55 + 0.3 * p), cue: s.complaint ? 'complaint model' : 'negative sentiment' };
  }

  if (questionForm) return { intent: 'question', confidence: hasQuestionMark ? 0.85 : 0.6, cue: hasQuestionMark ? '?' : trimmed.split(/\s/, 1)[0]! };

  if (s.positive) {
    const praise = PRAISE.exec(lower);
    return { intent: 'praise', confidence: round2(0.6 + (praise ? 0.25 : 0)), cue: praise?.[0] ?? 'positive sentiment' };
  }
  return { intent: 'other', confidence: 0.5, cue: 'no cue' };
}

function round2(x: number): number {
  return Math.round(Math.min(1, Math.max(0, x)) * 100) / 100;
}

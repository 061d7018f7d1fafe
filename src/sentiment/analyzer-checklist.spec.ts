import { describe, expect, it } from 'vitest';
import { type Analysis, SentimentAnalyzer } from './analyzer';

// Behavioural tests in the manner of CheckList (Ribeiro et al., ACL 2020) on customer messages:
// templates × fillers (products, services, brands, people, places, intensifiers, negators, time
// phrases) give hundreds of cases per capability. Three kinds of test:
//  - MFT (minimum functionality): each case has an expected reading;
//  - INV (invariance): a change that does not change the meaning must not change the label;
//  - DIR (directional): a change must move the score one way.
// The templates are not training data and were written without looking at the model's answers
// case by case; each suite's failure rate is asserted as an upper bound (what the model reaches,
// plus a small margin), so a regression is caught and a gain shows. Classes that still fail
// often are listed in KNOWN_LIMITS below and in the README.

const analyzer = new SentimentAnalyzer();
const analyze = (t: string): Analysis => analyzer.analyze(t, { lang: 'en' });

// ---- fillers ---------------------------------------------------------------------------------

const PRODUCTS = ['order', 'package', 'parcel', 'laptop', 'phone', 'headphones', 'blender', 'jacket', 'sofa', 'printer', 'coffee machine', 'mattress'];
const SERVICES = ['delivery', 'support team', 'customer service', 'app', 'website', 'checkout', 'installation', 'help desk'];
const BRANDS = ['Acme', 'Northwind', 'Globex', 'Initech', 'Zephyr Mobile', 'BlueLine', 'Contoso', 'Umbrella Air', 'Fabrikam', 'Vandelay'];
const PEOPLE = ['Sarah', 'Mike', 'Priya', 'Tom', 'Ana', 'Kenji', 'Fatima', 'Olek'];
const PLACES = ['Ohio', 'London', 'Berlin', 'Toronto', 'Lagos', 'Sydney', 'Madrid', 'Osaka'];
const TIMES = ['for two weeks', 'since Monday', 'for 10 days', 'for a month', 'since last Friday', 'for three weeks'];
const INTENSIFIERS = ['very', 'extremely', 'really', 'incredibly', 'absolutely', 'so'];
const DOWNTONERS = ['slightly', 'a bit', 'somewhat', 'kinda', 'a little'];
const ORDER_NUMBERS = ['#12345', '#98213', '#40017', 'A-5521', '#7730962', '#300'];

type Fill = Record<string, readonly string[]>;
const FILL: Fill = { product: PRODUCTS, service: SERVICES, brand: BRANDS, person: PEOPLE, place: PLACES, time: TIMES, int: INTENSIFIERS, down: DOWNTONERS, num: ORDER_NUMBERS };

/** Every filling of `template`'s slots ({product}, {brand} …), in a fixed order. */
function expand(template: string, fill: Fill = FILL): string[] {
  const m = /\{(\w+)\}/.exec(template);
  if (!m) return [template];
  const values = fill[m[1]!];
  if (!values) throw new Error(`no filler ${m[1]}`);
  // every use of the same slot takes the same value
  return values.flatMap((v) => expand(template.split(m[0]).join(v), fill));
}

/** Up to `max` cases from the templates, spread evenly over each template's fillings. */
function generate(templates: readonly string[], max = 240): string[] {
  const per = Math.max(1, Math.floor(max / templates.length));
  const out: string[] = [];
  for (const t of templates) {
    const all = expand(t);
    const step = all.length / Math.min(per, all.length);
    for (let i = 0; i < Math.min(per, all.length); i++) out.push(all[Math.floor(i * step)]!);
  }
  return out;
}

// ---- suites ------------------------------------------------------------------------------------

interface Suite {
  name: string;
  kind: 'MFT' | 'INV' | 'DIR';
  about: string;
  /** the failing cases (as text), of `total` */
  run(): { total: number; failing: string[] };
}

function mft(name: string, about: string, texts: string[], pass: (a: Analysis) => boolean): Suite {
  return labelled(name, about, texts.map((t) => [t, pass]));
}

/** An MFT whose cases each carry their own check. */
function labelled(name: string, about: string, cases: [string, (a: Analysis) => boolean][]): Suite {
  return {
    name,
    kind: 'MFT',
    about,
    run: () => {
      const failing: string[] = [];
      for (const [t, pass] of cases) {
        const a = analyze(t);
        if (!pass(a)) failing.push(`${t} → ${a.label} ${a.score}${a.unhappy ? ' unhappy' : ''}`);
      }
      return { total: cases.length, failing };
    },
  };
}

const as = (texts: string[], pass: (a: Analysis) => boolean): [string, (a: Analysis) => boolean][] => texts.map((t) => [t, pass]);

/** A suite of pairs of texts: `ok` judges the second's analysis against the first's. */
function pairSuite(kind: 'INV' | 'DIR', name: string, about: string, pairs: [string, string][], ok: (a: Analysis, b: Analysis) => boolean, shown: (a: Analysis) => string, sign: string): Suite {
  return {
    name,
    kind,
    about,
    run: () => {
      const failing: string[] = [];
      for (const [x, y] of pairs) {
        const a = analyze(x);
        const b = analyze(y);
        if (!ok(a, b)) failing.push(`${x} (${shown(a)}) ${sign} ${y} (${shown(b)})`);
      }
      return { total: pairs.length, failing };
    },
  };
}

const inv = (name: string, about: string, pairs: [string, string][], same: (a: Analysis, b: Analysis) => boolean = (a, b) => a.label === b.label): Suite =>
  pairSuite('INV', name, about, pairs, same, (a) => `${a.label}${a.unhappy ? ' unhappy' : ''}`, '≠');

const dir = (name: string, about: string, pairs: [string, string][], ok: (a: Analysis, b: Analysis) => boolean): Suite =>
  pairSuite('DIR', name, about, pairs, ok, (a) => String(a.score), '→');

const negative = (a: Analysis) => a.label === 'negative';
const positive = (a: Analysis) => a.label === 'positive';
const neutral = (a: Analysis) => a.label === 'neutral';
/** a complaint for the business: unhappy, and not read as praise */
const grievance = (a: Analysis) => a.unhappy && a.label !== 'positive';
/** pairs of (template filled one way, the same filled another way) for one slot */
function swaps(templates: readonly string[], slot: string, values: readonly string[], max = 240): [string, string][] {
  const pairs: [string, string][] = [];
  for (const t of templates) {
    // the other slots filled once, evenly spread; then the slot swapped between values
    const bases = generate([t.split(`{${slot}}`).join('\u0000')], Math.ceil(max / templates.length / (values.length - 1)) + 1);
    for (const b of bases) {
      const first = b.split('\u0000').join(values[0]!);
      for (const v of values.slice(1)) pairs.push([first, b.split('\u0000').join(v)]);
    }
  }
  return pairs.slice(0, max);
}

const COMPLAINTS = [
  'My {product} from {brand} arrived broken.',
  'I have been waiting {time} for my {product} and nobody at {brand} answers.',
  '{brand} charged me twice for the {product}.',
  'The {product} stopped working after two days.',
  'Still no refund for the {product} I returned {time}.',
  'Your {service} is useless, I have called three times.',
  'The {product} I ordered never arrived.',
  'Worst {service} I have ever dealt with.',
];
const PRAISES = [
  'Love my new {product} from {brand}!',
  'The {service} was fast and friendly, thank you.',
  'Really happy with the {product}, works perfectly.',
  'Great {service}, my {product} arrived a day early.',
  '{brand} sorted out my {product} in minutes, brilliant.',
  'Excellent {service} as always.',
];
const NEUTRALS = [
  'My {product} is scheduled for delivery on Tuesday.',
  '{brand} shipped my {product} last week.',
  'The {product} comes in blue and black.',
  '{brand} is opening a new store in {place}.',
  'I picked up the {product} from the {place} store today.',
  'The {product} was delivered to my neighbour.',
];
const HOW_TO = [
  'How do I change the delivery address for my {product}?',
  'Can I pay for the {product} with PayPal?',
  'Where can I find the manual for my {product}?',
  'Do you ship the {product} to {place}?',
  'What is the best way to contact the {brand} {service}?',
  'Is it possible to add a gift note to my {product}?',
  'How can I track my {product}?',
  'Hi, can I return the {product} in a {place} store?',
];

const SUITES: Suite[] = [
  mft('mft-negative', 'clear complaints are negative', generate(COMPLAINTS), negative),
  mft('mft-positive', 'clear praise is positive', generate(PRAISES), positive),
  mft('mft-neutral', 'plain statements are neutral', generate(NEUTRALS), neutral),
  mft('mft-howto', 'how-to questions are neither negative nor complaints', generate(HOW_TO), (a) => a.label !== 'negative' && !a.complaint),
  mft(
    'mft-negated-positive',
    'a negated positive is negative ("not happy", "never arrived")',
    generate([
      'I am not happy with my {product}.',
      'The {service} was not good.',
      'The {brand} {service} is not helpful at all.',
      'My {product} never arrived.',
      "I don't like the new {product}.",
      'Not impressed with the {service}.',
      "The {product} doesn't work.",
      'I am not satisfied with the {service}.',
    ]),
    negative,
  ),
  mft(
    'mft-negated-negative',
    'a negated negative is not negative ("no complaints", "not bad")',
    generate([
      'No complaints about my {product}.',
      'The {service} was not bad at all.',
      'I had no problems with the {product}.',
      'Never had an issue with {brand}.',
      'The {product} is not expensive.',
      'No issues with the {service} so far.',
      "The {product} isn't bad for the price.",
      'Nothing wrong with the {product}, it works.',
    ]),
    (a) => a.label !== 'negative',
  ),
  mft(
    'mft-contrast-neg',
    'the clause after "but" decides: negative',
    generate([
      'The {product} looks nice but it stopped working after a week.',
      'The {service} was friendly but my {product} is still missing.',
      '{brand} used to be good but this {product} is a disaster.',
      'I like the design but the {product} is broken.',
      'Fast {service}, but the {product} arrived damaged.',
    ]),
    negative,
  ),
  mft(
    'mft-contrast-pos',
    'the clause after "but" decides: positive',
    generate([
      'The delivery was a bit late but the {product} is fantastic.',
      'I was worried at first but the {service} fixed it quickly, thanks!',
      'The {product} was expensive but it is worth every penny.',
      'Setup took a while but I love the {product}.',
      'The {service} was slow but {person} was really helpful in the end.',
    ]),
    positive,
  ),
  labelled('mft-intensified', 'an intensified sentiment keeps its polarity', [
    ...as(generate(['The {service} was {int} bad.', 'I am {int} disappointed with the {product}.', 'The {product} is {int} slow.'], 120), negative),
    ...as(generate(['The {service} was {int} good.', 'I am {int} happy with the {product}.', 'The {product} is {int} comfortable.'], 120), positive),
  ]),
  mft(
    'mft-downtoned',
    'a downtoned sentiment never takes the opposite polarity',
    [...generate(['The {service} was {down} slow.', 'I am {down} disappointed with the {product}.', 'The {product} is {down} noisy.'], 120)],
    (a) => a.label !== 'positive',
  ),
  mft(
    'mft-question-complaint',
    'a complaint phrased as a question is unhappy',
    generate([
      'Why is my {product} still not here?',
      'Why does {brand} keep cancelling my {product}?',
      'Where is my {product}? I ordered it {time}.',
      'How many more days do I have to wait for my {product}?',
      'Is anyone at {brand} going to answer me about my {product}?',
      'Why was I charged twice for the {product}?',
      'Why has nobody replied about my broken {product}?',
      'When will I get my refund for the {product}? It has been {time}.',
    ]),
    grievance,
  ),
  mft(
    'mft-polite-complaint',
    'politeness does not mask a complaint ("thanks but it is still broken")',
    generate([
      'Thanks but my {product} is still broken.',
      'Thank you for the reply, but the {service} still does not work.',
      'I appreciate the help, but I still have not received my {product}.',
      'Thanks {person}, but my refund for the {product} never arrived.',
      'Thanks for nothing {brand}, my {product} is still missing.',
      'Please, I need help, my {product} arrived damaged. Thank you.',
      'Hi, thanks for getting back to me, but the {product} is still not working.',
      'Kind regards, I have been waiting {time} for my {product}.',
    ]),
    grievance,
  ),
  mft(
    'mft-sarcasm',
    'sarcasm markers ("great, another delay") read as a complaint',
    generate([
      'Great, another delay on my {product}.',
      'Oh wonderful, my {product} is late again.',
      'Love waiting {time} for a {product}.',
      'Thanks {brand} for losing my {product}.',
      'Just great. The {service} crashed again.',
      'Awesome, the {product} broke on day one.',
      'Fantastic, {brand} cancelled my {product} again.',
      'Perfect, the {service} logged me out for the third time today.',
    ]),
    grievance,
  ),
  labelled('mft-emoji-only', 'emoji-only messages read as their emoji', [
    ...as(['😡', '😡😡', '👎', '🤬', '😤😤', '💔', '😠', '😞', '😭😭', '🤮', '😒', '👎👎'], negative),
    ...as(['😍', '👍', '❤️', '🙏😊', '🎉🎉', '😀', '🥰', '👏👏', '💯', '😊', '🙌', '👍👍'], positive),
  ]),
  labelled('mft-comparison', 'comparisons: "worse than last time" is negative, "better than before" positive', [
    ...as(
      generate(
        [
          'The {service} is worse than last time.',
          'This {product} is much worse than my old one.',
          '{brand} used to be great, now the {service} is awful.',
          'The new {product} is worse than the one it replaced.',
          'The {service} has gone downhill since last year.',
        ],
        120,
      ),
      negative,
    ),
    ...as(
      generate(
        [
          'The {service} is better than last time.',
          'This {product} is much better than my old one.',
          'The new {product} is even better than I expected.',
          'The {service} has improved a lot since last year, well done.',
        ],
        120,
      ),
      positive,
    ),
  ]),
  inv('inv-brand', 'changing the brand keeps the label', swaps([...COMPLAINTS, ...PRAISES, ...NEUTRALS].filter((t) => t.includes('{brand}')), 'brand', BRANDS)),
  inv('inv-product', 'changing the product keeps the label', swaps([...COMPLAINTS, ...PRAISES, ...NEUTRALS].filter((t) => t.includes('{product}')), 'product', PRODUCTS)),
  inv(
    'inv-person-place',
    'changing a person or a place keeps the label',
    [
      ...swaps(['{person} at the {service} was rude to me.', '{person} from support was so helpful, thank you!', 'I spoke to {person} about my {product} yesterday.'], 'person', PEOPLE, 120),
      ...swaps(['My {product} has been stuck in {place} {time}.', 'The {place} store was great, quick and friendly.', 'I live in {place} and ordered a {product}.'], 'place', PLACES, 120),
    ],
  ),
  inv(
    'inv-order-number',
    'changing the order number keeps the label',
    swaps(['Order {num} arrived broken.', 'Order {num} has not arrived yet, it has been {time}.', 'Order {num} arrived today, thank you!', 'My order number is {num}.', 'Can you check the status of order {num}?', 'Refund for order {num} still missing.'], 'num', ORDER_NUMBERS),
  ),
  inv(
    'inv-typo',
    'a typo in a neutral word keeps the label',
    [...COMPLAINTS, ...PRAISES, ...NEUTRALS]
      .flatMap((t) => generate([t], 12))
      .flatMap((t): [string, string][] => {
        const typos: [RegExp, string][] = [[/\border\b/, 'ordr'], [/\bdelivery\b/, 'delivry'], [/\bweek\b/, 'wek'], [/\bthe\b/, 'teh'], [/\barrived\b/, 'arived'], [/\bfrom\b/, 'form'], [/\bmy\b/, 'ym'], [/\bpackage\b/, 'pakage']];
        const hit = typos.find(([re]) => re.test(t));
        return hit ? [[t, t.replace(hit[0], hit[1])]] : [];
      }),
  ),
  inv(
    'inv-politeness',
    'adding "hi", "please" or "thanks" to a complaint keeps it unhappy and its label',
    generate(COMPLAINTS, 60).flatMap((t): [string, string][] => [
      [t, `Hi, ${t.charAt(0).toLowerCase()}${t.slice(1)}`],
      [t, `${t} Please help.`],
      [t, `${t} Thanks.`],
      [t, `Hello {brand} team, ${t.charAt(0).toLowerCase()}${t.slice(1)} Thank you in advance.`.replace('{brand}', 'Acme')],
    ]),
    (a, b) => a.label === b.label && a.unhappy === b.unhappy,
  ),
  dir(
    'dir-intensifier',
    'adding "very"/"extremely" moves the score away from 0',
    generate(['The {service} was {int} bad.', 'The {service} was {int} good.', 'I am {int} disappointed with the {product}.', 'I am {int} happy with the {product}.', 'The {product} is {int} slow.', 'The {product} is {int} comfortable.', 'The {service} was {int} helpful.', 'The {product} is {int} expensive.'], 400)
      .filter((t) => /\b(?:very|extremely) /.test(t))
      .map((t): [string, string] => [t.replace(/\b(?:very|extremely) /, ''), t]),
    (a, b) => Math.abs(b.score) > Math.abs(a.score) && Math.sign(b.score) === Math.sign(a.score),
  ),
  dir(
    'dir-append-negative',
    'appending a clearly negative sentence never raises the score',
    [...COMPLAINTS, ...PRAISES, ...NEUTRALS]
      .flatMap((t) => generate([t], 6))
      .flatMap((t): [string, string][] =>
        ['The {service} was awful.', 'I want a refund.', 'Never again.', 'This is unacceptable.', 'Very disappointed.'].map((s) => [t, `${t} ${s.replace('{service}', 'support')}`]),
      ),
    (a, b) => b.score <= a.score,
  ),
];

/**
 * Upper bounds on each suite's failure rate: what the model reaches plus about two points, tightened
 * when a model improves and never loosened. Measured rate in the comment: earshot-linear-2026.12.4
 * ("…", apostrophe-less contractions and URL-encoded text read as typed plainly), then 2026.12.3
 * (a negator of a negative word has a feature of its own), 2026.12.2 and, in brackets, 2026.12.1
 * (before irony, politeness and intensifier roles in ./model/features.ts).
 */
const BOUNDS: Record<string, number> = {
  'mft-negative': 0.1, // 0.081, 0.081, 0.081 (0.075)
  'mft-positive': 0.02, // 0, 0, 0 (0)
  'mft-neutral': 0.45, // 0.429, 0.436, 0.436 (0.468): known limit
  'mft-howto': 0.08, // 0.060, 0.060, 0.060 (0.060)
  'mft-negated-positive': 0.04, // 0.029, 0.020, 0.020 (0.020)
  'mft-negated-negative': 0.2, // 0.174, 0.186, 0.395 (0.372): known limit
  'mft-contrast-neg': 0.03, // 0.006, 0.006, 0.006 (0.006)
  'mft-contrast-pos': 0.6, // 0.587, 0.587, 0.576 (0.554): known limit
  'mft-intensified': 0.02, // 0, 0, 0 (0.008)
  'mft-downtoned': 0.02, // 0, 0, 0 (0)
  'mft-question-complaint': 0.05, // 0.030, 0.030, 0.048 (0.054)
  'mft-polite-complaint': 0.09, // 0.089, 0.089, 0.068 (0.048): "Kind regards, I have been waiting …" at 0.70
  'mft-sarcasm': 0.34, // 0.317, 0.317, 0.324 (0.789): known limit for sarcasm without an interjection
  'mft-emoji-only': 0.1, // 0.083, 0.083, 0.083 (0.042): 2 of 24
  'mft-comparison': 0.15, // 0.125, 0.125, 0.125 (0.106)
  'inv-brand': 0.08, // 0.075, 0.058, 0.063 (0.071)
  'inv-product': 0.09, // 0.063, 0.063, 0.063 (0.063)
  'inv-person-place': 0.32, // 0.300, 0.295, 0.300 (0.310): known limit
  'inv-order-number': 0.02, // 0, 0, 0 (0)
  'inv-typo': 0.09, // 0.067, 0.067, 0.079 (0.085)
  'inv-politeness': 0.26, // 0.232, 0.237, 0.246 (0.299): known limit
  'dir-intensifier': 0.02, // 0, 0, 0.132 (0.566)
  'dir-append-negative': 0.02, // 0, 0, 0 (0)
};

/**
 * Classes that still fail often (the README lists them too): plain statements about an order
 * lean positive or negative (mft-neutral); about one in five negated negatives still reads
 * negative ("The phone is not expensive.", "No issues with the website so far.": the negated
 * word's own feature is learned from too few such texts, the negator's own one helps the rest —
 * mft-negated-negative); a positive clause after "but" with no strong positive word stays neutral
 * (mft-contrast-pos); irony without an opening interjection ("Love waiting two weeks for a
 * parcel", "Perfect, … logged me out" with no negative word) reads as praise; a person's or a
 * place's name moves a label near a boundary (inv-person-place: names are hashed words the model
 * learned from tweets); a greeting and "thank you in advance" still lift some complaints to
 * neutral (inv-politeness).
 */
export const KNOWN_LIMITS = ['mft-neutral', 'mft-negated-negative', 'mft-contrast-pos', 'mft-sarcasm', 'inv-person-place', 'inv-politeness'];

describe('CheckList suites on customer messages', () => {
  const results = SUITES.map((s) => ({ s, ...s.run() }));

  it('generates hundreds of cases from templates', () => {
    const total = results.reduce((n, r) => n + r.total, 0);
    // CHECKLIST_SHOW=n prints the table and n failing cases of each suite
    if (process.env.CHECKLIST_SHOW) {
      console.log(['suite | kind | cases | failing | rate', ...results.map((r) => `${r.s.name} | ${r.s.kind} | ${r.total} | ${r.failing.length} | ${(r.failing.length / r.total).toFixed(3)}`)].join('\n'));
    }
    if (process.env.CHECKLIST_SHOW) for (const r of results) console.log(`\n## ${r.s.name}\n${r.failing.slice(0, Number(process.env.CHECKLIST_SHOW)).join('\n')}`);
    expect(total).toBeGreaterThan(2000);
  });

  it('has a bound for every suite', () => {
    expect(Object.keys(BOUNDS).sort()).toEqual(SUITES.map((s) => s.name).sort());
  });

  for (const r of results) {
    it(`${r.s.kind} ${r.s.name}: ${r.s.about}`, () => {
      expect(r.failing.length / r.total, r.failing.slice(0, 5).join('\n')).toBeLessThanOrEqual(BOUNDS[r.s.name]!);
    });
  }
});

describe('irony, politeness and intensifiers (./model/features.ts)', () => {
  it('reads an opening positive interjection before a grievance as irony', () => {
    for (const t of ['Great, another delay on my order.', 'Oh wonderful, my parcel is late again.', 'Just great. The app crashed again.']) {
      const a = analyze(t);
      expect(a.label, t).not.toBe('positive');
      expect(a.unhappy, t).toBe(true);
    }
    expect(analyze('Great, another delay on my order.').explanation.map((e) => e.token)).toContain('great (irony)');
    // without a grievance the interjection is praise
    expect(analyze('Great, my order arrived a day early.').label).toBe('positive');
    expect(analyze('Great, my order arrived a day early.').explanation.map((e) => e.token)).not.toContain('great (irony)');
  });

  it('does not count courtesy in a complaint as praise', () => {
    const a = analyze('Thanks for nothing, my parcel is still missing and the box was damaged.');
    expect(a.label).toBe('negative');
    expect(a.explanation.map((e) => e.token)).toContain('thanks (politeness)');
    expect(analyze('Thanks so much, the parcel arrived early!').label).toBe('positive');
  });

  it('moves the score away from 0 with an intensifier before a rated word', () => {
    for (const [plain, strong] of [['The delivery was bad.', 'The delivery was very bad.'], ['The app was good.', 'The app was extremely good.'], ['I am disappointed with the laptop.', 'I am really disappointed with the laptop.']]) {
      expect(Math.abs(analyze(strong!).score), strong).toBeGreaterThan(Math.abs(analyze(plain!).score));
    }
  });
});

import type { InteractionMessage } from '../interactions/interaction-message';
import { seededRandom } from '../shared/seeded-random';


const FIRST = ['Ava', 'Ben', 'Chloe', 'Daniel', 'Emma', 'Finn', 'Grace', 'Hugo', 'Isla', 'Jack', 'Kate', 'Liam', 'Maya', 'Noah', 'Olivia', 'Paul', 'Quinn', 'Ruby', 'Sam', 'Tara', 'Umar', 'Vera', 'Will', 'Xena', 'Yusuf', 'Zoe', 'Priya', 'Mateo', 'Aiko', 'Lars'];
const LAST = ['Smith', 'Jones', 'Garcia', 'Nguyen', 'Müller', 'Rossi', 'Kowalski', 'Okafor', 'Tanaka', 'Silva', 'Brown', 'Dubois', 'Novak', 'Haddad', 'Larsen', 'Kim', 'Patel', 'Cohen', 'Moreau', 'Fischer'];
const SOCIAL = ['x', 'facebook', 'instagram', 'reddit', 'trustpilot', 'google_reviews', 'app_store'] as const;
const DIRECT = ['email', 'chat', 'call', 'ticket', 'survey'] as const;

const TEMPLATES: { kind: 'complaint' | 'question' | 'praise' | 'churn'; texts: string[] }[] = [
  {
    kind: 'complaint',
    texts: [
      'I was charged twice for my order this month and nobody answers. Not happy.',
      'My parcel is 5 days late and the courier tracking has not moved. Terrible delivery.',
      'Flight cancelled again with no notice, this is the third delay this year #fail',
      'The blender stopped working after two weeks. Really poor quality.',
      'On hold for 45 minutes and the agent hung up on me. Awful customer service.',
      'The app keeps crashing when I try to pay. Fix your website!',
      "I can't log in to my account, the password reset link never arrives",
      'Still waiting for my refund after returning the item a month ago',
      'Prices went up 20% overnight, that is ridiculous',
    ],
  },
  {
    kind: 'question',
    texts: [
      'How do I change the delivery address on an order that already shipped?',
      'Is there a student discount on the annual plan?',
      'Can I return an item I bought in store through the website?',
      'When will the new model be back in stock?',
      'Does the premium plan include phone support?',
      'How long does a refund usually take to reach my card?',
    ],
  },
  {
    kind: 'praise',
    texts: [
      'Delivery arrived a day early and the packaging was perfect. Love it!',
      'Huge thanks to Maria from support, she sorted my billing issue in minutes 🙏',
      'Best purchase this year, the quality is amazing',
      'The new app update is so much faster, great job team',
      'Refund processed the same day. Impressed with the service!',
    ],
  },
  {
    kind: 'churn',
    texts: [
      "Third billing mistake in a row. I'm cancelling my subscription and switching to a competitor.",
      'Never again. Closing my account after this delivery disaster.',
    ],
  },
];

const REPLIES = [
  "We're sorry about this! Could you DM us your order number so we can fix it today?",
  'Thanks for flagging this, our team is looking into it right now.',
  'Thank you so much for the kind words, we will pass them on!',
];

/**
 * How well each department answers, so the listening gap differs by department as it does in real
 * companies: the share of complaints and questions that get a reply at all, and the typical delay
 * in hours (replies come after delay × (0.2..2)). Matched on the text; the rest use `default`.
 */
const CARE_PROFILES: { match: RegExp; replyRate: number; delayH: number }[] = [
  { match: /charged|billing|refund|discount|price|plan/i, replyRate: 0.85, delayH: 2 }, // Finance, Marketing: quick
  { match: /parcel|delivery|courier|address|stock/i, replyRate: 0.55, delayH: 10 }, // Logistics: slow, often ignored
  { match: /flight|delay|cancel/i, replyRate: 0.45, delayH: 8 }, // Operations
  { match: /quality|stopped working|blender/i, replyRate: 0.35, delayH: 20 }, // Product: rarely answers social media
  { match: /app|website|log in|password/i, replyRate: 0.6, delayH: 5 }, // Digital
  { match: /hold|agent|support/i, replyRate: 0.75, delayH: 3 }, // Customer Care
];
const DEFAULT_PROFILE = { replyRate: 0.65, delayH: 6 };

export interface DemoOptions {
  customers?: number;
  interactions?: number;
  months?: number;
  seed?: number;
  now?: Date;
}

/**
 * A realistic synthetic set: people active on several channels over several months,
 * a mood per person (some happy, some angry), complaints that get replies and some that don't.
 */
export function generateDemoInteractions(opts: DemoOptions = {}): InteractionMessage[] {
  const rand = seededRandom(opts.seed ?? 42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const nCustomers = opts.customers ?? 300;
  const nInteractions = opts.interactions ?? 3000;
  const spanMs = (opts.months ?? 6) * 30 * 86_400_000;
  const now = (opts.now ?? new Date()).getTime();

  const people = Array.from({ length: nCustomers }, (_, i) => {
    const first = pick(FIRST);
    const last = pick(LAST);
    const slug = `${first}${last}`.toLowerCase().normalize('NFD').replace(/[^a-z]/g, '');
    return {
      first,
      last,
      handle: `${slug}${i}`,
      email: `${slug}.${i}@example.com`,
      // mood skews what this person says: -1 angry .. +1 happy
      mood: rand() * 2 - 1,
      social: pick(SOCIAL),
    };
  });

  const out: InteractionMessage[] = [];
  let seq = 0;
  while (out.length < nInteractions) {
    const p = pick(people);
    const r = rand();
    const kind = p.mood < -0.3 ? (r < 0.7 ? 'complaint' : r < 0.85 ? 'churn' : 'question') : p.mood > 0.4 ? (r < 0.7 ? 'praise' : 'question') : r < 0.4 ? 'complaint' : r < 0.75 ? 'question' : 'praise';
    const text = pick(TEMPLATES.find((t) => t.kind === kind)!.texts);
    const social = rand() < 0.6;
    const source = social ? p.social : pick(DIRECT);
    const occurredAt = new Date(now - Math.floor(rand() ** 1.3 * spanMs));
    const externalId = `demo-${source}-${++seq}`;
    out.push({
      eventId: `demo-evt-${seq}`,
      source,
      externalId,
      url: social ? `https://${source}.example/${p.handle}/status/${seq}` : null,
      occurredAt: occurredAt.toISOString(),
      direction: 'inbound',
      author: social
        ? { handle: p.handle, displayName: `${p.first} ${p.last}`, ...(rand() < 0.3 ? { email: p.email } : {}) }
        : { email: p.email, displayName: `${p.first} ${p.last}` },
      text,
      rating: source === 'trustpilot' || source === 'google_reviews' || source === 'app_store' ? ratingFor(kind, rand) : null,
    });
    // Complaints and questions get an answer at the rate and speed of their department; the rest
    // are the listening gap. Some social replies only @-mention the customer instead of threading.
    const profile = CARE_PROFILES.find((c) => c.match.test(text)) ?? DEFAULT_PROFILE;
    if ((kind === 'complaint' || kind === 'question' || kind === 'churn') && rand() < profile.replyRate && out.length < nInteractions) {
      const delayMs = Math.floor(profile.delayH * (0.2 + rand() * 1.8) * 3_600_000);
      const mention = social && rand() < 0.2;
      out.push({
        eventId: `demo-evt-${++seq}`,
        source,
        externalId: `demo-${source}-${seq}`,
        occurredAt: new Date(Math.min(now, occurredAt.getTime() + delayMs)).toISOString(),
        direction: 'outbound',
        ...(mention ? {} : { inReplyTo: externalId }),
        author: { handle: 'earshot_brand', displayName: 'Brand Care Team' },
        text: mention ? `@${p.handle} ${pick(REPLIES)}` : pick(REPLIES),
      });
    }
  }
  return out;
}

function ratingFor(kind: string, rand: () => number): number {
  if (kind === 'praise') return rand() < 0.8 ? 5 : 4;
  if (kind === 'question') return 3;
  return rand() < 0.7 ? 1 : 2;
}

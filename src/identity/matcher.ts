import {
  canonicalNetwork,
  DEFAULT_EMAIL_OPTIONS,
  normalizeEmail,
  normalizeHandle,
  normalizePhone,
  type EmailOptions,
} from './normalize';
import { isNickname, jaroWinkler, soundex, tokenSimilarity, withinOneEdit } from './similarity';
import { seededRandom } from '../shared/seeded-random';

/** One person as a source knows them: a CRM contact, a Febrl row, a social author. */
export interface PersonRecord {
  id: string;
  givenName?: string | null;
  surname?: string | null;
  streetNumber?: string | null;
  address1?: string | null;
  address2?: string | null;
  /** Suburb or city (Febrl `suburb`, Salesforce `MailingCity`). */
  city?: string | null;
  postcode?: string | null;
  state?: string | null;
  /** As given: `19560409`, `1956-04-09` … */
  dateOfBirth?: string | null;
  company?: string | null;
  emails?: readonly string[];
  phones?: readonly string[];
  handles?: readonly { network: string; handle: string }[];
  /** CRM identity keys as made by identityKey('crm', …): `salesforce:Contact:003…`, `hubspot:contact:51`. */
  crmIds?: readonly string[];
}

export type EvidenceOutcome = 'agree' | 'partial' | 'disagree' | 'missing';

/** How one field contributed to a pair's score: the explanation stored with every link. */
export interface Evidence {
  field: string;
  outcome: EvidenceOutcome;
  /** Name of the comparison level reached (`exact`, `jw>=0.92`, `one_edit`, …). */
  level?: string;
  similarity?: number;
  /** log2 of the likelihood ratio m/u of the level; 0 when a value is missing. */
  weight: number;
  detail?: string;
}

export interface PairScore {
  score: number;
  evidence: Evidence[];
}

export interface ScoredPair extends PairScore {
  a: string;
  b: string;
}

/** m and u probabilities per comparison level (level 0 = full agreement, last = disagreement). */
export interface LevelProbabilities {
  m: number[];
  u: number[];
}

/** Fellegi–Sunter parameters: per-field level probabilities and the match rate among candidates. */
export interface MatchParameters {
  comparisons: Record<string, LevelProbabilities>;
  /** Share of candidate pairs that are matches, as EM estimated it (informative only). */
  lambda?: number;
  /** `estimated` (EM on the records) or `default`. */
  source?: 'estimated' | 'default' | 'configured';
}

export interface MatcherOptions {
  email?: EmailOptions;
  /** Region for phone numbers without a country prefix. */
  defaultRegion?: string;
  /** Block members compared exhaustively; larger blocks are compared in a sorted window. */
  maxBlockSize?: number;
  /** Window of the sorted neighbourhood in oversized blocks. */
  window?: number;
}

/**
 * Default thresholds, in bits (sum of log2 likelihood ratios m/u over the fields). Chosen on the
 * Febrl evaluation (`npm run eval:identity`): from 11 bits up, auto-links keep pairwise precision
 * at 1.0000 on all three data sets (at 9 bits dataset 2 drops to 0.9985), and 13 leaves a margin
 * for real data, whose weights are fitted less well than Febrl's. The review band 7–13 bits
 * holds 0, 5 and 2 suggestions on datasets 1–3 (1 of them right); at 3 bits it would hold 0, 26
 * and 10 with no more right ones, at 9 bits 0, 3 and 2.
 */
export const DEFAULT_AUTO_LINK_THRESHOLD = 13;
export const DEFAULT_REVIEW_THRESHOLD = 7;

const DEFAULT_MAX_BLOCK = 40;
const DEFAULT_WINDOW = 8;

// ---------------------------------------------------------------------------------------------
// Prepared records: everything a comparison needs, computed once per record.

/** A record with every value the comparisons use, normalized once. */
export interface Prepared {
  id: string;
  given: string;
  surname: string;
  givenSdx: string;
  surnameSdx: string;
  streetNumber: string;
  addressTokens: string[];
  addressJoined: string;
  city: string;
  cityJoined: string;
  postcode: string;
  state: string;
  dob: string;
  company: string;
  emails: string[];
  phones: string[];
  handles: string[];
  handleStems: string[];
  crmIds: string[];
  crmObjects: string[];
  sortKey: string;
}

/**
 * Words CRM exports and checkout forms put where a name is required and unknown ("Guest",
 * "Valued Customer", "N/A", "."), as `clean` leaves them. Two records agreeing on one are no
 * evidence of one person, so a name made only of these words counts as missing. A real name may
 * hold one ("Christopher Guest", "Test" as a surname): only a name with no other word goes.
 */
const PLACEHOLDER_NAME_WORDS: ReadonlySet<string> = new Set([
  'unknown', 'guest', 'customer', 'client', 'valued', 'anonymous', 'anon', 'n', 'a', 'none', 'null', 'undefined',
  'test', 'tbd', 'noname', 'no', 'name', 'user', 'x', 'xx', 'xxx', 'walk', 'in', 'cash', 'mr', 'mrs', 'ms', 'sir', 'madam',
]);

/** `clean(given)` and `clean(surname)`, both emptied when every word of the two is a placeholder */
function cleanNames(givenName: string | null | undefined, surname: string | null | undefined): [string, string] {
  const given = clean(givenName);
  const sur = clean(surname);
  const words = `${given} ${sur}`.split(' ').filter((w) => w.length > 0);
  return words.every((w) => PLACEHOLDER_NAME_WORDS.has(w)) ? ['', ''] : [given, sur];
}

function clean(s: string | null | undefined): string {
  if (s == null) return '';
  return s.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase().replace(/[^a-z0-9 ]+/g, ' ').replace(/\s+/g, ' ').trim();
}

function normalizeDob(raw: string | null | undefined): string {
  if (raw == null) return '';
  const s = raw.trim();
  const iso = /^(\d{4})-?(\d{1,2})-?(\d{1,2})(?:$|[T ])/.exec(s);
  if (iso) return iso[1]! + iso[2]!.padStart(2, '0') + iso[3]!.padStart(2, '0');
  const digits = s.replace(/\D/g, '');
  return digits.length >= 6 ? digits : '';
}

const COMPANY_SUFFIX = /\b(inc|incorporated|llc|ltd|limited|pty|plc|gmbh|ag|sa|sas|bv|co|corp|corporation|company)\b/g;

/** Records as the comparisons see them; exported for the lead's incremental index persistence. */
export function prepareRecord(r: PersonRecord, options: MatcherOptions = {}): Prepared {
  const [given, surname] = cleanNames(r.givenName, r.surname);
  const a1 = clean(r.address1);
  const a2 = clean(r.address2);
  const addressTokens = `${a1} ${a2}`.split(' ').filter((t) => t.length > 0);
  const city = clean(r.city);
  const emailOptions = options.email ?? DEFAULT_EMAIL_OPTIONS;
  const emails = uniq((r.emails ?? []).map((e) => normalizeEmail(e, emailOptions)));
  const phones = uniq((r.phones ?? []).map((p) => normalizePhone(p, options.defaultRegion ?? 'US')));
  const handles: string[] = [];
  const handleStems: string[] = [];
  for (const h of r.handles ?? []) {
    const net = canonicalNetwork(h.network);
    const norm = net ? normalizeHandle(net, h.handle) : null;
    if (!net || !norm) continue;
    handles.push(`${net}:${norm}`);
    const stem = norm.replace(/^(channel|c|user|id):/, '').replace(/[^a-z]/g, '');
    if (stem.length >= 3) handleStems.push(stem);
  }
  const crmIds = uniq((r.crmIds ?? []).map((c) => c.trim() || null));
  const crmObjects = crmIds.map((c) => c.slice(0, c.lastIndexOf(':')));
  return {
    id: r.id,
    given: given.replace(/ /g, ''),
    surname: surname.replace(/ /g, ''),
    givenSdx: soundex(given),
    surnameSdx: soundex(surname),
    streetNumber: clean(r.streetNumber).replace(/ /g, ''),
    addressTokens,
    addressJoined: addressTokens.join(''),
    city,
    cityJoined: city.replace(/ /g, ''),
    postcode: clean(r.postcode).replace(/ /g, ''),
    state: clean(r.state),
    dob: normalizeDob(r.dateOfBirth),
    company: clean(r.company).replace(COMPANY_SUFFIX, '').replace(/\s+/g, ' ').trim(),
    emails,
    phones,
    handles: uniq(handles),
    handleStems: uniq(handleStems),
    crmIds,
    crmObjects,
    // Ties are broken by a hash of the id, not the id: ids often encode how records were made
    // (Febrl's rec-N-org / rec-N-dup-k), and sorting on them would place true pairs side by side.
    sortKey: `${surname}|${given}|${idHash(r.id)}`,
  };
}

function idHash(id: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

function uniq(values: (string | null)[]): string[] {
  return [...new Set(values.filter((v): v is string => v != null && v.length > 0))];
}

// ---------------------------------------------------------------------------------------------
// Comparisons. Each returns a level index (0 = agree, last = disagree) or -1 when a value is
// missing on either side; the similarity of the last call is left in `scratch` for evidence.

const scratch = { sim: Number.NaN, detail: '' };

interface Comparison {
  field: string;
  levels: readonly string[];
  /** Estimated by EM from the data; the others carry configured m/u (deterministic keys). */
  estimated: boolean;
  /** Exact-agreement value, for u of level 0 from value frequencies. */
  value?: (p: Prepared) => string;
  compare(a: Prepared, b: Prepared, swapped: boolean): number;
}

function jwLevels(x: string, y: string, cuts: readonly number[]): number {
  if (x === y) {
    scratch.sim = 1;
    return 0;
  }
  const s = jaroWinkler(x, y);
  scratch.sim = s;
  for (let i = 0; i < cuts.length; i++) if (s >= cuts[i]!) return i + 1;
  return cuts.length + 1;
}

function editLevels(x: string, y: string): number {
  if (x.length === 0 || y.length === 0) return -1;
  scratch.sim = Number.NaN;
  if (x === y) return 0;
  return withinOneEdit(x, y) ? 1 : 2;
}

const NAME_CUTS = [0.92, 0.8] as const;

const COMPARISONS: readonly Comparison[] = [
  {
    field: 'given_name',
    levels: ['exact', 'nickname_or_jw>=0.92', 'jw>=0.80', 'different'],
    estimated: true,
    value: (p) => p.given,
    compare(a, b, swapped) {
      const x = a.given;
      const y = swapped ? b.surname : b.given;
      if (!x || !y) return -1;
      if (x !== y && isNickname(x, y)) {
        scratch.sim = jaroWinkler(x, y);
        scratch.detail = 'nickname';
        return 1;
      }
      return jwLevels(x, y, NAME_CUTS);
    },
  },
  {
    field: 'surname',
    levels: ['exact', 'jw>=0.92', 'jw>=0.80', 'different'],
    estimated: true,
    value: (p) => p.surname,
    compare(a, b, swapped) {
      const x = a.surname;
      const y = swapped ? b.given : b.surname;
      if (!x || !y) return -1;
      return jwLevels(x, y, NAME_CUTS);
    },
  },
  {
    field: 'date_of_birth',
    levels: ['exact', 'one_edit', 'day_month_swapped', 'different'],
    estimated: true,
    value: (p) => p.dob,
    compare(a, b) {
      const x = a.dob;
      const y = b.dob;
      if (!x || !y) return -1;
      scratch.sim = Number.NaN;
      if (x === y) return 0;
      if (withinOneEdit(x, y)) return 1;
      if (x.length === 8 && y.length === 8 && x.slice(0, 4) === y.slice(0, 4) && x.slice(4, 6) === y.slice(6, 8) && x.slice(6, 8) === y.slice(4, 6)) return 2;
      return 3;
    },
  },
  {
    field: 'postcode',
    levels: ['exact', 'one_edit', 'different'],
    estimated: true,
    value: (p) => p.postcode,
    compare: (a, b) => editLevels(a.postcode, b.postcode),
  },
  {
    field: 'city',
    levels: ['exact', 'jw>=0.92', 'jw>=0.80', 'different'],
    estimated: true,
    value: (p) => p.cityJoined,
    compare(a, b) {
      if (!a.cityJoined || !b.cityJoined) return -1;
      return jwLevels(a.cityJoined, b.cityJoined, [0.92, 0.8]);
    },
  },
  {
    field: 'state',
    levels: ['exact', 'different'],
    estimated: true,
    value: (p) => p.state,
    compare(a, b) {
      if (!a.state || !b.state) return -1;
      scratch.sim = Number.NaN;
      return a.state === b.state ? 0 : 1;
    },
  },
  {
    field: 'street_number',
    levels: ['exact', 'one_edit', 'different'],
    estimated: true,
    value: (p) => p.streetNumber,
    compare: (a, b) => editLevels(a.streetNumber, b.streetNumber),
  },
  {
    field: 'address',
    levels: ['exact', 'sim>=0.95', 'sim>=0.85', 'sim>=0.70', 'different'],
    estimated: true,
    value: (p) => p.addressJoined,
    compare(a, b) {
      if (a.addressTokens.length === 0 || b.addressTokens.length === 0) return -1;
      if (a.addressJoined === b.addressJoined) {
        scratch.sim = 1;
        return 0;
      }
      // Token similarity survives swapped address lines; the joined form survives split or
      // merged words ("pridhamstreet"). The better of the two is the honest similarity.
      const s = Math.max(tokenSimilarity(a.addressTokens, b.addressTokens), jaroWinkler(a.addressJoined, b.addressJoined));
      scratch.sim = s;
      if (s >= 0.95) return 1;
      if (s >= 0.85) return 2;
      if (s >= 0.7) return 3;
      return 4;
    },
  },
  {
    field: 'company',
    levels: ['exact', 'jw>=0.90', 'different'],
    estimated: true,
    value: (p) => p.company,
    compare(a, b) {
      if (!a.company || !b.company) return -1;
      return jwLevels(a.company, b.company, [0.9]);
    },
  },
  {
    field: 'email',
    levels: ['shared', 'different'],
    estimated: false,
    compare: (a, b) => sharedLevel(a.emails, b.emails),
  },
  {
    field: 'phone',
    levels: ['shared', 'different'],
    estimated: false,
    compare: (a, b) => sharedLevel(a.phones, b.phones),
  },
  {
    field: 'handle',
    levels: ['shared', 'different_on_same_network'],
    estimated: false,
    compare(a, b) {
      if (a.handles.length === 0 || b.handles.length === 0) return -1;
      scratch.sim = Number.NaN;
      for (const h of a.handles) if (b.handles.includes(h)) return 0;
      // Accounts on different networks say nothing about each other.
      for (const h of a.handles) {
        const net = h.slice(0, h.indexOf(':') + 1);
        if (b.handles.some((o) => o.startsWith(net))) return 1;
      }
      return -1;
    },
  },
  {
    field: 'handle_name',
    levels: ['strong', 'partial', 'different'],
    estimated: false,
    compare(a, b) {
      // Only between a handle on one side and a name on the other: two handles are compared
      // by `handle`, two names by the name fields.
      if (a.handleStems.length > 0 && b.handleStems.length === 0 && b.surname) return handleNameLevel(a.handleStems, b);
      if (b.handleStems.length > 0 && a.handleStems.length === 0 && a.surname) return handleNameLevel(b.handleStems, a);
      return -1;
    },
  },
  {
    field: 'crm_id',
    levels: ['same_record', 'other_record_of_same_object'],
    estimated: false,
    compare(a, b) {
      if (a.crmIds.length === 0 || b.crmIds.length === 0) return -1;
      scratch.sim = Number.NaN;
      for (const c of a.crmIds) if (b.crmIds.includes(c)) return 0;
      for (const o of a.crmObjects) if (b.crmObjects.includes(o)) return 1;
      return -1;
    },
  },
];

const FIELD_INDEX = new Map(COMPARISONS.map((c, i) => [c.field, i]));
const GIVEN = FIELD_INDEX.get('given_name')!;
const SURNAME = FIELD_INDEX.get('surname')!;
const CRM = FIELD_INDEX.get('crm_id')!;
const HANDLE_NAME = FIELD_INDEX.get('handle_name')!;
/**
 * Fields that say who a person is rather than where or with whom: a name, a birth date, or an
 * identifier of their own. A pair that agrees on none of them agrees on a place or an employer
 * (colleagues at one office, a household at one address: CRM exports hold many such records
 * without a name), so it goes to review however many bits the place gives: 24 name-less HubSpot
 * and Salesforce contacts at one office were auto-linked into 12 customers
 * (`identity-junk-values.test.ts`). Febrl: auto-link recall 1.0000 → 0.9980 (dataset 1) and
 * 0.9986 → 0.9976 (dataset 3); those pairs go to review, precision stays 1.0000.
 */
const PERSONAL_FIELDS: ReadonlySet<number> = new Set(
  ['given_name', 'surname', 'handle_name', 'date_of_birth', 'email', 'phone', 'handle'].map((f) => FIELD_INDEX.get(f)!),
);

/**
 * Bits of agreement a pair needs outside the name fields to be linked without review. Names
 * alone (or a handle that looks like a name) are weak in real data: "Jane Doe" is many people,
 * and the name weights learnt on one population overstate rare names in another.
 */
const MIN_CORROBORATION = 3;

function sharedLevel(x: readonly string[], y: readonly string[]): number {
  if (x.length === 0 || y.length === 0) return -1;
  scratch.sim = Number.NaN;
  for (const v of x) if (y.includes(v)) return 0;
  return 1;
}

function handleNameLevel(stems: readonly string[], p: Prepared): number {
  const g = p.given;
  const s = p.surname;
  let best = 2;
  let bestSim = 0;
  for (const stem of stems) {
    const full = [g + s, s + g].filter((v) => v.length > s.length || !g);
    const sim = Math.max(...full.map((f) => jaroWinkler(stem, f)));
    if (sim > bestSim) bestSim = sim;
    if (full.some((f) => stem === f || (f.length >= 6 && stem.includes(f))) || sim >= 0.94) {
      best = 0;
      break;
    }
    const partial = g ? [g[0] + s, s + g[0], g + s[0]] : [];
    if (partial.includes(stem) || (s.length >= 4 && stem.includes(s)) || sim >= 0.85) best = Math.min(best, 1);
  }
  scratch.sim = bestSim;
  return best;
}

/** Configured probabilities of the deterministic comparisons (never estimated: too rare to learn). */
const FIXED: Record<string, LevelProbabilities> = {
  email: { m: [0.75, 0.25], u: [1e-6, 1 - 1e-6] },
  phone: { m: [0.7, 0.3], u: [1e-6, 1 - 1e-6] },
  handle: { m: [0.9, 0.1], u: [1e-7, 1 - 1e-7] },
  handle_name: { m: [0.55, 0.3, 0.15], u: [0.0005, 0.01, 0.9895] },
  crm_id: { m: [0.99, 0.5], u: [1e-9, 1 - 1e-9] },
};

/**
 * Parameters estimated by EM (unsupervised) on Febrl dataset 3 and rounded; used when a batch
 * is too small to estimate its own and by the incremental index until a batch job refits them.
 */
export const DEFAULT_PARAMETERS: MatchParameters = Object.freeze({
  source: 'default',
  comparisons: {
    // EM on Febrl dataset 3, rounded. Febrl never swaps day and month, so EM puts m of that
    // level near 0; real entry forms do, hence the configured 0.01.
    given_name: { m: [0.66, 0.16, 0.034, 0.146], u: [0.0036, 0.0018, 0.0063, 0.9883] },
    surname: { m: [0.634, 0.225, 0.037, 0.104], u: [0.0033, 0.0011, 0.0042, 0.9914] },
    date_of_birth: { m: [0.89, 0.027, 0.01, 0.073], u: [0.0007, 0.0013, 0.00003, 0.99797] },
    postcode: { m: [0.763, 0.205, 0.032], u: [0.0015, 0.013, 0.9855] },
    city: { m: [0.673, 0.217, 0.015, 0.095], u: [0.0015, 0.0004, 0.0028, 0.9953] },
    state: { m: [0.938, 0.062], u: [0.212, 0.788] },
    street_number: { m: [0.801, 0.069, 0.13], u: [0.014, 0.22, 0.766] },
    address: { m: [0.376, 0.366, 0.188, 0.045, 0.025], u: [0.0004, 0.0002, 0.0006, 0.087, 0.9118] },
    // Not in Febrl: configured. Company names are shared by colleagues, so agreement is weak.
    company: { m: [0.7, 0.15, 0.15], u: [0.01, 0.01, 0.98] },
    ...FIXED,
  },
});

// ---------------------------------------------------------------------------------------------
// Scoring

interface WeightTable {
  /** weights[k][level] in bits. */
  weights: Float64Array[];
}

function weightTable(params: MatchParameters): WeightTable {
  return {
    weights: COMPARISONS.map((c) => {
      const p = params.comparisons[c.field] ?? DEFAULT_PARAMETERS.comparisons[c.field]!;
      const w = new Float64Array(c.levels.length);
      for (let l = 0; l < c.levels.length; l++) w[l] = Math.log2(Math.max(p.m[l] ?? 1e-6, 1e-9) / Math.max(p.u[l] ?? 1e-6, 1e-12));
      return w;
    }),
  };
}

function nameSwapped(a: Prepared, b: Prepared): boolean {
  // Febrl and hand-typed CRM entries often transpose given name and surname; compare in the
  // orientation that fits better, and say so in the evidence.
  if (!a.given || !a.surname || !b.given || !b.surname) return false;
  if (a.given === b.given || a.surname === b.surname) return false;
  const direct = jaroWinkler(a.given, b.given) + jaroWinkler(a.surname, b.surname);
  const swapped = jaroWinkler(a.given, b.surname) + jaroWinkler(a.surname, b.given);
  return swapped > direct + 0.15;
}

/** Levels of every comparison for one pair (-1 = missing). */
function compareLevels(a: Prepared, b: Prepared, out: Int8Array): boolean {
  const swapped = nameSwapped(a, b);
  for (let k = 0; k < COMPARISONS.length; k++) out[k] = COMPARISONS[k]!.compare(a, b, swapped);
  return swapped;
}

/** True when a pair may be auto-linked: a name or an identifier of the person agrees, corroborated beyond names, and no CRM conflict. */
function autoLinkable(levels: Int8Array, table: WeightTable): boolean {
  if (levels[CRM] === 1) return false;
  let support = 0;
  let personal = false;
  for (let k = 0; k < levels.length; k++) {
    const l = levels[k]!;
    if (l < 0) continue;
    const w = table.weights[k]![l]!;
    if (w <= 0) continue;
    if (PERSONAL_FIELDS.has(k)) personal = true;
    if (k !== GIVEN && k !== SURNAME && k !== HANDLE_NAME) support += w;
  }
  return personal && support >= MIN_CORROBORATION;
}

function scoreLevels(levels: Int8Array, table: WeightTable): number {
  let s = 0;
  for (let k = 0; k < levels.length; k++) {
    const l = levels[k]!;
    if (l >= 0) s += table.weights[k]![l]!;
  }
  return s;
}

function explain(a: Prepared, b: Prepared, table: WeightTable): PairScore {
  const swapped = nameSwapped(a, b);
  const evidence: Evidence[] = [];
  let score = 0;
  for (let k = 0; k < COMPARISONS.length; k++) {
    const c = COMPARISONS[k]!;
    scratch.sim = Number.NaN;
    scratch.detail = '';
    const level = c.compare(a, b, swapped);
    if (level < 0) {
      // Fields neither side has are not evidence at all; fields one side lacks are shown as
      // missing so a reviewer sees what could not be checked.
      if (hasField(c.field, a) || hasField(c.field, b)) evidence.push({ field: c.field, outcome: 'missing', weight: 0 });
      continue;
    }
    const weight = round3(table.weights[k]![level]!);
    score += table.weights[k]![level]!;
    const e: Evidence = {
      field: c.field,
      outcome: level === 0 ? 'agree' : level === c.levels.length - 1 ? 'disagree' : 'partial',
      level: c.levels[level]!,
      weight,
    };
    if (!Number.isNaN(scratch.sim)) e.similarity = round3(scratch.sim);
    const details: string[] = [];
    if (scratch.detail) details.push(scratch.detail);
    if (swapped && (k === GIVEN || k === SURNAME)) details.push('given name and surname transposed');
    if (details.length > 0) e.detail = details.join('; ');
    evidence.push(e);
  }
  return { score: round3(score), evidence };
}

function hasField(field: string, p: Prepared): boolean {
  switch (field) {
    case 'given_name':
      return !!p.given;
    case 'surname':
      return !!p.surname;
    case 'date_of_birth':
      return !!p.dob;
    case 'postcode':
      return !!p.postcode;
    case 'city':
      return !!p.cityJoined;
    case 'state':
      return !!p.state;
    case 'street_number':
      return !!p.streetNumber;
    case 'address':
      return p.addressTokens.length > 0;
    default:
      return false;
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

// ---------------------------------------------------------------------------------------------
// Blocking

/**
 * Blocking keys: a pair is compared only when the two records share a key. Several keys, each
 * tolerant of a different kind of error, so one corrupted field does not hide a true match;
 * deterministic identities are keys too.
 */
function blockingKeys(p: Prepared, withHandleNameKeys: boolean): string[] {
  const keys: string[] = [];
  const g0 = p.given.charAt(0);
  const s0 = p.surname.charAt(0);
  if (p.surnameSdx) keys.push(`s:${p.surnameSdx}${g0}`);
  if (p.givenSdx) keys.push(`g:${p.givenSdx}${s0}`);
  if (p.givenSdx && p.surnameSdx) keys.push(p.givenSdx < p.surnameSdx ? `n:${p.givenSdx}${p.surnameSdx}` : `n:${p.surnameSdx}${p.givenSdx}`);
  if (p.postcode) keys.push(`p:${p.postcode}`);
  if (p.dob) keys.push(`d:${p.dob}`);
  if (p.streetNumber && p.addressJoined) keys.push(`a:${p.streetNumber}:${p.addressJoined.slice(0, 3)}`);
  if (p.cityJoined) keys.push(`c:${p.cityJoined.slice(0, 4)}:${p.streetNumber || s0}`);
  if (p.company) keys.push(`o:${p.company.slice(0, 6)}:${s0}`);
  for (const e of p.emails) keys.push(`e:${e}`);
  for (const t of p.phones) keys.push(`t:${t}`);
  for (const h of p.handles) keys.push(`h:${h}`);
  for (const c of p.crmIds) keys.push(`x:${c}`);
  for (const stem of p.handleStems) keys.push(`hn:${stem.slice(0, 4)}`);
  if (withHandleNameKeys && p.handleStems.length === 0 && p.surname) {
    // What a handle made from this name would start with: janedoe, jdoe, doejane, jane…
    const starts = new Set([(p.given + p.surname).slice(0, 4), (g0 + p.surname).slice(0, 4), p.surname.slice(0, 4)]);
    if (p.given.length >= 4) starts.add(p.given.slice(0, 4));
    for (const s of starts) if (s.length === 4) keys.push(`hn:${s}`);
  }
  return keys;
}

/** Keys that must never be capped: records sharing them are the same identity by definition. */
function isDeterministicKey(key: string): boolean {
  const c = key.charCodeAt(0);
  return key.charCodeAt(1) === 58 /* ':' */ && (c === 101 || c === 116 || c === 104 || c === 120); // e t h x
}

/**
 * Candidate pairs for a batch. Blocks up to `maxBlockSize` are compared exhaustively; larger
 * ones (a very common surname, a postcode shared by a town) only within a sliding window over
 * the members sorted by name, which keeps the cost linear in the number of records.
 *
 * Must stay true: every pair appears once, with a < b.
 */
export function candidatePairs(records: readonly PersonRecord[], options: MatcherOptions = {}): Array<[number, number]> {
  const prepared = records.map((r) => prepareRecord(r, options));
  return blockPairs(prepared, options);
}

function blockPairs(prepared: readonly Prepared[], options: MatcherOptions): Array<[number, number]> {
  const maxBlock = options.maxBlockSize ?? DEFAULT_MAX_BLOCK;
  const window = options.window ?? DEFAULT_WINDOW;
  const withHandleNameKeys = prepared.some((p) => p.handleStems.length > 0);
  const blocks = new Map<string, number[]>();
  for (let i = 0; i < prepared.length; i++) {
    for (const key of blockingKeys(prepared[i]!, withHandleNameKeys)) {
      let b = blocks.get(key);
      if (!b) blocks.set(key, (b = []));
      b.push(i);
    }
  }
  const n = prepared.length;
  const seen = new Set<number>();
  const pairs: Array<[number, number]> = [];
  const add = (x: number, y: number): void => {
    if (x === y) return;
    const a = x < y ? x : y;
    const b = x < y ? y : x;
    const code = a * n + b;
    if (seen.has(code)) return;
    seen.add(code);
    pairs.push([a, b]);
  };
  for (const [key, members] of blocks) {
    if (members.length < 2) continue;
    if (members.length <= maxBlock || isDeterministicKey(key)) {
      for (let i = 0; i < members.length; i++) for (let j = i + 1; j < members.length; j++) add(members[i]!, members[j]!);
    } else {
      const sorted = [...members].sort((x, y) => (prepared[x]!.sortKey < prepared[y]!.sortKey ? -1 : 1));
      for (let i = 0; i < sorted.length; i++) for (let j = i + 1; j <= i + window && j < sorted.length; j++) add(sorted[i]!, sorted[j]!);
    }
  }
  return pairs;
}

// ---------------------------------------------------------------------------------------------
// Parameter estimation (EM), unsupervised: it never sees which records are duplicates.


export interface EstimateOptions extends MatcherOptions {
  /** Random pairs drawn to estimate u; default 20,000. */
  samplePairs?: number;
  iterations?: number;
  seed?: number;
}

/**
 * Estimates m and u of the fuzzy comparisons from the records alone. u (chance agreement) comes
 * from value frequencies and random pairs, which are almost all non-matches; m and the match
 * rate come from EM over the blocked candidate pairs, with u held fixed, as Splink does.
 *
 * Must stay true: no label or ground truth is used; the same records and seed give the same
 * parameters; deterministic comparisons keep their configured values.
 */
export function estimateParameters(records: readonly PersonRecord[], options: EstimateOptions = {}): MatchParameters {
  const prepared = records.map((r) => prepareRecord(r, options));
  return estimateFromPrepared(prepared, blockPairs(prepared, options), options);
}

function estimateFromPrepared(prepared: readonly Prepared[], pairs: ReadonlyArray<[number, number]>, options: EstimateOptions, levelsOut?: Int8Array[]): MatchParameters {
  const K = COMPARISONS.length;
  const est = COMPARISONS.map((c, k) => (c.estimated ? k : -1)).filter((k) => k >= 0);
  const n = prepared.length;
  const comparisons: Record<string, LevelProbabilities> = {};

  // u: exact agreement from value frequencies (exact for random pairs), the other levels from a
  // random sample of pairs.
  const uCounts = est.map((k) => new Float64Array(COMPARISONS[k]!.levels.length));
  const rnd = seededRandom(options.seed ?? 12345);
  const samples = Math.min(options.samplePairs ?? 20_000, (n * (n - 1)) / 2);
  const levels = new Int8Array(K);
  for (let s = 0; s < samples; s++) {
    const i = Math.floor(rnd() * n);
    let j = Math.floor(rnd() * (n - 1));
    if (j >= i) j++;
    compareLevels(prepared[i]!, prepared[j]!, levels);
    est.forEach((k, e) => {
      const l = levels[k]!;
      if (l >= 0) uCounts[e]![l]!++;
    });
  }
  const present: number[] = est.map(() => 0);
  const u = est.map((k, e) => {
    const c = COMPARISONS[k]!;
    const freq = new Map<string, number>();
    let total = 0;
    for (const p of prepared) {
      const v = c.value!(p);
      if (!v) continue;
      freq.set(v, (freq.get(v) ?? 0) + 1);
      total++;
    }
    present[e] = total;
    let exact = 0;
    for (const f of freq.values()) exact += (f / total) * (f / total);
    exact = Math.max(exact, 1 / Math.max(total * total, 1));
    const counts = uCounts[e]!;
    const L = counts.length;
    let rest = 0;
    for (let l = 1; l < L; l++) rest += counts[l]! + 0.5;
    const out = [exact];
    for (let l = 1; l < L; l++) out.push(((1 - exact) * (counts[l]! + 0.5)) / rest);
    return out;
  });

  // EM on the patterns of the candidate pairs.
  const patterns = new Map<string, { levels: number[]; count: number }>();
  for (let p = 0; p < pairs.length; p++) {
    const [i, j] = pairs[p]!;
    const lv = levelsOut?.[p] ?? levels;
    if (!levelsOut) compareLevels(prepared[i]!, prepared[j]!, lv);
    let key = '';
    for (const k of est) key += String.fromCharCode(66 + lv[k]!);
    const found = patterns.get(key);
    if (found) found.count++;
    else patterns.set(key, { levels: est.map((k) => lv[k]!), count: 1 });
  }
  const m = est.map((k) => {
    const L = COMPARISONS[k]!.levels.length;
    return Array.from({ length: L }, (_, l) => (l === 0 ? 0.8 : 0.2 / (L - 1)));
  });
  let lambda = 0.1;
  const pats = [...patterns.values()];
  for (let iter = 0; iter < (options.iterations ?? 40); iter++) {
    const mAcc = est.map((k) => new Float64Array(COMPARISONS[k]!.levels.length));
    let matchMass = 0;
    let total = 0;
    for (const pat of pats) {
      let lm = Math.log(lambda);
      let lu = Math.log(1 - lambda);
      for (let e = 0; e < est.length; e++) {
        const l = pat.levels[e]!;
        if (l < 0) continue;
        lm += Math.log(m[e]![l]!);
        lu += Math.log(u[e]![l]!);
      }
      const post = 1 / (1 + Math.exp(lu - lm));
      const w = post * pat.count;
      matchMass += w;
      total += pat.count;
      for (let e = 0; e < est.length; e++) {
        const l = pat.levels[e]!;
        if (l >= 0) mAcc[e]![l]! += w;
      }
    }
    lambda = Math.min(Math.max(matchMass / total, 1e-6), 1 - 1e-6);
    for (let e = 0; e < est.length; e++) {
      const acc = mAcc[e]!;
      let sum = 0;
      for (const v of acc) sum += v + 0.01;
      for (let l = 0; l < acc.length; l++) m[e]![l] = (acc[l]! + 0.01) / sum;
    }
  }
  est.forEach((k, e) => {
    const field = COMPARISONS[k]!.field;
    // A field the records (nearly) never fill cannot be estimated; keep its default rather
    // than a degenerate fit that would weigh the first record that has it.
    comparisons[field] = present[e]! < MIN_VALUES_TO_ESTIMATE ? DEFAULT_PARAMETERS.comparisons[field]! : { m: m[e]!.map(round6), u: u[e]!.map(round6) };
  });
  for (const [field, p] of Object.entries(FIXED)) comparisons[field] = p;
  return { comparisons, lambda: round6(lambda), source: 'estimated' };
}

const MIN_VALUES_TO_ESTIMATE = 50;

function round6(x: number): number {
  return Number(x.toPrecision(6));
}

// ---------------------------------------------------------------------------------------------
// The matcher and the incremental index

/** Scores pairs of records with one set of parameters. */
export class Matcher {
  readonly parameters: MatchParameters;
  readonly options: MatcherOptions;
  private readonly table: WeightTable;

  constructor(parameters: MatchParameters = DEFAULT_PARAMETERS, options: MatcherOptions = {}) {
    this.parameters = parameters;
    this.options = options;
    this.table = weightTable(parameters);
  }

  /**
   * Scores a pair and explains it.
   *
   * Must stay true: `score` is the sum of the evidence weights (to rounding), symmetric in a
   * and b; missing values weigh 0.
   */
  scorePair(a: PersonRecord, b: PersonRecord): PairScore {
    return explain(prepareRecord(a, this.options), prepareRecord(b, this.options), this.table);
  }

  /** @internal */
  explainPrepared(a: Prepared, b: Prepared): PairScore {
    return explain(a, b, this.table);
  }

  /** @internal whether levels of a pair allow linking without review */
  autoLinkable(levels: Int8Array): boolean {
    return autoLinkable(levels, this.table);
  }

  /** @internal fast path without evidence */
  scorePrepared(a: Prepared, b: Prepared, levels: Int8Array = new Int8Array(COMPARISONS.length)): number {
    compareLevels(a, b, levels);
    return scoreLevels(levels, this.table);
  }
}

/** Scores a pair with the default parameters (or the ones given) and explains the score. */
export function scorePair(a: PersonRecord, b: PersonRecord, parameters: MatchParameters = DEFAULT_PARAMETERS, options: MatcherOptions = {}): PairScore {
  return new Matcher(parameters, options).scorePair(a, b);
}

export type MatchDecision = 'link' | 'review' | 'separate';

export interface MatchCandidate extends PairScore {
  id: string;
  decision: MatchDecision;
}

/** Name order of a sorted block: sortKey, then id (unique within an index). */
function compareSorted(x: Prepared, y: Prepared): number {
  if (x.sortKey !== y.sortKey) return x.sortKey < y.sortKey ? -1 : 1;
  return x.id < y.id ? -1 : x.id > y.id ? 1 : 0;
}

/** First position in a sorted block whose member is not before `p`. */
function lowerBound(block: readonly Prepared[], p: Prepared): number {
  let lo = 0;
  let hi = block.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareSorted(block[mid]!, p) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First position in a sorted block whose sortKey is not below `sortKey`. */
function lowerBoundKey(block: readonly Prepared[], sortKey: string): number {
  let lo = 0;
  let hi = block.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (block[mid]!.sortKey < sortKey) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Records held in memory with their blocking keys, so one arriving record is compared only with
 * the records it shares a key with (the incremental path: ingest, CRM sync).
 *
 * Each block is kept sorted by name (`sortKey`, then id), so an oversized block (a common
 * surname, a big town's postcode) yields its sorted-neighbourhood window by binary search. It was
 * copied and sorted whole for every record matched: with many Smiths the cost of a record grew
 * with the number of Smiths already held, and a CRM sync slowed down chunk after chunk.
 */
export class IncrementalIndex {
  private readonly records = new Map<string, Prepared>();
  private readonly blocks = new Map<string, Prepared[]>();
  private readonly matcher: Matcher;
  private readonly autoLinkThreshold: number;
  private readonly reviewThreshold: number;
  /** Candidate records scored by `match` so far: the cost of matching, whatever the clock says. */
  comparisons = 0;
  /** Block members `match` has read to choose its candidates so far (sorted-block steps included). */
  examined = 0;

  constructor(matcher: Matcher = new Matcher(), thresholds: { autoLinkThreshold?: number; reviewThreshold?: number } = {}) {
    this.matcher = matcher;
    this.autoLinkThreshold = thresholds.autoLinkThreshold ?? DEFAULT_AUTO_LINK_THRESHOLD;
    this.reviewThreshold = thresholds.reviewThreshold ?? DEFAULT_REVIEW_THRESHOLD;
  }

  get size(): number {
    return this.records.size;
  }

  /** Adds or replaces a record (same id). */
  add(record: PersonRecord): void {
    this.remove(record.id);
    const p = prepareRecord(record, this.matcher.options);
    this.records.set(record.id, p);
    for (const key of blockingKeys(p, true)) {
      let b = this.blocks.get(key);
      if (!b) this.blocks.set(key, (b = []));
      b.splice(lowerBound(b, p), 0, p);
    }
  }

  remove(id: string): boolean {
    const p = this.records.get(id);
    if (!p) return false;
    this.records.delete(id);
    for (const key of blockingKeys(p, true)) {
      const b = this.blocks.get(key);
      if (!b) continue;
      // (sortKey, id) is unique in the index, so the lower bound is the record itself
      const i = lowerBound(b, p);
      if (b[i] === p) b.splice(i, 1);
      if (b.length === 0) this.blocks.delete(key);
    }
    return true;
  }

  /**
   * Existing records that may be the same person as `record`, best first, each with its score,
   * evidence and decision under the thresholds.
   *
   * Must stay true: only candidates scoring at least `minScore` (default: the review threshold)
   * are returned; a record never matches itself; two different records of the same CRM object
   * are never `link`, at most `review`; the records read and compared per call are bounded by
   * the block size cap and the window, however large a block grows (deterministic keys aside).
   */
  match(record: PersonRecord, opts: { minScore?: number; limit?: number } = {}): MatchCandidate[] {
    const p = prepareRecord(record, this.matcher.options);
    const maxBlock = this.matcher.options.maxBlockSize ?? DEFAULT_MAX_BLOCK;
    const window = this.matcher.options.window ?? DEFAULT_WINDOW;
    const candidates = new Set<string>();
    for (const key of blockingKeys(p, true)) {
      const b = this.blocks.get(key);
      if (!b) continue;
      if (b.length <= maxBlock || isDeterministicKey(key)) {
        this.examined += b.length;
        for (const m of b) candidates.add(m.id);
      } else {
        // Oversized block: the neighbours in name order, as the batch path does.
        const pos = lowerBoundKey(b, p.sortKey);
        const from = Math.max(0, pos - window);
        const to = Math.min(b.length, pos + window);
        this.examined += to - from + Math.ceil(Math.log2(b.length + 1));
        for (let i = from; i < to; i++) candidates.add(b[i]!.id);
      }
    }
    candidates.delete(record.id);
    const min = opts.minScore ?? this.reviewThreshold;
    const out: MatchCandidate[] = [];
    const levels = new Int8Array(COMPARISONS.length);
    this.comparisons += candidates.size;
    for (const id of candidates) {
      const other = this.records.get(id)!;
      const fast = this.matcher.scorePrepared(p, other, levels);
      if (fast < min) continue;
      const explained = this.matcher.explainPrepared(p, other);
      let decision: MatchDecision = explained.score >= this.autoLinkThreshold ? 'link' : 'review';
      if (decision === 'link' && !this.matcher.autoLinkable(levels)) decision = 'review';
      out.push({ id, decision, ...explained });
    }
    out.sort((x, y) => y.score - x.score || (x.id < y.id ? -1 : 1));
    return opts.limit != null ? out.slice(0, opts.limit) : out;
  }
}

// ---------------------------------------------------------------------------------------------
// Batch resolution

export interface ResolveOptions extends EstimateOptions {
  autoLinkThreshold?: number;
  reviewThreshold?: number;
  /**
   * `estimate` fits m/u to the records with EM (the default when there are at least
   * `minRecordsToEstimate` records), or pass parameters to use as they are.
   */
  parameters?: MatchParameters | 'estimate' | 'default';
  minRecordsToEstimate?: number;
  /**
   * Record pairs a person has rejected: never linked, never suggested again, and no cluster
   * containing one of them is merged with a cluster containing the other.
   */
  rejectedPairs?: Iterable<readonly [string, string]>;
  /**
   * Suggestions any one cluster takes part in, the strongest first; `MAX_REVIEW_SUGGESTIONS_PER_RECORD`
   * unless given. Links kept apart only because they would join two records of one CRM object are
   * not capped (as at intake); review-band pairs and links refused for their evidence are.
   */
  maxSuggestionsPerCluster?: number;
}

/**
 * Review-band suggestions per record (CRM intake) or per cluster (batch re-resolution), the
 * strongest first. Records that agree only on a place (contacts without a name at one office) are
 * all in the review band with each other: 50 such contacts made 958 suggestions at intake, 500
 * made 7,952, and a batch re-resolution suggested every pair of a block. With the cap the review
 * queue grows linearly with the records.
 */
export const MAX_REVIEW_SUGGESTIONS_PER_RECORD = 8;

export interface ResolveResult {
  /** Record ids per customer, each cluster sorted, clusters in order of their first record. */
  clusters: string[][];
  /** Auto links inside the clusters, with score and evidence. */
  links: ScoredPair[];
  /** One per pair of clusters in the review band: the best-scoring record pair. */
  suggestions: ScoredPair[];
  parameters: MatchParameters;
  stats: { records: number; candidatePairs: number; autoLinks: number; refusedMerges: number };
}

/**
 * Resolves a batch of records into customers.
 *
 * Clustering is greedy average linkage: auto links are taken strongest first, and two clusters
 * merge only when the mean score over all their cross pairs is at least the review threshold, so
 * one strong link cannot chain two different people together through a third record. A merge
 * refused that way, one that would join two records of the same CRM object, or one whose
 * evidence is names alone, becomes a suggestion instead.
 *
 * Must stay true: every record is in exactly one cluster; a pair inside a cluster was joined by
 * an auto link; no suggestion joins two records already in one cluster; a rejected pair is
 * never in one cluster nor suggested; the result does not depend on input order beyond ties.
 */
export function resolveBatch(records: readonly PersonRecord[], options: ResolveOptions = {}): ResolveResult {
  const auto = options.autoLinkThreshold ?? DEFAULT_AUTO_LINK_THRESHOLD;
  const review = Math.min(options.reviewThreshold ?? DEFAULT_REVIEW_THRESHOLD, auto);
  const prepared = records.map((r) => prepareRecord(r, options));
  const ids = new Set<string>();
  for (const p of prepared) {
    if (ids.has(p.id)) throw new Error(`duplicate record id ${p.id}`);
    ids.add(p.id);
  }
  const pairs = blockPairs(prepared, options);
  const K = COMPARISONS.length;
  const levelRows = pairs.map(([i, j]) => {
    const lv = new Int8Array(K);
    compareLevels(prepared[i]!, prepared[j]!, lv);
    return lv;
  });

  let parameters: MatchParameters;
  const choice = options.parameters ?? 'estimate';
  if (typeof choice === 'object') parameters = choice;
  else if (choice === 'estimate' && prepared.length >= (options.minRecordsToEstimate ?? 500)) parameters = estimateFromPrepared(prepared, pairs, options, levelRows);
  else parameters = DEFAULT_PARAMETERS;
  const matcher = new Matcher(parameters, options);
  const table = weightTable(parameters);

  const pairScore = new Map<number, number>();
  const n = prepared.length;
  const scored: Array<{ i: number; j: number; score: number; needsReview: boolean }> = [];
  for (let p = 0; p < pairs.length; p++) {
    const [i, j] = pairs[p]!;
    const score = scoreLevels(levelRows[p]!, table);
    pairScore.set(i * n + j, score);
    if (score >= review) scored.push({ i, j, score, needsReview: !autoLinkable(levelRows[p]!, table) });
  }
  scored.sort((x, y) => y.score - x.score || x.i - y.i || x.j - y.j);

  // Union–find with member lists, for the cross-pair averages.
  const parent = Int32Array.from({ length: n }, (_, i) => i);
  const members: number[][] = prepared.map((_, i) => [i]);
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  const levels = new Int8Array(K);
  const cross = (x: number, y: number): number => {
    const a = x < y ? x : y;
    const b = x < y ? y : x;
    const code = a * n + b;
    let s = pairScore.get(code);
    if (s === undefined) {
      s = matcher.scorePrepared(prepared[a]!, prepared[b]!, levels);
      pairScore.set(code, s);
    }
    return s;
  };
  const crmConflict = (ra: number, rb: number): boolean => {
    const objs = new Map<string, Set<string>>();
    for (const i of members[ra]!) for (const c of prepared[i]!.crmIds) addTo(objs, c.slice(0, c.lastIndexOf(':')), c);
    for (const i of members[rb]!) {
      for (const c of prepared[i]!.crmIds) {
        const set = objs.get(c.slice(0, c.lastIndexOf(':')));
        if (set && !set.has(c)) return true;
      }
    }
    return false;
  };

  const index = new Map(prepared.map((p, i) => [p.id, i]));
  const rejected = new Set<number>();
  for (const [x, y] of options.rejectedPairs ?? []) {
    const a = index.get(x);
    const b = index.get(y);
    if (a !== undefined && b !== undefined && a !== b) rejected.add(a < b ? a * n + b : b * n + a);
  }
  const anyRejected = (ra: number, rb: number): boolean => {
    if (rejected.size === 0) return false;
    for (const x of members[ra]!) for (const y of members[rb]!) if (rejected.has(x < y ? x * n + y : y * n + x)) return true;
    return false;
  };

  const linkPairs: Array<{ i: number; j: number; score: number }> = [];
  const pending: Array<{ i: number; j: number; score: number }> = [];
  /** links kept apart only because they would join two records of one CRM object (not for their evidence) */
  const uncapped = new Set<{ i: number; j: number; score: number }>();
  let refused = 0;
  for (const link of scored) {
    if (link.score < auto) {
      pending.push(link);
      continue;
    }
    const ra = find(link.i);
    const rb = find(link.j);
    if (ra === rb) {
      linkPairs.push(link);
      continue;
    }
    if (anyRejected(ra, rb)) continue;
    if (!link.needsReview && crmConflict(ra, rb)) {
      refused++;
      uncapped.add(link);
      pending.push(link);
      continue;
    }
    let ok = !link.needsReview;
    if (ok && members[ra]!.length + members[rb]!.length > 2) {
      let sum = 0;
      let count = 0;
      for (const x of members[ra]!) for (const y of members[rb]!) {
        sum += cross(x, y);
        count++;
      }
      ok = sum / count >= review;
    }
    if (!ok) {
      refused++;
      pending.push(link);
      continue;
    }
    const [big, small] = members[ra]!.length >= members[rb]!.length ? [ra, rb] : [rb, ra];
    parent[small] = big;
    for (const x of members[small]!) members[big]!.push(x);
    members[small] = [];
    linkPairs.push(link);
  }

  const bestByClusterPair = new Map<string, { i: number; j: number; score: number }>();
  for (const link of pending) {
    const ra = find(link.i);
    const rb = find(link.j);
    if (ra === rb || anyRejected(ra, rb)) continue;
    const key = ra < rb ? `${ra}:${rb}` : `${rb}:${ra}`;
    const prev = bestByClusterPair.get(key);
    if (!prev || link.score > prev.score) bestByClusterPair.set(key, link);
  }

  const toScored = (l: { i: number; j: number }): ScoredPair => {
    const a = prepared[l.i]!;
    const b = prepared[l.j]!;
    return { a: a.id, b: b.id, ...explain(a, b, table) };
  };
  const clusters: string[][] = [];
  const emitted = new Set<number>();
  for (let i = 0; i < n; i++) {
    const r = find(i);
    if (emitted.has(r)) continue;
    emitted.add(r);
    clusters.push(members[r]!.map((x) => prepared[x]!.id).sort(compareIds));
  }
  // strongest first; a review-band pair only while both its clusters are under the cap
  const cap = options.maxSuggestionsPerCluster ?? MAX_REVIEW_SUGGESTIONS_PER_RECORD;
  const taken = new Map<number, number>();
  const suggestions = [...bestByClusterPair.values()]
    .sort((x, y) => y.score - x.score)
    .filter((l) => {
      if (uncapped.has(l)) return true;
      const ra = find(l.i);
      const rb = find(l.j);
      const na = taken.get(ra) ?? 0;
      const nb = taken.get(rb) ?? 0;
      if (na >= cap || nb >= cap) return false;
      taken.set(ra, na + 1);
      taken.set(rb, nb + 1);
      return true;
    })
    .map(toScored);
  return {
    clusters,
    links: linkPairs.map(toScored),
    suggestions,
    parameters,
    stats: { records: n, candidatePairs: pairs.length, autoLinks: linkPairs.length, refusedMerges: refused },
  };
}

function addTo(map: Map<string, Set<string>>, key: string, value: string): void {
  let s = map.get(key);
  if (!s) map.set(key, (s = new Set()));
  s.add(value);
}

/** Orders ids numerically where they are numbers and as text otherwise, for stable cluster ids. */
export function compareIds(a: string, b: string): number {
  return ID_COLLATOR.compare(a, b);
}

const ID_COLLATOR = new Intl.Collator('en', { numeric: true });

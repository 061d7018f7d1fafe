import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max';

/** The kinds of identity a customer cluster is made of (customer_identity.kind). */
export type IdentityKind = 'email' | 'phone' | 'handle' | 'crm' | 'profile_url';

/** Social networks whose handles we normalize; `twitter` is accepted as an alias of `x`. */
export type SocialNetwork = 'x' | 'instagram' | 'facebook' | 'linkedin' | 'reddit' | 'youtube' | 'tiktok';

export const SOCIAL_NETWORKS: readonly SocialNetwork[] = ['x', 'instagram', 'facebook', 'linkedin', 'reddit', 'youtube', 'tiktok'];

export interface EmailOptions {
  /** `strip` drops `+tag` from the local part (jane+news@x.com → jane@x.com). */
  plusAddressing: 'keep' | 'strip';
  /**
   * Gmail ignores dots in the local part; only Gmail does, so this is off by default and applies
   * only to gmail.com / googlemail.com.
   */
  gmailDots?: 'keep' | 'strip';
}

export const DEFAULT_EMAIL_OPTIONS: EmailOptions = Object.freeze({ plusAddressing: 'keep', gmailDots: 'keep' });

/** RFC 5321: no longer address can be delivered */
const EMAIL_MAX = 254;
// Deliberately loose: RFC 5322 allows far more than CRMs ever hold, and a too strict check would
// silently drop real identities. We only refuse what cannot be an address at all.
// Control and invisible format characters (a right-to-left override, a zero-width space, a bell)
// are no part of an address a person types: one stored as an identity can display as another
// address, or make two that look alike.
const EMAIL_SHAPE = /^[^\s@<>(),;:"\p{Cc}\p{Cf}]+@[^\s@<>(),;:"\p{Cc}\p{Cf}]+\.[^\s@<>(),;:".\p{Cc}\p{Cf}]{2,}$/u;
const NON_ASCII = /[^\x00-\x7f]/;

/**
 * Whether lower-casing turns a character that is not ASCII into ASCII (the Kelvin sign K, U+212A,
 * becomes `k`): a look-alike would then normalize to the address it imitates.
 */
function foldsIntoAscii(s: string): boolean {
  for (const c of s) if (c.charCodeAt(0) > 0x7f && !NON_ASCII.test(c.toLowerCase())) return true;
  return false;
}

/**
 * Normalizes an email address for deterministic matching.
 *
 * Must stay true: the result is lower case with no surrounding whitespace, `mailto:` and
 * display-name wrappers removed; `null` means "not an email", never a partial value.
 */
export function normalizeEmail(raw: string | null | undefined, options: EmailOptions = DEFAULT_EMAIL_OPTIONS): string | null {
  if (raw == null) return null;
  let s = raw.trim();
  if (/^mailto:/i.test(s)) s = s.slice(7);
  // no `<` inside: `[^>]+` tried from every `<` of a long run of them is quadratic (1.2 s for 50,000)
  const angle = /<([^<>]+)>/.exec(s);
  if (angle) s = angle[1]!.trim();
  // A longer value is no address, and a much longer one cannot even be stored: customer_identity
  // (kind, value) is a unique B-tree index, whose entries stop at 2,704 bytes, so one such CRM
  // field would fail its record's whole intake batch, every time the sync tried again. Checked
  // before anything else reads every character (a 10 MB field: 0.1 ms, not 300).
  if (s.length > EMAIL_MAX) return null;
  // on the address as written: once lower-cased, the Kelvin sign is a k
  if (NON_ASCII.test(s) && foldsIntoAscii(s)) return null;
  s = s.toLowerCase();
  if (s.length > EMAIL_MAX || !EMAIL_SHAPE.test(s)) return null;
  const at = s.lastIndexOf('@');
  let local = s.slice(0, at);
  let domain = s.slice(at + 1);
  if (domain === 'googlemail.com') domain = 'gmail.com';
  if (options.plusAddressing === 'strip') {
    const plus = local.indexOf('+');
    if (plus > 0) local = local.slice(0, plus);
  }
  if (options.gmailDots === 'strip' && domain === 'gmail.com') local = local.replace(/\./g, '');
  if (local.length === 0) return null;
  return `${local}@${domain}`;
}

/**
 * Normalizes a phone number to E.164 with libphonenumber-js (full metadata, so validity is the
 * real per-country rule, at about 9 µs a number).
 *
 * Must stay true: the result is either a valid E.164 string (`+` and digits) or `null`; numbers
 * without a country prefix are read in `defaultRegion`.
 *
 * Authors come back (2,000 authors wrote bench:api's 10,000 lines), so answers for short inputs
 * are kept: at most `PHONE_MEMO_MAX` of them, the oldest dropped first. The answer depends on
 * the input and the region only.
 */
export function normalizePhone(raw: string | null | undefined, defaultRegion: string = 'US'): string | null {
  if (raw == null) return null;
  if (raw.length > PHONE_MEMO_INPUT_MAX) return parsePhone(raw, defaultRegion);
  const key = `${defaultRegion}\u0000${raw}`;
  const known = phoneMemo.get(key);
  if (known !== undefined) return known;
  const value = parsePhone(raw, defaultRegion);
  if (phoneMemo.size >= PHONE_MEMO_MAX) phoneMemo.delete(phoneMemo.keys().next().value!);
  phoneMemo.set(key, value);
  return value;
}

export const PHONE_MEMO_MAX = 10_000;
/** longer inputs are parsed every time: a memo of long keys would weigh more than it saves */
const PHONE_MEMO_INPUT_MAX = 64;
const phoneMemo = new Map<string, string | null>();

/** for tests: how many answers are kept; `clear` empties the memo first */
export function phoneMemoSize(clear = false): number {
  if (clear) phoneMemo.clear();
  return phoneMemo.size;
}

/** `normalizePhone` without the memo */
export function parsePhone(raw: string, defaultRegion: string): string | null {
  const s = raw.trim();
  if (s.length === 0) return null;
  // "00" is the international prefix in most of the world; CRM exports keep it often.
  const input = s.startsWith('00') ? `+${s.slice(2)}` : s;
  const parsed = parsePhoneNumberFromString(input, { defaultCountry: defaultRegion.toUpperCase() as CountryCode, extract: true });
  if (!parsed || !parsed.isValid()) return null;
  return parsed.number;
}

/** Maps network names as they appear in feeds and CRM fields to ours. */
export function canonicalNetwork(network: string | null | undefined): SocialNetwork | null {
  if (!network) return null;
  const n = network.trim().toLowerCase();
  switch (n) {
    case 'x':
    case 'twitter':
    case 'x.com':
    case 'twitter.com':
      return 'x';
    case 'ig':
    case 'instagram':
      return 'instagram';
    case 'fb':
    case 'facebook':
      return 'facebook';
    case 'linkedin':
      return 'linkedin';
    case 'reddit':
      return 'reddit';
    case 'youtube':
    case 'yt':
      return 'youtube';
    case 'tiktok':
      return 'tiktok';
    default:
      return null;
  }
}

const HANDLE_RULES: Record<SocialNetwork, RegExp> = {
  x: /^[a-z0-9_]{1,15}$/,
  instagram: /^[a-z0-9._]{1,30}$/,
  // Facebook ignores dots and case in usernames, so they are removed before this check.
  facebook: /^[a-z0-9]{1,50}$|^id:[0-9]{1,20}$/,
  linkedin: /^[a-z0-9\-_%.\u00c0-\uffff]{2,100}$/,
  reddit: /^[a-z0-9_-]{3,20}$/,
  // YouTube handles are case-insensitive, channel ids are not; see normalizeHandle.
  youtube: /^[a-z0-9._-]{3,30}$|^channel:UC[A-Za-z0-9_-]{22}$|^(c|user):[a-z0-9._-]{1,100}$/,
  tiktok: /^[a-z0-9._]{2,24}$/,
};

/**
 * Normalizes a social handle for one network.
 *
 * Must stay true: the same account always yields the same string (lower case, no leading `@`,
 * no `u/` prefix, no Facebook dots), and what a network could not hold as a handle yields `null`.
 * YouTube channel ids keep their case and are prefixed `channel:`, legacy custom URLs `c:` / `user:`.
 */
export function normalizeHandle(network: string, raw: string | null | undefined): string | null {
  const net = canonicalNetwork(network);
  if (!net || raw == null) return null;
  let h = raw.trim();
  if (h.length === 0) return null;
  if (/^https?:\/\//i.test(h) || /^(www\.)?[a-z]+\.(com|be)\//i.test(h)) {
    const parsed = parseProfileUrl(h);
    return parsed && parsed.network === net ? parsed.handle : null;
  }
  if (net === 'youtube') {
    const channel = /^(?:channel[:/])?(UC[A-Za-z0-9_-]{22})$/.exec(h);
    if (channel) return `channel:${channel[1]}`;
    const legacy = /^(c|user)[:/](.+)$/i.exec(h);
    if (legacy) h = `${legacy[1]!.toLowerCase()}:${legacy[2]!.toLowerCase()}`;
  }
  h = h.replace(/^@+/, '');
  if (net === 'reddit') h = h.replace(/^\/?u(ser)?\//i, '');
  // trailing slashes cut by a loop: `/\/+$/` tried every run of slashes to its end, quadratic
  // (32,000 slashes then "x" took 0.4 s, 128,000 took 15 s)
  if (net === 'linkedin') h = trimTrailingSlashes(h.replace(/^\/?in\//i, ''));
  if (!h.startsWith('channel:')) h = h.toLowerCase();
  if (net === 'facebook' && !h.startsWith('id:')) h = h.replace(/\./g, '');
  return HANDLE_RULES[net].test(h) ? h : null;
}

function trimTrailingSlashes(s: string): string {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 47 /* / */) end--;
  return end === s.length ? s : s.slice(0, end);
}

// Paths that live where a handle would but are pages of the network itself.
const RESERVED: Partial<Record<SocialNetwork, ReadonlySet<string>>> = {
  x: new Set(['home', 'search', 'i', 'intent', 'share', 'hashtag', 'explore', 'settings', 'messages', 'notifications', 'login', 'signup', 'tos', 'privacy', 'compose']),
  instagram: new Set(['p', 'reel', 'reels', 'explore', 'stories', 'accounts', 'direct', 'tv']),
  facebook: new Set(['groups', 'events', 'pages', 'watch', 'marketplace', 'sharer', 'sharer.php', 'login', 'help', 'photo', 'photo.php', 'story.php', 'permalink.php', 'hashtag']),
  tiktok: new Set(['tag', 'music', 'discover', 'explore', 'foryou']),
};

const HOSTS: Record<string, SocialNetwork> = {
  'x.com': 'x',
  'twitter.com': 'x',
  'mobile.twitter.com': 'x',
  'mobile.x.com': 'x',
  'instagram.com': 'instagram',
  'facebook.com': 'facebook',
  'm.facebook.com': 'facebook',
  'fb.com': 'facebook',
  'linkedin.com': 'linkedin',
  'reddit.com': 'reddit',
  'old.reddit.com': 'reddit',
  'new.reddit.com': 'reddit',
  'youtube.com': 'youtube',
  'm.youtube.com': 'youtube',
  'tiktok.com': 'tiktok',
  'm.tiktok.com': 'tiktok',
};

/**
 * Reads the account a profile URL points at.
 *
 * Must stay true: only a URL that names one account yields a result (a post, a search or a
 * hashtag page yields `null`), and the handle is normalized exactly as {@link normalizeHandle}
 * does, so a URL and a handle of the same account give the same identity key.
 */
export function parseProfileUrl(url: string | null | undefined): { network: SocialNetwork; handle: string } | null {
  if (url == null) return null;
  let s = url.trim();
  if (s.length === 0) return null;
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) s = `https://${s}`;
  let parsed: URL;
  try {
    parsed = new URL(s);
  } catch {
    return null;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return null;
  let host = parsed.hostname.toLowerCase();
  if (host.startsWith('www.')) host = host.slice(4);
  // LinkedIn serves country subdomains (uk.linkedin.com/in/...).
  if (/^[a-z]{2}\.linkedin\.com$/.test(host)) host = 'linkedin.com';
  const network = HOSTS[host];
  if (!network) return null;
  const parts = parsed.pathname.split('/').filter((p) => p.length > 0).map((p) => safeDecode(p));
  const first = parts[0];
  let candidate: string | null = null;
  switch (network) {
    case 'x':
    case 'instagram':
      if (parts.length >= 1 && !RESERVED[network]!.has(first!.toLowerCase())) {
        // x.com/jane/status/123 is a post by jane, not her profile.
        if (parts.length === 1 || (network === 'x' && ['with_replies', 'media', 'likes'].includes(parts[1]!))) candidate = first!;
      }
      break;
    case 'facebook':
      if (first === 'profile.php') {
        const id = parsed.searchParams.get('id');
        candidate = id && /^\d+$/.test(id) ? `id:${id}` : null;
      } else if (first === 'people' && parts.length >= 3 && /^\d+$/.test(parts[2]!)) {
        candidate = `id:${parts[2]}`;
      } else if (parts.length === 1 && !RESERVED.facebook!.has(first!.toLowerCase())) {
        candidate = first!;
      }
      break;
    case 'linkedin':
      if (first === 'in' && parts.length >= 2) candidate = parts[1]!;
      break;
    case 'reddit':
      if ((first === 'u' || first === 'user') && parts.length >= 2) candidate = parts[1]!;
      break;
    case 'youtube':
      if (first?.startsWith('@')) candidate = first;
      else if (first === 'channel' && parts.length >= 2) candidate = `channel:${parts[1]}`;
      else if ((first === 'c' || first === 'user') && parts.length >= 2) candidate = `${first}:${parts[1]}`;
      break;
    case 'tiktok':
      if (first?.startsWith('@') && parts.length === 1) candidate = first;
      break;
  }
  if (candidate == null) return null;
  const handle = normalizeHandle(network, candidate);
  return handle ? { network, handle } : null;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Options that change how identity values are normalized; they come from config. */
export interface IdentityKeyOptions {
  email?: EmailOptions;
  /** ISO 3166 region for phone numbers written without a country prefix. */
  defaultRegion?: string;
  /**
   * Identifier values that never link customers, beyond the built-in placeholders
   * (`EARSHOT_IDENTITY_IGNORED`, see {@link isPlaceholderIdentity}).
   */
  ignored?: readonly string[];
}

/**
 * The options of the configured identity section (EARSHOT_EMAIL_PLUS_ADDRESSING,
 * EARSHOT_DEFAULT_PHONE_REGION, EARSHOT_IDENTITY_IGNORED): what ingest keys authors and listening
 * items with, and so what a re-score must key them with too.
 */
export function configuredKeyOptions(identity: { plusAddressing: EmailOptions['plusAddressing']; defaultPhoneRegion: string; ignored: readonly string[] }): IdentityKeyOptions {
  return { email: { plusAddressing: identity.plusAddressing }, defaultRegion: identity.defaultPhoneRegion, ignored: identity.ignored };
}

// Local parts and domains that stand for "no address": people type them into forms that demand
// one, so thousands of unrelated people share them. Deliberately short; extend per deployment
// with EARSHOT_IDENTITY_IGNORED rather than here.
const PLACEHOLDER_LOCAL = new Set([
  'noreply', 'no-reply', 'no_reply', 'donotreply', 'do-not-reply', 'do_not_reply', 'none', 'noemail', 'no-email', 'no_email',
  'nomail', 'na', 'n.a', 'n/a', 'null', 'nil', 'nobody', 'unknown', 'test', 'fake', 'asdf', 'email', 'x', 'xx', 'xxx',
  // A refusal or a form's own hint typed back: "no@…", "notprovided@gmail.com", "youremail@…".
  // Whoever owns such a mailbox at a provider is one of the thousands who type it; at a company
  // domain it is a desk, not a person. `me@` stays: people use it on their own domain.
  'no', 'no.email', 'no.mail', 'noone', 'no-one', 'no.one', 'noname', 'no-name', 'notprovided', 'not-provided', 'not_provided',
  'not.provided', 'noemailprovided', 'notavailable', 'not.available', 'unavailable', 'declined', 'refused', 'dontknow',
  'idontknow', 'donthave', 'nothing', 'blank', 'empty', 'missing', 'placeholder', 'youremail', 'your.email', 'your-email',
  'yourname', 'youraddress', 'you', 'your', 'someone', 'somebody', 'name',
  // What a form or an import fills in for an unknown person: "customer@example.com", "user@…".
  'customer', 'guest', 'user', 'anonymous', 'anon', 'undefined', 'dummy', 'sample', 'example',
]);
// `domain.com` and its kin are the "name@domain.com" of form hints; nobody's mailbox is there.
const PLACEHOLDER_DOMAINS = new Set([
  'test.com', 'none.com', 'na.com', 'noemail.com', 'nomail.com', 'no-email.com', 'fake.com', 'email.invalid',
  'domain.com', 'yourdomain.com', 'mydomain.com', 'unknown.com', 'noname.com', 'nowhere.com',
]);
/** the two labels of a domain such as `abc.com` (no subdomain), or null */
const TWO_LABELS = /^([^.]+)\.[^.]+$/;

/**
 * Whether an address is keyboard filler rather than a mailbox: a short local part repeated as
 * the domain's name (`a@a.com`, `abc@abc.com`, `na@na.na`, `123@123.com`), or one character at a
 * one-character domain (`a@b.com`). A person's own vanity domain repeats a longer word
 * (`jane@jane.dev`), which stays an identity.
 */
function fillerEmail(local: string, domain: string): boolean {
  const label = TWO_LABELS.exec(domain)?.[1];
  if (label === undefined) return false;
  return (local === label && local.length <= 3) || (local.length === 1 && label.length === 1);
}

// Phone number types libphonenumber knows that reach a business's line, never one person's:
// toll-free (+1 800…, +44 800…), premium rate, shared cost and universal access numbers. A B2B
// export gives the company switchboard as every contact's phone, and a feed the brand's own
// service line; each would make one customer of everyone who gave it.
const BUSINESS_LINE_TYPES: ReadonlySet<string> = new Set(['TOLL_FREE', 'PREMIUM_RATE', 'SHARED_COST', 'UAN']);
/** North American toll-free codes, told without a parse (most phones in a US deployment) */
const NANP_TOLL_FREE = /^\+18(00|33|44|55|66|77|88)\d{7}$/;
const businessLineMemo = new Map<string, boolean>();

/** Whether an E.164 number is a business line (memoized: a parse costs about 20 µs). */
function businessLine(e164: string): boolean {
  if (NANP_TOLL_FREE.test(e164)) return true;
  if (e164.startsWith('+1')) {
    // other NANP numbers: only 900 (premium rate) is a business line type here
    return e164.startsWith('+1900');
  }
  const known = businessLineMemo.get(e164);
  if (known !== undefined) return known;
  const type = parsePhoneNumberFromString(e164)?.getType();
  const answer = type !== undefined && BUSINESS_LINE_TYPES.has(type);
  if (businessLineMemo.size >= PHONE_MEMO_MAX) businessLineMemo.delete(businessLineMemo.keys().next().value!);
  businessLineMemo.set(e164, answer);
  return answer;
}

/**
 * Handles a feed writes when it has no author: a missing value serialized (`null`, `undefined`,
 * `None`) or the label networks and listening tools give removed or hidden authors. An account
 * of that name may exist, but far more messages carry the word than the account writes.
 * Real short handles (`user`, `admin`) are one account each and stay identities.
 */
const PLACEHOLDER_HANDLES: ReadonlySet<string> = new Set(['null', 'undefined', 'none', 'nan', 'anonymous', 'unknown', 'deleted']);

/**
 * Whether a normalized identity (the `identityKey` value) is a placeholder that many unrelated
 * people share, and so must never link two authors or records to one customer.
 *
 * Built in: emails whose local part or domain means "no address" (`test@…`, `noreply@…`,
 * `no@email.com`, `customer@…`, `…@domain.com`, the reserved `.invalid` top-level domain) or
 * that are keyboard filler (`a@a.com`); phones whose national number is one digit repeated
 * (`+447777777777`), a run of consecutive digits (`+12345678900`), North American directory
 * assistance (`NXX-555-1212`) or `NXX-555-5555`, and business lines (toll-free, premium rate,
 * shared cost, universal access); handles a feed writes for a missing author (`x:null`,
 * `reddit:deleted`); CRM ids no CRM gives (`hubspot:contact:0`). Invalid phone numbers never get here:
 * `normalizePhone` already refuses them (libphonenumber's validity check: `0000000000`,
 * `555-555-5555`, `1234567890`). `ignored` adds entries from config, compared with the
 * normalized value: `info@` (that local part at any domain), `@acme.com` (a whole domain), a full
 * address, an E.164 phone, or a `network:handle` key (a brand's own account).
 *
 * Must stay true: depends on the value and `ignored` only; a placeholder is left out of a
 * message's or record's claims, never stored as an identity, never matched on.
 */
export function isPlaceholderIdentity(kind: IdentityKind, value: string, ignored: readonly string[] = []): boolean {
  if (ignored.length > 0 && ignored.includes(value)) return true;
  if (kind === 'email') {
    const at = value.lastIndexOf('@');
    const local = value.slice(0, at);
    const domain = value.slice(at + 1);
    if (PLACEHOLDER_LOCAL.has(local) || PLACEHOLDER_DOMAINS.has(domain) || domain.endsWith('.invalid') || fillerEmail(local, domain)) return true;
    return ignored.length > 0 && (ignored.includes(`${local}@`) || ignored.includes(`@${domain}`));
  }
  if (kind === 'phone') {
    // NXX-555-1212 is directory assistance; NXX-555-5555 the fake every form has seen
    if (/^\+1[2-9]\d{2}555(1212|5555)$/.test(value)) return true;
    if (businessLine(value)) return true;
    // The national number follows a country code of 1 to 3 digits. Parsing (libphonenumber) to
    // find it cost about 20 µs a phone, on every message that carries one; a number that looks
    // fake after none of the possible code lengths needs no parse.
    const digits = value.slice(1);
    if (![0, 1, 2, 3].some((k) => fakeNationalNumber(digits.slice(k)))) return false;
    const parsed = parsePhoneNumberFromString(value);
    return fakeNationalNumber(parsed ? String(parsed.nationalNumber) : digits);
  }
  if (kind === 'handle' || kind === 'profile_url') return PLACEHOLDER_HANDLES.has(value.slice(value.indexOf(':') + 1));
  if (kind === 'crm') {
    // No CRM gives a record the id 0 or a serialized null: an integration that lost the id wrote
    // it, for every record it lost (`hubspot:contact:0`, `salesforce:Contact:000000000000000AAA`).
    const id = value.slice(value.lastIndexOf(':') + 1);
    return /^0+(AAA)?$/.test(id) || /^(null|undefined|none|nan)$/i.test(id);
  }
  return false;
}

/** one digit repeated, or a run of consecutive digits (ascending or descending) then zeros */
function fakeNationalNumber(nsn: string): boolean {
  if (/^(\d)\1+$/.test(nsn)) return true;
  const run = nsn.replace(/0+$/, '');
  return run.length >= 6 && (consecutive(run, 1) || consecutive(run, 9));
}

/** every digit is the one before plus `step` (mod 10): 1 ascending, 9 descending */
function consecutive(digits: string, step: number): boolean {
  for (let i = 1; i < digits.length; i++) if ((digits.charCodeAt(i - 1) - 48 + step) % 10 !== digits.charCodeAt(i) - 48) return false;
  return true;
}

const SF_ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';

/**
 * Turns a 15-character, case-sensitive Salesforce id into its 18-character case-insensitive form;
 * the API returns either form for the same record, and they must not become two identities.
 */
export function salesforceId18(id: string): string {
  if (!/^[a-zA-Z0-9]{15}$/.test(id)) return id;
  let suffix = '';
  for (let block = 0; block < 3; block++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) {
      const c = id.charCodeAt(block * 5 + i);
      if (c >= 65 && c <= 90) bits |= 1 << i;
    }
    suffix += SF_ID_CHARS[bits];
  }
  return id + suffix;
}

/**
 * The unique, normalized value stored in `customer_identity.value`.
 *
 * - email: the normalized address (`jane@example.com`)
 * - phone: E.164 (`+14155552671`)
 * - handle: `<network>:<handle>` (`x:jane_doe`); `network` is required
 * - crm: `<system>:<Object>:<id>` (`salesforce:Contact:003…` with 18-character ids,
 *   `hubspot:contact:123`); `network` is the system and `value` is `Object:id`
 * - profile_url: the same `<network>:<handle>` as the handle it points at, so a URL and a
 *   handle of one account can never become two identities
 *
 * Must stay true: two inputs that denote the same identity yield the same string, and `null`
 * is returned (never a half-normalized value) when the input cannot be an identity of that kind.
 */
export function identityKey(kind: IdentityKind, network: string | null, value: string, options: IdentityKeyOptions = {}): string | null {
  switch (kind) {
    case 'email':
      return normalizeEmail(value, options.email ?? DEFAULT_EMAIL_OPTIONS);
    case 'phone':
      return normalizePhone(value, options.defaultRegion ?? 'US');
    case 'handle': {
      const net = canonicalNetwork(network);
      if (!net) return null;
      const h = normalizeHandle(net, value);
      return h ? `${net}:${h}` : null;
    }
    case 'profile_url': {
      const p = parseProfileUrl(value);
      return p ? `${p.network}:${p.handle}` : null;
    }
    case 'crm': {
      const system = (network ?? '').trim().toLowerCase();
      const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([A-Za-z0-9_-]+)\s*$/.exec(value);
      if (!m) return null;
      if (system === 'salesforce') {
        // Salesforce object API names are case-insensitive; keep the conventional capitalisation.
        const obj = m[1]!.charAt(0).toUpperCase() + m[1]!.slice(1);
        return `salesforce:${obj}:${salesforceId18(m[2]!)}`;
      }
      if (system === 'hubspot') return `hubspot:${m[1]!.toLowerCase()}:${m[2]}`;
      return null;
    }
  }
}

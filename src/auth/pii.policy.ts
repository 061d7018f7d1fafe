import type { UserRole } from '../config/config';

/**
 * The one place that decides who may see emails and phone numbers, and which derived values
 * count as such. Every mapper, field resolver, search and event builder asks here; none keeps
 * its own list of roles or its own idea of what looks like an address.
 *
 * Must stay true: for a viewer without PII, nothing this module lets through is an email
 * address, a phone number, or the handle of a channel whose handles are addresses.
 */

/** Roles that may see emails and phone numbers. */
export const PII_ROLES: ReadonlySet<UserRole> = new Set(['admin', 'agent', 'sales']);

/** Whoever reads: a principal's roles (several roles act together), or a topic's consumers (none). */
export interface PiiViewer {
  roles: readonly UserRole[];
}

/** Consumers of the output topics: treated as a role without PII. */
export const PUBLIC_VIEWER: PiiViewer = Object.freeze({ roles: [] });

/**
 * Channels whose author handle is an address (a phone number, an email address) or an id of a
 * private conversation, never a public pseudonym: their handles are PII.
 */
export const ADDRESS_SOURCES: ReadonlySet<string> = new Set(['sms', 'email', 'call', 'whatsapp', 'chat', 'ticket', 'survey']);

export function canSeePii(viewer: PiiViewer | null | undefined): boolean {
  return !!viewer && viewer.roles.some((r) => PII_ROLES.has(r));
}

// Deliberately broad: a false positive hides a harmless name, a false negative leaks an address.
// `x@y.z` somewhere, each part without white space or "@". Written as `[^\s@]+@[^\s@]+\.[^\s@]+`
// (true for the same texts) it read from every start to the end of a run without "@", quadratic:
// a 64 KiB CRM first name without spaces took 5.7 s, on every read of that customer's name.
const EMAIL_LIKE = /[^\s@]@[^\s@]+\.[^\s@]/;
// a run of seven or more digits, allowing the separators people write phone numbers with
const PHONE_LIKE = /(?:\+|\b)\d(?:[\s()./[\]-]*\d){6,}/;
/** Every phone-like run of a text (PHONE_LIKE), for those who mask them (crm-error-text.ts). */
export const PHONE_LIKE_ALL = new RegExp(PHONE_LIKE.source, 'g');

/**
 * Addresses are not always written in ASCII: Japanese writers use full-width digits and signs
 * (+１ ４１５ ５５５ ０１４２, ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ), Arabic and Persian writers their own
 * digits (٤١٥٥٥٥٠١٤٢), French ones no-break spaces, and the phone normalizer (libphonenumber)
 * reads all of them as the same number. So the tests read a folded text: every decimal digit of
 * any script as `0`, the full-width and small forms of the signs they look at and every space as
 * ASCII. The SQL test folds the same way and spells out the same classes (PostgreSQL's
 * [[:space:]] and [[:alnum:]] follow the database's locale), so the search hides exactly what
 * reading hides and stays no oracle.
 */
const SIGNS: readonly [string, string][] = [
  ['＠', '@'], ['﹫', '@'], ['．', '.'], ['﹒', '.'], ['／', '/'], ['－', '-'], ['﹣', '-'], ['（', '('], ['）', ')'], ['﹙', '('], ['﹚', ')'], ['＋', '+'], ['﹢', '+'],
  // the other dashes, brackets and invisible marks the phone normalizer reads between digits
  // ("415–555–0142" and "415\u200b555\u200b0142" are +14155550142 to it); none is white space
  // or "@", so an email reads as before
  ...[...'\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\u00ad\u200b\u2060'].map((c): [string, string] => [c, '-']),
  ['［', '('], ['］', ')'],
  // what \s matches beyond ASCII
  ...[...'\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff'].map((c): [string, string] => [c, ' ']),
];
const FOLD_FROM = SIGNS.map(([c]) => c).join('');
const FOLD_TO = SIGNS.map(([, a]) => a).join('');
const FOLDED: ReadonlyMap<string, string> = new Map(SIGNS);
const NON_ASCII = /[^\x00-\x7f]/;
const FOLDABLE = new RegExp(`[\\p{Nd}${FOLD_FROM}]`, 'gu');

/** `value` as the tests read it (see above). */
function folded(value: string): string {
  // nearly every value is ASCII: no copy
  if (!NON_ASCII.test(value)) return value;
  return value.replace(FOLDABLE, (c) => FOLDED.get(c) ?? (c >= '0' && c <= '9' ? c : '0'));
}

/** True when the text holds something that reads as an email address or a phone number. */
export function looksLikePii(value: string | null | undefined): boolean {
  if (typeof value !== 'string') return false;
  const v = folded(value);
  return EMAIL_LIKE.test(v) || PHONE_LIKE.test(v);
}

let otherDigits: string | null = null;

/** A PostgreSQL bracket expression of every non-ASCII decimal digit (\p{Nd}, all in planes 0 and 1), built once. */
function sqlOtherDigits(): string {
  if (otherDigits !== null) return otherDigits;
  const nd = /^\p{Nd}$/u;
  const ranges: string[] = [];
  for (let cp = 0x80; cp <= 0x1ffff; cp++) {
    if (!nd.test(String.fromCodePoint(cp))) continue;
    let last = cp;
    while (nd.test(String.fromCodePoint(last + 1))) last++;
    ranges.push(`${String.fromCodePoint(cp)}-${String.fromCodePoint(last)}`);
    cp = last;
  }
  return (otherDigits = `[${ranges.join('')}]`);
}

/**
 * SQL (PostgreSQL regex) true when `column` reads as an email or a phone number, the same
 * test as {@link looksLikePii} on the same folded text (JavaScript's \s and \b spelled out in
 * ASCII): searches for viewers without PII leave such rows out.
 */
export function sqlLooksLikePii(column: string): string {
  const v = `regexp_replace(translate(${column}, '${FOLD_FROM}', '${FOLD_TO}'), '${sqlOtherDigits()}', '0', 'g')`;
  const notSpace = '[^ \\t\\n\\v\\f\\r@]';
  return `(${v} ~ '${notSpace}+@${notSpace}+\\.${notSpace}+' OR ${v} ~ '(^|[^0-9A-Za-z_])[0-9]([][ \\t\\n\\v\\f\\r()./-]*[0-9]){6,}')`;
}

/**
 * A display name that is safe to store and to show anyone: the given name, else null.
 * Creation paths use it so a customer is never named after an address.
 */
export function safeDisplayName(...candidates: (string | null | undefined)[]): string | null {
  for (const c of candidates) {
    const t = typeof c === 'string' ? c.trim() : '';
    if (t && !looksLikePii(t)) return t;
  }
  return null;
}

/**
 * The display name a customer created from an interaction gets: the author's display name, else
 * a public handle (social networks, reviews), else none. Never an address.
 */
export function customerDisplayName(source: string, author: { displayName?: string | null; handle?: string | null }): string | null {
  return safeDisplayName(author.displayName, ADDRESS_SOURCES.has(source) ? null : author.handle);
}

/** A customer's (or an author's) display name as this viewer may see it. */
export function displayNameFor(viewer: PiiViewer | null | undefined, stored: string | null): string | null {
  if (stored === null || canSeePii(viewer)) return stored;
  return looksLikePii(stored) ? null : stored;
}

/** An interaction author's handle as this viewer may see it: address channels' handles are PII. */
export function authorHandleFor(viewer: PiiViewer | null | undefined, source: string, handle: string | null): string | null {
  if (handle === null || canSeePii(viewer)) return handle;
  return ADDRESS_SOURCES.has(source) || looksLikePii(handle) ? null : handle;
}

/** Identity kinds whose value is PII. */
export const PII_IDENTITY_KINDS: ReadonlySet<string> = new Set(['email', 'phone', 'EMAIL', 'PHONE']);

/** An identity's value as this viewer may see it (null: redacted). */
export function identityValueFor(viewer: PiiViewer | null | undefined, kind: string, network: string | null, value: string): string | null {
  if (canSeePii(viewer)) return value;
  if (PII_IDENTITY_KINDS.has(kind)) return null;
  // a handle on an address channel (whatsapp:+1415…) is an address too
  if (network !== null && ADDRESS_SOURCES.has(network)) return null;
  return looksLikePii(value) ? null : value;
}

/** What a customer search may match for this viewer. */
export type SearchScope = 'display-name' | 'display-name-without-pii';

/**
 * Viewers without PII search display names only, and never names that read as an address, so a
 * search cannot tell them whether an address exists. (Search by email, phone or handle for
 * roles with PII can be added here.)
 */
export function searchScopeFor(viewer: PiiViewer | null | undefined): SearchScope {
  return canSeePii(viewer) ? 'display-name' : 'display-name-without-pii';
}

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
const EMAIL_LIKE = /[^\s@]+@[^\s@]+\.[^\s@]+/;
// a run of seven or more digits, allowing the separators people write phone numbers with
const PHONE_LIKE = /(?:\+|\b)\d(?:[\s()./-]*\d){6,}/;

/** True when the text holds something that reads as an email address or a phone number. */
export function looksLikePii(value: string | null | undefined): boolean {
  return typeof value === 'string' && (EMAIL_LIKE.test(value) || PHONE_LIKE.test(value));
}

/**
 * SQL (PostgreSQL regex) true when `column` reads as an email or a phone number, the same
 * test as {@link looksLikePii}: searches for viewers without PII leave such rows out.
 */
export function sqlLooksLikePii(column: string): string {
  return `(${column} ~ '[^[:space:]@]+@[^[:space:]@]+\\.[^[:space:]@]+' OR ${column} ~ '(^|[^[:alnum:]_])\\d([[:space:]()./-]*\\d){6,}')`;
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

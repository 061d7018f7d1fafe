import { addressesOf } from '../identity/author-identities';
import type { IdentityKeyOptions } from '../identity/normalize';

/** interactions.v1 caps `author.handle` at 200 characters, `author.email` at 320 and `author.phone` at 50. */
const MAX_PARTICIPANT_CHARS = 320;

/**
 * The key a listening item is kept under for its author, and that a reply names its addressee by:
 * on the address channels the address normalized as identity resolution normalizes it (`Jane
 * <Jane@Example.org>` and `jane@example.org`, `(415) 555-0199` and `+14155550199` on sms, call and
 * whatsapp), elsewhere the handle without its leading `@`, in lower case. Before, the author's key
 * was the handle as written, so a reply addressed to the same person written another way (`@Jane`
 * against `jane`, a bare address against a display-name form) answered nothing.
 */
export function participantKey(source: string, raw: string | null | undefined, opts: IdentityKeyOptions = {}): string | null {
  const s = raw?.trim();
  // longer than any author's handle (200) or email (320) can be: nobody an item is kept for. Such a
  // recipient was a key of interaction_recipient_idx, and PostgreSQL refused the valid reply
  // carrying it ("index row size … exceeds btree version 4 maximum 2704")
  if (!s || s.length > MAX_PARTICIPANT_CHARS) return null;
  const address = addressesOf(source, s, opts)[0];
  if (address) return address.value;
  return s.replace(/^@+/, '').toLowerCase() || null;
}

/** The one a reply addresses: `metadata.recipientHandle`, else a leading `@handle` of its text. */
export function recipientOf(m: { source: string; metadata?: Record<string, unknown> | null; text: string }, opts: IdentityKeyOptions = {}): string | null {
  const r = m.metadata?.recipientHandle;
  if (typeof r === 'string' && r.trim()) return participantKey(m.source, r, opts);
  const at = /^\s*@([A-Za-z0-9_.-]{1,100})/.exec(m.text);
  return at ? participantKey(m.source, at[1]!, opts) : null;
}

/**
 * The author a listening item is kept for: the handle, else the e-mail, else the phone. A sender
 * known by phone alone had none, so each of their texts opened an item of its own and no reply
 * addressed to the number answered them.
 */
export function authorKeyOf(m: { source: string; author: { handle?: string | null; email?: string | null; phone?: string | null } }, opts: IdentityKeyOptions = {}): string | null {
  return participantKey(m.source, m.author.handle ?? m.author.email ?? m.author.phone, opts);
}

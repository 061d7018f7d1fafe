import { addressesOf, PHONE_CHANNELS } from '../identity/author-identities';
import { canonicalNetwork, isPlaceholderIdentity, type IdentityKeyOptions } from '../identity/normalize';

/** interactions.v1 caps `author.handle` at 200 characters, `author.email` at 320 and `author.phone` at 50. */
const MAX_PARTICIPANT_CHARS = 320;

/** Characters that show nothing (zero-width spaces, joiners, direction marks): none of a handle or address. */
const INVISIBLE = /\p{Default_Ignorable_Code_Point}/u;
const INVISIBLE_ALL = new RegExp(INVISIBLE.source, 'gu');

/**
 * The key a listening item is kept under for its author, and that a reply names its addressee by:
 * on the address channels the address normalized as identity resolution normalizes it (`Jane
 * <Jane@Example.org>` and `jane@example.org`, `(415) 555-0199` and `+14155550199` on sms, call and
 * whatsapp), elsewhere the handle without its leading `@`, in lower case. Before, the author's key
 * was the handle as written, so a reply addressed to the same person written another way (`@Jane`
 * against `jane`, a bare address against a display-name form) answered nothing.
 */
export function participantKey(source: string, raw: string | null | undefined, opts: IdentityKeyOptions = {}): string | null {
  // "\u200b@Jane\u200e" (a reply tool's zero-width space and direction mark) is @Jane
  const s = (raw && INVISIBLE.test(raw) ? raw.replace(INVISIBLE_ALL, '') : raw)?.trim();
  // longer than any author's handle (200) or email (320) can be: nobody an item is kept for. Such a
  // recipient was a key of interaction_recipient_idx, and PostgreSQL refused the valid reply
  // carrying it ("index row size … exceeds btree version 4 maximum 2704")
  if (!s || s.length > MAX_PARTICIPANT_CHARS) return null;
  // a placeholder (noreply@…, 555-1212, "anonymous", EARSHOT_IDENTITY_IGNORED) names nobody, as in
  // identity resolution: thousands share it. Kept as a key, every sender of a web form was one
  // author (their complaints joined one item), a reply to one answered another's, and an erasure
  // of one redacted the replies addressed to all
  const address = addressesOf(source, s, opts)[0];
  if (address) return isPlaceholderIdentity(address.kind, address.value, opts.ignored) ? null : address.value;
  // composed (NFC): 'José' typed on one system and 'Jose\u0301' on another are one person; a blank
  // after the '@' ("@ lee") is none of the handle
  const handle = s.replace(/^@+/, '').trim().normalize('NFC').toLowerCase();
  if (!handle || isPlaceholderIdentity('handle', `${canonicalNetwork(source) ?? source}:${handle}`, opts.ignored)) return null;
  return handle;
}

/** The one a reply addresses: `metadata.recipientHandle`, else a leading `@handle` of its text. */
export function recipientOf(m: { source: string; metadata?: Record<string, unknown> | null; text: string }, opts: IdentityKeyOptions = {}): string | null {
  const r = m.metadata?.recipientHandle;
  if (typeof r === 'string' && r.trim()) return participantKey(m.source, r, opts);
  // a phone number sent as a JSON number (4155550199): its digits, on the phone channels only
  if (typeof r === 'number' && Number.isSafeInteger(r) && r > 0 && PHONE_CHANNELS.has(m.source)) return participantKey(m.source, String(r), opts);
  const at = /^\s*@([A-Za-z0-9_.-]{1,100})/.exec(m.text);
  // dots that end the mention end the sentence ("@max. Sorry…"): no network's handle ends with one
  const handle = at?.[1]!.replace(/\.+$/, '');
  return handle ? participantKey(m.source, handle, opts) : null;
}

/**
 * The author a listening item is kept for: the handle, else the e-mail, else the phone (the first
 * that is no placeholder). A sender
 * known by phone alone had none, so each of their texts opened an item of its own and no reply
 * addressed to the number answered them.
 */
export function authorKeyOf(m: { source: string; author: { handle?: string | null; email?: string | null; phone?: string | null } }, opts: IdentityKeyOptions = {}): string | null {
  // the first that names somebody: a placeholder handle or e-mail gives way to the next
  return participantKey(m.source, m.author.handle, opts) ?? participantKey(m.source, m.author.email, opts) ?? participantKey(m.source, m.author.phone, opts);
}

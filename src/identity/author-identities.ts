import { ADDRESS_SOURCES } from '../auth/pii.policy';
import type { InteractionMessage } from '../interactions/interaction-message';
import { identityKey, isPlaceholderIdentity, type IdentityKeyOptions, type IdentityKind } from './normalize';

export interface IdentityClaim {
  kind: IdentityKind;
  network: string | null;
  /** normalized key, unique per kind */
  value: string;
  raw: string;
}

/** Strongest first: the first claim that names a known customer decides. */
const PRIORITY: Record<IdentityKind, number> = { crm: 0, email: 1, phone: 2, handle: 3, profile_url: 4 };

/** The address channels whose handle is a phone number: the caller's, the texter's. */
export const PHONE_CHANNELS: ReadonlySet<string> = new Set(['sms', 'call', 'whatsapp']);

/**
 * What a handle is on its channel when the channel's handles are addresses (`ADDRESS_SOURCES`):
 * the email it reads as (any address channel), the phone it reads as (`PHONE_CHANNELS`), each
 * normalized as identity resolution normalizes it; email first. None elsewhere: on a social
 * network `jane@example.com` is a pseudonym. The one statement of the rule, for the identities an
 * author carries (`authorIdentities`) and the key a listening item meets its replies on
 * (`participantKey`): written twice, the two could disagree on who a handle is.
 */
export function addressesOf(source: string, handle: string, opts: IdentityKeyOptions): { kind: 'email' | 'phone'; value: string }[] {
  if (!ADDRESS_SOURCES.has(source)) return [];
  const out: { kind: 'email' | 'phone'; value: string }[] = [];
  const email = identityKey('email', null, handle, opts);
  if (email) out.push({ kind: 'email', value: email });
  if (PHONE_CHANNELS.has(source)) {
    const phone = identityKey('phone', null, handle, opts);
    if (phone) out.push({ kind: 'phone', value: phone });
  }
  return out;
}

/**
 * The deterministic identities an interaction's author carries: CRM ids, email, phone,
 * the handle on the source network (social networks only) and the profile URL.
 * On the address channels (`ADDRESS_SOURCES`) the handle is the address itself: an email's
 * sender, a caller's number. It counts as the author's email (any address channel, when it reads
 * as one) or phone (sms, call, whatsapp), unless the message names an email or phone of its own.
 * Before, such an author had no identity: every email from jane@example.com was nobody's, and
 * never met her CRM contact.
 * Values that cannot be an identity of their kind are left out, never half-normalized; so are
 * placeholders many people share (`test@test.com`, `+447777777777`: `isPlaceholderIdentity`).
 */
export function authorIdentities(m: InteractionMessage, opts: IdentityKeyOptions): IdentityClaim[] {
  const out: IdentityClaim[] = [];
  const keep = (kind: IdentityKind, network: string | null, value: string | null, raw: string) => {
    if (value && !isPlaceholderIdentity(kind, value, opts.ignored) && !out.some((c) => c.kind === kind && c.value === value)) out.push({ kind, network, value, raw });
  };
  const add = (kind: IdentityKind, network: string | null, raw: string | null | undefined) => {
    if (raw) keep(kind, network, identityKey(kind, network, raw, opts), raw);
  };
  for (const ref of m.author.crmIds ?? []) add('crm', ref.system, `${ref.objectType}:${ref.id}`);
  add('email', null, m.author.email);
  add('phone', null, m.author.phone);
  const handle = m.author.handle;
  if (handle) for (const a of addressesOf(m.source, handle, opts)) if (!m.author[a.kind]) keep(a.kind, null, a.value, handle);
  add('handle', m.source, m.author.handle);
  add('profile_url', null, m.author.profileUrl);
  return out.sort((a, b) => PRIORITY[a.kind] - PRIORITY[b.kind]);
}

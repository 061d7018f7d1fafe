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
  const add = (kind: IdentityKind, network: string | null, raw: string | null | undefined) => {
    if (!raw) return;
    const value = identityKey(kind, network, raw, opts);
    if (value && !isPlaceholderIdentity(kind, value, opts.ignored) && !out.some((c) => c.kind === kind && c.value === value)) out.push({ kind, network, value, raw });
  };
  for (const ref of m.author.crmIds ?? []) add('crm', ref.system, `${ref.objectType}:${ref.id}`);
  add('email', null, m.author.email);
  add('phone', null, m.author.phone);
  if (m.author.handle && ADDRESS_SOURCES.has(m.source)) {
    if (!m.author.email) add('email', null, m.author.handle);
    if (!m.author.phone && PHONE_CHANNELS.has(m.source)) add('phone', null, m.author.handle);
  }
  add('handle', m.source, m.author.handle);
  add('profile_url', null, m.author.profileUrl);
  return out.sort((a, b) => PRIORITY[a.kind] - PRIORITY[b.kind]);
}

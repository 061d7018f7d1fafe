import { ADDRESS_SOURCES } from '../auth/pii.policy';
import type { Db } from '../db/sql';
import type { IdentityKeyOptions } from '../identity/normalize';
import { participantKey } from '../listening-gap/recipient';
import * as repo from './privacy.repository';

/**
 * The keys a company reply addresses these customers by (`interaction.recipient_key`, computed by
 * `participantKey` as ingest keyed it): their handles per source as their inbound messages carried
 * them, their listening items' keys, and their emails and phones on every address channel.
 *
 * Must stay true: the erasure (which redacts the replies addressed to these keys) and the access
 * request (which exports them) use this one function, so a reply the erasure would redact is in
 * the person's export. Read before the erasure clears the handles. Distinct keys.
 */
export async function addressedKeys(db: Db, customerIds: readonly string[], opts: IdentityKeyOptions): Promise<repo.AddressedKey[]> {
  const a = await repo.addressesOfCustomers(db, customerIds);
  const keys = new Map<string, repo.AddressedKey>();
  const add = (source: string, key: string) => keys.set(`${source}\u0000${key}`, { source, key });
  // keyed again: an item stored before placeholders were no key (noreply@…) must not reach the
  // replies addressed to every other sender of that form
  for (const k of a.itemKeys) {
    const key = participantKey(k.source, k.key, opts);
    if (key) add(k.source, key);
  }
  for (const h of a.handles) {
    const key = participantKey(h.source, h.handle, opts);
    if (key) add(h.source, key);
  }
  for (const source of ADDRESS_SOURCES) for (const key of a.addresses) add(source, key);
  return [...keys.values()];
}

import type { QueryRunner } from 'typeorm';
import { customerDisplayName } from '../auth/pii.policy';
import type { InteractionMessage } from '../interactions/interaction-message';
import type { IdentityClaim } from './author-identities';
import * as repo from './identity.repository';
import { autoMergeTx, identityLockKey, lockCustomers, lockIdentityKeys, recordSuggestion } from './merge';
import { uuidv7 } from '../shared/uuidv7';

/** A message on its way into the database, as author resolution sees it. */
export interface AuthoredMessage {
  /** the interaction id it will be stored under */
  id: string;
  message: InteractionMessage;
  /** the author's deterministic identities, strongest first (`authorIdentities`) */
  claims: IdentityClaim[];
  /** set here: the customer the interaction belongs to, or null */
  customerId: string | null;
  /** set here: the identity that attached it to its customer (stored as interaction.identity_id) */
  identityId?: string | null;
}

/**
 * Author → customer resolution for the ingest pipeline, inside its transaction: inbound messages
 * by their author's identities, outbound replies by the customer they answer.
 *
 * Must stay true: two concurrent batches (in one process or several) never create two customers
 * for one identity; interactions are recorded with the identity that attached them, so an
 * unmerge or unlink moves them back; every customer a message is attached to was created by this
 * transaction or row-locked by it and found by that lock, so it exists until the commit
 * (interaction.customer_id has no foreign key: this is the check, once per batch).
 */
export async function resolveAuthors(
  qr: QueryRunner,
  batch: AuthoredMessage[],
  opts: { publicUrl: string; identity?: { hubCap?: number } },
): Promise<{ hubCapped: HubCapped[] }> {
  const hubCapped = await resolveCustomers(qr, batch.filter((p) => p.message.direction === 'inbound'), opts.publicUrl, opts.identity?.hubCap ?? DEFAULT_HUB_CAP);
  await attachReplies(qr, batch);
  return { hubCapped };
}

/** EARSHOT_IDENTITY_HUB_CAP's default */
export const DEFAULT_HUB_CAP = 20;

/** An author the hub cap kept apart from the customer of a shared email or phone (ids only: no PII in logs). */
export interface HubCapped {
  kind: string;
  hubCustomerId: string;
  customerId: string;
}

/**
 * Attaches each message to a customer by its deterministic identities, creating the
 * customer and identities the first time an author is seen. A message naming identities of
 * two customers (a handle known alone, now with an email a CRM contact has) proves them one
 * person: they are merged here, in this transaction, with an audit entry; unless a person
 * rejected the pair or both hold records of one CRM object (then a suggestion).
 * Also sets which identity attached each message, so an unmerge or unlink moves it back.
 */
async function resolveCustomers(qr: QueryRunner, batch: AuthoredMessage[], publicUrl: string, hubCap: number): Promise<HubCapped[]> {
  const keyOf = (c: IdentityClaim) => identityLockKey(c.kind, c.value);
  const claims = new Map<string, IdentityClaim>();
  for (const p of batch) for (const c of p.claims) claims.set(keyOf(c), c);
  if (claims.size === 0) return [];

  // Most authors are known: read their identities without a lock. Only messages that would
  // create an identity or join two customers take the identity-key locks (then read again).
  const found = await readIdentities(qr, [...claims.values()]);
  const locked = new Set<string>();
  for (const p of batch) {
    const ownersOfP = new Set<string>();
    let unknown = false;
    for (const c of p.claims) {
      const f = found.get(keyOf(c));
      if (f) ownersOfP.add(f.customer_id);
      else unknown = true;
    }
    if (unknown || ownersOfP.size > 1) for (const c of p.claims) locked.add(keyOf(c));
  }
  if (locked.size > 0) {
    await lockIdentityKeys(qr, locked);
    const again = await readIdentities(qr, [...locked].map((k) => claims.get(k)!));
    for (const k of locked) {
      const v = again.get(k);
      if (v) found.set(k, v);
      else found.delete(k);
    }
  }

  // Locking the owners makes a concurrent merge, unlink or erasure of one of them finish first.
  // Whatever moves an identity holds its customer's row lock, so once we hold the owners' locks
  // a fresh read shows where each identity is now, and it stays there until we commit.
  let roots = new Map<string, string>();
  let unsure = [...found.keys()].filter((k) => !locked.has(k));
  for (let round = 0; ; round++) {
    const owners = [...new Set([...found.values()].map((f) => f.customer_id))].filter((id) => !roots.has(id));
    if (owners.length > 0) for (const [id, root] of await lockCustomers(qr, owners)) roots.set(id, root);
    // An owner the lock did not find was erased after we read its identities (an erasure takes
    // the customer's row lock, not the identity keys): its identities went with it. Identities we
    // hold the key lock of are read again here (the others are, below, as `unsure`), so no
    // message is attached to a customer that no longer exists.
    const vanished = new Set(owners.filter((id) => !roots.has(id)));
    const lost = [...found].filter(([k, f]) => vanished.has(f.customer_id) && locked.has(k)).map(([k]) => k);
    if (lost.length > 0) {
      if (round >= MAX_ROUNDS) throw keepMoving();
      const now = await readIdentities(qr, lost.map((k) => claims.get(k)!));
      for (const k of lost) {
        const v = now.get(k);
        if (v) found.set(k, v);
        else found.delete(k);
      }
      // owners read now are locked in the next round
      if (lost.some((k) => found.has(k))) continue;
    }
    if (unsure.length === 0) break;
    const now = await readIdentities(qr, unsure.map((k) => claims.get(k)!));
    const moved = unsure.filter((k) => now.get(k)?.customer_id !== found.get(k)!.customer_id);
    if (moved.length === 0) break;
    if (round >= MAX_ROUNDS) throw keepMoving();
    // Rare: moved (to a customer we lock next round) or erased (created again under its key lock).
    const gone = moved.filter((k) => !now.has(k));
    if (gone.length > 0) await lockIdentityKeys(qr, gone);
    for (const k of moved) {
      const v = now.get(k);
      if (v) found.set(k, v);
      else found.delete(k);
    }
    unsure = moved.filter((k) => now.has(k));
  }

  const owners = new Map<string, string>();
  const identityIds = new Map<string, string>();
  for (const [k, r] of found) {
    owners.set(k, roots.get(r.customer_id) ?? r.customer_id);
    identityIds.set(k, r.id);
  }
  // Hub cap: an email or phone whose customer holds hubCap handles links no author bringing
  // another handle: a placeholder or a victim's address copied by many accounts would otherwise
  // pull them all into one customer. Those authors stay apart (their own customer) and the pair
  // becomes a merge suggestion. Counted (one statement, locked owners) only for the customers a
  // message could join that way: the owner of an email or phone named with a handle it does not
  // hold; a known author naming its own identities costs nothing. Customers this batch creates
  // start at 0; what the batch adds is counted as it goes.
  const isHandle = (c: IdentityClaim) => c.kind === 'handle' || c.kind === 'profile_url';
  const candidates = new Set<string>();
  for (const p of batch) {
    for (const c of p.claims) {
      if (c.kind !== 'email' && c.kind !== 'phone') continue;
      const owner = owners.get(keyOf(c));
      if (owner !== undefined && p.claims.some((h) => isHandle(h) && owners.get(keyOf(h)) !== owner)) candidates.add(owner);
    }
  }
  const handleCount = candidates.size > 0 ? await repo.handleCounts(qr, [...candidates], hubCap) : new Map<string, number>();
  const cut = new Map<AuthoredMessage, Set<string>>();
  /** the claims of p that must not link it (hubs), updated with the counts as they are now */
  const hubsOf = (p: AuthoredMessage): Set<string> => {
    const out = cut.get(p) ?? new Set<string>();
    for (const c of p.claims) {
      if (c.kind !== 'email' && c.kind !== 'phone') continue;
      const owner = owners.get(keyOf(c));
      if (owner === undefined || (handleCount.get(owner) ?? 0) < hubCap) continue;
      if (p.claims.some((h) => isHandle(h) && owners.get(keyOf(h)) !== owner)) out.add(keyOf(c));
    }
    cut.set(p, out);
    return out;
  };

  for (const p of batch) {
    const hubs = hubsOf(p);
    const known = p.claims.filter((c) => owners.has(keyOf(c)) && !hubs.has(keyOf(c)));
    for (const other of known.slice(1)) {
      const survivor = owners.get(keyOf(known[0]!))!;
      const mergedId = owners.get(keyOf(other))!;
      if (survivor === mergedId) continue;
      const m = p.message;
      const outcome = await autoMergeTx(
        qr,
        { customerId: survivor, identityId: identityIds.get(keyOf(known[0]!))! },
        { customerId: mergedId, identityId: identityIds.get(keyOf(other))! },
        {
          reason: `interaction ${m.source}/${m.externalId} names the ${known[0]!.kind} of one customer and the ${other.kind} of the other`,
          actor: `rule:deterministic:${known[0]!.kind}`,
          // what a message says about its author is unverified: it never merges two CRM customers
          unverified: true,
          evidence: [
            { field: known[0]!.kind, outcome: 'agree', detail: 'held by the survivor; named by the same author' },
            { field: other.kind, outcome: 'agree', detail: 'held by the merged customer; named by the same author' },
          ],
          publicUrl,
        },
      );
      if (outcome.merged) {
        for (const [k, owner] of owners) if (owner === mergedId) owners.set(k, survivor);
        handleCount.set(survivor, (handleCount.get(survivor) ?? 0) + (handleCount.get(mergedId) ?? 1));
      }
    }
  }

  const newCustomers: { id: string; displayName: string | null }[] = [];
  const newIdentities: { id: string; customerId: string; claim: IdentityClaim }[] = [];
  const capped: { hub: string; p: AuthoredMessage }[] = [];
  for (const p of batch) {
    const keys = p.claims.map(keyOf);
    const hubs = hubsOf(p);
    // claims are sorted strongest first, so the strongest known identity decides
    let customerId = keys.map((k) => (hubs.has(k) ? undefined : owners.get(k))).find((id) => id !== undefined) ?? null;
    if (customerId === null && p.claims.length > 0) {
      customerId = uuidv7();
      newCustomers.push({ id: customerId, displayName: customerDisplayName(p.message.source, p.message.author) });
    }
    p.customerId = customerId;
    if (customerId === null) continue;
    p.claims.forEach((claim, i) => {
      if (!owners.has(keys[i]!)) {
        const id = uuidv7();
        owners.set(keys[i]!, customerId);
        identityIds.set(keys[i]!, id);
        newIdentities.push({ id, customerId, claim });
        if (isHandle(claim)) handleCount.set(customerId, (handleCount.get(customerId) ?? 0) + 1);
      }
    });
    const by = keys.find((k) => owners.get(k) === customerId);
    p.identityId = by ? identityIds.get(by)! : null;
    for (const hub of hubs) if (owners.get(hub) !== customerId) capped.push({ hub, p });
  }

  if (newCustomers.length > 0) {
    await repo.insertCustomers(qr, newCustomers);
  }
  if (newIdentities.length > 0) {
    // No ON CONFLICT: the advisory locks above make a concurrent insert of the same key impossible.
    await repo.insertIngestIdentities(qr, newIdentities);
  }

  // Authors the hub cap kept apart: for review (rare, so one statement or two each is fine).
  const out: HubCapped[] = [];
  const seen = new Set<string>();
  for (const { hub, p } of capped) {
    const hubCustomerId = owners.get(hub)!;
    if (!p.identityId || seen.has(`${hubCustomerId}\u0000${p.customerId}`)) continue;
    seen.add(`${hubCustomerId}\u0000${p.customerId}`);
    const kind = claims.get(hub)!.kind;
    const m = p.message;
    await recordSuggestion(qr, { customerId: hubCustomerId, identityId: identityIds.get(hub)! }, { customerId: p.customerId!, identityId: p.identityId }, {
      score: null,
      evidence: [{ field: kind, outcome: 'agree', detail: `named by the same author, but ${hubCap} or more other handles already share it` }],
      reason: `interaction ${m.source}/${m.externalId} names the ${kind} of a customer that holds ${hubCap} or more handles (EARSHOT_IDENTITY_HUB_CAP): not merged automatically`,
    });
    out.push({ kind, hubCustomerId, customerId: p.customerId! });
  }
  return out;
}

/**
 * A company's reply belongs to the customer it answers, never to the brand account
 * that wrote it: look the answered interaction up in this batch, then in the database.
 */
async function attachReplies(qr: QueryRunner, batch: AuthoredMessage[]): Promise<void> {
  const replies = batch.filter((p) => p.message.direction === 'outbound' && p.message.inReplyTo);
  if (replies.length === 0) return;
  const answered = (r: AuthoredMessage) => replyKey(r.message.source, r.message.inReplyTo!);
  const inBatch = new Map(batch.map((p) => [replyKey(p.message.source, p.message.externalId), p]));
  // Answered messages stored before this batch: their owners, their rows locked as the authors'
  // are: a customer erased meanwhile is not found (the reply is then nobody's), one merged
  // meanwhile gives its survivor. No interaction names a customer that does not exist (nothing
  // else checks it: interaction.customer_id has no foreign key).
  const stored = new Map<string, string | null>();
  const outside = replies.filter((r) => !inBatch.has(answered(r)));
  if (outside.length > 0) {
    const rows = await repo.ownersOf(qr, outside.map((r) => r.message.source), outside.map((r) => r.message.inReplyTo!));
    const owners = new Map(rows.map((r) => [replyKey(r.source, r.external_id), r.customer_id]));
    const roots = owners.size > 0 ? await lockCustomers(qr, owners.values()) : new Map<string, string>();
    for (const r of outside) {
      const owner = owners.get(answered(r));
      stored.set(answered(r), owner === undefined ? null : (roots.get(owner) ?? null));
    }
  }
  followReplies(replies, inBatch, stored);
}

const replyKey = (source: string, externalId: string) => `${source}\u0000${externalId}`;

/**
 * Gives each reply (an outbound message with `inReplyTo`) the owner of the message it answers: a
 * message of the batch (`inBatch`, by source and external id), whose own customer it takes, or
 * one stored before it (`stored`: the answered message's key → its owner). A reply to a reply
 * takes what that reply gets, however long the chain and in whatever order its lines came, so
 * where a batch ends changes nothing; a cycle stops where it closes. Iterative: a Kafka chunk
 * (up to KAFKA_CHUNK_SIZE, 10,000 lines) may be one chain, deeper than the call stack.
 */
export function followReplies(
  replies: readonly AuthoredMessage[],
  inBatch: ReadonlyMap<string, AuthoredMessage>,
  stored: ReadonlyMap<string, string | null>,
): void {
  const owner = new Map<AuthoredMessage, string | null>();
  for (const r of replies) {
    // walk up the chain to a message whose owner is known, then give it to every reply passed
    const passed: AuthoredMessage[] = [];
    const onPath = new Set<AuthoredMessage>();
    let at = r;
    let found = owner.get(at);
    while (found === undefined) {
      passed.push(at);
      onPath.add(at);
      const answered = replyKey(at.message.source, at.message.inReplyTo!);
      const target = inBatch.get(answered);
      if (!target) found = stored.get(answered) ?? null;
      else if (target.message.direction !== 'outbound' || !target.message.inReplyTo || onPath.has(target)) found = target.customerId ?? null;
      else found = owner.get((at = target));
    }
    for (const p of passed) owner.set(p, found);
  }
  for (const r of replies) r.customerId = owner.get(r)!;
}

/** Rounds of locking owners and reading again before a batch whose identities keep moving gives up (it is retried whole). */
const MAX_ROUNDS = 4;
/**
 * Identities still moving after MAX_ROUNDS (merges and erasures racing the batch): a conflict of
 * concurrency, not of the data, so it carries SQLSTATE 40001 (serialization failure) and the
 * write path retries the batch (src/db/failures.ts). As a plain Error it was taken for the
 * message's own fault: the batch was bisected and valid lines rejected or dead-lettered.
 */
export function identitiesKeepMoving(): Error & { code: string } {
  return Object.assign(new Error('identities keep moving while an ingest batch resolves its authors; retry the batch'), { code: '40001' });
}
const keepMoving = identitiesKeepMoving;

/** Where identities are now (one statement, no lock), keyed by `identityLockKey`. */
async function readIdentities(qr: QueryRunner, claims: IdentityClaim[]): Promise<Map<string, { id: string; customer_id: string }>> {
  const out = new Map<string, { id: string; customer_id: string }>();
  if (claims.length === 0) return out;
  const rows = await repo.identitiesAt(qr, claims.map((c) => c.kind), claims.map((c) => c.value));
  for (const r of rows) out.set(identityLockKey(r.kind, r.value), r);
  return out;
}

import { randomUUID } from 'node:crypto';
import type { QueryRunner } from 'typeorm';
import { ADDRESS_SOURCES, looksLikePii, safeDisplayName } from '../auth/pii.policy';
import { enqueueOutbox } from '../outbox/outbox';
import { rebuildCustomerRollups, refreshCustomerSummaries } from '../sentiment/rollups';
import { reassignedEvents, sentimentEvent, sentimentTombstone } from '../outbox/outbox-events';
import { AppError } from '../shared/app-error';
import * as repo from './identity.repository';
import type { EvidenceItem, MergeSnapshot, Side } from './identity.model';

export type { EvidenceItem, MergeSnapshot, Side } from './identity.model';
export { anchorOf, crmConflict, rejectedBetween } from './identity.repository';

/**
 * The transactional building blocks of identity resolution, shared by the ingest pipeline,
 * CRM intake, the GraphQL mutations and the re-resolution job. Every function runs inside the
 * caller's transaction.
 *
 * Lock protocol (the same everywhere, so concurrent writers serialize instead of duplicating):
 * 1. advisory locks on every identity key about to be created (or read to decide a merge), sorted;
 * 2. row locks (FOR NO KEY UPDATE) on every customer about to be written, sorted by id;
 * a customer that turns out to be merged away is followed to its survivor, which is locked too.
 * Whatever moves an existing identity holds its customer's row lock while it does, so a reader that
 * needs no new identity skips step 1: it locks the owners it read, then reads again to confirm
 * (`identity/author-resolution.ts`).
 */

type Q = QueryRunner;

/**
 * One advisory lock per identity key (a 64-bit hash of it, so two keys share a lock only by
 * a negligible accident). Only writers that create or move identities take them, so their
 * number per transaction is what it creates, not what it reads.
 */
export function identityLockKey(kind: string, value: string): string {
  return `${kind}\u0000${value}`;
}

/**
 * Takes the transaction-scoped advisory locks of identity keys (`identityLockKey`), in hash
 * order so that two transactions never wait on each other in a cycle.
 * Must stay true: the same key maps to the same lock in every process (FNV-1a, not a salted hash).
 */
export async function lockIdentityKeys(qr: Q, keys: Iterable<string>): Promise<void> {
  const locks = [...new Set([...keys].map(lockOf))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (locks.length === 0) return;
  await repo.advisoryXactLocks(qr, locks);
}

/** Two 32-bit FNV-1a hashes (different offsets) as one signed 64-bit advisory-lock key. */
function lockOf(s: string): bigint {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193);
  }
  return BigInt.asIntN(64, (BigInt(a >>> 0) << 32n) | BigInt(b >>> 0));
}

/**
 * Locks customers for writing and returns each asked id's current root (itself, or the
 * customer it was merged into). A merge committed while we waited is seen here, because a
 * locking read re-reads the newest row version.
 * Must stay true: every returned root is locked by this transaction; unknown ids are absent.
 */
export async function lockCustomers(qr: Q, ids: Iterable<string>): Promise<Map<string, string>> {
  const roots = new Map<string, string>();
  const locked = new Set<string>();
  let todo = [...new Set(ids)];
  while (todo.length > 0) {
    const rows = await repo.lockCustomerRows(qr, todo.sort());
    for (const r of rows) {
      locked.add(r.id);
      roots.set(r.id, r.merged_into_id ?? r.id);
    }
    // merged_into_id always names a root (merges repoint), so one more round locks the survivors
    todo = [...new Set(rows.map((r) => r.merged_into_id).filter((id): id is string => id !== null && !locked.has(id)))];
  }
  for (const [id, root] of roots) {
    let r = root;
    for (let hops = 0; hops < 8 && roots.get(r) !== undefined && roots.get(r) !== r; hops++) r = roots.get(r)!;
    roots.set(id, r);
  }
  return roots;
}

export interface MergeTxOptions {
  /**
   * autoMergeTx only: what the rule rests on is unverified (an author's own claim in a message),
   * so two customers that both hold CRM records are only suggested, never merged by it.
   */
  unverified?: boolean;
  reason: string;
  actor: string;
  score?: number | null;
  evidence?: EvidenceItem[] | null;
  publicUrl: string;
}

/**
 * Merges `mergedId` into `survivorId`: identities, interactions, CRM records and rollups move
 * to the survivor, the merged customer points at it, the audit row keeps a snapshot for undo,
 * and the outbox gets a tombstone for the merged id and the survivor's new summary.
 *
 * Must stay true: both customers end locked by this transaction; only roots are merged
 * (CONFLICT otherwise); merged_into_id always names a root, never a chain.
 */
export async function mergeCustomersTx(qr: Q, survivorId: string, mergedId: string, opts: MergeTxOptions): Promise<string> {
  if (survivorId === mergedId) throw new AppError('CONFLICT', 'a customer cannot be merged into itself');
  const roots = await lockCustomers(qr, [survivorId, mergedId]);
  if (!roots.has(survivorId)) throw AppError.notFound(`customer ${survivorId}`);
  if (!roots.has(mergedId)) throw AppError.notFound(`customer ${mergedId}`);
  if (roots.get(survivorId) !== survivorId || roots.get(mergedId) !== mergedId) {
    throw new AppError('CONFLICT', 'one of the customers has already been merged into another', {
      survivorRoot: roots.get(survivorId),
      mergedRoot: roots.get(mergedId),
    });
  }

  const identities = await repo.moveAllIdentities(qr, survivorId, mergedId);
  const crmRecords = await repo.moveAllCrmRecords(qr, survivorId, mergedId);
  const moved = await repo.moveAllInteractions(qr, survivorId, mergedId, identities);
  const repointed = await repo.repointMergedInto(qr, survivorId, mergedId);
  const merged = await repo.markMerged(qr, survivorId, mergedId);
  const filledName = await repo.fillDisplayName(qr, survivorId, merged?.display_name ?? null);

  const snapshot: MergeSnapshot = {
    identities,
    crmRecords,
    interactions: moved.filter((m) => !m.follows).map((m) => m.id),
    repointed,
    displayName: merged?.display_name ?? null,
    filledName,
  };
  const auditId = await repo.insertAudit(qr, {
    action: 'merge',
    survivorId,
    mergedId,
    score: opts.score ?? null,
    evidence: opts.evidence ?? [],
    reason: opts.reason,
    actor: opts.actor,
    snapshot,
  });
  // A merged customer with nothing scored (a CRM record just linked) leaves the rollups as they are.
  const summaries = moved.length > 0 ? await rebuildCustomerRollups(qr, [survivorId, mergedId]) : await refreshCustomerSummaries(qr, [survivorId]);
  await enqueueOutbox(qr, [
    sentimentTombstone(mergedId, survivorId),
    ...summaries.filter((s) => s.id === survivorId).map((s) => sentimentEvent(s, opts.publicUrl)),
  ]);
  return auditId;
}

export interface UnmergeTxResult {
  auditId: string;
  survivorId: string;
  restoredId: string;
}

/**
 * Undoes the merge (or link) recorded in `mergeAuditId`. For a link (a CRM record or identity
 * taken into a customer), what was linked moves out to a new customer. For a merge, the merged
 * customer becomes visible again and
 * gets back its identities, the interactions those identities attached (also ones that arrived
 * after the merge), the interactions it brought without an identity, its CRM records and the
 * customers once merged into it; rollups of both sides are recomputed from the interactions.
 * The pair is then remembered as rejected, so no rule merges it again. The interactions that
 * went back (brand replies included) are announced on interactions.reassigned.v1.
 *
 * Must stay true: what was moved elsewhere since (unlinked, say) stays where it is now; an
 * already undone merge is a CONFLICT, never undone twice.
 */
export async function unmergeTx(qr: Q, mergeAuditId: string, opts: { actor: string; reason: string; publicUrl: string }): Promise<UnmergeTxResult> {
  const audit = await repo.lockAuditEntry(qr, mergeAuditId);
  if (!audit) throw AppError.notFound(`merge ${mergeAuditId}`);
  if ((audit.action !== 'merge' && audit.action !== 'link') || !Array.isArray(audit.snapshot?.identities)) {
    throw AppError.badInput(`audit entry ${mergeAuditId} is a ${audit.action}, not a merge or link`);
  }
  if (audit.undone_at) throw new AppError('CONFLICT', `${audit.action} ${mergeAuditId} was already undone at ${new Date(audit.undone_at).toISOString()}`);
  const snap: MergeSnapshot = { crmRecords: [], interactions: [], repointed: [], displayName: null, ...audit.snapshot!, identities: audit.snapshot!.identities! };
  // A customer is never named after an address: a link by hand recorded the linked value (an
  // email, a phone) as the name its detached customer would get.
  const displayName = snap.displayName !== null && looksLikePii(snap.displayName) ? null : snap.displayName;
  let root: string | undefined;
  let restored: string;
  if (audit.action === 'link') {
    // a record or identity linked into a customer goes out to a customer of its own
    root = (await lockCustomers(qr, [audit.survivor_id])).get(audit.survivor_id);
    if (!root) throw AppError.notFound(`customer ${audit.survivor_id}`);
    restored = randomUUID();
    await repo.insertCustomer(qr, restored, displayName);
  } else {
    const roots = await lockCustomers(qr, [audit.survivor_id, audit.merged_id]);
    root = roots.get(audit.survivor_id);
    restored = audit.merged_id;
    if (!root || roots.get(restored) !== root || root === restored) {
      throw new AppError('CONFLICT', 'the merged customer is no longer part of the survivor; nothing to undo');
    }
  }
  const back = await repo.moveIdentitiesBack(qr, restored, snap.identities, root);
  const movedBack = await repo.moveInteractionsBack(qr, restored, back, root, snap.interactions);
  await repo.moveCrmRecordsBack(qr, restored, snap.crmRecords, root);
  await repo.repointBack(qr, restored, snap.repointed, root);
  // a link records no name or value (its audit row outlives an erasure of their owner): the
  // customer it becomes is named after what it takes along (linkedName), never after an address
  const name = displayName ?? (audit.action === 'link' ? await linkedName(qr, restored) : null);
  await repo.restoreCustomer(qr, restored, name);
  // The name the merge gave the survivor (and that later merges passed on) goes with its owner:
  // left there, it named another person, and outlived an erasure of the one it belongs to.
  if (audit.action === 'merge' && snap.displayName !== null) await repo.clearNameFilledBy(qr, mergeAuditId, snap.displayName);
  await repo.markAuditUndone(qr, mergeAuditId);
  const undoId = await repo.insertAudit(qr, {
    action: 'unmerge',
    survivorId: root,
    mergedId: restored,
    reason: opts.reason,
    actor: opts.actor,
    snapshot: { undoes: mergeAuditId, identities: back },
  });
  const [a, b] = await Promise.all([repo.anchorOf(qr, root), repo.anchorOf(qr, restored)]);
  if (a && b) {
    await recordSuggestion(qr, { customerId: root, identityId: a }, { customerId: restored, identityId: b }, {
      score: null,
      evidence: [],
      reason: `merge ${mergeAuditId} undone by ${opts.actor}`,
      status: 'rejected',
      decidedBy: opts.actor,
    });
  }
  const summaries = await rebuildCustomerRollups(qr, [root, restored]);
  await enqueueOutbox(qr, [
    ...summaries.map((s) => sentimentEvent(s, opts.publicUrl)),
    ...reassignedEvents({ reason: 'unmerge', mergeId: mergeAuditId, fromCustomerId: root, toCustomerId: restored, interactionIds: movedBack }),
  ]);
  return { auditId: undoId, survivorId: root, restoredId: restored };
}

/**
 * The name of a customer an undone link made, from what it took along: its CRM record's person
 * (as CRM intake names a record's customer), else a public handle (as `unlinkIdentity` names a
 * split-off handle); never an address.
 */
async function linkedName(qr: Q, customerId: string): Promise<string | null> {
  for (const p of await repo.crmPersonsOfCustomer(qr, customerId)) {
    const name = safeDisplayName([p.givenName, p.surname].filter((s) => s && s.trim()).join(' '), p.company);
    if (name) return name;
  }
  for (const i of await repo.identitiesOfCustomer(qr, customerId)) {
    if (i.kind !== 'handle' || ADDRESS_SOURCES.has(i.network ?? '')) continue;
    const name = safeDisplayName(i.raw_value);
    if (name) return name;
  }
  return null;
}

/**
 * Records a merge suggestion (or, with status 'rejected', a remembered rejection).
 * Returns false when nothing was written: the pair is already known, a rejection covers the two
 * customers, or a pending suggestion already joins them.
 */
export async function recordSuggestion(
  qr: Q,
  a: Side,
  b: Side,
  s: { score: number | null; evidence: EvidenceItem[]; reason: string; status?: 'pending' | 'rejected'; decidedBy?: string },
): Promise<boolean> {
  if (a.identityId === b.identityId || a.customerId === b.customerId) return false;
  const status = s.status ?? 'pending';
  if (status === 'pending' && (await repo.rejectedBetween(qr, a.customerId, b.customerId))) return false;
  const [x, y] = a.identityId < b.identityId ? [a, b] : [b, a];
  return repo.insertSuggestion(qr, { x, y, score: s.score, evidence: s.evidence, reason: s.reason, status, decidedBy: s.decidedBy ?? null });
}

/**
 * Pending suggestions between one customer and several others, as recordSuggestion would record
 * them one by one (each other customer once), in one statement. How many were written.
 */
export async function recordSuggestions(
  qr: Q,
  self: Side,
  others: readonly { side: Side; score: number | null; evidence: EvidenceItem[]; reason: string }[],
): Promise<number> {
  const pairs = others
    .filter((o) => o.side.identityId !== self.identityId && o.side.customerId !== self.customerId)
    .map((o) => {
      const [x, y] = self.identityId < o.side.identityId ? [self, o.side] : [o.side, self];
      return { x, y, score: o.score, evidence: o.evidence, reason: o.reason };
    });
  return repo.insertPendingSuggestions(qr, self.customerId, pairs);
}

/**
 * A merge a rule wants: done unless a person rejected the pair (then nothing) or the two hold
 * different records of one CRM object (then a suggestion for review instead); with
 * `opts.unverified` (an author's claim in a message), also a suggestion when both hold CRM records.
 */
export async function autoMergeTx(
  qr: Q,
  survivor: Side,
  merged: Side,
  opts: MergeTxOptions,
): Promise<{ merged: true; auditId: string } | { merged: false; suggested: boolean }> {
  if (await repo.rejectedBetween(qr, survivor.customerId, merged.customerId)) return { merged: false, suggested: false };
  if (await repo.crmConflict(qr, survivor.customerId, merged.customerId)) {
    const suggested = await recordSuggestion(qr, survivor, merged, {
      score: opts.score ?? null,
      evidence: opts.evidence ?? [],
      reason: `${opts.reason}; not merged automatically: both hold records of the same CRM object`,
    });
    return { merged: false, suggested };
  }
  if (opts.unverified && (await repo.bothHoldCrmRecords(qr, survivor.customerId, merged.customerId))) {
    const suggested = await recordSuggestion(qr, survivor, merged, {
      score: opts.score ?? null,
      evidence: opts.evidence ?? [],
      reason: `${opts.reason}; not merged automatically: both are CRM customers, and an author's claim alone does not prove them one`,
    });
    return { merged: false, suggested };
  }
  return { merged: true, auditId: await mergeCustomersTx(qr, survivor.customerId, merged.customerId, opts) };
}

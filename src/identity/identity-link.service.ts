import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { ADDRESS_SOURCES, safeDisplayName } from '../auth/pii.policy';
import type { Config } from '../config/config';
import { inTransactionRetrying } from '../db/lock-conflict-retry';
import { enqueueOutbox } from '../outbox/outbox';
import { reassignedEvents, sentimentEvent } from '../outbox/outbox-events';
import { rebuildCustomerRollups } from '../sentiment/rollups';
import { AppError } from '../shared/app-error';
import type { IdentityAuditService } from './identity-audit.service';
import type { EvidenceItem, IdentityOutcome } from './identity.model';
import * as repo from './identity.repository';
import { identityLockKey, lockCustomers, lockIdentityKeys, mergeCustomersTx, recordSuggestion, unmergeTx } from './merge';
import { identityKey, type IdentityKind } from './normalize';

/**
 * Merges, their undo, and identities linked or unlinked by hand: a person's decisions about
 * which identities are one customer. The transactional work is in ./merge.ts.
 *
 * Must stay true: every merge and link has an audit row with a snapshot that undoes it; a
 * customer's last identity cannot be unlinked; an unlinked pair is remembered as rejected;
 * concurrent writers follow the lock protocol of ./merge.ts.
 */
export class IdentityLinkService {
  constructor(
    private readonly ds: DataSource,
    private readonly config: Pick<Config, 'identity' | 'publicUrl'>,
    private readonly audits: IdentityAuditService,
  ) {}

  private get keyOptions() {
    return { email: { plusAddressing: this.config.identity.plusAddressing }, defaultRegion: this.config.identity.defaultPhoneRegion };
  }

  /**
   * Merges `mergedId` into `survivorId` by a person's decision (no CRM-object guard: the
   * person reviewed it). See mergeCustomersTx for what moves.
   */
  async merge(survivorId: string, mergedId: string, opts: { reason: string; actor: string; score?: number | null; evidence?: EvidenceItem[] }): Promise<IdentityOutcome> {
    const auditId = await inTransactionRetrying(this.ds, (qr) => mergeCustomersTx(qr, survivorId, mergedId, { ...opts, publicUrl: this.config.publicUrl }));
    return { audit: await this.audits.audit(auditId), customerIds: [survivorId] };
  }

  /**
   * Undoes a merge, given the merge's audit id or a customer that was merged away (its most
   * recent merge is undone). See unmergeTx for what goes back.
   */
  async unmerge(ref: { auditId: string } | { customerId: string }, actor: string, reason = 'unmerged by hand'): Promise<IdentityOutcome> {
    let auditId: string;
    if ('auditId' in ref) auditId = ref.auditId;
    else {
      const latest = await repo.latestMergeOf(this.ds, ref.customerId);
      if (!latest) throw AppError.notFound(`a merge of customer ${ref.customerId}`);
      auditId = latest;
    }
    const r = await inTransactionRetrying(this.ds, (qr) => unmergeTx(qr, auditId, { actor, reason, publicUrl: this.config.publicUrl }));
    return { audit: await this.audits.audit(r.auditId), customerIds: [r.survivorId, r.restoredId] };
  }

  /**
   * Links an identity to a customer by hand. When another customer holds it, that is a merge
   * (audited as such); otherwise the identity is added with linked_by = 'manual' (audited as a link).
   */
  async linkIdentity(customerId: string, kind: IdentityKind, network: string | null, value: string, actor: string): Promise<IdentityOutcome> {
    const key = identityKey(kind, network, value, this.keyOptions);
    if (!key) throw AppError.badInput(`${JSON.stringify(value)} is not a valid ${kind}${kind === 'handle' || kind === 'crm' ? ' (check network)' : ''}`);
    const auditId = await inTransactionRetrying(this.ds, async (qr) => {
      await lockIdentityKeys(qr, [identityLockKey(kind, key)]);
      const existing = await repo.identityByKey(qr, kind, key);
      const roots = await lockCustomers(qr, [customerId, ...(existing ? [existing.customer_id] : [])]);
      const target = roots.get(customerId);
      if (!target) throw AppError.notFound(`customer ${customerId}`);
      if (existing) {
        const owner = roots.get(existing.customer_id) ?? existing.customer_id;
        if (owner === target) return null;
        return mergeCustomersTx(qr, target, owner, {
          reason: `${kind} linked by hand; it belonged to customer ${owner}`,
          actor,
          evidence: [{ field: kind, outcome: 'agree', detail: 'linked by hand' }],
          publicUrl: this.config.publicUrl,
        });
      }
      const identityId = await repo.insertManualIdentity(qr, {
        customerId: target,
        kind,
        network: kind === 'handle' || kind === 'profile_url' ? key.slice(0, key.indexOf(':')) : network,
        value: key,
        raw: value,
      });
      return repo.insertAudit(qr, {
        action: 'link',
        survivorId: target,
        reason: `${kind} linked by hand`,
        actor,
        evidence: [{ field: kind, outcome: 'agree', detail: 'linked by hand' }],
        // no value in the audit row: it outlives an erasure of whoever the value then belongs to;
        // undoing the link names the customer it makes from the identity itself (unmergeTx)
        snapshot: { identities: [identityId], crmRecords: [], interactions: [], repointed: [], displayName: null },
      });
    });
    return { audit: auditId ? await this.audits.audit(auditId) : null, customerIds: [(await repo.rootOf(this.ds, customerId)) ?? customerId] };
  }

  /**
   * Takes an identity off a customer: it moves to a new customer with the interactions it
   * attached (and, for a CRM id, the CRM record). The pair is remembered as rejected so no rule
   * joins them again. The interactions that moved (brand replies included) are announced on
   * interactions.reassigned.v1.
   * Must stay true: a customer's last identity cannot be unlinked (BAD_USER_INPUT).
   */
  async unlinkIdentity(customerId: string, kind: IdentityKind, network: string | null, value: string, actor: string): Promise<IdentityOutcome> {
    const key = identityKey(kind, network, value, this.keyOptions) ?? value;
    const r = await inTransactionRetrying(this.ds, async (qr) => {
      await lockIdentityKeys(qr, [identityLockKey(kind, key)]);
      const roots = await lockCustomers(qr, [customerId]);
      const owner = roots.get(customerId);
      if (!owner) throw AppError.notFound(`customer ${customerId}`);
      const identity = await repo.identityOfCustomer(qr, kind, key, owner);
      if (!identity) throw AppError.notFound(`${kind} ${JSON.stringify(value)} on customer ${customerId}`);
      if ((await repo.identityCount(qr, owner)) < 2) throw AppError.badInput("a customer's only identity cannot be unlinked");
      const fresh = randomUUID();
      const record = kind === 'crm' ? await repo.crmRecordByCrmId(qr, owner, key) : undefined;
      // a split-off email or phone must not become the new customer's name
      const name = record?.person
        ? safeDisplayName([record.person.givenName, record.person.surname].filter(Boolean).join(' '), record.person.company)
        : kind === 'handle' && !ADDRESS_SOURCES.has(network ?? '') ? safeDisplayName(identity.raw_value) : null;
      // a name a merge gave the owner along with this identity leaves with it, when nothing else
      // that merge brought stays (as an undone merge's does: unmergeTx)
      const leaving = await repo.namingMergesLeavingWith(qr, identity.id, owner);
      await repo.insertCustomer(qr, fresh, name);
      await repo.moveIdentityByHand(qr, identity.id, fresh);
      for (const m of leaving) await repo.clearNameFilledBy(qr, m.id, m.name);
      const moved = await repo.moveInteractionsOfIdentity(qr, fresh, owner, identity.id);
      if (record) await repo.moveCrmRecord(qr, record.id, fresh);
      const auditId = await repo.insertAudit(qr, {
        action: 'unlink',
        survivorId: owner,
        mergedId: fresh,
        reason: `${kind} unlinked by hand`,
        actor,
        snapshot: { identity: identity.id, interactions: moved, crmRecord: record?.id ?? null },
      });
      const anchor = await repo.anchorOf(qr, owner);
      if (anchor) {
        await recordSuggestion(qr, { customerId: owner, identityId: anchor }, { customerId: fresh, identityId: identity.id }, {
          score: null,
          evidence: [],
          reason: `${kind} unlinked by ${actor}`,
          status: 'rejected',
          decidedBy: actor,
        });
      }
      const summaries = await rebuildCustomerRollups(qr, [owner, fresh]);
      await enqueueOutbox(qr, [
        ...summaries.map((s) => sentimentEvent(s, this.config.publicUrl)),
        ...reassignedEvents({ reason: 'unlink', mergeId: null, fromCustomerId: owner, toCustomerId: fresh, interactionIds: moved }),
      ]);
      return { auditId, owner, fresh };
    });
    return { audit: await this.audits.audit(r.auditId), customerIds: [r.owner, r.fresh] };
  }
}

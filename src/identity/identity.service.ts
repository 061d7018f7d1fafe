import { randomUUID } from 'node:crypto';
import type { DataSource, QueryRunner } from 'typeorm';
import { ADDRESS_SOURCES, safeDisplayName } from '../auth/pii.policy';
import type { Config } from '../config/config';
import { keyset, type SortKey, type Window } from '../graphql/keyset';
import type { Page } from '../graphql/relay';

// created_at as text keeps the microseconds rows of one transaction share
const SUGGESTION_ORDER: SortKey = { name: 'suggestions', expr: 's.created_at', type: 'timestamptz', desc: false };
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import type { MatchParameters } from './matcher';
import {
  anchorOf,
  identityLockKey,
  lockCustomers,
  lockIdentityKeys,
  mergeCustomersTx,
  recordSuggestion,
  unmergeTx,
  type EvidenceItem,
} from './merge';
import { identityKey, type IdentityKind } from './normalize';
import { enqueueOutbox } from '../outbox/outbox';
import { rebuildCustomerRollups } from '../sentiment/rollups';
import { sentimentEvent } from '../outbox/outbox-events';
import { inTransaction } from '../db/transaction';
import type { CrmPerson, CrmRecordInput, CrmSystem } from '../crm/crm.port';

export type { CrmIdentity, CrmPerson, CrmRecordInput, CrmSystem } from '../crm/crm.port';
import { CrmIntakeService, type CrmIntakeResult } from './crm-intake.service';
export { prepareCrmRecord, type CrmIntakeResult } from './crm-intake.service';

export interface SuggestionRow {
  id: string;
  customerA: string;
  customerB: string;
  score: number | null;
  evidence: EvidenceItem[];
  reason: string;
  status: 'pending' | 'accepted' | 'rejected';
  createdAt: Date;
  decidedAt: Date | null;
  decidedBy: string | null;
}

export interface AuditRow {
  id: string;
  action: 'merge' | 'unmerge' | 'link' | 'unlink';
  survivorId: string | null;
  mergedId: string | null;
  score: number | null;
  evidence: EvidenceItem[];
  reason: string;
  actor: string;
  createdAt: Date;
  undoneAt: Date | null;
}

/** What a merge, unmerge, link or unlink did: the audit entry and the customers to show now. */
export interface IdentityOutcome {
  audit: AuditRow | null;
  customerIds: string[];
}


/**
 * Identity resolution backed by the database: CRM-record intake, merges and their undo,
 * manual links, and the review queue of merge suggestions.
 *
 * Must stay true: every merge has an audit row with a snapshot that undoes it; two records of
 * one CRM object are never merged without a person; a rejected pair is never suggested or
 * merged by a rule again; concurrent writers follow the lock protocol of ./merge.ts.
 */
export class IdentityService {
  /** CRM intake and its in-memory profile index (./crm-intake.service.ts) */
  private readonly intake: CrmIntakeService;

  constructor(
    private readonly ds: DataSource,
    private readonly config: Pick<Config, 'identity' | 'publicUrl'>,
    log: Logger,
  ) {
    this.intake = new CrmIntakeService(ds, config, log);
  }

  get thresholds(): { autoLinkBits: number; reviewBits: number } {
    return { autoLinkBits: this.config.identity.autoLinkBits, reviewBits: this.config.identity.reviewBits };
  }

  get keyOptions() {
    return { email: { plusAddressing: this.config.identity.plusAddressing }, defaultRegion: this.config.identity.defaultPhoneRegion };
  }

  /** New match weights (the re-resolution job fits them): the in-memory index is rebuilt on next use. */
  useParameters(parameters: MatchParameters): void {
    this.intake.useParameters(parameters);
  }

  /** See `CrmIntakeService.ingestCrmRecords`. */
  ingestCrmRecords(system: CrmSystem, objectType: string, records: CrmRecordInput[], actor = `sync:${system}`): Promise<CrmIntakeResult> {
    return this.intake.ingestCrmRecords(system, objectType, records, actor);
  }

  /**
   * Merges `mergedId` into `survivorId` by a person's decision (no CRM-object guard: the
   * person reviewed it). See mergeCustomersTx for what moves.
   */
  async merge(survivorId: string, mergedId: string, opts: { reason: string; actor: string; score?: number | null; evidence?: EvidenceItem[] }): Promise<IdentityOutcome> {
    const auditId = await this.transaction((qr) => mergeCustomersTx(qr, survivorId, mergedId, { ...opts, publicUrl: this.config.publicUrl }));
    return { audit: await this.audit(auditId), customerIds: [survivorId] };
  }

  /**
   * Undoes a merge, given the merge's audit id or a customer that was merged away (its most
   * recent merge is undone). See unmergeTx for what goes back.
   */
  async unmerge(ref: { auditId: string } | { customerId: string }, actor: string, reason = 'unmerged by hand'): Promise<IdentityOutcome> {
    let auditId: string;
    if ('auditId' in ref) auditId = ref.auditId;
    else {
      const [row]: { id: string }[] = await this.ds.query(
        `SELECT id FROM merge_audit WHERE merged_id = $1 AND action = 'merge' AND undone_at IS NULL ORDER BY created_at DESC LIMIT 1`,
        [ref.customerId],
      );
      if (!row) throw AppError.notFound(`a merge of customer ${ref.customerId}`);
      auditId = row.id;
    }
    const r = await this.transaction((qr) => unmergeTx(qr, auditId, { actor, reason, publicUrl: this.config.publicUrl }));
    return { audit: await this.audit(r.auditId), customerIds: [r.survivorId, r.restoredId] };
  }

  /**
   * Links an identity to a customer by hand. When another customer holds it, that is a merge
   * (audited as such); otherwise the identity is added with linked_by = 'manual' (audited as a link).
   */
  async linkIdentity(customerId: string, kind: IdentityKind, network: string | null, value: string, actor: string): Promise<IdentityOutcome> {
    const key = identityKey(kind, network, value, this.keyOptions);
    if (!key) throw AppError.badInput(`${JSON.stringify(value)} is not a valid ${kind}${kind === 'handle' || kind === 'crm' ? ' (check network)' : ''}`);
    const auditId = await this.transaction(async (qr) => {
      await lockIdentityKeys(qr, [identityLockKey(kind, key)]);
      const [existing]: { id: string; customer_id: string }[] = await qr.query(`SELECT id, customer_id FROM customer_identity WHERE kind = $1 AND value = $2`, [kind, key]);
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
      const [row]: { id: string }[] = await qr.query(
        `INSERT INTO customer_identity (customer_id, kind, network, value, raw_value, source, linked_by)
         VALUES ($1, $2, $3, $4, $5, 'manual', 'manual') RETURNING id`,
        [target, kind, kind === 'handle' || kind === 'profile_url' ? key.slice(0, key.indexOf(':')) : network, key, value],
      );
      const [audit]: { id: string }[] = await qr.query(
        `INSERT INTO merge_audit (created_at, action, survivor_id, reason, actor, evidence, snapshot)
         VALUES (clock_timestamp(), 'link', $1, $2, $3, $4, $5) RETURNING id`,
        [target, `${kind} linked by hand`, actor, JSON.stringify([{ field: kind, outcome: 'agree', detail: 'linked by hand' }]), JSON.stringify({ identities: [row!.id], crmRecords: [], interactions: [], repointed: [], displayName: value })],
      );
      return audit!.id;
    });
    return { audit: auditId ? await this.audit(auditId) : null, customerIds: [(await this.rootOf(customerId)) ?? customerId] };
  }

  /**
   * Takes an identity off a customer: it moves to a new customer with the interactions it
   * attached (and, for a CRM id, the CRM record). The pair is remembered as rejected so no rule
   * joins them again.
   * Must stay true: a customer's last identity cannot be unlinked (BAD_USER_INPUT).
   */
  async unlinkIdentity(customerId: string, kind: IdentityKind, network: string | null, value: string, actor: string): Promise<IdentityOutcome> {
    const key = identityKey(kind, network, value, this.keyOptions) ?? value;
    const r = await this.transaction(async (qr) => {
      await lockIdentityKeys(qr, [identityLockKey(kind, key)]);
      const roots = await lockCustomers(qr, [customerId]);
      const owner = roots.get(customerId);
      if (!owner) throw AppError.notFound(`customer ${customerId}`);
      const [identity]: { id: string; raw_value: string | null }[] = await qr.query(
        `SELECT id, raw_value FROM customer_identity WHERE kind = $1 AND value = $2 AND customer_id = $3`,
        [kind, key, owner],
      );
      if (!identity) throw AppError.notFound(`${kind} ${JSON.stringify(value)} on customer ${customerId}`);
      const [{ n }]: { n: number }[] = await qr.query(`SELECT count(*)::int AS n FROM customer_identity WHERE customer_id = $1`, [owner]);
      if (n < 2) throw AppError.badInput("a customer's only identity cannot be unlinked");
      const fresh = randomUUID();
      const record: { id: string; person: CrmPerson | null }[] =
        kind === 'crm' ? await qr.query(`SELECT r.id, r.person FROM crm_record r WHERE r.customer_id = $1 AND r.person->'crmIds'->>0 = $2`, [owner, key]) : [];
      // a split-off email or phone must not become the new customer's name
      const name = record[0]?.person
        ? safeDisplayName([record[0].person.givenName, record[0].person.surname].filter(Boolean).join(' '), record[0].person.company)
        : kind === 'handle' && !ADDRESS_SOURCES.has(network ?? '') ? safeDisplayName(identity.raw_value) : null;
      await qr.query(`INSERT INTO customer (id, display_name) VALUES ($1, $2)`, [fresh, name]);
      await qr.query(`UPDATE customer_identity SET customer_id = $1, linked_by = 'manual', link_score = NULL, link_evidence = NULL WHERE id = $2`, [fresh, identity.id]);
      const moved: { id: string }[] = await qr.query(
        `WITH u AS (UPDATE interaction i SET customer_id = $1
                     WHERE i.customer_id = $2 AND i.identity_id = $3
                    RETURNING id) SELECT id FROM u`,
        [fresh, owner, identity.id],
      );
      if (record.length > 0) await qr.query(`UPDATE crm_record SET customer_id = $1, updated_at = now() WHERE id = $2`, [fresh, record[0]!.id]);
      const [audit]: { id: string }[] = await qr.query(
        `INSERT INTO merge_audit (created_at, action, survivor_id, merged_id, reason, actor, snapshot)
         VALUES (clock_timestamp(), 'unlink', $1, $2, $3, $4, $5) RETURNING id`,
        [owner, fresh, `${kind} unlinked by hand`, actor, JSON.stringify({ identity: identity.id, interactions: moved.map((m) => m.id), crmRecord: record[0]?.id ?? null })],
      );
      const anchor = await anchorOf(qr, owner);
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
      await enqueueOutbox(qr, summaries.map((s) => sentimentEvent(s, this.config.publicUrl)));
      return { auditId: audit!.id, owner, fresh };
    });
    return { audit: await this.audit(r.auditId), customerIds: [r.owner, r.fresh] };
  }

  /** Pending suggestions, oldest first, keyset-paged; pairs already in one customer are left out. */
  async suggestions(w: Window): Promise<Page<SuggestionRow>> {
    const base = `FROM merge_suggestion s
       JOIN customer_identity ia ON ia.id = s.identity_a_id
       JOIN customer_identity ib ON ib.id = s.identity_b_id
      WHERE s.status = 'pending' AND ia.customer_id <> ib.customer_id`;
    const params: unknown[] = [];
    const k = keyset(SUGGESTION_ORDER, 's.id', w, params);
    params.push(k.limit);
    const rows = (await this.ds.query(
      `SELECT s.*, ia.customer_id AS cur_a, ib.customer_id AS cur_b, s.created_at::text AS sort_key
       ${base}${k.conditions.map((c) => ` AND ${c}`).join('')} ORDER BY ${k.orderBy} LIMIT $${params.length}`,
      params,
    )) as (RawSuggestion & { sort_key: string })[];
    return k.page(rows, toSuggestion, (r) => [r.sort_key, r.id], async () => ((await this.ds.query(`SELECT count(*)::int AS total ${base}`)) as { total: number }[])[0]!.total);
  }

  async suggestion(id: string): Promise<SuggestionRow | null> {
    const rows: RawSuggestion[] = await this.ds.query(
      `SELECT s.*, ia.customer_id AS cur_a, ib.customer_id AS cur_b FROM merge_suggestion s
         JOIN customer_identity ia ON ia.id = s.identity_a_id JOIN customer_identity ib ON ib.id = s.identity_b_id
        WHERE s.id = $1`,
      [id],
    );
    return rows[0] ? toSuggestion(rows[0]) : null;
  }

  /**
   * Accepts a suggestion: the two customers are merged (the older one survives) with the
   * suggestion's score and evidence, and the person as actor. CONFLICT unless pending.
   */
  async acceptSuggestion(id: string, actor: string): Promise<IdentityOutcome> {
    const r = await this.transaction(async (qr) => {
      const s = await this.lockSuggestion(qr, id);
      const roots = await lockCustomers(qr, [s.cur_a, s.cur_b]);
      const [a, b] = [roots.get(s.cur_a)!, roots.get(s.cur_b)!];
      await qr.query(`UPDATE merge_suggestion SET status = 'accepted', decided_at = now(), decided_by = $2 WHERE id = $1`, [id, actor]);
      if (a === b) return { auditId: null, survivor: a };
      const [older]: { id: string }[] = await qr.query(`SELECT id FROM customer WHERE id = ANY($1::uuid[]) ORDER BY created_at, id LIMIT 1`, [[a, b]]);
      const survivor = older!.id;
      const auditId = await mergeCustomersTx(qr, survivor, survivor === a ? b : a, {
        reason: `suggestion ${id} accepted${s.reason ? ` (${s.reason})` : ''}`,
        actor,
        score: s.score,
        evidence: s.evidence,
        publicUrl: this.config.publicUrl,
      });
      return { auditId, survivor };
    });
    return { audit: r.auditId ? await this.audit(r.auditId) : null, customerIds: [r.survivor] };
  }

  /** Rejects a suggestion: the pair is remembered and never suggested or merged by a rule again. */
  async rejectSuggestion(id: string, actor: string): Promise<SuggestionRow> {
    await this.transaction(async (qr) => {
      const s = await this.lockSuggestion(qr, id, true);
      if (s.status === 'rejected') return;
      await qr.query(`UPDATE merge_suggestion SET status = 'rejected', decided_at = now(), decided_by = $2 WHERE id = $1`, [id, actor]);
    });
    return (await this.suggestion(id))!;
  }

  /** Audit entries of many customers (as survivor or merged side), newest first, at most 100 each. */
  async historyOf(customerIds: readonly string[]): Promise<AuditRow[][]> {
    const rows: (RawAudit & { customer: string })[] = await this.ds.query(
      `SELECT k.customer, a.* FROM unnest($1::uuid[]) AS k(customer)
         CROSS JOIN LATERAL (
           SELECT * FROM merge_audit a WHERE a.survivor_id = k.customer OR a.merged_id = k.customer
            ORDER BY a.created_at DESC, a.id DESC LIMIT 100) a`,
      [customerIds],
    );
    const grouped = new Map<string, AuditRow[]>();
    for (const r of rows) grouped.set(r.customer, [...(grouped.get(r.customer) ?? []), toAudit(r)]);
    return customerIds.map((id) => grouped.get(id) ?? []);
  }

  async audit(id: string): Promise<AuditRow | null> {
    const [row]: RawAudit[] = await this.ds.query(`SELECT * FROM merge_audit WHERE id = $1`, [id]);
    return row ? toAudit(row) : null;
  }

  // -------------------------------------------------------------------------------------------

  private async rootOf(customerId: string): Promise<string | null> {
    const [row]: { root: string }[] = await this.ds.query(`SELECT coalesce(merged_into_id, id) AS root FROM customer WHERE id = $1`, [customerId]);
    return row?.root ?? null;
  }

  private async lockSuggestion(qr: QueryRunner, id: string, allowRejected = false): Promise<RawSuggestion> {
    const [s]: RawSuggestion[] = await qr.query(
      `SELECT s.*, ia.customer_id AS cur_a, ib.customer_id AS cur_b FROM merge_suggestion s
         JOIN customer_identity ia ON ia.id = s.identity_a_id JOIN customer_identity ib ON ib.id = s.identity_b_id
        WHERE s.id = $1 FOR UPDATE OF s`,
      [id],
    );
    if (!s) throw AppError.notFound(`merge suggestion ${id}`);
    if (s.status !== 'pending' && !(allowRejected && s.status === 'rejected')) {
      throw new AppError('CONFLICT', `merge suggestion ${id} was already ${s.status}`);
    }
    return s;
  }

  private transaction<T>(fn: (qr: QueryRunner) => Promise<T>): Promise<T> {
    return inTransaction(this.ds, fn);
  }

}

interface RawSuggestion {
  id: string;
  cur_a: string;
  cur_b: string;
  score: number | null;
  evidence: EvidenceItem[];
  reason: string;
  status: 'pending' | 'accepted' | 'rejected';
  created_at: Date;
  decided_at: Date | null;
  decided_by: string | null;
}

function toSuggestion(r: RawSuggestion): SuggestionRow {
  return {
    id: r.id,
    customerA: r.cur_a,
    customerB: r.cur_b,
    score: r.score,
    evidence: r.evidence ?? [],
    reason: r.reason,
    status: r.status,
    createdAt: r.created_at,
    decidedAt: r.decided_at,
    decidedBy: r.decided_by,
  };
}

interface RawAudit {
  id: string;
  action: AuditRow['action'];
  survivor_id: string | null;
  merged_id: string | null;
  score: number | null;
  evidence: EvidenceItem[] | null;
  reason: string;
  actor: string;
  created_at: Date;
  undone_at: Date | null;
}

function toAudit(r: RawAudit): AuditRow {
  return {
    id: r.id,
    action: r.action,
    survivorId: r.survivor_id,
    mergedId: r.merged_id,
    score: r.score,
    evidence: r.evidence ?? [],
    reason: r.reason,
    actor: r.actor,
    createdAt: r.created_at,
    undoneAt: r.undone_at,
  };
}

import { randomUUID } from 'node:crypto';
import type { DataSource, QueryRunner } from 'typeorm';
import type { Config } from '../config/config';
import { decodeCursor, encodeCursor, pageSize, toPage, type Page } from '../graphql/relay';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import { IncrementalIndex, Matcher, DEFAULT_PARAMETERS, type MatchParameters, type PersonRecord } from './matcher';
import {
  anchorOf,
  autoMergeTx,
  identityLockKey,
  lockCustomers,
  lockIdentityKeys,
  mergeCustomersTx,
  recordSuggestion,
  unmergeTx,
  type EvidenceItem,
} from './merge';
import { identityKey, type IdentityKeyOptions, type IdentityKind } from './normalize';
import { enqueueOutbox } from '../outbox/outbox';
import { rebuildCustomerRollups } from '../sentiment/rollups';
import { sentimentEvent } from '../outbox/outbox-events';
import { inTransaction } from '../db/transaction';
import type { CrmPerson, CrmRecordInput, CrmSystem } from '../crm/crm.port';

export type { CrmIdentity, CrmPerson, CrmRecordInput, CrmSystem } from '../crm/crm.port';

export interface CrmIntakeResult {
  records: number;
  /** records that got a customer of their own */
  created: number;
  /** records attached to an existing customer by a shared identity */
  attached: number;
  /** customers merged because a record's deterministic keys proved them one */
  merged: number;
  /** records linked to an existing customer by the matcher (score at or above the auto-link threshold) */
  linked: number;
  /** suggestions recorded for review */
  suggested: number;
  /** per input record, in input order: the customer it belongs to */
  customerIds: string[];
}

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

const CHUNK = 100;
const INDEX_REFRESH_MS = 5_000;

/**
 * Identity resolution backed by the database: CRM-record intake, merges and their undo,
 * manual links, and the review queue of merge suggestions.
 *
 * Must stay true: every merge has an audit row with a snapshot that undoes it; two records of
 * one CRM object are never merged without a person; a rejected pair is never suggested or
 * merged by a rule again; concurrent writers follow the lock protocol of ./merge.ts.
 */
export class IdentityService {
  private index: IncrementalIndex | null = null;
  private indexedUntil = new Date(0);
  private lastRefresh = 0;
  private parameters: MatchParameters = DEFAULT_PARAMETERS;

  constructor(
    private readonly ds: DataSource,
    private readonly config: Pick<Config, 'identity' | 'publicUrl'>,
    private readonly log: Logger,
  ) {}

  get thresholds(): { autoLinkBits: number; reviewBits: number } {
    return { autoLinkBits: this.config.identity.autoLinkBits, reviewBits: this.config.identity.reviewBits };
  }

  get keyOptions() {
    return { email: { plusAddressing: this.config.identity.plusAddressing }, defaultRegion: this.config.identity.defaultPhoneRegion };
  }

  /** New match weights (the re-resolution job fits them): the in-memory index is rebuilt on next use. */
  useParameters(parameters: MatchParameters): void {
    this.parameters = parameters;
    this.index = null;
  }

  /**
   * Takes CRM records in (the CRM sync calls this): upserts each `crm_record` with its person
   * profile, derives its deterministic identities (the CRM id, emails, phones, handles held in
   * CRM fields) and attaches it to the customer owning any of them, merging customers those
   * keys prove to be one (audited). A record sharing a key with another record of the same CRM
   * object is never merged: a suggestion is recorded instead. A record no key places is matched
   * probabilistically: at or above the auto-link threshold it is merged into the best match
   * (audited with score and evidence), in the review band it becomes a suggestion, below it
   * stays a customer of its own.
   *
   * Must stay true: idempotent for the same input; a concurrent ingest or intake of the same
   * email or phone never yields two customers; records are committed in chunks of 100, each
   * chunk all or nothing.
   */
  async ingestCrmRecords(system: CrmSystem, objectType: string, records: CrmRecordInput[], actor = `sync:${system}`): Promise<CrmIntakeResult> {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(objectType)) throw AppError.badInput(`invalid CRM object type ${JSON.stringify(objectType)}`);
    const result: CrmIntakeResult = { records: records.length, created: 0, attached: 0, merged: 0, linked: 0, suggested: 0, customerIds: [] };
    await this.ensureIndex();
    for (let i = 0; i < records.length; i += CHUNK) {
      const chunk = records.slice(i, i + CHUNK).map((r) => this.prepareCrm(system, objectType, r));
      const outcome = await this.withRetry(() => this.transaction((qr) => this.intakeChunk(qr, system, objectType, chunk, actor)));
      result.created += outcome.created;
      result.attached += outcome.attached;
      result.merged += outcome.merged;
      result.linked += outcome.linked;
      result.suggested += outcome.suggested;
      result.customerIds.push(...outcome.customerIds);
    }
    return result;
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
      const name = record[0]?.person ? [record[0].person.givenName, record[0].person.surname].filter(Boolean).join(' ') || null : identity.raw_value;
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
  async suggestions(first: number | null | undefined, after: string | null | undefined): Promise<Page<SuggestionRow>> {
    const n = pageSize(first);
    const cursor = decodeCursor(after);
    const base = `FROM merge_suggestion s
       JOIN customer_identity ia ON ia.id = s.identity_a_id
       JOIN customer_identity ib ON ib.id = s.identity_b_id
      WHERE s.status = 'pending' AND ia.customer_id <> ib.customer_id`;
    const params: unknown[] = [n + 1];
    let where = '';
    if (cursor) {
      params.push(cursor.sort, cursor.id);
      // microseconds: a JS Date would cut them off, and rows of one transaction share a timestamp
      where = ` AND ((extract(epoch FROM s.created_at) * 1000000)::bigint, s.id) > ($2::bigint, $3::uuid)`;
    }
    const [rows, [{ total }]] = await Promise.all([
      this.ds.query(
        `SELECT s.*, ia.customer_id AS cur_a, ib.customer_id AS cur_b, ((extract(epoch FROM s.created_at) * 1000000)::bigint)::text AS created_us
         ${base}${where} ORDER BY s.created_at, s.id LIMIT $1`,
        params,
      ) as Promise<(RawSuggestion & { created_us: string })[]>,
      this.ds.query(`SELECT count(*)::int AS total ${base}`) as Promise<{ total: number }[]>,
    ]);
    const micros = new Map(rows.map((r) => [r.id, r.created_us]));
    return toPage(rows.map(toSuggestion), n, total, (s) => encodeCursor(micros.get(s.id)!, s.id));
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

  private prepareCrm(system: CrmSystem, objectType: string, input: CrmRecordInput): PreparedCrm {
    return { input, ...prepareCrmRecord(system, objectType, input, this.keyOptions), recordId: null };
  }

  private async intakeChunk(qr: QueryRunner, system: CrmSystem, objectType: string, chunk: PreparedCrm[], actor: string): Promise<Omit<CrmIntakeResult, 'records'>> {
    const out = { created: 0, attached: 0, merged: 0, linked: 0, suggested: 0, customerIds: [] as string[] };
    // All keys of the chunk at once and in order: locking record by record could deadlock with the ingest pipeline.
    await lockIdentityKeys(qr, chunk.flatMap((c) => c.claims.map((k) => identityLockKey(k.kind, k.value))));
    for (const c of chunk) {
      const [rec]: { id: string; customer_id: string | null }[] = await qr.query(
        `INSERT INTO crm_record (system, object_type, external_id, owner_id, payload, modstamp, person, deleted_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8::boolean THEN now() END)
         ON CONFLICT (system, object_type, external_id) DO UPDATE SET
           owner_id = EXCLUDED.owner_id, payload = EXCLUDED.payload, modstamp = EXCLUDED.modstamp, person = EXCLUDED.person,
           deleted_at = CASE WHEN $8::boolean THEN coalesce(crm_record.deleted_at, now()) END, updated_at = now()
         RETURNING id, customer_id`,
        [
          system,
          objectType,
          c.input.externalId,
          c.input.ownerId ?? null,
          JSON.stringify(c.input.payload ?? {}),
          c.input.modstamp ? new Date(c.input.modstamp).toISOString() : null,
          JSON.stringify(c.person),
          c.input.deleted === true,
        ],
      );
      c.recordId = rec!.id;
      const customerId = await this.placeRecord(qr, system, objectType, c, rec!.customer_id, actor, out);
      out.customerIds.push(customerId);
      // At once, so later records of this chunk match it; after a rollback the entry points at no
      // stored record and candidates are looked up in the database, so it is ignored.
      if (c.input.deleted) this.index!.remove(c.recordId);
      else this.index!.add({ ...c.person, id: c.recordId });
    }
    return out;
  }

  /** Decides the customer of one upserted CRM record; see ingestCrmRecords. */
  private async placeRecord(
    qr: QueryRunner,
    system: CrmSystem,
    objectType: string,
    c: PreparedCrm,
    current: string | null,
    actor: string,
    out: Omit<CrmIntakeResult, 'records'>,
  ): Promise<string> {
    const recordId = c.recordId!;
    const owned: { id: string; kind: string; value: string; customer_id: string }[] = await qr.query(
      `SELECT ci.id, ci.kind, ci.value, ci.customer_id FROM customer_identity ci
         JOIN unnest($1::text[], $2::text[]) AS k(kind, value) ON ci.kind = k.kind AND ci.value = k.value`,
      [c.claims.map((k) => k.kind), c.claims.map((k) => k.value)],
    );
    const roots = await lockCustomers(qr, [...owned.map((o) => o.customer_id), ...(current ? [current] : [])]);
    const ownerOf = new Map(owned.map((o) => [identityLockKey(o.kind, o.value), { identityId: o.id, customerId: roots.get(o.customer_id) ?? o.customer_id }]));
    const crmOwner = ownerOf.get(identityLockKey('crm', c.claims[0]!.value));
    const publicUrl = this.config.publicUrl;

    // The record's own customer (a re-sync) decides; else the strongest shared identity whose
    // owner holds no other record of this CRM object.
    let target: string | null = crmOwner?.customerId ?? (current ? (roots.get(current) ?? current) : null);
    let targetAnchor: string | null = crmOwner?.identityId ?? null;
    const apart: { kind: string; side: { customerId: string; identityId: string } }[] = [];
    let attachedVia: string | null = null;
    for (const claim of c.claims.slice(1)) {
      const o = ownerOf.get(identityLockKey(claim.kind, claim.value));
      if (!o || o.customerId === target) continue;
      if (await this.holdsOtherRecord(qr, o.customerId, system, objectType, c.input.externalId)) {
        apart.push({ kind: claim.kind, side: o });
        continue;
      }
      if (target === null) {
        target = o.customerId;
        targetAnchor = o.identityId;
        attachedVia = claim.kind;
        out.attached++;
        continue;
      }
      const r = await autoMergeTx(qr, { customerId: target, identityId: targetAnchor ?? o.identityId }, o, {
        reason: `${system} ${objectType} ${c.input.externalId} carries the ${claim.kind} of customer ${o.customerId} (intake by ${actor})`,
        actor: `rule:deterministic:${claim.kind}`,
        evidence: [{ field: claim.kind, outcome: 'agree', detail: `same ${claim.kind} on ${system} ${objectType} ${c.input.externalId}` }],
        publicUrl,
      });
      if (r.merged) {
        out.merged++;
        for (const v of ownerOf.values()) if (v.customerId === o.customerId) v.customerId = target;
      } else if (r.suggested) out.suggested++;
    }

    // Records no key placed are compared with every similar profile: the best auto link takes
    // the record in (audited as a 'link', undoable), the review band becomes suggestions.
    const candidates = target === null && !c.input.deleted ? this.index!.match({ ...c.person, id: recordId }) : [];
    const info = candidates.length > 0 ? await this.recordsInfo(qr, candidates.map((m) => m.id)) : new Map<string, RecordInfo>();
    const candidateRoots = info.size > 0 ? await lockCustomers(qr, [...info.values()].map((i) => i.customerId)) : new Map<string, string>();
    let link: { root: string; score: number; evidence: EvidenceItem[]; label: string } | null = null;
    for (const m of candidates) {
      const other = info.get(m.id);
      if (m.decision !== 'link' || !other) continue;
      const root = candidateRoots.get(other.customerId)!;
      if (await this.holdsOtherRecord(qr, root, system, objectType, c.input.externalId)) continue;
      link = { root, score: m.score, evidence: m.evidence as EvidenceItem[], label: other.label };
      break;
    }

    if (target === null && link) target = link.root;
    const created = target === null;
    if (created) {
      target = randomUUID();
      await qr.query(`INSERT INTO customer (id, display_name) VALUES ($1, $2)`, [target, c.displayName]);
      out.created++;
    }
    const missing = c.claims.filter((k) => !ownerOf.has(identityLockKey(k.kind, k.value)));
    let inserted: { id: string; kind: string }[] = [];
    if (missing.length > 0) {
      inserted = await qr.query(
        `INSERT INTO customer_identity (customer_id, kind, network, value, raw_value, source, linked_by, link_score, link_evidence)
         SELECT $1, k, n, v, r, $2, $7, $8, $9 FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS x(k, n, v, r)
         RETURNING id, kind`,
        [
          target,
          system,
          missing.map((k) => k.kind),
          missing.map((k) => k.network),
          missing.map((k) => k.value),
          missing.map((k) => k.raw),
          link ? 'rule' : 'deterministic',
          link?.score ?? null,
          link ? JSON.stringify(link.evidence) : null,
        ],
      );
    }
    await qr.query(`UPDATE crm_record SET customer_id = $1 WHERE id = $2 AND customer_id IS DISTINCT FROM $1`, [target, recordId]);
    if (link || attachedVia) {
      // a 'link' audit makes taking the record in undoable (unmergeCustomer) like a merge
      const snapshot = { identities: inserted.map((i) => i.id), crmRecords: [recordId], interactions: [], repointed: [], displayName: c.displayName };
      await qr.query(`INSERT INTO merge_audit (created_at, action, survivor_id, score, evidence, reason, actor, snapshot) VALUES (clock_timestamp(), 'link', $1, $2, $3, $4, $5, $6)`, [
        target,
        link?.score ?? null,
        JSON.stringify(link?.evidence ?? [{ field: attachedVia, outcome: 'agree', detail: `the customer already holds this ${attachedVia}` }]),
        link
          ? `${system} ${objectType} ${c.input.externalId} matches ${link.label} with ${link.score.toFixed(1)} bits (auto-link threshold ${this.thresholds.autoLinkBits}; intake by ${actor})`
          : `${system} ${objectType} ${c.input.externalId} carries a ${attachedVia} the customer holds (intake by ${actor})`,
        link ? 'rule:fellegi-sunter' : `rule:deterministic:${attachedVia}`,
        JSON.stringify(snapshot),
      ]);
      if (link) out.linked++;
    }
    if (c.input.deleted) return target!;
    const selfAnchor = crmOwner?.identityId ?? inserted.find((i) => i.kind === 'crm')?.id ?? (await this.identityIdOf(qr, 'crm', c.claims[0]!.value))!;

    const suggestedWith = new Set<string>([target!]);
    for (const m of candidates) {
      const other = info.get(m.id);
      if (!other) continue;
      const root = candidateRoots.get(other.customerId)!;
      if (suggestedWith.has(root)) continue;
      suggestedWith.add(root);
      const ok = await recordSuggestion(qr, { customerId: target!, identityId: selfAnchor }, { customerId: root, identityId: other.anchor }, {
        score: m.score,
        evidence: m.evidence as EvidenceItem[],
        reason:
          m.decision === 'link'
            ? `${system} ${objectType} ${c.input.externalId} matches ${other.label} (${m.score.toFixed(1)} bits) but not automatically: both hold records of one CRM object`
            : `${system} ${objectType} ${c.input.externalId} resembles ${other.label} (${m.score.toFixed(1)} bits, review band ${this.thresholds.reviewBits}–${this.thresholds.autoLinkBits})`,
      });
      if (ok) out.suggested++;
    }
    // Shared keys with another record of the same CRM object: for review, never merged.
    for (const a of apart) {
      const root = (await lockCustomers(qr, [a.side.customerId])).get(a.side.customerId)!;
      if (suggestedWith.has(root)) continue;
      suggestedWith.add(root);
      const ok = await recordSuggestion(qr, { customerId: target!, identityId: selfAnchor }, { customerId: root, identityId: a.side.identityId }, {
        score: null,
        evidence: [{ field: a.kind, outcome: 'agree', detail: `shared, but both are ${system} ${objectType} records, which the CRM keeps apart` }],
        reason: `${system} ${objectType} ${c.input.externalId} shares a ${a.kind} with another ${objectType}`,
      });
      if (ok) out.suggested++;
    }
    return target!;
  }

  private async holdsOtherRecord(qr: QueryRunner, customerId: string, system: string, objectType: string, externalId: string): Promise<boolean> {
    const rows: unknown[] = await qr.query(
      `SELECT 1 FROM crm_record WHERE customer_id = $1 AND system = $2 AND object_type = $3 AND external_id <> $4 AND deleted_at IS NULL LIMIT 1`,
      [customerId, system, objectType, externalId],
    );
    return rows.length > 0;
  }

  private async identityIdOf(qr: QueryRunner, kind: string, value: string): Promise<string | null> {
    const [row]: { id: string }[] = await qr.query(`SELECT id FROM customer_identity WHERE kind = $1 AND value = $2`, [kind, value]);
    return row?.id ?? null;
  }

  /** Customer, anchor identity and a label of CRM records, for the matcher's candidates. */
  private async recordsInfo(qr: QueryRunner, recordIds: string[]): Promise<Map<string, RecordInfo>> {
    const rows: { id: string; customer_id: string; anchor: string; label: string }[] = await qr.query(
      `SELECT r.id, ci.customer_id, ci.id AS anchor, r.system || ' ' || r.object_type || ' ' || r.external_id AS label
         FROM crm_record r
         JOIN customer_identity ci ON ci.kind = 'crm' AND ci.value = r.person->'crmIds'->>0
        WHERE r.id = ANY($1::uuid[]) AND r.deleted_at IS NULL`,
      [recordIds],
    );
    return new Map(rows.map((r) => [r.id, { customerId: r.customer_id, anchor: r.anchor, label: r.label }]));
  }

  /** Loads (once) and refreshes (every few seconds) the profiles other processes wrote. */
  private async ensureIndex(): Promise<void> {
    if (this.index && Date.now() - this.lastRefresh < INDEX_REFRESH_MS) return;
    const first = this.index === null;
    if (first) {
      this.index = new IncrementalIndex(new Matcher(this.parameters, this.keyOptions), {
        autoLinkThreshold: this.thresholds.autoLinkBits,
        reviewThreshold: this.thresholds.reviewBits,
      });
      this.indexedUntil = new Date(0);
    }
    const since = new Date(this.indexedUntil.getTime() - 60_000);
    const rows: { id: string; person: Omit<PersonRecord, 'id'> | null; deleted: boolean; updated_at: Date }[] = await this.ds.query(
      `SELECT id, person, deleted_at IS NOT NULL AS deleted, updated_at FROM crm_record WHERE updated_at > $1 AND person IS NOT NULL`,
      [since.toISOString()],
    );
    for (const r of rows) {
      if (r.deleted || !r.person) this.index!.remove(r.id);
      else this.index!.add({ ...r.person, id: r.id });
      if (r.updated_at > this.indexedUntil) this.indexedUntil = new Date(r.updated_at);
    }
    this.lastRefresh = Date.now();
    if (first) this.log.info({ profiles: this.index!.size }, 'identity index loaded');
  }

  private transaction<T>(fn: (qr: QueryRunner) => Promise<T>): Promise<T> {
    return inTransaction(this.ds, fn);
  }

  /** A deadlock (two writers locking rows in different orders) aborts one of them: run it again. */
  private async withRetry<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        const code = (e as { driverError?: { code?: string }; code?: string }).driverError?.code ?? (e as { code?: string }).code;
        if ((code !== '40P01' && code !== '40001') || attempt >= 4) throw e;
        this.log.warn({ attempt, code }, 'identity transaction aborted by a lock conflict; retrying');
      }
    }
  }
}

/**
 * The deterministic identities and the person profile of one CRM record, normalized: the CRM id
 * first, then emails, phones, handles and profile URLs in the order given, without duplicates.
 *
 * Must stay true: a value that cannot be an identity of its kind is dropped, never stored half
 * normalized; the profile names the record's CRM id, so two records of one CRM object are never
 * auto-linked by the matcher; an invalid record id is BAD_USER_INPUT.
 */
export function prepareCrmRecord(
  system: CrmSystem,
  objectType: string,
  input: CrmRecordInput,
  keyOptions: IdentityKeyOptions,
): { claims: Claim[]; person: Omit<PersonRecord, 'id'>; displayName: string | null } {
  if (!input.externalId || !/^[A-Za-z0-9_-]+$/.test(input.externalId)) throw AppError.badInput(`invalid CRM record id ${JSON.stringify(input.externalId)}`);
  const crmKey = identityKey('crm', system, `${objectType}:${input.externalId}`, keyOptions);
  if (!crmKey) throw AppError.badInput(`invalid CRM record ${system} ${objectType} ${input.externalId}`);
  const claims: Claim[] = [{ kind: 'crm', network: system, value: crmKey, raw: `${objectType}:${input.externalId}` }];
  for (const id of input.identities ?? []) {
    const value = identityKey(id.kind, id.network ?? null, id.value, keyOptions);
    if (value && !claims.some((c) => c.kind === id.kind && c.value === value)) {
      claims.push({ kind: id.kind, network: id.kind === 'handle' || id.kind === 'profile_url' ? value.slice(0, value.indexOf(':')) : null, value, raw: id.value });
    }
  }
  const p = input.person ?? {};
  const person: Omit<PersonRecord, 'id'> = {
    ...p,
    emails: claims.filter((c) => c.kind === 'email').map((c) => c.value),
    phones: claims.filter((c) => c.kind === 'phone').map((c) => c.value),
    handles: claims.filter((c) => c.kind === 'handle' || c.kind === 'profile_url').map((c) => ({ network: c.network!, handle: c.value.slice(c.value.indexOf(':') + 1) })),
    crmIds: [crmKey],
  };
  const displayName = [p.givenName, p.surname].filter((s) => s && s.trim()).join(' ') || p.company || claims[1]?.raw || null;
  return { claims, person, displayName };
}

interface RecordInfo {
  customerId: string;
  anchor: string;
  label: string;
}

export interface Claim {
  kind: IdentityKind;
  network: string | null;
  value: string;
  raw: string;
}

interface PreparedCrm {
  input: CrmRecordInput;
  claims: Claim[];
  person: Omit<PersonRecord, 'id'>;
  displayName: string | null;
  recordId: string | null;
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

import { randomUUID } from 'node:crypto';
import type { DataSource, QueryRunner } from 'typeorm';
import { ADDRESS_SOURCES, safeDisplayName } from '../auth/pii.policy';
import type { Config } from '../config/config';
import type { CrmRecordInput, CrmSystem } from '../crm/crm.port';
import { inTransaction } from '../db/transaction';
import { enqueueOutbox } from '../outbox/outbox';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import { IncrementalIndex, Matcher, DEFAULT_PARAMETERS, MAX_REVIEW_SUGGESTIONS_PER_RECORD, type MatchParameters, type PersonRecord } from './matcher';
import type { EvidenceItem } from './identity.model';
import * as repo from './identity.repository';
import { autoMergeTx, identityLockKey, lockCustomers, lockIdentityKeys, recordSuggestions } from './merge';
import { identityKey, isPlaceholderIdentity, type IdentityKeyOptions, type IdentityKind } from './normalize';

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

const CHUNK = 100;
/**
 * Review-band suggestions one record's intake makes, the strongest first (the matcher compares a
 * record with every member of a block of up to 40, and a window beyond). Pairs that score as a
 * link (two records of one CRM object) are not capped.
 */
export { MAX_REVIEW_SUGGESTIONS_PER_RECORD };
/** counted on the monotonic clock: a host clock stepped back an hour (NTP) kept the index stale for that hour */
const INDEX_REFRESH_MS = 5_000;

/**
 * CRM records into customers: deterministic keys first, then the probabilistic matcher over an
 * in-memory index of every CRM profile (refreshed from the database every few seconds, so other
 * processes' records are seen). Split off IdentityService, which delegates to it.
 */
export class CrmIntakeService {
  private index: IncrementalIndex | null = null;
  private indexedUntil = new Date(0);
  private lastRefresh = 0;
  private parameters: MatchParameters = DEFAULT_PARAMETERS;
  /** erasures that deleted CRM records, when the index was last checked against them */
  private erasuresSeen: number | null = null;

  constructor(
    private readonly ds: DataSource,
    private readonly config: Pick<Config, 'identity' | 'publicUrl'>,
    private readonly log: Logger,
  ) {}

  get thresholds(): { autoLinkBits: number; reviewBits: number } {
    return { autoLinkBits: this.config.identity.autoLinkBits, reviewBits: this.config.identity.reviewBits };
  }

  get keyOptions() {
    return { email: { plusAddressing: this.config.identity.plusAddressing }, defaultRegion: this.config.identity.defaultPhoneRegion, ignored: this.config.identity.ignored };
  }

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
   * (audited with score and evidence), in the review band it becomes a suggestion (the strongest
   * MAX_REVIEW_SUGGESTIONS_PER_RECORD of them), below it stays a customer of its own.
   *
   * Must stay true: idempotent for the same input; a concurrent ingest or intake of the same
   * email or phone never yields two customers; records are committed in chunks of 100, each
   * chunk all or nothing; each customer a chunk creates is published on customer-sentiment.v1
   * from that chunk's transaction (one outbox row per chunk), so a customer only the CRM knows
   * reaches Kafka consumers as it reaches GraphQL.
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

  private prepareCrm(system: CrmSystem, objectType: string, input: CrmRecordInput): PreparedCrm {
    // a record merged away in the CRM is gone there: deleted, whatever the adapter said
    const mergedInto = typeof input.mergedInto === 'string' && /^[A-Za-z0-9_-]+$/.test(input.mergedInto) && input.mergedInto !== input.externalId ? input.mergedInto : null;
    const given = mergedInto ? { ...input, deleted: true, mergedInto } : { ...input, mergedInto: null };
    return { input: given, ...prepareCrmRecord(system, objectType, given, this.keyOptions), recordId: null };
  }

  private async intakeChunk(qr: QueryRunner, system: CrmSystem, objectType: string, chunk: PreparedCrm[], actor: string): Promise<Omit<CrmIntakeResult, 'records'>> {
    const out = { created: 0, attached: 0, merged: 0, linked: 0, suggested: 0, customerIds: [] as string[] };
    const created: string[] = [];
    // All keys of the chunk at once and in order: locking record by record could deadlock with the ingest pipeline.
    await lockIdentityKeys(qr, chunk.flatMap((c) => c.claims.map((k) => identityLockKey(k.kind, k.value))));
    // The chunk's new records in one statement (a first sync brings nothing else); the stored ones
    // are upserted in their turn, as before.
    const fresh = new Map((await repo.insertNewCrmRecords(qr, system, objectType, chunk.map(crmRow))).map((r) => [r.external_id, r.id]));
    for (const c of chunk) {
      const freshId = fresh.get(c.input.externalId);
      // a second record with the same id in the chunk is an update of the first, upserted in its turn
      fresh.delete(c.input.externalId);
      const rec = freshId ? { id: freshId, customer_id: null } : await repo.upsertCrmRecord(qr, { system, objectType, ...crmRow(c) });
      c.recordId = rec.id;
      const customerId = await this.placeRecord(qr, system, objectType, c, rec.customer_id, actor, out, created);
      out.customerIds.push(customerId);
      // At once, so later records of this chunk match it; after a rollback the entry points at no
      // stored record and candidates are looked up in the database, so it is ignored.
      if (c.input.deleted) this.index!.remove(c.recordId);
      else this.index!.add({ ...c.person, id: c.recordId });
    }
    // A customer only a CRM knows is a customer for the data team too: its summary goes out on
    // customer-sentiment.v1 now, not with its first interaction. One outbox row for the chunk,
    // after its merges' rows, rendered when published: a customer merged away or erased by then
    // is left out (its tombstone stays last). A re-sync creates no one: nothing changed, nothing sent.
    await enqueueOutbox(qr, { customerIds: created, publicUrl: this.config.publicUrl });
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
    /** the customers this chunk made, for the outbox */
    createdIds: string[],
  ): Promise<string> {
    const recordId = c.recordId!;
    const owned = await repo.identitiesByKeys(qr, c.claims);
    const roots = await lockCustomers(qr, [...owned.map((o) => o.customer_id), ...(current ? [current] : [])]);
    // A customer lockCustomers did not find was erased after identitiesByKeys read it (an erasure
    // takes the customer's row lock, not the identity keys): its identities are gone, no one holds
    // them. Before, the record was placed with the erased id and the chunk failed on the foreign key.
    const ownerOf = new Map(owned.filter((o) => roots.has(o.customer_id)).map((o) => [identityLockKey(o.kind, o.value), { identityId: o.id, customerId: roots.get(o.customer_id)! }]));
    const crmOwner = ownerOf.get(identityLockKey('crm', c.claims[0]!.value));
    const publicUrl = this.config.publicUrl;

    // The record's own customer (a re-sync) decides; else the strongest shared identity whose
    // owner holds no other record of this CRM object.
    let target: string | null = crmOwner?.customerId ?? (current ? (roots.get(current) ?? null) : null);
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
    const { info, roots: candidateRoots } = candidates.length > 0 ? await this.lockRecordsInfo(qr, candidates.map((m) => m.id)) : { info: new Map<string, RecordInfo>(), roots: new Map<string, string>() };
    let link: { root: string; score: number; evidence: EvidenceItem[]; label: string } | null = null;
    for (const m of candidates) {
      const other = info.get(m.id);
      // no root: its customer was erased after recordsInfo read it (an erasure takes the
      // customer's row lock, not the identity keys), so there is no one to link to
      const root = other ? candidateRoots.get(other.customerId) : undefined;
      if (m.decision !== 'link' || !other || !root) continue;
      if (await this.holdsOtherRecord(qr, root, system, objectType, c.input.externalId)) continue;
      link = { root, score: m.score, evidence: m.evidence as EvidenceItem[], label: other.label };
      break;
    }

    if (target === null && link) target = link.root;
    const created = target === null;
    if (created) {
      target = randomUUID();
      out.created++;
      createdIds.push(target);
    }
    const missing = c.claims.filter((k) => !ownerOf.has(identityLockKey(k.kind, k.value)));
    // the new customer, the identities it lacks and the record's customer, in one statement
    const inserted = await repo.placeCrmRecord(qr, {
      recordId,
      customerId: target!,
      create: created ? { displayName: c.displayName } : null,
      system,
      claims: missing,
      link: { linkedBy: link ? 'rule' : 'deterministic', score: link?.score ?? null, evidence: link ? link.evidence : null },
    });
    if (link || attachedVia) {
      // a 'link' audit makes taking the record in undoable (unmergeCustomer) like a merge
      // no name in it: the audit row outlives an erasure of the record's person after an undo,
      // which names the customer it makes from the record itself (unmergeTx)
      const snapshot = { identities: inserted.map((i) => i.id), crmRecords: [recordId], interactions: [], repointed: [], displayName: null };
      await repo.insertAudit(qr, {
        action: 'link',
        survivorId: target!,
        score: link?.score ?? null,
        evidence: link?.evidence ?? [{ field: attachedVia, outcome: 'agree', detail: `the customer already holds this ${attachedVia}` }],
        reason: link
          ? `${system} ${objectType} ${c.input.externalId} matches ${link.label} with ${link.score.toFixed(1)} bits (auto-link threshold ${this.thresholds.autoLinkBits}; intake by ${actor})`
          : `${system} ${objectType} ${c.input.externalId} carries a ${attachedVia} the customer holds (intake by ${actor})`,
        actor: link ? 'rule:fellegi-sunter' : `rule:deterministic:${attachedVia}`,
        snapshot,
      });
      if (link) out.linked++;
    }
    if (c.input.mergedInto) {
      const r = await this.followCrmMerge(qr, system, objectType, c, target!, actor);
      if (r === 'merged') out.merged++;
      else if (r === 'suggested') out.suggested++;
    }
    if (c.input.deleted) return target!;
    const selfAnchor = crmOwner?.identityId ?? inserted.find((i) => i.kind === 'crm')?.id ?? (await this.identityIdOf(qr, 'crm', c.claims[0]!.value))!;

    const suggestedWith = new Set<string>([target!]);
    // written together at the end, in one statement: each joins this record's customer to another
    const suggestions: Parameters<typeof recordSuggestions>[2][number][] = [];
    let reviewSuggestions = 0;
    for (const m of candidates) {
      const other = info.get(m.id);
      const root = other ? candidateRoots.get(other.customerId) : undefined;
      if (!other || !root || suggestedWith.has(root)) continue;
      // candidates come best first, so the cap keeps the strongest
      if (m.decision === 'review' && reviewSuggestions++ >= MAX_REVIEW_SUGGESTIONS_PER_RECORD) continue;
      suggestedWith.add(root);
      suggestions.push({
        side: { customerId: root, identityId: other.anchor },
        score: m.score,
        evidence: m.evidence as EvidenceItem[],
        reason:
          m.decision === 'link'
            ? `${system} ${objectType} ${c.input.externalId} matches ${other.label} (${m.score.toFixed(1)} bits) but not automatically: both hold records of one CRM object`
            : `${system} ${objectType} ${c.input.externalId} resembles ${other.label} (${m.score.toFixed(1)} bits, review band ${this.thresholds.reviewBits}–${this.thresholds.autoLinkBits})`,
      });
    }
    // Shared keys with another record of the same CRM object: for review, never merged.
    for (const a of apart) {
      const root = (await lockCustomers(qr, [a.side.customerId])).get(a.side.customerId);
      if (!root || suggestedWith.has(root)) continue;
      suggestedWith.add(root);
      suggestions.push({
        side: { customerId: root, identityId: a.side.identityId },
        score: null,
        evidence: [{ field: a.kind, outcome: 'agree', detail: `shared, but both are ${system} ${objectType} records, which the CRM keeps apart` }],
        reason: `${system} ${objectType} ${c.input.externalId} shares a ${a.kind} with another ${objectType}`,
      });
    }
    out.suggested += await recordSuggestions(qr, { customerId: target!, identityId: selfAnchor }, suggestions);
    return target!;
  }

  /**
   * A record the CRM merged into another (its master): the record's customer is merged into the
   * master record's customer, audited as `rule:crm-merge` and undoable like any merge. Nothing when
   * both are one customer already, when the master was never synced, or when a person rejected the
   * pair; a suggestion when the merged customer still holds another live record of this CRM object
   * (autoMergeTx). The merged record is deleted by then, so it no longer keeps the two apart.
   */
  private async followCrmMerge(qr: QueryRunner, system: CrmSystem, objectType: string, c: PreparedCrm, customerId: string, actor: string): Promise<'merged' | 'suggested' | null> {
    const loserId = c.input.externalId;
    const masterId = c.input.mergedInto!;
    const masterKey = identityKey('crm', system, `${objectType}:${masterId}`, this.keyOptions);
    const master = masterKey ? await repo.identityByKey(qr, 'crm', masterKey) : undefined;
    const loser = await repo.identityByKey(qr, 'crm', c.claims[0]!.value);
    if (!master || !loser) return null;
    const roots = await lockCustomers(qr, [master.customer_id, customerId]);
    const survivor = roots.get(master.customer_id);
    const merged = roots.get(customerId);
    if (!survivor || !merged || survivor === merged) return null;
    const r = await autoMergeTx(qr, { customerId: survivor, identityId: master.id }, { customerId: merged, identityId: loser.id }, {
      reason: `${system} merged ${objectType} ${loserId} into ${masterId} (intake by ${actor})`,
      actor: 'rule:crm-merge',
      evidence: [{ field: 'crm', outcome: 'agree', detail: `${system} ${objectType} ${loserId} was merged into ${masterId} in the CRM` }],
      publicUrl: this.config.publicUrl,
    });
    return r.merged ? 'merged' : r.suggested ? 'suggested' : null;
  }

  private holdsOtherRecord(qr: QueryRunner, customerId: string, system: string, objectType: string, externalId: string): Promise<boolean> {
    return repo.holdsOtherCrmRecord(qr, customerId, system, objectType, externalId);
  }

  private async identityIdOf(qr: QueryRunner, kind: string, value: string): Promise<string | null> {
    return (await repo.identityByKey(qr, kind, value))?.id ?? null;
  }

  /**
   * Customer, anchor identity and a label of CRM records, for the matcher's candidates, with
   * their customers locked and each one's root (as lockCustomers: read and first lock round in
   * one statement, the survivors of customers merged meanwhile locked after).
   */
  private async lockRecordsInfo(qr: QueryRunner, recordIds: string[]): Promise<{ info: Map<string, RecordInfo>; roots: Map<string, string> }> {
    const found = await repo.lockCrmRecordCustomers(qr, recordIds);
    const info = new Map(found.map((r) => [r.id, { customerId: r.customer_id, anchor: r.anchor, label: r.label }]));
    const roots = new Map(found.map((r) => [r.customer_id, r.merged_into_id ?? r.customer_id]));
    const survivors = [...new Set(found.map((r) => r.merged_into_id).filter((id): id is string => id !== null))];
    if (survivors.length > 0) {
      const next = await lockCustomers(qr, survivors);
      for (const [id, root] of roots) if (root !== id) roots.set(id, next.get(root) ?? root);
    }
    return { info, roots };
  }

  /** Person profiles the matcher holds in memory (tests and operators: it mirrors the live CRM records). */
  get indexedProfiles(): number {
    return this.index?.size ?? 0;
  }

  /** Loads (once) and refreshes (every few seconds) the profiles other processes wrote. */
  private async ensureIndex(): Promise<void> {
    // An erasure deletes CRM records outright, which the refresh (rows changed since) never sees:
    // each erased person's profile (names, emails, phones, address) stayed in this process's
    // memory until a restart, one more with every erasure. Asked at every intake, whichever
    // process erased: after a new one the index is rebuilt from the records left, as at start.
    const erasures = await repo.crmErasureCount(this.ds);
    if (erasures !== this.erasuresSeen) {
      if (this.erasuresSeen !== null) this.index = null;
      this.erasuresSeen = erasures;
    }
    if (this.index && performance.now() - this.lastRefresh < INDEX_REFRESH_MS) return;
    const first = this.index === null;
    if (first) {
      this.index = new IncrementalIndex(new Matcher(this.parameters, this.keyOptions), {
        autoLinkThreshold: this.thresholds.autoLinkBits,
        reviewThreshold: this.thresholds.reviewBits,
      });
      this.indexedUntil = new Date(0);
    }
    const since = new Date(this.indexedUntil.getTime() - 60_000);
    const rows = await repo.crmProfilesChangedSince(this.ds, since);
    for (const r of rows) {
      if (r.deleted || !r.person) this.index!.remove(r.id);
      else this.index!.add({ ...r.person, id: r.id });
      if (r.updated_at > this.indexedUntil) this.indexedUntil = new Date(r.updated_at);
    }
    this.lastRefresh = performance.now();
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
    // a placeholder (test@test.com, a configured role address) would join unrelated records
    if (value && !isPlaceholderIdentity(id.kind, value, keyOptions.ignored) && !claims.some((c) => c.kind === id.kind && c.value === value)) {
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
  // never an email or a phone: a CRM record without a name is named after a public handle, or not at all
  const handle = claims.find((c) => (c.kind === 'handle' || c.kind === 'profile_url') && !ADDRESS_SOURCES.has(c.network ?? ''));
  const displayName = safeDisplayName([p.givenName, p.surname].filter((s) => s && s.trim()).join(' '), p.company, handle?.raw);
  return { claims, person, displayName };
}

/** A prepared record as crm_record stores it (upsertCrmRecord, insertNewCrmRecords). */
function crmRow(c: PreparedCrm): Omit<repo.CrmRecordUpsert, 'system' | 'objectType'> {
  return {
    externalId: c.input.externalId,
    ownerId: c.input.ownerId ?? null,
    // where it went, for whoever reads the record (the CRM itself no longer answers for it)
    payload: c.input.mergedInto ? { ...c.input.payload, mergedInto: c.input.mergedInto } : (c.input.payload ?? {}),
    modstamp: c.input.modstamp ? new Date(c.input.modstamp).toISOString() : null,
    person: c.person,
    deleted: c.input.deleted === true,
  };
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

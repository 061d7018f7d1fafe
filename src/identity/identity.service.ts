import type { DataSource } from 'typeorm';
import type { Config } from '../config/config';
import type { CrmRecordInput, CrmSystem } from '../crm/crm.port';
import type { Window } from '../graphql/keyset';
import type { Page } from '../graphql/relay';
import type { Logger } from '../shared/logger';
import { CrmIntakeService, type CrmIntakeResult } from './crm-intake.service';
import { IdentityAuditService } from './identity-audit.service';
import { IdentityLinkService } from './identity-link.service';
import type { AuditRow, EvidenceItem, IdentityOutcome, SuggestionRow } from './identity.model';
import type { MatchParameters } from './matcher';
import type { IdentityKind } from './normalize';
import { ReviewQueueService } from './review-queue.service';

export type { AuditRow, IdentityOutcome, SuggestionRow } from './identity.model';
export { prepareCrmRecord, type CrmIntakeResult } from './crm-intake.service';

/**
 * Identity resolution backed by the database, as the rest of the service sees it: one object
 * wired once in app.ts, delegating to the modules that do the work —
 * CRM intake (./crm-intake.service.ts), merges and links (./identity-link.service.ts), the
 * review queue (./review-queue.service.ts) and the audit (./identity-audit.service.ts); their
 * SQL is in ./identity.repository.ts.
 *
 * Must stay true: every merge has an audit row with a snapshot that undoes it; two records of
 * one CRM object are never merged without a person; a rejected pair is never suggested or
 * merged by a rule again; concurrent writers follow the lock protocol of ./merge.ts.
 */
export class IdentityService {
  readonly intake: CrmIntakeService;
  readonly links: IdentityLinkService;
  readonly review: ReviewQueueService;
  readonly audits: IdentityAuditService;

  constructor(
    ds: DataSource,
    config: Pick<Config, 'identity' | 'publicUrl'>,
    log: Logger,
    /** where the CRM sync's intake writes (the jobs pool), when not on `ds` */
    intakeDs: DataSource = ds,
  ) {
    this.intake = new CrmIntakeService(intakeDs, config, log);
    this.audits = new IdentityAuditService(ds);
    this.links = new IdentityLinkService(ds, config, this.audits);
    this.review = new ReviewQueueService(ds, config, this.audits);
  }

  get thresholds(): { autoLinkBits: number; reviewBits: number } {
    return this.intake.thresholds;
  }

  get keyOptions() {
    return this.intake.keyOptions;
  }

  /** New match weights (the re-resolution job fits them): the in-memory index is rebuilt on next use. */
  useParameters(parameters: MatchParameters): void {
    this.intake.useParameters(parameters);
  }

  /** See `CrmIntakeService.ingestCrmRecords`. */
  ingestCrmRecords(system: CrmSystem, objectType: string, records: CrmRecordInput[], actor = `sync:${system}`): Promise<CrmIntakeResult> {
    return this.intake.ingestCrmRecords(system, objectType, records, actor);
  }

  /** See `IdentityLinkService.merge`. */
  merge(survivorId: string, mergedId: string, opts: { reason: string; actor: string; score?: number | null; evidence?: EvidenceItem[] }): Promise<IdentityOutcome> {
    return this.links.merge(survivorId, mergedId, opts);
  }

  /** See `IdentityLinkService.unmerge`. */
  unmerge(ref: { auditId: string } | { customerId: string }, actor: string, reason?: string): Promise<IdentityOutcome> {
    return this.links.unmerge(ref, actor, reason);
  }

  /** See `IdentityLinkService.linkIdentity`. */
  linkIdentity(customerId: string, kind: IdentityKind, network: string | null, value: string, actor: string): Promise<IdentityOutcome> {
    return this.links.linkIdentity(customerId, kind, network, value, actor);
  }

  /** See `IdentityLinkService.unlinkIdentity`. */
  unlinkIdentity(customerId: string, kind: IdentityKind, network: string | null, value: string, actor: string): Promise<IdentityOutcome> {
    return this.links.unlinkIdentity(customerId, kind, network, value, actor);
  }

  /** See `ReviewQueueService.suggestions`. */
  suggestions(w: Window): Promise<Page<SuggestionRow>> {
    return this.review.suggestions(w);
  }

  suggestion(id: string): Promise<SuggestionRow | null> {
    return this.review.suggestion(id);
  }

  /** See `ReviewQueueService.acceptSuggestion`. */
  acceptSuggestion(id: string, actor: string): Promise<IdentityOutcome> {
    return this.review.acceptSuggestion(id, actor);
  }

  /** See `ReviewQueueService.rejectSuggestion`. */
  rejectSuggestion(id: string, actor: string): Promise<SuggestionRow> {
    return this.review.rejectSuggestion(id, actor);
  }

  /** Audit entries of many customers (as survivor or merged side), newest first, at most 100 each. */
  historyOf(customerIds: readonly string[]): Promise<AuditRow[][]> {
    return this.audits.historyOf(customerIds);
  }

  audit(id: string): Promise<AuditRow | null> {
    return this.audits.audit(id);
  }
}

import type { DataSource, QueryRunner } from 'typeorm';
import type { Config } from '../config/config';
import { inTransactionRetrying } from '../db/lock-conflict-retry';
import type { Window } from '../graphql/keyset';
import type { Page } from '../graphql/relay';
import { AppError } from '../shared/app-error';
import type { IdentityAuditService } from './identity-audit.service';
import type { IdentityOutcome, SuggestionRow } from './identity.model';
import * as repo from './identity.repository';
import { lockCustomers, mergeCustomersTx } from './merge';

/**
 * The review queue: merge suggestions the matcher was not sure enough of, for a person to accept
 * (the two customers merge) or reject (the pair is remembered and never suggested or merged by a
 * rule again).
 *
 * Must stay true: a suggestion is decided once (CONFLICT after); accepting keeps the older
 * customer; a rejection survives later intakes and re-resolutions.
 */
export class ReviewQueueService {
  constructor(
    private readonly ds: DataSource,
    private readonly config: Pick<Config, 'publicUrl'>,
    private readonly audits: IdentityAuditService,
  ) {}

  /** Pending suggestions, oldest first, keyset-paged; pairs already in one customer are left out. */
  suggestions(w: Window): Promise<Page<SuggestionRow>> {
    return repo.pendingSuggestionPage(this.ds, w);
  }

  suggestion(id: string): Promise<SuggestionRow | null> {
    return repo.suggestionById(this.ds, id);
  }

  /**
   * Accepts a suggestion: the two customers are merged (the older one survives) with the
   * suggestion's score and evidence, and the person as actor. CONFLICT unless pending.
   */
  async acceptSuggestion(id: string, actor: string): Promise<IdentityOutcome> {
    const r = await inTransactionRetrying(this.ds, async (qr) => {
      const s = await this.lockSuggestion(qr, id);
      const roots = await lockCustomers(qr, [s.cur_a, s.cur_b]);
      const [a, b] = [roots.get(s.cur_a)!, roots.get(s.cur_b)!];
      await repo.decideSuggestion(qr, id, 'accepted', actor);
      if (a === b) return { auditId: null, survivor: a };
      const survivor = (await repo.oldestCustomer(qr, [a, b]))!;
      const auditId = await mergeCustomersTx(qr, survivor, survivor === a ? b : a, {
        reason: `suggestion ${id} accepted${s.reason ? ` (${s.reason})` : ''}`,
        actor,
        score: s.score,
        evidence: s.evidence,
        publicUrl: this.config.publicUrl,
      });
      return { auditId, survivor };
    });
    return { audit: r.auditId ? await this.audits.audit(r.auditId) : null, customerIds: [r.survivor] };
  }

  /** Rejects a suggestion: the pair is remembered and never suggested or merged by a rule again. */
  async rejectSuggestion(id: string, actor: string): Promise<SuggestionRow> {
    await inTransactionRetrying(this.ds, async (qr) => {
      const s = await this.lockSuggestion(qr, id, true);
      if (s.status === 'rejected') return;
      await repo.decideSuggestion(qr, id, 'rejected', actor);
    });
    return (await this.suggestion(id))!;
  }

  private async lockSuggestion(qr: QueryRunner, id: string, allowRejected = false): Promise<repo.StoredSuggestion> {
    const s = await repo.lockSuggestionRow(qr, id);
    if (!s) throw AppError.notFound(`merge suggestion ${id}`);
    if (s.status !== 'pending' && !(allowRejected && s.status === 'rejected')) {
      throw new AppError('CONFLICT', `merge suggestion ${id} was already ${s.status}`);
    }
    return s;
  }
}

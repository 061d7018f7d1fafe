import type { DataSource } from 'typeorm';
import type { AuditRow } from './identity.model';
import { auditById, auditHistory } from './identity.repository';

/**
 * The merge audit, read side: every merge, unmerge, link and unlink as recorded by ./merge.ts
 * and the link services.
 *
 * Must stay true: entries are never changed except for `undoneAt`, and the erasure of the person
 * a merge's snapshot names (its `displayName` becomes null); a customer's history shows
 * the entries where it is either side, newest first.
 */
export class IdentityAuditService {
  constructor(private readonly ds: DataSource) {}

  async audit(id: string): Promise<AuditRow | null> {
    return auditById(this.ds, id);
  }

  /** Audit entries of many customers (as survivor or merged side), newest first, at most 100 each. */
  async historyOf(customerIds: readonly string[]): Promise<AuditRow[][]> {
    return auditHistory(this.ds, customerIds, 100);
  }
}

/** The shapes identity resolution stores and hands out (no code: imported by the repository and the services alike). */

/** One field's contribution to a match: what the matcher explains, or a deterministic reason. */
export interface EvidenceItem {
  field: string;
  outcome: string;
  level?: string;
  similarity?: number;
  weight?: number;
  detail?: string;
}

/** Enough to undo a merge: what moved from the merged customer to the survivor. */
export interface MergeSnapshot {
  identities: string[];
  crmRecords: string[];
  /** interactions that moved without an identity of the merged customer attaching them */
  interactions: string[];
  /** customers merged into the merged one earlier, repointed to the survivor */
  repointed: string[];
  displayName: string | null;
  /**
   * the survivor had no name and took `displayName` (merges recorded before this field: unknown,
   * treated as false); undoing the merge, or unlinking what it brought, takes the name back
   */
  filledName?: boolean;
}

/** One side of a suggested pair: a customer and the identity that stands for it. */
export interface Side {
  customerId: string;
  identityId: string;
}

export type AuditAction = 'merge' | 'unmerge' | 'link' | 'unlink';
export type SuggestionStatus = 'pending' | 'accepted' | 'rejected';

export interface SuggestionRow {
  id: string;
  customerA: string;
  customerB: string;
  score: number | null;
  evidence: EvidenceItem[];
  reason: string;
  status: SuggestionStatus;
  createdAt: Date;
  decidedAt: Date | null;
  decidedBy: string | null;
}

export interface AuditRow {
  id: string;
  action: AuditAction;
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

export interface ReresolutionJobRow {
  id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  total: number;
  done: number;
  merges: number;
  suggestions: number;
  autoLinkBits: number;
  reviewBits: number;
  error: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

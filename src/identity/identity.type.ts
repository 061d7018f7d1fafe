import { Field, Float, GraphQLISODateTime, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { Connection, Node, toGlobalId } from '../graphql/relay';
import type { AuditRow, EvidenceItem, SuggestionRow } from './identity.model';
import type { ReresolutionJobRow } from './reresolve.job';

export enum MergeAction {
  MERGE = 'merge',
  UNMERGE = 'unmerge',
  LINK = 'link',
  UNLINK = 'unlink',
}
registerEnumType(MergeAction, { name: 'MergeAction' });

export enum SuggestionStatus {
  PENDING = 'pending',
  ACCEPTED = 'accepted',
  REJECTED = 'rejected',
}
registerEnumType(SuggestionStatus, { name: 'SuggestionStatus' });

export enum ReresolutionStatus {
  QUEUED = 'queued',
  RUNNING = 'running',
  SUCCEEDED = 'succeeded',
  FAILED = 'failed',
}
registerEnumType(ReresolutionStatus, { name: 'ReresolutionStatus' });

@ObjectType({ description: 'How one field weighed in a match: the explanation stored with every link and suggestion' })
export class MatchEvidence {
  @Field(() => String, { description: 'given_name, surname, email, phone, handle, crm_id, …' })
  field!: string;

  @Field(() => String, { description: 'agree, partial, disagree or missing' })
  outcome!: string;

  @Field(() => String, { nullable: true, description: 'comparison level reached, e.g. jw>=0.92' })
  level!: string | null;

  @Field(() => Float, { nullable: true, description: 'string similarity 0..1 where one was computed' })
  similarity!: number | null;

  @Field(() => Float, { nullable: true, description: 'bits this field added (log2 m/u); negative when it spoke against' })
  weight!: number | null;

  @Field(() => String, { nullable: true })
  detail!: string | null;
}

export function toEvidence(items: EvidenceItem[]): MatchEvidence[] {
  return items.map((e) => ({
    field: e.field,
    outcome: e.outcome,
    level: e.level ?? null,
    similarity: typeof e.similarity === 'number' && Number.isFinite(e.similarity) ? e.similarity : null,
    weight: typeof e.weight === 'number' && Number.isFinite(e.weight) ? e.weight : null,
    detail: e.detail ?? null,
  }));
}

@ObjectType({ implements: Node, description: 'Two customers that may be one person, for a human to accept or reject' })
export class MergeSuggestion extends Node {
  uuid!: string;
  customerAUuid!: string;
  customerBUuid!: string;

  @Field(() => Float, { nullable: true, description: 'match weight in bits; null when a shared key was refused for a CRM rule' })
  score!: number | null;

  @Field(() => [MatchEvidence])
  evidence!: MatchEvidence[];

  @Field(() => String)
  reason!: string;

  @Field(() => SuggestionStatus)
  status!: SuggestionStatus;

  @Field(() => GraphQLISODateTime)
  createdAt!: Date;

  @Field(() => GraphQLISODateTime, { nullable: true })
  decidedAt!: Date | null;

  @Field(() => String, { nullable: true })
  decidedBy!: string | null;
}

export function toMergeSuggestion(r: SuggestionRow): MergeSuggestion {
  const s = new MergeSuggestion();
  s.id = toGlobalId('MergeSuggestion', r.id);
  s.uuid = r.id;
  s.customerAUuid = r.customerA;
  s.customerBUuid = r.customerB;
  s.score = r.score;
  s.evidence = toEvidence(r.evidence);
  s.reason = r.reason;
  s.status = r.status as SuggestionStatus;
  s.createdAt = r.createdAt;
  s.decidedAt = r.decidedAt;
  s.decidedBy = r.decidedBy;
  return s;
}

@ObjectType({ simpleResolvers: true, description: 'A page of pending merge suggestions, oldest first' })
export class MergeSuggestionConnection extends Connection(MergeSuggestion) {}

@ObjectType({ description: 'One entry of the identity audit log: a merge, its undo, a manual link or unlink' })
export class MergeRecord {
  @Field(() => ID, { description: 'pass it to unmergeCustomer to undo a merge' })
  id!: string;

  @Field(() => MergeAction)
  action!: MergeAction;

  @Field(() => ID, { nullable: true, description: 'the customer that kept the identities (Customer id)' })
  survivorId!: string | null;

  @Field(() => ID, { nullable: true, description: 'the customer merged away, restored or split off (Customer id)' })
  mergedId!: string | null;

  @Field(() => Float, { nullable: true, description: 'match weight in bits, for merges by the matcher' })
  score!: number | null;

  @Field(() => [MatchEvidence])
  evidence!: MatchEvidence[];

  @Field(() => String)
  reason!: string;

  @Field(() => String, { description: 'who: a user, or the rule (rule:deterministic:email, rule:fellegi-sunter)' })
  actor!: string;

  @Field(() => GraphQLISODateTime)
  createdAt!: Date;

  @Field(() => GraphQLISODateTime, { nullable: true, description: 'set when this merge was undone' })
  undoneAt!: Date | null;
}

export function toMergeRecord(r: AuditRow): MergeRecord {
  return {
    id: r.id,
    action: r.action as MergeAction,
    survivorId: r.survivorId ? toGlobalId('Customer', r.survivorId) : null,
    mergedId: r.mergedId ? toGlobalId('Customer', r.mergedId) : null,
    score: r.score,
    evidence: toEvidence(r.evidence),
    reason: r.reason,
    actor: r.actor,
    createdAt: r.createdAt,
    undoneAt: r.undoneAt,
  };
}

@ObjectType({ description: 'What an identity mutation did' })
export class IdentityChange {
  customerUuids!: string[];

  @Field(() => MergeRecord, { nullable: true, description: 'the audit entry; null when nothing had to change' })
  audit!: MergeRecord | null;
}

@ObjectType({ description: 'A batch re-resolution of every CRM person profile, e.g. after a threshold change' })
export class ReresolutionJob {
  @Field(() => ID)
  id!: string;

  @Field(() => ReresolutionStatus)
  status!: ReresolutionStatus;

  @Field(() => Int, { description: 'profiles to resolve' })
  total!: number;

  @Field(() => Int, { description: 'profiles whose clusters have been applied' })
  done!: number;

  @Field(() => Int)
  merges!: number;

  @Field(() => Int)
  suggestions!: number;

  @Field(() => Float)
  autoLinkBits!: number;

  @Field(() => Float)
  reviewBits!: number;

  @Field(() => String, { nullable: true })
  error!: string | null;

  @Field(() => GraphQLISODateTime)
  createdAt!: Date;

  @Field(() => GraphQLISODateTime, { nullable: true })
  startedAt!: Date | null;

  @Field(() => GraphQLISODateTime, { nullable: true })
  finishedAt!: Date | null;
}

export function toReresolutionJob(r: ReresolutionJobRow): ReresolutionJob {
  return { ...r, id: toGlobalId('ReresolutionJob', r.id), status: r.status as ReresolutionStatus };
}

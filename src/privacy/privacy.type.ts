import { Field, GraphQLISODateTime, ID, Int, ObjectType } from 'type-graphql';
import { toGlobalId } from '../graphql/relay';
import type { ErasureRequestRow } from './erasure.service';
import type { RetentionStatus as RetentionStatusRow } from './retention.job';

@ObjectType({ description: 'The audit record of an erasure: ids and counts only, no personal data' })
export class Erasure {
  @Field(() => ID)
  id!: string;

  @Field(() => ID, { description: 'the customer named in the request (global id)' })
  customerId!: string;

  @Field(() => Int, { description: 'customer rows erased (merged-away ones included)' })
  customers!: number;

  @Field(() => Int, { description: 'interactions whose text, handle, names, URL and metadata were removed' })
  interactions!: number;

  @Field(() => Int)
  identities!: number;

  @Field(() => Int, { description: 'CRM links removed' })
  crmRecords!: number;

  @Field(() => Int)
  listeningItemsClosed!: number;

  @Field(() => Int, { description: 'outbox rows about the customer removed (unsent ones never leave)' })
  outboxRowsRemoved!: number;

  @Field(() => String, { description: 'CRM_PENDING: CRM fields and cases still being cleared (retried); DONE' })
  status!: string;

  @Field(() => Boolean, { description: 'false: the customer had been erased before; this is that erasure' })
  erasedNow!: boolean;

  @Field(() => String)
  reason!: string;

  @Field(() => String)
  requestedBy!: string;

  @Field(() => GraphQLISODateTime)
  requestedAt!: Date;

  @Field(() => GraphQLISODateTime, { nullable: true })
  completedAt!: Date | null;
}

export function toErasure(r: ErasureRequestRow, erasedNow: boolean): Erasure {
  return Object.assign(new Erasure(), {
    id: r.id,
    customerId: toGlobalId('Customer', r.customerId),
    customers: r.erasedCustomerIds.length,
    interactions: r.interactions,
    identities: r.identities,
    crmRecords: r.crmRecords,
    listeningItemsClosed: r.listeningItemsClosed,
    outboxRowsRemoved: r.outboxRowsRemoved,
    status: r.status.toUpperCase(),
    erasedNow,
    reason: r.reason,
    requestedBy: r.requestedBy,
    requestedAt: r.createdAt,
    completedAt: r.completedAt,
  });
}

@ObjectType({ description: 'EARSHOT_RETENTION_DAYS: older interactions lose their text and author details, keep their scores' })
export class RetentionStatus {
  @Field(() => Boolean)
  enabled!: boolean;

  @Field(() => Int, { nullable: true })
  days!: number | null;

  @Field(() => Boolean)
  running!: boolean;

  @Field(() => Int, { description: 'runs of the daily job since this process started' })
  runs!: number;

  @Field(() => GraphQLISODateTime, { nullable: true })
  lastRunAt!: Date | null;

  @Field(() => GraphQLISODateTime, { nullable: true, description: 'interactions before this were redacted by the last run' })
  lastCutoff!: Date | null;

  @Field(() => Int)
  redactedLastRun!: number;

  @Field(() => Int, { description: 'redacted by this process since it started' })
  redactedTotal!: number;

  @Field(() => Int, { description: 'interactions past the limit still holding text: the next run does them' })
  pending!: number;

  @Field(() => String, {
    nullable: true,
    description: "why the last run redacted nothing on purpose (this host's clock ahead of the database server's, so its cutoff cannot be trusted); null once a run goes ahead",
  })
  lastRefusal!: string | null;
}

export function toRetentionStatus(s: RetentionStatusRow, pending: number): RetentionStatus {
  return Object.assign(new RetentionStatus(), { ...s, pending });
}

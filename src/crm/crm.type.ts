import { Field, GraphQLISODateTime, Int, ObjectType, registerEnumType } from 'type-graphql';

export enum CrmSystemEnum {
  SALESFORCE = 'salesforce',
  HUBSPOT = 'hubspot',
}
registerEnumType(CrmSystemEnum, { name: 'CrmSystem' });

export enum CrmSyncMode {
  INCREMENTAL = 'incremental',
  FULL = 'full',
}
registerEnumType(CrmSyncMode, { name: 'CrmSyncMode', description: 'INCREMENTAL: from the stored cursor; FULL: every record again (deletions still from their own checkpoint)' });

export enum CrmSyncStatusEnum {
  NEVER_RUN = 'never_run',
  RUNNING = 'running',
  OK = 'ok',
  ERROR = 'error',
  BUDGET_EXHAUSTED = 'budget_exhausted',
}
registerEnumType(CrmSyncStatusEnum, { name: 'CrmSyncRunStatus', description: 'BUDGET_EXHAUSTED: the daily API budget ran out; the next window resumes from the cursor' });

@ObjectType({ description: 'A CRM record linked to a customer, with a deep link into the CRM' })
export class CrmRecordRef {
  @Field(() => CrmSystemEnum)
  system!: CrmSystemEnum;

  @Field(() => String, { description: 'Salesforce Contact, Lead, Account; HubSpot contacts, companies' })
  objectType!: string;

  @Field(() => String)
  externalId!: string;

  @Field(() => String, { nullable: true, description: 'the record page in the CRM; null until the org is known (first sync) ' })
  url!: string | null;

  @Field(() => String, { nullable: true, description: 'the CRM owner id (Salesforce OwnerId, HubSpot hubspot_owner_id)' })
  owner!: string | null;

  @Field(() => GraphQLISODateTime, { nullable: true, description: 'last modified in the CRM (SystemModstamp, lastmodifieddate)' })
  lastModified!: Date | null;
}

@ObjectType({ description: 'Sync state of one CRM object' })
export class CrmObjectSyncStatus {
  @Field(() => CrmSystemEnum)
  system!: CrmSystemEnum;

  @Field(() => String)
  objectType!: string;

  @Field(() => CrmSyncStatusEnum)
  status!: CrmSyncStatusEnum;

  @Field(() => CrmSyncMode, { nullable: true })
  mode!: CrmSyncMode | null;

  @Field(() => GraphQLISODateTime, { nullable: true, description: 'cursor: last modstamp synced' })
  cursorModstamp!: Date | null;

  @Field(() => String, { nullable: true, description: 'cursor: last id synced on that modstamp (tie-break)' })
  cursorId!: string | null;

  @Field(() => GraphQLISODateTime, { nullable: true, description: 'deletions are pulled up to here' })
  deletedCheckedUntil!: Date | null;

  @Field(() => GraphQLISODateTime, { nullable: true })
  lastRunStartedAt!: Date | null;

  @Field(() => GraphQLISODateTime, { nullable: true })
  lastRunFinishedAt!: Date | null;

  @Field(() => GraphQLISODateTime, { nullable: true })
  lastSuccessAt!: Date | null;

  @Field(() => Int)
  recordsLastRun!: number;

  @Field(() => Int)
  deletedLastRun!: number;

  @Field(() => Int)
  apiCallsLastRun!: number;

  @Field(() => Int)
  totalRecords!: number;

  @Field(() => String, { nullable: true })
  lastError!: string | null;
}

@ObjectType({ description: 'API budget of one org or portal in this process' })
export class CrmBudgetStatus {
  @Field(() => CrmSystemEnum)
  system!: CrmSystemEnum;

  @Field(() => Int)
  usedToday!: number;

  @Field(() => Int)
  dailyLimit!: number;

  @Field(() => Int, { description: 'calls allowed per rolling 10 seconds' })
  per10s!: number;

  @Field(() => GraphQLISODateTime, { nullable: true, description: 'set while the daily budget is spent' })
  exhaustedUntil!: Date | null;

  @Field(() => GraphQLISODateTime, {
    nullable: true,
    description: 'no call goes to this CRM before this time: it asked to wait (Retry-After, or a backoff after a 429) or its daily budget is spent; null when calls go out',
  })
  pausedUntil!: Date | null;
}

@ObjectType()
export class CrmSyncStatus {
  @Field(() => [CrmSystemEnum], { description: 'configured CRMs' })
  systems!: CrmSystemEnum[];

  @Field(() => [CrmSystemEnum], { description: 'CRMs with a sync run going in this process' })
  running!: CrmSystemEnum[];

  @Field(() => [CrmObjectSyncStatus])
  objects!: CrmObjectSyncStatus[];

  @Field(() => [CrmBudgetStatus])
  budgets!: CrmBudgetStatus[];

  @Field(() => Int, { description: 'customers waiting for write-back' })
  writeBackPending!: number;
}

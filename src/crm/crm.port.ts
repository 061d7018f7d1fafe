import type { CrmBudget } from './crm-budget';

export type CrmSystem = 'salesforce' | 'hubspot';

/** The person as a CRM record describes them: what the probabilistic matcher compares. */
export interface CrmPerson {
  givenName?: string | null;
  surname?: string | null;
  company?: string | null;
  streetNumber?: string | null;
  address1?: string | null;
  address2?: string | null;
  city?: string | null;
  postcode?: string | null;
  state?: string | null;
  dateOfBirth?: string | null;
}

/** A deterministic identity a CRM record carries (raw; normalized here). */
export interface CrmIdentity {
  kind: 'email' | 'phone' | 'handle' | 'profile_url';
  /** social network of a handle (HubSpot `twitterhandle` → 'x') */
  network?: string | null;
  value: string;
}

/** One CRM record as the sync hands it over: mapped by the vendor adapter, raw payload kept. */
export interface CrmRecordInput {
  externalId: string;
  ownerId?: string | null;
  modstamp?: Date | string | null;
  payload?: Record<string, unknown>;
  person?: CrmPerson | null;
  identities?: CrmIdentity[];
  /** deleted in the CRM: kept for history, no longer matched */
  deleted?: boolean;
  /**
   * merged away in the CRM: the id of the record (same object) it was merged into (Salesforce's
   * MasterRecordId, a HubSpot primary listing it in hs_merged_object_ids). Implies deleted; the
   * intake merges the record's customer into the master's.
   */
  mergedInto?: string | null;
}

export type SyncMode = 'incremental' | 'full';

/**
 * Where an object's sync stands: the last (modstamp, id) fully handed to the identity intake.
 * Ties on the timestamp are broken by id, so records sharing one modstamp are never skipped.
 */
export interface SyncCursor {
  /** ISO-8601 with milliseconds */
  modstamp: string;
  id: string;
}

/** A Salesforce Case as the listening gap needs it (not a person: kept out of identity). */
export interface CrmCaseRow {
  externalId: string;
  status: string | null;
  isClosed: boolean;
  contactId: string | null;
  accountId: string | null;
  modstamp: string | null;
  deleted: boolean;
}

/** One page of pulled changes, handed to the sync service before the cursor moves past it. */
export interface PulledBatch {
  objectType: string;
  /** people and organisations, for IdentityService.ingestCrmRecords */
  records: CrmRecordInput[];
  /** Salesforce Case rows (objectType Case) */
  cases: CrmCaseRow[];
  /** the cursor after this batch; null for deletion batches (they do not move it) */
  cursor: SyncCursor | null;
  via: 'rest' | 'bulk' | 'search' | 'deleted' | 'archived';
}

export interface PullOptions {
  cursor: SyncCursor | null;
  mode: SyncMode;
  /** deletions newer than this are pulled; null: none (first load) */
  deletedSince: Date | null;
  /** looks up what the store holds for deleted ids (the vendor sends ids only) */
  known(ids: string[]): Promise<Map<string, CrmRecordInput>>;
  /** must persist the batch before resolving: the cursor moves on after it */
  sink(batch: PulledBatch): Promise<void>;
}

export interface PullResult {
  /** deletions up to this time are pulled; the next run asks from here */
  deletedCheckedUntil: Date | null;
}

/** The write-back values, in the vendor-neutral shape the adapter maps onto its field names. */
export interface WriteBackValues {
  score: number | null;
  label: string | null;
  trend: number | null;
  openComplaints: number;
  lastInteraction: string | null;
  url: string;
}
export type WriteBackKey = keyof WriteBackValues;

export interface WriteBackUpdate {
  externalId: string;
  /** only the values that changed since the last successful write */
  values: Partial<WriteBackValues>;
}

/**
 * The outcomes of the records a write-back sent before it stopped partway through its calls on a
 * spent budget or a Retry-After (a CrmBudgetExhausted), by that error; the others were not sent.
 * The caller records them, so the next pass resumes where this one stopped instead of sending
 * those records again.
 */
export const outcomesBeforeStop = new WeakMap<Error, WriteBackOutcome[]>();

export interface WriteBackOutcome {
  externalId: string;
  ok: boolean;
  error?: string;
  /** false: the record is gone in the CRM, a retry cannot help */
  retriable?: boolean;
  /**
   * 'record': the CRM answered and refused this record (a validation rule, a lock): retried a
   * bounded number of times. 'call' (or absent): the call itself failed (network, 5xx, a refused
   * request): retried until it goes through, since an outage must not drop values.
   */
  scope?: 'record' | 'call';
}

/**
 * The Case (Salesforce) or ticket (HubSpot) that escalates an ignored listening-gap item.
 * `idempotencyKey` is the item id: the adapter stores it on the record so that a repeated call
 * finds the record it created instead of creating a second one.
 */
/**
 * The longest case description every CRM takes, in UTF-16 units: Salesforce's Case.Description
 * is a Long Text Area of 32,000 characters (a longer one is refused, STRING_TOO_LONG); HubSpot's
 * ticket `content` takes 65,536. The escalation job fits its description into this.
 */
export const CASE_DESCRIPTION_MAX_CHARS = 32_000;

export interface CaseInput {
  idempotencyKey: string;
  subject: string;
  description: string;
  /** the channel the customer used (x, email, …) */
  origin: string;
  priority: 'high' | 'medium';
  /** the customer's person record in this CRM (Salesforce Contact, HubSpot contact), if any */
  contactId: string | null;
  /** Salesforce Account / HubSpot company */
  accountId: string | null;
  /** user or queue that owns the case; null: the CRM's default */
  ownerId: string | null;
}

export interface CaseRef {
  externalId: string;
  url: string | null;
  /** false: the record of this idempotency key existed already (a retry) */
  created: boolean;
}

export interface SetupReport {
  created: string[];
  existing: string[];
  /** steps an admin has to do by hand (Salesforce fields ship as a DX source folder) */
  manual: string[];
}

/**
 * One CRM: what the sync and write-back services need, nothing vendor-specific. Two adapters:
 * salesforce/salesforce.client.ts (jsforce) and hubspot/hubspot.client.ts (@hubspot/api-client).
 *
 * Must stay true for every adapter: every HTTP call is counted against `budget` and paced by it;
 * a spent daily budget surfaces as CrmBudgetExhausted (never as silent data loss); an expired
 * token is renewed and the call repeated; the adapter owns the retry policy for 429 and 5xx.
 */
export interface CrmClient {
  readonly system: CrmSystem;
  /** synced objects in sync order (organisations first, so people can point at them) */
  readonly objectTypes: readonly string[];
  /** objects that take the write-back values */
  readonly writeBackObjects: readonly string[];
  readonly budget: CrmBudget;
  /**
   * Pulls what changed after `cursor` (everything when null or mode full) in cursor order,
   * then deletions since `deletedSince`. Each batch goes through `sink` before the next is asked
   * for, so a run stopped anywhere resumes from the last cursor without losing a record.
   */
  pull(objectType: string, opts: PullOptions): Promise<PullResult>;
  /**
   * Writes values onto records in the largest batches the API allows (Salesforce sObject
   * Collections: 200; HubSpot batch update: 100). Per-record outcomes in input order; a failed
   * call fails only its own records.
   */
  writeBack(objectType: string, updates: WriteBackUpdate[]): Promise<WriteBackOutcome[]>;
  /** A deep link to the record in the CRM's UI; null when it cannot be built. */
  recordUrl(objectType: string, externalId: string): string | null;
  /**
   * Creates the escalation Case or ticket, linked to the contact/account and owner given.
   * Must stay true: idempotent on `idempotencyKey` (an upsert on an external-id field or a
   * unique property), so retries after a crash or by another replica never make two records.
   */
  createCase(input: CaseInput): Promise<CaseRef>;
  /** Creates what write-back needs in the CRM (idempotent). */
  setup(): Promise<SetupReport>;
  close(): Promise<void>;
}

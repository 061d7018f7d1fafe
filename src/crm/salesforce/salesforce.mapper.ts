import type { CrmIdentity, CrmPerson, CrmRecordInput } from '../crm.port';
import type { IdentityFieldSpec, WriteBackFieldNames } from '../crm.config';
import { cutText } from '../../shared/text';
import { CASE_DESCRIPTION_MAX_CHARS, type CaseInput, type CrmCaseRow, type WriteBackValues } from '../crm.port';

/** A record as the REST API (JSON) or Bulk API 2.0 (CSV, every value a string) returns it. */
export type SfRow = Record<string, unknown>;

/** Fields Earshot reads per object, besides the configured identity fields. */
export const SF_FIELDS: Record<string, readonly string[]> = {
  Account: ['Id', 'Name', 'Phone', 'Industry', 'OwnerId', 'SystemModstamp'],
  Contact: ['Id', 'FirstName', 'LastName', 'Email', 'Phone', 'MobilePhone', 'Title', 'AccountId', 'Account.Name', 'OwnerId', 'SystemModstamp'],
  Lead: ['Id', 'FirstName', 'LastName', 'Email', 'Phone', 'MobilePhone', 'Company', 'Status', 'IsConverted', 'OwnerId', 'SystemModstamp'],
  Case: ['Id', 'Status', 'IsClosed', 'ContactId', 'AccountId', 'SystemModstamp'],
};

/** The SELECT list of an object: its fields plus the identity fields configured for it. */
export function selectFields(objectType: string, identityFields: readonly IdentityFieldSpec[]): string[] {
  const base = SF_FIELDS[objectType] ?? ['Id', 'SystemModstamp'];
  const extra = identityFields.filter((f) => f.object === objectType).map((f) => f.field);
  return [...new Set([...base, ...extra])];
}

/** Salesforce datetimes (`…+0000`, or ISO) → ISO-8601 in UTC; null for empty. */
export function sfDateTime(v: unknown): string | null {
  if (v === null || v === undefined || v === '') return null;
  const ms = Date.parse(String(v).replace(/([+-]\d\d)(\d\d)$/, '$1:$2'));
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

/** A field path (`Account.Name`) read from a REST record (nested) or a CSV row (flat key). */
export function field(row: SfRow, path: string): string | null {
  let v: unknown = path in row ? row[path] : undefined;
  if (v === undefined && path.includes('.')) {
    v = path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), row);
  }
  if (v === null || v === undefined || v === '') return null;
  return String(v);
}

/** The stored payload: the fields as read, relationship objects flattened, no `attributes`. */
function payloadOf(row: SfRow, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) out[f] = field(row, f);
  return out;
}

/**
 * Maps one Contact, Lead or Account to the identity intake's input.
 * Must stay true: the external id is the 18-character Id as sent; identities come only from the
 * configured identity fields of that object; empty CSV cells are nulls, never empty identities.
 */
export function mapSalesforceRecord(objectType: string, row: SfRow, identityFields: readonly IdentityFieldSpec[], deleted = false): CrmRecordInput {
  const fields = selectFields(objectType, identityFields);
  const person: CrmPerson =
    objectType === 'Account'
      ? { company: field(row, 'Name') }
      : { givenName: field(row, 'FirstName'), surname: field(row, 'LastName'), company: objectType === 'Lead' ? field(row, 'Company') : field(row, 'Account.Name') };
  const identities: CrmIdentity[] = [];
  for (const spec of identityFields) {
    if (spec.object !== objectType) continue;
    const value = field(row, spec.field);
    if (value) identities.push({ kind: spec.kind, network: spec.network, value });
  }
  const isDeleted = deleted || field(row, 'IsDeleted') === 'true';
  return {
    externalId: field(row, 'Id') ?? '',
    ownerId: field(row, 'OwnerId'),
    modstamp: sfDateTime(row.SystemModstamp),
    payload: payloadOf(row, fields),
    person,
    identities,
    ...(isDeleted ? { deleted: true } : {}),
  };
}

export function mapSalesforceCase(row: SfRow, deleted = false): CrmCaseRow {
  return {
    externalId: field(row, 'Id') ?? '',
    status: field(row, 'Status'),
    isClosed: field(row, 'IsClosed') === 'true',
    contactId: field(row, 'ContactId'),
    accountId: field(row, 'AccountId'),
    modstamp: sfDateTime(row.SystemModstamp),
    deleted: deleted || field(row, 'IsDeleted') === 'true',
  };
}

/** The sObject Collections record for a write-back: only the values given, under the configured API names. */
export function salesforceWriteBack(objectType: string, externalId: string, values: Partial<WriteBackValues>, names: WriteBackFieldNames): Record<string, unknown> {
  const rec: Record<string, unknown> = { attributes: { type: objectType }, Id: externalId };
  for (const [k, v] of Object.entries(values) as [keyof WriteBackValues, unknown][]) rec[names[k]] = v ?? null;
  return rec;
}

/** The Case external-id field that carries the listening-gap item id (idempotent escalation). */
export const SF_CASE_KEY_FIELD = 'Earshot_Item_Id__c';

/**
 * The sObject Collections upsert record of an escalation Case. Status is left to the org's
 * default (and untouched by a repeated upsert), so a retry never reopens a Case an agent worked on.
 */
export function salesforceCase(input: CaseInput): Record<string, unknown> {
  const rec: Record<string, unknown> = {
    attributes: { type: 'Case' },
    [SF_CASE_KEY_FIELD]: input.idempotencyKey,
    Subject: cutText(input.subject, 255),
    Description: cutText(input.description, CASE_DESCRIPTION_MAX_CHARS),
    Origin: input.origin,
    Priority: input.priority === 'high' ? 'High' : 'Medium',
  };
  if (input.contactId) rec.ContactId = input.contactId;
  if (input.accountId) rec.AccountId = input.accountId;
  if (input.ownerId) rec.OwnerId = input.ownerId;
  return rec;
}

/** SOQL datetime literal (no quotes). */
export function soqlDateTime(iso: string): string {
  return new Date(iso).toISOString();
}

/** Single quotes and backslashes escaped for a SOQL string literal. */
export function soqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

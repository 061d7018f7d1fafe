import { cutText } from '../shared/text';
import type { CrmCaseRow, CrmIdentity, CrmPerson, CrmRecordInput } from './crm.port';

/**
 * What a CRM hands over is customer data typed by anyone, through a vendor that may be broken:
 * before a record reaches the identity intake it is made storable here, so that one record can
 * no longer fail the batch (and with it every later run, since the cursor stays before it).
 *
 * - NUL (PostgreSQL's text and jsonb refuse it: "invalid input syntax for type json") is removed
 *   and a lone surrogate (jsonb refuses its escape) becomes U+FFFD, in every string, keys included.
 * - Person fields are cut to 255 UTF-16 units: the longest name field either vendor has
 *   (Salesforce Account.Name, Lead.Company; FirstName is 40, LastName 80). A 1 MB name failed
 *   the batch on the display-name index ("index row requires 22920 bytes, maximum size is 8191").
 * - An identity value longer than 512 units is dropped: no e-mail address (254), phone number,
 *   handle or profile URL is that long, and normalizing a 64 KB one blocked the event loop for
 *   seconds (a quadratic regular expression on `<<<…`).
 * - Payload strings are cut to 131,072 units, the largest text field Salesforce has (Long Text
 *   Area); HubSpot's property values stop at 65,536.
 * - A record without a usable id (missing, not a string, over 255 units, or with characters
 *   the intake refuses) is set apart: a missing one was stored as the id "null" (each such
 *   record overwriting the last), an odd one failed the whole batch in the intake.
 */
export const PERSON_FIELD_MAX = 255;
export const IDENTITY_VALUE_MAX = 512;
export const PAYLOAD_TEXT_MAX = 131_072;
const EXTERNAL_ID_MAX = 255;
const PAYLOAD_DEPTH_MAX = 8;

/** `s` without NUL and with every lone surrogate replaced by U+FFFD (String#toWellFormed). */
export function storableText(s: string): string {
  const out = s.includes('\u0000') ? s.replace(/\u0000/g, '') : s;
  return (out as unknown as { toWellFormed(): string }).toWellFormed();
}

function storableValue(v: unknown, depth: number, changed: { yes: boolean }): unknown {
  if (typeof v === 'string') {
    const s = cutText(storableText(v), PAYLOAD_TEXT_MAX);
    if (s !== v) changed.yes = true;
    return s;
  }
  if (v === null || typeof v !== 'object' || v instanceof Date) return v;
  if (depth >= PAYLOAD_DEPTH_MAX) {
    changed.yes = true;
    return null;
  }
  if (Array.isArray(v)) return v.map((x) => storableValue(x, depth + 1, changed));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const key = cutText(storableText(k), 255);
    if (key !== k) changed.yes = true;
    out[key] = storableValue(x, depth + 1, changed);
  }
  return out;
}

const FIRST_STORABLE_MS = Date.parse('0001-01-01T00:00:00.000Z');
const LAST_STORABLE_MS = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * A CRM's modification time as a time PostgreSQL holds, or null: not a time, or outside years
 * 1–9999 ("0000-06-01", "+010000-01-01"), which JavaScript reads and `timestamptz` refuses: one
 * such record failed its whole batch, and so every run.
 */
export function storableTime(v: Date | string | null | undefined): number | null {
  const ms = v instanceof Date ? v.getTime() : typeof v === 'string' ? Date.parse(v) : Number.NaN;
  return ms >= FIRST_STORABLE_MS && ms <= LAST_STORABLE_MS ? ms : null;
}

/**
 * A usable external id, or null: at most 255 of the characters the identity intake takes in a
 * record id (letters, digits, `_`, `-`; Salesforce ids and HubSpot ids are such), so that one
 * odd id no longer fails its whole batch there (BAD_USER_INPUT "invalid CRM record id").
 */
export function usableExternalId(id: unknown): string | null {
  if (typeof id !== 'string' || id.length === 0 || id.length > EXTERNAL_ID_MAX) return null;
  return /^[A-Za-z0-9_-]+$/.test(id) ? id : null;
}

/** The id as a log may show it: JSON-quoted, at most 40 units (ids are not personal data; hostile ones may be long). */
export function idForLog(id: unknown): string {
  return JSON.stringify(typeof id === 'string' ? cutText(id, 40) : (id ?? null));
}

export interface GuardedRecords {
  records: CrmRecordInput[];
  /** records set apart, with why (no personal data: ids and field names only) */
  skipped: { externalId: string; reason: string }[];
  /** records stored with some values cleaned or cut, and which fields */
  cleaned: { externalId: string; fields: string[] }[];
}

/** Makes every record storable (see above); records without a usable id are set apart. */
export function guardCrmRecords(input: CrmRecordInput[]): GuardedRecords {
  const out: GuardedRecords = { records: [], skipped: [], cleaned: [] };
  for (const r of input) {
    const externalId = usableExternalId(r.externalId);
    if (externalId === null) {
      out.skipped.push({ externalId: idForLog(r.externalId), reason: 'no usable record id' });
      continue;
    }
    const fields: string[] = [];
    const text = (name: string, v: string | null | undefined, max: number): string | null | undefined => {
      if (typeof v !== 'string') return v;
      const s = cutText(storableText(v), max);
      if (s !== v) fields.push(name);
      return s;
    };
    let person: CrmPerson | null | undefined = r.person;
    if (person) {
      person = { ...person };
      for (const k of Object.keys(person) as (keyof CrmPerson)[]) person[k] = text(`person.${k}`, person[k], PERSON_FIELD_MAX);
    }
    const identities: CrmIdentity[] = [];
    for (const id of r.identities ?? []) {
      if (typeof id.value !== 'string' || id.value.length > IDENTITY_VALUE_MAX) {
        fields.push(`identity.${id.kind}`);
        continue;
      }
      const value = storableText(id.value);
      if (value !== id.value) fields.push(`identity.${id.kind}`);
      if (value) identities.push({ ...id, value });
    }
    const ownerId = typeof r.ownerId === 'string' ? usableExternalId(r.ownerId) : r.ownerId;
    if (ownerId !== r.ownerId) fields.push('ownerId');
    const changed = { yes: false };
    const payload = r.payload === undefined ? undefined : (storableValue(r.payload, 0, changed) as Record<string, unknown>);
    if (changed.yes) fields.push('payload');
    const modstamp = r.modstamp === null || r.modstamp === undefined || storableTime(r.modstamp) !== null ? r.modstamp : null;
    if (modstamp !== r.modstamp) fields.push('modstamp');
    out.records.push({ ...r, externalId, ownerId, person, identities, payload, modstamp });
    if (fields.length) out.cleaned.push({ externalId, fields });
  }
  return out;
}

/** Cases get the same treatment: text storable, rows without a usable id set apart. */
export function guardCrmCases(input: CrmCaseRow[]): { cases: CrmCaseRow[]; skipped: { externalId: string; reason: string }[] } {
  const cases: CrmCaseRow[] = [];
  const skipped: { externalId: string; reason: string }[] = [];
  for (const c of input) {
    const externalId = usableExternalId(c.externalId);
    if (externalId === null) {
      skipped.push({ externalId: idForLog(c.externalId), reason: 'no usable record id' });
      continue;
    }
    const ref = (v: string | null) => (v === null ? null : usableExternalId(v));
    const status = c.status === null ? null : cutText(storableText(c.status), PERSON_FIELD_MAX);
    const modstamp = c.modstamp !== null && storableTime(c.modstamp) === null ? null : c.modstamp;
    cases.push({ ...c, externalId, status, contactId: ref(c.contactId), accountId: ref(c.accountId), modstamp });
  }
  return { cases, skipped };
}

import type { CrmIdentity, CrmPerson, CrmRecordInput } from '../crm.port';
import type { IdentityFieldSpec, WriteBackFieldNames } from '../crm.config';
import { cutText } from '../../shared/text';
import type { CaseInput, WriteBackValues } from '../crm.port';

/** A CRM v3 object as search, list and batch read return it. */
export interface HsObjectJson {
  id: string;
  properties: Record<string, string | null | undefined>;
  createdAt?: string | Date;
  updatedAt?: string | Date;
  archived?: boolean;
  archivedAt?: string | Date;
}

export type HsObjectType = 'contacts' | 'companies';

/** The last-modified property search filters and sorts on (contacts have both; companies only hs_). */
export const LAST_MODIFIED: Record<HsObjectType, string> = { contacts: 'lastmodifieddate', companies: 'hs_lastmodifieddate' };

export const HS_PROPERTIES: Record<HsObjectType, readonly string[]> = {
  contacts: ['firstname', 'lastname', 'email', 'phone', 'mobilephone', 'company', 'jobtitle', 'city', 'country', 'hubspot_owner_id', 'hs_object_id', 'lastmodifieddate', 'hs_lastmodifieddate', 'hs_merged_object_ids'],
  companies: ['name', 'domain', 'phone', 'industry', 'city', 'country', 'hubspot_owner_id', 'hs_object_id', 'hs_lastmodifieddate', 'hs_merged_object_ids'],
};

export function properties(type: HsObjectType, identityFields: readonly IdentityFieldSpec[]): string[] {
  return [...new Set([...HS_PROPERTIES[type], ...identityFields.filter((f) => f.object === type).map((f) => f.field)])];
}

const iso = (v: unknown): string | null => {
  if (v === null || v === undefined || v === '') return null;
  const s = String(v);
  const ms = /^\d+$/.test(s) ? Number(s) : v instanceof Date ? v.getTime() : Date.parse(s);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
};

/** The object's last-modified time as ISO (the property first, `updatedAt` as fallback). */
export function hubspotModstamp(type: HsObjectType, o: HsObjectJson): string | null {
  return iso(o.properties[LAST_MODIFIED[type]]) ?? iso(o.properties.hs_lastmodifieddate) ?? iso(o.updatedAt);
}

const prop = (o: HsObjectJson, name: string): string | null => {
  const v = o.properties[name];
  return v === null || v === undefined || v === '' ? null : String(v);
};

/**
 * Maps one HubSpot contact or company to the identity intake's input.
 * Must stay true: the external id is HubSpot's object id; identities come only from the
 * configured properties; associated company ids are kept in the payload.
 */
export function mapHubSpotObject(type: HsObjectType, o: HsObjectJson, identityFields: readonly IdentityFieldSpec[], companyIds: string[] = []): CrmRecordInput {
  const person: CrmPerson =
    type === 'companies'
      ? { company: prop(o, 'name'), city: prop(o, 'city') }
      : { givenName: prop(o, 'firstname'), surname: prop(o, 'lastname'), company: prop(o, 'company'), city: prop(o, 'city') };
  const identities: CrmIdentity[] = [];
  for (const spec of identityFields) {
    if (spec.object !== type) continue;
    const value = prop(o, spec.field);
    if (value) identities.push({ kind: spec.kind, network: spec.network, value });
  }
  const payload: Record<string, unknown> = { ...Object.fromEntries(Object.entries(o.properties).map(([k, v]) => [k, v ?? null])) };
  if (type === 'contacts') payload.associatedCompanyIds = companyIds;
  return {
    externalId: o.id === null || o.id === undefined ? '' : String(o.id),
    ownerId: prop(o, 'hubspot_owner_id'),
    modstamp: hubspotModstamp(type, o),
    payload,
    person,
    identities,
    ...(o.archived ? { deleted: true } : {}),
  };
}

/**
 * The ids merged into this record (`hs_merged_object_ids`, `;`-separated): a merge keeps the
 * primary, and the secondary's id is an alias of it, never listed as archived.
 */
export function hubspotMergedIds(o: HsObjectJson): string[] {
  const raw = o.properties.hs_merged_object_ids;
  if (typeof raw !== 'string') return [];
  return [...new Set(raw.split(';').map((s) => s.trim()))].filter((id) => /^\d+$/.test(id) && id !== String(o.id));
}

/** Batch-update input for a write-back: HubSpot takes every property value as a string. */
export function hubspotWriteBack(externalId: string, values: Partial<WriteBackValues>, names: WriteBackFieldNames): { id: string; properties: Record<string, string> } {
  const props: Record<string, string> = {};
  for (const [k, v] of Object.entries(values) as [keyof WriteBackValues, unknown][]) props[names[k]] = v === null || v === undefined ? '' : String(v);
  return { id: externalId, properties: props };
}

/** The unique-value ticket property that carries the listening-gap item id (idempotent escalation). */
export const HS_TICKET_KEY_PROPERTY = 'earshot_item_id';

/**
 * The batch-upsert input of an escalation ticket (support pipeline `0`, stage `1` = New), keyed
 * by the unique `earshot_item_id` property.
 */
export function hubspotTicket(input: CaseInput): { idProperty: string; id: string; properties: Record<string, string> } {
  const properties: Record<string, string> = {
    [HS_TICKET_KEY_PROPERTY]: input.idempotencyKey,
    subject: cutText(input.subject, 255),
    content: cutText(input.description, 65_000),
    hs_pipeline: '0',
    hs_pipeline_stage: '1',
    hs_ticket_priority: input.priority === 'high' ? 'HIGH' : 'MEDIUM',
    source_type: input.origin === 'email' ? 'EMAIL' : input.origin === 'chat' ? 'CHAT' : input.origin === 'call' ? 'PHONE' : 'OTHER',
  };
  if (input.ownerId) properties.hubspot_owner_id = input.ownerId;
  return { idProperty: HS_TICKET_KEY_PROPERTY, id: input.idempotencyKey, properties };
}

/** The ticket property escalation upserts on: unique, so a second ticket for one item is impossible. */
export function hubspotTicketKeyDefinition(group: string) {
  return {
    name: HS_TICKET_KEY_PROPERTY, label: 'Earshot listening item', type: 'string', fieldType: 'text', groupName: group, hasUniqueValue: true,
    description: 'The Earshot listening-gap item this ticket escalates',
  } as const;
}

/** The property definitions `setup-crm` creates in the Earshot group. */
export function hubspotPropertyDefinitions(names: WriteBackFieldNames, group: string) {
  return [
    { name: names.score, label: 'Earshot sentiment score', type: 'number', fieldType: 'number', groupName: group, description: 'Time-decayed customer sentiment, -1 (negative) to 1 (positive)' },
    { name: names.label, label: 'Earshot sentiment', type: 'string', fieldType: 'text', groupName: group, description: 'negative, neutral or positive' },
    { name: names.trend, label: 'Earshot sentiment trend (30 days)', type: 'number', fieldType: 'number', groupName: group, description: 'Mean of the last 30 days minus the 30 before' },
    { name: names.openComplaints, label: 'Earshot open complaints', type: 'number', fieldType: 'number', groupName: group, description: 'Inbound complaints without a reply' },
    { name: names.lastInteraction, label: 'Earshot last interaction', type: 'datetime', fieldType: 'date', groupName: group, description: 'When the customer last spoke to or about the company' },
    { name: names.url, label: 'Earshot link', type: 'string', fieldType: 'text', groupName: group, description: 'The customer in Earshot' },
  ] as const;
}

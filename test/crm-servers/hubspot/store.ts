import { COMPANY_WORDS, FIRST_NAMES, LAST_NAMES, rng } from '../http-util';

export type ObjectType = 'contacts' | 'companies' | 'tickets';
export const OBJECT_TYPES: ObjectType[] = ['contacts', 'companies', 'tickets'];

/** The "information" property group each standard object ships with. */
const INFO_GROUP: Record<ObjectType, { name: string; label: string }> = {
  contacts: { name: 'contactinformation', label: 'Contact information' },
  companies: { name: 'companyinformation', label: 'Company information' },
  tickets: { name: 'ticketinformation', label: 'Ticket information' },
};

/** Properties a create (or the create branch of an upsert) must carry (HubSpot tickets guide). */
export const REQUIRED_ON_CREATE: Record<ObjectType, readonly string[]> = {
  contacts: [],
  companies: [],
  tickets: ['subject', 'hs_pipeline', 'hs_pipeline_stage'],
};

/** The default support pipeline ("0") and its stages, as a new portal has them. */
export const TICKET_PIPELINE = { id: '0', stages: [{ id: '1', label: 'New' }, { id: '2', label: 'Waiting on contact' }, { id: '3', label: 'Waiting on us' }, { id: '4', label: 'Closed' }] };

export interface HsProperty {
  name: string;
  label: string;
  type: 'string' | 'number' | 'datetime' | 'date' | 'enumeration' | 'bool';
  fieldType: string;
  groupName: string;
  description: string;
  options: { label: string; value: string; displayOrder?: number; hidden?: boolean }[];
  displayOrder: number;
  calculated: boolean;
  externalOptions: boolean;
  hasUniqueValue: boolean;
  hidden: boolean;
  formField: boolean;
  archived: boolean;
  createdAt: string;
  updatedAt: string;
  modificationMetadata: { archivable: boolean; readOnlyDefinition: boolean; readOnlyValue: boolean };
}

export interface HsGroup {
  name: string;
  label: string;
  displayOrder: number;
  archived: boolean;
}

export interface HsObject {
  id: string;
  properties: Record<string, string | null>;
  createdAt: number;
  updatedAt: number;
  archived: boolean;
  archivedAt?: number;
}

/** Properties whose values HubSpot computes; clients may not write them. */
const READ_ONLY = new Set(['hs_object_id', 'createdate', 'lastmodifieddate', 'hs_lastmodifieddate', 'hs_merged_object_ids']);

/** The portal's users that records can be owned by (`hubspot_owner_id` options). */
export const OWNERS = [
  { id: '70010001', email: 'sam.owner@example.com' },
  { id: '70010002', email: 'kim.owner@example.com' },
  { id: '70010003', email: 'alex.owner@example.com' },
];

/** HubSpot returns these when a request names no properties. */
export const DEFAULT_PROPERTIES: Record<ObjectType, string[]> = {
  contacts: ['createdate', 'email', 'firstname', 'hs_object_id', 'lastmodifieddate', 'lastname'],
  companies: ['createdate', 'domain', 'hs_lastmodifieddate', 'hs_object_id', 'name'],
  tickets: ['content', 'createdate', 'hs_lastmodifieddate', 'hs_object_id', 'hs_pipeline', 'hs_pipeline_stage', 'hs_ticket_category', 'hs_ticket_priority', 'subject'],
};

export class HsValidationError extends Error {
  constructor(readonly errors: { isValid: false; message: string; error: string; name: string }[]) {
    super(`Property values were not valid: ${JSON.stringify(errors)}`);
  }
}

const iso = (ms: number) => new Date(ms).toISOString();

/** In-memory HubSpot portal: contacts, companies, tickets, their property definitions and associations. */
export class HubSpotStore {
  readonly portalId = 2_460_001;
  readonly objects: Record<ObjectType, Map<string, HsObject>> = { contacts: new Map(), companies: new Map(), tickets: new Map() };
  readonly properties: Record<ObjectType, Map<string, HsProperty>> = { contacts: new Map(), companies: new Map(), tickets: new Map() };
  readonly groups: Record<ObjectType, Map<string, HsGroup>> = { contacts: new Map(), companies: new Map(), tickets: new Map() };
  /** `type:id` → `type:id` of every associated record, both directions kept (first linked first). */
  private readonly links = new Map<string, string[]>();
  private nextId: Record<ObjectType, number> = { contacts: 101, companies: 9_001, tickets: 5_100_001 };
  /** ids merged away (the secondaries of merges) → the id of the record they live on in */
  private readonly mergedInto: Record<ObjectType, Map<string, string>> = { contacts: new Map(), companies: new Map(), tickets: new Map() };
  private fixedNow: number | null = null;
  private lastNow = 0;

  constructor() {
    const std = (t: ObjectType, name: string, type: HsProperty['type'], group: string, readOnly = false) =>
      this.defineProperty(t, { name, label: name, type, fieldType: type === 'enumeration' ? 'select' : type === 'datetime' || type === 'date' ? 'date' : type === 'number' ? 'number' : 'text', groupName: group }, readOnly);
    for (const t of OBJECT_TYPES) this.groups[t].set(INFO_GROUP[t].name, { ...INFO_GROUP[t], displayOrder: -1, archived: false });
    for (const n of ['email', 'firstname', 'lastname', 'phone', 'mobilephone', 'company', 'jobtitle', 'twitterhandle', 'city', 'country']) std('contacts', n, 'string', 'contactinformation');
    for (const n of ['name', 'domain', 'phone', 'industry', 'city', 'country']) std('companies', n, 'string', 'companyinformation');
    for (const n of ['subject', 'content', 'hs_ticket_category']) std('tickets', n, 'string', 'ticketinformation');
    const options = (values: string[]) => values.map((value, displayOrder) => ({ label: value, value, displayOrder, hidden: false }));
    const enumeration = (t: ObjectType, name: string, values: string[]) =>
      this.defineProperty(t, { name, label: name, type: 'enumeration', fieldType: 'select', groupName: INFO_GROUP[t].name, options: options(values) });
    enumeration('tickets', 'hs_pipeline', [TICKET_PIPELINE.id]);
    enumeration('tickets', 'hs_pipeline_stage', TICKET_PIPELINE.stages.map((s) => s.id));
    enumeration('tickets', 'hs_ticket_priority', ['LOW', 'MEDIUM', 'HIGH', 'URGENT']);
    enumeration('tickets', 'source_type', ['CHAT', 'EMAIL', 'FORM', 'PHONE', 'OTHER']);
    for (const t of OBJECT_TYPES) {
      const g = INFO_GROUP[t].name;
      std(t, 'hs_object_id', 'number', g, true);
      std(t, 'createdate', 'datetime', g, true);
      std(t, 'hs_lastmodifieddate', 'datetime', g, true);
      // the ids merged into this record, `;`-separated
      std(t, 'hs_merged_object_ids', 'string', g, true);
      // An owner is one of the portal's users; any other value is rejected like a bad option.
      enumeration(t, 'hubspot_owner_id', OWNERS.map((o) => o.id));
    }
    std('contacts', 'lastmodifieddate', 'datetime', 'contactinformation', true);
  }

  /** Pins the clock (for identical last-modified times) or releases it with `null`. */
  setClock(at: Date | string | number | null): void {
    this.fixedNow = at === null ? null : new Date(at).getTime();
  }

  now(): number {
    if (this.fixedNow !== null) return this.fixedNow;
    this.lastNow = Math.max(Date.now(), this.lastNow + 1);
    return this.lastNow;
  }

  defineProperty(type: ObjectType, input: Partial<HsProperty> & { name: string; label: string; type: HsProperty['type']; fieldType: string; groupName: string }, readOnly = false): HsProperty {
    // the wall clock, not now(): the portal defines its 38 standard properties at construction,
    // and each now() there moved the records' clock a millisecond ahead of real time (a record
    // changed right after start carried a time up to 37 ms in the future)
    const now = iso(this.fixedNow ?? Date.now());
    const prop: HsProperty = {
      description: '', options: [], displayOrder: -1, calculated: false, externalOptions: false, hasUniqueValue: false, hidden: false,
      formField: false, archived: false, createdAt: now, updatedAt: now,
      modificationMetadata: { archivable: !readOnly, readOnlyDefinition: readOnly, readOnlyValue: readOnly },
      ...input,
    };
    this.properties[type].set(prop.name, prop);
    return prop;
  }

  /** Validates writes the way HubSpot does: unknown, read-only and mistyped values are all reported. */
  validate(type: ObjectType, props: Record<string, unknown>): Record<string, string | null> {
    const errors: HsValidationError['errors'] = [];
    const out: Record<string, string | null> = {};
    for (const [name, raw] of Object.entries(props)) {
      const def = this.properties[type].get(name);
      if (!def || def.archived) { errors.push({ isValid: false, message: `Property "${name}" does not exist`, error: 'PROPERTY_DOESNT_EXIST', name }); continue; }
      if (READ_ONLY.has(name) || def.modificationMetadata.readOnlyValue) { errors.push({ isValid: false, message: `"${name}" is a read only property; its value cannot be set.`, error: 'READ_ONLY_VALUE', name }); continue; }
      if (raw === null || raw === undefined || raw === '') { out[name] = raw === '' ? '' : null; continue; }
      const v = String(raw);
      if (def.type === 'number' && Number.isNaN(Number(v))) { errors.push({ isValid: false, message: `${v} was not a valid number.`, error: 'INVALID_INTEGER', name }); continue; }
      if (def.type === 'datetime' || def.type === 'date') {
        const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
        if (Number.isNaN(ms)) { errors.push({ isValid: false, message: `${v} was not a valid long.`, error: 'INVALID_LONG', name }); continue; }
        if (def.type === 'date' && ms % 86_400_000 !== 0) { errors.push({ isValid: false, message: `${v} is at ${new Date(ms).toISOString()} which is not midnight!`, error: 'INVALID_DATE', name }); continue; }
        out[name] = new Date(ms).toISOString();
        continue;
      }
      if (def.type === 'enumeration' && !def.options.some((o) => o.value === v)) { errors.push({ isValid: false, message: `${v} was not one of the allowed options: ${JSON.stringify(def.options.map((o) => o.value))}`, error: 'INVALID_OPTION', name }); continue; }
      if (def.type === 'bool' && v !== 'true' && v !== 'false') { errors.push({ isValid: false, message: `${v} was not a valid boolean.`, error: 'INVALID_BOOLEAN', name }); continue; }
      out[name] = v;
    }
    if (errors.length) throw new HsValidationError(errors);
    return out;
  }

  /** A create must carry the object's required properties (and unique values must stay unique). */
  validateCreate(type: ObjectType, props: Record<string, string | null>): void {
    const missing = REQUIRED_ON_CREATE[type].filter((n) => props[n] === null || props[n] === undefined || props[n] === '');
    if (missing.length) throw new HsValidationError(missing.map((name) => ({ isValid: false, message: `${name} is required`, error: 'REQUIRED_PROPERTY', name })));
    this.validateUnique(type, props);
  }

  /** Values of `hasUniqueValue` properties may belong to one record only. */
  validateUnique(type: ObjectType, props: Record<string, string | null>, self?: string): void {
    const errors: HsValidationError['errors'] = [];
    for (const [name, v] of Object.entries(props)) {
      if (v === null || v === '' || !this.properties[type].get(name)?.hasUniqueValue) continue;
      const other = this.findByUnique(type, name, v);
      if (other && other.id !== self) errors.push({ isValid: false, message: `${v} already has a value for property ${name} on object ${other.id}; this property requires unique values.`, error: 'DUPLICATE_UNIQUE_PROPERTY_VALUE', name });
    }
    if (errors.length) throw new HsValidationError(errors);
  }

  /** The live record whose `property` equals `value`. */
  findByUnique(type: ObjectType, property: string, value: string): HsObject | undefined {
    return this.list(type).find((o) => o.properties[property] === value);
  }

  create(type: ObjectType, props: Record<string, string | null>, at?: number): HsObject {
    const now = at ?? this.now();
    const id = String(this.nextId[type]++);
    const obj: HsObject = { id, properties: { ...props, hs_object_id: id, createdate: iso(now) }, createdAt: now, updatedAt: now, archived: false };
    this.touch(type, obj, now);
    this.objects[type].set(id, obj);
    return obj;
  }

  update(type: ObjectType, obj: HsObject, props: Record<string, string | null>, at?: number): HsObject {
    Object.assign(obj.properties, props);
    this.touch(type, obj, at ?? this.now());
    return obj;
  }

  archive(type: ObjectType, obj: HsObject): void {
    obj.archived = true;
    obj.archivedAt = this.now();
    obj.updatedAt = obj.archivedAt;
  }

  /**
   * A restore from the recycle bin (Actions > Restore records, within 90 days): the record is live
   * again under its id with its properties, and HubSpot sets its last-modified time anew, so search
   * finds it again; it is gone from the archived list.
   */
  restore(type: ObjectType, obj: HsObject, at?: number): HsObject {
    obj.archived = false;
    delete obj.archivedAt;
    this.touch(type, obj, at ?? this.now());
    return obj;
  }

  /**
   * A merge as an admin does it in the UI: the primary keeps its id and gets a new last-modified
   * time, its `hs_merged_object_ids` lists the merged ids; the secondary is gone from lists and
   * search (not archived) and its id is an alias: reading it answers the primary's record.
   */
  merge(type: ObjectType, primaryId: string, secondaryId: string, props: Record<string, string | null> = {}): HsObject {
    const primary = this.get(type, primaryId)!;
    const secondary = this.get(type, secondaryId)!;
    const merged = [...(primary.properties.hs_merged_object_ids ?? '').split(';'), ...(secondary.properties.hs_merged_object_ids ?? '').split(';'), secondary.id].filter(Boolean);
    this.objects[type].delete(secondary.id);
    for (const [alias, to] of this.mergedInto[type]) if (to === secondary.id) this.mergedInto[type].set(alias, primary.id);
    this.mergedInto[type].set(secondary.id, primary.id);
    for (const k of this.links.get(`${type}:${secondary.id}`) ?? []) {
      const [toType, toId] = k.split(':') as [ObjectType, string];
      this.link(type, primary.id, toType, toId);
    }
    return this.update(type, primary, { ...props, hs_merged_object_ids: [...new Set(merged)].join(';') });
  }

  private touch(type: ObjectType, obj: HsObject, now: number): void {
    obj.updatedAt = now;
    obj.properties.hs_lastmodifieddate = iso(now);
    if (type === 'contacts') obj.properties.lastmodifieddate = iso(now);
  }

  /** A record by id; a merged-away id answers the record it was merged into. */
  get(type: ObjectType, id: string, archived = false): HsObject | undefined {
    const o = this.objects[type].get(id) ?? this.objects[type].get(this.mergedInto[type].get(id) ?? '');
    return o && o.archived === archived ? o : undefined;
  }

  list(type: ObjectType, archived = false): HsObject[] {
    return [...this.objects[type].values()].filter((o) => o.archived === archived);
  }

  associate(contactId: string, companyId: string): void {
    this.link('contacts', contactId, 'companies', companyId);
  }

  /** Associates two records; associations in HubSpot are always two-way. */
  link(fromType: ObjectType, fromId: string, toType: ObjectType, toId: string): void {
    const add = (a: string, b: string) => {
      const list = this.links.get(a) ?? [];
      if (!list.includes(b)) list.push(b);
      this.links.set(a, list);
    };
    add(`${fromType}:${fromId}`, `${toType}:${toId}`);
    add(`${toType}:${toId}`, `${fromType}:${fromId}`);
  }

  /** Ids of the `toType` records associated with one record. */
  linked(fromType: ObjectType, id: string, toType: ObjectType): string[] {
    const prefix = `${toType}:`;
    return (this.links.get(`${fromType}:${id}`) ?? []).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  }

  /** Associated ids between contacts and companies, in either direction. */
  associated(from: ObjectType, id: string): string[] {
    return this.linked(from, id, from === 'contacts' ? 'companies' : 'contacts');
  }

  // ---- seeding helpers -------------------------------------------------------------------

  generateCompanies(n: number, opts: { seed?: number; modifiedAt?: Date | string } = {}): HsObject[] {
    const rand = rng(opts.seed ?? 11);
    const at = opts.modifiedAt ? new Date(opts.modifiedAt).getTime() : undefined;
    return Array.from({ length: n }, (_, i) => {
      const w = COMPANY_WORDS[Math.floor(rand() * COMPANY_WORDS.length)];
      return this.create('companies', { name: `${w} ${i + 1}`, domain: `${w.toLowerCase()}${i + 1}.example.com`, industry: 'COMPUTER_SOFTWARE' }, at);
    });
  }

  /**
   * Deterministic contacts (`first.last.<i>@example.net`); `modifiedAt` pins every last-modified
   * time, `modifiedStart` + `stepMs` spreads them; `companyIds` associates round robin.
   */
  generateContacts(n: number, opts: { seed?: number; modifiedAt?: Date | string; modifiedStart?: Date | string; stepMs?: number; companyIds?: string[] } = {}): HsObject[] {
    const rand = rng(opts.seed ?? 5);
    const base = this.objects.contacts.size;
    return Array.from({ length: n }, (_, i) => {
      const k = base + i;
      const first = FIRST_NAMES[Math.floor(rand() * FIRST_NAMES.length)];
      const last = LAST_NAMES[Math.floor(rand() * LAST_NAMES.length)];
      const at = opts.modifiedAt ? new Date(opts.modifiedAt).getTime() : opts.modifiedStart ? new Date(opts.modifiedStart).getTime() + i * (opts.stepMs ?? 1000) : undefined;
      const c = this.create('contacts', {
        email: `${first}.${last}.${k}@example.net`.toLowerCase(), firstname: first, lastname: last,
        phone: `+1 212 555 ${String(k).padStart(4, '0').slice(-4)}`, twitterhandle: k % 2 ? `${first}_${last}_${k}`.toLowerCase() : null,
      }, at);
      if (opts.companyIds?.length) this.associate(c.id, opts.companyIds[k % opts.companyIds.length]);
      return c;
    });
  }
}

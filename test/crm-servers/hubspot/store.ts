import { COMPANY_WORDS, FIRST_NAMES, LAST_NAMES, rng } from '../http-util';

export type ObjectType = 'contacts' | 'companies';
export const OBJECT_TYPES: ObjectType[] = ['contacts', 'companies'];

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
const READ_ONLY = new Set(['hs_object_id', 'createdate', 'lastmodifieddate', 'hs_lastmodifieddate']);

/** HubSpot returns these when a request names no properties. */
export const DEFAULT_PROPERTIES: Record<ObjectType, string[]> = {
  contacts: ['createdate', 'email', 'firstname', 'hs_object_id', 'lastmodifieddate', 'lastname'],
  companies: ['createdate', 'domain', 'hs_lastmodifieddate', 'hs_object_id', 'name'],
};

export class HsValidationError extends Error {
  constructor(readonly errors: { isValid: false; message: string; error: string; name: string }[]) {
    super(`Property values were not valid: ${JSON.stringify(errors)}`);
  }
}

const iso = (ms: number) => new Date(ms).toISOString();

/** In-memory HubSpot portal: contacts, companies, their property definitions and associations. */
export class HubSpotStore {
  readonly portalId = 2_460_001;
  readonly objects: Record<ObjectType, Map<string, HsObject>> = { contacts: new Map(), companies: new Map() };
  readonly properties: Record<ObjectType, Map<string, HsProperty>> = { contacts: new Map(), companies: new Map() };
  readonly groups: Record<ObjectType, Map<string, HsGroup>> = { contacts: new Map(), companies: new Map() };
  /** contact id → company ids (primary first). */
  readonly contactCompanies = new Map<string, string[]>();
  private nextId: Record<ObjectType, number> = { contacts: 101, companies: 9_001 };
  private fixedNow: number | null = null;
  private lastNow = 0;

  constructor() {
    const std = (t: ObjectType, name: string, type: HsProperty['type'], group: string, readOnly = false) =>
      this.defineProperty(t, { name, label: name, type, fieldType: type === 'enumeration' ? 'select' : type === 'datetime' || type === 'date' ? 'date' : type === 'number' ? 'number' : 'text', groupName: group }, readOnly);
    for (const t of OBJECT_TYPES) {
      this.groups[t].set(t === 'contacts' ? 'contactinformation' : 'companyinformation', { name: t === 'contacts' ? 'contactinformation' : 'companyinformation', label: t === 'contacts' ? 'Contact information' : 'Company information', displayOrder: -1, archived: false });
    }
    for (const n of ['email', 'firstname', 'lastname', 'phone', 'mobilephone', 'company', 'jobtitle', 'twitterhandle', 'city', 'country']) std('contacts', n, 'string', 'contactinformation');
    for (const n of ['name', 'domain', 'phone', 'industry', 'city', 'country']) std('companies', n, 'string', 'companyinformation');
    for (const t of OBJECT_TYPES) {
      const g = t === 'contacts' ? 'contactinformation' : 'companyinformation';
      std(t, 'hs_object_id', 'number', g, true);
      std(t, 'createdate', 'datetime', g, true);
      std(t, 'hs_lastmodifieddate', 'datetime', g, true);
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
    const now = iso(this.now());
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

  private touch(type: ObjectType, obj: HsObject, now: number): void {
    obj.updatedAt = now;
    obj.properties.hs_lastmodifieddate = iso(now);
    if (type === 'contacts') obj.properties.lastmodifieddate = iso(now);
  }

  get(type: ObjectType, id: string, archived = false): HsObject | undefined {
    const o = this.objects[type].get(id);
    return o && o.archived === archived ? o : undefined;
  }

  list(type: ObjectType, archived = false): HsObject[] {
    return [...this.objects[type].values()].filter((o) => o.archived === archived);
  }

  associate(contactId: string, companyId: string): void {
    const list = this.contactCompanies.get(contactId) ?? [];
    if (!list.includes(companyId)) list.push(companyId);
    this.contactCompanies.set(contactId, list);
  }

  /** Associated ids in either direction (contacts→companies or companies→contacts). */
  associated(from: ObjectType, id: string): string[] {
    if (from === 'contacts') return this.contactCompanies.get(id) ?? [];
    return [...this.contactCompanies].filter(([, cos]) => cos.includes(id)).map(([c]) => c);
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

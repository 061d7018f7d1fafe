import { COMPANY_WORDS, FIRST_NAMES, LAST_NAMES, rng } from '../http-util';

export type FieldType = 'id' | 'string' | 'email' | 'phone' | 'url' | 'double' | 'datetime' | 'boolean' | 'reference' | 'picklist' | 'textarea';

export interface FieldDef {
  name: string;
  type: FieldType;
  label: string;
  /** Salesforce sets these itself; a client may not write them. */
  system?: boolean;
  referenceTo?: string;
  relationshipName?: string;
  calculated?: boolean;
}

export interface SObjectDef {
  name: string;
  keyPrefix: string;
  label: string;
  fields: FieldDef[];
}

/** Field value as stored: datetimes are epoch milliseconds. */
export type Value = string | number | boolean | null;
export interface SfRecord {
  Id: string;
  [field: string]: Value;
}

const f = (name: string, type: FieldType, extra: Partial<FieldDef> = {}): FieldDef => ({
  name,
  type,
  label: name.replace(/__c$/, '').replace(/_/g, ' '),
  ...extra,
});

const SYSTEM_FIELDS: FieldDef[] = [
  f('Id', 'id', { system: true }),
  f('IsDeleted', 'boolean', { system: true }),
  f('CreatedDate', 'datetime', { system: true }),
  f('CreatedById', 'reference', { system: true, referenceTo: 'User', relationshipName: 'CreatedBy' }),
  f('LastModifiedDate', 'datetime', { system: true }),
  f('LastModifiedById', 'reference', { system: true, referenceTo: 'User', relationshipName: 'LastModifiedBy' }),
  f('SystemModstamp', 'datetime', { system: true }),
];

/** The write-back fields Earshot ships as a Salesforce DX source folder. */
export const EARSHOT_FIELDS: FieldDef[] = [
  f('Earshot_Sentiment_Score__c', 'double'),
  f('Earshot_Sentiment_Label__c', 'string'),
  f('Earshot_Sentiment_Trend__c', 'double'),
  f('Earshot_Open_Complaints__c', 'double'),
  f('Earshot_Last_Interaction__c', 'datetime'),
  f('Earshot_Url__c', 'url'),
];

const owner = f('OwnerId', 'reference', { referenceTo: 'User', relationshipName: 'Owner' });
/** Set on a record deleted by a merge: the Id of the record it was merged into (the master). */
const master = (type: string) => f('MasterRecordId', 'reference', { system: true, referenceTo: type, relationshipName: 'MasterRecord' });

export const SOBJECTS: Record<string, SObjectDef> = {
  User: {
    name: 'User', keyPrefix: '005', label: 'User',
    fields: [...SYSTEM_FIELDS, f('Username', 'string'), f('Name', 'string'), f('Email', 'email'), f('IsActive', 'boolean')],
  },
  Account: {
    name: 'Account', keyPrefix: '001', label: 'Account',
    fields: [...SYSTEM_FIELDS, master('Account'), f('Name', 'string'), f('Phone', 'phone'), f('Website', 'url'), f('Industry', 'picklist'), owner, ...EARSHOT_FIELDS],
  },
  Contact: {
    name: 'Contact', keyPrefix: '003', label: 'Contact',
    fields: [
      ...SYSTEM_FIELDS, master('Contact'), f('FirstName', 'string'), f('LastName', 'string'), f('Name', 'string', { calculated: true }),
      f('Email', 'email'), f('Phone', 'phone'), f('MobilePhone', 'phone'), f('Title', 'string'),
      f('AccountId', 'reference', { referenceTo: 'Account', relationshipName: 'Account' }), owner,
      f('Twitter_Handle__c', 'string'), ...EARSHOT_FIELDS,
    ],
  },
  Lead: {
    name: 'Lead', keyPrefix: '00Q', label: 'Lead',
    fields: [
      ...SYSTEM_FIELDS, master('Lead'), f('FirstName', 'string'), f('LastName', 'string'), f('Name', 'string', { calculated: true }),
      f('Email', 'email'), f('Phone', 'phone'), f('MobilePhone', 'phone'), f('Company', 'string'), f('Status', 'picklist'),
      f('IsConverted', 'boolean'), owner, ...EARSHOT_FIELDS,
    ],
  },
  Case: {
    name: 'Case', keyPrefix: '500', label: 'Case',
    fields: [
      ...SYSTEM_FIELDS, f('CaseNumber', 'string', { calculated: true }), f('Subject', 'string'), f('Description', 'textarea'),
      f('Status', 'picklist'), f('Origin', 'picklist'), f('Priority', 'picklist'), f('IsClosed', 'boolean', { calculated: true }),
      f('ContactId', 'reference', { referenceTo: 'Contact', relationshipName: 'Contact' }),
      f('AccountId', 'reference', { referenceTo: 'Account', relationshipName: 'Account' }), owner,
      // Earshot's escalation key (docker/salesforce ships it as an External ID, unique)
      f('Earshot_Item_Id__c', 'string'),
    ],
  },
};

/** Resolves a type name case-insensitively, as Salesforce does in URLs and SOQL. */
export function sobjectDef(type: string): SObjectDef | undefined {
  const key = Object.keys(SOBJECTS).find((k) => k.toLowerCase() === type.toLowerCase());
  return key ? SOBJECTS[key] : undefined;
}

export function fieldDef(def: SObjectDef, name: string): FieldDef | undefined {
  const lower = name.toLowerCase();
  return def.fields.find((fd) => fd.name.toLowerCase() === lower);
}

const CHECKSUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';

/** Salesforce's 15→18 character id conversion: one checksum letter per 5-character chunk. */
export function to18(id15: string): string {
  let suffix = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) {
      const c = id15.charCodeAt(chunk * 5 + i);
      if (c >= 65 && c <= 90) bits |= 1 << i;
    }
    suffix += CHECKSUM[bits];
  }
  return id15 + suffix;
}

/** Salesforce's datetime wire format: `2024-01-01T00:00:00.000+0000`. */
export function formatDateTime(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+0000');
}

/** Accepts the forms Salesforce accepts in JSON bodies (ISO with Z, ±hh:mm or ±hhmm) and epoch ms. */
export function parseDateTime(v: unknown): number | null {
  if (v === null || v === undefined || v === '') return null;
  if (typeof v === 'number') return v;
  const s = String(v).replace(/([+-]\d\d)(\d\d)$/, '$1:$2');
  const ms = Date.parse(s);
  if (Number.isNaN(ms)) throw new SfFieldError('INVALID_TYPE_ON_FIELD_IN_RECORD', `Value for datetime field is not valid: ${String(v)}`);
  return ms;
}

export class SfFieldError extends Error {
  constructor(readonly statusCode: string, message: string, readonly fields: string[] = []) {
    super(message);
  }
}

/** A controllable clock: real time unless a test pins it, so modstamps can be made to collide. */
export class Clock {
  private fixed: number | null = null;
  private last = 0;

  set(at: Date | number | string | null): void {
    this.fixed = at === null ? null : new Date(at).getTime();
  }

  advance(ms: number): void {
    this.fixed = (this.fixed ?? Date.now()) + ms;
  }

  now(): number {
    if (this.fixed !== null) return this.fixed;
    // Strictly increasing real time, so two writes in one millisecond still order.
    this.last = Math.max(Date.now(), this.last + 1);
    return this.last;
  }
}

interface Tombstone {
  type: string;
  id: string;
  deletedDate: number;
}

export interface GenerateOptions {
  /** Seed for the name generator; the same seed gives the same records. */
  seed?: number;
  /** SystemModstamp of every generated record; default: the server clock (advancing). */
  modstamp?: Date | string;
  /** When set, record i gets `start + i * stepMs` as its modstamp. */
  modstampStart?: Date | string;
  stepMs?: number;
  /** Link each contact to one of these account ids (round robin). */
  accountIds?: string[];
  /** Extra fields merged into every record. */
  fields?: Record<string, Value>;
}

/** In-memory Salesforce org: records per sObject, soft deletes (the recycle bin) and the clock. */
export class SalesforceStore {
  readonly clock = new Clock();
  readonly orgId = to18('00D5g000004Ab1C');
  readonly records = new Map<string, Map<string, SfRecord>>();
  private readonly counters = new Map<string, number>();
  readonly tombstones: Tombstone[] = [];
  readonly defaultUserId: string;

  constructor() {
    for (const type of Object.keys(SOBJECTS)) this.records.set(type, new Map());
    this.defaultUserId = this.insert('User', { Username: 'earshot@example.com', Name: 'Earshot Integration', Email: 'earshot@example.com', IsActive: true }).Id;
  }

  newId(type: string): string {
    const def = SOBJECTS[type];
    const n = (this.counters.get(type) ?? 0) + 1;
    this.counters.set(type, n);
    return to18(`${def.keyPrefix}5g${String(n).padStart(10, '0')}`);
  }

  /** Finds a record by 15- or 18-character id, deleted ones included. */
  find(type: string, id: string): SfRecord | undefined {
    const table = this.records.get(type);
    if (!table || (id.length !== 15 && id.length !== 18)) return undefined;
    return table.get(id.length === 15 ? to18(id) : id);
  }

  /** Which sObject an id belongs to, from its key prefix. */
  typeOfId(id: string): string | undefined {
    return Object.values(SOBJECTS).find((d) => id.startsWith(d.keyPrefix))?.name;
  }

  /** Validates and coerces client-written fields; throws SfFieldError naming the bad field. */
  coerce(type: string, fields: Record<string, unknown>, allowSystem = false): Record<string, Value> {
    const def = SOBJECTS[type];
    const out: Record<string, Value> = {};
    for (const [name, raw] of Object.entries(fields)) {
      if (name === 'attributes') continue;
      const fd = fieldDef(def, name);
      if (!fd) throw new SfFieldError('INVALID_FIELD', `No such column '${name}' on sobject of type ${type}`, [name]);
      if ((fd.system || fd.calculated) && !allowSystem) {
        if (fd.name === 'Id') continue;
        throw new SfFieldError('INVALID_FIELD_FOR_INSERT_UPDATE', `Unable to create/update fields: ${fd.name}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`, [fd.name]);
      }
      out[fd.name] = coerceValue(fd, raw);
    }
    return out;
  }

  insert(type: string, fields: Record<string, unknown>, modstamp?: number): SfRecord {
    const values = this.coerce(type, fields, true);
    const now = modstamp ?? this.clock.now();
    const id = typeof values.Id === 'string' ? values.Id : this.newId(type);
    const rec: SfRecord = {
      ...Object.fromEntries(SOBJECTS[type].fields.map((fd) => [fd.name, fd.type === 'boolean' ? false : null])),
      ...values,
      Id: id,
      IsDeleted: false,
      CreatedDate: (values.CreatedDate as number | null) ?? now,
      CreatedById: this.defaultUserId ?? null,
      LastModifiedDate: now,
      LastModifiedById: this.defaultUserId ?? null,
      SystemModstamp: now,
    };
    if (type !== 'User' && !rec.OwnerId) rec.OwnerId = this.defaultUserId;
    this.derive(type, rec);
    this.records.get(type)!.set(id, rec);
    return rec;
  }

  update(type: string, id: string, fields: Record<string, Value>, modstamp?: number): SfRecord {
    const rec = this.find(type, id)!;
    Object.assign(rec, fields);
    const now = modstamp ?? this.clock.now();
    rec.LastModifiedDate = now;
    rec.SystemModstamp = now;
    this.derive(type, rec);
    return rec;
  }

  /** Soft delete: the record stays visible to queryAll and getDeleted, as in the recycle bin. */
  delete(type: string, id: string, at?: number): void {
    const rec = this.find(type, id)!;
    const now = at ?? this.clock.now();
    rec.IsDeleted = true;
    rec.SystemModstamp = now;
    this.tombstones.push({ type, id: rec.Id, deletedDate: now });
  }

  /**
   * Undelete from the recycle bin, as an admin does it in the UI or with `undelete()`: the record is
   * live again under its Id with its field values, and its SystemModstamp and LastModifiedDate move
   * (so an incremental query sees it); it is no longer deleted, so getDeleted stops listing it.
   */
  undelete(type: string, id: string, at?: number): SfRecord {
    const rec = this.find(type, id)!;
    const now = at ?? this.clock.now();
    rec.IsDeleted = false;
    rec.LastModifiedDate = now;
    rec.SystemModstamp = now;
    for (let i = this.tombstones.length - 1; i >= 0; i--) if (this.tombstones[i]!.id === rec.Id) this.tombstones.splice(i, 1);
    return rec;
  }

  /**
   * A merge as an admin does it in the UI (Accounts, Contacts, Leads): the master keeps its Id and
   * the field values chosen (`fields`), its SystemModstamp changes; each loser is deleted with
   * MasterRecordId set to the master's Id (queryAll reads it; getDeleted gives only id and date).
   */
  merge(type: string, masterId: string, loserIds: string[], fields: Record<string, Value> = {}, at?: number): SfRecord {
    const rec = this.update(type, masterId, fields, at);
    for (const id of loserIds) {
      this.find(type, id)!.MasterRecordId = rec.Id;
      this.delete(type, id, at);
    }
    return rec;
  }

  private derive(type: string, rec: SfRecord): void {
    if ('Name' in rec && (type === 'Contact' || type === 'Lead')) {
      rec.Name = [rec.FirstName, rec.LastName].filter(Boolean).join(' ') || null;
    }
    if (type === 'Case') {
      if (!rec.CaseNumber) rec.CaseNumber = String(this.counters.get('Case') ?? 1).padStart(8, '0');
      // the Status picklist's default value in a standard org
      if (!rec.Status) rec.Status = 'New';
      rec.IsClosed = rec.Status === 'Closed';
    }
  }

  list(type: string, includeDeleted: boolean): SfRecord[] {
    const all = [...this.records.get(type)!.values()];
    return includeDeleted ? all : all.filter((r) => !r.IsDeleted);
  }

  count(type: string): number {
    return this.list(type, false).length;
  }

  // ---- seeding helpers -------------------------------------------------------------------

  generateAccounts(n: number, opts: GenerateOptions = {}): SfRecord[] {
    const rand = rng(opts.seed ?? 7);
    const out: SfRecord[] = [];
    for (let i = 0; i < n; i++) {
      const word = COMPANY_WORDS[Math.floor(rand() * COMPANY_WORDS.length)];
      out.push(this.insert('Account', {
        Name: `${word} ${i + 1}`,
        Website: `https://${word.toLowerCase()}${i + 1}.example.com`,
        Phone: `+1 415 555 ${String(1000 + (i % 9000))}`,
        Industry: ['Technology', 'Retail', 'Banking'][i % 3],
        ...opts.fields,
      }, this.modstampFor(i, opts)));
    }
    return out;
  }

  /** Deterministic contacts: `first.last.<i>@example.com`, E.164-able phones, some social handles. */
  generateContacts(n: number, opts: GenerateOptions = {}): SfRecord[] {
    const rand = rng(opts.seed ?? 42);
    const out: SfRecord[] = [];
    const base = this.count('Contact');
    for (let i = 0; i < n; i++) {
      const k = base + i;
      const first = FIRST_NAMES[Math.floor(rand() * FIRST_NAMES.length)];
      const last = LAST_NAMES[Math.floor(rand() * LAST_NAMES.length)];
      out.push(this.insert('Contact', {
        FirstName: first,
        LastName: last,
        Email: `${first}.${last}.${k}@example.com`.toLowerCase(),
        Phone: `+1 415 ${String(2000000 + k).slice(-7, -4)} ${String(k).padStart(4, '0').slice(-4)}`,
        MobilePhone: k % 3 === 0 ? `+44 7700 9${String(k).padStart(5, '0').slice(-5)}` : null,
        Title: ['Buyer', 'CTO', 'Analyst', null][k % 4],
        Twitter_Handle__c: k % 2 === 0 ? `@${first}${last}${k}`.toLowerCase() : null,
        AccountId: opts.accountIds?.length ? opts.accountIds[k % opts.accountIds.length] : null,
        ...opts.fields,
      }, this.modstampFor(i, opts)));
    }
    return out;
  }

  generateLeads(n: number, opts: GenerateOptions = {}): SfRecord[] {
    const rand = rng(opts.seed ?? 99);
    const out: SfRecord[] = [];
    const base = this.count('Lead');
    for (let i = 0; i < n; i++) {
      const k = base + i;
      const first = FIRST_NAMES[Math.floor(rand() * FIRST_NAMES.length)];
      const last = LAST_NAMES[Math.floor(rand() * LAST_NAMES.length)];
      out.push(this.insert('Lead', {
        FirstName: first, LastName: last, Company: `${COMPANY_WORDS[k % COMPANY_WORDS.length]} Prospect ${k}`,
        Email: `lead.${first}.${last}.${k}@example.org`.toLowerCase(), Status: 'Open - Not Contacted', ...opts.fields,
      }, this.modstampFor(i, opts)));
    }
    return out;
  }

  private modstampFor(i: number, opts: GenerateOptions): number | undefined {
    if (opts.modstamp) return new Date(opts.modstamp).getTime();
    if (opts.modstampStart) return new Date(opts.modstampStart).getTime() + i * (opts.stepMs ?? 1000);
    return undefined;
  }
}

function coerceValue(fd: FieldDef, raw: unknown): Value {
  if (raw === null || raw === undefined) return null;
  switch (fd.type) {
    case 'double': {
      const n = typeof raw === 'number' ? raw : Number(raw);
      if (typeof raw === 'boolean' || Number.isNaN(n)) {
        throw new SfFieldError('INVALID_TYPE_ON_FIELD_IN_RECORD', `${fd.label}: value not of required type: ${String(raw)}`, [fd.name]);
      }
      return n;
    }
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === 'false') return raw === 'true';
      throw new SfFieldError('INVALID_TYPE_ON_FIELD_IN_RECORD', `${fd.label}: value not of required type: ${String(raw)}`, [fd.name]);
    case 'datetime':
      return parseDateTime(raw);
    default:
      if (typeof raw === 'object') throw new SfFieldError('JSON_PARSER_ERROR', `Cannot deserialize instance of string from START_OBJECT value for field ${fd.name}`, [fd.name]);
      return String(raw);
  }
}

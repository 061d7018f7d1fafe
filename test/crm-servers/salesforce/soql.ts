import { fieldDef, formatDateTime, sobjectDef, type SalesforceStore, type SfRecord, type SObjectDef, type Value } from './store';

/** A SOQL error as Salesforce reports it: 400 with `[{ message, errorCode }]`. */
export class SoqlError extends Error {
  constructor(readonly errorCode: 'MALFORMED_QUERY' | 'INVALID_FIELD' | 'INVALID_TYPE', message: string) {
    super(message);
  }
}

/** A resolved field path: `Account.Name` is `['Account', 'Name']` through AccountId. */
interface FieldPath {
  text: string;
  parts: string[];
}

type Literal = { kind: 'value'; value: Value } | { kind: 'datetime'; value: number };

type Cond =
  | { op: 'and' | 'or'; items: Cond[] }
  | { op: 'not'; item: Cond }
  | { op: 'cmp'; field: FieldPath; cmp: '=' | '!=' | '<' | '>' | '<=' | '>='; value: Literal }
  | { op: 'in'; field: FieldPath; negate: boolean; values: Literal[] }
  | { op: 'like'; field: FieldPath; pattern: RegExp };

export interface SoqlQuery {
  type: string;
  fields: FieldPath[];
  count: boolean;
  where?: Cond;
  orderBy: { field: FieldPath; desc: boolean; nullsLast: boolean }[];
  limit?: number;
  offset?: number;
}

interface Token {
  t: 'ident' | 'string' | 'number' | 'datetime' | 'date' | 'op' | 'punct';
  v: string;
  pos: number;
}

const DATETIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})/;
const DATE_RE = /^\d{4}-\d{2}-\d{2}(?![\dT])/;

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) { i++; continue; }
    const rest = src.slice(i);
    const dt = DATETIME_RE.exec(rest);
    if (dt) { out.push({ t: 'datetime', v: dt[0], pos: i }); i += dt[0].length; continue; }
    const d = DATE_RE.exec(rest);
    if (d) { out.push({ t: 'date', v: d[0], pos: i }); i += d[0].length; continue; }
    if (c === "'") {
      let j = i + 1;
      let s = '';
      while (j < src.length && src[j] !== "'") {
        if (src[j] === '\\' && j + 1 < src.length) {
          const e = src[j + 1];
          s += e === 'n' ? '\n' : e === 't' ? '\t' : e;
          j += 2;
        } else s += src[j++];
      }
      if (j >= src.length) throw new SoqlError('MALFORMED_QUERY', `unexpected token: '${rest.slice(0, 20)}'`);
      out.push({ t: 'string', v: s, pos: i });
      i = j + 1;
      continue;
    }
    const num = /^-?\d+(\.\d+)?/.exec(rest);
    if (num) { out.push({ t: 'number', v: num[0], pos: i }); i += num[0].length; continue; }
    const op = /^(<=|>=|!=|<>|=|<|>)/.exec(rest);
    if (op) { out.push({ t: 'op', v: op[0] === '<>' ? '!=' : op[0], pos: i }); i += op[0].length; continue; }
    if ('(),:'.includes(c)) { out.push({ t: 'punct', v: c, pos: i }); i++; continue; }
    const id = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(rest);
    if (id) { out.push({ t: 'ident', v: id[0], pos: i }); i += id[0].length; continue; }
    throw new SoqlError('MALFORMED_QUERY', `unexpected token: '${c}'`);
  }
  return out;
}

class Parser {
  private i = 0;
  constructor(private readonly toks: Token[], private readonly src: string) {}

  private peek(): Token | undefined {
    return this.toks[this.i];
  }
  private kw(word: string): boolean {
    const t = this.peek();
    if (t?.t === 'ident' && t.v.toUpperCase() === word) { this.i++; return true; }
    return false;
  }
  private expectKw(word: string): void {
    if (!this.kw(word)) this.fail(`expecting '${word}'`);
  }
  private punct(p: string): boolean {
    const t = this.peek();
    if (t?.t === 'punct' && t.v === p) { this.i++; return true; }
    return false;
  }
  private fail(msg: string): never {
    const t = this.peek();
    const col = (t?.pos ?? this.src.length) + 1;
    throw new SoqlError('MALFORMED_QUERY', `\n${this.src}\n${' '.repeat(col - 1)}^\nERROR at Row:1:Column:${col}\nunexpected token: ${t ? `'${t.v}'` : '<EOF>'} (${msg})`);
  }
  private ident(): string {
    const t = this.peek();
    if (t?.t !== 'ident') this.fail('expecting an identifier');
    this.i++;
    return t.v;
  }

  parse(): Omit<SoqlQuery, 'type'> & { from: string } {
    this.expectKw('SELECT');
    const fields: FieldPath[] = [];
    let count = false;
    do {
      const name = this.ident();
      if (name.toUpperCase() === 'COUNT' && this.punct('(')) {
        if (!this.punct(')')) this.fail("expecting ')'");
        count = true;
      } else fields.push({ text: name, parts: name.split('.') });
    } while (this.punct(','));
    this.expectKw('FROM');
    const from = this.ident();
    let where: Cond | undefined;
    if (this.kw('WHERE')) where = this.orExpr();
    const orderBy: SoqlQuery['orderBy'] = [];
    if (this.kw('ORDER')) {
      this.expectKw('BY');
      do {
        const name = this.ident();
        let desc = false;
        if (this.kw('DESC')) desc = true;
        else this.kw('ASC');
        // SOQL sorts nulls first by default on ascending order.
        let nullsLast = desc;
        if (this.kw('NULLS')) nullsLast = this.kw('LAST') ? true : (this.expectKw('FIRST'), false);
        orderBy.push({ field: { text: name, parts: name.split('.') }, desc, nullsLast });
      } while (this.punct(','));
    }
    let limit: number | undefined;
    let offset: number | undefined;
    if (this.kw('LIMIT')) limit = this.integer();
    if (this.kw('OFFSET')) offset = this.integer();
    if (this.kw('ALL')) this.expectKw('ROWS');
    if (this.peek()) this.fail('expecting end of query');
    return { from, fields, count, where, orderBy, limit, offset };
  }

  private integer(): number {
    const t = this.peek();
    if (t?.t !== 'number' || !/^\d+$/.test(t.v)) this.fail('expecting a non-negative integer');
    this.i++;
    return Number(t.v);
  }

  private orExpr(): Cond {
    const items = [this.andExpr()];
    while (this.kw('OR')) items.push(this.andExpr());
    return items.length === 1 ? items[0] : { op: 'or', items };
  }
  private andExpr(): Cond {
    const items = [this.notExpr()];
    while (this.kw('AND')) items.push(this.notExpr());
    return items.length === 1 ? items[0] : { op: 'and', items };
  }
  private notExpr(): Cond {
    if (this.kw('NOT')) return { op: 'not', item: this.notExpr() };
    if (this.punct('(')) {
      const c = this.orExpr();
      if (!this.punct(')')) this.fail("expecting ')'");
      return c;
    }
    const name = this.ident();
    const field = { text: name, parts: name.split('.') };
    if (this.kw('IN')) return { op: 'in', field, negate: false, values: this.list() };
    if (this.kw('NOT')) { this.expectKw('IN'); return { op: 'in', field, negate: true, values: this.list() }; }
    if (this.kw('LIKE')) {
      const t = this.peek();
      if (t?.t !== 'string') this.fail('expecting a string');
      this.i++;
      const re = t.v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/%/g, '.*').replace(/_/g, '.');
      return { op: 'like', field, pattern: new RegExp(`^${re}$`, 'is') };
    }
    const op = this.peek();
    if (op?.t !== 'op') this.fail('expecting a comparison operator');
    this.i++;
    return { op: 'cmp', field, cmp: op.v as '=', value: this.literal() };
  }
  private list(): Literal[] {
    if (!this.punct('(')) this.fail("expecting '('");
    const out: Literal[] = [];
    do out.push(this.literal()); while (this.punct(','));
    if (!this.punct(')')) this.fail("expecting ')'");
    return out;
  }
  private literal(): Literal {
    const t = this.peek();
    if (!t) this.fail('expecting a value');
    this.i++;
    switch (t.t) {
      case 'string': return { kind: 'value', value: t.v };
      case 'number': return { kind: 'value', value: Number(t.v) };
      case 'datetime': return { kind: 'datetime', value: Date.parse(t.v.replace(/([+-]\d\d)(\d\d)$/, '$1:$2')) };
      case 'date': return { kind: 'datetime', value: Date.parse(`${t.v}T00:00:00Z`) };
      case 'ident': {
        const u = t.v.toUpperCase();
        if (u === 'TRUE' || u === 'FALSE') return { kind: 'value', value: u === 'TRUE' };
        if (u === 'NULL') return { kind: 'value', value: null };
        const day = 86_400_000;
        const today = Math.floor(Date.now() / day) * day;
        if (u === 'TODAY') return { kind: 'datetime', value: today };
        if (u === 'YESTERDAY') return { kind: 'datetime', value: today - day };
        if (u === 'LAST_N_DAYS' && this.punct(':')) return { kind: 'datetime', value: today - this.integer() * day };
        break;
      }
    }
    this.i--;
    return this.fail('expecting a value');
  }
}

/** Parses the SOQL subset the local server supports and checks every field against the schema. */
export function parseSoql(src: string): SoqlQuery {
  const parsed = new Parser(tokenize(src), src).parse();
  const def = sobjectDef(parsed.from);
  if (!def) throw new SoqlError('INVALID_TYPE', `\n${src}\n^\nERROR at Row:1:Column:1\nsObject type '${parsed.from}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.`);
  const q: SoqlQuery = { ...parsed, type: def.name };
  const check = (p: FieldPath) => resolvePath(def, p, src);
  q.fields.forEach(check);
  q.orderBy.forEach((o) => check(o.field));
  const walk = (c: Cond | undefined): void => {
    if (!c) return;
    if (c.op === 'and' || c.op === 'or') c.items.forEach(walk);
    else if (c.op === 'not') walk(c.item);
    else if (c.op === 'cmp' || c.op === 'in' || c.op === 'like') check(c.field);
  };
  walk(q.where);
  return q;
}

/** Rewrites the path with canonical names; throws INVALID_FIELD as Salesforce does. */
function resolvePath(def: SObjectDef, p: FieldPath, src: string): void {
  let cur = def;
  const canon: string[] = [];
  for (let k = 0; k < p.parts.length; k++) {
    const part = p.parts[k];
    if (k === 0 && p.parts.length > 1 && part.toLowerCase() === def.name.toLowerCase()) continue;
    if (k < p.parts.length - 1) {
      const rel = cur.fields.find((fd) => fd.relationshipName?.toLowerCase() === part.toLowerCase());
      if (!rel) throw invalidField(src, part, cur.name, true);
      canon.push(rel.relationshipName!);
      cur = sobjectDef(rel.referenceTo!)!;
    } else {
      const fd = fieldDef(cur, part);
      if (!fd) throw invalidField(src, part, cur.name, false);
      canon.push(fd.name);
    }
  }
  p.parts = canon;
}

function invalidField(src: string, name: string, entity: string, relationship: boolean): SoqlError {
  const col = src.indexOf(name) + 1;
  const why = relationship
    ? `Didn't understand relationship '${name}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.`
    : `No such column '${name}' on entity '${entity}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.`;
  return new SoqlError('INVALID_FIELD', `\n${src}\n${' '.repeat(Math.max(0, col - 1))}^\nERROR at Row:1:Column:${col}\n${why}`);
}

/** Reads a (possibly relationship) field's stored value; `undefined` when a parent is missing. */
function read(store: SalesforceStore, type: string, rec: SfRecord, parts: string[]): Value | undefined {
  let curType = type;
  let cur: SfRecord | undefined = rec;
  for (let k = 0; k < parts.length - 1; k++) {
    const fd = sobjectDef(curType)!.fields.find((x) => x.relationshipName === parts[k])!;
    const id: Value = cur[fd.name];
    curType = fd.referenceTo!;
    cur = typeof id === 'string' ? store.find(curType, id) : undefined;
    if (!cur) return undefined;
  }
  return cur[parts[parts.length - 1]];
}

function compare(a: Value | undefined, b: Value): number {
  if (a === null || a === undefined) return b === null ? 0 : -1;
  if (b === null) return 1;
  if (typeof a === 'string' && typeof b === 'string') {
    // SOQL compares text case-insensitively; ids compare as stored (same case).
    const x = a.toLowerCase();
    const y = b.toLowerCase();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (typeof a === 'boolean' || typeof b === 'boolean') return Number(a) - Number(b);
  return Number(a) - Number(b);
}

function literalFor(store: SalesforceStore, q: SoqlQuery, path: FieldPath, lit: Literal): Value {
  const fd = fieldAt(q.type, path.parts);
  if (fd?.type === 'datetime' && lit.kind === 'value' && lit.value !== null) {
    throw new SoqlError('INVALID_FIELD', `value of filter criterion for field '${path.text}' must be of type dateTime and should not be enclosed in quotes`);
  }
  if (fd && (fd.type === 'id' || fd.type === 'reference') && typeof lit.value === 'string' && lit.value.length === 15) {
    return store.find(store.typeOfId(lit.value) ?? q.type, lit.value)?.Id ?? lit.value;
  }
  return lit.value;
}

function fieldAt(type: string, parts: string[]) {
  let def = sobjectDef(type)!;
  for (let k = 0; k < parts.length - 1; k++) {
    def = sobjectDef(def.fields.find((x) => x.relationshipName === parts[k])!.referenceTo!)!;
  }
  return fieldDef(def, parts[parts.length - 1]);
}

function checkLiterals(store: SalesforceStore, q: SoqlQuery, c: Cond): void {
  if (c.op === 'and' || c.op === 'or') c.items.forEach((x) => checkLiterals(store, q, x));
  else if (c.op === 'not') checkLiterals(store, q, c.item);
  else if (c.op === 'in') c.values.forEach((lit) => literalFor(store, q, c.field, lit));
  else if (c.op === 'cmp') literalFor(store, q, c.field, c.value);
}

function matches(store: SalesforceStore, q: SoqlQuery, rec: SfRecord, c: Cond): boolean {
  switch (c.op) {
    case 'and': return c.items.every((x) => matches(store, q, rec, x));
    case 'or': return c.items.some((x) => matches(store, q, rec, x));
    case 'not': return !matches(store, q, rec, c.item);
    case 'like': {
      const v = read(store, q.type, rec, c.field.parts);
      return v !== null && v !== undefined && c.pattern.test(String(v));
    }
    case 'in': {
      const v = read(store, q.type, rec, c.field.parts);
      const hit = c.values.some((lit) => compare(v, literalFor(store, q, c.field, lit)) === 0 && !(v === null && lit.value !== null));
      return c.negate ? !hit : hit;
    }
    case 'cmp': {
      const v = read(store, q.type, rec, c.field.parts) ?? null;
      const lit = literalFor(store, q, c.field, c.value);
      if (c.cmp === '=') return v === null || lit === null ? v === lit : compare(v, lit) === 0;
      if (c.cmp === '!=') return v === null || lit === null ? v !== lit : compare(v, lit) !== 0;
      // Ordering comparisons never match null, as in SQL.
      if (v === null || lit === null) return false;
      const r = compare(v, lit);
      return c.cmp === '<' ? r < 0 : c.cmp === '>' ? r > 0 : c.cmp === '<=' ? r <= 0 : r >= 0;
    }
  }
}

/** Runs the query; `includeDeleted` is queryAll. Returns matching records in result order. */
export function runSoql(store: SalesforceStore, q: SoqlQuery, includeDeleted: boolean): SfRecord[] {
  // Salesforce checks every literal against its field before reading a record: an empty org answers the same error.
  if (q.where) checkLiterals(store, q, q.where);
  let rows = store.list(q.type, includeDeleted);
  if (q.where) rows = rows.filter((r) => matches(store, q, r, q.where!));
  if (q.orderBy.length) {
    rows = [...rows].sort((a, b) => {
      for (const o of q.orderBy) {
        const x = read(store, q.type, a, o.field.parts) ?? null;
        const y = read(store, q.type, b, o.field.parts) ?? null;
        if (x === null || y === null) {
          if (x === y) continue;
          return (x === null) === o.nullsLast ? 1 : -1;
        }
        const r = compare(x, y);
        if (r !== 0) return o.desc ? -r : r;
      }
      return 0;
    });
  }
  const start = q.offset ?? 0;
  return rows.slice(start, q.limit !== undefined ? start + q.limit : undefined);
}

/** REST JSON shape of one record: `attributes` first, relationship fields nested. */
export function toRestRecord(store: SalesforceStore, apiBase: string, type: string, rec: SfRecord, fields: { parts: string[] }[]): Record<string, unknown> {
  const out: Record<string, unknown> = { attributes: { type, url: `${apiBase}/sobjects/${type}/${rec.Id}` } };
  for (const f of fields) {
    let target = out;
    let curType = type;
    let cur: SfRecord | undefined = rec;
    for (let k = 0; k < f.parts.length - 1 && cur; k++) {
      const rel = f.parts[k];
      const fd = sobjectDef(curType)!.fields.find((x) => x.relationshipName === rel)!;
      const id: Value = cur[fd.name];
      curType = fd.referenceTo!;
      cur = typeof id === 'string' ? store.find(curType, id) : undefined;
      if (!cur) { target[rel] = null; break; }
      if (!target[rel]) target[rel] = { attributes: { type: curType, url: `${apiBase}/sobjects/${curType}/${cur.Id}` } };
      target = target[rel] as Record<string, unknown>;
    }
    if (!cur) continue;
    const name = f.parts[f.parts.length - 1];
    target[name] = restValue(curType, name, cur[name]);
  }
  return out;
}

export function restValue(type: string, field: string, v: Value | undefined): Value {
  if (v === undefined || v === null) return null;
  const fd = fieldDef(sobjectDef(type)!, field);
  return fd?.type === 'datetime' && typeof v === 'number' ? formatDateTime(v) : v;
}

/** Bulk API 2.0 CSV value: every value quoted, nulls empty, datetimes with a `Z`. */
export function csvValue(store: SalesforceStore, type: string, rec: SfRecord, parts: string[]): string {
  const v = read(store, type, rec, parts);
  if (v === null || v === undefined) return '""';
  const fd = fieldAt(type, parts);
  const s = fd?.type === 'datetime' && typeof v === 'number' ? new Date(v).toISOString() : String(v);
  return `"${s.replace(/"/g, '""')}"`;
}

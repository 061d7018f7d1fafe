import type { HsObject, HubSpotStore, ObjectType } from './store';

export interface SearchFilter {
  propertyName: string;
  operator: string;
  value?: string | number;
  highValue?: string | number;
  values?: (string | number)[];
}

export interface SearchRequest {
  filterGroups?: { filters?: SearchFilter[] }[];
  sorts?: ({ propertyName: string; direction?: 'ASCENDING' | 'DESCENDING' } | string)[];
  query?: string;
  properties?: string[];
  limit?: number;
  after?: string | number;
}

/** The documented search limits. */
export const SEARCH_LIMITS = { maxPageSize: 200, maxResults: 10_000, maxGroups: 5, maxFiltersPerGroup: 6, maxFilters: 18 };

export class SearchError extends Error {}

const OPERATORS = new Set(['EQ', 'NEQ', 'LT', 'LTE', 'GT', 'GTE', 'BETWEEN', 'IN', 'NOT_IN', 'HAS_PROPERTY', 'NOT_HAS_PROPERTY', 'CONTAINS_TOKEN', 'NOT_CONTAINS_TOKEN']);
const SEARCHABLE: Record<ObjectType, string[]> = {
  contacts: ['email', 'firstname', 'lastname', 'phone', 'company'],
  companies: ['name', 'domain', 'phone', 'website'],
  tickets: ['subject', 'content', 'hs_pipeline_stage'],
};

/** Values of datetime/number properties compare numerically; datetimes accept ms epoch or ISO. */
function comparable(store: HubSpotStore, type: ObjectType, prop: string, v: unknown): number | string | null {
  if (v === null || v === undefined || v === '') return null;
  const def = store.properties[type].get(prop);
  const s = String(v);
  if (def?.type === 'datetime' || def?.type === 'date') return /^\d+$/.test(s) ? Number(s) : Date.parse(s);
  if (def?.type === 'number' || prop === 'hs_object_id') return Number(s);
  return s.toLowerCase();
}

function matchFilter(store: HubSpotStore, type: ObjectType, obj: HsObject, f: SearchFilter): boolean {
  const raw = obj.properties[f.propertyName];
  const v = comparable(store, type, f.propertyName, raw);
  const val = comparable(store, type, f.propertyName, f.value);
  switch (f.operator) {
    case 'HAS_PROPERTY': return v !== null;
    case 'NOT_HAS_PROPERTY': return v === null;
    case 'EQ': return v !== null && v === val;
    case 'NEQ': return v !== val;
    case 'LT': return v !== null && val !== null && v < val;
    case 'LTE': return v !== null && val !== null && v <= val;
    case 'GT': return v !== null && val !== null && v > val;
    case 'GTE': return v !== null && val !== null && v >= val;
    case 'BETWEEN': {
      const hi = comparable(store, type, f.propertyName, f.highValue);
      return v !== null && val !== null && hi !== null && v >= val && v <= hi;
    }
    case 'IN': return v !== null && (f.values ?? []).some((x) => comparable(store, type, f.propertyName, x) === v);
    case 'NOT_IN': return !(f.values ?? []).some((x) => comparable(store, type, f.propertyName, x) === v);
    case 'CONTAINS_TOKEN':
    case 'NOT_CONTAINS_TOKEN': {
      const pattern = String(f.value ?? '').toLowerCase().replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
      const re = new RegExp(`^${pattern}$`);
      const hit = raw != null && String(raw).toLowerCase().split(/[\s@.,;:_-]+/).concat(String(raw).toLowerCase()).some((t) => re.test(t));
      return f.operator === 'CONTAINS_TOKEN' ? hit : !hit;
    }
    default: return false;
  }
}

/**
 * Runs a CRM search: filter groups OR'ed, filters AND'ed, one sort (ties by id), offset paging.
 * Throws SearchError for what HubSpot rejects with 400, including paging past 10,000 results.
 */
export function runSearch(store: HubSpotStore, type: ObjectType, req: SearchRequest): { total: number; results: HsObject[]; nextAfter?: string } {
  const groups = req.filterGroups ?? [];
  if (groups.length > SEARCH_LIMITS.maxGroups) throw new SearchError(`Too many filter groups (max ${SEARCH_LIMITS.maxGroups})`);
  let total = 0;
  for (const g of groups) {
    const n = g.filters?.length ?? 0;
    if (n > SEARCH_LIMITS.maxFiltersPerGroup) throw new SearchError(`Too many filters in group (max ${SEARCH_LIMITS.maxFiltersPerGroup})`);
    total += n;
    for (const f of g.filters ?? []) {
      if (!OPERATORS.has(f.operator)) throw new SearchError(`Invalid operator: ${f.operator}`);
      if (!store.properties[type].has(f.propertyName)) throw new SearchError(`Property ${f.propertyName} does not exist`);
    }
  }
  if (total > SEARCH_LIMITS.maxFilters) throw new SearchError(`Too many filters (max ${SEARCH_LIMITS.maxFilters})`);
  const limit = req.limit ?? 10;
  if (!Number.isInteger(limit) || limit < 0 || limit > SEARCH_LIMITS.maxPageSize) throw new SearchError(`limit must be between 0 and ${SEARCH_LIMITS.maxPageSize}`);
  const after = req.after === undefined || req.after === '' ? 0 : Number(req.after);
  if (!Number.isInteger(after) || after < 0) throw new SearchError(`Invalid after: ${String(req.after)}`);
  if (after >= SEARCH_LIMITS.maxResults) throw new SearchError(`Cannot page past ${SEARCH_LIMITS.maxResults} results`);

  let rows = store.list(type).filter((o) => groups.length === 0 || groups.some((g) => (g.filters ?? []).every((f) => matchFilter(store, type, o, f))));
  if (req.query) {
    const q = req.query.toLowerCase();
    rows = rows.filter((o) => SEARCHABLE[type].some((p) => String(o.properties[p] ?? '').toLowerCase().includes(q)));
  }
  const sorts = (req.sorts ?? []).map((s) => (typeof s === 'string' ? { propertyName: s.replace(/^-/, ''), direction: s.startsWith('-') ? 'DESCENDING' : 'ASCENDING' } : s));
  if (sorts.length > 1) throw new SearchError('Only one sort is allowed');
  const sort = sorts[0];
  rows.sort((a, b) => {
    if (sort) {
      const x = comparable(store, type, sort.propertyName, a.properties[sort.propertyName]);
      const y = comparable(store, type, sort.propertyName, b.properties[sort.propertyName]);
      if (x !== y) {
        if (x === null) return 1;
        if (y === null) return -1;
        const r = x < y ? -1 : 1;
        return sort.direction === 'DESCENDING' ? -r : r;
      }
    }
    return Number(a.id) - Number(b.id);
  });
  const page = rows.slice(after, after + limit);
  const next = after + page.length;
  return { total: rows.length, results: page, nextAfter: next < rows.length ? String(next) : undefined };
}

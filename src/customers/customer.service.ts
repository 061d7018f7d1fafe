import type { DataSource } from 'typeorm';
import { identityValueFor, searchScopeFor, sqlLooksLikePii, type PiiViewer } from '../auth/pii.policy';
import { IdentityKind, SentimentLabel } from '../graphql/enums';
import { keyset, type SortKey, type Window } from '../graphql/keyset';
import { toGlobalId, type Page } from '../graphql/relay';
import { fromInteractionJson, INTERACTION_COLUMNS, INTERACTION_ORDERS, interactionJson, type InteractionJsonRow, type InteractionOrder } from '../interactions/interaction.service';
import type { Interaction } from '../interactions/interaction.type';
import { Customer, type Identity } from './customer.type';

export interface CustomerFilter {
  search?: string | null;
  label?: SentimentLabel | null;
}

interface CustomerRow {
  id: string;
  display_name: string | null;
  sentiment_score: number | null;
  sentiment_label: string | null;
  sentiment_trend: number | null;
  interaction_count: number;
  last_interaction_at: Date | null;
  created_at: Date;
  /** the value of the list order, as text (keeps full precision) */
  sort_key: string;
  /** with {@link PagePrefetch.identities}: [kind, network, value, source] in identitiesOf's order */
  identities?: [string, string | null, string, string][];
  /** with {@link PagePrefetch.interactions}: the page's rows, as INTERACTION_JSON lists them */
  interactions?: InteractionJsonRow[];
}

/**
 * What the customer page's selection asks for below each customer, read ahead by the resolver
 * (src/customers/customer-page.lookahead.ts): fetched in the page's own statement, so that a page
 * with identities and interactions is one round trip and its fields resolve without waiting.
 */
export interface PagePrefetch {
  identities?: boolean;
  interactions?: {
    window: Window;
    order: InteractionOrder;
    /** the columns the selected fields read (src/customers/customer-page.lookahead.ts), or null for all */
    columns: ReadonlySet<string> | null;
    /** totalCount of a customer's interactions, run only when selected */
    countOf: (customerId: string) => Promise<number>;
  };
}

/** True when a page prefetched for `a` answers the field asked with `b` (the same window and order). */
export function sameInteractionsPage(a: { window: Window; order: InteractionOrder }, b: { window: Window; order: InteractionOrder }): boolean {
  const x = a.window;
  const y = b.window;
  return a.order === b.order && (x.first ?? null) === (y.first ?? null) && (x.after ?? null) === (y.after ?? null)
    && (x.last ?? null) === (y.last ?? null) && (x.before ?? null) === (y.before ?? null);
}

const CUSTOMER_COLUMNS = `c.id, c.display_name, c.sentiment_score, c.sentiment_label, c.sentiment_trend,
  c.interaction_count, c.last_interaction_at, c.created_at`;

/** A customer as {@link customerJson} lists it: the columns of CUSTOMER_COLUMNS, in order. */
export type CustomerJsonRow = [
  id: string, displayName: string | null, score: number | null, label: string | null, trend: number | null,
  interactionCount: number | null, lastInteractionAt: string | null, createdAt: string | null,
];

const CUSTOMER_JSON_SLOTS = ['id', 'display_name', 'sentiment_score', 'sentiment_label', 'sentiment_trend', 'interaction_count', 'last_interaction_at', 'created_at'] as const;

/**
 * One customer as a JSON list, in CustomerJsonRow's order, from a customer row aliased `c`. Only
 * the `columns` a selection reads (src/customers/customer-page.lookahead.ts) are filled, all of
 * them when null, and always the id; the others are NULL: never read, as no selected field
 * resolves from them.
 */
export function customerJson(columns: ReadonlySet<string> | null): string {
  return `json_build_array(${CUSTOMER_JSON_SLOTS.map((c) => (!columns || columns.has(c) || c === 'id' ? `c.${c}` : 'NULL')).join(', ')})`;
}

/** The customer {@link customerJson} listed. */
export function fromCustomerJson(j: CustomerJsonRow): Customer {
  return toCustomer({
    id: j[0], display_name: j[1], sentiment_score: j[2], sentiment_label: j[3], sentiment_trend: j[4],
    // not selected (the columns customerJson was given): never read
    interaction_count: j[5] as number, last_interaction_at: j[6] === null ? null : new Date(j[6]), created_at: (j[7] === null ? null : new Date(j[7])) as Date, sort_key: '',
  });
}

/** Orders of the customer list; sort values are never null (coalesced), as the keyset needs. */
export enum CustomerOrder {
  NEWEST = 'newest',
  MOST_NEGATIVE = 'most_negative',
  MOST_POSITIVE = 'most_positive',
  LAST_ACTIVITY = 'last_activity',
  OPEN_ITEMS = 'open_items',
}

// sort keys are read back as text: a JS Date drops the microseconds a cursor needs
const CUSTOMER_ORDERS: Record<CustomerOrder, SortKey> = {
  [CustomerOrder.NEWEST]: { name: 'newest', expr: 'c.created_at', type: 'timestamptz', desc: true },
  [CustomerOrder.MOST_NEGATIVE]: { name: 'most_negative', expr: 'coalesce(c.sentiment_score, 2::float8)', type: 'float8', desc: false },
  [CustomerOrder.MOST_POSITIVE]: { name: 'most_positive', expr: 'coalesce(c.sentiment_score, -2::float8)', type: 'float8', desc: true },
  [CustomerOrder.LAST_ACTIVITY]: { name: 'last_activity', expr: `coalesce(c.last_interaction_at, '-infinity'::timestamptz)`, type: 'timestamptz', desc: true },
  [CustomerOrder.OPEN_ITEMS]: {
    name: 'open_items',
    expr: `(SELECT count(*) FROM listening_item li WHERE li.customer_id = c.id AND li.status = 'open')`,
    type: 'int8',
    desc: true,
  },
};

/** Maps a stored customer to what the API exposes. */
export function toCustomer(r: CustomerRow): Customer {
  const c = new Customer();
  c.id = toGlobalId('Customer', r.id);
  c.uuid = r.id;
  c.displayName = r.display_name;
  c.createdAt = r.created_at;
  c.sentiment = {
    score: r.sentiment_score,
    label: (r.sentiment_label as SentimentLabel | null) ?? null,
    interactionCount: r.interaction_count,
    trend: r.sentiment_trend,
    lastInteractionAt: r.last_interaction_at,
  };
  return c;
}

/** Maps a stored identity to what `viewer` may see of it. */
function toIdentity(viewer: PiiViewer | null, kind: string, network: string | null, stored: string, source: string): Identity {
  const value = identityValueFor(viewer, kind, network, stored);
  return { kind: kind as IdentityKind, network, value, redacted: value === null, source };
}

export class CustomerService {
  constructor(private readonly ds: DataSource) {}

  /**
   * Customers in the asked order, keyset-paged; merged-away customers are hidden.
   * Must stay true: for a viewer without PII the search matches display names only, and never
   * one that reads as an email or a phone, so it cannot answer "does this address exist?";
   * viewers with PII also find customers by email, phone number or handle.
   */
  async page(w: Window, filter: CustomerFilter = {}, order: CustomerOrder = CustomerOrder.NEWEST, viewer: PiiViewer | null = null, prefetch: PagePrefetch = {}): Promise<Page<Customer>> {
    const sort = CUSTOMER_ORDERS[order];
    const where: string[] = ['c.merged_into_id IS NULL'];
    const params: unknown[] = [];
    if (filter.search) {
      const text = filter.search.trim().toLowerCase();
      params.push(`%${text.replace(/[\\%_]/g, (m) => `\\${m}`)}%`);
      const like = `$${params.length}`;
      if (searchScopeFor(viewer) === 'display-name-without-pii') {
        where.push(`lower(c.display_name) LIKE ${like}`, `NOT ${sqlLooksLikePii('c.display_name')}`);
      } else {
        const alternatives = [
          `lower(c.display_name) LIKE ${like}`,
          `EXISTS (SELECT 1 FROM customer_identity ci WHERE ci.customer_id = c.id AND ci.kind IN ('email', 'handle') AND lower(ci.value) LIKE ${like})`,
        ];
        const digits = text.replace(/\D/g, '');
        if (digits.length >= 5) {
          params.push(`%${digits}%`);
          alternatives.push(`EXISTS (SELECT 1 FROM customer_identity ci WHERE ci.customer_id = c.id AND ci.kind = 'phone' AND ci.value LIKE $${params.length})`);
        }
        where.push(`(${alternatives.join(' OR ')})`);
      }
    }
    if (filter.label) {
      params.push(filter.label);
      where.push(`c.sentiment_label = $${params.length}`);
    }
    const countWhere = [...where];
    const countParams = [...params];
    const k = keyset(sort, 'c.id', w, params);
    params.push(k.limit);
    const limit = `$${params.length}`;
    const extra: string[] = [];
    if (prefetch.identities) {
      extra.push(`(SELECT coalesce(json_agg(json_build_array(ci.kind, ci.network, ci.value, ci.source) ORDER BY ci.kind, ci.value), '[]')
         FROM customer_identity ci WHERE ci.customer_id = c.id) AS identities`);
    }
    const ip = prefetch.interactions;
    // the per-customer page, exactly as pagesByCustomer pages it (same keyset, same order)
    const ik = ip ? keyset(INTERACTION_ORDERS[ip.order], 'i.id', ip.window, params) : null;
    if (ip && ik) {
      params.push(ik.limit);
      extra.push(`(SELECT coalesce(json_agg(${interactionJson(ip.columns)} ORDER BY ${ik.orderBy}), '[]') FROM (
         SELECT ${INTERACTION_COLUMNS} FROM interaction i WHERE i.customer_id = c.id ${ik.conditions.map((x) => `AND ${x}`).join(' ')}
          ORDER BY ${ik.orderBy} LIMIT $${params.length}) i) AS interactions`);
    }
    const rows = (await this.ds.query(
      `SELECT ${CUSTOMER_COLUMNS}, (${sort.expr})::text AS sort_key${extra.map((x) => `, ${x}`).join('')}
         FROM customer c WHERE ${[...where, ...k.conditions].join(' AND ')}
       ORDER BY ${k.orderBy} LIMIT ${limit}`,
      params,
    )) as CustomerRow[];
    const map = (r: CustomerRow): Customer => {
      const c = toCustomer(r);
      if (r.identities) c.prefetchedIdentities = r.identities.map(([kind, network, value, source]) => toIdentity(viewer, kind, network, value, source));
      if (ip && ik && r.interactions) {
        const page = ik.page(r.interactions, fromInteractionJson, (j) => [j[20], j[0]], () => ip.countOf(r.id));
        c.prefetchedInteractions = { window: ip.window, order: ip.order, page };
      }
      return c;
    };
    return k.page(rows, map, (r) => [r.sort_key, r.id], async () =>
      ((await this.ds.query(`SELECT count(*)::int AS total FROM customer c WHERE ${countWhere.join(' AND ')}`, countParams)) as { total: number }[])[0]!.total,
    );
  }

  /** In the order of `ids`; a merged customer resolves to its survivor; null when unknown. */
  async byIds(ids: readonly string[]): Promise<(Customer | null)[]> {
    const rows: (CustomerRow & { asked: string })[] = await this.ds.query(
      `SELECT k.asked, ${CUSTOMER_COLUMNS}
         FROM unnest($1::uuid[]) AS k(asked)
         JOIN customer m ON m.id = k.asked
         JOIN customer c ON c.id = coalesce(m.merged_into_id, m.id)`,
      [ids],
    );
    const byId = new Map(rows.map((r) => [r.asked, toCustomer(r)]));
    return ids.map((id) => byId.get(id) ?? null);
  }

  /** Identities of many customers in one query; emails and phones hidden from roles without PII access. */
  async identitiesOf(customerIds: readonly string[], viewer: PiiViewer | null): Promise<Identity[][]> {
    const rows: { customer_id: string; kind: string; network: string | null; value: string; source: string }[] = await this.ds.query(
      `SELECT customer_id, kind, network, value, source FROM customer_identity
        WHERE customer_id = ANY($1::uuid[]) ORDER BY kind, value`,
      [customerIds],
    );
    const grouped = new Map<string, Identity[]>();
    for (const r of rows) {
      const list = grouped.get(r.customer_id) ?? [];
      list.push(toIdentity(viewer, r.kind, r.network, r.value, r.source));
      grouped.set(r.customer_id, list);
    }
    return customerIds.map((id) => grouped.get(id) ?? []);
  }
}

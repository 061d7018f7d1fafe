import { searchScopeFor, sqlLooksLikePii, type PiiViewer } from '../auth/pii.policy';
import { rows, firstRow, type Db } from '../db/sql';
import type { SentimentLabel } from '../graphql/enums';
import { keyset, type Keyset, type SortKey, type Window } from '../graphql/keyset';
import type { Page } from '../graphql/relay';
import { CUSTOMER_TREND } from '../sentiment/rollups.repository';
import { INTERACTION_COLUMNS, INTERACTION_ORDERS, interactionJson, type InteractionJsonRow, type InteractionOrder } from '../interactions/interaction.repository';

/**
 * Every SQL statement of the customer API (the customer page, with what its selection reads
 * ahead, and the look-ups), each returning a declared row type.
 */

export interface CustomerFilter {
  search?: string | null;
  label?: SentimentLabel | null;
}

export interface CustomerRow {
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

/** What the customer page reads ahead in its own statement (./customer.service.ts, PagePrefetch). */
export interface PageAhead {
  identities?: boolean;
  interactions?: {
    window: Window;
    order: InteractionOrder;
    /** the columns the selected fields read, or null for all */
    columns: ReadonlySet<string> | null;
  };
}

const CUSTOMER_COLUMNS = `c.id, c.display_name, c.sentiment_score, c.sentiment_label, ${CUSTOMER_TREND} AS sentiment_trend,
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
  const expr = (c: (typeof CUSTOMER_JSON_SLOTS)[number]) => (c === 'sentiment_trend' ? CUSTOMER_TREND : `c.${c}`);
  return `json_build_array(${CUSTOMER_JSON_SLOTS.map((c) => (!columns || columns.has(c) || c === 'id' ? expr(c) : 'NULL')).join(', ')})`;
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
  [CustomerOrder.NEWEST]: { name: 'customers:newest', expr: 'c.created_at', type: 'timestamptz', desc: true },
  [CustomerOrder.MOST_NEGATIVE]: { name: 'customers:most_negative', expr: 'coalesce(c.sentiment_score, 2::float8)', type: 'float8', desc: false },
  [CustomerOrder.MOST_POSITIVE]: { name: 'customers:most_positive', expr: 'coalesce(c.sentiment_score, -2::float8)', type: 'float8', desc: true },
  [CustomerOrder.LAST_ACTIVITY]: { name: 'customers:last_activity', expr: `coalesce(c.last_interaction_at, '-infinity'::timestamptz)`, type: 'timestamptz', desc: true },
  [CustomerOrder.OPEN_ITEMS]: { name: 'customers:open_items', expr: 'coalesce(o.open_items, 0)', type: 'int8', desc: true },
};

/**
 * What an order's sort value reads besides the customer row. OPEN_ITEMS: the open items of each
 * customer and of the customers merged into it (an item keeps the customer it opened with, so a
 * merged person's complaints were counted by no customer of the list), counted once for all
 * customers and joined. Measured on 25,000 live customers (5,000 merged away) and 7,100 open
 * items, jit off: a page took 97 ms with a count per customer that left the merged ones out, 131
 * ms (275 ms after a cursor) with a second count per customer for the merged ones, 57 ms with
 * this join; on 50,000 customers and 105,000 open items 334, 477 and 172 ms.
 */
const ORDER_JOINS: Partial<Record<CustomerOrder, string>> = {
  [CustomerOrder.OPEN_ITEMS]: `LEFT JOIN (SELECT coalesce(m.merged_into_id, m.id) AS customer_id, count(*) AS open_items
       FROM listening_item li JOIN customer m ON m.id = li.customer_id WHERE li.status = 'open' GROUP BY 1) o ON o.customer_id = c.id`,
};

/**
 * Customers in the asked order, keyset-paged; merged-away customers are hidden. `map` gets each
 * row and, when interactions are read ahead, the keyset their per-customer pages were read with.
 * The search is scoped by what `viewer` may see (CustomerService.page says what must stay true).
 */
export async function customerPage<T>(
  db: Db,
  w: Window,
  filter: CustomerFilter,
  order: CustomerOrder,
  viewer: PiiViewer | null,
  prefetch: PageAhead,
  map: (r: CustomerRow, interactions: Keyset | null) => T,
): Promise<Page<T>> {
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
  const found = await rows<CustomerRow>(
    db,
    `SELECT ${CUSTOMER_COLUMNS}, (${sort.expr})::text AS sort_key${extra.map((x) => `, ${x}`).join('')}
         FROM customer c ${ORDER_JOINS[order] ?? ''} WHERE ${[...where, ...k.conditions].join(' AND ')}
       ORDER BY ${k.orderBy} LIMIT ${limit}`,
    params,
  );
  return k.page(found, (r) => map(r, ik), (r) => [r.sort_key, r.id], async () =>
    (await firstRow<{ total: number }>(db, `SELECT count(*)::int AS total FROM customer c WHERE ${countWhere.join(' AND ')}`, countParams))!.total,
  );
}

/** In no particular order: each asked id with its customer (a merged one's survivor). */
export function customersByIds(db: Db, ids: readonly string[]): Promise<(CustomerRow & { asked: string })[]> {
  return rows(
    db,
    `SELECT k.asked, ${CUSTOMER_COLUMNS}
         FROM unnest($1::uuid[]) AS k(asked)
         JOIN customer m ON m.id = k.asked
         JOIN customer c ON c.id = coalesce(m.merged_into_id, m.id)`,
    [ids],
  );
}

/** The identities of customers, by kind and value. */
export function identitiesOfCustomers(
  db: Db,
  customerIds: readonly string[],
): Promise<{ customer_id: string; kind: string; network: string | null; value: string; source: string }[]> {
  return rows(
    db,
    `SELECT customer_id, kind, network, value, source FROM customer_identity
        WHERE customer_id = ANY($1::uuid[]) ORDER BY kind, value`,
    [customerIds],
  );
}

import type { DataSource } from 'typeorm';
import { identityValueFor, searchScopeFor, sqlLooksLikePii, type PiiViewer } from '../auth/pii.policy';
import { IdentityKind, SentimentLabel } from '../graphql/enums';
import { keyset, type SortKey, type Window } from '../graphql/keyset';
import { toGlobalId, type Page } from '../graphql/relay';
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
}

const CUSTOMER_COLUMNS = `c.id, c.display_name, c.sentiment_score, c.sentiment_label, c.sentiment_trend,
  c.interaction_count, c.last_interaction_at, c.created_at`;

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
  c.sentimentRow = {
    score: r.sentiment_score,
    label: (r.sentiment_label as SentimentLabel | null) ?? null,
    interactionCount: r.interaction_count,
    trend: r.sentiment_trend,
    lastInteractionAt: r.last_interaction_at,
  };
  return c;
}


export class CustomerService {
  constructor(private readonly ds: DataSource) {}

  /**
   * Customers in the asked order, keyset-paged; merged-away customers are hidden.
   * Must stay true: for a viewer without PII the search matches display names only, and never
   * one that reads as an email or a phone, so it cannot answer "does this address exist?";
   * viewers with PII also find customers by email, phone number or handle.
   */
  async page(w: Window, filter: CustomerFilter = {}, order: CustomerOrder = CustomerOrder.NEWEST, viewer: PiiViewer | null = null): Promise<Page<Customer>> {
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
    const rows = (await this.ds.query(
      `SELECT ${CUSTOMER_COLUMNS}, (${sort.expr})::text AS sort_key FROM customer c WHERE ${[...where, ...k.conditions].join(' AND ')}
       ORDER BY ${k.orderBy} LIMIT $${params.length}`,
      params,
    )) as CustomerRow[];
    return k.page(rows, toCustomer, (r) => [r.sort_key, r.id], async () =>
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
      const value = identityValueFor(viewer, r.kind, r.network, r.value);
      const list = grouped.get(r.customer_id) ?? [];
      list.push({ kind: r.kind as IdentityKind, network: r.network, value, redacted: value === null, source: r.source });
      grouped.set(r.customer_id, list);
    }
    return customerIds.map((id) => grouped.get(id) ?? []);
  }
}

import type { DataSource } from 'typeorm';
import { identityValueFor, searchScopeFor, sqlLooksLikePii, type PiiViewer } from '../auth/pii.policy';
import { IdentityKind, SentimentLabel } from '../graphql/enums';
import { decodeCursor, encodeCursor, pageSize, toGlobalId, toPage, type Page } from '../graphql/relay';
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
  sort_key: string;
}

// sort_key: the exact timestamp as text, since a JS Date drops the microseconds a cursor needs
const CUSTOMER_COLUMNS = `c.id, c.display_name, c.sentiment_score, c.sentiment_label, c.sentiment_trend,
  c.interaction_count, c.last_interaction_at, c.created_at, c.created_at::text AS sort_key`;

/** Maps a stored customer to what the API exposes. */
export function toCustomer(r: CustomerRow): Customer {
  const c = new Customer();
  c.id = toGlobalId('Customer', r.id);
  c.uuid = r.id;
  c.displayName = r.display_name;
  c.createdAt = r.created_at;
  c.sortKey = r.sort_key;
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
   * Customers newest first, keyset-paged on (created_at, id); merged-away customers are hidden.
   * Must stay true: for a viewer without PII the search matches display names only, and never
   * one that reads as an email or a phone, so it cannot answer "does this address exist?".
   */
  async page(first: number | null | undefined, after: string | null | undefined, filter: CustomerFilter = {}, viewer: PiiViewer | null = null): Promise<Page<Customer>> {
    const n = pageSize(first);
    const cursor = decodeCursor(after, 'timestamp');
    const where: string[] = ['c.merged_into_id IS NULL'];
    const params: unknown[] = [];
    if (filter.search) {
      params.push(`%${filter.search.toLowerCase().replace(/[\\%_]/g, (m) => `\\${m}`)}%`);
      where.push(`lower(c.display_name) LIKE $${params.length}`);
      if (searchScopeFor(viewer) === 'display-name-without-pii') where.push(`NOT ${sqlLooksLikePii('c.display_name')}`);
    }
    if (filter.label) {
      params.push(filter.label);
      where.push(`c.sentiment_label = $${params.length}`);
    }
    const countParams = [...params];
    const countWhere = [...where];
    if (cursor) {
      params.push(cursor.sort, cursor.id);
      where.push(`(c.created_at, c.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    params.push(n + 1);
    const [rows, [{ total }]] = await Promise.all([
      this.ds.query(
        `SELECT ${CUSTOMER_COLUMNS} FROM customer c WHERE ${where.join(' AND ')}
         ORDER BY c.created_at DESC, c.id DESC LIMIT $${params.length}`,
        params,
      ) as Promise<CustomerRow[]>,
      this.ds.query(`SELECT count(*)::int AS total FROM customer c WHERE ${countWhere.join(' AND ')}`, countParams) as Promise<{ total: number }[]>,
    ]);
    return toPage(rows.map(toCustomer), n, total, (c) => encodeCursor(c.sortKey, c.uuid));
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

import type { DataSource } from 'typeorm';
import { identityValueFor, type PiiViewer } from '../auth/pii.policy';
import { IdentityKind, SentimentLabel } from '../graphql/enums';
import type { Keyset, Window } from '../graphql/keyset';
import { toGlobalId, type Page } from '../graphql/relay';
import { fromInteractionJson, type InteractionOrder } from '../interactions/interaction.service';
import * as repo from './customer.repository';
import { CustomerOrder, type CustomerFilter, type CustomerJsonRow, type CustomerRow } from './customer.repository';
import { Customer, type Identity } from './customer.type';

export { CustomerOrder, type CustomerFilter } from './customer.repository';

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

/** The customer `customerJson` (customer.repository.ts) listed. */
export function fromCustomerJson(j: CustomerJsonRow): Customer {
  return toCustomer({
    id: j[0], display_name: j[1], sentiment_score: j[2], sentiment_label: j[3], sentiment_trend: j[4],
    // not selected (the columns customerJson was given): never read
    interaction_count: j[5] as number, last_interaction_at: j[6] === null ? null : new Date(j[6]), created_at: (j[7] === null ? null : new Date(j[7])) as Date, sort_key: '',
  });
}

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
    const ip = prefetch.interactions;
    const map = (r: CustomerRow, ik: Keyset | null): Customer => {
      const c = toCustomer(r);
      if (r.identities) c.prefetchedIdentities = r.identities.map(([kind, network, value, source]) => toIdentity(viewer, kind, network, value, source));
      if (ip && ik && r.interactions) {
        // its cursors name the customer, as the loader's pages do
        const page = ik.page(r.interactions, fromInteractionJson, (j) => [j[20], j[0]], () => ip.countOf(r.id), r.id);
        c.prefetchedInteractions = { window: ip.window, order: ip.order, page };
      }
      return c;
    };
    return repo.customerPage(this.ds, w, filter, order, viewer, prefetch, map);
  }

  /** In the order of `ids`; a merged customer resolves to its survivor; null when unknown. */
  async byIds(ids: readonly string[]): Promise<(Customer | null)[]> {
    const rows = await repo.customersByIds(this.ds, ids);
    const byId = new Map(rows.map((r) => [r.asked, toCustomer(r)]));
    return ids.map((id) => byId.get(id) ?? null);
  }

  /** Identities of many customers in one query; emails and phones hidden from roles without PII access. */
  async identitiesOf(customerIds: readonly string[], viewer: PiiViewer | null): Promise<Identity[][]> {
    const rows = await repo.identitiesOfCustomers(this.ds, customerIds);
    const grouped = new Map<string, Identity[]>();
    for (const r of rows) {
      const list = grouped.get(r.customer_id) ?? [];
      list.push(toIdentity(viewer, r.kind, r.network, r.value, r.source));
      grouped.set(r.customer_id, list);
    }
    return customerIds.map((id) => grouped.get(id) ?? []);
  }
}

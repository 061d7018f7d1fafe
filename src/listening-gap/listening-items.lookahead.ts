import type { ResolveTree } from 'graphql-parse-resolve-info';
import { CUSTOMER_FIELD_COLUMNS, INTERACTION_FIELD_COLUMNS } from '../customers/customer-page.lookahead';
import { connectionNodeFields, lookahead, selectedColumns, type ColumnMap } from '../graphql/lookahead';
import type { ItemPrefetch } from './listening-gap.repository';

/**
 * The columns the selections of one field of the items (all its aliases and fragments together)
 * read; null: every column; undefined: the field is not selected.
 */
function columnsOf(items: ResolveTree[], field: string, type: string, map: ColumnMap): Set<string> | null | undefined {
  const selected = items.filter((f) => f.name === field);
  if (selected.length === 0) return undefined;
  const columns = new Set<string>();
  for (const f of selected) if (!selectedColumns(f.fieldsByTypeName, type, map, columns)) return null;
  return columns;
}

/**
 * What a page of listening items (`openItems`, `listeningItems`) selects below each item that
 * the page's own statement can fetch: the customer, the opening and the latest interaction, with the columns
 * their selected fields read. Neither field takes arguments, so aliases and fragments only add
 * columns. The item's field resolvers (./listening-gap.resolver.ts) use what was prefetched and
 * load through the DataLoaders whatever was not (an item reached another way).
 */
export const listeningItemsSelection = lookahead((root: ResolveTree | null): ItemPrefetch => {
  if (!root) return {};
  const items = connectionNodeFields(root, 'ListeningItem');
  const prefetch: ItemPrefetch = {};
  const customer = columnsOf(items, 'customer', 'Customer', CUSTOMER_FIELD_COLUMNS);
  if (customer !== undefined) prefetch.customer = customer;
  for (const field of ['interaction', 'lastInteraction'] as const) {
    const columns = columnsOf(items, field, 'Interaction', INTERACTION_FIELD_COLUMNS);
    if (columns !== undefined) prefetch[field] = columns;
  }
  return prefetch;
});

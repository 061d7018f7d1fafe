import type { ResolveTree } from 'graphql-parse-resolve-info';
import { CUSTOMER_FIELD_COLUMNS, INTERACTION_FIELD_COLUMNS } from '../customers/customer-page.lookahead';
import { connectionNodeFields, fieldsOf, lookahead, selectedColumns, type ColumnMap } from '../graphql/lookahead';
import type { ItemPrefetch } from './listening-gap.repository';

/**
 * The item columns (ItemRow's, src/listening-gap/listening-gap.repository.ts) each field of
 * `ListeningItem` resolves from (toItem and ./listening-gap.resolver.ts); a field not listed here
 * makes the page read every column.
 */
const ITEM_FIELD_COLUMNS: ColumnMap = {
  __typename: [],
  id: ['id'],
  status: ['status'],
  channel: ['source'],
  department: ['department'],
  topicDepartment: ['topic_department'],
  assignedUser: ['assigned_user'],
  intent: ['intent'],
  sentimentScore: ['sentiment_score'],
  openedAt: ['opened_at'],
  lastOpenedAt: ['last_opened_at'],
  slaSeconds: ['sla_seconds'],
  dueAt: ['due_at'],
  overdue: ['status', 'due_at', 'now_ms'],
  ageSeconds: ['last_opened_at', 'now_ms'],
  urgency: ['urgency'],
  firstResponseAt: ['first_response_at'],
  firstResponseSeconds: ['first_response_seconds'],
  respondedBy: ['responded_by'],
  closedAt: ['closed_at'],
  closeReason: ['close_reason'],
  reopenedCount: ['reopened_count'],
  escalation: ['escalated_at', 'escalation_system', 'escalation_case_id', 'escalation_case_url'],
  history: ['id'],
  customer: ['customer_id'],
  interaction: ['interaction_id'],
  lastInteraction: ['last_interaction_id'],
};

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

/** The item columns the nodes of a connection read (null: every column). */
function itemColumns(connection: ResolveTree): Set<string> | null {
  const columns = new Set<string>();
  for (const node of fieldsOf(connection.fieldsByTypeName).filter((f) => f.name === 'edges').flatMap((e) => fieldsOf(e.fieldsByTypeName).filter((f) => f.name === 'node'))) {
    if (!selectedColumns(node.fieldsByTypeName, 'ListeningItem', ITEM_FIELD_COLUMNS, columns)) return null;
  }
  return columns;
}

/**
 * What a page of listening items (`openItems`, `listeningItems`) selects below each item that
 * the page's own statement can fetch: the item's own columns its selected fields read, and the
 * customer, the opening and the latest interaction, with the columns their selected fields read. Neither field takes arguments, so aliases and fragments only add
 * columns. The item's field resolvers (./listening-gap.resolver.ts) use what was prefetched and
 * load through the DataLoaders whatever was not (an item reached another way).
 */
export const listeningItemsSelection = lookahead((root: ResolveTree | null): ItemPrefetch => {
  if (!root) return {};
  const items = connectionNodeFields(root, 'ListeningItem');
  const prefetch: ItemPrefetch = { columns: itemColumns(root) };
  const customer = columnsOf(items, 'customer', 'Customer', CUSTOMER_FIELD_COLUMNS);
  if (customer !== undefined) prefetch.customer = customer;
  for (const field of ['interaction', 'lastInteraction'] as const) {
    const columns = columnsOf(items, field, 'Interaction', INTERACTION_FIELD_COLUMNS);
    if (columns !== undefined) prefetch[field] = columns;
  }
  return prefetch;
});

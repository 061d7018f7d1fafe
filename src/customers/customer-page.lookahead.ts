import type { ResolveTree } from 'graphql-parse-resolve-info';
import { keyset, type Window } from '../graphql/keyset';
import { connectionNodeFields, lookahead, selectedColumns, type ColumnMap } from '../graphql/lookahead';
import { InteractionOrder, INTERACTION_ORDERS } from '../interactions/interaction.service';

/** What `customers` selects below each customer, as far as the page's own statement can fetch it. */
export interface PageSelection {
  identities: boolean;
  /** null: not selected, selected more than once (aliases), or with arguments its own resolver refuses */
  interactions: { window: Window; order: InteractionOrder; columns: ReadonlySet<string> | null } | null;
}

/**
 * The interaction columns each field of `Interaction` resolves from (toInteraction and the field
 * resolvers of src/interactions/interaction.resolver.ts). A field not listed here (a new one)
 * makes the page read every column.
 */
export const INTERACTION_FIELD_COLUMNS: ColumnMap = {
  __typename: [],
  id: ['id'],
  source: ['source'],
  externalId: ['external_id'],
  url: ['url'],
  text: ['text'],
  occurredAt: ['occurred_at'],
  direction: ['direction'],
  inReplyTo: ['in_reply_to'],
  author: ['source', 'author_handle', 'author_display_name'],
  lang: ['lang'],
  rating: ['rating'],
  intent: ['intent'],
  intentConfidence: ['intent_confidence'],
  complaint: ['complaint'],
  complaintProbability: ['complaint_probability'],
  unhappy: ['unhappy'],
  customer: ['customer_id'],
  topics: ['id'],
  sentiment: {
    type: 'InteractionSentiment',
    fields: {
      __typename: [],
      score: ['sentiment_score'],
      label: ['sentiment_label'],
      confidence: ['sentiment_confidence'],
      explanation: ['explanation'],
      model: ['sentiment_model'],
    },
  },
};

/** An interactions connection: only its nodes read columns. */
const INTERACTION_CONNECTION_COLUMNS: ColumnMap = {
  __typename: [],
  totalCount: [],
  pageInfo: [],
  edges: { type: 'InteractionEdge', fields: { __typename: [], cursor: [], node: { type: 'Interaction', fields: INTERACTION_FIELD_COLUMNS } } },
};

/**
 * The customer columns (CustomerService's CUSTOMER_COLUMNS) each field of `Customer` resolves
 * from (toCustomer and the field resolvers of ./customer.resolver.ts); a field not listed here
 * makes a prefetch read every column.
 */
export const CUSTOMER_FIELD_COLUMNS: ColumnMap = {
  __typename: [],
  id: ['id'],
  displayName: ['display_name'],
  createdAt: ['created_at'],
  sentiment: ['sentiment_score', 'sentiment_label', 'interaction_count', 'sentiment_trend', 'last_interaction_at'],
  identities: ['id'],
  crmRecords: ['id'],
  interactions: ['id'],
};

/**
 * Reads the selection of a `customers` field ahead of its resolvers (graphql-parse-resolve-info:
 * fragments, aliases, variables and skip/include resolved as graphql-js resolves them). Whatever
 * it answers, correctness does not depend on it: a customer's field resolvers use what was
 * prefetched only when it was fetched for exactly their arguments, and load it otherwise.
 */
export const customerPageSelection = lookahead(readSelection);

function readSelection(root: ResolveTree | null): PageSelection {
  const none: PageSelection = { identities: false, interactions: null };
  if (!root) return none;
  const customers = connectionNodeFields(root, 'Customer');
  const interactions = customers.filter((f) => f.name === 'interactions');
  const selection: PageSelection = { identities: customers.some((f) => f.name === 'identities'), interactions: null };
  if (interactions.length !== 1) return selection;
  const field = interactions[0]!;
  const args = field.args as { first?: number | null; after?: string | null; last?: number | null; before?: string | null; order?: InteractionOrder | null };
  const window: Window = { first: args.first ?? null, after: args.after ?? null, last: args.last ?? null, before: args.before ?? null };
  const order = args.order ?? InteractionOrder.NEWEST;
  if (!INTERACTION_ORDERS[order]) return selection;
  // a cursor is one customer's (its list's owner), accepted on that list alone: the loader pages
  // it, and refuses it on the others
  if (window.after || window.before) return selection;
  try {
    // arguments the field's own resolver would refuse are left to it, so the error stays on that field
    keyset(INTERACTION_ORDERS[order], 'i.id', window, []);
  } catch {
    return selection;
  }
  selection.interactions = { window, order, columns: selectedColumns(field.fieldsByTypeName, 'InteractionConnection', INTERACTION_CONNECTION_COLUMNS) };
  return selection;
}

import type { FieldNode, GraphQLResolveInfo } from 'graphql';
import { parseResolveInfo, type FieldsByTypeName, type ResolveTree } from 'graphql-parse-resolve-info';
import { keyset, type Window } from '../graphql/keyset';
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
const INTERACTION_FIELD_COLUMNS: Record<string, readonly string[]> = {
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
};
const SENTIMENT_FIELD_COLUMNS: Record<string, readonly string[]> = {
  __typename: [],
  score: ['sentiment_score'],
  label: ['sentiment_label'],
  confidence: ['sentiment_confidence'],
  explanation: ['explanation'],
  model: ['sentiment_model'],
};

/** The columns the selection below an interactions connection reads, or null when it cannot tell (then all). */
function interactionColumns(connection: ResolveTree): Set<string> | null {
  const columns = new Set<string>();
  for (const [type, fields] of Object.entries(connection.fieldsByTypeName)) {
    if (type !== 'InteractionConnection') return null;
    for (const f of Object.values(fields)) {
      if (f.name !== 'edges') continue;
      for (const [edgeType, edgeFields] of Object.entries(f.fieldsByTypeName)) {
        if (edgeType !== 'InteractionEdge') return null;
        for (const n of Object.values(edgeFields)) {
          if (n.name !== 'node') continue;
          for (const [nodeType, nodeFields] of Object.entries(n.fieldsByTypeName)) {
            if (nodeType !== 'Interaction') return null;
            for (const field of Object.values(nodeFields)) {
              if (field.name === 'sentiment') {
                for (const [sType, sFields] of Object.entries(field.fieldsByTypeName)) {
                  if (sType !== 'InteractionSentiment') return null;
                  for (const sf of Object.values(sFields)) {
                    const cols = SENTIMENT_FIELD_COLUMNS[sf.name];
                    if (!cols) return null;
                    for (const c of cols) columns.add(c);
                  }
                }
                continue;
              }
              const cols = INTERACTION_FIELD_COLUMNS[field.name];
              if (!cols) return null;
              for (const c of cols) columns.add(c);
            }
          }
        }
      }
    }
  }
  return columns;
}

function fieldsOf(tree: FieldsByTypeName, typeName?: string): ResolveTree[] {
  const out: ResolveTree[] = [];
  for (const [type, fields] of Object.entries(tree)) if (!typeName || type === typeName) out.push(...Object.values(fields));
  return out;
}

/**
 * Reads the selection of a `customers` field ahead of its resolvers (graphql-parse-resolve-info:
 * fragments, aliases, variables and skip/include resolved as graphql-js resolves them). Whatever
 * it answers, correctness does not depend on it: a customer's field resolvers use what was
 * prefetched only when it was fetched for exactly their arguments, and load it otherwise.
 */
export function customerPageSelection(info: GraphQLResolveInfo): PageSelection {
  // without variables the answer depends on the parsed document alone, which Apollo's document
  // cache hands back for every run of the same query: read once per field node
  const node = info.fieldNodes[0]!;
  const reusable = info.fieldNodes.length === 1 && Object.keys(info.variableValues).length === 0;
  const known = reusable ? readAhead.get(node) : undefined;
  if (known) return known;
  const selection = readSelection(info);
  if (reusable) readAhead.set(node, selection);
  return selection;
}

const readAhead = new WeakMap<FieldNode, PageSelection>();

function readSelection(info: GraphQLResolveInfo): PageSelection {
  const none: PageSelection = { identities: false, interactions: null };
  const root = parseResolveInfo(info) as ResolveTree | null;
  if (!root) return none;
  const customers = fieldsOf(root.fieldsByTypeName)
    .filter((f) => f.name === 'edges')
    .flatMap((e) => fieldsOf(e.fieldsByTypeName).filter((f) => f.name === 'node'))
    .flatMap((n) => fieldsOf(n.fieldsByTypeName, 'Customer'));
  const interactions = customers.filter((f) => f.name === 'interactions');
  const selection: PageSelection = { identities: customers.some((f) => f.name === 'identities'), interactions: null };
  if (interactions.length !== 1) return selection;
  const field = interactions[0]!;
  const args = field.args as { first?: number | null; after?: string | null; last?: number | null; before?: string | null; order?: InteractionOrder | null };
  const window: Window = { first: args.first ?? null, after: args.after ?? null, last: args.last ?? null, before: args.before ?? null };
  const order = args.order ?? InteractionOrder.NEWEST;
  if (!INTERACTION_ORDERS[order]) return selection;
  try {
    // arguments the field's own resolver would refuse are left to it, so the error stays on that field
    keyset(INTERACTION_ORDERS[order], 'i.id', window, []);
  } catch {
    return selection;
  }
  selection.interactions = { window, order, columns: interactionColumns(field) };
  return selection;
}

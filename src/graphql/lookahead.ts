import type { FieldNode, GraphQLResolveInfo } from 'graphql';
import { parseResolveInfo, type FieldsByTypeName, type ResolveTree } from 'graphql-parse-resolve-info';
import { aliasesObjectMember } from './prototype-names';

/**
 * Reading a field's selection ahead of its resolvers (graphql-parse-resolve-info: fragments,
 * aliases, variables and skip/include resolved as graphql-js resolves them), so that a list's own
 * statement can fetch what its nodes' fields will ask for. Whatever a look-ahead answers,
 * correctness must not depend on it: a field uses what was prefetched only when it was fetched
 * for exactly what the field needs, and loads it otherwise.
 */

/** The fields selected on `typeName` (on any type when omitted), across fragments and aliases. */
export function fieldsOf(tree: FieldsByTypeName, typeName?: string): ResolveTree[] {
  const out: ResolveTree[] = [];
  for (const [type, fields] of Object.entries(tree)) if (!typeName || type === typeName) out.push(...Object.values(fields));
  return out;
}

/** The fields selected on the nodes of a connection (`edges { node { … } }`) of `nodeType`. */
export function connectionNodeFields(connection: ResolveTree, nodeType: string): ResolveTree[] {
  return fieldsOf(connection.fieldsByTypeName)
    .filter((f) => f.name === 'edges')
    .flatMap((e) => fieldsOf(e.fieldsByTypeName).filter((f) => f.name === 'node'))
    .flatMap((n) => fieldsOf(n.fieldsByTypeName, nodeType));
}

/** The columns each field of a type resolves from; a field of an object type maps to that type's own map. */
export interface ColumnMap {
  readonly [field: string]: readonly string[] | { readonly type: string; readonly fields: ColumnMap };
}

/**
 * The columns a selection on `type` reads, by `map`, added to `into`; null (read every column)
 * when it selects a field the map does not know (a new one) or fields on another type (an
 * interface's fragment).
 */
export function selectedColumns(tree: FieldsByTypeName, type: string, map: ColumnMap, into = new Set<string>()): Set<string> | null {
  for (const [t, fields] of Object.entries(tree)) {
    if (t !== type) return null;
    for (const f of Object.values(fields)) {
      const m = map[f.name];
      if (!m) return null;
      if (Array.isArray(m)) for (const c of m as readonly string[]) into.add(c);
      else if (!selectedColumns(f.fieldsByTypeName, (m as { type: string }).type, (m as { fields: ColumnMap }).fields, into)) return null;
    }
  }
  return into;
}

/**
 * A look-ahead over a field's parsed selection (null when graphql-parse-resolve-info finds none).
 * Without variables the answer depends on the parsed document alone, which Apollo's document
 * cache hands back for every run of the same query: it is read once per field node.
 */
export function lookahead<T>(read: (selection: ResolveTree | null) => T): (info: GraphQLResolveInfo) => T {
  const known = new WeakMap<FieldNode, T>();
  return (info) => {
    const node = info.fieldNodes[0]!;
    const reusable = info.fieldNodes.length === 1 && Object.keys(info.variableValues).length === 0;
    if (reusable && known.has(node)) return known.get(node)!;
    // graphql-parse-resolve-info keys its tree by alias in plain objects: a field aliased
    // `constructor` or `toString` was left out of it, and the page read too few columns for it (a
    // non-null field then failed the whole answer, a nullable one answered null). Such a
    // selection gets no look-ahead: its fields load what they need themselves.
    const answer = aliasesObjectMember(info.fieldNodes.map((f) => f.selectionSet), info.fragments) ? read(null) : read(parseResolveInfo(info) as ResolveTree | null);
    if (reusable) known.set(node, answer);
    return answer;
  };
}

import {
  buildClientSchema,
  getIntrospectionQuery,
  getNamedType,
  isEnumType,
  isInterfaceType,
  isLeafType,
  isNonNullType,
  isObjectType,
  isUnionType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type IntrospectionQuery,
} from 'graphql';

/** The running server's schema, read as a client reads it (introspection). */
export async function fetchSchema(url: string, headers: Record<string, string>): Promise<GraphQLSchema> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query: getIntrospectionQuery() }),
  });
  const body = (await res.json()) as { data: IntrospectionQuery };
  return buildClientSchema(body.data);
}

/** Values for arguments, by field and argument name; each list is tried in turn. */
export type ArgValues = (field: string, arg: GraphQLArgument) => unknown[] | undefined;

/**
 * The selection of every scalar leaf under `type`, `depth` levels down. Fields with arguments
 * get `first` (when they take one) and any required argument `args` knows; a field whose
 * required argument is unknown is left out and reported in `skipped`.
 */
export function selectAll(schema: GraphQLSchema, type: GraphQLNamedType, depth: number, args: ArgValues, skipped: Set<string>, aliasPrefix = ''): string {
  if (isLeafType(type)) return '';
  if (depth <= 0) return '__typename';
  if (isInterfaceType(type) || isUnionType(type)) {
    // aliased per type: two types' fields of one name may differ in type, which GraphQL refuses to merge
    const parts = schema.getPossibleTypes(type).map((t) => `... on ${t.name} { ${selectAll(schema, t, depth, args, skipped, `${t.name}_`)} }`);
    return `__typename ${parts.join(' ')}`;
  }
  if (!isObjectType(type)) return '__typename';
  const parts: string[] = ['__typename'];
  for (const f of Object.values(type.getFields())) {
    const call = argumentsOf(f, args, skipped, type.name);
    if (call === null) continue;
    const named = getNamedType(f.type);
    const name = aliasPrefix ? `${aliasPrefix}${f.name}: ${f.name}` : f.name;
    if (isLeafType(named)) parts.push(`${name}${call}`);
    else parts.push(`${name}${call} { ${selectAll(schema, named, depth - 1, args, skipped)} }`);
  }
  return parts.join(' ');
}

/** A value as a GraphQL literal (input objects have unquoted keys). */
function literal(v: unknown, enumArg: boolean): string {
  if (enumArg && typeof v === 'string') return v;
  if (Array.isArray(v)) return `[${v.map((x) => literal(x, false)).join(', ')}]`;
  if (v !== null && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${k}: ${literal(x, false)}`).join(', ')}}`;
  return JSON.stringify(v);
}

function argumentsOf(f: GraphQLField<unknown, unknown>, args: ArgValues, skipped: Set<string>, parent: string): string | null {
  const out: string[] = [];
  for (const a of f.args) {
    const given = args(f.name, a)?.[0];
    if (given !== undefined) out.push(`${a.name}: ${literal(given, isEnumType(getNamedType(a.type)))}`);
    else if (isNonNullType(a.type) && a.defaultValue === undefined) {
      skipped.add(`${parent}.${f.name}(${a.name})`);
      return null;
    }
  }
  return out.length ? `(${out.join(', ')})` : '';
}

/**
 * One query per root field and per combination of its required arguments' candidate values,
 * each selecting every scalar leaf to `depth`.
 */
export function queriesForEveryRootField(schema: GraphQLSchema, depth: number, args: ArgValues, nested: ArgValues): { field: string; query: string }[] {
  const root = schema.getQueryType()!;
  const out: { field: string; query: string }[] = [];
  const skipped = new Set<string>();
  for (const f of Object.values(root.getFields())) {
    // every combination of the candidate values of each argument that has candidates
    let combos: Record<string, unknown>[] = [{}];
    for (const a of f.args) {
      const values = args(f.name, a);
      if (!values || values.length === 0) {
        if (isNonNullType(a.type) && a.defaultValue === undefined) throw new Error(`no value for the required argument ${f.name}(${a.name})`);
        continue;
      }
      combos = combos.flatMap((c) => values.map((v) => ({ ...c, [a.name]: v })));
    }
    for (const c of combos) {
      const call = Object.keys(c).length
        ? `(${Object.entries(c).map(([k, v]) => `${k}: ${literal(v, isEnumType(getNamedType(f.args.find((a) => a.name === k)!.type)))}`).join(', ')})`
        : '';
      const named = getNamedType(f.type);
      const body = isLeafType(named) ? '' : ` { ${selectAll(schema, named, depth, nested, skipped)} }`;
      out.push({ field: f.name, query: `{ ${f.name}${call}${body} }` });
    }
  }
  if (skipped.size > 0) throw new Error(`fields left out for want of argument values: ${[...skipped].join(', ')}`);
  return out;
}

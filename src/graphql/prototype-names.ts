import { Kind, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode } from 'graphql';

/**
 * Names a plain object answers without holding them: `constructor`, `toString`, `valueOf`,
 * `hasOwnProperty`, `__proto__` … GraphQL takes every one of them as an alias or a variable name.
 * Libraries that key a plain object by such a name lose the entry: graphql-parse-resolve-info
 * keys its selection tree by alias (`tree[alias]` already answered, so the field was left out),
 * and graphql-jit writes `{"__proto__": value}` literals and assignments (the value set the
 * prototype, or was dropped).
 */
export function isObjectMemberName(name: string): boolean {
  return name in Object.prototype;
}

/**
 * Whether a field below `sets` (fragment spreads followed through `fragments`) is selected under
 * an alias {@link isObjectMemberName} holds.
 */
export function aliasesObjectMember(sets: readonly (SelectionSetNode | undefined)[], fragments: Readonly<Record<string, FragmentDefinitionNode>>): boolean {
  const stack = sets.filter((s): s is SelectionSetNode => s !== undefined);
  const followed = new Set<string>();
  while (stack.length > 0) {
    for (const s of stack.pop()!.selections) {
      if (s.kind === Kind.FIELD) {
        if (s.alias && isObjectMemberName(s.alias.value)) return true;
        if (s.selectionSet) stack.push(s.selectionSet);
      } else if (s.kind === Kind.INLINE_FRAGMENT) stack.push(s.selectionSet);
      else if (!followed.has(s.name.value)) {
        followed.add(s.name.value);
        const f = Object.hasOwn(fragments, s.name.value) ? fragments[s.name.value] : undefined;
        if (f) stack.push(f.selectionSet);
      }
    }
  }
  return false;
}

/** Whether a document names a variable, or a field's alias, by a name {@link isObjectMemberName} holds. */
export function documentNamesObjectMember(document: DocumentNode): boolean {
  const sets: SelectionSetNode[] = [];
  for (const d of document.definitions) {
    if (d.kind === Kind.OPERATION_DEFINITION) {
      if (d.variableDefinitions?.some((v) => isObjectMemberName(v.variable.name.value))) return true;
      sets.push(d.selectionSet);
    } else if (d.kind === Kind.FRAGMENT_DEFINITION) sets.push(d.selectionSet);
  }
  // every fragment's definition is walked itself: spreads need not be followed
  return aliasesObjectMember(sets, {});
}

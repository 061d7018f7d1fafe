import { isEnumType, isInputObjectType, isInterfaceType, isObjectType, isScalarType, type GraphQLSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createSchema } from './schema';

const BUILT_IN = new Set(['String', 'Int', 'Float', 'Boolean', 'ID']);

function undescribed(schema: GraphQLSchema): { total: number; missing: string[] } {
  const missing: string[] = [];
  let total = 0;
  const check = (name: string, description: string | null | undefined) => {
    total++;
    if (!description?.trim()) missing.push(name);
  };
  for (const t of Object.values(schema.getTypeMap())) {
    if (t.name.startsWith('__') || (isScalarType(t) && BUILT_IN.has(t.name))) continue;
    check(t.name, t.description);
    if (isObjectType(t) || isInterfaceType(t) || isInputObjectType(t)) {
      for (const f of Object.values(t.getFields())) {
        check(`${t.name}.${f.name}`, f.description);
        for (const a of 'args' in f ? f.args : []) check(`${t.name}.${f.name}(${a.name})`, a.description);
      }
    }
    if (isEnumType(t)) for (const v of t.getValues()) check(`${t.name}.${v.name}`, v.description);
  }
  return { total, missing };
}

describe('the GraphQL schema', () => {
  it('describes every type, field, argument and enum value', async () => {
    const { total, missing } = undescribed(await createSchema());
    expect(total).toBeGreaterThan(500);
    expect(missing).toEqual([]);
  });
});

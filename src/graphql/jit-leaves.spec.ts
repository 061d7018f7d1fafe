import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { buildSchema, execute, GraphQLEnumType, parse, type GraphQLSchema } from 'graphql';
import { compileQuery, isCompiledQuery } from 'graphql-jit';
import { describe, expect, it } from 'vitest';
import { GraphQLDateTimeISO } from 'graphql-scalars';

// patches/graphql-jit+0.8.9.patch makes compiled code build a leaf's error location and path only
// when the leaf is null or an Error (they were array literals built for every leaf of every row).
// What must not change: the answer, errors included, is graphql-js's for any mix of good values,
// nulls, Errors and values a serializer refuses, in lists, below nullable and non-null fields.

const schema: GraphQLSchema = buildSchema(`
  scalar DateTimeISO
  enum Mood { HAPPY SAD }
  type Query { rows: [Row!] row: Row }
  type Row { id: ID! n: Int k: Int! mood: Mood! maybeMood: Mood at: DateTimeISO! s: String kids: [Kid] }
  type Kid { s: String! n: Int }
`);
// enum values stored as lower case, as Earshot's are (the serializer maps them to names)
const mood = schema.getType('Mood') as GraphQLEnumType;
for (const v of mood.getValues()) v.value = v.name.toLowerCase();
Object.assign(schema.getType('DateTimeISO')!, { serialize: GraphQLDateTimeISO.serialize.bind(GraphQLDateTimeISO), parseValue: GraphQLDateTimeISO.parseValue.bind(GraphQLDateTimeISO) });

const QUERY = parse(`{ rows { id n k mood maybeMood at s kids { s n } } row { k mood at kids { s } } }`);

/** a leaf's value: good, missing, an Error a resolver returned, or one its serializer refuses */
const leaf = (good: fc.Arbitrary<unknown>, refused: unknown) =>
  fc.oneof(good, fc.constant(null), fc.constant(undefined), fc.constant(new Error('resolver failed')), fc.constant(refused));
const kid = fc.record({ s: leaf(fc.string(), { not: 'a string' }), n: leaf(fc.integer(), 2 ** 40) });
const row = fc.record({
  id: leaf(fc.uuid(), {}),
  n: leaf(fc.integer(), 'many'),
  k: leaf(fc.integer(), 1.5),
  mood: leaf(fc.constantFrom('happy', 'sad'), 'angry'),
  maybeMood: leaf(fc.constantFrom('happy', 'sad'), 'HAPPY'),
  at: leaf(fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }), new Date(Number.NaN)),
  s: leaf(fc.string(), Symbol('x')),
  kids: fc.option(fc.array(fc.option(kid), { maxLength: 3 })),
});
const root = fc.record({ rows: fc.option(fc.array(row, { maxLength: 4 })), row: fc.option(row) });

type Answer = { data?: unknown; errors?: readonly { message: string; path?: readonly (string | number)[]; locations?: unknown }[] };
/** errors as a client reads them: message, path, locations; as JSON, to compare as sets */
const errorsOf = (r: Answer) => (r.errors ?? []).map((e) => JSON.stringify({ message: e.message, path: e.path, locations: e.locations }));
/** whether the answer has null on the way to the field at `path` (its object was nulled) */
function nulledAbove(data: unknown, path: readonly (string | number)[]): boolean {
  let at: unknown = data;
  for (const key of path.slice(0, -1)) {
    if (at == null) return true;
    at = (at as Record<string | number, unknown>)[key];
  }
  return at == null;
}

describe('graphql-jit with the leaf patch', () => {
  it('the patch is applied (npm ci runs patch-package)', () => {
    // compiled code serializes a good leaf directly; the runtime's checks run only for null or an Error
    const generator = readFileSync(require.resolve('graphql-jit/dist/execution.js'), 'utf8');
    expect(generator).toContain('${sourcePath} == null || ${sourcePath} instanceof Error ? ${GLOBAL_RUNTIME_NAME}.checkNonNullLeaf(');
  });

  it('answers as graphql-js does, errors included, for any mix of leaf values', async () => {
    const compiled = compileQuery(schema, QUERY, undefined, { disablingCapturingStackErrors: true });
    if (!isCompiledQuery(compiled)) throw new Error('not compiled');
    await fc.assert(
      fc.asyncProperty(root, async (value) => {
        const reference = (await execute({ schema, document: QUERY, rootValue: value })) as Answer;
        const jitted = (await compiled.query(value, {}, {})) as Answer;
        expect(jitted.data).toEqual(reference.data);
        // every error graphql-js reports, alike; graphql-jit also reports the siblings of a
        // failed non-null field that graphql-js stops at (older than the patch): only there
        const extra = errorsOf(jitted).filter((e) => !errorsOf(reference).includes(e));
        expect(errorsOf(reference).filter((e) => !errorsOf(jitted).includes(e))).toEqual([]);
        for (const e of extra) expect(nulledAbove(jitted.data, (JSON.parse(e) as { path: (string | number)[] }).path)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

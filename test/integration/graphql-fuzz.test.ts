import fc from 'fast-check';
import {
  getNamedType,
  isEnumType,
  isInputObjectType,
  isLeafType,
  isListType,
  isNonNullType,
  isScalarType,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLSchema,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { fetchSchema, selectAll } from '../support/graphql-walk';

// Random arguments for every public query and mutation, as every role and as nobody: Earshot
// may refuse, but never with INTERNAL_SERVER_ERROR or a 5xx, and every refusal carries a code.

const KEYS = {
  admin: 'fuzz-admin-key-0123456789',
  analyst: 'fuzz-analyst-key-0123456789',
  agent: 'fuzz-agent-key-0123456789',
  sales: 'fuzz-sales-key-0123456789',
  service: 'fuzz-service-key-0123456789',
};
type Caller = keyof typeof KEYS | 'nobody';
const CALLERS: Caller[] = [...(Object.keys(KEYS) as (keyof typeof KEYS)[]), 'nobody'];
const SEED = 20261130;
const RUNS_PER_FIELD = 40;

const UUID = fc.uuid();
const KINDS = ['Customer', 'Interaction', 'MergeSuggestion', 'ListeningItem', 'Nope', ''];
const b64 = (s: string) => Buffer.from(s).toString('base64url');

/** Strings people and attackers send: plain, control characters, lone surrogates, SQL and regex specials, long. */
const nastyString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', ' ', '\u0000', '\ud800', 'a\udfffb', "'; DROP TABLE customer; --", '%_\\', '(((', '.*', '${x}', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59-14:00', 'NaN', '-0', '1e309'),
  fc.string({ minLength: 150, maxLength: 400 }),
);

function idArbitrary(ids: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    nastyString,
    fc.tuple(fc.constantFrom(...KINDS), UUID).map(([k, u]) => b64(`${k}:${u}`)),
    fc.tuple(fc.constantFrom(...KINDS), nastyString).map(([k, s]) => b64(`${k}:${s}`)),
    ...(ids.length ? [fc.constantFrom(...ids)] : []),
  );
}

// mostly well-formed cursors with a forged sort key: the kind that reaches SQL
const cursorArbitrary = fc.oneof(
  nastyString,
  fc.tuple(nastyString, UUID).map((t) => b64(JSON.stringify(t))),
  fc.tuple(nastyString, UUID).map((t) => b64(JSON.stringify(t))),
  fc.tuple(fc.oneof(nastyString, fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.integer().map(String)), fc.oneof(UUID, nastyString)).map((t) => b64(JSON.stringify(t))),
  fc.jsonValue({ maxDepth: 2 }).map((v) => b64(JSON.stringify(v))),
);

const dateArbitrary = fc.oneof(
  fc.date({ min: new Date('1900-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom('0000-01-01T00:00:00Z', '9999-12-31T23:59:59-14:00', '2026-02-30T00:00:00Z', 'yesterday', '', '2026-11-30'),
);

/** A value for an input type; sometimes null, sometimes of the wrong type on purpose. */
function valueOf(schema: GraphQLSchema, type: GraphQLInputType, name: string, ids: string[], depth = 0): fc.Arbitrary<unknown> {
  // mostly well-typed, so that most runs get past GraphQL's own checks into Earshot's code
  if (isNonNullType(type)) return fc.oneof({ weight: 19, arbitrary: valueOf(schema, type.ofType, name, ids, depth) }, { weight: 1, arbitrary: fc.constant(null) });
  if (isListType(type)) return fc.array(valueOf(schema, type.ofType, name, ids, depth + 1), { maxLength: depth > 1 ? 1 : 3 });
  const wrong = fc.oneof(fc.constant(null), fc.integer(), fc.boolean(), fc.string({ maxLength: 5 }), fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 2 }));
  let right: fc.Arbitrary<unknown>;
  if (isEnumType(type)) right = fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...type.getValues().map((v) => v.name)) }, { weight: 1, arbitrary: fc.string({ maxLength: 10 }) });
  else if (isInputObjectType(type)) {
    const fields = Object.values(type.getFields());
    right = depth > 3 ? fc.constant({}) : fc.record(Object.fromEntries(fields.map((f) => [f.name, valueOf(schema, f.type, f.name, ids, depth + 1)])), { requiredKeys: fields.filter((f) => isNonNullType(f.type)).map((f) => f.name) });
  } else if (isScalarType(type)) {
    switch (type.name) {
      case 'Int':
        right = name === 'first'
          ? fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 100 }) }, { weight: 2, arbitrary: fc.constantFrom(-1, 101, 2 ** 31 - 1, -(2 ** 31)) })
          : fc.oneof(fc.integer(), fc.constantFrom(0, -1, 2 ** 31 - 1));
        break;
      case 'Float':
        right = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(0, -1, 1e308, -1e-308));
        break;
      case 'Boolean':
        right = fc.boolean();
        break;
      case 'ID':
        right = idArbitrary(ids);
        break;
      case 'DateTimeISO':
        right = dateArbitrary;
        break;
      case 'JSONObject':
        right = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 });
        break;
      default:
        right = name === 'after' ? cursorArbitrary : nastyString;
    }
  } else right = fc.constant(null);
  return fc.oneof({ weight: 19, arbitrary: right }, { weight: 1, arbitrary: wrong });
}

function operationFor(schema: GraphQLSchema, kind: 'query' | 'mutation', f: GraphQLField<unknown, unknown>): string {
  const vars = f.args.map((a) => `$${a.name}: ${a.type.toString()}`).join(', ');
  const call = f.args.length ? `(${f.args.map((a) => `${a.name}: $${a.name}`).join(', ')})` : '';
  const named = getNamedType(f.type);
  const skipped = new Set<string>();
  const body = isLeafType(named) ? '' : ` { ${selectAll(schema, named, 2, (_field, arg) => (arg.name === 'first' ? [2] : undefined), skipped)} }`;
  return `${kind} Fuzz${vars ? `(${vars})` : ''} { ${f.name}${call}${body} }`;
}

describe('GraphQL input fuzz (fast-check, fixed seed)', () => {
  let app: TestApp;
  let schema: GraphQLSchema;
  let ids: string[] = [];
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: Object.entries(KEYS).map(([role, key]) => `${key}:${role}`).join(','), EARSHOT_GAP_ESCALATION: 'off' }, 'fuzz');
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', 'x-api-key': KEYS.admin },
      body: ndjson(Array.from({ length: 12 }, (_, n) => message(n, { author: { handle: `fuzz${n % 4}`, email: `fuzz${n % 4}@example.com` } }))),
    });
    expect(res.status).toBe(200);
    schema = await fetchSchema(app.url, { 'x-api-key': KEYS.admin });
    const r = await app.gql<{ customers: { edges: { node: { id: string } }[] }; interactions: { edges: { node: { id: string } }[] }; openItems: { edges: { node: { id: string } }[] } }>(
      '{ customers(first: 10) { edges { node { id } } } interactions(first: 10) { edges { node { id } } } openItems(first: 10) { edges { node { id } } } }', undefined, { 'x-api-key': KEYS.admin },
    );
    ids = [...r.data.customers.edges, ...r.data.interactions.edges, ...r.data.openItems.edges].map((e) => e.node.id);
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  const fields = (): { kind: 'query' | 'mutation'; field: GraphQLField<unknown, unknown> }[] => [
    ...Object.values(schema.getQueryType()!.getFields()).map((field) => ({ kind: 'query' as const, field })),
    ...Object.values(schema.getMutationType()!.getFields()).map((field) => ({ kind: 'mutation' as const, field })),
  ];

  it('never answers INTERNAL_SERVER_ERROR or 5xx, and every error has a code', async () => {
    const seen: string[] = [];
    for (const { kind, field } of fields()) {
      const query = operationFor(schema, kind, field);
      const variables = fc.record(Object.fromEntries(field.args.map((a) => [a.name, valueOf(schema, a.type, a.name, ids)])));
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...CALLERS), variables, async (caller, vars) => {
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (caller !== 'nobody') headers['x-api-key'] = KEYS[caller];
          const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables: vars }) });
          const text = await res.text();
          const what = `${caller} ${field.name} ${JSON.stringify(vars).slice(0, 300)} → ${res.status} ${text.slice(0, 300)}`;
          expect(res.status, what).toBeLessThan(500);
          const body = JSON.parse(text) as { errors?: { extensions?: { code?: string } }[] };
          for (const e of body.errors ?? []) {
            expect(e.extensions?.code, what).toBeTypeOf('string');
            expect(e.extensions?.code, what).not.toBe('INTERNAL_SERVER_ERROR');
          }
        }),
        { seed: SEED, numRuns: RUNS_PER_FIELD, endOnFailure: true },
      );
      seen.push(field.name);
    }
    expect(seen.length).toBe(fields().length);
    console.info(`graphql-fuzz: ${seen.length} operations × ${RUNS_PER_FIELD} runs, seed ${SEED}`);
  }, 600_000);
});

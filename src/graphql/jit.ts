import type { GatewayExecutor, GatewayInterface } from '@apollo/server-gateway-interface';
import { execute, getVariableValues, GraphQLError, type DocumentNode, type ExecutionResult, type GraphQLSchema, type SourceLocation } from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import { installGatewayRequestContext } from './gateway-request-context';
import { documentNamesObjectMember } from './prototype-names';

/** documents seen once are run by graphql-js; compiled from the second time on */
const SEEN_ONCE = 'seen-once';

/**
 * Runs queries and mutations with graphql-jit, which compiles an operation into one function
 * (no per-field argument maps, resolve infos or promise bookkeeping of graphql-js): about a
 * quarter of busy time on the customer page went to graphql-js's own execution.
 *
 * Apollo takes another executor only through its gateway interface, so this is a "gateway"
 * that serves the one schema it was given: Apollo still parses, validates (its document cache),
 * runs every plugin hook but `willResolveField` (none of ours has one), formats errors and
 * serializes. What must stay true:
 * - the same answers and errors as graphql-js: variables are coerced by graphql-js first (the
 *   same messages, the same 400), and anything graphql-jit cannot compile, subscriptions, and
 *   a document's first run go through graphql-js `execute`;
 * - compiled operations are held per parsed document (a WeakMap): Apollo's bounded document
 *   cache decides how many live, and a document evicted from it takes its compiled code along.
 *
 * patches/graphql-jit+0.8.9.patch (applied by patch-package on npm ci): graphql-jit 0.8.9 builds
 * every leaf's error location and response path as array literals on every call, and uses them
 * only when the value is null or an Error; the patched code builds them only then. The customer
 * page allocated 1.30 MB per request before, 0.87 MB after, and took 7% less CPU (see README).
 * src/graphql/jit-leaves.spec.ts holds the answers, errors included, to graphql-js's.
 */
/**
 * graphql-jit's errors only look like graphql-js's (no `extensions` object when the cause has
 * none, which Apollo's error formatting reads): the same error as graphql-js would raise it.
 */
function asGraphqlJsError(e: GraphQLError): GraphQLError {
  const error = new GraphQLError(e.message, { path: e.path, originalError: e.originalError ?? undefined });
  (error as { locations?: readonly SourceLocation[] }).locations = e.locations;
  return error;
}

export function jitGateway(schema: GraphQLSchema): GatewayInterface {
  // without it, Apollo's gateway request context kept every request alive until a full GC
  installGatewayRequestContext();
  const compiled = new WeakMap<DocumentNode, Map<string, CompiledQuery | typeof SEEN_ONCE | null>>();
  const executor: GatewayExecutor = async (rc) => {
    const { document, operation, request } = rc;
    const variables = request.variables ?? {};
    const viaGraphqlJs = (operationName = rc.operationName) => execute({ schema, document, contextValue: rc.context, variableValues: variables, operationName }) as Promise<ExecutionResult>;
    // no operation resolved: `rc.operationName` is the resolved one's name (null), so graphql-js
    // ran the document's only operation and Apollo answered a 500 ("did not resolve an operation
    // but execute did not return errors"); with the name the client sent, graphql-js refuses it
    if (!operation) return viaGraphqlJs(request.operationName ?? null);
    if (operation.operation === 'subscription') return viaGraphqlJs();
    let byName = compiled.get(document);
    if (!byName) compiled.set(document, (byName = new Map()));
    const name = rc.operationName ?? '';
    const known = byName.get(name);
    if (known === undefined) {
      byName.set(name, SEEN_ONCE);
      return viaGraphqlJs();
    }
    let query = known;
    if (query === SEEN_ONCE) {
      // graphql-jit keeps variables and answers in plain objects: a `$__proto__` variable was
      // read as absent, a `__proto__:` alias left out of the answer. graphql-js runs such documents.
      const result = documentNamesObjectMember(document) ? null : compileQuery(schema, document, rc.operationName ?? undefined, { disablingCapturingStackErrors: true });
      query = result !== null && isCompiledQuery(result) ? result : null;
      byName.set(name, query);
    }
    if (query === null) return viaGraphqlJs();
    if (operation.variableDefinitions?.length) {
      const coerced = getVariableValues(schema, operation.variableDefinitions, variables, { maxErrors: 50 });
      if (coerced.errors) return { errors: coerced.errors };
    }
    const { query: runCompiled } = query; // graphql-jit's compiled entry point (not SQL)
    const result = (await runCompiled.call(query, undefined, rc.context, variables)) as ExecutionResult;
    return result.errors ? { ...result, errors: result.errors.map(asGraphqlJsError) } : result;
  };
  let onLoad: ((c: { apiSchema: GraphQLSchema; coreSupergraphSdl: string }) => void) | null = null;
  return {
    onSchemaLoadOrUpdate(callback) {
      onLoad = callback;
      return () => {
        onLoad = null;
      };
    },
    async load() {
      onLoad?.({ apiSchema: schema, coreSupergraphSdl: '' });
      return { executor };
    },
    async stop() {},
  };
}

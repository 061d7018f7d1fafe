import type { ApolloServerPlugin } from '@apollo/server';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { getOperationAST, getVariableValues, GraphQLError, isListType, isNonNullType, isObjectType, type DocumentNode, type GraphQLFieldResolver, type GraphQLOutputType, type GraphQLSchema, type ValidationContext, type ValidationRule } from 'graphql';
import { getComplexity, type ComplexityEstimator } from 'graphql-query-complexity';
import type { GraphqlConfig } from '../config/config';
import { AppError } from '../shared/app-error';
import { requestContext } from '../shared/request-context';
import type { GraphQLContext } from './context';
import { DEFAULT_PAGE_SIZE } from './relay';

/** extensions.code of every operation refused for its cost, before any resolver runs */
export const COST_LIMIT_CODE = 'COST_LIMIT_EXCEEDED';
/** assumed length of a list field without `first` */
export const UNPAGED_LIST_SIZE = 10;
/** cost of one analyzeText call beside its text: scoring is the most expensive thing a query can ask */
export const ANALYZE_TEXT_COST = 50;

function costError(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: COST_LIMIT_CODE } });
}

/** Depth and alias limits as validation rules: refused in validation, before variables are coerced or any resolver runs. */
export function costValidationRules(config: GraphqlConfig): ValidationRule[] {
  const report = (what: string) => (ctx: ValidationContext | null, err: GraphQLError) =>
    ctx?.reportError(costError(`${err.message.replace(/^Syntax Error: /, '')} (${what})`));
  return [
    maxDepthRule({ n: config.maxDepth, propagateOnRejection: false, onReject: [report('EARSHOT_GRAPHQL_MAX_DEPTH')] }),
    maxAliasesRule({ n: config.maxAliases, propagateOnRejection: false, onReject: [report('EARSHOT_GRAPHQL_MAX_ALIASES')] }),
  ];
}

function unwrapList(type: GraphQLOutputType): boolean {
  return isListType(isNonNullType(type) ? type.ofType : type);
}

/** What one walk over an operation adds up beside its cost. */
interface EstimateState {
  analyzeBytes: number;
  /** the first argument value PostgreSQL cannot take, if any: where (`field(path)`) and why */
  unstorable: { at: string; why: string } | null;
}

/**
 * Fields that check the text and dates they are handed themselves: ingestInteractions rejects a
 * line with its reason (as /ingest does), analyzeText stores nothing.
 */
const CHECK_THEIR_OWN: ReadonlySet<string> = new Set(['ingestInteractions', 'analyzeText']);

const NUL = 'contains a NUL character (\\u0000), which cannot be stored or searched for';
const YEARS = 'is outside the years 0001 to 9999';

/**
 * Where and why an argument value holds what PostgreSQL refuses, or null: a NUL character in a
 * string, a date-time whose UTC year is not 1..9999 (a DateTimeISO of 0000-01-01 or of
 * 9999-12-31T23:59:59-14:00 parses, and its ISO text reached SQL).
 */
function unstorableIn(value: unknown, path: string): { at: string; why: string } | null {
  if (typeof value === 'string') return value.includes('\u0000') ? { at: path, why: NUL } : null;
  if (value instanceof Date) {
    const year = value.getUTCFullYear();
    return year >= 1 && year <= 9999 ? null : { at: path, why: YEARS };
  }
  if (value === null || typeof value !== 'object') return null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = unstorableIn(value[i], `${path}[${i}]`);
      if (found !== null) return found;
    }
    return null;
  }
  for (const [k, v] of Object.entries(value)) {
    const found = unstorableIn(v, path ? `${path}.${k}` : k);
    if (found !== null) return found;
  }
  return null;
}

/**
 * Every field costs 1; a field with a `first` argument multiplies what it selects by `first`
 * (20 when absent), any other list but a connection's `edges` by {@link UNPAGED_LIST_SIZE} or the length
 * of the longest list argument it is handed, whichever is more; analyzeText costs
 * {@link ANALYZE_TEXT_COST}. Also adds up the bytes of text handed to analyzeText, over every
 * alias and fragment.
 */
function estimator(state: EstimateState): ComplexityEstimator {
  return ({ type, field, args, childComplexity }) => {
    // introspection is on only where enabled (EARSHOT_GRAPHQL_INTROSPECTION) and reads no data
    if (field.name.startsWith('__') || type.name.startsWith('__')) return 0;
    if (state.unstorable === null && !CHECK_THEIR_OWN.has(field.name)) {
      const found = unstorableIn(args, '');
      if (found !== null) state.unstorable = { at: `${field.name}(${found.at})`, why: found.why };
    }
    if (field.name === 'analyzeText') {
      if (typeof args.text === 'string') state.analyzeBytes += Buffer.byteLength(args.text);
      return ANALYZE_TEXT_COST;
    }
    if (field.args.some((a) => a.name === 'first')) {
      const first = typeof args.first === 'number' && args.first >= 0 ? args.first : DEFAULT_PAGE_SIZE;
      return 1 + Math.max(first, 1) * childComplexity;
    }
    // a connection's edges are already counted by its `first`; any other list may answer one item
    // per element of a list it is handed (federation's `_entities(representations:)`: 20,000
    // representations were priced as ten)
    if (field.name !== 'edges' && unwrapList(field.type) && childComplexity > 0) return 1 + Math.max(UNPAGED_LIST_SIZE, longestListIn(args)) * childComplexity;
    return 1 + childComplexity;
  };
}

/** The length of the longest array among a field's argument values (top level), or 0. */
function longestListIn(args: Record<string, unknown>): number {
  let n = 0;
  for (const v of Object.values(args)) if (Array.isArray(v)) n = Math.max(n, v.length);
  return n;
}

/**
 * per operation: when its time budget runs out, the clock to read, and the budget as configured
 * (`ms`: `deadline - start` on a clock far from its origin came out as 300.00000000000045 in
 * the messages)
 */
const budgets = new WeakMap<object, { start: number; deadline: number; ms: number; now: () => number }>();
const BUDGET_CHECKED = Symbol('earshot.timeBudgetChecked');

/**
 * Makes every resolver of `schema` written by us (a field's own `resolve`, not the default property
 * read) refuse to run once its operation is past its budget. Done once per schema, in place, as
 * Apollo's own plugin instrumentation does: Apollo's `willResolveField` hook wraps every field,
 * the default property reads too, which cost about 5% of busy time on the customer page.
 */
function checkBudgetInResolvers(schema: GraphQLSchema): void {
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) {
      const resolve = field.resolve as (GraphQLFieldResolver<unknown, unknown> & { [BUDGET_CHECKED]?: true }) | undefined;
      if (!resolve || resolve[BUDGET_CHECKED]) continue;
      const checked: GraphQLFieldResolver<unknown, unknown> & { [BUDGET_CHECKED]?: true } = (source, args, context, info) => {
        const budget = context !== null && typeof context === 'object' ? budgets.get(context) : undefined;
        if (budget !== undefined && budget.now() > budget.deadline) {
          throw new AppError('TIME_BUDGET_EXCEEDED', `the operation used up its time budget of ${budget.ms} ms (EARSHOT_GRAPHQL_TIME_BUDGET_MS)`);
        }
        return resolve(source, args, context, info);
      };
      checked[BUDGET_CHECKED] = true;
      field.resolve = checked;
    }
  }
}

/**
 * Variable errors collected before giving up, as graphql-js's own execute does: getComplexity
 * coerces variables without a bound, and each error costs about 90 µs and 4 kB, so a 2 MB
 * variable of a million wrong list items held the event loop for a minute and took gigabytes.
 */
const MAX_VARIABLE_ERRORS = 50;

export interface Estimate extends EstimateState {
  cost: number;
}

/**
 * The estimated cost of one operation (and what else one walk over its fields finds), or null
 * when its variables do not fit their types (execution refuses them with BAD_USER_INPUT).
 */
export function estimateCost(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown>,
): Estimate | null {
  if (Object.keys(variables).length > 0) {
    const definitions = getOperationAST(document, operationName ?? undefined)?.variableDefinitions ?? [];
    if (getVariableValues(schema, definitions, variables, { maxErrors: MAX_VARIABLE_ERRORS }).errors) return null;
  }
  const state: EstimateState = { analyzeBytes: 0, unstorable: null };
  try {
    const cost = getComplexity({ schema, query: document, operationName: operationName ?? undefined, variables, estimators: [estimator(state)] });
    return { cost, ...state };
  } catch (e) {
    if (e instanceof GraphQLError) return null;
    throw e;
  }
}

/**
 * The refusal of an operation of this estimate, or null when it may run. An argument value
 * PostgreSQL refuses (see unstorableIn) is refused before any resolver runs: the statement it
 * reached failed as an INTERNAL_SERVER_ERROR (a search, a filter, a reason, a window).
 */
export function operationRefusal(config: GraphqlConfig, estimate: Estimate): GraphQLError | null {
  if (estimate.unstorable !== null) {
    return new GraphQLError(`the argument ${estimate.unstorable.at} ${estimate.unstorable.why}`, { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
  }
  if (estimate.cost > config.maxComplexity) {
    return costError(`estimated cost ${estimate.cost} is over the limit of ${config.maxComplexity} (EARSHOT_GRAPHQL_MAX_COMPLEXITY): ask for smaller pages or fewer fields`);
  }
  if (estimate.analyzeBytes > config.analyzeMaxTextBytes) {
    return costError(`analyzeText was handed ${estimate.analyzeBytes} bytes of text in one request, over the limit of ${config.analyzeMaxTextBytes} (EARSHOT_ANALYZE_MAX_TEXT_BYTES)`);
  }
  return null;
}

/** Starts the time budget of an operation run with `context` (resolvers check it: checkBudgetInResolvers). */
/**
 * The budget's clock: monotonic by default. On the wall clock, a host clock stepped forward
 * mid-request (NTP, a VM restored) cancelled every query in flight at once, and one stepped back
 * took the deadline away from them for the step's length.
 */
const monotonicNow = (): number => performance.now();

export function startTimeBudget(context: object, config: GraphqlConfig, now: () => number = monotonicNow): void {
  const start = now();
  budgets.set(context, { start, deadline: start + config.timeBudgetMs, ms: config.timeBudgetMs, now });
}

/**
 * What tells the data layer how far the query run with `context` may go: when it is past its
 * budget, a statement it runs on the pool is cancelled (src/db/data-source.ts), so a read blocked
 * by a lock (an operator's VACUUM FULL or ALTER TABLE on its table) gives its connection back
 * instead of waiting for the lock, for ever; and once its statements have read `maxReadBytes`
 * characters of text, the next is not run. Queries only: a mutation's statements, ingest, jobs and
 * migrations keep theirs. Null when the operation's time budget was not started.
 */
export function readBounds(context: object, maxReadBytes: number): { readBytes: { used: number; limit: number }; readDeadline: { at: number; budgetMs: number } } | null {
  const budget = budgets.get(context);
  if (budget === undefined) return null;
  return {
    readBytes: { used: 0, limit: maxReadBytes },
    // the budget's own clock may be a test's; the data layer's timer runs on the real monotonic one
    readDeadline: { at: performance.now() + (budget.deadline - budget.now()), budgetMs: budget.ms },
  };
}

/** {@link readBounds} on the HTTP request's context store. */
function boundReads(context: object, maxReadBytes: number): void {
  const store = requestContext.getStore();
  const bounds = readBounds(context, maxReadBytes);
  if (store === undefined || bounds === null) return;
  store.readBytes = bounds.readBytes;
  store.readDeadline = bounds.readDeadline;
}

/**
 * Refuses, before execution, an operation whose estimated cost is over the limit or that hands
 * analyzeText more text than a request may, and stops running resolvers once an operation has
 * used up its time budget.
 */
export function costLimitPlugin(schema: GraphQLSchema, config: GraphqlConfig, now: () => number = monotonicNow): ApolloServerPlugin<GraphQLContext> {
  checkBudgetInResolvers(schema);
  const estimates = new WeakMap<DocumentNode, Map<string, Estimate>>();
  return {
    async requestDidStart({ contextValue }) {
      startTimeBudget(contextValue, config, now);
      return {
        async didResolveOperation({ document, operationName, request, operation }) {
          if (operation?.operation === 'query') boundReads(contextValue, config.maxReadBytes);
          const variables = request.variables ?? {};
          // without variables the estimate depends on the document alone: counted once per
          // parsed document (Apollo's document cache hands the same one back)
          const reusable = Object.keys(variables).length === 0;
          let byName = reusable ? estimates.get(document) : undefined;
          let estimate = byName?.get(operationName ?? '') ?? null;
          if (!estimate) {
            estimate = estimateCost(schema, document, operationName, variables);
            // variables that do not fit their types: execution refuses them with BAD_USER_INPUT
            if (!estimate) return;
            if (reusable) {
              if (!byName) estimates.set(document, (byName = new Map()));
              byName.set(operationName ?? '', estimate);
            }
          }
          const refusal = operationRefusal(config, estimate);
          if (refusal) throw refusal;
        },
      };
    },
  };
}

const SUGGESTION = /\s*Did you mean [^?]*\?/g;

/** Error messages without "Did you mean …?", which would spell out the schema to a caller without introspection. */
export function withoutSuggestions(message: string): string {
  return message.replace(SUGGESTION, '');
}

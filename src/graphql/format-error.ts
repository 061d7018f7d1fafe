import type { GraphQLFormattedError } from 'graphql';
import { GraphQLError } from 'graphql';
import type { Logger } from '../shared/logger';
import { ArgumentValidationError } from 'type-graphql';
import { AppError } from '../shared/app-error';
import { isTransient, unavailableReason } from '../db/failures';
import { COST_LIMIT_CODE, withoutSuggestions } from './limits';

interface ValidationFailure {
  property: string;
  constraints?: Record<string, string>;
  children?: ValidationFailure[];
}

/**
 * class-validator's report, reduced to what a client can act on: which argument (as a path, e.g.
 * `input.reason`) broke which rule, and the rule's message; never the validator's own objects.
 */
function validationError(formatted: GraphQLFormattedError, error: ArgumentValidationError): GraphQLFormattedError {
  const failures: { argument: string; rule: string; message: string }[] = [];
  const walk = (list: ValidationFailure[], prefix: string) => {
    for (const v of list) {
      const path = prefix ? `${prefix}.${v.property}` : v.property;
      for (const [rule, message] of Object.entries(v.constraints ?? {})) failures.push({ argument: path, rule, message });
      walk(v.children ?? [], path);
    }
  };
  walk((error.extensions.validationErrors ?? []) as ValidationFailure[], '');
  const message = failures.length ? failures.map((f) => `${f.argument}: ${f.message}`).join('; ') : 'invalid arguments';
  return { message, path: formatted.path, locations: formatted.locations, extensions: { code: 'BAD_USER_INPUT', details: { violations: failures } } };
}

const MAX_MESSAGE = 1000;

const PASS_THROUGH = new Set([COST_LIMIT_CODE, 'BAD_USER_INPUT', 'GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_REQUEST', 'PERSISTED_QUERY_NOT_FOUND', 'PERSISTED_QUERY_NOT_IN_LIST', 'OPERATION_RESOLUTION_FAILURE', 'UNAUTHENTICATED']);

/**
 * The one place errors become what clients see: AppError codes as extensions.code,
 * GraphQL's own request errors as they are, and anything else as INTERNAL_SERVER_ERROR
 * with the request id, after logging the real error.
 */
export function makeFormatError(log: Logger, opts: { fieldSuggestions?: boolean } = {}) {
  const format = formatter(log);
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const out = format(formatted, error);
    let message = opts.fieldSuggestions === false ? withoutSuggestions(out.message) : out.message;
    // GraphQL quotes the offending value; a 1 MB variable must not come back in full
    if (message.length > MAX_MESSAGE) message = `${message.slice(0, MAX_MESSAGE)}…`;
    return message === out.message ? out : { ...out, message };
  };
}

interface ValidationIssue {
  property?: string;
  constraints?: Record<string, string>;
  children?: ValidationIssue[];
}

/** class-validator's errors as `path: message` lines, without the target object or the offending value. */
function validationMessages(issues: ValidationIssue[], prefix = ''): string[] {
  return issues.flatMap((i) => {
    const path = `${prefix}${i.property ?? ''}`;
    const own = Object.values(i.constraints ?? {}).map((m) => `${path}: ${m}`);
    return [...own, ...validationMessages(i.children ?? [], `${path}.`)];
  });
}

/** Whether an error carries an HTTP status of 400–499 (Apollo's `extensions.http`). */
function clientErrorStatus(error: GraphQLError): boolean {
  const status = (error.extensions.http as { status?: unknown } | undefined)?.status;
  return typeof status === 'number' && status >= 400 && status < 500;
}

function formatter(log: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
    if (original instanceof GraphQLError && original.extensions?.code === COST_LIMIT_CODE) {
      return { message: original.message, locations: formatted.locations, extensions: { code: COST_LIMIT_CODE } };
    }
    const tokens = /Document contains more th(?:an|at) (\d+) tokens/.exec(formatted.message);
    if (tokens) {
      return { message: `the document has more than ${tokens[1]} tokens (EARSHOT_GRAPHQL_MAX_TOKENS)`, locations: formatted.locations, extensions: { code: COST_LIMIT_CODE } };
    }
    const issues = original instanceof GraphQLError ? (original.extensions?.validationErrors as ValidationIssue[] | undefined) : undefined;
    if (Array.isArray(issues)) {
      const lines = validationMessages(issues).slice(0, 20).map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l));
      // which argument broke which rule, never the validator's own objects
      const violations = (validationError(formatted, original as ArgumentValidationError).extensions!.details as { violations: unknown[] }).violations.slice(0, 20);
      return { message: `invalid arguments: ${lines.join('; ')}`, path: formatted.path, locations: formatted.locations, extensions: { code: 'BAD_USER_INPUT', details: { violations } } };
    }
    if (original instanceof AppError) {
      return { ...formatted, message: original.message, extensions: { code: original.code, ...(original.details ? { details: original.details } : {}) } };
    }
    if (original instanceof ArgumentValidationError) return validationError(formatted, original);
    const code = (formatted.extensions?.code as string | undefined) ?? (original instanceof GraphQLError ? (original.extensions.code as string | undefined) : undefined);
    if (code === 'UNAUTHORIZED') return { ...formatted, extensions: { code: 'FORBIDDEN' } };
    if (code && PASS_THROUGH.has(code)) {
      // `http` sets Apollo's status over HTTP (Apollo drops it there); over WebSocket it is noise
      const { stacktrace: _s, http: _h, ...ext } = formatted.extensions ?? {};
      return { ...formatted, extensions: ext };
    }
    if (original instanceof GraphQLError && !original.originalError && original.extensions.code === undefined && clientErrorStatus(original)) {
      // Apollo's own refusals of a malformed request that carry a 4xx status and no code (an APQ
      // hash that is not the sha256 of the query sent with it, a persistedQuery version other
      // than 1): Apollo names them INTERNAL_SERVER_ERROR, the client's mistake all the same
      return { message: original.message, locations: formatted.locations, extensions: { code: 'BAD_REQUEST' } };
    }
    if (original instanceof GraphQLError && !original.originalError && !code) {
      // errors GraphQL itself raised while validating variables and arguments
      return { ...formatted, extensions: { code: 'BAD_USER_INPUT' } };
    }
    // a connection the database refuses (too many connections, shutting down), a lock or
    // statement timeout: the client may try again, as /ingest's 503 says; not an internal error.
    // A missing table or grant stays one (a person must mend it; logged with the request id).
    if (isTransient(original)) {
      const why = unavailableReason(original);
      return { message: `${why === 'the database is unavailable' ? 'the database is unavailable or busy' : why}; try again shortly`, path: formatted.path, locations: formatted.locations, extensions: { code: 'SERVICE_UNAVAILABLE' } };
    }
    // the operations plugin has logged it with the request id, which it adds here too
    log.debug({ path: formatted.path }, 'hiding an internal error from the client');
    return { message: 'Internal server error', path: formatted.path, locations: formatted.locations, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
  };
}

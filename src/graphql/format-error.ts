import type { GraphQLFormattedError } from 'graphql';
import { GraphQLError } from 'graphql';
import type { Logger } from '../shared/logger';
import { ArgumentValidationError } from 'type-graphql';
import { AppError } from '../shared/app-error';

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

const PASS_THROUGH = new Set(['BAD_USER_INPUT', 'GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_REQUEST', 'PERSISTED_QUERY_NOT_FOUND', 'OPERATION_RESOLUTION_FAILURE', 'UNAUTHENTICATED']);

/**
 * The one place errors become what clients see: AppError codes as extensions.code,
 * GraphQL's own request errors as they are, and anything else as INTERNAL_SERVER_ERROR
 * with the request id, after logging the real error.
 */
export function makeFormatError(log: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
    if (original instanceof AppError) {
      return { ...formatted, message: original.message, extensions: { code: original.code, ...(original.details ? { details: original.details } : {}) } };
    }
    if (original instanceof ArgumentValidationError) return validationError(formatted, original);
    const code = (formatted.extensions?.code as string | undefined) ?? (original instanceof GraphQLError ? (original.extensions.code as string | undefined) : undefined);
    if (code === 'UNAUTHORIZED') return { ...formatted, extensions: { code: 'FORBIDDEN' } };
    if (code && PASS_THROUGH.has(code)) {
      const { stacktrace: _s, ...ext } = formatted.extensions ?? {};
      return { ...formatted, extensions: ext };
    }
    if (original instanceof GraphQLError && !original.originalError && !code) {
      // errors GraphQL itself raised while validating variables and arguments
      return { ...formatted, extensions: { code: 'BAD_USER_INPUT' } };
    }
    // the operations plugin has logged it with the request id, which it adds here too
    log.debug({ path: formatted.path }, 'hiding an internal error from the client');
    return { message: 'Internal server error', path: formatted.path, locations: formatted.locations, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
  };
}

export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'CRM_UNAVAILABLE'
  | 'SERVICE_UNAVAILABLE'
  | 'TIME_BUDGET_EXCEEDED'
  | 'COST_LIMIT_EXCEEDED'
  | 'INTERNAL_SERVER_ERROR';

const HTTP_STATUS: Record<ErrorCode, number> = {
  BAD_USER_INPUT: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  CRM_UNAVAILABLE: 502,
  SERVICE_UNAVAILABLE: 503,
  TIME_BUDGET_EXCEEDED: 503,
  COST_LIMIT_EXCEEDED: 400,
  INTERNAL_SERVER_ERROR: 500,
};

/** The one error type whose message is safe to show to clients. */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'AppError';
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }

  static badInput(message: string, details?: Record<string, unknown>): AppError {
    return new AppError('BAD_USER_INPUT', message, details);
  }

  static notFound(what: string): AppError {
    return new AppError('NOT_FOUND', `${what} not found`);
  }
}

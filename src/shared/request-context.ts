import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The request an async call chain serves: lets logs and query counts name their request, and
 * lets the access log learn the caller's role once it is authenticated.
 */
export const requestContext = new AsyncLocalStorage<{
  requestId: string;
  role?: string | null;
  bytesIn?: number;
  /** set for a GraphQL operation: its pooled reads take a turn of the event loop (src/db/data-source.ts) */
  loopTurns?: boolean;
  /**
   * set for a GraphQL query: when its time budget runs out (performance.now() terms: a host clock that steps moves no deadline) and how long it was.
   * A statement it runs on the pool, outside a transaction, is cancelled then (src/db/data-source.ts).
   */
  readDeadline?: { at: number; budgetMs: number };
  /**
   * set for a GraphQL query: the characters of text its statements have read so far, and how many
   * it may read (EARSHOT_GRAPHQL_MAX_READ_BYTES, src/db/data-source.ts)
   */
  readBytes?: { used: number; limit: number };
}>();

/**
 * Starts background work a request asked for (a job run, a re-score, a CRM sync) outside that
 * request: it must not log under the request's id nor take a GraphQL operation's event-loop
 * turns (src/shared/loop-turns.ts) for as long as it runs.
 */
export function outsideRequest<T>(start: () => T): T {
  return requestContext.exit(start);
}

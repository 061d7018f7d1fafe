import type { Principal } from '../auth/auth.service';
import type { Loaders } from './loaders';
import type { LiveConnection, LiveHub, LiveLimits } from './live-hub';

/** The access log's line of one GraphQL operation, without its `bytes` (counted once serialized). */
export interface AccessLine {
  requestId: string;
  operationType: string | null;
  operationName: string | null;
  role: string | null;
  status: 'ok' | 'error';
  errorCodes: string[] | undefined;
  httpStatus: number;
  durationMs: number;
}

export interface GraphQLContext {
  requestId: string;
  principal: Principal | null;
  loaders: Loaders;
  /**
   * Only over HTTP: the operation's access-log line, filled in by Apollo's plugin and written by
   * the HTTP layer with the size of the serialized answer (src/graphql/apollo.ts).
   */
  accessLine?: { fields: AccessLine | null };
  /** only on WebSocket connections: what subscriptions need */
  live?: {
    hub: LiveHub;
    connection: LiveConnection;
    limits: LiveLimits;
    /** fresh DataLoaders before each event, so no event sees another's cached rows */
    renewLoaders(): void;
  };
}

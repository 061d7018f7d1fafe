import type { Principal } from '../auth/auth.service';
import type { Loaders } from './loaders';
import type { LiveConnection, LiveHub, LiveLimits } from './live-hub';

export interface GraphQLContext {
  requestId: string;
  principal: Principal | null;
  loaders: Loaders;
  /** only on WebSocket connections: what subscriptions need */
  live?: {
    hub: LiveHub;
    connection: LiveConnection;
    limits: LiveLimits;
    /** fresh DataLoaders before each event, so no event sees another's cached rows */
    renewLoaders(): void;
  };
}

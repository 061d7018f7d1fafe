import type http from 'node:http';
import type { GraphQLError, GraphQLSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { AuthService, Principal } from '../auth/auth.service';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import type { GraphQLContext } from './context';
import { makeFormatError } from './format-error';
import type { LiveHub, LiveLimits } from './live-hub';
import type { Loaders } from './loaders';

export interface SubscriptionServerDeps {
  server: http.Server;
  schema: GraphQLSchema;
  auth: AuthService;
  hub: LiveHub;
  limits: LiveLimits;
  makeLoaders: (principal: Principal | null) => Loaders;
  log: Logger;
}

/** Largest client message (a subscribe with its document): subscriptions are small. */
const MAX_MESSAGE_BYTES = 64 * 1024;

/**
 * graphql-ws (subprotocol `graphql-transport-ws`) on the HTTP server's port, at /graphql.
 *
 * What must stay true: a connection is authenticated once, by its `connection_init` payload
 * (`X-API-Key` or `Authorization`, as HTTP headers would carry them), and every operation on it
 * runs with that principal through the same schema, auth checker and error formatting as HTTP.
 */
export function attachSubscriptionServer(deps: SubscriptionServerDeps): { close(): Promise<void> } {
  const { log } = deps;
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  const onUpgrade = (req: http.IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/graphql') {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  };
  deps.server.on('upgrade', onUpgrade);
  const formatError = makeFormatError(log);
  let operations = 0;

  useServer<Record<string, unknown>, { principal: Principal | null }>(
    {
      schema: deps.schema,
      async onConnect(ctx) {
        const params = ctx.connectionParams ?? {};
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(params)) if (typeof v === 'string') headers[k.toLowerCase()] = v;
        try {
          const principal = await deps.auth.authenticate(headers);
          if (!principal) return false;
          ctx.extra.principal = principal;
          return true;
        } catch (e) {
          if (e instanceof AppError) return false;
          throw e;
        }
      },
      context(ctx): GraphQLContext {
        const principal = ctx.extra.principal ?? null;
        const socket = ctx.extra.socket;
        const context: GraphQLContext = {
          requestId: `ws-${++operations}`,
          principal,
          loaders: deps.makeLoaders(principal),
          live: {
            hub: deps.hub,
            limits: deps.limits,
            connection: { bufferedAmount: () => socket.bufferedAmount, close: (code, reason) => socket.close(code, reason) },
            renewLoaders: () => {
              context.loaders = deps.makeLoaders(principal);
            },
          },
        };
        return context;
      },
      onNext(_ctx, _id, _payload, _args, result) {
        if (!result.errors?.length) return;
        return { ...result, errors: result.errors.map((e: GraphQLError) => formatError(e.toJSON(), e)) };
      },
      onError(_ctx, _id, _payload, errors) {
        return errors.map((e) => formatError(e.toJSON(), e));
      },
    },
    wss,
    12_000,
  );

  return {
    async close() {
      deps.server.off('upgrade', onUpgrade);
      for (const c of wss.clients) c.close(1001, 'server shutting down');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      // a client that does not answer the close handshake must not hold the shutdown
      for (const c of wss.clients) c.terminate();
      log.debug('subscription server closed');
    },
  };
}

import type http from 'node:http';
import { execute, getOperationAST, GraphQLError, type ExecutionArgs, NoSchemaIntrospectionCustomRule, parse, specifiedRules, validate, type DocumentNode, type GraphQLSchema, type ValidationRule } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import { callerKey, type AuthService, type Principal } from '../auth/auth.service';
import type { OperationSlots } from '../http/operation-slots';
import type { Config, GraphqlConfig } from '../config/config';
import { AppError } from '../shared/app-error';
import { requestContext } from '../shared/request-context';
import type { Logger } from '../shared/logger';
import type { GraphQLContext } from './context';
import { makeFormatError } from './format-error';
import { COST_LIMIT_CODE, costValidationRules, estimateCost, operationRefusal, readBounds, startTimeBudget } from './limits';
import { TOO_SLOW_CLOSE_CODE, type LiveHub, type LiveLimits } from './live-hub';
import type { Loaders } from './loaders';
import type { TrustedDocuments } from './trusted-documents';

export interface SubscriptionServerDeps {
  server: http.Server;
  schema: GraphQLSchema;
  auth: AuthService;
  hub: LiveHub;
  limits: LiveLimits;
  makeLoaders: (principal: Principal | null) => Loaders;
  /** the same limits as over HTTP: tokens, depth, aliases, cost, analyzeText bytes, time budget, introspection */
  graphql: GraphqlConfig;
  /** the trusted-documents manifest (EARSHOT_TRUSTED_DOCUMENTS): in `only` mode nothing else runs here either */
  trustedDocuments?: TrustedDocuments | null;
  /**
   * The HTTP server's bound on GraphQL operations at once (EARSHOT_GRAPHQL_CONCURRENCY, _QUEUE_MAX):
   * queries and mutations over a socket take a slot too; subscriptions live on and take none
   */
  slots?: OperationSlots | null;
  /** the key-set re-check interval and the per-principal connection cap (EARSHOT_WS_*); defaults as in config */
  ws?: Config['ws'];
  log: Logger;
}

/** Largest client message (a subscribe with its document): subscriptions are small. */
const MAX_MESSAGE_BYTES = 64 * 1024;

/**
 * Operations running at once on one connection (graphql-ws multiplexes them). A frontend holds a
 * few subscriptions; without a bound one socket held 20,000 (167 MB, and each event then
 * resolved 20,000 times on the event loop, which stalled for 3 s).
 */
export const MAX_OPERATIONS_PER_CONNECTION = 100;

/**
 * Messages (and WebSocket pings) one connection may send: a bucket of 500 refilled at 100 a
 * second. A frontend sends a handful (connection_init, a subscribe per view, a ping every few
 * seconds); three sockets that each sent 40,000 `ping` messages a second took the event loop,
 * and an HTTP query's median went from 9 ms to 520 ms (2.7 s at worst).
 */
export const MESSAGE_BURST = 500;
export const MESSAGES_PER_SECOND = 100;

/** Close code for a connection that sent more messages than it may (Policy Violation: graphql-ws's client does not retry it). */
export const TOO_MANY_MESSAGES_CLOSE_CODE = 1008;

/** Close code for a connection whose credential expired (graphql-ws's Forbidden): the client reconnects with a fresh one. */
export const CREDENTIAL_EXPIRED_CLOSE_CODE = 4403;

/** Close code for a connection refused because its principal holds as many as it may (graphql-ws's; its client does not retry it). */
export const TOO_MANY_CONNECTIONS_CLOSE_CODE = 4429;

const DEFAULT_WS: Config['ws'] = { recheckMs: 60_000, maxConnectionsPerPrincipal: 100 };

/** Longest setTimeout delay; a later expiry re-arms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Closes `socket` with 4403 at `expiresAt` (a JWT's exp): a subscription must not outlive its
 * credential. Cleared when the socket closes.
 */
function closeAtExpiry(socket: WebSocket, expiresAt: number): void {
  let timer: NodeJS.Timeout;
  const arm = () => {
    const left = expiresAt - Date.now();
    if (left <= 0) {
      socket.close(CREDENTIAL_EXPIRED_CLOSE_CODE, 'Forbidden: the credential expired; reconnect with a fresh one');
      return;
    }
    timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    timer.unref();
  };
  arm();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * Closes `socket` with 1008 once it sends messages or pings faster than MESSAGES_PER_SECOND
 * beyond a burst of MESSAGE_BURST. What it sends after is framed by ws until the client's close
 * frame (or ws's 30 s close timeout) but no longer handed to graphql-ws to parse and answer.
 */
function boundMessageRate(socket: WebSocket, log: Logger): void {
  let tokens = MESSAGE_BURST;
  // the monotonic clock: a host clock stepped back (NTP) made the step a debt of messages, and
  // every socket's next message closed it
  let at = performance.now();
  const take = () => {
    const now = performance.now();
    tokens = Math.min(MESSAGE_BURST, tokens + ((now - at) * MESSAGES_PER_SECOND) / 1000);
    at = now;
    if (tokens >= 1) {
      tokens -= 1;
      return;
    }
    if (socket.readyState !== socket.OPEN) return;
    log.warn('closing a WebSocket connection that sends messages faster than it may');
    socket.close(TOO_MANY_MESSAGES_CLOSE_CODE, `Too many messages: at most ${MESSAGES_PER_SECOND} a second after a burst of ${MESSAGE_BURST}`);
    socket.removeAllListeners('message');
  };
  socket.on('message', take);
  socket.on('ping', take);
}

/**
 * Bounds what the peer of `socket` has not read: once more than `maxBufferedBytes` wait unsent,
 * nothing more is queued and the connection is closed with 1013 (the close frame comes after what
 * is queued, so a client that reads again learns why). Subscription events had their bound
 * (src/graphql/live-hub.ts), but every other reply was queued without one: a client that sent
 * 60 KB `ping` messages and never read made the server hold each `pong`, 349 MB RSS to 1.2 GB in
 * 6 s, and refusals of operations past the per-connection cap piled up the same way.
 */
function boundUnread(socket: WebSocket, maxBufferedBytes: number, log: Logger): void {
  const send = socket.send.bind(socket) as (data: unknown, ...rest: unknown[]) => void;
  socket.send = ((data: unknown, ...rest: unknown[]) => {
    if (socket.bufferedAmount <= maxBufferedBytes) return send(data, ...rest);
    if (socket.readyState === socket.OPEN) {
      log.warn({ buffered: socket.bufferedAmount }, 'closing a WebSocket connection whose client does not read what it is sent (EARSHOT_SUBSCRIPTION_MAX_BUFFERED_BYTES)');
      socket.close(TOO_SLOW_CLOSE_CODE, 'client too slow: it did not read what it was sent; reconnect');
    }
    // graphql-ws waits for the callback: the operation ends as if the message had gone
    const done = rest.find((r) => typeof r === 'function') as ((err?: Error) => void) | undefined;
    done?.();
  }) as WebSocket['send'];
}

/**
 * graphql-ws (subprotocol `graphql-transport-ws`) on the HTTP server's port, at /graphql.
 *
 * What must stay true: a connection is authenticated once, by its `connection_init` payload
 * (`X-API-Key` or `Authorization`, as HTTP headers would carry them), and every operation on it
 * runs with that principal through the same schema, auth checker and error formatting as HTTP.
 * A connection lives no longer than its credential: at a JWT's `exp` it is closed with 4403, and
 * so it is, within EARSHOT_WS_RECHECK_MS, once its JWT no longer verifies against the JWKS (its
 * key withdrawn); a JWKS that cannot be fetched closes nothing. One API key or JWT subject holds
 * at most EARSHOT_WS_MAX_CONNECTIONS_PER_PRINCIPAL connections; one more is refused with 4429.
 * A connection whose client leaves more than EARSHOT_SUBSCRIPTION_MAX_BUFFERED_BYTES unread is
 * closed with 1013, whatever the server was sending it; one that sends more than MESSAGES_PER_SECOND
 * beyond a burst of MESSAGE_BURST is closed with 1008; one that answers no ping is cut within 24 s.
 */
export function attachSubscriptionServer(deps: SubscriptionServerDeps): { close(): Promise<void> } {
  const { log } = deps;
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  // before graphql-ws's own listener, so that every message it sends is bounded
  wss.on('connection', (socket: WebSocket) => {
    boundUnread(socket, deps.limits.maxBufferedBytes, log);
    boundMessageRate(socket, log);
  });
  const onUpgrade = (req: http.IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/graphql') {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  };
  deps.server.on('upgrade', onUpgrade);
  const formatError = makeFormatError(log, { fieldSuggestions: deps.graphql.fieldSuggestions });
  let operations = 0;
  const { recheckMs, maxConnectionsPerPrincipal } = deps.ws ?? DEFAULT_WS;
  // open connections by principal: without a cap, one API key took all 8,192 the server allows
  const perPrincipal = new Map<string, number>();
  // connections whose JWT is checked again against the key set, and the key set it last verified against
  const rechecked = new Map<WebSocket, { headers: Record<string, string>; verifiedAgainst: string | null }>();
  let keysFailing = false;
  let rechecking = false;
  const recheck = async () => {
    if (rechecking || rechecked.size === 0) return;
    rechecking = true;
    try {
      // one fetch per round however many sockets are open; an unchanged key set needs no re-verification
      const { version, error } = await deps.auth.refreshKeys();
      if (error) {
        log.warn({ err: error, sockets: rechecked.size }, 'could not fetch the JWKS; open WebSocket connections are checked against the last key set fetched');
        keysFailing = true;
      } else if (keysFailing) {
        log.info('the JWKS can be fetched again');
        keysFailing = false;
      }
      if (version === null) return;
      for (const [socket, entry] of rechecked) {
        if (entry.verifiedAgainst === version) continue;
        const problem = await deps.auth.reverify(entry.headers);
        if (!rechecked.has(socket)) continue;
        if (problem === null) {
          entry.verifiedAgainst = version;
          continue;
        }
        rechecked.delete(socket);
        log.info({ reason: problem }, 'closing a WebSocket connection whose token no longer verifies against the JWKS');
        socket.close(CREDENTIAL_EXPIRED_CLOSE_CODE, 'Forbidden: the token no longer verifies against the current signing keys; reconnect with a fresh one');
      }
    } finally {
      rechecking = false;
    }
  };
  const recheckTimer = deps.auth.keysRotate ? setInterval(() => void recheck().catch((e: unknown) => log.error({ err: e }, 'WebSocket credential re-check failed')), recheckMs) : null;
  recheckTimer?.unref();
  /**
   * A query over a socket reads within the bounds it has over HTTP (src/graphql/limits.ts,
   * readBounds): at most EARSHOT_GRAPHQL_MAX_READ_BYTES of text, and no statement past its time
   * budget. They are kept in the request context, which only HTTP requests had: a query that HTTP
   * refused for reading 1 MB against a budget of 64 KiB was answered in full over a socket, and one
   * on a table an operator had locked held its pooled connection until the lock went.
   */
  const executeBounded = (args: ExecutionArgs) => {
    const context = args.contextValue as GraphQLContext;
    const bounds = getOperationAST(args.document, args.operationName)?.operation === 'query' ? readBounds(context, deps.graphql.maxReadBytes) : null;
    return bounds === null ? execute(args) : requestContext.run({ requestId: context.requestId, ...bounds }, () => execute(args));
  };
  // what Apollo checks over HTTP (src/graphql/apollo.ts), checked here before anything runs:
  // without it, a socket ran documents of any size, depth, alias count and cost
  const rules: ValidationRule[] = [...specifiedRules, ...costValidationRules(deps.graphql), ...(deps.graphql.introspection ? [] : [NoSchemaIntrospectionCustomRule])];

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
          const socket = ctx.extra.socket;
          // gone while its credential was checked: 'close' has fired already, and nothing must be counted
          if (socket.readyState !== socket.OPEN) return false;
          const who = callerKey(principal);
          const held = perPrincipal.get(who) ?? 0;
          if (held >= maxConnectionsPerPrincipal) {
            log.warn({ principal: principal.id, held }, 'WebSocket connection refused: the principal holds as many as it may (EARSHOT_WS_MAX_CONNECTIONS_PER_PRINCIPAL)');
            // graphql-ws then closes with 4403 "Forbidden"; this close comes first and stands
            socket.close(TOO_MANY_CONNECTIONS_CLOSE_CODE, `Too many connections: at most ${maxConnectionsPerPrincipal} per API key or user; close one first`);
            return false;
          }
          perPrincipal.set(who, held + 1);
          socket.once('close', () => {
            const n = (perPrincipal.get(who) ?? 1) - 1;
            if (n > 0) perPrincipal.set(who, n);
            else perPrincipal.delete(who);
            rechecked.delete(socket);
          });
          ctx.extra.principal = principal;
          // authenticated once, so a JWT's expiry would otherwise never be seen again: an event
          // stored 10 s after a token expired still reached its socket, the customer's email included
          if (principal.expiresAt !== undefined) closeAtExpiry(socket, principal.expiresAt);
          // nor would a key withdrawn from the JWKS: a leaked key's socket streamed on until exp
          if (principal.expiresAt !== undefined && deps.auth.keysRotate) rechecked.set(socket, { headers, verifiedAgainst: null });
          return true;
        } catch (e) {
          if (e instanceof AppError) return false;
          throw e;
        }
      },
      onSubscribe(ctx, _id, payload) {
        const socket = ctx.extra.socket;
        const expiresAt = ctx.extra.principal?.expiresAt;
        if (expiresAt !== undefined && expiresAt <= Date.now()) {
          socket.close(CREDENTIAL_EXPIRED_CLOSE_CODE, 'Forbidden: the credential expired; reconnect with a fresh one');
          return [new GraphQLError('the credential expired', { extensions: { code: 'UNAUTHENTICATED' } })];
        }
        if (Object.keys(ctx.subscriptions).length > MAX_OPERATIONS_PER_CONNECTION) {
          return [
            new GraphQLError(`at most ${MAX_OPERATIONS_PER_CONNECTION} operations run at once on one connection: complete one first`, { extensions: { code: COST_LIMIT_CODE } }),
          ];
        }
        // Over HTTP the manifest is checked before Apollo (src/http/http-server.ts); a socket ran
        // any document in `only` mode, queries and mutations included.
        let query = payload.query;
        const trusted = deps.trustedDocuments;
        if (trusted && trusted.mode !== 'off') {
          const checked = trusted.check({ query: payload.query, extensions: payload.extensions });
          if (checked.error) return [new GraphQLError(checked.error.message, { extensions: { code: checked.error.code } })];
          if (typeof checked.params?.query === 'string') query = checked.params.query;
        }
        let document: DocumentNode;
        try {
          document = parse(query, { maxTokens: deps.graphql.maxTokens });
        } catch (e) {
          if (e instanceof GraphQLError) return [e];
          throw e;
        }
        const invalid = validate(deps.schema, document, rules);
        if (invalid.length) return invalid;
        const variables = payload.variables ?? {};
        const estimate = estimateCost(deps.schema, document, payload.operationName, variables);
        // null: variables that do not fit their types, which execution refuses with BAD_USER_INPUT
        const refusal = estimate && operationRefusal(deps.graphql, estimate);
        if (refusal) return [refusal];
        return { schema: deps.schema, document, operationName: payload.operationName, variableValues: variables };
      },
      context(ctx, _id, _payload, args): GraphQLContext {
        const principal = ctx.extra.principal ?? null;
        const socket = ctx.extra.socket;
        const context: GraphQLContext = {
          requestId: `ws-${++operations}`,
          principal,
          loaders: deps.makeLoaders(principal),
          live: {
            hub: deps.hub,
            limits: deps.limits,
            connection: {
              bufferedAmount: () => socket.bufferedAmount,
              close: (code, reason) => {
                // said as the unread-bytes bound says it: an operator sees which clients lose events
                if (socket.readyState === socket.OPEN) log.warn({ code, buffered: socket.bufferedAmount }, 'closing a WebSocket connection whose subscriber does not read its events fast enough (EARSHOT_SUBSCRIPTION_QUEUE_LIMIT)');
                socket.close(code, reason);
              },
            },
            renewLoaders: () => {
              context.loaders = deps.makeLoaders(principal);
            },
          },
        };
        // a query or mutation has the time budget it has over HTTP; a subscription lives on
        if (getOperationAST(args.document, args.operationName)?.operation !== 'subscription') startTimeBudget(context, deps.graphql);
        return context;
      },
      // A query or mutation waits for a slot, or is refused as over HTTP (503 there) when the line
      // is full: without it, each socket ran up to 100 at once outside the process's bound.
      async execute(args) {
        const slots = deps.slots;
        if (!slots) return executeBounded(args);
        // shared between callers as over HTTP: one caller never holds every slot
        const caller = callerKey((args.contextValue as GraphQLContext).principal);
        if (!(await slots.enter(caller))) {
          const busy = new AppError('SERVICE_UNAVAILABLE', 'too many GraphQL operations are waiting; try again shortly');
          return { errors: [new GraphQLError(busy.message, { originalError: busy })] };
        }
        try {
          return await executeBounded(args);
        } finally {
          slots.leave(caller);
        }
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
      if (recheckTimer) clearInterval(recheckTimer);
      deps.server.off('upgrade', onUpgrade);
      for (const c of wss.clients) c.close(1001, 'server shutting down');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      // a client that does not answer the close handshake must not hold the shutdown
      for (const c of wss.clients) c.terminate();
      log.debug('subscription server closed');
    },
  };
}

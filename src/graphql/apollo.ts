import { getHeapStatistics } from 'node:v8';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import type { GraphqlConfig, MetricsConfig } from '../config/config';
import { AppError } from '../shared/app-error';
import { stringifyAnswer } from '../shared/fast-json';
import { cutText } from '../shared/text';
import { SpanKind, SpanStatusCode, tracer } from '../shared/tracing';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import type { AccessLine, GraphQLContext } from './context';
import { DocumentStore, documentStoreBytes } from './document-store';
import { makeFormatError } from './format-error';
import { FOR_APOLLO_VERSION, gatewayRequestContextInstalled } from './gateway-request-context';
import { jitGateway } from './jit';
import { COST_LIMIT_CODE, costLimitPlugin, costValidationRules } from './limits';
import { PersistedQueryStore, persistedQueryStoreBytes } from './persisted-query-store';

const STATUS_BY_CODE: Record<string, number> = { UNAUTHENTICATED: 401, FORBIDDEN: 403, [COST_LIMIT_CODE]: 400, TIME_BUDGET_EXCEEDED: 503 };

/** Latency metrics, logs of unexpected errors with the request id, and 401/403 statuses. */
function operationsPlugin(log: Logger, metrics: Metrics, operationNames: ReadonlySet<string>, accessLog: Logger | null): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart({ contextValue }) {
      const start = process.hrtime.bigint();
      // one span per operation, named by the operation; never its variables or document
      const span = tracer().startSpan('graphql', { kind: SpanKind.INTERNAL });
      return {
        async didResolveOperation({ operation }) {
          const type = operation?.operation ?? 'query';
          const name = loggedName(operation?.name?.value);
          span.updateName(`graphql ${type}${name ? ` ${name}` : ''}`);
          span.setAttributes({ 'graphql.operation.type': type, ...(name ? { 'graphql.operation.name': name } : {}) });
        },
        async didEncounterErrors({ errors, operation }) {
          for (const e of errors) {
            const original = e.originalError;
            if (original && !(original instanceof AppError) && !(original instanceof GraphQLError)) {
              log.error({ err: original, requestId: contextValue.requestId, operation: loggedName(operation?.name?.value) }, 'GraphQL operation failed');
            }
          }
        },
        async willSendResponse({ response, operation, errors }) {
          const seconds = Number(process.hrtime.bigint() - start) / 1e9;
          if (errors?.length) span.setStatus({ code: SpanStatusCode.ERROR, message: [...new Set(errors.map((e) => String(e.extensions?.code ?? 'ERROR')))].join(',') });
          span.end();
          metrics.graphqlDuration.observe(
            // label values stay bounded: a name off the allow-list is `other`, whatever callers send
            { type: operation?.operation ?? 'unknown', operation: operationLabel(operation?.name?.value, operationNames), outcome: errors?.length ? 'error' : 'ok' },
            seconds,
          );
          if (response.body.kind !== 'single') {
            accessLog?.info({ requestId: contextValue.requestId, operationType: operation?.operation ?? null, operationName: loggedName(operation?.name?.value),
              role: contextValue.principal?.role ?? null, status: 'streamed', durationMs: Math.round(seconds * 10_000) / 10 }, 'graphql operation');
            return;
          }
          const result = response.body.singleResult;
          for (const e of result.errors ?? []) {
            const code = e.extensions?.code as string | undefined;
            if (code === 'INTERNAL_SERVER_ERROR') (e.extensions as Record<string, unknown>).requestId = contextValue.requestId;
            // only when nothing else came back: a partial result stays 200
            if (code && STATUS_BY_CODE[code] && (result.data === null || result.data === undefined)) response.http.status = STATUS_BY_CODE[code];
          }
          if (!accessLog) return;
          // The operation's access line: its name and type, never its variables or its result.
          const line: AccessLine = {
            requestId: contextValue.requestId,
            operationType: operation?.operation ?? null,
            operationName: loggedName(operation?.name?.value),
            role: contextValue.principal?.role ?? null,
            status: result.errors?.length ? 'error' : 'ok',
            errorCodes: result.errors?.length ? [...new Set(result.errors.map((e) => String(e.extensions?.code ?? 'UNKNOWN')))] : undefined,
            httpStatus: response.http.status ?? 200,
            durationMs: Math.round(seconds * 10_000) / 10,
          };
          // Over HTTP the line is written once Apollo has serialized the answer, with its exact
          // size (src/http/http-server.ts): serializing it a second time only to count it cost
          // about 6% of busy time on the customer page. In-process callers get it counted here.
          if (contextValue.accessLine !== undefined) contextValue.accessLine.fields = line;
          else accessLog.info({ ...line, bytes: Buffer.byteLength(`${JSON.stringify(result)}\n`) }, 'graphql operation');
        },
      };
    },
  };
}

/**
 * Subscriptions run over WebSocket only (src/graphql/ws-server.ts): over HTTP, graphql-js ran the
 * subscription field's resolver without an event and answered INTERNAL_SERVER_ERROR.
 */
const subscriptionsOverWebSocketOnly: ApolloServerPlugin<GraphQLContext> = {
  async requestDidStart() {
    return {
      async didResolveOperation({ operation }) {
        if (operation?.operation !== 'subscription') return;
        throw new GraphQLError('subscriptions run over WebSocket (graphql-ws, subprotocol graphql-transport-ws) at /graphql, not over HTTP', {
          extensions: { code: 'BAD_REQUEST', http: { status: 400 } },
        });
      },
    };
  },
};

/**
 * Most characters of an operation name logged or traced. A name is one token of any length, so
 * under the token limit: a 1.9 MB name wrote a 1.9 MB access line and 3.8 MB of span (its name
 * and attribute) per request.
 */
const MAX_LOGGED_NAME = 100;

/** The operation's name as logged and traced: cut, with a mark that it was. */
function loggedName(name: string | undefined): string | null {
  if (name === undefined) return null;
  return name.length > MAX_LOGGED_NAME ? `${cutText(name, MAX_LOGGED_NAME)}…` : name;
}

function operationLabel(name: string | undefined, allowed: ReadonlySet<string>): string {
  if (name === undefined) return 'anonymous';
  return allowed.has(name) ? name : 'other';
}

export function createApollo(
  schema: GraphQLSchema,
  log: Logger,
  metrics: Metrics,
  production: boolean,
  graphql: GraphqlConfig,
  metricsConfig: Pick<MetricsConfig, 'operationNames'>,
  accessLog: Logger | null = null,
): ApolloServer<GraphQLContext> {
  const gateway = graphql.jit ? jitGateway(schema) : null;
  if (gateway && !gatewayRequestContextInstalled()) {
    log.warn({ expected: FOR_APOLLO_VERSION }, "@apollo/server is not the version whose gateway request context Earshot replaces: every GraphQL request's objects now live until a full GC (src/graphql/gateway-request-context.ts)");
  }
  return new ApolloServer<GraphQLContext>({
    // graphql-jit runs queries and mutations (src/graphql/jit.ts); EARSHOT_GRAPHQL_JIT=false: graphql-js alone
    ...(gateway ? { gateway } : { schema }),
    // JSON.stringify without V8's slow path for text beyond Latin-1 (src/shared/fast-json.ts)
    stringifyResult: stringifyAnswer,
    formatError: makeFormatError(log, { fieldSuggestions: graphql.fieldSuggestions }),
    includeStacktraceInErrorResponses: false,
    // main.ts owns shutdown; Apollo's own handler re-raises the signal and kills the process
    stopOnTerminationSignals: false,
    introspection: graphql.introspection,
    // parsed documents, counted with the source text they keep (src/graphql/document-store.ts)
    documentStore: new DocumentStore(documentStoreBytes(getHeapStatistics().heap_size_limit)),
    // APQ registrations, counted with their keys and bookkeeping (src/graphql/persisted-query-store.ts)
    persistedQueries: { cache: new PersistedQueryStore(persistedQueryStoreBytes(getHeapStatistics().heap_size_limit)) },
    // a document's size is bounded while it is parsed, so a bomb costs a millisecond, not a validation pass
    parseOptions: { maxTokens: graphql.maxTokens },
    validationRules: costValidationRules(graphql),
    plugins: [
      operationsPlugin(log, metrics, new Set(metricsConfig.operationNames), accessLog),
      subscriptionsOverWebSocketOnly,
      costLimitPlugin(schema, graphql),
      // Earshot serves its own offline explorer (src/graphql/explorer.ts); Apollo's landing page loads from a CDN
      ApolloServerPluginLandingPageDisabled(),
      // no HTTP caching is offered, and cache-control's per-field hook cost ~6% of busy time on the customer page
      ApolloServerPluginCacheControlDisabled(),
    ],
  });
}

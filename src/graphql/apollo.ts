import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import type { GraphQLContext } from './context';
import { makeFormatError } from './format-error';

const STATUS_BY_CODE: Record<string, number> = { UNAUTHENTICATED: 401, FORBIDDEN: 403 };

/** Latency metrics, logs of unexpected errors with the request id, and 401/403 statuses. */
function operationsPlugin(log: Logger, metrics: Metrics): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart({ contextValue }) {
      const start = process.hrtime.bigint();
      return {
        async didEncounterErrors({ errors, operation }) {
          for (const e of errors) {
            const original = e.originalError;
            if (original && !(original instanceof AppError) && !(original instanceof GraphQLError)) {
              log.error({ err: original, requestId: contextValue.requestId, operation: operation?.name?.value }, 'GraphQL operation failed');
            }
          }
        },
        async willSendResponse({ response, operation, errors }) {
          const seconds = Number(process.hrtime.bigint() - start) / 1e9;
          metrics.graphqlDuration.observe(
            { type: operation?.operation ?? 'unknown', operation: operation?.name?.value ?? 'anonymous', outcome: errors?.length ? 'error' : 'ok' },
            seconds,
          );
          if (response.body.kind !== 'single') return;
          const result = response.body.singleResult;
          for (const e of result.errors ?? []) {
            const code = e.extensions?.code as string | undefined;
            if (code === 'INTERNAL_SERVER_ERROR') (e.extensions as Record<string, unknown>).requestId = contextValue.requestId;
            // only when nothing else came back: a partial result stays 200
            if (code && STATUS_BY_CODE[code] && (result.data === null || result.data === undefined)) response.http.status = STATUS_BY_CODE[code];
          }
        },
      };
    },
  };
}

export function createApollo(schema: GraphQLSchema, log: Logger, metrics: Metrics, production: boolean): ApolloServer<GraphQLContext> {
  return new ApolloServer<GraphQLContext>({
    schema,
    formatError: makeFormatError(log),
    includeStacktraceInErrorResponses: false,
    // main.ts owns shutdown; Apollo's own handler re-raises the signal and kills the process
    stopOnTerminationSignals: false,
    introspection: true,
    // Earshot serves its own offline explorer (src/graphql/explorer.ts); Apollo's landing page loads from a CDN
    // no HTTP caching is offered, and cache-control's per-field hook cost ~6% of busy time on the customer page
    plugins: [operationsPlugin(log, metrics), ApolloServerPluginLandingPageDisabled(), ApolloServerPluginCacheControlDisabled()],
  });
}

import { context, propagation, trace } from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace';

export interface Tracing {
  shutdown(): Promise<void>;
}

type Env = Record<string, string | undefined>;

/**
 * On when an OTLP endpoint or a traces exporter is named by the standard OTEL_* variables. As the
 * OpenTelemetry specification reads them: OTEL_SDK_DISABLED is true by the case-insensitive
 * "true" (`TRUE` left tracing on), and values are trimmed (a CR from a file edited on Windows).
 */
export function tracingEnabled(env: Env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  // an exporter Earshot does not have is refused at start (tracesExporterProblem), never traced to OTLP
  if (tracesExporterProblem(env) !== null) return false;
  const exporter = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase();
  if (exporter !== undefined) return exporter !== 'none' && exporter !== '';
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/** The OTEL_TRACES_EXPORTER values Earshot has an exporter for (any case, trimmed; empty is unset). */
export const TRACES_EXPORTERS = ['none', 'otlp', 'console'] as const;

/**
 * Why OTEL_TRACES_EXPORTER cannot be followed, or null: another exporter than those Earshot has
 * (`zipkin`, `jaeger`, or a list such as `otlp,console`) was read as OTLP, and the spans went to an
 * OTLP collector nobody had named. loadConfig refuses it (exit 2); unless OTEL_SDK_DISABLED=true,
 * which turns tracing off whatever the exporter.
 */
export function tracesExporterProblem(env: Env): string | null {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return null;
  const raw = env.OTEL_TRACES_EXPORTER?.trim();
  if (!raw || (TRACES_EXPORTERS as readonly string[]).includes(raw.toLowerCase())) return null;
  return `OTEL_TRACES_EXPORTER=${JSON.stringify(raw)}: expected one of ${TRACES_EXPORTERS.join(', ')} (one exporter, in any case): Earshot has no other`;
}

/**
 * The exporter OTEL_TRACES_EXPORTER names, read as tracingEnabled reads it: `Console` (or with a
 * CR) turned tracing on and then sent the spans to an OTLP collector that was never named.
 */
export function tracesExporter(env: Env): 'console' | 'otlp' {
  return env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === 'console' ? 'console' : 'otlp';
}

/** Earshot's own paths, recorded as they are; any other path is a client's text. */
const KNOWN_PATHS: ReadonlySet<string> = new Set(['/graphql', '/ingest', '/healthz', '/readyz', '/metrics', '/explorer', '/console', '/']);
const NOT_RECORDED = '[not recorded]';

/**
 * What a server span records of the request target, overriding the HTTP instrumentation's
 * `url.path` and `url.query`: the query string is never recorded (a GraphQL GET carries its
 * variables there, `?variables={"e":"jane@…"}`, and the instrumentation redacts only a few
 * signature parameters), nor a path outside Earshot's own (`/x/jane@…`), as the access log keeps
 * only the route.
 */
export function serverSpanUrl(target: string): Record<string, string> {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  return { 'url.path': KNOWN_PATHS.has(path) ? path : NOT_RECORDED, ...(q < 0 ? {} : { 'url.query': NOT_RECORDED }) };
}

/**
 * Starts OpenTelemetry tracing when the standard OTEL_* variables ask for it (or a test hands in
 * an exporter); null, and nothing loaded, otherwise. Must run before `pg` and `node:http` are
 * first required (main.ts imports it first): their instrumentations patch the modules on load.
 * Spans: HTTP server and client (instrumentation-http), SQL (instrumentation-pg, statements
 * without values), GraphQL operations and Kafka consume/publish (our own spans, see README).
 */
export function startTracing(env: Env = process.env, opts: { exporter?: SpanExporter } = {}): Tracing | null {
  if (!opts.exporter && !tracingEnabled(env)) return null;
  // Loaded only when tracing is on: zero cost otherwise.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const sdk = require('@opentelemetry/sdk-trace') as typeof import('@opentelemetry/sdk-trace');
  const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks') as typeof import('@opentelemetry/context-async-hooks');
  const { W3CTraceContextPropagator } = require('@opentelemetry/core') as typeof import('@opentelemetry/core');
  const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const { registerInstrumentations } = require('@opentelemetry/instrumentation') as typeof import('@opentelemetry/instrumentation');
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http') as typeof import('@opentelemetry/instrumentation-http');
  const { PgInstrumentation } = require('@opentelemetry/instrumentation-pg') as typeof import('@opentelemetry/instrumentation-pg');
  let processor;
  if (opts.exporter) processor = new sdk.SimpleSpanProcessor({ exporter: opts.exporter });
  else if (tracesExporter(env) === 'console') processor = new sdk.SimpleSpanProcessor({ exporter: new sdk.ConsoleSpanExporter() });
  else {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
    processor = new sdk.BatchSpanProcessor({ exporter: new OTLPTraceExporter() });
  }
  /* eslint-enable @typescript-eslint/no-require-imports */
  const provider = new sdk.TracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME ?? 'earshot' }),
    spanProcessors: [processor],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  const unregister = registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => /^\/(healthz|readyz|metrics)\b/.test(req.url ?? ''),
        startIncomingSpanHook: (req) => serverSpanUrl(req.url ?? '/'),
      }),
      new PgInstrumentation({ enhancedDatabaseReporting: false }),
    ],
  });
  return {
    async shutdown() {
      unregister();
      await provider.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}

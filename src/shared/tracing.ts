import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Link, type Span } from '@opentelemetry/api';

/**
 * What the code needs from OpenTelemetry, on the API alone: with no SDK registered (OTEL_* unset,
 * src/tracing/setup.ts) every call here is the API's no-op and costs next to nothing.
 */
export const tracer = () => trace.getTracer('earshot');

/** The W3C trace context (`traceparent`, `tracestate`) of `ctx` as headers; {} without a span. */
export function traceHeaders(ctx: Context = context.active()): Record<string, string> {
  const out: Record<string, string> = {};
  propagation.inject(ctx, out);
  return out;
}

/**
 * Most bytes of a carried `traceparent` read: version 00 is 55 characters, a later version is read
 * by its first 55. Most bytes of a `tracestate` read, cut back to its last whole list member: the
 * W3C limits are 32 members and 512 characters carried on (OpenTelemetry's TraceState keeps no
 * more), and this leaves room for optional whitespace and a member it drops.
 */
const MAX_TRACEPARENT_BYTES = 512;
const MAX_TRACESTATE_BYTES = 1024;

/**
 * The context carried by Kafka or outbox headers (string or Buffer values). Only `traceparent`
 * and `tracestate` are read, each a bounded prefix in a string of its own. Before, every header
 * was decoded whole, tracing on or off, and a tracestate was kept whole by the spans of its chunk
 * until exported, then parsed member by member: 40 messages of a 28 kB gzip batch, each with a
 * 700 kB tracestate, cost 130 ms of decoding per attempt at the chunk with tracing off; with it
 * on, 28 MB kept by the spans and 1.8 s of the event loop to export them.
 */
export function contextFromHeaders(headers: Record<string, unknown> | null | undefined): Context {
  const carrier: Record<string, string> = {};
  const parent = headers && Object.hasOwn(headers, 'traceparent') ? headerPrefix(headers.traceparent, MAX_TRACEPARENT_BYTES) : null;
  if (parent) carrier.traceparent = parent.text;
  const state = parent && Object.hasOwn(headers!, 'tracestate') ? headerPrefix(headers!.tracestate, MAX_TRACESTATE_BYTES) : null;
  if (state) carrier.tracestate = state.cut ? state.text.slice(0, Math.max(0, state.text.lastIndexOf(','))) : state.text;
  return propagation.extract(ROOT_CONTEXT, carrier);
}

/** At most `max` bytes of a string or Buffer header value, decoded into a new string; null for anything else (a repeated header). */
function headerPrefix(v: unknown, max: number): { text: string; cut: boolean } | null {
  const bytes = typeof v === 'string' ? Buffer.from(v.length > max ? v.slice(0, max + 1) : v) : Buffer.isBuffer(v) ? v : null;
  if (!bytes) return null;
  return { text: bytes.toString('utf8', 0, Math.min(bytes.length, max)), cut: bytes.length > max };
}

/** Runs `fn` in a new active span; records an exception and ends the span either way. */
export async function inSpan<T>(
  name: string,
  opts: { kind?: SpanKind; parent?: Context; links?: Link[]; attributes?: Attributes },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = opts.parent ?? context.active();
  const span = tracer().startSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, links: opts.links, attributes: opts.attributes }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (e) {
    span.recordException(e as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
    throw e;
  } finally {
    span.end();
  }
}

export { SpanKind, SpanStatusCode, trace, context };

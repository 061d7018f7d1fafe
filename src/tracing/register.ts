import { startTracing } from './setup';

/** Imported first by main.ts: tracing (when OTEL_* asks for it) before any instrumented module loads. */
export const tracing = startTracing();

import { describe, expect, it } from 'vitest';
import { startTracing, tracesExporter, tracesExporterProblem, tracingEnabled } from './setup';

describe('OTEL_TRACES_EXPORTER', () => {
  // `Console` turned tracing on (case-insensitive) and then exported to OTLP (case-sensitive)
  it('names the console exporter in any case, trimmed, as it turns tracing on', () => {
    for (const value of ['console', 'Console', 'CONSOLE', ' console\r']) {
      expect(tracingEnabled({ OTEL_TRACES_EXPORTER: value }), value).toBe(true);
      expect(tracesExporter({ OTEL_TRACES_EXPORTER: value }), value).toBe('console');
    }
    expect(tracesExporter({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe('otlp');
    expect(tracesExporter({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe('otlp');
  });

  // `zipkin` (and any other name) was read as OTLP: spans went to a collector nobody had named
  it('refuses an exporter Earshot does not have, naming the ones it has, and does not start tracing for it', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    for (const value of ['zipkin', 'Jaeger', 'prometheus', 'otlp,console', 'otlp ,none', 'oltp']) {
      expect(tracesExporterProblem({ OTEL_TRACES_EXPORTER: value }), value).toBe(`OTEL_TRACES_EXPORTER=${JSON.stringify(value)}: expected one of none, otlp, console (one exporter, in any case): Earshot has no other`);
      expect(tracingEnabled({ OTEL_TRACES_EXPORTER: value, ...endpoint }), value).toBe(false);
      expect(startTracing({ OTEL_TRACES_EXPORTER: value, ...endpoint }), value).toBeNull();
    }
    // what was taken before still is: the three names in any case, trimmed; empty is unset
    for (const value of ['none', 'None', 'otlp', 'OTLP', ' otlp\r', 'console', 'CONSOLE', '', '  ']) expect(tracesExporterProblem({ OTEL_TRACES_EXPORTER: value }), value).toBeNull();
    expect(tracesExporterProblem({})).toBeNull();
    // OTEL_SDK_DISABLED=true turns tracing off whatever the exporter names
    expect(tracesExporterProblem({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'zipkin' })).toBeNull();
  });
});

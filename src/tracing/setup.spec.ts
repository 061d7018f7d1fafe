import { describe, expect, it } from 'vitest';
import { tracesExporter, tracingEnabled } from './setup';

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
});

import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config';

describe('loadConfig', () => {
  it('gives the documented defaults on an empty environment', () => {
    const c = loadConfig({});
    expect(c.port).toBe(4000);
    expect(c.roles).toEqual(['api', 'ingest', 'sync']);
    expect(c.databaseUrl).toBeNull();
    expect(c.auth.open).toBe(true);
    expect(c.kafka.brokers).toBeNull();
    expect(c.kafka.topics).toEqual(['interactions.v1']);
    expect(Object.isFrozen(c.auth)).toBe(true);
  });

  it('names every invalid variable at once', () => {
    let error: unknown;
    try {
      loadConfig({ PORT: 'eighty', EARSHOT_ROLES: 'api,cook', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://x', KAFKA_BROKERS: 'nohost' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const text = (error as ConfigError).message;
    for (const name of ['PORT', 'EARSHOT_ROLES', 'LOG_LEVEL', 'DATABASE_URL', 'KAFKA_BROKERS']) expect(text).toContain(name);
    expect((error as ConfigError).problems).toHaveLength(5);
  });

  it('refuses to run open in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/requires authentication/);
    const c = loadConfig({ NODE_ENV: 'production', EARSHOT_API_KEYS: 'k-0123456789abcdef:admin:ops' });
    expect(c.auth.open).toBe(false);
    expect(c.auth.apiKeys).toEqual([{ key: 'k-0123456789abcdef', role: 'admin', name: 'ops' }]);
  });

  it('rejects short keys and unknown roles in EARSHOT_API_KEYS', () => {
    expect(() => loadConfig({ EARSHOT_API_KEYS: 'short:admin' })).toThrow(/at least 16/);
    expect(() => loadConfig({ EARSHOT_API_KEYS: 'k-0123456789abcdef:boss' })).toThrow(/role one of/);
  });

  it('accepts a subset of roles', () => {
    expect(loadConfig({ EARSHOT_ROLES: 'ingest, api' }).roles).toEqual(['ingest', 'api']);
  });

  it('turns introspection, suggestions and an open /metrics off in production, unless enabled', () => {
    const auth = { EARSHOT_API_KEYS: 'k-0123456789abcdef:admin' };
    const dev = loadConfig({ ...auth });
    expect(dev.graphql).toMatchObject({ introspection: true, fieldSuggestions: true, maxTokens: 2000, maxDepth: 12, maxAliases: 30, maxComplexity: 20000 });
    expect(dev.metrics.onMainPort).toBe(true);
    const prod = loadConfig({ ...auth, NODE_ENV: 'production' });
    expect(prod.graphql).toMatchObject({ introspection: false, fieldSuggestions: false });
    expect(prod.metrics.onMainPort).toBe(false);
    expect(loadConfig({ ...auth, NODE_ENV: 'production', EARSHOT_METRICS_KEY: 'm-0123456789abcdef' }).metrics.onMainPort).toBe(true);
    expect(loadConfig({ ...auth, NODE_ENV: 'production', EARSHOT_GRAPHQL_INTROSPECTION: 'true' }).graphql.introspection).toBe(true);
    let message = '';
    try {
      loadConfig({ ...auth, EARSHOT_GRAPHQL_MAX_DEPTH: '1', EARSHOT_METRICS_KEY: 'short', EARSHOT_GRAPHQL_INTROSPECTION: 'yes', EARSHOT_METRICS_OPERATIONS: 'ok,not-a-name' });
    } catch (e) {
      message = (e as Error).message;
    }
    for (const v of ['EARSHOT_GRAPHQL_MAX_DEPTH', 'EARSHOT_METRICS_KEY', 'EARSHOT_GRAPHQL_INTROSPECTION', 'EARSHOT_METRICS_OPERATIONS']) expect(message).toContain(v);
  });
});

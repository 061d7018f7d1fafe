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

  it('serves the console by default outside production only, and lets either be changed', () => {
    const key = { EARSHOT_API_KEYS: 'k-0123456789abcdef:admin:ops' };
    expect(loadConfig({}).console).toBe(true);
    expect(loadConfig({ NODE_ENV: 'production', ...key }).console).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production', EARSHOT_CONSOLE: 'on', ...key }).console).toBe(true);
    expect(loadConfig({ EARSHOT_CONSOLE: 'off' }).console).toBe(false);
    expect(() => loadConfig({ EARSHOT_CONSOLE: 'yes' })).toThrow(/EARSHOT_CONSOLE/);
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
});

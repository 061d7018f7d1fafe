import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, knownVariableNames, loadConfig } from './config';

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

  it('reads the model server settings with sane defaults and names the bad ones', () => {
    const d = loadConfig({}).sentiment;
    expect(d).toMatchObject({ url: null, timeoutMs: 2000, batchSize: 64, breakerErrorPercent: 50, breakerMinRequests: 5, breakerResetMs: 30000, rescoreBatchSize: 500 });
    const c = loadConfig({ EARSHOT_SENTIMENT_URL: 'http://models.internal:8080/v1/score', EARSHOT_SENTIMENT_TIMEOUT_MS: '750', EARSHOT_SENTIMENT_BATCH_SIZE: '32' }).sentiment;
    expect(c).toMatchObject({ url: 'http://models.internal:8080/v1/score', timeoutMs: 750, batchSize: 32 });
    let error: unknown;
    try {
      loadConfig({ EARSHOT_SENTIMENT_URL: 'ftp://x', EARSHOT_SENTIMENT_TIMEOUT_MS: '0', EARSHOT_SENTIMENT_BATCH_SIZE: 'many', EARSHOT_SENTIMENT_BREAKER_ERROR_PERCENT: '150' });
    } catch (e) {
      error = e;
    }
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of ['EARSHOT_SENTIMENT_URL', 'EARSHOT_SENTIMENT_TIMEOUT_MS', 'EARSHOT_SENTIMENT_BATCH_SIZE', 'EARSHOT_SENTIMENT_BREAKER_ERROR_PERCENT']) expect(problems).toContain(name);
  });

  it('lets a fetch wait for a batch: 512 KiB or 100 ms by default, bounded, bad values named', () => {
    expect(loadConfig({}).kafka).toMatchObject({ fetchMinBytes: 524_288, fetchMaxWaitMs: 100 });
    expect(loadConfig({ KAFKA_FETCH_MIN_BYTES: '1', KAFKA_FETCH_MAX_WAIT_MS: '1000' }).kafka).toMatchObject({ fetchMinBytes: 1, fetchMaxWaitMs: 1000 });
    let error: unknown;
    try {
      loadConfig({ KAFKA_FETCH_MIN_BYTES: '0', KAFKA_FETCH_MAX_WAIT_MS: 'soon' });
    } catch (e) {
      error = e;
    }
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of ['KAFKA_FETCH_MIN_BYTES', 'KAFKA_FETCH_MAX_WAIT_MS']) expect(problems).toContain(name);
    // a fetch longer than the heartbeat interval would cost the member its partitions
    expect(() => loadConfig({ KAFKA_SESSION_TIMEOUT_MS: '6000', KAFKA_FETCH_MAX_WAIT_MS: '2500' })).toThrow(/KAFKA_FETCH_MAX_WAIT_MS=2500: must be at most a third of KAFKA_SESSION_TIMEOUT_MS/);
    expect(() => loadConfig({ KAFKA_FETCH_MIN_BYTES: String(64 * 1024 * 1024) })).toThrow(/KAFKA_FETCH_MIN_BYTES/);
    expect(loadConfig({ KAFKA_SESSION_TIMEOUT_MS: '6000', KAFKA_FETCH_MAX_WAIT_MS: '2000' }).kafka.fetchMaxWaitMs).toBe(2000);
  });

  it('stores a backlog in chunks of 500 messages by default, bounded, bad values named', () => {
    expect(loadConfig({}).kafka.chunkSize).toBe(500);
    expect(loadConfig({ KAFKA_CHUNK_SIZE: '1' }).kafka.chunkSize).toBe(1);
    expect(loadConfig({ KAFKA_CHUNK_SIZE: '10000' }).kafka.chunkSize).toBe(10_000);
    for (const bad of ['0', '10001', 'many', '1.5']) expect(() => loadConfig({ KAFKA_CHUNK_SIZE: bad })).toThrow(/KAFKA_CHUNK_SIZE/);
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

  it('reads the WebSocket re-check interval and per-principal cap, and refuses bad values naming each', () => {
    const c = loadConfig({});
    expect(c.ws).toEqual({ recheckMs: 60_000, maxConnectionsPerPrincipal: 100 });
    expect(loadConfig({ EARSHOT_WS_RECHECK_MS: '500', EARSHOT_WS_MAX_CONNECTIONS_PER_PRINCIPAL: '3' }).ws).toEqual({ recheckMs: 500, maxConnectionsPerPrincipal: 3 });
    let message = '';
    try {
      loadConfig({ EARSHOT_WS_RECHECK_MS: '10', EARSHOT_WS_MAX_CONNECTIONS_PER_PRINCIPAL: '0' });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('EARSHOT_WS_RECHECK_MS="10": expected an integer from 500 to 86400000');
    expect(message).toContain('EARSHOT_WS_MAX_CONNECTIONS_PER_PRINCIPAL="0": expected an integer from 1 to 1000000');
    expect(() => loadConfig({ EARSHOT_WS_MAX_CONNECTIONS_PER_PRINCIPAL: 'many' })).toThrow(/EARSHOT_WS_MAX_CONNECTIONS_PER_PRINCIPAL/);
  });

  it('warns about an unknown EARSHOT_* variable with the closest known name, and not about known ones', () => {
    const config = loadConfig({ EARSHOT_ROLE: 'api', EARSHOT_RETENTION_DAYS: '30', EARSHOT_SF_USERNAME: 'u', EARSHOT_HUBSPOT_TOKEN: 't', EARSHOT_NOTHING_LIKE_IT_AT_ALL: '1', OTHER_VAR: 'x' });
    expect(config.warnings).toEqual([
      'EARSHOT_NOTHING_LIKE_IT_AT_ALL is not a variable Earshot knows',
      'EARSHOT_ROLE is not a variable Earshot knows; did you mean EARSHOT_ROLES?',
    ]);
    expect(config.retentionDays).toBe(30);
    expect(loadConfig({}).warnings).toEqual([]);
    expect(loadConfig({}).retentionDays).toBeNull();
    expect(() => loadConfig({ EARSHOT_RETENTION_DAYS: '0' })).toThrow(/EARSHOT_RETENTION_DAYS/);
  });

  it('knows every EARSHOT_* name the source reads', () => {
    const known = knownVariableNames();
    const src = readdirSync(path.join(__dirname, '..'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts'))
      .map((f) => readFileSync(path.join(__dirname, '..', f), 'utf8'))
      .join('\n');
    const names = new Set([...src.matchAll(/['`](EARSHOT_[A-Z0-9_]+)['`]/g)].map((m) => m[1]!));
    expect([...names].filter((n) => !known.has(n))).toEqual([]);
  });
});

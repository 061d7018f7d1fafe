import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, knownVariableNames, loadConfig, type Config } from './config';

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
    const config = loadConfig({ EARSHOT_ROLE: 'api', EARSHOT_RETENTION_DAYS: '30', EARSHOT_SF_USERNAME: 'u', EARSHOT_SF_PASSWORD: 'p', EARSHOT_HUBSPOT_TOKEN: 't', EARSHOT_NOTHING_LIKE_IT_AT_ALL: '1', OTHER_VAR: 'x' });
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

/**
 * The promise to an operator: Earshot starts with exactly what was meant, or refuses naming the
 * variable, the value (never a secret) and what is expected; never a different value in silence.
 * Each row: an environment, and either the value read (`get` → `value`) or the problem (`error`).
 */
describe('loadConfig with the values operators really set', () => {
  const K1 = 'k-0123456789abcdef';
  const K2 = 'k-fedcba9876543210';
  const SECRET = 's3cret-'.repeat(6);
  type Row = { env: Record<string, string>; get?: (c: Config) => unknown; value?: unknown; error?: RegExp };
  const rows: Record<string, Row> = {
    // integers: digits only, surrounding blanks and a CR dropped
    'PORT 4000\\r (a file saved on Windows)': { env: { PORT: '4000\r' }, get: (c) => c.port, value: 4000 },
    'PORT " 4000 "': { env: { PORT: ' 4000 ' }, get: (c) => c.port, value: 4000 },
    'PORT empty: the default': { env: { PORT: '' }, get: (c) => c.port, value: 4000 },
    'PORT blank: the default': { env: { PORT: '  \t' }, get: (c) => c.port, value: 4000 },
    'PORT 0: any free port': { env: { PORT: '0' }, get: (c) => c.port, value: 0 },
    'PORT -0 is 0, not -0': { env: { PORT: '-0' }, get: (c) => Object.is(c.port, 0), value: true },
    "PORT '4000' with the quotes kept": { env: { PORT: "'4000'" }, error: /^PORT: the value is wrapped in quotes \('…'\)/ },
    'PORT "4000" with the quotes kept': { env: { PORT: '"4000"' }, error: /^PORT: the value is wrapped in quotes \("…"\)/ },
    'PORT -1': { env: { PORT: '-1' }, error: /^PORT="-1": expected an integer from 0 to 65535$/ },
    'PORT 65536': { env: { PORT: '65536' }, error: /^PORT="65536": expected an integer from 0 to 65535$/ },
    'PORT 1.5': { env: { PORT: '1.5' }, error: /^PORT="1.5": expected an integer/ },
    'PORT 1.0': { env: { PORT: '1.0' }, error: /^PORT="1.0": expected an integer/ },
    'PORT 1e3 (was 1000)': { env: { PORT: '1e3' }, error: /^PORT="1e3": expected an integer/ },
    'PORT 0x10 (was 16)': { env: { PORT: '0x10' }, error: /^PORT="0x10": expected an integer/ },
    'a trusted-documents manifest with the mode left unset (was ignored)': { env: { EARSHOT_PERSISTED_OPERATIONS: '/etc/earshot/manifest.json' }, error: /^EARSHOT_PERSISTED_OPERATIONS is set but EARSHOT_TRUSTED_DOCUMENTS is not: set it to only/ },
    'gap threshold 0x0 (was 0)': { env: { EARSHOT_GAP_NEGATIVE_THRESHOLD: '0x0' }, error: /^EARSHOT_GAP_NEGATIVE_THRESHOLD="0x0": expected a decimal score from -1 to 1/ },
    'PORT 0b11 (was 3)': { env: { PORT: '0b11' }, error: /^PORT="0b11": expected an integer/ },
    'PORT 4 000': { env: { PORT: '4 000' }, error: /^PORT="4 000": expected an integer/ },
    'PORT beyond MAX_SAFE_INTEGER': { env: { PORT: '9007199254740993' }, error: /^PORT="9007199254740993": expected an integer/ },
    'DATABASE_POOL_SIZE 1e1 (was 10)': { env: { DATABASE_POOL_SIZE: '1e1' }, error: /^DATABASE_POOL_SIZE="1e1": expected an integer from 1 to 200$/ },
    'EARSHOT_SHUTDOWN_TIMEOUT_MS 30s': { env: { EARSHOT_SHUTDOWN_TIMEOUT_MS: '30s' }, error: /^EARSHOT_SHUTDOWN_TIMEOUT_MS="30s": expected an integer from 0 to 600000 \(milliseconds, digits only\)$/ },
    'EARSHOT_INGEST_MAX_BYTES 10MB': { env: { EARSHOT_INGEST_MAX_BYTES: '10MB' }, error: /^EARSHOT_INGEST_MAX_BYTES="10MB": expected an integer .* \(bytes, digits only\)$/ },
    'EARSHOT_RETENTION_DAYS 30d': { env: { EARSHOT_RETENTION_DAYS: '30d' }, error: /^EARSHOT_RETENTION_DAYS="30d": expected an integer from 1 to 36500 \(days, digits only\)$/ },
    'EARSHOT_CRM_SYNC_INTERVAL_MS 1e6 (crm.config)': { env: { EARSHOT_CRM_SYNC_INTERVAL_MS: '1e6' }, error: /^EARSHOT_CRM_SYNC_INTERVAL_MS="1e6"/ },
    'EARSHOT_IDENTITY_AUTO_LINK_BITS 12.5': { env: { EARSHOT_IDENTITY_AUTO_LINK_BITS: '12.5' }, get: (c) => c.identity.autoLinkBits, value: 12.5 },
    'EARSHOT_IDENTITY_AUTO_LINK_BITS 0x0F (was 15)': { env: { EARSHOT_IDENTITY_AUTO_LINK_BITS: '0x0F' }, error: /^EARSHOT_IDENTITY_AUTO_LINK_BITS="0x0F": expected a number of bits/ },
    // strings a quote would silently change
    "HOST '0.0.0.0'": { env: { HOST: "'0.0.0.0'" }, error: /^HOST: the value is wrapped in quotes/ },
    'KAFKA_GROUP_ID "earshot" (was a group named with quotes)': { env: { KAFKA_GROUP_ID: '"earshot"' }, error: /^KAFKA_GROUP_ID: the value is wrapped in quotes/ },
    'KAFKA_GROUP_ID with a CR': { env: { KAFKA_GROUP_ID: 'earshot-ingest\r' }, get: (c) => c.kafka.groupId, value: 'earshot-ingest' },
    'KAFKA_CLIENT_ID a lone quote is a value': { env: { KAFKA_CLIENT_ID: "'" }, get: (c) => c.kafka.clientId, value: "'" },
    'EARSHOT_DATA_DIR ~/earshot (was ./~/earshot)': { env: { EARSHOT_DATA_DIR: '~/earshot' }, error: /^EARSHOT_DATA_DIR="~\/earshot": ~ is not expanded here/ },
    'EARSHOT_DEFAULT_PHONE_REGION gb': { env: { EARSHOT_DEFAULT_PHONE_REGION: 'gb' }, get: (c) => c.identity.defaultPhoneRegion, value: 'GB' },
    'EARSHOT_DEFAULT_PHONE_REGION USA (read no phone at all)': { env: { EARSHOT_DEFAULT_PHONE_REGION: 'USA' }, error: /^EARSHOT_DEFAULT_PHONE_REGION="USA": expected a two-letter region code/ },
    'EARSHOT_DEFAULT_PHONE_REGION UK (not a region)': { env: { EARSHOT_DEFAULT_PHONE_REGION: 'UK' }, error: /^EARSHOT_DEFAULT_PHONE_REGION="UK"/ },
    // enumerations and booleans: refused, never guessed
    'NODE_ENV Production': { env: { NODE_ENV: 'Production' }, error: /^NODE_ENV="Production": expected one of development, production, test$/ },
    'NODE_ENV production\\r': { env: { NODE_ENV: 'production\r', EARSHOT_API_KEYS: `${K1}:admin` }, get: (c) => c.nodeEnv, value: 'production' },
    'LOG_LEVEL INFO': { env: { LOG_LEVEL: 'INFO' }, error: /^LOG_LEVEL="INFO": expected one of/ },
    'KAFKA_SSL TRUE': { env: { KAFKA_SSL: 'TRUE' }, error: /^KAFKA_SSL="TRUE": expected true or false$/ },
    'KAFKA_SSL yes': { env: { KAFKA_SSL: 'yes' }, error: /^KAFKA_SSL="yes": expected true or false$/ },
    'KAFKA_CREATE_TOPICS 0': { env: { KAFKA_CREATE_TOPICS: '0' }, error: /^KAFKA_CREATE_TOPICS="0": expected true or false$/ },
    'EARSHOT_CRM_WRITEBACK off': { env: { EARSHOT_CRM_WRITEBACK: 'off' }, get: (c) => c.crm.writeBack, value: false },
    'EARSHOT_CRM_WRITEBACK 0': { env: { EARSHOT_CRM_WRITEBACK: '0' }, get: (c) => c.crm.writeBack, value: false },
    'EARSHOT_CRM_WRITEBACK yes': { env: { EARSHOT_CRM_WRITEBACK: 'yes' }, error: /^EARSHOT_CRM_WRITEBACK="yes": expected true or false/ },
    'EARSHOT_GRAPHQL_JIT TRUE': { env: { EARSHOT_GRAPHQL_JIT: 'TRUE' }, error: /^EARSHOT_GRAPHQL_JIT="TRUE": expected true or false$/ },
    'EARSHOT_CONSOLE yes': { env: { EARSHOT_CONSOLE: 'yes' }, error: /^EARSHOT_CONSOLE="yes": expected one of on, off$/ },
    'EARSHOT_ROLES "api, ingest," with a repeat': { env: { EARSHOT_ROLES: 'api, ingest,api,' }, get: (c) => c.roles, value: ['api', 'ingest'] },
    'EARSHOT_ROLES ","': { env: { EARSHOT_ROLES: ',' }, error: /^EARSHOT_ROLES=",": expected a comma-separated subset/ },
    // API keys
    'EARSHOT_API_KEYS with spaces and a trailing comma': {
      env: { EARSHOT_API_KEYS: ` ${K1}:admin:root, ${K2} : agent : bob ,` },
      get: (c) => c.auth.apiKeys,
      value: [{ key: K1, role: 'admin', name: 'root' }, { key: K2, role: 'agent', name: 'bob' }],
    },
    'EARSHOT_API_KEYS an empty name gets the default': { env: { EARSHOT_API_KEYS: `${K1}:admin:` }, get: (c) => c.auth.apiKeys, value: [{ key: K1, role: 'admin', name: 'key1' }] },
    'EARSHOT_API_KEYS one key, two roles': { env: { EARSHOT_API_KEYS: `${K1}:admin:root,${K1}:agent:bob` }, error: /^EARSHOT_API_KEYS entries 1 and 2 have the same key/ },
    'EARSHOT_API_KEYS the same entry twice': { env: { EARSHOT_API_KEYS: `${K1}:admin,${K1}:admin` }, error: /^EARSHOT_API_KEYS entries 1 and 2 have the same key/ },
    'EARSHOT_API_KEYS a key of 15 characters': { env: { EARSHOT_API_KEYS: 'k-0123456789abc:admin' }, error: /^EARSHOT_API_KEYS entry 1: the key must have at least 16 characters$/ },
    'EARSHOT_API_KEYS a key with a space inside': { env: { EARSHOT_API_KEYS: 'k-01234567 89abcdef:admin' }, error: /^EARSHOT_API_KEYS entry 1: the key has white space inside$/ },
    'EARSHOT_API_KEYS role Admin': { env: { EARSHOT_API_KEYS: `${K1}:Admin` }, error: /^EARSHOT_API_KEYS entry 1: expected key:role\[:name\] with role one of/ },
    'EARSHOT_API_KEYS key:role:name:more (was cut)': { env: { EARSHOT_API_KEYS: `${K1}:admin:ops:x` }, error: /^EARSHOT_API_KEYS entry 1: expected key:role\[:name\] \(4 parts/ },
    'EARSHOT_API_KEYS a key without role': { env: { EARSHOT_API_KEYS: K1 }, error: /^EARSHOT_API_KEYS entry 1: expected key:role\[:name\] \(1 part / },
    'EARSHOT_API_KEYS "," (ran open)': { env: { EARSHOT_API_KEYS: ' , ' }, error: /^EARSHOT_API_KEYS: no entry/ },
    "EARSHOT_API_KEYS '…' quoted (key and name took a quote)": { env: { EARSHOT_API_KEYS: `'${K1}:admin:ops'` }, error: /^EARSHOT_API_KEYS: the value is wrapped in quotes/ },
    'EARSHOT_JWT_SECRET quoted': { env: { EARSHOT_JWT_SECRET: `"${SECRET}"` }, error: /^EARSHOT_JWT_SECRET: the value is wrapped in quotes/ },
    // "a,b" was one audience named "a,b" that no token carried
    'EARSHOT_JWT_AUDIENCE one': { env: { EARSHOT_JWT_AUDIENCE: 'api://earshot' }, get: (c) => c.auth.jwtAudience, value: ['api://earshot'] },
    'EARSHOT_JWT_AUDIENCE " a , b ,a" (was one audience)': { env: { EARSHOT_JWT_AUDIENCE: ' api://earshot , https://earshot.example.com ,api://earshot' }, get: (c) => c.auth.jwtAudience, value: ['api://earshot', 'https://earshot.example.com'] },
    'EARSHOT_JWT_AUDIENCE unset: not checked': { env: {}, get: (c) => c.auth.jwtAudience, value: null },
    'EARSHOT_JWT_AUDIENCE "a,,b"': { env: { EARSHOT_JWT_AUDIENCE: 'a,,b' }, error: /^EARSHOT_JWT_AUDIENCE="a,,b": expected one audience or a comma-separated list of them, with no empty entry$/ },
    'EARSHOT_JWT_AUDIENCE "a,"': { env: { EARSHOT_JWT_AUDIENCE: 'a,' }, error: /^EARSHOT_JWT_AUDIENCE="a,": expected one audience or a comma-separated list/ },
    'EARSHOT_JWT_AUDIENCE ","': { env: { EARSHOT_JWT_AUDIENCE: ' , ' }, error: /^EARSHOT_JWT_AUDIENCE=",": expected one audience/ },
    // any other exporter was read as OTLP
    'OTEL_TRACES_EXPORTER zipkin (was OTLP)': { env: { OTEL_TRACES_EXPORTER: 'zipkin' }, error: /^OTEL_TRACES_EXPORTER="zipkin": expected one of none, otlp, console \(one exporter, in any case\): Earshot has no other$/ },
    'OTEL_TRACES_EXPORTER otlp,console': { env: { OTEL_TRACES_EXPORTER: 'otlp,console' }, error: /^OTEL_TRACES_EXPORTER="otlp,console": expected one of none, otlp, console/ },
    'OTEL_TRACES_EXPORTER Console': { env: { OTEL_TRACES_EXPORTER: 'Console' }, get: (c) => c.warnings, value: [] },
    'OTEL_TRACES_EXPORTER zipkin with OTEL_SDK_DISABLED=true': { env: { OTEL_TRACES_EXPORTER: 'zipkin', OTEL_SDK_DISABLED: 'true' }, get: (c) => c.warnings, value: [] },
    'EARSHOT_JWT_SECRET with a CR': { env: { EARSHOT_JWT_SECRET: `${SECRET}\r` }, get: (c) => c.auth.jwtSecret, value: SECRET },
    // URLs and addresses
    'DATABASE_URL without scheme': { env: { DATABASE_URL: 'earshot:pw@db:5432/earshot' }, error: /^DATABASE_URL: expected a postgres: or postgresql: URL$/ },
    'DATABASE_URL host:port only': { env: { DATABASE_URL: 'localhost:5432' }, error: /^DATABASE_URL: expected a postgres: or postgresql: URL$/ },
    // libpq's Unix-socket forms, which node-postgres reads: both were refused as "expected a postgres: or postgresql: URL"
    'DATABASE_URL over a Unix socket (empty host, ?host=/run/postgresql)': { env: { DATABASE_URL: 'postgresql://earshot:pw@/earshot?host=/run/postgresql' }, get: (c) => c.databaseUrl, value: 'postgresql://earshot:pw@/earshot?host=/run/postgresql' },
    'DATABASE_URL over a Unix socket (no user, ?sslmode=disable&host=%2Ftmp)': { env: { DATABASE_URL: 'postgres:///earshot?sslmode=disable&host=%2Ftmp' }, get: (c) => c.databaseUrl, value: 'postgres:///earshot?sslmode=disable&host=%2Ftmp' },
    // a # or / in the password cuts the URL: say what to do, never the value
    'DATABASE_URL with a # in the password': { env: { DATABASE_URL: 'postgres://bob:S3cr3t#Pw@db:5432/earshot' }, error: /^DATABASE_URL: not a URL that can be read: percent-encode reserved characters in the user name and password \(# as %23/ },
    'DATABASE_URL with a / in the password': { env: { DATABASE_URL: 'postgres://bob:S3cr3t/Pw@db:5432/earshot' }, error: /^DATABASE_URL: not a URL that can be read: percent-encode/ },
    // DATABASE_URL as node-postgres and TypeORM read it: "URI malformed" (exit 1) or SSL turned on in silence
    'DATABASE_URL with a bare % in the password (was "URI malformed" at every start)': { env: { DATABASE_URL: 'postgres://bob:50%off@db:5432/earshot' }, error: /^DATABASE_URL: the user name or password holds a % that starts no percent-encoded character: write % as %25/ },
    'DATABASE_URL with %25 in the password': { env: { DATABASE_URL: 'postgres://bob:50%25off@db:5432/earshot' }, get: (c) => c.databaseUrl, value: 'postgres://bob:50%25off@db:5432/earshot' },
    'DATABASE_URL with an @ and a space in the password, not encoded': { env: { DATABASE_URL: 'postgres://bob:p@ss word@db:5432/earshot' }, get: (c) => c.databaseUrl, value: 'postgres://bob:p@ss word@db:5432/earshot' },
    'DATABASE_URL sslmode=verify-full': { env: { DATABASE_URL: 'postgres://bob@db/earshot?sslmode=verify-full' }, get: (c) => c.databaseUrl, value: 'postgres://bob@db/earshot?sslmode=verify-full' },
    'DATABASE_URL sslmode=requre (was SSL with full verification)': { env: { DATABASE_URL: 'postgres://bob@db/earshot?sslmode=requre' }, error: /^DATABASE_URL: sslmode="requre": expected one of disable, prefer, require, verify-ca, verify-full, no-verify$/ },
    'DATABASE_URL sslmode=allow (node-postgres turned SSL on)': { env: { DATABASE_URL: 'postgres://bob@/earshot?host=/run/postgresql&sslmode=allow' }, error: /^DATABASE_URL: sslmode=allow is not taken \(libpq connects without SSL and tries SSL only when refused\): use prefer \(SSL when the server offers it, else without\) or disable$/ },
    'DATABASE_URL ssl=false (was SSL on)': { env: { DATABASE_URL: 'postgres://bob@db/earshot?ssl=false' }, error: /^DATABASE_URL: ssl="false": expected ssl=true or ssl=1 \(SSL on\), ssl=0 \(off\), or an sslmode$/ },
    // what node-postgres took otherwise than libpq: a missing CA file was a stack trace (exit 1), connect_timeout was not read
    'DATABASE_URL sslrootcert that does not exist (was a stack trace)': { env: { DATABASE_URL: 'postgres://bob@db/earshot?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem' }, error: /^DATABASE_URL: sslrootcert="\/nonexistent\/ca.pem": cannot read the file \(no such file\)$/ },
    'DATABASE_URL sslrootcert a directory': { env: { DATABASE_URL: `postgres://bob@db/earshot?sslmode=require&sslrootcert=${encodeURIComponent(tmpdir())}` }, error: /^DATABASE_URL: sslrootcert=".*": cannot read the file \(a directory, not a file\)$/ },
    'DATABASE_URL sslcert that does not exist': { env: { DATABASE_URL: 'postgres://bob@db/earshot?sslmode=require&sslcert=/nonexistent/c.pem' }, error: /^DATABASE_URL: sslcert="\/nonexistent\/c.pem": cannot read the file/ },
    'DATABASE_URL sslmode=verify-ca without sslrootcert': { env: { DATABASE_URL: 'postgres://bob@db/earshot?sslmode=verify-ca' }, error: /^DATABASE_URL: sslmode=verify-ca needs sslrootcert=FILE/ },
    'DATABASE_URL connect_timeout=5': { env: { DATABASE_URL: 'postgres://bob@db/earshot?connect_timeout=5' }, get: (c) => c.databaseUrl, value: 'postgres://bob@db/earshot?connect_timeout=5' },
    'DATABASE_URL connect_timeout=0 (libpq: for ever)': { env: { DATABASE_URL: 'postgres://bob@db/earshot?connect_timeout=0' }, error: /^DATABASE_URL: connect_timeout="0": expected whole seconds from 1 to 3600/ },
    'DATABASE_URL connect_timeout=1.5': { env: { DATABASE_URL: 'postgres://bob@db/earshot?connect_timeout=1.5' }, error: /^DATABASE_URL: connect_timeout="1.5": expected whole seconds/ },
    'DATABASE_URL connect_timeout=10s': { env: { DATABASE_URL: 'postgres://bob@db/earshot?connect_timeout=10s' }, error: /^DATABASE_URL: connect_timeout="10s": expected whole seconds/ },
    'DATABASE_URL with two hosts (was told to percent-encode)': { env: { DATABASE_URL: 'postgres://bob@db1:5432,db2:5432/earshot' }, error: /^DATABASE_URL: several hosts \(host1,host2\) cannot be given: name one host/ },
    'DATABASE_URL port 99999 (was told to percent-encode)': { env: { DATABASE_URL: 'postgres://bob@db:99999/earshot' }, error: /^DATABASE_URL: the port must be from 1 to 65535$/ },
    // HOST is what listen takes: these were looked up as names, and the start ended in a stack trace
    'HOST localhost:4000': { env: { HOST: 'localhost:4000' }, error: /^HOST="localhost:4000": a host name or address only; the port goes in PORT$/ },
    'HOST [::1]': { env: { HOST: '[::1]' }, error: /^HOST="\[::1\]": write the IPv6 address without brackets \(::1\)$/ },
    'HOST http://0.0.0.0': { env: { HOST: 'http://0.0.0.0' }, error: /^HOST="http:\/\/0.0.0.0": a host name or address only, without a scheme$/ },
    'HOST "0.0.0.0,::"': { env: { HOST: '0.0.0.0,::' }, error: /^HOST="0.0.0.0,::": expected one host name or IP address/ },
    'HOST 10.0.1 (the resolver read it as 10.0.0.1)': { env: { HOST: '10.0.1' }, error: /^HOST="10.0.1": not an IPv4 address/ },
    'HOST 127.0.0.256': { env: { HOST: '127.0.0.256' }, error: /^HOST="127.0.0.256": not an IPv4 address/ },
    'HOST ::': { env: { HOST: '::' }, get: (c) => c.host, value: '::' },
    'HOST a container name': { env: { HOST: 'earshot_api-1.internal' }, get: (c) => c.host, value: 'earshot_api-1.internal' },
    'EARSHOT_PUBLIC_URL with a query (links were …?tenant=1/customers/…)': { env: { EARSHOT_PUBLIC_URL: 'https://care.example.com/earshot?tenant=1' }, error: /^EARSHOT_PUBLIC_URL="https:\/\/care.example.com\/earshot\?tenant=1": a base URL .* without \?query or #fragment/ },
    'EARSHOT_PUBLIC_URL with a path and a trailing slash': { env: { EARSHOT_PUBLIC_URL: 'https://care.example.com/earshot/' }, get: (c) => c.publicUrl, value: 'https://care.example.com/earshot' },
    'EARSHOT_DATA_DIR $HOME/earshot (was ./$HOME/earshot)': { env: { EARSHOT_DATA_DIR: '$HOME/earshot' }, error: /^EARSHOT_DATA_DIR="\$HOME\/earshot": variables \(\$NAME\) are not expanded here/ },
    'EARSHOT_DATA_DIR ${STATE_DIRECTORY}/earshot': { env: { EARSHOT_DATA_DIR: '${STATE_DIRECTORY}/earshot' }, error: /^EARSHOT_DATA_DIR=.*: variables \(\$NAME\) are not expanded here/ },
    'EARSHOT_SENTIMENT_TOKEN "Bearer …" (went out as Bearer Bearer …)': { env: { EARSHOT_SENTIMENT_TOKEN: `Bearer ${SECRET}` }, error: /^EARSHOT_SENTIMENT_TOKEN: has white space inside; give the token alone, without "Bearer "/ },
    'KAFKA_REPLICATION_FACTOR 0 (Kafka makes no such topic)': { env: { KAFKA_REPLICATION_FACTOR: '0' }, error: /^KAFKA_REPLICATION_FACTOR="0": expected -1 \(the broker's default\) or a number of copies from 1 to 32$/ },
    'KAFKA_MAX_REQUEST_BYTES 32768 with Kafka (every text was refused)': { env: { KAFKA_BROKERS: 'kafka:9092', KAFKA_MAX_REQUEST_BYTES: '32768' }, error: /^KAFKA_MAX_REQUEST_BYTES=32768: at least 66560 with Kafka/ },
    'KAFKA_MAX_REQUEST_BYTES 32768 without Kafka': { env: { KAFKA_MAX_REQUEST_BYTES: '32768' }, get: (c) => c.kafka.maxRequestBytes, value: 32768 },
    // the listening gap's lists: nothing, or the last of two in silence
    'EARSHOT_GAP_INTENTS "," (opened no item by intent)': { env: { EARSHOT_GAP_INTENTS: ',' }, error: /^EARSHOT_GAP_INTENTS=",": expected a comma-separated list, got no entry$/ },
    'EARSHOT_GAP_SLA a channel twice (the last won)': { env: { EARSHOT_GAP_SLA: 'Finance/email=2h, Finance/email=8h' }, error: /^EARSHOT_GAP_SLA: Finance\/email is given twice, with two durations; give it once$/ },
    'EARSHOT_GAP_SLA overriding a default': { env: { EARSHOT_GAP_SLA: '*/email=8h' }, get: (c) => c.listeningGap.slaSeconds.get('*/email'), value: 8 * 3600 },
    'EARSHOT_GAP_ESCALATION_TARGETS a department twice (the last won)': { env: { EARSHOT_GAP_ESCALATION_TARGETS: 'Finance=hubspot:42,Finance=salesforce' }, error: /^EARSHOT_GAP_ESCALATION_TARGETS: Finance is given twice, with two targets; give it once$/ },
    'EARSHOT_GAP_ESCALATION_TARGETS "," (escalated nothing)': { env: { EARSHOT_GAP_ESCALATION_TARGETS: ' ,' }, error: /^EARSHOT_GAP_ESCALATION_TARGETS=",": expected a comma-separated list, got no entry$/ },
    'KAFKA_BROKERS "a:9092, b:9092," with a repeat': { env: { KAFKA_BROKERS: 'a:9092, b:9092,a:9092,' }, get: (c) => c.kafka.brokers, value: ['a:9092', 'b:9092'] },
    'KAFKA_BROKERS host without port': { env: { KAFKA_BROKERS: 'kafka' }, error: /^KAFKA_BROKERS: "kafka" is not host:port$/ },
    'KAFKA_BROKERS host:99999 (was accepted)': { env: { KAFKA_BROKERS: 'kafka:99999' }, error: /^KAFKA_BROKERS: "kafka:99999": the port must be from 1 to 65535$/ },
    'KAFKA_BROKERS host:0': { env: { KAFKA_BROKERS: 'kafka:0' }, error: /^KAFKA_BROKERS: "kafka:0": the port must be/ },
    'KAFKA_BROKERS [::1]:9092': { env: { KAFKA_BROKERS: '[::1]:9092' }, error: /^KAFKA_BROKERS: "\[::1\]:9092": an IPv6 address cannot be a broker here/ },
    'KAFKA_BROKERS "," (was Kafka on with no broker)': { env: { KAFKA_BROKERS: ',' }, error: /^KAFKA_BROKERS=",": expected a comma-separated list, got no entry$/ },
    // read back what it publishes: every enriched event came in again as a dead letter
    'KAFKA_TOPICS with an output topic': { env: { KAFKA_TOPICS: 'interactions.v1,interactions.enriched.v1' }, error: /^KAFKA_TOPICS: "interactions.enriched.v1" is Earshot's own output topic: it would read back what it publishes$/ },
    'KAFKA_TOPICS with an output topic after its prefix': { env: { KAFKA_TOPICS: 'prod.customer-sentiment.v1', KAFKA_OUTPUT_TOPIC_PREFIX: 'prod.' }, error: /^KAFKA_TOPICS: "prod.customer-sentiment.v1" is Earshot's own output topic \(KAFKA_OUTPUT_TOPIC_PREFIX "prod." \+ customer-sentiment.v1\)/ },
    'KAFKA_TOPICS named like an output topic of another prefix': { env: { KAFKA_TOPICS: 'interactions.enriched.v1', KAFKA_OUTPUT_TOPIC_PREFIX: 'prod.' }, get: (c) => c.kafka.topics, value: ['interactions.enriched.v1'] },
    'KAFKA_TOPICS " , " (was no topic)': { env: { KAFKA_TOPICS: ' , ' }, error: /^KAFKA_TOPICS=" , "|^KAFKA_TOPICS=",": expected a comma-separated list/ },
    'KAFKA_TOPICS with a repeat': { env: { KAFKA_TOPICS: 'a.v1,a.v1, b.v1' }, get: (c) => c.kafka.topics, value: ['a.v1', 'b.v1'] },
    'EARSHOT_JWKS_URL without scheme': { env: { EARSHOT_JWKS_URL: 'idp.example.com/jwks.json' }, error: /^EARSHOT_JWKS_URL: expected a https: or http: URL$/ },
    // settings that contradict or miss each other
    'KAFKA_SASL_USERNAME without a mechanism (was no authentication)': { env: { KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: SECRET }, error: /^KAFKA_SASL_USERNAME\/KAFKA_SASL_PASSWORD need KAFKA_SASL_MECHANISM/ },
    'KAFKA_SASL_MECHANISM without a password': { env: { KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u' }, error: /^KAFKA_SASL_MECHANISM needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD$/ },
    'EARSHOT_METRICS_PORT = PORT': { env: { PORT: '9100', EARSHOT_METRICS_PORT: '9100' }, error: /^EARSHOT_METRICS_PORT must differ from PORT$/ },
    'EARSHOT_METRICS_OPERATIONS 201 names (was cut to 200)': { env: { EARSHOT_METRICS_OPERATIONS: Array.from({ length: 201 }, (_, i) => `Op${i}`).join(',') }, error: /^EARSHOT_METRICS_OPERATIONS: 201 names; at most 200$/ },
    'EARSHOT_IDENTITY_REVIEW_BITS above AUTO_LINK': { env: { EARSHOT_IDENTITY_REVIEW_BITS: '14' }, error: /^EARSHOT_IDENTITY_REVIEW_BITS must not exceed/ },
    'KAFKA_FETCH_MAX_WAIT_MS above a third of the session': { env: { KAFKA_SESSION_TIMEOUT_MS: '6000', KAFKA_FETCH_MAX_WAIT_MS: '2500' }, error: /^KAFKA_FETCH_MAX_WAIT_MS=2500: must be at most a third/ },
    'EARSHOT_SF_USERNAME without a credential (was Salesforce off)': { env: { EARSHOT_SF_USERNAME: 'ops@acme.com', EARSHOT_SF_CLIENT_ID: 'cid' }, error: /^EARSHOT_SF_USERNAME, EARSHOT_SF_CLIENT_ID set, but no Salesforce credential/ },
    'EARSHOT_SF_OBJECTS "," (was nothing synced)': { env: { EARSHOT_SF_USERNAME: 'u', EARSHOT_SF_PASSWORD: SECRET, EARSHOT_SF_OBJECTS: ',' }, error: /^EARSHOT_SF_OBJECTS=",": expected a comma-separated list/ },
    'EARSHOT_SF_WRITEBACK_OBJECTS Acount (was dropped)': { env: { EARSHOT_SF_USERNAME: 'u', EARSHOT_SF_PASSWORD: SECRET, EARSHOT_SF_WRITEBACK_OBJECTS: 'Contact,Acount' }, error: /^EARSHOT_SF_WRITEBACK_OBJECTS: "Acount" is not one of Account, Contact, Lead$/ },
    'EARSHOT_SF_WRITEBACK_OBJECTS Lead, not synced (was dropped)': {
      env: { EARSHOT_SF_USERNAME: 'u', EARSHOT_SF_PASSWORD: SECRET, EARSHOT_SF_OBJECTS: 'Contact,Case', EARSHOT_SF_WRITEBACK_OBJECTS: 'Contact,Lead' },
      error: /^EARSHOT_SF_WRITEBACK_OBJECTS: Lead is not synced \(EARSHOT_SF_OBJECTS=Contact,Case\)/,
    },
    'EARSHOT_SF_OBJECTS default write-back objects not synced: fine': {
      env: { EARSHOT_SF_USERNAME: 'u', EARSHOT_SF_PASSWORD: SECRET, EARSHOT_SF_OBJECTS: 'Contact,Case' },
      get: (c) => c.crm.salesforce!.objects,
      value: ['Contact', 'Case'],
    },
    'EARSHOT_HUBSPOT_CLIENT_ID without a credential': { env: { EARSHOT_HUBSPOT_CLIENT_ID: 'cid' }, error: /^EARSHOT_HUBSPOT_CLIENT_ID set, but no HubSpot credential/ },
    'EARSHOT_HUBSPOT_TOKEN and _REFRESH_TOKEN both (the token won)': {
      env: { EARSHOT_HUBSPOT_TOKEN: SECRET, EARSHOT_HUBSPOT_REFRESH_TOKEN: SECRET, EARSHOT_HUBSPOT_CLIENT_ID: 'c', EARSHOT_HUBSPOT_CLIENT_SECRET: SECRET },
      error: /^EARSHOT_HUBSPOT_TOKEN and EARSHOT_HUBSPOT_REFRESH_TOKEN are both set/,
    },
    'EARSHOT_HUBSPOT_TOKEN "Bearer …" (every call was 401)': { env: { EARSHOT_HUBSPOT_TOKEN: `Bearer ${SECRET}` }, error: /^EARSHOT_HUBSPOT_TOKEN: has white space inside; give the token alone, without "Bearer "/ },
    'EARSHOT_SF_WRITEBACK_FIELDS score twice (the last won)': { env: { EARSHOT_SF_USERNAME: 'u', EARSHOT_SF_PASSWORD: SECRET, EARSHOT_SF_WRITEBACK_FIELDS: 'score=A__c, score=B__c' }, error: /^EARSHOT_SF_WRITEBACK_FIELDS: score is given twice, with two names; give it once$/ },
    'EARSHOT_CRM_RETRY_BASE_MS not under MAX_RETRY_WAIT_MS (no call was retried)': { env: { EARSHOT_CRM_RETRY_BASE_MS: '5000', EARSHOT_CRM_MAX_RETRY_WAIT_MS: '2000' }, error: /^EARSHOT_CRM_RETRY_BASE_MS=5000 must be under EARSHOT_CRM_MAX_RETRY_WAIT_MS \(2000\), or no call is retried/ },
    'EARSHOT_CRM_RETRY_BASE_MS with no retries': { env: { EARSHOT_CRM_RETRY_BASE_MS: '5000', EARSHOT_CRM_MAX_RETRY_WAIT_MS: '2000', EARSHOT_CRM_MAX_RETRIES: '0' }, get: (c) => c.crm.maxRetries, value: 0 },
    'EARSHOT_HUBSPOT_OBJECTS "contacts," ': { env: { EARSHOT_HUBSPOT_TOKEN: SECRET, EARSHOT_HUBSPOT_OBJECTS: 'contacts,' }, get: (c) => c.crm.hubspot!.objects, value: ['contacts'] },
  };

  it.each(Object.entries(rows))('%s', (_label, row) => {
    let config: Config | null = null;
    let error: unknown = null;
    try {
      config = loadConfig(row.env);
    } catch (e) {
      error = e;
    }
    if (row.error) {
      expect(error, 'refused').toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems;
      expect(problems.some((p) => row.error!.test(p)), problems.join('\n')).toBe(true);
      // one line per problem, naming a variable, never a secret
      for (const line of (error as ConfigError).message.split('\n')) expect(line).toMatch(/^(invalid configuration|note): [A-Z]/);
      expect((error as ConfigError).message).not.toContain(SECRET.slice(0, 12));
      expect((error as ConfigError).message).not.toContain('0123456789ab');
    } else {
      expect(error, String(error)).toBeNull();
      expect(row.get!(config!)).toEqual(row.value);
    }
  });

  it('names the secret variable and never its value, however it is wrong', () => {
    const env = {
      EARSHOT_JWT_SECRET: 'hunter2-too-short',
      EARSHOT_METRICS_KEY: 'hunter3-short',
      EARSHOT_API_KEYS: 'hunter4-0123456789:boss,hunter5-0123456789:admin,hunter5-0123456789:agent',
      KAFKA_SASL_PASSWORD: "'hunter6-quoted'",
      EARSHOT_SENTIMENT_TOKEN: '"hunter7-quoted"',
      DATABASE_URL: 'earshot:hunter8@db/earshot',
      EARSHOT_SF_PASSWORD: "'hunter9'",
      http_proxy: 'proxy:hunter10@x',
    };
    let message = '';
    try {
      loadConfig(env);
    } catch (e) {
      message = (e as Error).message;
    }
    for (const name of ['EARSHOT_JWT_SECRET', 'EARSHOT_METRICS_KEY', 'EARSHOT_API_KEYS entry 1', 'EARSHOT_API_KEYS entries 2 and 3', 'KAFKA_SASL_PASSWORD', 'EARSHOT_SENTIMENT_TOKEN', 'DATABASE_URL', 'EARSHOT_SF_PASSWORD', 'http_proxy']) {
      expect(message).toContain(name);
    }
    expect(message).not.toMatch(/hunter/);
  });

  it('adds the unknown names to a refusal: a typo is often its cause', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', EARSHOT_API_KEY: 'k-0123456789abcdef:admin' })).toThrow(
      /requires authentication[^]*\nnote: EARSHOT_API_KEY is not a variable Earshot knows; did you mean EARSHOT_API_KEYS\?/,
    );
    expect(loadConfig({ EARSHOT_GRAPHQL_CONCURENCY: '4' }).warnings).toEqual(['EARSHOT_GRAPHQL_CONCURENCY is not a variable Earshot knows; did you mean EARSHOT_GRAPHQL_CONCURRENCY?']);
  });

  it('warns about a near miss of a KAFKA_* or DATABASE_* name, not about other tools of the prefix', () => {
    expect(loadConfig({ KAFKA_BROKER: 'kafka:9092', DATABASE_UR: 'postgres://x/y', KAFKA_HEAP_OPTS: '-Xmx1G', KAFKA_DIR: '/opt/kafka' }).warnings).toEqual([
      'DATABASE_UR is not a variable Earshot reads; did you mean DATABASE_URL?',
      'KAFKA_BROKER is not a variable Earshot reads; did you mean KAFKA_BROKERS?',
    ]);
  });
});

describe('names an operator mistypes', () => {
  it('warns about a mistyped or lower-case prefix and a near miss of any name Earshot reads', () => {
    // each of these was ignored without a word: DATABSE_URL started the embedded PostgreSQL instead
    expect(loadConfig({ ERASHOT_ROLES: 'api', earshot_roles: 'api', DATABSE_URL: 'postgres://db/earshot', database_url: 'postgres://db/earshot', LOGLEVEL: 'debug' }).warnings).toEqual([
      'DATABSE_URL is not a variable Earshot reads; did you mean DATABASE_URL?',
      'ERASHOT_ROLES is not a variable Earshot knows; did you mean EARSHOT_ROLES?',
      'LOGLEVEL is not a variable Earshot reads; did you mean LOG_LEVEL?',
      'database_url is not a variable Earshot reads; did you mean DATABASE_URL?',
      'earshot_roles is not a variable Earshot knows; did you mean EARSHOT_ROLES?',
    ]);
  });

  it("says nothing of Kubernetes' service links or of other tools' names", () => {
    const env = {
      // a Service named earshot, one named kafka
      EARSHOT_SERVICE_HOST: '10.0.0.7', EARSHOT_SERVICE_PORT: '4000', EARSHOT_SERVICE_PORT_HTTP: '4000', EARSHOT_PORT: 'tcp://10.0.0.7:4000',
      EARSHOT_PORT_4000_TCP: 'tcp://10.0.0.7:4000', EARSHOT_PORT_4000_TCP_PROTO: 'tcp', EARSHOT_PORT_4000_TCP_PORT: '4000', EARSHOT_PORT_4000_TCP_ADDR: '10.0.0.7',
      KAFKA_SERVICE_HOST: '10.0.0.8', KAFKA_PORT: 'tcp://10.0.0.8:9092',
      HOSTNAME: 'earshot-0', NODE_OPTIONS: '--max-old-space-size=512', NODE_PATH: '/x', KAFKA_HEAP_OPTS: '-Xmx1G', KAFKA_OPTS: '-Dx', LOG_FORMAT: 'json',
    };
    expect(loadConfig(env).warnings).toEqual([]);
    // the proxy variables in both cases: the lower-case one is read, the other is no typo
    expect(loadConfig({ EARSHOT_HUBSPOT_TOKEN: 'pat-na1-0123', https_proxy: 'http://proxy:3128', HTTPS_PROXY: 'http://proxy:3128', NO_PROXY: 'localhost' }).warnings).toEqual([]);
    // a typo still is one, service-like or not
    expect(loadConfig({ EARSHOT_METRIC_PORT: '9464' }).warnings).toEqual(['EARSHOT_METRIC_PORT is not a variable Earshot knows; did you mean EARSHOT_METRICS_PORT?']);
  });
});

describe('EARSHOT_PERSISTED_OPERATIONS', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'earshot-manifest-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const refusal = (file: string) => {
    try {
      loadConfig({ EARSHOT_TRUSTED_DOCUMENTS: 'only', EARSHOT_PERSISTED_OPERATIONS: file });
    } catch (e) {
      return (e as ConfigError).problems;
    }
    return [];
  };

  // each was a stack trace from the API's start, after the background jobs had started, and the process stayed
  it('is read before anything starts: a missing, malformed or foreign file is refused in one line', () => {
    expect(refusal(path.join(dir, 'missing.json'))).toEqual([`EARSHOT_PERSISTED_OPERATIONS: cannot read ${path.join(dir, 'missing.json')}: ENOENT: no such file or directory, open '${path.join(dir, 'missing.json')}'`]);
    writeFileSync(path.join(dir, 'bad.json'), '{"format": ');
    expect(refusal(path.join(dir, 'bad.json'))).toEqual([expect.stringMatching(/^EARSHOT_PERSISTED_OPERATIONS: cannot read .*bad\.json: .*JSON/)]);
    writeFileSync(path.join(dir, 'null.json'), 'null');
    expect(refusal(path.join(dir, 'null.json'))).toEqual([`EARSHOT_PERSISTED_OPERATIONS: ${path.join(dir, 'null.json')} is not an apollo-persisted-query-manifest version 1`]);
    writeFileSync(path.join(dir, 'nobody.json'), JSON.stringify({ format: 'apollo-persisted-query-manifest', version: 1, operations: [{ id: 'x' }] }));
    expect(refusal(path.join(dir, 'nobody.json'))).toEqual([`EARSHOT_PERSISTED_OPERATIONS: ${path.join(dir, 'nobody.json')}: operation x has an id that is not the sha256 of its body`]);
    const body = 'query Me { __typename }';
    writeFileSync(path.join(dir, 'good.json'), JSON.stringify({ format: 'apollo-persisted-query-manifest', version: 1, operations: [{ id: createHash('sha256').update(body).digest('hex'), body }] }));
    expect(refusal(path.join(dir, 'good.json'))).toEqual([]);
    // a process without the api role reads no manifest: an ingest replica may run without the file
    expect(loadConfig({ EARSHOT_ROLES: 'ingest', EARSHOT_TRUSTED_DOCUMENTS: 'only', EARSHOT_PERSISTED_OPERATIONS: path.join(dir, 'missing.json') }).graphqlApi.trustedDocuments).toBe('only');
  });
});

describe('the output topics KAFKA_TOPICS may not name', () => {
  it('are the ones the outbox publishes to', async () => {
    const { OUTBOX_TOPICS } = await import('../outbox/outbox-events');
    const { OUTPUT_TOPIC_NAMES } = await import('./config');
    expect([...OUTPUT_TOPIC_NAMES].sort()).toEqual(Object.values(OUTBOX_TOPICS).map((t) => t.name).sort());
  });
});

describe('defaults that follow the V8 heap', () => {
  it('EARSHOT_GRAPHQL_MAX_READ_BYTES: 64 MiB, a 64th of a smaller heap, never under 1 MiB', async () => {
    const { defaultGraphqlReadBytes } = await import('./config');
    const MiB = 1024 * 1024;
    expect(defaultGraphqlReadBytes(4288 * MiB)).toBe(64 * MiB);
    // --max-old-space-size=256 gives a heap limit of 448 MiB on Node 24
    expect(defaultGraphqlReadBytes(448 * MiB)).toBe(7 * MiB);
    expect(defaultGraphqlReadBytes(32 * MiB)).toBe(MiB);
    expect(loadConfig({ EARSHOT_GRAPHQL_MAX_READ_BYTES: '2097152' }).graphql.maxReadBytes).toBe(2 * MiB);
  });
});

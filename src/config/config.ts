import path from 'node:path';
import { parseCrmConfig, type CrmConfig } from '../crm/crm.config';
import { parseListeningGapConfig, type ListeningGapConfig } from '../listening-gap/listening-gap.config';

export type Role = 'api' | 'ingest' | 'sync';
export const ALL_ROLES: readonly Role[] = ['api', 'ingest', 'sync'];
export type UserRole = 'admin' | 'analyst' | 'agent' | 'sales' | 'service';
export const USER_ROLES: readonly UserRole[] = ['admin', 'analyst', 'agent', 'sales', 'service'];
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface ApiKey {
  key: string;
  role: UserRole;
  name: string;
}

export interface Config {
  readonly nodeEnv: 'development' | 'production' | 'test';
  readonly port: number;
  readonly host: string;
  readonly logLevel: LogLevel;
  readonly roles: readonly Role[];
  /** unset → embedded PostgreSQL in dataDir */
  readonly databaseUrl: string | null;
  readonly databasePoolSize: number;
  /** GraphQL operations executed at once; more wait in line (bounds memory under load) */
  readonly graphqlConcurrency: number;
  /** operations waiting for a slot; beyond it: 503 with Retry-After */
  readonly graphqlQueueMax: number;
  readonly dataDir: string;
  readonly embeddedPgPort: number;
  readonly publicUrl: string;
  readonly ingestMaxBytes: number;
  readonly ingestMaxTextBytes: number;
  readonly auth: {
    readonly apiKeys: readonly ApiKey[];
    readonly jwtSecret: string | null;
    readonly jwksUrl: string | null;
    readonly jwtIssuer: string | null;
    readonly jwtAudience: string | null;
    /** true when neither API keys nor JWT are configured (development only) */
    readonly open: boolean;
  };
  readonly identity: {
    readonly plusAddressing: 'keep' | 'strip';
    readonly defaultPhoneRegion: string;
    /** bits of match weight from which two records are one customer without review */
    readonly autoLinkBits: number;
    /** bits from which a pair becomes a merge suggestion; at most autoLinkBits */
    readonly reviewBits: number;
  };
  readonly kafka: {
    /** null: no Kafka; the consumer and the outbox relay stay off and the outbox keeps rows */
    readonly brokers: readonly string[] | null;
    readonly clientId: string;
    readonly topics: readonly string[];
    readonly groupId: string;
    readonly ssl: boolean;
    readonly sasl: { readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; readonly username: string; readonly password: string } | null;
    readonly createTopics: boolean;
    readonly partitions: number;
    /** -1: the broker's default */
    readonly replicationFactor: number;
    readonly maxMessageBytes: number;
    readonly outboxPollMs: number;
    /** prepended to the outbound topic names (interactions.enriched.v1, customer-sentiment.v1): one cluster, several environments */
    readonly outputTopicPrefix: string;
    /** partitions one consumer processes at the same time (kafkajs partitionsConsumedConcurrently) */
    readonly concurrency: number;
    /** how long the group waits for a silent consumer (e.g. killed) before giving its partitions to others */
    readonly sessionTimeoutMs: number;
  };
  /** Salesforce and HubSpot sync and write-back (src/crm/crm.config.ts) */
  readonly crm: CrmConfig;
  /** SLAs, business hours, reply matching and escalation of the listening gap (src/listening-gap/listening-gap.config.ts) */
  readonly listeningGap: ListeningGapConfig;
  readonly shutdownTimeoutMs: number;
  /** serve the listening console at /console (on by default outside production) */
  readonly console: boolean;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

type Env = Record<string, string | undefined>;

/**
 * Parses the environment once. Collects every problem before failing so that an
 * operator fixes all variables in one go.
 */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const str = (name: string): string | null => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? null : v.trim();
  };
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = str(name);
    if (raw === null) return def;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected an integer from ${min} to ${max}`);
      return def;
    }
    return n;
  };
  const oneOf = <T extends string>(name: string, def: T, allowed: readonly T[]): T => {
    const raw = str(name);
    if (raw === null) return def;
    if (!(allowed as readonly string[]).includes(raw)) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected one of ${allowed.join(', ')}`);
      return def;
    }
    return raw as T;
  };
  const url = (name: string, protocols: string[]): string | null => {
    const raw = str(name);
    if (raw === null) return null;
    try {
      const u = new URL(raw);
      if (!protocols.includes(u.protocol)) throw new Error();
      return raw;
    } catch {
      problems.push(`${name}: expected a ${protocols.join(' or ')} URL`);
      return null;
    }
  };

  const nodeEnv = oneOf('NODE_ENV', 'development', ['development', 'production', 'test'] as const);
  const port = int('PORT', 4000, 0, 65535);
  const host = str('HOST') ?? '0.0.0.0';
  const logLevel = oneOf('LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const);

  let roles: Role[] = [...ALL_ROLES];
  const rolesRaw = str('EARSHOT_ROLES');
  if (rolesRaw !== null) {
    const parts = rolesRaw.split(',').map((r) => r.trim()).filter(Boolean);
    const bad = parts.filter((r) => !(ALL_ROLES as readonly string[]).includes(r));
    if (bad.length > 0 || parts.length === 0) {
      problems.push(`EARSHOT_ROLES=${JSON.stringify(rolesRaw)}: expected a comma-separated subset of ${ALL_ROLES.join(',')}`);
    } else {
      roles = [...new Set(parts)] as Role[];
    }
  }

  const databaseUrl = url('DATABASE_URL', ['postgres:', 'postgresql:']);
  const dataDir = path.resolve(str('EARSHOT_DATA_DIR') ?? '.earshot');

  const apiKeys: ApiKey[] = [];
  const keysRaw = str('EARSHOT_API_KEYS');
  if (keysRaw !== null) {
    keysRaw.split(',').map((s) => s.trim()).filter(Boolean).forEach((entry, i) => {
      const [key, role, name] = entry.split(':');
      if (!key || key.length < 16) problems.push(`EARSHOT_API_KEYS entry ${i + 1}: the key must have at least 16 characters`);
      else if (!role || !(USER_ROLES as readonly string[]).includes(role)) {
        problems.push(`EARSHOT_API_KEYS entry ${i + 1}: expected key:role[:name] with role one of ${USER_ROLES.join(', ')}`);
      } else apiKeys.push({ key, role: role as UserRole, name: name ?? `key${i + 1}` });
    });
  }
  const jwtSecret = str('EARSHOT_JWT_SECRET');
  if (jwtSecret !== null && jwtSecret.length < 32) problems.push('EARSHOT_JWT_SECRET: must have at least 32 characters (HS256)');
  const jwksUrl = url('EARSHOT_JWKS_URL', ['https:', 'http:']);
  const open = apiKeys.length === 0 && jwtSecret === null && jwksUrl === null;
  if (open && nodeEnv === 'production') {
    problems.push('NODE_ENV=production requires authentication: set EARSHOT_API_KEYS, EARSHOT_JWT_SECRET or EARSHOT_JWKS_URL');
  }

  const config: Config = {
    nodeEnv,
    port,
    host,
    logLevel,
    roles,
    databaseUrl,
    databasePoolSize: int('DATABASE_POOL_SIZE', 10, 1, 200),
    graphqlConcurrency: int('EARSHOT_GRAPHQL_CONCURRENCY', 16, 1, 10_000),
    graphqlQueueMax: int('EARSHOT_GRAPHQL_QUEUE_MAX', 2_000, 0, 1_000_000),
    dataDir,
    embeddedPgPort: int('EARSHOT_EMBEDDED_PG_PORT', 54329, 1, 65535),
    publicUrl: (url('EARSHOT_PUBLIC_URL', ['http:', 'https:']) ?? `http://localhost:${port}`).replace(/\/$/, ''),
    ingestMaxBytes: int('EARSHOT_INGEST_MAX_BYTES', 32 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    ingestMaxTextBytes: int('EARSHOT_INGEST_MAX_TEXT_BYTES', 256 * 1024, 1024, 16 * 1024 * 1024),
    auth: {
      apiKeys,
      jwtSecret,
      jwksUrl,
      jwtIssuer: str('EARSHOT_JWT_ISSUER'),
      jwtAudience: str('EARSHOT_JWT_AUDIENCE'),
      open,
    },
    identity: {
      plusAddressing: oneOf('EARSHOT_EMAIL_PLUS_ADDRESSING', 'strip', ['keep', 'strip'] as const),
      defaultPhoneRegion: (str('EARSHOT_DEFAULT_PHONE_REGION') ?? 'US').toUpperCase(),
      ...identityThresholds(str, problems),
    },
    kafka: parseKafka(str, int, oneOf, problems),
    crm: parseCrmConfig(str, int, problems),
    listeningGap: parseListeningGapConfig(str, int, problems),
    shutdownTimeoutMs: int('EARSHOT_SHUTDOWN_TIMEOUT_MS', 15_000, 0, 600_000),
    console: oneOf('EARSHOT_CONSOLE', nodeEnv === 'production' ? 'off' : 'on', ['on', 'off'] as const) === 'on',
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(config);
}

function parseKafka(
  str: (n: string) => string | null,
  int: (n: string, d: number, min: number, max: number) => number,
  oneOf: <T extends string>(n: string, d: T, allowed: readonly T[]) => T,
  problems: string[],
): Config['kafka'] {
  const list = (name: string, def: string[]): string[] => {
    const raw = str(name);
    return raw === null ? def : raw.split(',').map((s) => s.trim()).filter(Boolean);
  };
  const brokersRaw = str('KAFKA_BROKERS');
  const brokers = brokersRaw === null ? null : list('KAFKA_BROKERS', []);
  for (const b of brokers ?? []) if (!/^[^:\s]+:\d{1,5}$/.test(b)) problems.push(`KAFKA_BROKERS: ${JSON.stringify(b)} is not host:port`);
  const topics = list('KAFKA_TOPICS', ['interactions.v1']);
  for (const t of topics) if (!/^[A-Za-z0-9._-]{1,249}$/.test(t)) problems.push(`KAFKA_TOPICS: ${JSON.stringify(t)} is not a valid topic name`);
  const mechanism = str('KAFKA_SASL_MECHANISM');
  let sasl: Config['kafka']['sasl'] = null;
  if (mechanism !== null) {
    const m = oneOf('KAFKA_SASL_MECHANISM', 'plain', ['plain', 'scram-sha-256', 'scram-sha-512'] as const);
    const username = str('KAFKA_SASL_USERNAME');
    const password = str('KAFKA_SASL_PASSWORD');
    if (!username || !password) problems.push('KAFKA_SASL_MECHANISM needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD');
    sasl = { mechanism: m, username: username ?? '', password: password ?? '' };
  }
  const sslRaw = str('KAFKA_SSL');
  if (sslRaw !== null && !['true', 'false'].includes(sslRaw)) problems.push('KAFKA_SSL: expected true or false');
  const prefix = str('KAFKA_OUTPUT_TOPIC_PREFIX') ?? '';
  if (prefix !== '' && !/^[A-Za-z0-9._-]{1,200}$/.test(prefix)) problems.push(`KAFKA_OUTPUT_TOPIC_PREFIX: ${JSON.stringify(prefix)} has characters a topic name cannot have`);
  const createRaw = str('KAFKA_CREATE_TOPICS');
  if (createRaw !== null && !['true', 'false'].includes(createRaw)) problems.push('KAFKA_CREATE_TOPICS: expected true or false');
  return {
    brokers,
    clientId: str('KAFKA_CLIENT_ID') ?? 'earshot',
    topics,
    groupId: str('KAFKA_GROUP_ID') ?? 'earshot-ingest',
    ssl: sslRaw === 'true',
    sasl,
    createTopics: createRaw !== 'false',
    partitions: int('KAFKA_TOPIC_PARTITIONS', 3, 1, 10_000),
    replicationFactor: int('KAFKA_REPLICATION_FACTOR', -1, -1, 32),
    maxMessageBytes: int('KAFKA_MAX_MESSAGE_BYTES', 1024 * 1024, 1024, 100 * 1024 * 1024),
    outboxPollMs: int('EARSHOT_OUTBOX_POLL_MS', 200, 10, 60_000),
    outputTopicPrefix: prefix,
    concurrency: int('KAFKA_CONSUMER_CONCURRENCY', 3, 1, 64),
    sessionTimeoutMs: int('KAFKA_SESSION_TIMEOUT_MS', 30_000, 6_000, 300_000),
  };
}

/** Defaults: the thresholds chosen on the Febrl evaluation (src/identity/matcher.ts). */
function identityThresholds(str: (n: string) => string | null, problems: string[]): { autoLinkBits: number; reviewBits: number } {
  const bits = (name: string, def: number): number => {
    const raw = str(name);
    if (raw === null) return def;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0 || n > 100) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected a number of bits from 0 to 100`);
      return def;
    }
    return n;
  };
  const autoLinkBits = bits('EARSHOT_IDENTITY_AUTO_LINK_BITS', 13);
  const reviewBits = bits('EARSHOT_IDENTITY_REVIEW_BITS', 7);
  if (reviewBits > autoLinkBits) problems.push('EARSHOT_IDENTITY_REVIEW_BITS must not exceed EARSHOT_IDENTITY_AUTO_LINK_BITS');
  return { autoLinkBits, reviewBits };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.values(o).forEach((v) => deepFreeze(v));
    Object.freeze(o);
  }
  return o;
}

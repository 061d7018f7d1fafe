import { isIP } from 'node:net';
import path from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { parseCrmConfig, type CrmConfig } from '../crm/crm.config';
import { parseGraphqlConfig, type GraphqlApiConfig } from '../graphql/graphql.config';
import { parseListeningGapConfig, type ListeningGapConfig } from '../listening-gap/listening-gap.config';
import { parseIngestLimits, type IngestLimitsConfig } from '../interactions/ingest-limits.config';
import { EVENT_ROOM_BESIDES_TEXT } from '../interactions/interaction-message';
import { parseSentimentConfig, type SentimentConfig } from '../sentiment/sentiment.config';
import { isSupportedCountry } from 'libphonenumber-js/max';
import { canonicalNetwork, identityKey } from '../identity/normalize';
import { pgConnectionProblem } from '../db/pg-connection';
import { tracesExporterProblem } from '../tracing/setup';

/** The topics the outbox relay publishes to, after KAFKA_OUTPUT_TOPIC_PREFIX (src/outbox/outbox-events.ts OUTBOX_TOPICS). */
export const OUTPUT_TOPIC_NAMES = ['interactions.enriched.v1', 'customer-sentiment.v1', 'listening-gap.v1', 'customer-erasure.v1', 'interactions.reassigned.v1'] as const;

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
  /**
   * connections of the ingest pool (POST /ingest, ingestInteractions, the Kafka consumer), besides
   * databasePoolSize, in a process with the ingest role: the API's reads cannot take them
   */
  readonly databaseIngestPoolSize: number;
  /**
   * connections of the jobs pool (re-score, re-tag, re-resolution, CRM sync and write-back,
   * escalation, retention), besides databasePoolSize: jobs waiting on a lock cannot take the API's
   */
  readonly databaseJobsPoolSize: number;
  /** a pooled connection idle this long is closed (ms) */
  readonly databasePoolIdleMs: number;
  /** `serve` with DATABASE_URL: how long to keep trying a database that cannot be reached yet at start (ms; 0: no retry) */
  readonly databaseStartWaitMs: number;
  /** GraphQL operations executed at once; more wait in line (bounds memory under load) */
  readonly graphqlConcurrency: number;
  /** operations waiting for a slot; beyond it: 503 with Retry-After */
  readonly graphqlQueueMax: number;
  /** operations of one API key or JWT subject waiting for a slot; beyond it: 503 for that caller only */
  readonly graphqlQueueMaxPerPrincipal: number;
  readonly dataDir: string;
  readonly embeddedPgPort: number;
  readonly publicUrl: string;
  readonly ingestMaxBytes: number;
  readonly ingestMaxTextBytes: number;
  /** what every ingest channel refuses at the edge, line by line (src/interactions/ingest-limits.config.ts) */
  readonly ingestLimits: IngestLimitsConfig;
  /** lanes one large `/ingest` or `ingestInteractions` request is stored in at once (src/interactions/ingest-lanes.ts) */
  readonly ingestLanes: number;
  /** how long an ingest batch's statements wait for a lock before the batch fails as retriable (503, Kafka backs off); 0 for ever */
  readonly ingestLockTimeoutMs: number;
  /** the HTTP server's connection, header-time and body-buffer limits (EARSHOT_HTTP_*; src/http/http-server.ts) */
  readonly http: { readonly maxConnections: number; readonly headersTimeoutMs: number; readonly bodyBufferBytes: number };
  /** GraphQL over WebSocket (src/graphql/ws-server.ts) */
  readonly ws: {
    /**
     * EARSHOT_WS_RECHECK_MS (60,000): while a socket holds a JWT verified by EARSHOT_JWKS_URL, the
     * key set is fetched again this often, and a socket whose token no longer verifies (its key
     * withdrawn) is closed with 4403. A failed fetch closes nothing: the last key set fetched stays.
     */
    readonly recheckMs: number;
    /**
     * EARSHOT_WS_MAX_CONNECTIONS_PER_PRINCIPAL (100): connections one API key or JWT subject holds
     * at once; one more is refused at connection_init with 4429. Below the global
     * EARSHOT_HTTP_MAX_CONNECTIONS, so one principal cannot take every connection.
     */
    readonly maxConnectionsPerPrincipal: number;
  };
  readonly auth: {
    readonly apiKeys: readonly ApiKey[];
    readonly jwtSecret: string | null;
    readonly jwksUrl: string | null;
    readonly jwtIssuer: string | null;
    /**
     * EARSHOT_JWT_AUDIENCE, comma-separated: a token must name one of these in `aud` (a token's
     * `aud` list: one of them); null: `aud` is not checked
     */
    readonly jwtAudience: readonly string[] | null;
    /** a JWT must carry exp, at most this many seconds after its iat (or after now, without iat) */
    readonly jwtMaxAgeSeconds: number;
    /** seconds this host's clock may be behind the token issuer's when nbf and iat are checked (exp has none) */
    readonly jwtClockSkewSeconds: number;
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
    /**
     * EARSHOT_IDENTITY_IGNORED: identifier values that never link customers, on top of the
     * built-in placeholders (`isPlaceholderIdentity`): `info@`, `@acme.com`, `jane@acme.com`,
     * `+18005550100`, `x:acme`; normalized as identities are.
     */
    readonly ignored: readonly string[];
    /**
     * EARSHOT_IDENTITY_HUB_CAP (20): an email or phone whose customer already holds this many
     * handles links no further author with another handle; those become merge suggestions.
     */
    readonly hubCap: number;
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
    /** publish from a worker thread (compiled builds only) */
    readonly relayThread: boolean;
    /** the outbox relay's Kafka client: @platformatic/kafka (Kafka 3.5 and later), or kafkajs for older brokers */
    readonly relayProducer: 'platformatic' | 'kafkajs';
    /** sent outbox rows are deleted after this many hours */
    readonly outboxRetentionHours: number;
    /**
     * Bytes of one produce request at most (Kafka's producer `max.request.size`), for the outbox
     * relay and the dead letters: what is to be sent goes out in as many requests as it needs. An
     * event larger than this on its own is not published (logged, `earshot_outbox_events_oversized_total`);
     * a dead letter larger than this on its own goes without its value (`x-value-dropped`). Keep
     * it under the topics' `max.message.bytes` (the broker's `message.max.bytes`, 1,048,588 by default).
     */
    readonly maxRequestBytes: number;
    /** prepended to the outbound topic names (interactions.enriched.v1, customer-sentiment.v1): one cluster, several environments */
    readonly outputTopicPrefix: string;
    /** partitions one consumer processes at the same time (kafkajs partitionsConsumedConcurrently) */
    readonly concurrency: number;
    /** how long the group waits for a silent consumer (e.g. killed) before giving its partitions to others */
    readonly sessionTimeoutMs: number;
    /**
     * A fetch waits for this many bytes, or for fetchMaxWaitMs (Kafka's fetch.min.bytes and
     * fetch.max.wait.ms): a live stream arrives in batches large enough that the per-batch work
     * is shared, at the price of at most fetchMaxWaitMs before a message is read.
     */
    readonly fetchMinBytes: number;
    readonly fetchMaxWaitMs: number;
    /**
     * Messages of a fetched batch stored in one transaction at most; only a backlog fills a
     * chunk. Larger chunks share each transaction's fixed work among more messages (more
     * throughput, less CPU per message) and publish each transaction's events later (README,
     * "Larger chunks").
     */
    readonly chunkSize: number;
    /** a partition with messages waiting that commits nothing for this long makes /readyz fail */
    readonly stallTimeoutMs: number;
    /**
     * Where a partition starts when the group has no offset for it (a new group, a new partition)
     * or when its committed offset is no longer in the log (retention or deleteRecords went past
     * it, the topic was truncated): `earliest` (the first offset still there) or `latest` (its end).
     */
    readonly offsetReset: 'earliest' | 'latest';
    /** how old the cluster's metadata may get before it is read again: partitions added to an input topic are consumed within about this long */
    readonly metadataMaxAgeMs: number;
    /** compression codecs the consumer decodes besides gzip; a batch in another is dead-lettered */
    readonly codecs: readonly ('lz4' | 'snappy' | 'zstd')[];
  };
  /** Salesforce and HubSpot sync and write-back (src/crm/crm.config.ts) */
  readonly crm: CrmConfig;
  /** SLAs, business hours, reply matching and escalation of the listening gap (src/listening-gap/listening-gap.config.ts) */
  readonly listeningGap: ListeningGapConfig;
  /** the built-in model, or a team's model server with a breaker in front (src/sentiment/sentiment.config.ts) */
  readonly sentiment: SentimentConfig;
  readonly shutdownTimeoutMs: number;
  /** the GraphQL API's explorer, subscriptions, CORS, federation and operation allow-list (src/graphql/graphql.config.ts) */
  readonly graphqlApi: GraphqlApiConfig;
  /** cost limits and production defaults of the GraphQL API (src/graphql/limits.ts) */
  readonly graphql: GraphqlConfig;
  /** who may scrape /metrics, and where */
  readonly metrics: MetricsConfig;
  /** days an interaction keeps its text and author details; null: kept (EARSHOT_RETENTION_DAYS unset) */
  readonly retentionDays: number | null;
  /** not errors: EARSHOT_* variables no part of Earshot reads (typos), each with the closest known name; logged at start */
  readonly warnings: readonly string[];
  /** serve the listening console at /console (on by default outside production) */
  readonly console: boolean;
}

export interface GraphqlConfig {
  /** __schema / __type answered (default: on outside production) */
  readonly introspection: boolean;
  /** "Did you mean …?" in error messages (default: on outside production) */
  readonly fieldSuggestions: boolean;
  /** lexical tokens in one document: refused while parsing, before any other work */
  readonly maxTokens: number;
  readonly maxDepth: number;
  readonly maxAliases: number;
  /** estimated cost of one operation: every field 1, a list's children times `first` (or 10 without it) */
  readonly maxComplexity: number;
  /** total bytes of text that one request may hand to analyzeText, over every alias */
  readonly analyzeMaxTextBytes: number;
  /** texts from this size are analyzed on a worker thread, off the event loop */
  readonly analyzeWorkerMinBytes: number;
  /** worker threads for analyzeText (0: always on the event loop) */
  readonly analyzeWorkers: number;
  /** one operation's time budget; past it, no further field is resolved */
  readonly timeBudgetMs: number;
  /** characters of text (strings of the rows read) one GraphQL query may read from the database */
  readonly maxReadBytes: number;
  /** queries and mutations run by graphql-jit once their document is seen twice (graphql-js otherwise) */
  readonly jit: boolean;
}

export interface MetricsConfig {
  /** when set, /metrics needs `Authorization: Bearer <key>` */
  readonly key: string | null;
  /** when set, /metrics is served on this port only (and not on PORT) */
  readonly port: number | null;
  /** operation names used as metric labels; any other name is counted as `other` */
  readonly operationNames: readonly string[];
  /** false: /metrics is off on the main port (production without a key or a port of its own) */
  readonly onMainPort: boolean;
}

/**
 * Every problem of the environment, one line each (`invalid configuration: NAME=…: expected …`),
 * then a note per unknown EARSHOT_* name (a typo is often the cause). main.ts prints the lines
 * as they are, each after `earshot: `; a value never spans lines, and a secret is never quoted.
 */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[], readonly notes: readonly string[] = []) {
    const flat = problems.map((p) => p.replace(/\s*[\r\n]+\s*/g, ' '));
    super([...flat.map((p) => `invalid configuration: ${p}`), ...notes.map((n) => `note: ${n}`)].join('\n'));
    this.problems = flat;
  }
}

type Env = Record<string, string | undefined>;

/**
 * EARSHOT_HTTP_BODY_BUFFER_BYTES when unset: 256 MiB, or an eighth of the V8 heap limit when that
 * is less (the HTTP server never goes below one largest body). A body is held until its request is
 * answered, and an /ingest body of 32 MiB parsed, analyzed and stored took about 100 MB of heap:
 * in a container whose memory sizes the heap (or with --max-old-space-size=256), four such bodies
 * at once, half the 256 MiB, ran the process out of memory and every request in flight was lost.
 */
export function defaultBodyBufferBytes(heapSizeLimit: number): number {
  return Math.min(256 * 1024 * 1024, Math.floor(heapSizeLimit / 8));
}

/**
 * EARSHOT_GRAPHQL_MAX_READ_BYTES when unset: 64 MiB, or a 64th of the V8 heap limit when that is
 * less (16 operations at once, each holding its rows, its result and the answer's JSON). The cost
 * limits count fields, not text: 30 aliases of `interactions(first: 100) { text }` over texts of
 * 256 KiB read 750 MB in one request (two at once took a 4 GB heap to 1.7 GB RSS and one answered
 * INTERNAL_SERVER_ERROR; a 256 MB heap died of one).
 */
export function defaultGraphqlReadBytes(heapSizeLimit: number): number {
  return Math.max(1024 * 1024, Math.min(64 * 1024 * 1024, Math.floor(heapSizeLimit / 64)));
}

/**
 * Parses the environment once. Collects every problem before failing so that an
 * operator fixes all variables in one go.
 */
export function loadConfig(env: Env = process.env, read: Set<string> = new Set()): Config {
  const problems: string[] = [];
  const quoted = new Set<string>();
  /**
   * The value without surrounding white space (a CR left by a file edited on Windows included);
   * empty or blank: unset. A value wrapped in quotes ('…' or "…") is refused, without echoing it:
   * Docker's --env-file and systemd's Environment= with stray quotes keep them as part of the
   * value, so a key, a secret or a group id would silently be another. Parsing goes on with the
   * inner value so that the other problems are still named.
   */
  const str = (name: string): string | null => {
    read.add(name);
    const v = env[name];
    if (v === undefined || v.trim() === '') return null;
    const t = v.trim();
    const q = /^(['"])([\s\S]*)\1$/.exec(t);
    if (q && t.length >= 2) {
      if (!quoted.has(name)) problems.push(`${name}: the value is wrapped in quotes (${q[1]}…${q[1]}), which would be part of it; write it without them`);
      quoted.add(name);
      return q[2]!.trim() === '' ? null : q[2]!.trim();
    }
    return t;
  };
  /** Decimal digits only: `1e3`, `0x10`, `1.5`, `30s` and `10MB` are refused, never read as another number. */
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = str(name);
    if (raw === null) return def;
    const n = /^[+-]?\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      const unit = /_MS$/.test(name) ? ' (milliseconds, digits only)' : /_BYTES$/.test(name) ? ' (bytes, digits only)' : /_(SECONDS|HOURS|DAYS)$/.test(name) ? ` (${/_([A-Z]+)$/.exec(name)![1]!.toLowerCase()}, digits only)` : '';
      problems.push(`${name}=${JSON.stringify(raw)}: expected an integer from ${min} to ${max}${unit}`);
      return def;
    }
    return n === 0 ? 0 : n; // "-0" is 0
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
  const host = listenHost(str('HOST'), problems);
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

  const databaseUrl = ((): string | null => {
    const raw = str('DATABASE_URL');
    if (raw === null) return null;
    if (!/^postgres(ql)?:\/\//i.test(raw)) {
      problems.push('DATABASE_URL: expected a postgres: or postgresql: URL');
      return null;
    }
    let readable = true;
    try {
      new URL(raw);
    } catch {
      // libpq's Unix-socket form, which node-postgres reads and WHATWG URL cannot: an empty host
      // and the socket's folder in `host` (postgres://earshot@/earshot?host=/run/postgresql).
      // It was refused as "expected a postgres: or postgresql: URL".
      readable = /^postgres(ql)?:\/\/([^@/?#]*@)?\/[^?#]*\?([^#]*&)?host=(\/|%2F)/i.test(raw);
    }
    // never the value: it may hold a password
    const problem = readable ? databaseUrlProblem(raw) : unreadableDatabaseUrl(raw);
    if (problem === null) return raw;
    problems.push(`DATABASE_URL: ${problem}`);
    return null;
  })();
  const dataDirRaw = str('EARSHOT_DATA_DIR');
  // Only a shell expands ~; path.resolve would make a directory named "~" under the working directory.
  if (dataDirRaw !== null && dataDirRaw.startsWith('~')) problems.push(`EARSHOT_DATA_DIR=${JSON.stringify(dataDirRaw)}: ~ is not expanded here; give the full path`);
  // nor $HOME or ${HOME} (Docker's --env-file, systemd's Environment=): it made a folder named "$HOME"
  else if (dataDirRaw !== null && /\$(\{?[A-Za-z_])/.test(dataDirRaw)) problems.push(`EARSHOT_DATA_DIR=${JSON.stringify(dataDirRaw)}: variables ($NAME) are not expanded here; give the full path`);
  const dataDir = path.resolve(dataDirRaw ?? '.earshot');

  const apiKeys = parseApiKeys(str('EARSHOT_API_KEYS'), problems);
  const defaultPhoneRegion = phoneRegion(str('EARSHOT_DEFAULT_PHONE_REGION'), problems);
  const jwtSecret = str('EARSHOT_JWT_SECRET');
  if (jwtSecret !== null && jwtSecret.length < 32) problems.push('EARSHOT_JWT_SECRET: must have at least 32 characters (HS256)');
  const jwksUrl = url('EARSHOT_JWKS_URL', ['https:', 'http:']);
  const open = apiKeys.length === 0 && jwtSecret === null && jwksUrl === null;
  if (open && nodeEnv === 'production') {
    problems.push('NODE_ENV=production requires authentication: set EARSHOT_API_KEYS, EARSHOT_JWT_SECRET or EARSHOT_JWKS_URL');
  }

  // read by src/tracing/register.ts before the configuration; an exporter it has not is refused here
  read.add('OTEL_TRACES_EXPORTER');
  const tracesProblem = tracesExporterProblem(env);
  if (tracesProblem !== null) problems.push(tracesProblem);

  const ingestMaxTextBytes = int('EARSHOT_INGEST_MAX_TEXT_BYTES', 256 * 1024, 1024, 16 * 1024 * 1024);
  const kafka = parseKafka(str, int, oneOf, problems);
  const ingestLanes = int('EARSHOT_INGEST_LANES', 3, 1, 64);
  const config: Config = {
    nodeEnv,
    port,
    host,
    logLevel,
    roles,
    databaseUrl,
    databasePoolSize: int('DATABASE_POOL_SIZE', 10, 1, 200),
    // a Kafka partition each, and one large request's lanes: both store at once without waiting
    databaseIngestPoolSize: int('DATABASE_INGEST_POOL_SIZE', kafka.concurrency + ingestLanes, 1, 200),
    // each job holds at most two at once (its runner's session and its statement or transaction)
    databaseJobsPoolSize: int('DATABASE_JOBS_POOL_SIZE', 10, 1, 200),
    databasePoolIdleMs: int('DATABASE_POOL_IDLE_MS', 60_000, 1_000, 86_400_000),
    databaseStartWaitMs: int('DATABASE_START_WAIT_MS', 60_000, 0, 86_400_000),
    graphqlConcurrency: int('EARSHOT_GRAPHQL_CONCURRENCY', 16, 1, 10_000),
    graphqlQueueMax: int('EARSHOT_GRAPHQL_QUEUE_MAX', 2_000, 0, 1_000_000),
    graphqlQueueMaxPerPrincipal: int('EARSHOT_GRAPHQL_QUEUE_MAX_PER_PRINCIPAL', 500, 0, 1_000_000),
    dataDir,
    embeddedPgPort: int('EARSHOT_EMBEDDED_PG_PORT', 54329, 1, 65535),
    publicUrl: publicUrl(url('EARSHOT_PUBLIC_URL', ['http:', 'https:']), port, problems),
    ingestMaxBytes: int('EARSHOT_INGEST_MAX_BYTES', 32 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    ingestMaxTextBytes,
    ingestLimits: {
      maxTextBytes: ingestMaxTextBytes,
      ...parseIngestLimits(str, int, problems),
      maxEventTextBytes: kafka.brokers ? Math.max(0, kafka.maxRequestBytes - EVENT_ROOM_BESIDES_TEXT) : null,
    },
    ingestLanes,
    ingestLockTimeoutMs: int('EARSHOT_INGEST_LOCK_TIMEOUT_MS', 10_000, 0, 3_600_000),
    http: {
      maxConnections: int('EARSHOT_HTTP_MAX_CONNECTIONS', 8_192, 1, 1_000_000),
      headersTimeoutMs: int('EARSHOT_HTTP_HEADERS_TIMEOUT_MS', 20_000, 100, 120_000),
      bodyBufferBytes: int('EARSHOT_HTTP_BODY_BUFFER_BYTES', defaultBodyBufferBytes(getHeapStatistics().heap_size_limit), 1024, 64 * 1024 * 1024 * 1024),
    },
    ws: {
      // at least 500 ms: every round fetches the key set from the identity provider
      recheckMs: int('EARSHOT_WS_RECHECK_MS', 60_000, 500, 86_400_000),
      maxConnectionsPerPrincipal: int('EARSHOT_WS_MAX_CONNECTIONS_PER_PRINCIPAL', 100, 1, 1_000_000),
    },
    auth: {
      apiKeys,
      jwtSecret,
      jwksUrl,
      jwtIssuer: str('EARSHOT_JWT_ISSUER'),
      jwtAudience: jwtAudiences(str('EARSHOT_JWT_AUDIENCE'), problems),
      jwtMaxAgeSeconds: int('EARSHOT_JWT_MAX_AGE_SECONDS', 86_400, 60, 366 * 86_400),
      jwtClockSkewSeconds: int('EARSHOT_JWT_CLOCK_SKEW_SECONDS', 30, 0, 300),
      open,
    },
    identity: {
      plusAddressing: oneOf('EARSHOT_EMAIL_PLUS_ADDRESSING', 'strip', ['keep', 'strip'] as const),
      defaultPhoneRegion,
      ...identityThresholds(str, problems),
      hubCap: int('EARSHOT_IDENTITY_HUB_CAP', 20, 1, 1_000_000),
      ignored: ignoredIdentities(str('EARSHOT_IDENTITY_IGNORED'), defaultPhoneRegion, problems),
    },
    kafka,
    crm: parseCrmConfig(str, int, problems),
    listeningGap: parseListeningGapConfig(str, int, problems),
    sentiment: parseSentimentConfig(str, int, problems),
    shutdownTimeoutMs: int('EARSHOT_SHUTDOWN_TIMEOUT_MS', 15_000, 0, 600_000),
    graphql: parseGraphql(str, int, nodeEnv === 'production', problems),
    metrics: parseMetrics(str, int, nodeEnv === 'production', port, problems),
    graphqlApi: parseGraphqlConfig(str, int, nodeEnv, problems, roles.includes('api')),
    retentionDays: str('EARSHOT_RETENTION_DAYS') === null ? null : int('EARSHOT_RETENTION_DAYS', 0, 1, 36_500),
    warnings: [],
    console: oneOf('EARSHOT_CONSOLE', nodeEnv === 'production' ? 'off' : 'on', ['on', 'off'] as const) === 'on',
  };
  const warnings = unknownVariables(env, new Set([...read, ...KNOWN_ELSEWHERE]));
  // with the warnings: EARSHOT_API_KEY (a typo) is the cause of "requires authentication"
  if (problems.length > 0) throw new ConfigError(problems, warnings);
  (config as unknown as { warnings: string[] }).warnings = warnings;
  return deepFreeze(config);
}

function parseKafka(
  str: (n: string) => string | null,
  int: (n: string, d: number, min: number, max: number) => number,
  oneOf: <T extends string>(n: string, d: T, allowed: readonly T[]) => T,
  problems: string[],
): Config['kafka'] {
  /** Entries without blanks and repeats; a list set to commas only is refused, not read as empty. */
  const list = (name: string, def: string[]): string[] => {
    const raw = str(name);
    if (raw === null) return def;
    const parts = [...new Set(raw.split(',').map((s) => s.trim()).filter(Boolean))];
    if (parts.length === 0) problems.push(`${name}=${JSON.stringify(raw)}: expected a comma-separated list, got no entry`);
    return parts;
  };
  const sessionTimeoutMs = int('KAFKA_SESSION_TIMEOUT_MS', 30_000, 6_000, 300_000);
  const fetchMaxWaitMs = int('KAFKA_FETCH_MAX_WAIT_MS', FETCH_MAX_WAIT_MS, 10, 3_000);
  // The consumer heartbeats between fetches, every min(3 s, session / 3): a fetch that waits longer
  // than that would let the group think the member dead and take its partitions away.
  if (fetchMaxWaitMs > Math.floor(sessionTimeoutMs / 3)) {
    problems.push(`KAFKA_FETCH_MAX_WAIT_MS=${fetchMaxWaitMs}: must be at most a third of KAFKA_SESSION_TIMEOUT_MS (${sessionTimeoutMs}), or the group takes the member's partitions away while it waits`);
  }
  const brokersRaw = str('KAFKA_BROKERS');
  const brokers = brokersRaw === null ? null : list('KAFKA_BROKERS', []);
  for (const b of brokers ?? []) {
    const m = /^([^:\s[\]]+):(\d{1,5})$/.exec(b);
    if (b.startsWith('[')) problems.push(`KAFKA_BROKERS: ${JSON.stringify(b)}: an IPv6 address cannot be a broker here (the Kafka client splits host:port at the first colon); give a host name`);
    else if (!m) problems.push(`KAFKA_BROKERS: ${JSON.stringify(b)} is not host:port`);
    else if (Number(m[2]) < 1 || Number(m[2]) > 65535) problems.push(`KAFKA_BROKERS: ${JSON.stringify(b)}: the port must be from 1 to 65535`);
  }
  const topics = list('KAFKA_TOPICS', ['interactions.v1']);
  for (const t of topics) if (!/^[A-Za-z0-9._-]{1,249}$/.test(t)) problems.push(`KAFKA_TOPICS: ${JSON.stringify(t)} is not a valid topic name`);
  const mechanism = str('KAFKA_SASL_MECHANISM');
  let sasl: Config['kafka']['sasl'] = null;
  if (mechanism === null && (str('KAFKA_SASL_USERNAME') !== null || str('KAFKA_SASL_PASSWORD') !== null)) {
    // without a mechanism they were ignored, and Kafka was reached without authentication
    problems.push('KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD need KAFKA_SASL_MECHANISM (plain, scram-sha-256 or scram-sha-512)');
  }
  if (mechanism !== null) {
    const m = oneOf('KAFKA_SASL_MECHANISM', 'plain', ['plain', 'scram-sha-256', 'scram-sha-512'] as const);
    const username = str('KAFKA_SASL_USERNAME');
    const password = str('KAFKA_SASL_PASSWORD');
    if (!username || !password) problems.push('KAFKA_SASL_MECHANISM needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD');
    sasl = { mechanism: m, username: username ?? '', password: password ?? '' };
  }
  const sslRaw = str('KAFKA_SSL');
  if (sslRaw !== null && !['true', 'false'].includes(sslRaw)) problems.push(`KAFKA_SSL=${JSON.stringify(sslRaw)}: expected true or false`);
  const prefix = str('KAFKA_OUTPUT_TOPIC_PREFIX') ?? '';
  if (prefix !== '' && !/^[A-Za-z0-9._-]{1,200}$/.test(prefix)) problems.push(`KAFKA_OUTPUT_TOPIC_PREFIX: ${JSON.stringify(prefix)} has characters a topic name cannot have`);
  // An input topic that is one of Earshot's own output topics reads back what it publishes: every
  // enriched event came in again and was dead-lettered (unknown fields), once per event, for ever.
  for (const t of topics) {
    const own = OUTPUT_TOPIC_NAMES.find((name) => `${prefix}${name}` === t);
    if (!own) continue;
    const via = prefix ? ` (KAFKA_OUTPUT_TOPIC_PREFIX ${JSON.stringify(prefix)} + ${own})` : '';
    problems.push(`KAFKA_TOPICS: ${JSON.stringify(t)} is Earshot's own output topic${via}: it would read back what it publishes`);
  }
  const createRaw = str('KAFKA_CREATE_TOPICS');
  if (createRaw !== null && !['true', 'false'].includes(createRaw)) problems.push(`KAFKA_CREATE_TOPICS=${JSON.stringify(createRaw)}: expected true or false`);
  const threadRaw = str('EARSHOT_OUTBOX_RELAY_THREAD');
  if (threadRaw !== null && !['true', 'false'].includes(threadRaw)) problems.push(`EARSHOT_OUTBOX_RELAY_THREAD=${JSON.stringify(threadRaw)}: expected true or false`);
  const replicationFactor = int('KAFKA_REPLICATION_FACTOR', -1, -1, 32);
  const maxRequestBytes = int('KAFKA_MAX_REQUEST_BYTES', 1_000_000, 1024, 100 * 1024 * 1024);
  // The edge keeps EVENT_ROOM_BESIDES_TEXT of each request for the rest of an enriched event: under
  // that and the smallest text limit, every interaction was refused as too large for its event.
  const smallestRequest = EVENT_ROOM_BESIDES_TEXT + 1024;
  if (brokers !== null && maxRequestBytes < smallestRequest) {
    problems.push(`KAFKA_MAX_REQUEST_BYTES=${maxRequestBytes}: at least ${smallestRequest} with Kafka (an enriched event keeps ${EVENT_ROOM_BESIDES_TEXT} bytes besides its text), or every interaction is refused as too large`);
  }
  // Kafka makes no topic of 0 copies; -1 is the broker's default
  if (replicationFactor === 0) problems.push('KAFKA_REPLICATION_FACTOR="0": expected -1 (the broker\'s default) or a number of copies from 1 to 32');
  const producerRaw = str('EARSHOT_OUTBOX_PRODUCER');
  if (producerRaw !== null && !['platformatic', 'kafkajs'].includes(producerRaw)) problems.push(`EARSHOT_OUTBOX_PRODUCER=${JSON.stringify(producerRaw)}: expected platformatic or kafkajs`);
  return {
    brokers,
    clientId: str('KAFKA_CLIENT_ID') ?? 'earshot',
    topics,
    groupId: str('KAFKA_GROUP_ID') ?? 'earshot-ingest',
    ssl: sslRaw === 'true',
    sasl,
    createTopics: createRaw !== 'false',
    partitions: int('KAFKA_TOPIC_PARTITIONS', 3, 1, 10_000),
    replicationFactor,
    maxMessageBytes: int('KAFKA_MAX_MESSAGE_BYTES', 1024 * 1024, 1024, 100 * 1024 * 1024),
    outboxPollMs: int('EARSHOT_OUTBOX_POLL_MS', 200, 10, 60_000),
    outboxRetentionHours: int('EARSHOT_OUTBOX_RETENTION_HOURS', 24, 0, 24 * 365),
    maxRequestBytes,
    relayThread: threadRaw !== 'false',
    relayProducer: producerRaw === 'kafkajs' ? 'kafkajs' : 'platformatic',
    outputTopicPrefix: prefix,
    concurrency: int('KAFKA_CONSUMER_CONCURRENCY', 3, 1, 64),
    sessionTimeoutMs,
    // at most what one fetch may bring (kafkajs' maxBytes, 10 MiB): more could never be met, and every fetch would wait in full
    fetchMinBytes: int('KAFKA_FETCH_MIN_BYTES', FETCH_MIN_BYTES, 1, 10 * 1024 * 1024),
    fetchMaxWaitMs,
    chunkSize: int('KAFKA_CHUNK_SIZE', 500, 1, 10_000),
    stallTimeoutMs: int('KAFKA_STALL_TIMEOUT_MS', 60_000, 1_000, 3_600_000),
    offsetReset: oneOf('KAFKA_OFFSET_RESET', 'earliest', ['earliest', 'latest'] as const),
    metadataMaxAgeMs: int('KAFKA_METADATA_MAX_AGE_MS', 30_000, 1_000, 3_600_000),
    codecs: codecList(str('KAFKA_COMPRESSION_CODECS'), problems),
  };
}

/**
 * Defaults of KAFKA_FETCH_MIN_BYTES and KAFKA_FETCH_MAX_WAIT_MS: at 2,000 messages/s a batch of
 * about 200 instead of 90–120, for 10–16% less CPU in node and 17–27% less in PostgreSQL per
 * message (bench:ingest with BENCH_RATE; README, "Live streams").
 */
const FETCH_MIN_BYTES = 512 * 1024;
const FETCH_MAX_WAIT_MS = 100;

const CODECS = ['lz4', 'snappy', 'zstd'] as const;

function codecList(raw: string | null, problems: string[]): Config['kafka']['codecs'] {
  if (raw === null) return [...CODECS];
  const parts = raw.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  const bad = parts.filter((p) => !(CODECS as readonly string[]).includes(p));
  if (bad.length > 0 && !(parts.length === 1 && parts[0] === 'none')) {
    problems.push(`KAFKA_COMPRESSION_CODECS=${JSON.stringify(raw)}: expected a comma-separated subset of ${CODECS.join(',')}, or none`);
    return [...CODECS];
  }
  return [...new Set(parts.filter((p) => p !== 'none'))] as Config['kafka']['codecs'];
}

function parseGraphql(
  str: (n: string) => string | null,
  int: (n: string, d: number, min: number, max: number) => number,
  production: boolean,
  problems: string[],
): GraphqlConfig {
  const bool = (name: string, def: boolean): boolean => {
    const raw = str(name);
    if (raw === null) return def;
    if (raw !== 'true' && raw !== 'false') {
      problems.push(`${name}=${JSON.stringify(raw)}: expected true or false`);
      return def;
    }
    return raw === 'true';
  };
  return {
    introspection: bool('EARSHOT_GRAPHQL_INTROSPECTION', !production),
    fieldSuggestions: bool('EARSHOT_GRAPHQL_FIELD_SUGGESTIONS', !production),
    maxTokens: int('EARSHOT_GRAPHQL_MAX_TOKENS', 2_000, 50, 1_000_000),
    maxDepth: int('EARSHOT_GRAPHQL_MAX_DEPTH', 12, 2, 100),
    maxAliases: int('EARSHOT_GRAPHQL_MAX_ALIASES', 30, 0, 10_000),
    maxComplexity: int('EARSHOT_GRAPHQL_MAX_COMPLEXITY', 20_000, 10, 100_000_000),
    analyzeMaxTextBytes: int('EARSHOT_ANALYZE_MAX_TEXT_BYTES', 256 * 1024, 1024, 64 * 1024 * 1024),
    analyzeWorkerMinBytes: int('EARSHOT_ANALYZE_WORKER_MIN_BYTES', 8 * 1024, 0, 64 * 1024 * 1024),
    analyzeWorkers: int('EARSHOT_ANALYZE_WORKERS', 1, 0, 64),
    timeBudgetMs: int('EARSHOT_GRAPHQL_TIME_BUDGET_MS', 15_000, 100, 600_000),
    maxReadBytes: int('EARSHOT_GRAPHQL_MAX_READ_BYTES', defaultGraphqlReadBytes(getHeapStatistics().heap_size_limit), 64 * 1024, 64 * 1024 * 1024 * 1024),
    jit: bool('EARSHOT_GRAPHQL_JIT', true),
  };
}

function parseMetrics(
  str: (n: string) => string | null,
  int: (n: string, d: number, min: number, max: number) => number,
  production: boolean,
  mainPort: number,
  problems: string[],
): MetricsConfig {
  const key = str('EARSHOT_METRICS_KEY');
  if (key !== null && key.length < 16) problems.push('EARSHOT_METRICS_KEY: must have at least 16 characters');
  const port = str('EARSHOT_METRICS_PORT') === null ? null : int('EARSHOT_METRICS_PORT', 0, 0, 65535);
  if (port !== null && port !== 0 && port === mainPort) problems.push('EARSHOT_METRICS_PORT must differ from PORT');
  const names = (str('EARSHOT_METRICS_OPERATIONS') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) if (!/^[_A-Za-z][_0-9A-Za-z]{0,99}$/.test(n)) problems.push(`EARSHOT_METRICS_OPERATIONS: ${JSON.stringify(n)} is not a GraphQL operation name`);
  // the names past 200 were dropped without a word, and their operations counted as `other`
  if (new Set(names).size > 200) problems.push(`EARSHOT_METRICS_OPERATIONS: ${new Set(names).size} names; at most 200`);
  return { key, port, operationNames: [...new Set(names)], onMainPort: port === null && (key !== null || !production) };
}

/**
 * EARSHOT_API_KEYS: `key:role[:name]`, comma-separated; blanks around entries and parts ignored,
 * empty entries (a trailing comma) skipped. Refused, naming the entry and never the key: a key
 * under 16 characters or with white space inside, an unknown role, more than three parts, a key
 * given twice (two roles for one key: which one applied depended on the order), and a value
 * with no entry at all (which ran the service open).
 */
function parseApiKeys(raw: string | null, problems: string[]): ApiKey[] {
  const out: ApiKey[] = [];
  if (raw === null) return out;
  const entries = raw.split(',').map((s) => s.trim());
  if (entries.every((e) => e === '')) {
    problems.push('EARSHOT_API_KEYS: no entry; expected key:role[:name],…');
    return out;
  }
  const seen = new Map<string, number>();
  let i = 0;
  for (const entry of entries) {
    if (entry === '') continue;
    i++;
    const parts = entry.split(':').map((s) => s.trim());
    const [key, role, name] = parts;
    if (parts.length < 2 || parts.length > 3) problems.push(`EARSHOT_API_KEYS entry ${i}: expected key:role[:name] (${parts.length} part${parts.length === 1 ? '' : 's'} separated by colons)`);
    else if (!key || key.length < 16) problems.push(`EARSHOT_API_KEYS entry ${i}: the key must have at least 16 characters`);
    else if (/\s/.test(key)) problems.push(`EARSHOT_API_KEYS entry ${i}: the key has white space inside`);
    else if (!role || !(USER_ROLES as readonly string[]).includes(role)) {
      problems.push(`EARSHOT_API_KEYS entry ${i}: expected key:role[:name] with role one of ${USER_ROLES.join(', ')}`);
    } else if (seen.has(key)) problems.push(`EARSHOT_API_KEYS entries ${seen.get(key)} and ${i} have the same key; give each key once, with one role`);
    else {
      seen.set(key, i);
      out.push({ key, role: role as UserRole, name: name || `key${i}` });
    }
  }
  return out;
}

/** EARSHOT_DEFAULT_PHONE_REGION: a region libphonenumber knows (`USA`, `UK` read no phone number at all). */
function phoneRegion(raw: string | null, problems: string[]): string {
  if (raw === null) return 'US';
  const r = raw.toUpperCase();
  if (!/^[A-Z]{2}$/.test(r) || !isSupportedCountry(r)) {
    problems.push(`EARSHOT_DEFAULT_PHONE_REGION=${JSON.stringify(raw)}: expected a two-letter region code such as US, GB, DE`);
    return 'US';
  }
  return r;
}

/**
 * HOST: what node's listen takes, a host name or an IP address. `localhost:4000`, `[::1]`,
 * `http://0.0.0.0` and `0.0.0.0,::` were looked up as host names and ended the start with a
 * stack trace (getaddrinfo ENOTFOUND).
 */
function listenHost(raw: string | null, problems: string[]): string {
  if (raw === null) return '0.0.0.0';
  // digits and dots only are an IPv4 address or nothing: the resolver read `10.0.1` as 10.0.0.1
  const numeric = /^[\d.]+$/.test(raw);
  if (isIP(raw) !== 0 || (!numeric && /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/.test(raw))) return raw;
  const bracketed = /^\[(.*)\]$/.exec(raw);
  const hint =
    numeric ? 'not an IPv4 address (four numbers from 0 to 255, such as 127.0.0.1)'
    : bracketed && isIP(bracketed[1]!) === 6 ? `write the IPv6 address without brackets (${bracketed[1]})`
    : /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? 'a host name or address only, without a scheme'
    : /^[^:]+:\d+$/.test(raw) ? 'a host name or address only; the port goes in PORT'
    : 'expected one host name or IP address (0.0.0.0 for every interface, :: for IPv6 too, 127.0.0.1 for this machine only)';
  problems.push(`HOST=${JSON.stringify(raw)}: ${hint}`);
  return '0.0.0.0';
}

/**
 * EARSHOT_PUBLIC_URL, the base of links to customers: `…/customers/<id>` is appended to it, so a
 * query or fragment (`https://x.com/app?tenant=1`) made every link point elsewhere.
 */
function publicUrl(raw: string | null, port: number, problems: string[]): string {
  if (raw === null) return `http://localhost:${port}`;
  const u = new URL(raw);
  if (u.search !== '' || u.hash !== '' || raw.includes('?') || raw.includes('#')) problems.push(`EARSHOT_PUBLIC_URL=${JSON.stringify(raw)}: a base URL (scheme://host[:port][/path]), without ?query or #fragment: links are made by appending to it`);
  return raw.replace(/\/$/, '');
}

/** The SSL settings node-postgres reads from DATABASE_URL; another value was read as SSL on, fully verified. */
const PG_SSLMODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'];
const PG_SSL = ['true', '1', '0', 'no-verify'];

/**
 * What is wrong with a DATABASE_URL that parses, or null; never quoting the URL, which may hold a
 * password. TypeORM decodes the user name and password itself (decodeURIComponent): a % that
 * starts no escape (`p%zz`) ended every start with "URI malformed". `sslmode=bogus` and
 * `ssl=false` turned SSL on with full verification ("The server does not support SSL connections").
 */
function databaseUrlProblem(raw: string): string | null {
  // the user info as TypeORM cuts it: before the last @ of the part up to the first /
  const afterScheme = raw.slice(raw.indexOf('//') + 2);
  const authority = afterScheme.slice(0, afterScheme.indexOf('/') < 0 ? undefined : afterScheme.indexOf('/'));
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    try {
      for (const part of authority.slice(0, at).split(/:(.*)/s)) decodeURIComponent(part);
    } catch {
      return 'the user name or password holds a % that starts no percent-encoded character: write % as %25 (and # as %23, / as %2F, ? as %3F, @ as %40)';
    }
  }
  const q = raw.indexOf('?');
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1).split('#')[0]);
  const sslmode = params.get('sslmode');
  // libpq's allow tries without SSL and, when the server refuses that in authentication (a hostssl
  // pg_hba.conf line), again with SSL: a second connection node-postgres' clients cannot make
  if (sslmode === 'allow') return 'sslmode=allow is not taken (libpq connects without SSL and tries SSL only when refused): use prefer (SSL when the server offers it, else without) or disable';
  if (sslmode !== null && !PG_SSLMODES.includes(sslmode)) return `sslmode=${JSON.stringify(sslmode)}: expected one of ${PG_SSLMODES.join(', ')}`;
  const ssl = params.get('ssl');
  if (ssl !== null && !PG_SSL.includes(ssl)) return `ssl=${JSON.stringify(ssl)}: expected ssl=true or ssl=1 (SSL on), ssl=0 (off), or an sslmode`;
  // connect_timeout, and the certificate files (a missing sslrootcert was a stack trace, exit 1)
  return pgConnectionProblem(raw);
}

/** Why a DATABASE_URL does not parse, as closely as can be said without quoting it. */
function unreadableDatabaseUrl(raw: string): string {
  const host = /^postgres(?:ql)?:\/\/(?:[^@]*@)?([^/?#@]*)/i.exec(raw)?.[1] ?? '';
  if (host.includes(',')) return 'several hosts (host1,host2) cannot be given: name one host (the primary, or a proxy in front of them)';
  const port = /:(\d+)$/.exec(host)?.[1];
  if (port !== undefined && Number(port) > 65535) return 'the port must be from 1 to 65535';
  return 'not a URL that can be read: percent-encode reserved characters in the user name and password (# as %23, / as %2F, ? as %3F, @ as %40, % as %25) in postgres://user:password@host:port/database';
}

/**
 * EARSHOT_JWT_AUDIENCE: one audience or several, comma-separated (blanks around each trimmed, a
 * repeat once); a token is taken when its `aud` names any of them. `a,b` was one audience named
 * "a,b" that no token carried. An empty entry (`a,,b`, a trailing comma) is refused: a value put
 * together from variables where one was empty, and the audience it lost is not guessed.
 */
function jwtAudiences(raw: string | null, problems: string[]): string[] | null {
  if (raw === null) return null;
  const entries = raw.split(',').map((a) => a.trim());
  if (entries.some((a) => a === '')) {
    problems.push(`EARSHOT_JWT_AUDIENCE=${JSON.stringify(raw)}: expected one audience or a comma-separated list of them, with no empty entry`);
    return null;
  }
  return [...new Set(entries)];
}

/**
 * EARSHOT_IDENTITY_IGNORED, comma-separated: `local@` and `@domain` stay patterns (lower case), a
 * full address is normalized as an email, a phone as E.164, `network:handle` as a handle key.
 */
function ignoredIdentities(raw: string | null, region: string, problems: string[]): string[] {
  const out: string[] = [];
  for (const entry of (raw ?? '').split(',').map((e) => e.trim()).filter((e) => e.length > 0)) {
    const lower = entry.toLowerCase();
    const colon = entry.indexOf(':');
    let value: string | null;
    const network = colon > 0 ? canonicalNetwork(entry.slice(0, colon)) : null;
    if (network) value = identityKey('handle', network, entry.slice(colon + 1));
    else if (/^[^@\s]+@$|^@[^@\s]+$/.test(lower)) value = lower;
    else if (entry.includes('@')) value = identityKey('email', null, entry);
    else value = identityKey('phone', null, entry, { defaultRegion: region });
    if (value) out.push(value);
    else problems.push(`EARSHOT_IDENTITY_IGNORED: ${JSON.stringify(entry)} is no email pattern, email, phone or network:handle`);
  }
  return out;
}

/** Defaults: the thresholds chosen on the Febrl evaluation (src/identity/matcher.ts). */
function identityThresholds(str: (n: string) => string | null, problems: string[]): { autoLinkBits: number; reviewBits: number } {
  const bits = (name: string, def: number): number => {
    const raw = str(name);
    if (raw === null) return def;
    const n = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isFinite(n) || n < 0 || n > 100) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected a number of bits from 0 to 100 (decimal, e.g. 12.5)`);
      return def;
    }
    return n;
  };
  const autoLinkBits = bits('EARSHOT_IDENTITY_AUTO_LINK_BITS', 13);
  const reviewBits = bits('EARSHOT_IDENTITY_REVIEW_BITS', 7);
  if (reviewBits > autoLinkBits) problems.push('EARSHOT_IDENTITY_REVIEW_BITS must not exceed EARSHOT_IDENTITY_AUTO_LINK_BITS');
  return { autoLinkBits, reviewBits };
}

/**
 * EARSHOT_* names read only under conditions (so not seen while parsing an environment without
 * them), or read outside loadConfig. Every other name counts as known once loadConfig reads it.
 */
export const KNOWN_ELSEWHERE: readonly string[] = [
  ...['API_VERSION', 'BUDGET_PER_10S', 'CLIENT_ID', 'CLIENT_SECRET', 'DAILY_BUDGET', 'IDENTITY_FIELDS', 'INSTANCE_URL', 'JWT_AUDIENCE', 'JWT_SUBJECT', 'JWT_KEY', 'JWT_KEY_FILE',
    'LOGIN_URL', 'OBJECTS', 'QUERY_BATCH_SIZE', 'CURSOR_LAG_MS', 'WRITEBACK_FIELDS', 'WRITEBACK_OBJECTS', 'REFRESH_TOKEN', 'USERNAME', 'PASSWORD'].map((n) => `EARSHOT_SF_${n}`),
  ...['APP_URL', 'BASE_PATH', 'BUDGET_PER_10S', 'CLIENT_ID', 'CLIENT_SECRET', 'DAILY_BUDGET', 'IDENTITY_FIELDS', 'OBJECTS', 'PORTAL_ID', 'PROPERTY_GROUP', 'SEARCH_LAG_MS',
    'SEARCH_PER_SECOND', 'WRITEBACK_PROPERTIES', 'TOKEN', 'REFRESH_TOKEN'].map((n) => `EARSHOT_HUBSPOT_${n}`),
  // the proxy variables, read only with a CRM and lower case first: HTTPS_PROXY beside https_proxy is no typo
  'http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY',
  // compose, benchmarks and tests
  'EARSHOT_PORT', 'EARSHOT_SHARED_DATA', 'EARSHOT_TEST_KAFKA_BROKERS', 'EARSHOT_TEST_PG_ADMIN_URL', 'EARSHOT_TEST_PG_PORT',
];

/** Every variable name loadConfig reads with an empty environment, plus KNOWN_ELSEWHERE. */
export function knownVariableNames(): Set<string> {
  const read = new Set<string>(KNOWN_ELSEWHERE);
  loadConfig({}, read);
  return read;
}

/**
 * A warning per EARSHOT_* variable that nothing reads, naming the closest known one; the same for
 * a prefix mistyped or in lower case (ERASHOT_ROLES, earshot_roles) and for a near miss of another
 * name Earshot reads (DATABSE_URL started the embedded PostgreSQL instead, without a word).
 */
export function unknownVariables(env: Env, known: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (known.has(name) || kubernetesServiceLink(name, env[name])) continue;
    const upper = name.toUpperCase();
    const prefix = upper.split('_')[0]!;
    if (upper.includes('_') && prefix.length >= 5 && editDistance(prefix, 'EARSHOT') <= 2) {
      let best: string | null = null;
      let bestD = Infinity;
      for (const k of known) {
        if (!k.startsWith('EARSHOT_')) continue;
        const d = editDistance(upper, k);
        if (d < bestD) [best, bestD] = [k, d];
      }
      out.push(`${name} is not a variable Earshot knows${best && bestD <= Math.max(3, Math.floor(name.length / 3)) ? `; did you mean ${best}?` : ''}`);
      continue;
    }
    // Other names are shared with other tools (KAFKA_HEAP_OPTS, HOSTNAME): only a near miss of one
    // Earshot reads is named (KAFKA_BROKER for KAFKA_BROKERS ran without Kafka), and no short name.
    if (upper.length < 8) continue;
    const near = [...known].filter((k) => !k.startsWith('EARSHOT_') && editDistance(upper, k) <= 2).sort((a, b) => editDistance(upper, a) - editDistance(upper, b))[0];
    if (near) out.push(`${name} is not a variable Earshot reads; did you mean ${near}?`);
  }
  return out;
}

/**
 * Kubernetes sets these for every Service of the namespace (one named earshot gives
 * EARSHOT_SERVICE_HOST, EARSHOT_PORT=tcp://…, EARSHOT_PORT_4000_TCP_ADDR …): no typo of anyone's.
 */
function kubernetesServiceLink(name: string, value: string | undefined): boolean {
  return /_SERVICE_(HOST|PORT(_[A-Z0-9_]+)?)$/.test(name) || /_PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?$/.test(name) || (/_PORT$/.test(name) && /^(tcp|udp|sctp):\/\//.test(value ?? ''));
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.values(o).forEach((v) => deepFreeze(v));
    Object.freeze(o);
  }
  return o;
}

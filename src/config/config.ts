import path from 'node:path';

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
  };
  readonly shutdownTimeoutMs: number;
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
    },
    shutdownTimeoutMs: int('EARSHOT_SHUTDOWN_TIMEOUT_MS', 15_000, 0, 600_000),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(config);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.values(o).forEach((v) => deepFreeze(v));
    Object.freeze(o);
  }
  return o;
}

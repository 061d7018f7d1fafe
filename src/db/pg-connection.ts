import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';

/**
 * The parameters of a DATABASE_URL that Earshot reads itself instead of node-postgres, which (pg
 * 8) took them otherwise than libpq: `sslmode=require` and `prefer` as full verification, with a
 * multi-line warning at every start; `connect_timeout` not at all; an `sslrootcert`, `sslcert` or
 * `sslkey` file read at each new connection, a missing one thrown as a stack trace.
 */
const OWN_PARAMS = ['sslmode', 'ssl', 'sslrootcert', 'sslcert', 'sslkey', 'sslnegotiation', 'connect_timeout', 'uselibpqcompat'];

export interface PgConnection {
  /** the URL without OWN_PARAMS: node-postgres parses it for host, port, user, database and the rest */
  connectionString: string;
  /** false: no SSL; undefined: node-postgres' default (no SSL, unless PGSSLMODE says otherwise) */
  ssl: false | ConnectionOptions | undefined;
  /** connect_timeout in ms, or null when the URL has none */
  connectTimeoutMs: number | null;
  /** sslnegotiation as given (node-postgres checks it): passed on explicitly, as it turns SSL on when left in the URL */
  sslnegotiation: string | null;
}

/** connect_timeout: whole seconds, as libpq reads it; 0 (libpq: wait for ever) is not taken. */
const MAX_CONNECT_TIMEOUT_S = 3600;

function params(url: string): URLSearchParams {
  const q = url.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : url.slice(q + 1).split('#')[0]);
}

/**
 * What is wrong with the connection parameters of a DATABASE_URL, or null; for loadConfig, which
 * refuses it in one line (exit 2). Only the parameter is named, never the URL (it may hold a
 * password); a file is named by its path.
 */
export function pgConnectionProblem(url: string): string | null {
  const p = params(url);
  const timeout = p.get('connect_timeout');
  if (timeout !== null && (!/^\d+$/.test(timeout.trim()) || Number(timeout) < 1 || Number(timeout) > MAX_CONNECT_TIMEOUT_S)) {
    return `connect_timeout=${JSON.stringify(timeout)}: expected whole seconds from 1 to ${MAX_CONNECT_TIMEOUT_S} (0, for libpq no limit, is not taken: a connection attempt that never ends holds the start and a pool slot)`;
  }
  for (const name of ['sslrootcert', 'sslcert', 'sslkey'] as const) {
    const file = p.get(name);
    if (file === null) continue;
    try {
      readFileSync(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'a directory, not a file' : (code ?? String(e));
      return `${name}=${JSON.stringify(file)}: cannot read the file (${why})`;
    }
  }
  const mode = p.get('sslmode');
  if (mode === 'verify-ca' && p.get('sslrootcert') === null) {
    return 'sslmode=verify-ca needs sslrootcert=FILE, the certificate authority to check the server against (or sslmode=verify-full, which checks against the usual authorities and the host name)';
  }
  return null;
}

const cache = new Map<string, PgConnection>();

/**
 * The node-postgres settings of a DATABASE_URL, with libpq's meaning for its SSL parameters and
 * connect_timeout; computed once per URL (the certificate files are read then, at start: a renewed
 * file is read at the next start). loadConfig has refused what pgConnectionProblem names.
 *
 * sslmode, as libpq: `disable` no SSL; `prefer` and `require` encrypt without checking the server's
 * certificate (`require` with sslrootcert checks it against that authority, as `verify-ca`);
 * `verify-ca` checks the certificate against sslrootcert, not the host name; `verify-full` checks
 * both (against sslrootcert, or Node.js' usual authorities). `prefer` never falls back to a
 * connection without SSL (node-postgres cannot): a server without SSL is refused. node-postgres' own
 * `no-verify`, and `ssl=true`/`1`/`0`, keep their meaning; sslrootcert, sslcert or sslkey without
 * sslmode turn SSL on with full verification, as node-postgres did.
 */
export function pgConnection(url: string): PgConnection {
  const known = cache.get(url);
  if (known) return known;
  const p = params(url);
  const read = (name: string): string | undefined => {
    const file = p.get(name);
    return file === null ? undefined : readFileSync(file, 'utf8');
  };
  // only the options given: an `undefined` ca would replace Node.js' usual authorities
  const files: ConnectionOptions = {};
  const ca = read('sslrootcert');
  const cert = read('sslcert');
  const key = read('sslkey');
  if (ca !== undefined) files.ca = ca;
  if (cert !== undefined) files.cert = cert;
  if (key !== undefined) files.key = key;
  const noHostCheck = { checkServerIdentity: () => undefined };
  let ssl: PgConnection['ssl'];
  switch (p.get('sslmode')) {
    case 'disable':
      ssl = false;
      break;
    case 'prefer':
      ssl = { ...files, rejectUnauthorized: false };
      break;
    case 'require':
      ssl = ca !== undefined ? { ...files, ...noHostCheck } : { ...files, rejectUnauthorized: false };
      break;
    case 'verify-ca':
      ssl = { ...files, ...noHostCheck };
      break;
    case 'verify-full':
      ssl = { ...files };
      break;
    case 'no-verify':
      ssl = { ...files, rejectUnauthorized: false };
      break;
    default: {
      const flag = p.get('ssl');
      if (flag === '0') ssl = false;
      else if (flag === 'no-verify') ssl = { ...files, rejectUnauthorized: false };
      // sslnegotiation=direct alone turned SSL on in node-postgres, fully verified: as before
      else if (flag === 'true' || flag === '1' || Object.keys(files).length > 0 || p.get('sslnegotiation') === 'direct') ssl = { ...files };
      else ssl = undefined;
    }
  }
  const timeout = p.get('connect_timeout');
  const out: PgConnection = { connectionString: withoutParams(url, OWN_PARAMS), ssl, connectTimeoutMs: timeout === null ? null : Number(timeout) * 1000, sslnegotiation: p.get('sslnegotiation') };
  cache.set(url, out);
  return out;
}

/**
 * The node-postgres client settings for `url` on top of `config`: the URL's connect_timeout, when
 * it has one, replaces the caller's connectionTimeoutMillis (each connection attempt's bound).
 */
export function pgClientConfig<T extends { connectionString?: string; connectionTimeoutMillis?: number; ssl?: unknown }>(config: T): T {
  if (!config.connectionString) return config;
  const c = pgConnection(config.connectionString);
  return {
    ...config,
    connectionString: c.connectionString,
    ...(c.ssl === undefined ? {} : { ssl: c.ssl }),
    ...(c.connectTimeoutMs === null ? {} : { connectionTimeoutMillis: c.connectTimeoutMs }),
    ...(c.sslnegotiation === null ? {} : { sslnegotiation: c.sslnegotiation }),
  };
}

/** `url` without the query parameters `names`; the rest of it byte for byte (a Unix socket's `host=/run/…` included). */
function withoutParams(url: string, names: readonly string[]): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const hash = url.indexOf('#', q);
  const query = url.slice(q + 1, hash < 0 ? undefined : hash);
  const kept = query.split('&').filter((pair) => {
    if (pair === '') return false;
    const eq = pair.indexOf('=');
    let name = eq < 0 ? pair : pair.slice(0, eq);
    try {
      name = decodeURIComponent(name.replace(/\+/g, ' '));
    } catch {
      // kept as written
    }
    return !names.includes(name);
  });
  return `${url.slice(0, q)}${kept.length ? `?${kept.join('&')}` : ''}${hash < 0 ? '' : url.slice(hash)}`;
}

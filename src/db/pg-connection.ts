import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls, { type ConnectionOptions } from 'node:tls';
import pg from 'pg';
import type { Logger } from '../shared/logger';

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
  /** sslmode=prefer: SSL when the server offers it, else without (settlePreferSsl) */
  prefer: boolean;
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
  // libpq takes the last of a repeated parameter, this module (and node-postgres) the first:
  // `sslmode=disable&sslmode=require` connected without SSL, silently, where psql insists on it
  for (const name of OWN_PARAMS) if (p.getAll(name).length > 1) return `${name} is given twice: libpq takes the last, node-postgres the first; name it once`;
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
 * both (against sslrootcert, or Node.js' usual authorities). `prefer` falls back to a connection
 * without SSL when the server offers none, decided once per URL ({@link settlePreferSsl}); until
 * then (and when the server offers SSL) `ssl` is the encrypting setting. node-postgres' own
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
  const out: PgConnection = { connectionString: withoutParams(url, OWN_PARAMS), ssl, connectTimeoutMs: timeout === null ? null : Number(timeout) * 1000, sslnegotiation: p.get('sslnegotiation'), prefer: p.get('sslmode') === 'prefer' };
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
    ...(c.ssl === undefined ? {} : { ssl: preferWithoutSsl(config.connectionString) ? false : c.ssl }),
    ...(c.connectTimeoutMs === null ? {} : { connectionTimeoutMillis: c.connectTimeoutMs }),
    ...(c.sslnegotiation === null ? {} : { sslnegotiation: c.sslnegotiation }),
  };
}

/** The sslmode=prefer URLs whose server answered that it offers no SSL. */
const withoutSsl = new Set<string>();
/** A probe of a prefer URL's server under way, or done with a definite answer. */
const probes = new Map<string, Promise<void>>();
let fallbackLog: Logger | undefined;

/** Whether connections from `url` (sslmode=prefer) go without SSL: its server answered that it offers none. */
export function preferWithoutSsl(url: string): boolean {
  return withoutSsl.has(url);
}

/**
 * libpq's `sslmode=prefer` (its default): SSL when the server offers it, else a connection
 * without. node-postgres cannot fall back (the server's 'N' to its SSLRequest fails the connection:
 * "The server does not support SSL connections", and a client cannot connect twice), so Earshot
 * asks the server once per URL, before its first connection from it: a connection of its own sends
 * the SSLRequest and reads the one-byte answer. 'N' (no SSL; PostgreSQL answers so over a Unix
 * socket too) makes every connection from the URL go without SSL from then on ({@link pgClientConfig},
 * PinnedClient) and is logged once, at info; 'S' keeps SSL (the probe completes the TLS handshake
 * and closes, which the server does not log). The answer is kept until the process ends: a server
 * that gains SSL later is used without it until Earshot restarts (libpq decides at each
 * connection). A probe that gets no answer (the server cannot be reached) decides nothing: the
 * connection then fails with node-postgres' own error, and the next one asks again. Never throws.
 * `log`, when given, is where the fallback is logged (openDatabase passes the service's).
 */
export function settlePreferSsl(url: string, opts: { log?: Logger; timeoutMs?: number } = {}): Promise<void> {
  if (opts.log) fallbackLog = opts.log;
  const c = pgConnection(url);
  if (!c.prefer) return Promise.resolve();
  const known = probes.get(url);
  if (known) return known;
  // host and port as node-postgres reads them (the URL, else PGHOST/PGPORT, else its defaults); no connection is made
  const { host, port } = new pg.Client({ connectionString: c.connectionString });
  const probe = askForSsl(host, port, opts.timeoutMs ?? c.connectTimeoutMs ?? 10_000).then((answer) => {
    if (answer === 'N') {
      withoutSsl.add(url);
      (opts.log ?? fallbackLog)?.info({ host, port }, 'the database server offers no SSL: sslmode=prefer connects without it (as libpq does), decided once until restart');
    } else if (answer === null) {
      probes.delete(url);
    }
  });
  probes.set(url, probe);
  return probe;
}

/** PostgreSQL's SSLRequest: length 8, code 80877103 (1234 << 16 | 5679). */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** The server's answer to an SSLRequest at `host`:`port` ('S' or 'N'), or null (no answer within `timeoutMs`, an error, another byte). */
function askForSsl(host: string, port: number, timeoutMs: number): Promise<'S' | 'N' | null> {
  return new Promise((resolve) => {
    const socket = host.startsWith('/') ? net.connect(`${host}/.s.PGSQL.${port}`) : net.connect(port, host);
    let answered = false;
    const done = (answer: 'S' | 'N' | null): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      resolve(answer);
    };
    const timer = setTimeout(() => {
      socket.destroy();
      done(null);
    }, timeoutMs);
    timer.unref();
    socket.on('error', () => done(null));
    socket.on('close', () => done(null));
    socket.once('connect', () => socket.write(SSL_REQUEST));
    socket.once('data', (b: Buffer) => {
      const answer = b.length === 1 && (b[0] === 0x53 || b[0] === 0x4e) ? (String.fromCharCode(b[0]) as 'S' | 'N') : null;
      done(answer);
      if (answer !== 'S') {
        socket.destroy();
        return;
      }
      // the TLS handshake completed, then closed: PostgreSQL logs a handshake cut short ("could not
      // accept SSL connection: EOF detected"), not a connection that sends nothing after it
      // (PostgreSQL 15 with ssl=on: only log_connections' "connection received")
      const secure = tls.connect({ socket, rejectUnauthorized: false, ...(net.isIP(host) === 0 ? { servername: host } : {}) });
      const bound = setTimeout(() => secure.destroy(), timeoutMs);
      bound.unref();
      secure.on('error', () => undefined);
      secure.once('secureConnect', () => secure.end());
      secure.once('close', () => clearTimeout(bound));
    });
  });
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

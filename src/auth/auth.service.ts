import { createHash, timingSafeEqual } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { USER_ROLES, type Config, type UserRole } from '../config/config';
import { AppError } from '../shared/app-error';
import { readCapped } from '../shared/read-capped';

export interface Principal {
  /** who: an API key's name or the JWT subject */
  id: string;
  /** the most privileged of `roles` (logs, messages) */
  role: UserRole;
  /** every role the credential carries; a request may do what any of them may (auth-checker, pii.policy) */
  roles: readonly UserRole[];
  /**
   * When the credential stops being valid (epoch ms): a JWT's `exp`; absent for API keys. What
   * outlives one request (a WebSocket and its subscriptions) must end here.
   */
  expiresAt?: number;
}

export { PII_ROLES } from './pii.policy';

/**
 * Who a principal is, for what is counted per caller (WebSocket connections, GraphQL slots): an
 * API key's name and a JWT's subject are apart, even when they are spelled alike. Callers
 * without a credential count as one.
 */
export function callerKey(principal: Principal | null): string {
  if (principal === null) return 'anonymous';
  return `${principal.expiresAt === undefined ? 'key' : 'jwt'}:${principal.id}`;
}

/** Most privileged first: a token with several roles is named after the first it holds. */
const PRIVILEGE_ORDER: readonly UserRole[] = ['admin', 'agent', 'sales', 'analyst', 'service'];

/**
 * A key set larger than this is refused unread: real ones are a few KiB (a dozen keys), and jose
 * read any size whole, then parsed, copied and hashed it (a 50 MB one: 5.3 s, +300 MB).
 */
const JWKS_MAX_BYTES = 1024 * 1024;
/**
 * After a failed JWKS fetch, requests do not fetch again for this long: jose fetched once per
 * request while the identity provider was down (100 requests, 100 fetches), and a JWKS that never
 * answered held every request for its 5 s timeout.
 */
const JWKS_RETRY_MS = 5_000;
/** A key set older than this is fetched again before it verifies a request (jose's default). */
const JWKS_CACHE_MS = 10 * 60_000;
/** A token whose `kid` is not in the key set fetches it again at most this often (jose's default). */
const JWKS_COOLDOWN_MS = 30_000;

/** With no auth configured (development only) every caller acts as this. */
const OPEN_PRINCIPAL: Principal = { id: 'anonymous (auth not configured)', role: 'admin', roles: ['admin'] };

/**
 * Turns request headers into a principal: `X-API-Key` or `Authorization: Bearer <key|JWT>`.
 * Must stay true: a request carrying a credential that does not verify is refused with
 * UNAUTHENTICATED, never treated as anonymous.
 */
export class AuthService {
  private readonly jwks: ReturnType<typeof createRemoteJWKSet> | null;
  private readonly secret: Uint8Array | null;
  /** the last key set fetched, as `reverify` checks against it (rebuilt when it changes) */
  private fetched: { version: string; keys: ReturnType<typeof createLocalJWKSet> } | null = null;
  /**
   * The key set's age, the unknown-`kid` cooldown and the pause after a failed fetch count on this
   * monotonic clock (ms; `performance.now()`). jose counts its own on the wall clock: a host clock
   * stepped back an hour (NTP, a VM restored) kept a key rotated in at the identity provider
   * refused here for the hour, kept a withdrawn key verifying for 70 minutes instead of 10, and,
   * after a failed fetch, stopped fetching for the hour. Tokens' `exp`, `nbf` and `iat` stay on
   * the wall clock: they are dates.
   */
  private readonly monotonic: () => number;
  /** when the key set held was fetched (monotonic ms), null before one was */
  private fetchedAt: number | null = null;
  /** when the last JWKS fetch failed (monotonic ms), null once one succeeds */
  private fetchFailedAt: number | null = null;

  constructor(
    private readonly config: Config['auth'],
    opts: { monotonic?: () => number } = {},
  ) {
    this.monotonic = opts.monotonic ?? (() => performance.now());
    // jose's cache age and cooldown never run out (they read Date.now()): remoteKeys decides when to fetch
    this.jwks = config.jwksUrl
      ? createRemoteJWKSet(new URL(config.jwksUrl), { cacheMaxAge: Infinity, cooldownDuration: Infinity, [customFetch]: (url, init) => this.fetchJwks(url, init) })
      : null;
    this.secret = config.jwtSecret ? new TextEncoder().encode(config.jwtSecret) : null;
  }

  async authenticate(headers: CredentialHeaders): Promise<Principal | null> {
    const { apiKey, bearer } = credentials(headers);
    const credential = apiKey ?? bearer;
    if (!credential) return this.config.open ? OPEN_PRINCIPAL : null;
    const key = this.config.apiKeys.find((k) => safeEqual(k.key, credential));
    if (key) return { id: key.name, role: key.role, roles: [key.role] };
    // an X-API-Key that matches no key is refused, whatever Bearer token comes with it
    if (apiKey === undefined && bearer && bearer.split('.').length === 3 && (this.secret || this.jwks)) return this.verifyJwt(bearer);
    if (this.config.open) throw new AppError('UNAUTHENTICATED', 'a credential was sent but authentication is not configured');
    throw new AppError('UNAUTHENTICATED', 'invalid API key or token');
  }

  /**
   * True when JWTs are verified against a key set fetched from EARSHOT_JWKS_URL, which can change
   * while a connection is open (a key withdrawn after a leak); an HS256 secret cannot.
   */
  get keysRotate(): boolean {
    return this.jwks !== null && this.secret === null;
  }

  /**
   * Fetches the key set from EARSHOT_JWKS_URL now (jose's `reload`, past its 30 s cooldown, which
   * guards only against unknown `kid`s), so that a key withdrawn there stops verifying here, for
   * new requests too. `version` names the key set now held (a hash; null before any fetch). A
   * fetch that fails (network, non-200, not a key set) changes nothing: the last key set fetched
   * stays, and `error` says why.
   */
  async refreshKeys(): Promise<{ version: string | null; error: string | null }> {
    if (!this.jwks) return { version: null, error: null };
    let error: string | null = null;
    try {
      await this.jwks.reload();
    } catch (e) {
      error = (e as Error).message || String(e);
    }
    const set = this.jwks.jwks();
    if (!set) return { version: null, error };
    return { version: this.held(set).version, error };
  }

  /** `this.fetched` for this key set: rebuilt only when it changed, so its keys are imported once. */
  private held(set: JSONWebKeySet): NonNullable<AuthService['fetched']> {
    const version = createHash('sha256').update(JSON.stringify(set)).digest('hex');
    if (this.fetched?.version !== version) this.fetched = { version, keys: createLocalJWKSet(set) };
    return this.fetched;
  }

  /**
   * Why the JWT in `headers` no longer verifies against the last key set fetched (`refreshKeys`;
   * no fetch here, so a failed fetch never refuses a token), or null while it does. API keys and
   * HS256 tokens do not change while the process runs: null.
   */
  async reverify(headers: CredentialHeaders): Promise<string | null> {
    const { apiKey, bearer } = credentials(headers);
    if (apiKey !== undefined || !bearer || !this.keysRotate || !this.fetched) return null;
    if (this.config.apiKeys.some((k) => safeEqual(k.key, bearer))) return null;
    try {
      await this.verifyJwt(bearer, this.fetched.keys);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  }

  private async verifyJwt(token: string, keys: ReturnType<typeof createLocalJWKSet> | null = null): Promise<Principal> {
    let payload: JWTPayload;
    try {
      // a token without exp would be valid forever: exp is required, and its lifetime capped
      // nbf and iat are the issuer's clock: a host a few seconds behind it refused every fresh
      // token that carried nbf = now (as many identity providers issue them) until it caught up.
      // The tolerance stretches jose's exp check too; exp is checked again below, without it.
      const opts = {
        issuer: this.config.jwtIssuer ?? undefined,
        // any of EARSHOT_JWT_AUDIENCE's audiences (jose: the token's `aud` names at least one)
        audience: this.config.jwtAudience ? [...this.config.jwtAudience] : undefined,
        requiredClaims: ['exp'],
        clockTolerance: this.config.jwtClockSkewSeconds,
      };
      payload = this.secret
        ? (await jwtVerify(token, this.secret, { ...opts, algorithms: ['HS256'] })).payload
        : (await jwtVerify(token, keys ?? this.remoteKeys, opts)).payload;
    } catch (e) {
      throw new AppError('UNAUTHENTICATED', `invalid token: ${(e as Error).message}`);
    }
    const now = Math.floor(Date.now() / 1000);
    // an expired token is refused at its exp, whatever the skew: the skew may let a fresh token in
    // early, never keep an old one alive (jose's own wording)
    if (typeof payload.exp === 'number' && payload.exp <= now) throw new AppError('UNAUTHENTICATED', 'invalid token: "exp" claim timestamp check failed');
    // an iat ahead of this host's clock by less than the skew is the issuer's now
    const issued = typeof payload.iat === 'number' && payload.iat <= now + this.config.jwtClockSkewSeconds ? payload.iat : now;
    if (typeof payload.exp !== 'number' || payload.exp - issued > this.config.jwtMaxAgeSeconds) {
      throw new AppError('UNAUTHENTICATED', `invalid token: it must expire at most ${this.config.jwtMaxAgeSeconds} s after it was issued (EARSHOT_JWT_MAX_AGE_SECONDS)`);
    }
    const claimed = [payload.role, ...(Array.isArray(payload.roles) ? payload.roles : [])].filter(
      (r): r is UserRole => typeof r === 'string' && (USER_ROLES as readonly string[]).includes(r),
    );
    // the subject names the caller in the audit trail and in the per-caller limits: without one,
    // every such caller was one principal "unknown"
    if (typeof payload.sub !== 'string' || payload.sub.trim() === '') throw new AppError('UNAUTHENTICATED', 'invalid token: it carries no subject (claim "sub")');
    // ... and is stored as the actor of audit rows, jobs and listening items: with a NUL character
    // (JSON "\u0000") each audited mutation failed in PostgreSQL with INTERNAL_SERVER_ERROR; a lone
    // UTF-16 surrogate was stored as U+FFFD, so two subjects became one actor in the audit trail
    if (payload.sub.includes('\u0000') || !(payload.sub as unknown as { isWellFormed(): boolean }).isWellFormed()) {
      throw new AppError('UNAUTHENTICATED', 'invalid token: its subject (claim "sub") holds a NUL character or a lone UTF-16 surrogate, which cannot be recorded');
    }
    if (claimed.length === 0) throw new AppError('FORBIDDEN', `the token carries no role (claim "role" or "roles": ${USER_ROLES.join(', ')})`);
    // several roles act together, so the most privileged one decides (e.g. agent + analyst sees PII)
    const roles = PRIVILEGE_ORDER.filter((r) => claimed.includes(r));
    return { id: payload.sub, role: roles[0]!, roles, expiresAt: payload.exp * 1000 };
  }

  /**
   * The key set from EARSHOT_JWKS_URL, fetched again once JWKS_CACHE_MS old, or for a `kid` it
   * lacks once JWKS_COOLDOWN_MS old. While fetches fail (JWKS_RETRY_MS after the last failure),
   * requests do not fetch again: they verify against the last key set fetched, as open WebSockets
   * do, or are refused at once when none ever was.
   */
  private readonly remoteKeys: JWTVerifyGetKey = async (header, token) => {
    const jwks = this.jwks!;
    const since = (t: number | null) => (t === null ? Infinity : this.monotonic() - t);
    // a failed fetch keeps the last key set; fetchJwks notes the failure
    const reload = async () => {
      if (since(this.fetchFailedAt) >= JWKS_RETRY_MS) await jwks.reload().catch(() => undefined);
    };
    if (since(this.fetchedAt) >= JWKS_CACHE_MS) await reload();
    if (this.fetchedAt === null) throw new Error(`the signing keys could not be fetched from EARSHOT_JWKS_URL (tried again at most every ${JWKS_RETRY_MS / 1000} s)`);
    try {
      return await jwks(header, token);
    } catch (e) {
      // a kid not in the set: a key rotated in at the identity provider since the last fetch
      if (!(e instanceof joseErrors.JWKSNoMatchingKey) || since(this.fetchedAt) < JWKS_COOLDOWN_MS) throw e;
      await reload();
      return await jwks(header, token);
    }
  };

  /** jose's fetch of the key set, with its size bounded; every failure is noted (JWKS_RETRY_MS). */
  private async fetchJwks(url: string, init: RequestInit): Promise<Response> {
    try {
      const res = await fetch(url, init);
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`the JWKS answered HTTP ${res.status}, not 200`);
      }
      const text = await readCapped(res, JWKS_MAX_BYTES, (declared) => new Error(`the JWKS is larger than ${JWKS_MAX_BYTES} bytes${declared === null ? '' : ` (${declared})`}`));
      let set: unknown;
      try {
        set = JSON.parse(text);
      } catch {
        throw new Error('the JWKS is not JSON');
      }
      const keys = (set as { keys?: unknown } | null)?.keys;
      if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'object' && k !== null && !Array.isArray(k))) throw new Error('the JWKS is not a key set ({"keys": [...]})');
      this.fetchFailedAt = null;
      this.fetchedAt = this.monotonic();
      return new Response(text, { status: 200, headers: { 'content-type': 'application/json' } });
    } catch (e) {
      this.fetchFailedAt = this.monotonic();
      throw e;
    }
  }
}

type CredentialHeaders = { authorization?: string; 'x-api-key'?: string | string[] };

function credentials(headers: CredentialHeaders): { apiKey?: string; bearer?: string } {
  const apiKey = Array.isArray(headers['x-api-key']) ? headers['x-api-key'][0] : headers['x-api-key'];
  const bearer = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? '')?.[1]?.trim();
  // empty is absent: the explorer sends `X-API-Key: ""` by default, beside a Bearer token
  return { apiKey: apiKey || undefined, bearer: bearer || undefined };
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

import { createHash, timingSafeEqual } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { USER_ROLES, type Config, type UserRole } from '../config/config';
import { AppError } from '../shared/app-error';

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

  constructor(private readonly config: Config['auth']) {
    this.jwks = config.jwksUrl ? createRemoteJWKSet(new URL(config.jwksUrl)) : null;
    this.secret = config.jwtSecret ? new TextEncoder().encode(config.jwtSecret) : null;
  }

  async authenticate(headers: CredentialHeaders): Promise<Principal | null> {
    const { apiKey, bearer } = credentials(headers);
    const credential = apiKey ?? bearer;
    if (!credential) return this.config.open ? OPEN_PRINCIPAL : null;
    const key = this.config.apiKeys.find((k) => safeEqual(k.key, credential));
    if (key) return { id: key.name, role: key.role, roles: [key.role] };
    if (bearer && bearer.split('.').length === 3 && (this.secret || this.jwks)) return this.verifyJwt(bearer);
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
    const version = createHash('sha256').update(JSON.stringify(set)).digest('hex');
    if (this.fetched?.version !== version) this.fetched = { version, keys: createLocalJWKSet(set) };
    return { version, error };
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
      const opts = { issuer: this.config.jwtIssuer ?? undefined, audience: this.config.jwtAudience ?? undefined, requiredClaims: ['exp'] };
      payload = this.secret
        ? (await jwtVerify(token, this.secret, { ...opts, algorithms: ['HS256'] })).payload
        : (await jwtVerify(token, keys ?? this.jwks!, opts)).payload;
    } catch (e) {
      throw new AppError('UNAUTHENTICATED', `invalid token: ${(e as Error).message}`);
    }
    const now = Math.floor(Date.now() / 1000);
    const issued = typeof payload.iat === 'number' && payload.iat <= now ? payload.iat : now;
    if (typeof payload.exp !== 'number' || payload.exp - issued > this.config.jwtMaxAgeSeconds) {
      throw new AppError('UNAUTHENTICATED', `invalid token: it must expire at most ${this.config.jwtMaxAgeSeconds} s after it was issued (EARSHOT_JWT_MAX_AGE_SECONDS)`);
    }
    const claimed = [payload.role, ...(Array.isArray(payload.roles) ? payload.roles : [])].filter(
      (r): r is UserRole => typeof r === 'string' && (USER_ROLES as readonly string[]).includes(r),
    );
    if (claimed.length === 0) throw new AppError('FORBIDDEN', `the token carries no role (claim "role" or "roles": ${USER_ROLES.join(', ')})`);
    // several roles act together, so the most privileged one decides (e.g. agent + analyst sees PII)
    const roles = PRIVILEGE_ORDER.filter((r) => claimed.includes(r));
    return { id: payload.sub ?? 'unknown', role: roles[0]!, roles, expiresAt: payload.exp * 1000 };
  }
}

type CredentialHeaders = { authorization?: string; 'x-api-key'?: string | string[] };

function credentials(headers: CredentialHeaders): { apiKey?: string; bearer?: string } {
  const apiKey = Array.isArray(headers['x-api-key']) ? headers['x-api-key'][0] : headers['x-api-key'];
  const bearer = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? '')?.[1]?.trim();
  return { apiKey, bearer };
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

import { PassThrough } from 'node:stream';
import { Transport } from 'jsforce/lib/transport';
import { fetch, type EnvHttpProxyAgent } from 'undici';
import type { HttpRequest, HttpRequestOptions, HttpResponse } from 'jsforce/lib/types';
import { StreamPromise } from 'jsforce/lib/util/promise';
import type { Logger } from '../../shared/logger';
import { NO_PROXY, proxyDispatcher, type ProxySettings } from '../crm-proxy';
import { readCapped } from '../../shared/read-capped';
import { DEFAULT_CRM_MAX_RESPONSE_BYTES, responseTooLarge } from '../crm-response-cap';
import { CrmCallFailed, retryAfterMs, retryDelay, sleep, waitsInPlace, type CrmBudget, type RetryPolicy } from '../crm-budget';

const RETRY_STATUS = new Set([420, 429, 500, 502, 503, 504]);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'UND_ERR_SOCKET', 'ENETUNREACH']);

/**
 * jsforce's HTTP layer with Earshot's quota policy in place of jsforce's own retries (which
 * ignore Retry-After and retry only GET/PUT/DELETE): every call, retries included, takes one
 * unit from the org's budget; 429/5xx are retried after Retry-After or a jittered backoff, and the
 * pause applies to every caller of the org; 403 REQUEST_LIMIT_EXCEEDED with TotalRequests (the
 * daily allocation) marks the budget spent and surfaces as CrmBudgetExhausted.
 *
 * Must stay true: a 401 is returned to jsforce untouched, so its session refresh runs; a second
 * 401 for the same request (jsforce resends the same request object after renewing the session)
 * is an error, so an org that refuses every session is not asked for a new one forever.
 * Every call, token calls included, goes through one fetch with one proxy decision.
 */
export class BudgetedTransport extends Transport {
  /** HTTP calls sent (token calls included), for reports */
  calls = 0;
  /** requests answered 401 once: jsforce has renewed the session for them */
  private readonly renewedFor = new WeakSet<HttpRequest>();
  /** undici's, as jsforce's own requests use; proxies as Node's NODE_USE_ENV_PROXY chooses them */
  private readonly dispatcher: EnvHttpProxyAgent;

  constructor(
    private readonly budget: CrmBudget,
    private readonly policy: RetryPolicy,
    private readonly log: Logger,
    /** one call, connect to last byte */
    private readonly timeoutMs = 120_000,
    proxy: ProxySettings = NO_PROXY,
    /** the budget's clock (Retry-After as an HTTP date) */
    private readonly now: () => number = Date.now,
    /** the largest reply body read; past it the call fails */
    private readonly maxBodyBytes = DEFAULT_CRM_MAX_RESPONSE_BYTES,
  ) {
    super();
    // HTTP/1.1 only, as jsforce asks.
    this.dispatcher = proxyDispatcher(proxy, { allowH2: false });
  }

  override httpRequest(req: HttpRequest, _options: HttpRequestOptions = {}): StreamPromise<HttpResponse> {
    return StreamPromise.create(() => ({ stream: new PassThrough(), promise: this.send(req) }));
  }

  private async send(req: HttpRequest): Promise<HttpResponse> {
    // The OAuth token endpoint and SOAP login do not count against the org's API allocation.
    const metered = !/\/services\/(oauth2|Soap)\//.test(req.url);
    for (let attempt = 0; ; attempt++) {
      if (metered) await this.budget.acquire();
      this.calls++;
      let res: HttpResponse;
      try {
        res = await this.fetchOnce(req);
      } catch (e) {
        const code = (e as { code?: string; cause?: { code?: string } }).cause?.code ?? (e as { code?: string }).code;
        const wait = retryDelay(this.policy, attempt, null);
        if (code && NETWORK_CODES.has(code) && attempt < this.policy.maxRetries && waitsInPlace(wait, this.policy.maxWaitMs, this.now())) {
          await sleep(wait);
          continue;
        }
        throw e;
      }
      if (res.statusCode >= 300 && res.statusCode < 400) {
        // Never followed: jsforce would resend the Authorization header to wherever Location
        // points (another host included) and take that host's answer as Salesforce's.
        throw new CrmCallFailed(`Salesforce answered ${req.method} ${new URL(req.url).pathname} with a redirect (${res.statusCode}); not followed`, res.statusCode);
      }
      const info = /api-usage=(\d+)\/(\d+)/.exec(res.headers['sforce-limit-info'] ?? '');
      if (info) this.budget.observeVendorUsage(Number(info[1]), Number(info[2]));
      if (res.statusCode === 401) {
        // jsforce renews the session on every 401 and resends, with no limit: an org that refuses
        // every session (IP or session policy, API access taken away) got a token request and a
        // call per round trip, for ever. One renewal per request; the second 401 ends it.
        if (this.renewedFor.has(req)) throw authRefused(req, res);
        this.renewedFor.add(req);
      }
      if (res.statusCode === 403 && /REQUEST_LIMIT_EXCEEDED/.test(res.body ?? '')) {
        if (/TotalRequests/i.test(res.body)) throw this.budget.markExhausted();
        // Other REQUEST_LIMIT_EXCEEDED (concurrent long-running requests) pass with time.
      } else if (!RETRY_STATUS.has(res.statusCode)) {
        return res;
      }
      const now = this.now();
      const asked = retryAfterMs(res.headers['retry-after'], now);
      // A Retry-After of the limit a run waits in place or longer, or one that would outlive the
      // write-back's lease: no call to the org (from any caller)
      // before it passes; the caller stops and comes back then (before, the call failed and the
      // write-back's queue sent it again a second later, and the sync called on).
      if (asked !== null && !waitsInPlace(asked, this.policy.maxWaitMs, now)) {
        const what = `Salesforce answered ${req.method} ${new URL(req.url).pathname} with ${res.statusCode} and Retry-After ${Math.round(asked / 1000)} s`;
        const deferred = this.budget.defer(asked, what);
        this.log.warn({ status: res.statusCode, path: new URL(req.url).pathname, retryAfterS: Math.round(asked / 1000), until: deferred.until.toISOString() }, 'Salesforce asked to wait (Retry-After): no call to this org until then');
        throw deferred;
      }
      if (attempt >= this.policy.maxRetries) {
        throw new CrmCallFailed(`Salesforce ${req.method} ${new URL(req.url).pathname} failed with ${res.statusCode} after ${attempt + 1} attempts`, res.statusCode, res.body);
      }
      const wait = retryDelay(this.policy, attempt, res.headers['retry-after']);
      if (!waitsInPlace(wait, this.policy.maxWaitMs, now)) {
        throw new CrmCallFailed(`Salesforce backoff of ${Math.round(wait / 1000)} s is longer than this run waits`, res.statusCode, res.body);
      }
      // A Retry-After holds back every caller of the org, whatever the status (a 503 too).
      if (res.statusCode === 429 || res.statusCode === 403 || asked !== null) this.budget.pause(wait);
      this.log.debug({ status: res.statusCode, wait, attempt }, 'salesforce call throttled or failed; retrying');
      await sleep(wait);
    }
  }

  /**
   * One HTTP exchange with a deadline on the whole reply (a body that drips forever fails), a cap
   * on its body (a 1 GB or endless body held about 2 GB before it failed, or filled memory), no
   * redirect followed, and a body cut short reported as an error of this call. jsforce's own
   * request pipes the body without an error handler, so a connection closed mid-body was an
   * uncaught exception that ended the process, and it had no deadline on the body at all.
   * Streamed bodies (not used by Earshot) go the same way, so every call has the same proxy.
   */
  private async fetchOnce(req: HttpRequest): Promise<HttpResponse> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      const res = await fetch(req.url, { method: req.method, headers: req.headers, body: req.body as string | null | undefined, duplex: 'half', redirect: 'manual', signal, dispatcher: this.dispatcher });
      const path = new URL(req.url).pathname;
      const text = await readCapped(res, this.maxBodyBytes, (declared) => responseTooLarge('Salesforce', req.method, path, this.maxBodyBytes, declared));
      // as res.text() read it
      const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
      const headers: Record<string, string> = {};
      res.headers.forEach((v, k) => (headers[k] = v));
      return { statusCode: res.status, headers, body };
    } catch (e) {
      if (signal.aborted) {
        throw Object.assign(new Error(`Salesforce ${req.method} ${new URL(req.url).pathname}: no complete reply within ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' });
      }
      throw e;
    }
  }
}

/** A request refused again with a session renewed for it: named by instance and path, never by token. */
function authRefused(req: HttpRequest, res: HttpResponse): CrmCallFailed {
  const u = new URL(req.url);
  let code: unknown;
  try {
    const body = JSON.parse(res.body) as unknown;
    const first = (Array.isArray(body) ? body[0] : body) as { errorCode?: unknown; error?: unknown } | null;
    code = first?.errorCode ?? first?.error;
  } catch {
    code = null;
  }
  const named = typeof code === 'string' && /^[A-Za-z_]{1,64}$/.test(code) ? ` ${code}` : '';
  return new CrmCallFailed(
    `Salesforce at ${u.origin} refused authentication: ${req.method} ${u.pathname} answered 401${named} again with a session renewed for it; not renewing again (check the integration user's API access and the connected app's IP and session policies)`,
    401,
    res.body,
  );
}

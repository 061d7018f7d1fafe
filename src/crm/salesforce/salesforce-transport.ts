import { PassThrough } from 'node:stream';
import { Transport } from 'jsforce/lib/transport';
import type { HttpRequest, HttpRequestOptions, HttpResponse } from 'jsforce/lib/types';
import { StreamPromise } from 'jsforce/lib/util/promise';
import type { Logger } from '../../shared/logger';
import { CrmCallFailed, retryDelay, sleep, type CrmBudget, type RetryPolicy } from '../crm-budget';

const RETRY_STATUS = new Set([420, 429, 500, 502, 503, 504]);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'UND_ERR_SOCKET', 'ENETUNREACH']);

/**
 * jsforce's HTTP layer with Earshot's quota policy in place of jsforce's own retries (which
 * ignore Retry-After and retry only GET/PUT/DELETE): every call, retries included, takes one
 * unit from the org's budget; 429/5xx are retried after Retry-After or a jittered backoff, and the
 * pause applies to every caller of the org; 403 REQUEST_LIMIT_EXCEEDED with TotalRequests (the
 * daily allocation) marks the budget spent and surfaces as CrmBudgetExhausted.
 *
 * Must stay true: a 401 is returned to jsforce untouched, so its session refresh runs.
 */
export class BudgetedTransport extends Transport {
  /** HTTP calls sent (token calls included), for reports */
  calls = 0;

  constructor(
    private readonly budget: CrmBudget,
    private readonly policy: RetryPolicy,
    private readonly log: Logger,
    /** one call, connect to last byte */
    private readonly timeoutMs = 120_000,
  ) {
    super();
  }

  override httpRequest(req: HttpRequest, options: HttpRequestOptions = {}): StreamPromise<HttpResponse> {
    return StreamPromise.create(() => ({ stream: new PassThrough(), promise: this.send(req, options) }));
  }

  private async send(req: HttpRequest, options: HttpRequestOptions): Promise<HttpResponse> {
    // The OAuth token endpoint and SOAP login do not count against the org's API allocation.
    const metered = !/\/services\/(oauth2|Soap)\//.test(req.url);
    for (let attempt = 0; ; attempt++) {
      if (metered) await this.budget.acquire();
      this.calls++;
      let res: HttpResponse;
      try {
        res = await this.fetchOnce(req, options);
      } catch (e) {
        const code = (e as { code?: string; cause?: { code?: string } }).cause?.code ?? (e as { code?: string }).code;
        if (code && NETWORK_CODES.has(code) && attempt < this.policy.maxRetries) {
          await sleep(retryDelay(this.policy, attempt, null));
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
      if (res.statusCode === 403 && /REQUEST_LIMIT_EXCEEDED/.test(res.body ?? '')) {
        if (/TotalRequests/i.test(res.body)) throw this.budget.markExhausted();
        // Other REQUEST_LIMIT_EXCEEDED (concurrent long-running requests) pass with time.
      } else if (!RETRY_STATUS.has(res.statusCode)) {
        return res;
      }
      if (attempt >= this.policy.maxRetries) {
        throw new CrmCallFailed(`Salesforce ${req.method} ${new URL(req.url).pathname} failed with ${res.statusCode} after ${attempt + 1} attempts`, res.statusCode, res.body);
      }
      const wait = retryDelay(this.policy, attempt, res.headers['retry-after']);
      if (wait > this.policy.maxWaitMs) {
        throw new CrmCallFailed(`Salesforce asked to wait ${Math.round(wait / 1000)} s (Retry-After), longer than this run waits`, res.statusCode, res.body);
      }
      if (res.statusCode === 429 || res.statusCode === 403) this.budget.pause(wait);
      this.log.debug({ status: res.statusCode, wait, attempt }, 'salesforce call throttled or failed; retrying');
      await sleep(wait);
    }
  }

  /**
   * One HTTP exchange with a deadline on the whole reply (a body that drips forever fails), no
   * redirect followed, and a body cut short reported as an error of this call. jsforce's own
   * request pipes the body without an error handler, so a connection closed mid-body was an
   * uncaught exception that ended the process, and it had no deadline on the body at all.
   */
  private async fetchOnce(req: HttpRequest, options: HttpRequestOptions): Promise<HttpResponse> {
    if (req.body !== undefined && typeof req.body !== 'string') {
      // streamed uploads (not used by Earshot): jsforce's request, without redirects
      return super.httpRequest(req, { ...options, retry: { maxRetries: 0 }, followRedirect: false, timeout: this.timeoutMs });
    }
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      const res = await fetch(req.url, { method: req.method, headers: req.headers, body: req.body, redirect: 'manual', signal });
      const body = await res.text();
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

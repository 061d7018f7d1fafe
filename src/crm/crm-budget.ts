import { AsyncLocalStorage } from 'node:async_hooks';

/** The daily budget of an org or portal is spent (or the vendor said so): stop and resume later. */
export class CrmBudgetExhausted extends Error {
  constructor(
    readonly key: string,
    /** when the next window opens */
    readonly until: Date,
    message: string,
  ) {
    super(message);
    this.name = 'CrmBudgetExhausted';
  }
}

/**
 * The vendor asked (Retry-After) for a wait longer than a caller waits in place: no call to the
 * org until `until`. A CrmBudgetExhausted, so every caller that stops and resumes on a spent
 * budget (sync, write-back, erasure) stops and resumes on it too.
 */
export class CrmRetryLater extends CrmBudgetExhausted {
  constructor(key: string, until: Date, message: string) {
    super(key, until, message);
    this.name = 'CrmRetryLater';
  }
}

const waitDeadline = new AsyncLocalStorage<number>();

/**
 * Runs `fn` with every in-place wait of its CRM calls (a Retry-After or backoff slept through, a
 * pause waited for in acquire()) ending before `deadline` (ms on the budget's clock): the
 * write-back passes the end of its lease, so a wait never outlives it (another replica would claim
 * the customers and send them again). A longer wait is deferred instead (CrmRetryLater).
 */
export function withWaitDeadline<T>(deadline: number, fn: () => Promise<T>): Promise<T> {
  return waitDeadline.run(deadline, fn);
}

/**
 * Whether a caller may wait `ms` in place at `now`: strictly less than `maxWaitMs` (a wait of the
 * limit or longer is deferred) and ending before the current wait deadline, if any.
 */
export function waitsInPlace(ms: number, maxWaitMs: number, now: number): boolean {
  const deadline = waitDeadline.getStore();
  return ms < maxWaitMs && (deadline === undefined || now + ms < deadline);
}

/** The longest Retry-After honoured: a longer one (a broken or hostile value) waits this long. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * A call failed after every retry the policy allows. `message` is fit to log and store: any text
 * the CRM wrote in it went through `crmErrorText` (crm-error-text.ts). `body`, the CRM's answer as
 * sent (it may quote the record), is for the adapter to read and not enumerable, so a logger that
 * serializes the error does not write it.
 */
export class CrmCallFailed extends Error {
  declare readonly body?: unknown;

  constructor(
    message: string,
    readonly status: number | null,
    body?: unknown,
  ) {
    super(message);
    this.name = 'CrmCallFailed';
    Object.defineProperty(this, 'body', { value: body, enumerable: false });
  }
}

export interface BudgetLimits {
  daily: number;
  per10s: number;
  /** a separate per-second limit for search calls (HubSpot); none when unset */
  searchPerSecond?: number;
}

export interface BudgetSnapshot {
  key: string;
  day: string;
  usedToday: number;
  daily: number;
  per10s: number;
  inLast10s: number;
  exhaustedUntil: Date | null;
  /** set while the vendor's Retry-After (or a backoff after a 429) holds every call back */
  pausedUntil: Date | null;
  /** what the vendor last reported as used / allowed for the day, when it reports it */
  vendorUsage: { used: number; max: number } | null;
}

const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const nextUtcMidnight = (ms: number) => new Date(Date.UTC(new Date(ms).getUTCFullYear(), new Date(ms).getUTCMonth(), new Date(ms).getUTCDate() + 1));

/**
 * The API budget of one org or portal: calls per UTC day and per rolling 10 s (and search calls
 * per second), one instance shared by every caller of that org in the process (see budgetFor).
 * Callers `acquire()` before each HTTP call; it waits for room in the rolling windows and throws
 * CrmBudgetExhausted when the day is spent. A Retry-After pauses every caller of the org: a short
 * one is waited for in acquire(), a longer one (defer) makes acquire() throw CrmRetryLater until it
 * has passed, so callers stop and come back instead of calling early.
 *
 * Must stay true: every HTTP call to the vendor, retries included, is one acquire(); a budget
 * marked exhausted stays so until the next UTC day (or until the vendor reports room again).
 */
export class CrmBudget {
  private day: string;
  private used = 0;
  private window: number[] = [];
  private searchWindow: number[] = [];
  private pausedUntil = 0;
  /** a Retry-After longer than callers wait in place: acquire() throws CrmRetryLater until then */
  private deferredUntil = 0;
  private deferReason = '';
  private exhaustedUntil: number | null = null;
  private vendorUsage: { used: number; max: number } | null = null;
  private queue: Promise<void> = Promise.resolve();
  /** the latest time read from the clock (see at()) */
  private lastRead = -Infinity;

  constructor(
    readonly key: string,
    private limits: BudgetLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.day = utcDay(this.now());
    this.lastRead = this.now();
  }

  setLimits(limits: BudgetLimits): void {
    this.limits = limits;
  }

  /** Takes one call from the budget, waiting for room in the rolling windows. */
  acquire(opts: { search?: boolean } = {}): Promise<void> {
    // One at a time, so concurrent callers are paced in order instead of all waking at once.
    const turn = this.queue.then(() => this.take(opts.search === true));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async take(search: boolean): Promise<void> {
    for (;;) {
      const t = this.at();
      this.roll(t);
      if (this.exhaustedUntil !== null) {
        if (t < this.exhaustedUntil) throw this.exhausted();
        this.exhaustedUntil = null;
      }
      if (t < this.deferredUntil) throw new CrmRetryLater(this.key, new Date(this.deferredUntil), this.deferReason);
      if (this.used >= this.limits.daily) {
        this.exhaustedUntil = nextUtcMidnight(t).getTime();
        throw this.exhausted();
      }
      let wait = Math.max(0, this.pausedUntil - t);
      this.window = this.window.filter((x) => x > t - 10_000);
      if (!search && this.window.length >= this.limits.per10s) wait = Math.max(wait, this.window[0]! + 10_000 - t);
      if (search && this.limits.searchPerSecond) {
        this.searchWindow = this.searchWindow.filter((x) => x > t - 1_000);
        if (this.searchWindow.length >= this.limits.searchPerSecond) wait = Math.max(wait, this.searchWindow[0]! + 1_000 - t);
      }
      if (wait > 0) {
        // A pause another caller was told to wait for that would outlive this caller's deadline
        // (the write-back's lease): stop and come back when it has passed.
        const deadline = waitDeadline.getStore();
        if (deadline !== undefined && t + wait >= deadline) {
          throw new CrmRetryLater(this.key, new Date(t + wait), `${this.key} is paused until ${new Date(t + wait).toISOString()}, after this pass's lease ends`);
        }
        await new Promise((r) => setTimeout(r, Math.min(wait + 1, 60_000)));
        continue;
      }
      this.used++;
      if (search) this.searchWindow.push(t);
      else this.window.push(t);
      return;
    }
  }

  /** A Retry-After (or a backoff after a 429): no caller of this org sends before it passes. */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.at() + ms);
  }

  /**
   * The vendor asked for a wait of `ms` (Retry-After, capped at MAX_RETRY_AFTER_MS) longer than a
   * caller waits in place: every caller of this org gets CrmRetryLater from acquire() until it
   * passes. Returns that error for the caller that got the answer.
   */
  defer(ms: number, what: string): CrmRetryLater {
    const until = this.at() + Math.min(ms, MAX_RETRY_AFTER_MS);
    if (until > this.deferredUntil) {
      this.deferredUntil = until;
      this.deferReason = `${what}; no call to ${this.key} before ${new Date(until).toISOString()}`;
    }
    this.pausedUntil = Math.max(this.pausedUntil, this.deferredUntil);
    return new CrmRetryLater(this.key, new Date(this.deferredUntil), this.deferReason);
  }

  /** The vendor said the day is spent (REQUEST_LIMIT_EXCEEDED, a DAILY 429). */
  markExhausted(until: Date = nextUtcMidnight(this.at())): CrmBudgetExhausted {
    this.exhaustedUntil = until.getTime();
    return this.exhausted();
  }

  /** Usage the vendor reports (Salesforce Sforce-Limit-Info): the org-wide truth across replicas. */
  observeVendorUsage(used: number, max: number): void {
    this.vendorUsage = { used, max };
    if (used >= max) this.exhaustedUntil ??= nextUtcMidnight(this.at()).getTime();
  }

  /** Restores today's count persisted by another run or replica (the larger count wins). */
  restore(day: string, used: number): void {
    this.roll(this.at());
    if (day === this.day) this.used = Math.max(this.used, used);
  }

  snapshot(): BudgetSnapshot {
    const t = this.at();
    this.roll(t);
    return {
      key: this.key,
      day: this.day,
      usedToday: this.used,
      daily: this.limits.daily,
      per10s: this.limits.per10s,
      inLast10s: this.window.filter((x) => x > t - 10_000).length,
      exhaustedUntil: this.exhaustedUntil !== null && this.exhaustedUntil > t ? new Date(this.exhaustedUntil) : null,
      pausedUntil: this.pausedUntil > t ? new Date(this.pausedUntil) : null,
      vendorUsage: this.vendorUsage,
    };
  }

  /**
   * The clock's time. When it has stepped back since the last read (NTP correcting a host that ran
   * ahead, a VM restored from a snapshot), the rolling windows and the pauses move back with it: a
   * wait still ends as long after now as it did before the step. Before, every call of the org
   * waited out the step too (an hour back: an hour without CRM calls). The UTC day and a spent
   * day's end are dates, not waits, and stay.
   */
  private at(): number {
    const t = this.now();
    const back = this.lastRead - t;
    if (back > 0) {
      this.window = this.window.map((x) => x - back);
      this.searchWindow = this.searchWindow.map((x) => x - back);
      if (this.pausedUntil > 0) this.pausedUntil -= back;
      if (this.deferredUntil > 0) this.deferredUntil -= back;
    }
    this.lastRead = t;
    return t;
  }

  private roll(t: number): void {
    const d = utcDay(t);
    if (d !== this.day) {
      this.day = d;
      this.used = 0;
      this.vendorUsage = null;
    }
  }

  private exhausted(): CrmBudgetExhausted {
    const until = new Date(this.exhaustedUntil ?? nextUtcMidnight(this.at()).getTime());
    return new CrmBudgetExhausted(this.key, until, `daily API budget of ${this.key} is spent (${this.used}/${this.limits.daily} calls today); resuming after ${until.toISOString()}`);
  }
}

const registry = new Map<string, CrmBudget>();

/** The one budget of an org or portal in this process: every client of it shares the limiter. */
export function budgetFor(key: string, limits: BudgetLimits, now?: () => number): CrmBudget {
  let b = registry.get(key);
  if (!b) {
    b = new CrmBudget(key, limits, now);
    registry.set(key, b);
  } else b.setLimits(limits);
  return b;
}

/** Forgets every shared budget (tests start each org afresh). */
export function resetBudgets(): void {
  registry.clear();
}

export interface RetryPolicy {
  maxRetries: number;
  baseMs: number;
  maxWaitMs: number;
}

/**
 * How long to wait before retry `attempt` (0-based): the vendor's Retry-After when it sent one
 * (seconds or an HTTP date), else exponential backoff with full jitter.
 */
export function retryDelay(policy: RetryPolicy, attempt: number, retryAfter: string | null | undefined, now: number = Date.now()): number {
  const asked = retryAfterMs(retryAfter, now);
  if (asked !== null) return asked;
  const cap = policy.baseMs * 2 ** attempt;
  return Math.round(cap / 2 + (Math.random() * cap) / 2);
}

/** A Retry-After header as milliseconds from `now` (seconds or an HTTP date); null when absent or not a time. */
export function retryAfterMs(retryAfter: string | null | undefined, now: number = Date.now()): number | null {
  if (!retryAfter) return null;
  const secs = Number(retryAfter);
  const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(retryAfter) - now;
  return Number.isFinite(ms) && ms >= 0 ? ms : null;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

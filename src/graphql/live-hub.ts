import type { Logger } from '../shared/logger';
import type { LiveEventKind } from './live-events';

/** Where committed changes come from: LiveEvents (PostgreSQL LISTEN) in the service. */
export interface LiveEventSource {
  on(kind: LiveEventKind, handler: (ids: string[]) => void): () => void;
}

/** What a subscriber's connection can do when it cannot keep up. */
export interface LiveConnection {
  /** bytes the socket has not sent yet */
  bufferedAmount(): number;
  close(code: number, reason: string): void;
}

export interface LiveLimits {
  /** events queued for one subscription before its connection is closed */
  queueLimit: number;
  /** bytes unsent on the socket above which the connection is closed */
  maxBufferedBytes: number;
}

/** Close code for a subscriber that fell behind: "try again later"; the client reconnects and refetches. */
export const TOO_SLOW_CLOSE_CODE = 1013;

/**
 * A bounded queue as an async iterator (what graphql-js's subscribe() consumes). When the client
 * does not read fast enough and the queue is full, or the socket holds more than its limit, the
 * connection is closed: memory per connection stays bounded and the client learns it missed
 * events (rather than silently losing some).
 */
class EventQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private waiting: ((r: IteratorResult<T>) => void) | null = null;
  private done = false;

  constructor(
    private readonly limits: LiveLimits,
    private readonly connection: LiveConnection,
    private readonly beforeYield: () => void,
    private readonly onEnd: () => void,
  ) {}

  push(item: T): void {
    if (this.done) return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      this.beforeYield();
      w({ value: item, done: false });
      return;
    }
    if (this.items.length >= this.limits.queueLimit || this.connection.bufferedAmount() > this.limits.maxBufferedBytes) {
      this.end();
      this.connection.close(TOO_SLOW_CLOSE_CODE, 'subscriber too slow: events were dropped, resubscribe and refetch');
      return;
    }
    this.items.push(item);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) {
      this.beforeYield();
      return Promise.resolve({ value: this.items.shift()!, done: false });
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.waiting = resolve));
  }

  return(): Promise<IteratorResult<T>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(err: unknown): Promise<IteratorResult<T>> {
    this.end();
    return Promise.reject(err);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  get size(): number {
    return this.items.length;
  }

  private end(): void {
    if (this.done) return;
    this.done = true;
    this.items.length = 0;
    this.onEnd();
    const w = this.waiting;
    this.waiting = null;
    w?.({ value: undefined, done: true });
  }
}

type Loader<T> = (ids: string[]) => Promise<(T | null)[]>;

interface Subscriber {
  accept(row: unknown): boolean;
  queue: EventQueue<unknown>;
}

/**
 * Fans committed changes out to subscriptions: one load of the changed rows per notification,
 * whatever the number of subscribers, then each subscriber's filter. The rows are what the
 * queries load; each subscriber's own context (role, fresh DataLoaders per event) resolves the
 * fields, so the role and PII rules of queries apply unchanged.
 */
export class LiveHub {
  private readonly subscribers = new Map<LiveEventKind, Set<Subscriber>>();
  private readonly unlisten: (() => void)[] = [];

  constructor(
    events: LiveEventSource,
    loaders: Record<LiveEventKind, Loader<unknown>>,
    private readonly log: Logger,
  ) {
    for (const kind of Object.keys(loaders) as LiveEventKind[]) {
      this.unlisten.push(events.on(kind, (ids) => void this.dispatch(kind, ids, loaders[kind])));
    }
  }

  /** Subscribers now, per kind (for metrics and tests). */
  count(kind: LiveEventKind): number {
    return this.subscribers.get(kind)?.size ?? 0;
  }

  subscribe<T>(kind: LiveEventKind, accept: (row: T) => boolean, connection: LiveConnection, limits: LiveLimits, beforeYield: () => void): AsyncIterableIterator<T> {
    const set = this.subscribers.get(kind) ?? new Set<Subscriber>();
    this.subscribers.set(kind, set);
    const sub: Subscriber = {
      accept: accept as (row: unknown) => boolean,
      queue: new EventQueue<unknown>(limits, connection, beforeYield, () => set.delete(sub)),
    };
    set.add(sub);
    return sub.queue as EventQueue<T>;
  }

  close(): void {
    for (const u of this.unlisten) u();
    for (const set of this.subscribers.values()) for (const s of [...set]) void s.queue.return();
  }

  private async dispatch(kind: LiveEventKind, ids: string[], load: Loader<unknown>): Promise<void> {
    const set = this.subscribers.get(kind);
    if (!set || set.size === 0) return;
    let rows: unknown[];
    try {
      rows = (await load(ids)).filter((r) => r !== null);
    } catch (err) {
      this.log.error({ err, kind, ids: ids.length }, 'could not load the rows of a live event');
      return;
    }
    for (const sub of set) {
      for (const row of rows) {
        try {
          if (sub.accept(row)) sub.queue.push(row);
        } catch (err) {
          this.log.warn({ err, kind }, 'subscription filter failed');
        }
      }
    }
  }
}

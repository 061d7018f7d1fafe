import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export interface Received<T> {
  events: T[];
  /** error results and transport errors, as received */
  errors: unknown[];
  /** resolves with the first event that `match` accepts (already received or to come), or rejects at the deadline */
  waitFor(match: (e: T) => boolean, timeoutMs?: number): Promise<T>;
  dispose(): void;
}

/** A real graphql-ws client (what a frontend uses) against Earshot's /graphql. */
export function wsClient(httpUrl: string, connectionParams: Record<string, string> = {}, onClosed?: (code: number, reason: string) => void): Client {
  return createClient({
    url: `${httpUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams,
    retryAttempts: 0,
    lazy: false,
    on: { closed: (e) => onClosed?.((e as { code: number }).code, (e as { reason: string }).reason) },
  });
}

/** Subscribes and collects every `next` payload's data. */
export function collect<T = Record<string, unknown>>(client: Client, query: string, variables?: Record<string, unknown>): Received<T> {
  const events: T[] = [];
  const errors: unknown[] = [];
  const waiters = new Set<() => void>();
  const dispose = client.subscribe<T>(
    { query, variables },
    {
      next: (r) => {
        if (r.errors) errors.push(r.errors);
        if (r.data) events.push(r.data as T);
        for (const w of waiters) w();
      },
      error: (e) => {
        errors.push(e);
        for (const w of waiters) w();
      },
      complete: () => undefined,
    },
  );
  return {
    events,
    errors,
    dispose,
    waitFor(match, timeoutMs = 15_000) {
      return new Promise<T>((resolve, reject) => {
        const check = () => {
          const found = events.find(match);
          if (found) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(found);
          } else if (errors.length) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`subscription failed: ${JSON.stringify(errors)}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(events)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}

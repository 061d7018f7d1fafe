// The console's only way to Earshot: its public GraphQL API over HTTP (queries, mutations) and
// graphql-ws (subscriptions), with the same credentials any other frontend would use.
import { createClient, type Client } from 'graphql-ws';

export interface Credentials {
  /** an API key (sent as X-API-Key) or a bearer token (a JWT or a key, sent as Authorization) */
  kind: 'key' | 'bearer';
  value: string;
}

export interface Viewer {
  id: string;
  role: string;
  canSeePii: boolean;
}

const STORAGE_KEY = 'earshot.console.credentials';

/** Kept for the browser session only (sessionStorage): closing the tab logs out. */
export function loadCredentials(): Credentials | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    const parsed = raw ? (JSON.parse(raw) as Credentials) : null;
    return parsed && (parsed.kind === 'key' || parsed.kind === 'bearer') && typeof parsed.value === 'string' ? parsed : null;
  } catch {
    return null;
  }
}

export function saveCredentials(c: Credentials | null): void {
  if (c) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(c));
  else sessionStorage.removeItem(STORAGE_KEY);
  wsClient?.dispose();
  wsClient = null;
}

function authHeaders(c: Credentials | null): Record<string, string> {
  if (!c || c.value === '') return {};
  return c.kind === 'key' ? { 'x-api-key': c.value } : { authorization: `Bearer ${c.value}` };
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** Runs one operation; GraphQL errors become an ApiError with the server's code. */
export async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...authHeaders(loadCredentials()) },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError('Earshot cannot be reached', 'NETWORK');
  }
  let body: { data?: T; errors?: { message: string; extensions?: { code?: string } }[] };
  try {
    body = await res.json();
  } catch {
    throw new ApiError(`unexpected answer (HTTP ${res.status})`, 'BAD_RESPONSE');
  }
  const first = body.errors?.[0];
  if (first) throw new ApiError(first.message, first.extensions?.code ?? (res.status === 401 ? 'UNAUTHENTICATED' : 'ERROR'));
  if (!body.data && (res.status === 401 || res.status === 403)) throw new ApiError(`refused (HTTP ${res.status})`, res.status === 401 ? 'UNAUTHENTICATED' : 'FORBIDDEN');
  if (!body.data) throw new ApiError(`no data (HTTP ${res.status})`, 'BAD_RESPONSE');
  return body.data;
}

let wsClient: Client | null = null;

/** A ping every 10 s; a connection whose pong has not come 10 s later is dropped and made again. */
const PING_MS = 10_000;
const PONG_WAIT_MS = 10_000;
/** Waits between connection attempts: 1 s after the first failure, doubling up to 30 s, plus 0.3–3 s at random. */
const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 30_000;

function client(): Client {
  if (!wsClient) {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
    let pongDue: ReturnType<typeof setTimeout> | undefined;
    const c: Client = createClient({
      url,
      lazy: true,
      retryAttempts: Infinity,
      // a refused attempt (Earshot restarting, the network still down) is an error event, not a close:
      // graphql-ws retries only closes by default, so one refused attempt ended live updates for good
      shouldRetry: () => true,
      // graphql-ws's own wait doubles without a bound (512 s after the ninth refused try, 17 minutes after the tenth)
      retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_FIRST_MS * 2 ** retries, RETRY_MAX_MS) + 300 + Math.random() * 2_700)),
      // a connection that went silent (sleep, a network change, a NAT that forgot it) closes nothing:
      // without pings the page waited on it for ever; terminate() does not wait for a close handshake
      keepAlive: PING_MS,
      on: {
        ping: (received) => {
          if (received) return;
          clearTimeout(pongDue);
          pongDue = setTimeout(() => c.terminate(), PONG_WAIT_MS);
        },
        pong: (received) => {
          if (received) clearTimeout(pongDue);
        },
        closed: () => clearTimeout(pongDue),
      },
      // the server authenticates connection_init with the same credentials as HTTP
      connectionParams: () => authHeaders(loadCredentials()),
    });
    wsClient = c;
  }
  return wsClient;
}

/**
 * Subscribes to a live event. When the server offers no subscriptions (or the socket fails),
 * `onEvent` is called every `pollMs` instead, so the page stays current either way; so it is
 * while the socket is down and being made again (a proxy that cut it, a restart, a network
 * gone silent), and once more when it is back: events sent meanwhile are lost. `onOnline(false)`
 * tells the page the connection it had is lost and being made again; `onOnline(true)`, that it is back.
 * Returns the function that stops both.
 */
export function live(query: string, variables: Record<string, unknown>, onEvent: () => void, onOnline: (online: boolean) => void = () => undefined, pollMs = 5_000): () => void {
  let poll: ReturnType<typeof setInterval> | null = null;
  const startPolling = () => {
    if (!poll) poll = setInterval(onEvent, pollMs);
  };
  const stopPolling = () => {
    if (poll) clearInterval(poll);
    poll = null;
  };
  let stop: () => void = () => undefined;
  const off: (() => void)[] = [];
  try {
    const c = client();
    let connected = false;
    let down = false;
    off.push(
      c.on('connected', () => {
        if (down) onEvent();
        down = false;
        connected = true;
        stopPolling();
        onOnline(true);
      }),
      c.on('closed', (event) => {
        // 1000 is the page's own close (its last subscription ended), not a lost connection
        if ((event as CloseEvent | undefined)?.code === 1000) return;
        down = true;
        startPolling();
        if (connected) onOnline(false);
      }),
    );
    stop = c.subscribe(
      { query, variables },
      {
        next: () => onEvent(),
        // given up (refused for good): polling only, and nothing to wait for
        error: () => {
          startPolling();
          onOnline(true);
        },
        complete: () => undefined,
      },
    );
  } catch {
    startPolling();
  }
  return () => {
    for (const f of off) f();
    stop();
    stopPolling();
  };
}

export const VIEWER = `query Viewer { viewer { id role canSeePii } }`;

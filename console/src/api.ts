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

function client(): Client {
  if (!wsClient) {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
    wsClient = createClient({
      url,
      lazy: true,
      retryAttempts: Infinity,
      // the server authenticates connection_init with the same credentials as HTTP
      connectionParams: () => authHeaders(loadCredentials()),
    });
  }
  return wsClient;
}

/**
 * Subscribes to a live event. When the server offers no subscriptions (or the socket fails),
 * `fallback` is called every `pollMs` instead, so the page stays current either way.
 * Returns the function that stops both.
 */
export function live(query: string, variables: Record<string, unknown>, onEvent: () => void, pollMs = 5_000): () => void {
  let poll: ReturnType<typeof setInterval> | null = null;
  const startPolling = () => {
    if (!poll) poll = setInterval(onEvent, pollMs);
  };
  let stop: () => void = () => undefined;
  try {
    stop = client().subscribe({ query, variables }, { next: () => onEvent(), error: startPolling, complete: () => undefined });
  } catch {
    startPolling();
  }
  return () => {
    stop();
    if (poll) clearInterval(poll);
  };
}

export const VIEWER = `query Viewer { viewer { id role canSeePii } }`;

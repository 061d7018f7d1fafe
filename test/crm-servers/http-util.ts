import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { seededRandom } from '../../src/shared/seeded-random';

/** One parsed request as the route handlers and fault matchers see it. */
export interface CrmRequest {
  method: string;
  /** Path without the query string, e.g. `/services/data/v62.0/query`. */
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  /** Raw body text ('' when none). */
  rawBody: string;
  /** Route parameters captured by `:name` segments. */
  params: Record<string, string>;
  /** The route label used for call counting, e.g. `GET /query`. */
  endpoint: string;
}

export interface CrmResponse {
  status: number;
  headers?: Record<string, string>;
  /** Objects and arrays are sent as JSON; strings as given (set content-type yourself). */
  body?: unknown;
  /** Test-only hostile replies: takes over the raw response (a body that never ends, a cut-off body…). */
  raw?: (res: http.ServerResponse) => void;
}

export type Handler = (req: CrmRequest) => CrmResponse | Promise<CrmResponse>;

interface Route {
  method: string;
  segments: string[];
  label: string;
  handler: Handler;
}

/**
 * A deliberately tiny router: exact segments, `:name` captures one segment, a trailing `*rest`
 * captures the remainder. Routes are tried in registration order.
 */
export class Router {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, label: string, handler: Handler): this {
    this.routes.push({ method, segments: pattern.split('/').filter(Boolean), label, handler });
    return this;
  }

  match(method: string, path: string): { route: Route; params: Record<string, string> } | undefined {
    const parts = path.split('/').filter(Boolean);
    for (const route of this.routes) {
      if (route.method !== method) continue;
      const params: Record<string, string> = {};
      let ok = true;
      let i = 0;
      for (; i < route.segments.length; i++) {
        const seg = route.segments[i];
        if (seg.startsWith('*')) {
          params[seg.slice(1)] = parts.slice(i).map(decodeURIComponent).join('/');
          i = parts.length;
          break;
        }
        if (i >= parts.length) { ok = false; break; }
        if (seg.startsWith(':')) params[seg.slice(1)] = decodeURIComponent(parts[i]);
        else if (seg !== parts[i]) { ok = false; break; }
      }
      if (ok && i === parts.length) return { route, params };
    }
    return undefined;
  }

  /** Whether some route exists for the path under another method (405 rather than 404). */
  hasPath(path: string): boolean {
    return ['GET', 'POST', 'PATCH', 'PUT', 'DELETE'].some((m) => this.match(m, path) !== undefined);
  }
}

/** A fault to inject: the next `times` matching requests get this reply instead of the real one. */
export interface FaultSpec {
  /** A path prefix (matched against the request path) or a predicate; omitted = every request. */
  match?: string | ((req: CrmRequest) => boolean);
  /** HTTP status to reply with; omitted = serve normally, only after `delayMs` (a slow reply). */
  status?: number;
  /** Seconds, sent as a `Retry-After` header. */
  retryAfter?: number;
  /** Reply body; omitted = the vendor's documented body for that status. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Wait this long before replying (with or without a status). */
  delayMs?: number;
  /** How many matching requests the fault applies to; default 1. */
  times?: number;
  /**
   * Hostile vendor (tests only): serve the request normally, then hand this the real reply to
   * change (records with bad fields, a looping cursor, a paging link to another host…).
   */
  rewrite?: (reply: CrmResponse, req: CrmRequest) => CrmResponse;
  /** Hostile vendor (tests only): write the raw response yourself instead of any reply. */
  raw?: (res: http.ServerResponse) => void;
}

interface QueuedFault extends FaultSpec {
  remaining: number;
  hits: number;
}

/** FIFO of injected faults; the first matching fault with uses left wins. */
export class FaultQueue {
  private queue: QueuedFault[] = [];

  enqueue(spec: FaultSpec): this {
    this.queue.push({ ...spec, remaining: spec.times ?? 1, hits: 0 });
    return this;
  }

  clear(): void {
    this.queue = [];
  }

  /** Faults not yet used up. */
  pending(): number {
    return this.queue.reduce((n, f) => n + f.remaining, 0);
  }

  take(req: CrmRequest): FaultSpec | undefined {
    for (const fault of this.queue) {
      if (fault.remaining <= 0) continue;
      const m = fault.match;
      const hit = m === undefined ? true : typeof m === 'string' ? req.path.startsWith(m) : m(req);
      if (!hit) continue;
      fault.remaining--;
      fault.hits++;
      this.queue = this.queue.filter((f) => f.remaining > 0);
      return fault;
    }
    return undefined;
  }
}

/** Counts calls per endpoint label and per status, so tests can assert on API calls made. */
export class CallStats {
  private byEndpoint = new Map<string, number>();
  private byStatus = new Map<number, number>();
  private count = 0;

  record(endpoint: string, status: number): void {
    this.count++;
    this.byEndpoint.set(endpoint, (this.byEndpoint.get(endpoint) ?? 0) + 1);
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
  }

  reset(): void {
    this.byEndpoint.clear();
    this.byStatus.clear();
    this.count = 0;
  }

  snapshot(): { total: number; byEndpoint: Record<string, number>; byStatus: Record<string, number> } {
    return {
      total: this.count,
      byEndpoint: Object.fromEntries([...this.byEndpoint].sort(([a], [b]) => a.localeCompare(b))),
      byStatus: Object.fromEntries([...this.byStatus].map(([k, v]) => [String(k), v])),
    };
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Reads the whole body; vendor payloads here are small enough to buffer. */
export function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function sendResponse(res: http.ServerResponse, reply: CrmResponse): void {
  if (reply.raw) {
    reply.raw(res);
    return;
  }
  const headers: Record<string, string> = { ...(reply.headers ?? {}) };
  let payload: string | undefined;
  if (reply.body === undefined || reply.status === 204) {
    payload = undefined;
  } else if (typeof reply.body === 'string') {
    payload = reply.body;
  } else {
    payload = JSON.stringify(reply.body);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['Content-Type'] = 'application/json;charset=UTF-8';
    }
  }
  if (payload !== undefined) headers['Content-Length'] = String(Buffer.byteLength(payload));
  res.writeHead(reply.status, headers);
  res.end(payload);
}

/** Starts `handler` on 127.0.0.1; returns the server and its base URL. */
export async function listen(
  port: number,
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer(handler);
  // Clients keep connections alive; without this, stop() would wait for their idle timeout.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const { port: actual } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${actual}` };
}

export async function close(server: http.Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Parses a form-urlencoded or JSON body into a flat record of strings. */
export function parseForm(raw: string, contentType: string | undefined): Record<string, string> {
  if (contentType?.includes('json')) {
    const obj = JSON.parse(raw || '{}') as Record<string, unknown>;
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, String(v)]));
  }
  return Object.fromEntries(new URLSearchParams(raw));
}

/** Deterministic, so generated seeds are reproducible. */
export const rng = seededRandom;

export const FIRST_NAMES = ['Ava', 'Ben', 'Chloe', 'Dev', 'Elena', 'Farid', 'Grace', 'Hiro', 'Ines', 'Jonas', 'Kemi', 'Liam', 'Maya', 'Noah', 'Olga', 'Priya', 'Quinn', 'Rosa', 'Sami', 'Tess'];
export const LAST_NAMES = ['Adams', 'Bauer', 'Costa', 'Diaz', 'Evans', 'Fischer', 'Garcia', 'Hughes', 'Ito', 'Jensen', 'Khan', 'Larsen', 'Moreau', 'Nakamura', 'Okafor', 'Patel', 'Quint', 'Rossi', 'Silva', 'Tanaka'];
export const COMPANY_WORDS = ['Acme', 'Globex', 'Initech', 'Umbrella', 'Stark', 'Wayne', 'Hooli', 'Vandelay', 'Soylent', 'Cyberdyne'];

/** A hostile reply body: headers at once, then one byte every `everyMs` and never an end. */
export function dripForever(everyMs = 200, status = 200, contentType = 'application/json'): (res: http.ServerResponse) => void {
  return (res) => {
    res.writeHead(status, { 'Content-Type': contentType });
    res.write('{"totalSize":1,"done":true,"records":[');
    const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write(' ')), everyMs);
    res.on('close', () => clearInterval(t));
  };
}

/** A hostile reply: a Content-Length it never reaches, the connection closed half way. */
export function truncatedJson(body: unknown, status = 200): (res: http.ServerResponse) => void {
  return (res) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': String(Buffer.byteLength(text)) });
    // closed once the first half is on its way, not before
    res.write(text.slice(0, Math.floor(text.length / 2)), () => res.destroy());
  };
}

/**
 * A hostile reply body as large as `bytes` (null: endless), a JSON object whose one string never
 * seems to end; with `declareLength` its full size is sent as Content-Length first, otherwise it
 * is chunked. Written only as fast as the client reads (backpressure); `sent.bytes` counts what
 * was handed to the socket, so a test can tell how much a client took before it hung up.
 */
export function hugeJson(opts: { bytes: number | null; declareLength: boolean; sent?: { bytes: number } }): (res: http.ServerResponse) => void {
  const head = '{"totalSize":0,"done":true,"records":[],"total":0,"results":[],"pad":"';
  const tail = '"}';
  const chunk = Buffer.alloc(256 * 1024, 'x');
  return (res) => {
    const headers: Record<string, string> = { 'Content-Type': 'application/json;charset=UTF-8' };
    if (opts.declareLength && opts.bytes !== null) headers['Content-Length'] = String(head.length + opts.bytes + tail.length);
    res.writeHead(200, headers);
    res.write(head);
    let pad = 0;
    const pump = (): void => {
      while (!res.destroyed && (opts.bytes === null || pad < opts.bytes)) {
        const c = opts.bytes === null ? chunk : chunk.subarray(0, Math.min(chunk.length, opts.bytes - pad));
        pad += c.length;
        if (opts.sent) opts.sent.bytes += c.length;
        if (!res.write(c)) {
          res.once('drain', pump);
          return;
        }
      }
      if (!res.destroyed) res.end(tail);
    };
    pump();
  };
}

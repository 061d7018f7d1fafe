import type { IncomingMessage, ServerResponse } from 'node:http';

const ALLOWED_HEADERS = 'content-type, authorization, x-api-key, x-request-id, apollo-require-preflight, x-apollo-operation-name, graphql-preflight';
const EXPOSED_HEADERS = 'x-request-id';

/**
 * CORS for /graphql. Only the listed origins get `Access-Control-*` headers; the preflight is
 * answered here, before Apollo, whose CSRF prevention then still refuses "simple" requests
 * (no preflight, no JSON content type, no custom header) from any origin.
 *
 * What must stay true: an origin not listed gets no `Access-Control-Allow-Origin`, so a
 * browser never shows it a response; credentials (cookies) are never allowed, since
 * authentication is by header.
 *
 * @returns true when the request was a preflight and has been answered
 */
export function applyCors(origins: readonly string[], req: IncomingMessage, res: ServerResponse): boolean {
  const origin = req.headers.origin;
  const allowed = origin !== undefined && origins.length > 0 && (origins.includes('*') || origins.includes(origin));
  if (origins.length > 0) res.setHeader('vary', 'Origin');
  if (allowed) {
    res.setHeader('access-control-allow-origin', origins.includes('*') ? '*' : origin);
    res.setHeader('access-control-expose-headers', EXPOSED_HEADERS);
  }
  if (req.method !== 'OPTIONS') return false;
  if (allowed) {
    res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
    res.setHeader('access-control-allow-headers', ALLOWED_HEADERS);
    res.setHeader('access-control-max-age', '600');
  }
  res.setHeader('allow', 'GET, POST, OPTIONS');
  res.writeHead(204);
  res.end();
  return true;
}

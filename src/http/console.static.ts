import { createReadStream, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Where `npm run build` puts the bundled console (vite, console/vite.config.mts): dist/console,
 * beside dist/src when running compiled, and the same folder when running from source (tests).
 */
export const CONSOLE_DIR =
  path.basename(path.resolve(__dirname, '../..')) === 'dist' ? path.resolve(__dirname, '../../console') : path.resolve(__dirname, '../../dist/console');
export const CONSOLE_PATH = '/console';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
};

// The console only ever talks to its own origin (GraphQL over HTTP and WebSocket): no CDN, no inline script.
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/**
 * Serves the console's static files from `dir`. Must stay true: nothing outside `dir` is ever
 * read (the path is resolved and checked, not concatenated); hashed assets are cached for a
 * year, `index.html` never, so a new build reaches browsers at once; any other path under
 * /console answers `index.html`, so deep links (#-routes and reloads) work.
 */
export function serveConsole(dir: string, req: IncomingMessage, res: ServerResponse, pathname: string): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    res.end('use GET');
    return;
  }
  if (pathname === CONSOLE_PATH) {
    res.writeHead(308, { location: `${CONSOLE_PATH}/` });
    res.end();
    return;
  }
  const index = path.join(dir, 'index.html');
  if (!existsSync(index)) {
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('the console is not built: run `npm run build`');
    return;
  }
  let rel: string;
  try {
    rel = decodeURIComponent(pathname.slice(CONSOLE_PATH.length + 1));
  } catch {
    rel = '';
  }
  const candidate = path.resolve(dir, rel);
  const inside = candidate.startsWith(dir + path.sep) && !rel.includes('\0');
  const isFile = inside && existsSync(candidate) && statSync(candidate).isFile();
  const file = isFile ? candidate : index;
  const immutable = isFile && rel.startsWith('assets/');
  res.writeHead(200, {
    'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
    'content-length': statSync(file).size,
    'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    ...SECURITY_HEADERS,
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  // A file that cannot be read after its headers went (removed by a deploy, permissions) ends
  // this answer; unlistened, the stream's 'error' would be an uncaught exception and end the process.
  createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
}

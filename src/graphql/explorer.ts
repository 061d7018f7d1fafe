import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EXPLORER_EXAMPLES } from './explorer-examples';

/** Where the explorer's own files are served; the page itself is GET /graphql (Accept: text/html) and GET /explorer. */
export const EXPLORER_ASSET_PREFIX = '/graphql/explorer/';

interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

function asset(type: string, body: Buffer): Asset {
  return { type, body, gzip: gzipSync(body), etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

// The browser must need nothing but this server: React, ReactDOM, graphql-ws's client and
// GraphiQL come from their npm packages' UMD builds, joined into one script once per process.
let assets: Map<string, Asset> | null = null;
function loadAssets(): Map<string, Asset> {
  if (assets) return assets;
  // by package folder: the packages' `exports` maps do not list their UMD files
  const file = (spec: string) => {
    const [scope, name, ...rest] = spec.split('/');
    const pkg = scope!.startsWith('@') ? `${scope}/${name}` : scope!;
    const inner = scope!.startsWith('@') ? rest : [name!, ...rest];
    return readFileSync(path.join(path.dirname(require.resolve(`${pkg}/package.json`)), ...inner));
  };
  const js = Buffer.concat(
    ['react/umd/react.production.min.js', 'react-dom/umd/react-dom.production.min.js', 'graphql-ws/umd/graphql-ws.min.js', 'graphiql/dist/index.umd.js'].flatMap((f) => [
      file(f),
      Buffer.from('\n;\n'),
    ]),
  );
  assets = new Map([
    ['explorer.js', asset('text/javascript; charset=utf-8', js)],
    ['graphiql.css', asset('text/css; charset=utf-8', file('graphiql/dist/style.css'))],
    ['start.js', asset('text/javascript; charset=utf-8', Buffer.from(START_SCRIPT))],
  ]);
  return assets;
}

// Subscriptions go over graphql-ws on the same path, with the headers typed in the explorer as
// connection_init payload (so X-API-Key works there too); everything else over HTTP.
const START_SCRIPT = `(function () {
  var config = JSON.parse(document.getElementById('earshot-explorer-config').textContent);
  var url = location.origin + '/graphql';
  var wsUrl = url.replace(/^http/, 'ws');
  var http = GraphiQL.createFetcher({ url: url });
  function isSubscription(params) {
    var q = (params.query || '').replace(/#[^\\n]*/g, '');
    if (params.operationName) return new RegExp('subscription\\\\s+' + params.operationName + '\\\\b').test(q);
    return /^\\s*subscription\\b/.test(q);
  }
  function fetcher(params, opts) {
    if (!isSubscription(params)) return http(params, opts);
    var headers = (opts && opts.headers) || {};
    return {
      subscribe: function (sink) {
        var client = graphqlWs.createClient({ url: wsUrl, connectionParams: headers, lazy: true, retryAttempts: 0 });
        var dispose = client.subscribe(params, sink);
        return { unsubscribe: function () { dispose(); client.dispose(); } };
      },
    };
  }
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultTabs: config.examples,
    defaultHeaders: config.defaultHeaders,
    shouldPersistHeaders: true,
    defaultEditorToolsVisibility: true,
  }));
})();
`;

function page(): string {
  const config = {
    examples: EXPLORER_EXAMPLES.map((e) => ({ query: e.query, variables: e.variables })),
    defaultHeaders: '{\n  "X-API-Key": ""\n}',
  };
  // `<` escaped so that no example text can close the script element
  const json = JSON.stringify(config).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Earshot GraphQL explorer</title>
<link rel="stylesheet" href="${EXPLORER_ASSET_PREFIX}graphiql.css">
<style>html, body { height: 100%; margin: 0; } #graphiql { height: 100vh; }</style>
</head>
<body>
<div id="graphiql">Loading the explorer…</div>
<script type="application/json" id="earshot-explorer-config">${json}</script>
<script src="${EXPLORER_ASSET_PREFIX}explorer.js"></script>
<script src="${EXPLORER_ASSET_PREFIX}start.js"></script>
</body>
</html>
`;
}

/** A browser asking for a page (not a GraphQL client doing a GET query). */
export function wantsExplorerPage(req: IncomingMessage, url: URL): boolean {
  return req.method === 'GET' && !url.searchParams.has('query') && (req.headers.accept ?? '').includes('text/html');
}

// No inline script runs: the config is data, the code comes from this origin only.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self' ws: wss:";

export function sendExplorerPage(res: ServerResponse): void {
  const body = page();
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': CSP, 'cache-control': 'no-cache' });
  res.end(body);
}

/** Serves one of the explorer's files; false when `name` is not one. */
export function sendExplorerAsset(req: IncomingMessage, res: ServerResponse, name: string): boolean {
  const a = loadAssets().get(name);
  if (!a) return false;
  if (req.headers['if-none-match'] === a.etag) {
    res.writeHead(304, { etag: a.etag });
    res.end();
    return true;
  }
  const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const body = gzip ? a.gzip : a.body;
  res.writeHead(200, {
    'content-type': a.type,
    'content-length': body.length,
    etag: a.etag,
    'cache-control': 'public, max-age=3600',
    vary: 'accept-encoding',
    ...(gzip ? { 'content-encoding': 'gzip' } : {}),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}

import http from 'node:http';
import https from 'node:https';
import { EnvHttpProxyAgent } from 'undici';

/** The proxy settings every CRM call follows (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), read once at start. */
export interface ProxySettings {
  /** for http:// URLs, and https:// ones when `https` is unset */
  readonly http: string | null;
  readonly https: string | null;
  /** hosts reached directly (comma- or space-separated, `.domain` and `*.domain` suffixes, `*`) */
  readonly noProxy: string | null;
}

export const NO_PROXY: ProxySettings = { http: null, https: null, noProxy: null };

/**
 * The standard proxy variables, read as undici's EnvHttpProxyAgent reads them: lower case first;
 * https:// URLs fall back to the HTTP proxy; NO_PROXY hosts go direct. A value that is not an
 * http(s) URL is a problem (the start stops), never a silent direct connection.
 */
export function parseProxySettings(str: (n: string) => string | null, problems: string[]): ProxySettings {
  const proxyUrl = (names: string[]): string | null => {
    for (const n of names) {
      const raw = str(n);
      if (raw === null) continue;
      try {
        if (['http:', 'https:'].includes(new URL(raw).protocol)) return raw;
      } catch {
        // reported below
      }
      problems.push(`${n}: expected an http(s) proxy URL such as http://proxy.example.com:3128 (Salesforce and HubSpot calls go through it)`);
      return null;
    }
    return null;
  };
  return { http: proxyUrl(['http_proxy', 'HTTP_PROXY']), https: proxyUrl(['https_proxy', 'HTTPS_PROXY']), noProxy: str('no_proxy') ?? str('NO_PROXY') };
}

/**
 * undici's dispatcher for these settings (Salesforce's fetch). '' rather than undefined: undici
 * would read process.env itself, and the config read it once.
 */
export function proxyDispatcher(proxy: ProxySettings, opts: { allowH2?: boolean } = {}): EnvHttpProxyAgent {
  return new EnvHttpProxyAgent({ httpProxy: proxy.http ?? '', httpsProxy: proxy.https ?? '', noProxy: proxy.noProxy ?? '', ...opts });
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };

/**
 * The proxy a request to `target` goes through, or null for a direct connection: the decision
 * proxyDispatcher makes, for clients that speak node:http (HubSpot's). Same rules as undici's
 * EnvHttpProxyAgent (crm-proxy.spec.ts checks them side by side): https:// falls back to the HTTP
 * proxy; NO_PROXY entries split on commas and white space; `*` bypasses all; `host` and `.host`
 * match the host and its subdomains, `*.host` subdomains only; `host:port` only that port.
 */
export function proxyFor(target: URL, proxy: ProxySettings): string | null {
  const via = target.protocol === 'https:' ? proxy.https || proxy.http : proxy.http;
  if (!via) return null;
  const hostname = stripTrailingDot(target.hostname.replace(/^\[(.+)\]$/, '$1').toLowerCase());
  const port = Number.parseInt(target.port, 10) || DEFAULT_PORTS[target.protocol] || 0;
  for (const entry of (proxy.noProxy ?? '').split(/[,\s]/)) {
    if (!entry) continue;
    const v6 = /^\[(.+)\]:(\d+)$/.exec(entry);
    let host: string;
    let entryPort = 0;
    if (v6) {
      host = v6[1]!;
      entryPort = Number.parseInt(v6[2]!, 10);
    } else {
      const unbracketed = entry.replace(/^\[(.+)\]$/, '$1');
      const withPort = (unbracketed.match(/:/g) ?? []).length === 1 ? /^(.+):(\d+)$/.exec(unbracketed) : null;
      host = withPort ? withPort[1]! : unbracketed;
      entryPort = withPort ? Number.parseInt(withPort[2]!, 10) : 0;
    }
    const wildcard = entry.startsWith('*');
    host = host.replace(/^\*?\./, '').replace(/^(.+)\.$/, '$1').toLowerCase();
    if (entryPort && entryPort !== port) continue;
    if (host === '*') return null;
    if (!wildcard && hostname === host) return null;
    if (hostname.endsWith(`.${host}`)) return null;
  }
  return via;
}

function stripTrailingDot(h: string): string {
  return h.length > 1 && h.endsWith('.') ? h.slice(0, -1) : h;
}

/**
 * A keep-alive node:http(s) agent for requests to `origin` (one protocol, as such agents are),
 * through the proxy `proxyFor` picks for it: absolute-form requests for http://, a CONNECT tunnel
 * for https://, as Node's own proxy support sends them. The agent never reads process.env.
 */
export function proxiedNodeAgent(origin: URL, proxy: ProxySettings): http.Agent {
  const secure = origin.protocol === 'https:';
  const via = proxyFor(origin, proxy);
  const proxyEnv = via ? (secure ? { HTTPS_PROXY: via } : { HTTP_PROXY: via }) : undefined;
  return secure ? new https.Agent({ keepAlive: true, proxyEnv }) : new http.Agent({ keepAlive: true, proxyEnv });
}

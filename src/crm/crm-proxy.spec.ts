import http from 'node:http';
import type net from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyDispatcher, proxyFor, type ProxySettings } from './crm-proxy';

// HubSpot's client speaks node:http, so its proxy decision is proxyFor; Salesforce's fetch gets
// undici's EnvHttpProxyAgent (proxyDispatcher). Both must send the same hosts through the proxy:
// here each case is asked of undici for real (a request that reaches the recording proxy was
// proxied; one that fails on DNS or a closed port went direct) and compared with proxyFor.
// Hosts are under .invalid (never resolves) or loopback on a closed port.

let proxy: http.Server;
let proxyUrl: string;
let closedPort: number;
const seen: string[] = [];

beforeAll(async () => {
  proxy = http.createServer((req, res) => {
    seen.push(req.url!);
    res.end('proxied');
  });
  proxy.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
    seen.push(req.url!);
    socket.destroy();
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
  const probe = http.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  closedPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
});

afterAll(async () => {
  await new Promise<void>((r) => proxy.close(() => r()));
});

/** Whether undici's EnvHttpProxyAgent sent a request for `url` to the proxy. */
async function undiciProxies(url: string, settings: ProxySettings): Promise<boolean> {
  const dispatcher = proxyDispatcher(settings);
  const before = seen.length;
  try {
    const res = await request(url, { dispatcher, headersTimeout: 5_000, bodyTimeout: 5_000 });
    await res.body.text();
  } catch {
    // direct (ENOTFOUND, ECONNREFUSED) or a CONNECT the proxy closed
  } finally {
    await dispatcher.destroy();
  }
  return seen.length > before;
}

describe('proxyFor', () => {
  it('sends the same hosts through the proxy as undici EnvHttpProxyAgent, for every NO_PROXY form', async () => {
    const p = closedPort;
    const targets = [
      `http://hubapi.invalid:${p}/`,
      `http://api.hubapi.invalid:${p}/`,
      `http://API.HubApi.invalid.:${p}/`,
      `http://xhubapi.invalid:${p}/`,
      'http://api.hubapi.invalid/',
      'https://api.hubapi.invalid/',
      `http://127.0.0.1:${p}/`,
      `http://[::1]:${p}/`,
    ];
    const noProxies = [
      '',
      '*',
      ' * ',
      'hubapi.invalid',
      '.hubapi.invalid',
      '*.hubapi.invalid',
      'hubapi.invalid.',
      'HUBAPI.INVALID',
      'other.invalid hubapi.invalid',
      'other.invalid,api.hubapi.invalid',
      `hubapi.invalid:${p}`,
      'api.hubapi.invalid:443',
      `*:${p}`,
      'pi.invalid',
      '127.0.0.1',
      '127.0.0.0-127.0.0.255',
      '::1',
      `[::1]:${p}`,
    ];
    const mismatches: string[] = [];
    let proxiedCount = 0;
    for (const noProxy of noProxies) {
      for (const url of targets) {
        const settings: ProxySettings = { http: proxyUrl, https: null, noProxy };
        const undici = await undiciProxies(url, settings);
        const ours = proxyFor(new URL(url), settings) !== null;
        if (undici) proxiedCount++;
        if (undici !== ours) mismatches.push(`NO_PROXY=${JSON.stringify(noProxy)} ${url}: undici ${undici ? 'proxies' : 'goes direct'}, proxyFor ${ours ? 'proxies' : 'goes direct'}`);
      }
    }
    expect(mismatches).toEqual([]);
    // both outcomes are exercised
    expect(proxiedCount).toBeGreaterThan(20);
    expect(proxiedCount).toBeLessThan(noProxies.length * targets.length - 20);
  }, 60_000);

  it('takes the HTTP proxy for https:// when no HTTPS proxy is set, and none for http:// with only an HTTPS proxy', () => {
    const u = new URL('https://api.hubapi.com/');
    expect(proxyFor(u, { http: 'http://a:1', https: null, noProxy: null })).toBe('http://a:1');
    expect(proxyFor(u, { http: 'http://a:1', https: 'http://b:2', noProxy: null })).toBe('http://b:2');
    expect(proxyFor(new URL('http://api.hubapi.com/'), { http: null, https: 'http://b:2', noProxy: null })).toBeNull();
    expect(proxyFor(u, { http: null, https: null, noProxy: null })).toBeNull();
  });
});

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_DIR } from '../../src/http/console.static';
import { startTestApp, type TestApp } from '../support/app';
import { REPO_ROOT } from '../support/postgres';

// The console is built by `npm run build` (vite) before the tests run (test/run-tests.sh).
describe('the console is served by Earshot itself', () => {
  let app: TestApp;
  let off: TestApp;
  beforeAll(async () => {
    app = await startTestApp({}, 'consoleon');
    off = await startTestApp({ EARSHOT_CONSOLE: 'off' }, 'consoleoff');
  });
  afterAll(async () => {
    await app?.close();
    await off?.close();
  });

  it('serves the page with a strict content security policy, and deep links answer the page too', async () => {
    const redirect = await fetch(`${app.url}/console`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/console/');
    for (const p of ['/console/', '/console/customers/some-id']) {
      const res = await fetch(`${app.url}${p}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(await res.text()).toContain('<div id="app">');
    }
  });

  it('loads nothing from another origin: every script and style is its own, cached for a year', async () => {
    const html = await (await fetch(`${app.url}/console/`)).text();
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((r) => !r.startsWith('data:'));
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      expect(ref.startsWith('/console/assets/')).toBe(true);
      const res = await fetch(`${app.url}${ref}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toContain('immutable');
    }
  });

  it('never serves a file outside its folder', async () => {
    const secret = readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8');
    for (const p of ['/console/../package.json', '/console/%2e%2e/%2e%2e/package.json', '/console/..%2f..%2fpackage.json', '/console/%00', '/console/%E0%A4%A']) {
      const res = await fetch(`${app.url}${p}`);
      const body = await res.text();
      expect(body).not.toBe(secret);
      expect(body).not.toContain('"devDependencies"');
    }
  });

  it('answers only GET and HEAD', async () => {
    const res = await fetch(`${app.url}/console/`, { method: 'POST', body: 'x' });
    expect(res.status).toBe(405);
    const head = await fetch(`${app.url}/console/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
  });

  it('is off when EARSHOT_CONSOLE=off (the default in production)', async () => {
    const res = await fetch(`${off.url}/console/`);
    expect(res.status).toBe(404);
    // the API itself is unaffected
    const api = await off.gql<{ viewer: { role: string } }>('{ viewer { role canSeePii } }');
    expect(api.data.viewer.role).toBe('admin');
  });

  it('keeps the bundle small: under 500 kB gzipped', async () => {
    const { gzipSync } = await import('node:zlib');
    const files = readdirSync(path.join(CONSOLE_DIR, 'assets')).map((f) => path.join(CONSOLE_DIR, 'assets', f));
    const gz = files.reduce((n, f) => n + gzipSync(readFileSync(f)).length, 0);
    expect(gz).toBeLessThan(500 * 1024);
  });
});

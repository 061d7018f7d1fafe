import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPLORER_EXAMPLES } from '../../src/graphql/explorer-examples';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { launchBrowser, type TestBrowser } from '../support/browser';

describe('the GraphQL explorer in a real browser (headless Chromium)', () => {
  let app: TestApp;
  let browser: TestBrowser;

  beforeAll(async () => {
    app = await startTestApp({}, 'explorer');
    const lines = [message(1, { author: { handle: 'explorer_jane', displayName: 'Explorer Jane' }, text: 'My parcel is late again. Terrible.' })];
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(res.status).toBe(200);
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('loads from Earshot alone, runs the saved example query and shows the result', async () => {
    const page = await browser.newPage();
    const foreign: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(app.url) && !r.url().startsWith(app.url.replace('http', 'ws')) && !r.url().startsWith('data:')) foreign.push(r.url());
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));

    const res = await page.goto(`${app.url}/graphql`);
    expect(res?.status()).toBe(200);
    // the first saved tab is the README's customer query
    await page.locator('.graphiql-query-editor .CodeMirror').first().waitFor({ timeout: 30_000 });
    const tabs = page.locator('.graphiql-tab');
    await expect.poll(() => tabs.count(), { timeout: 10_000 }).toBe(EXPLORER_EXAMPLES.length);
    const editorText = await page.locator('.graphiql-query-editor .CodeMirror').first().evaluate((el) => (el as unknown as { CodeMirror: { getValue(): string } }).CodeMirror.getValue());
    expect(editorText).toContain('customers(first: 20, filter: { label: NEGATIVE })');

    await page.locator('.graphiql-execute-button').click();
    await expect.poll(() => page.locator('.result-window').innerText(), { timeout: 30_000 }).toContain('Explorer Jane');
    expect(await page.locator('.result-window').innerText()).toContain('"totalCount": 1');
    expect(errors).toEqual([]);
    expect(foreign).toEqual([]);
  });

  it('is off in production unless EARSHOT_EXPLORER=on', async () => {
    const prod = await startTestApp({ NODE_ENV: 'production', EARSHOT_API_KEYS: 'k-prod-0123456789abcdef:admin' }, 'explorer-prod');
    try {
      const page = await fetch(`${prod.url}/explorer`, { headers: { accept: 'text/html' } });
      expect(page.status).toBe(404);
      const asset = await fetch(`${prod.url}/graphql/explorer/explorer.js`);
      expect(asset.status).toBe(404);
      const html = await fetch(`${prod.url}/graphql`, { headers: { accept: 'text/html' } });
      expect(html.headers.get('content-type') ?? '').not.toContain('text/html');
    } finally {
      await prod.close();
    }
    const on = await startTestApp({ NODE_ENV: 'production', EARSHOT_API_KEYS: 'k-prod-0123456789abcdef:admin', EARSHOT_EXPLORER: 'on' }, 'explorer-prod-on');
    try {
      const page = await fetch(`${on.url}/graphql`, { headers: { accept: 'text/html' } });
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('/graphql/explorer/explorer.js');
    } finally {
      await on.close();
    }
  });
});

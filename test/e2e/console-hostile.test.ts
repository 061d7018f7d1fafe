import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gqlData, ingestAll } from '../support/api-calls';
import { startTestApp, type TestApp } from '../support/app';
import { launchChromium } from '../support/browser';

/**
 * A tag for a test customer's name, in letters only: an agent does not see names that read as
 * phone numbers (seven digits or more, src/auth/pii.policy.ts), and a slice of a UUID is all
 * digits about once in 40 runs ("Crm Victim 08277985" showed as "unknown customer").
 */
const nameTag = () => Array.from(randomBytes(8), (b) => String.fromCharCode(97 + (b % 26))).join('');

const KEYS = { admin: 'hostile-admin-key-0001', agent: 'hostile-agent-key-0001', svc: 'hostile-svc-key-000001' };

/** Markup that runs script wherever a string reaches the page as HTML; every one sets the same flag. */
const XSS = `<img src=x onerror="window.__pwned=1;alert(1)"></script><script>window.__pwned=1;alert(2)</script>"><svg onload="window.__pwned=1;alert(3)">`;

/**
 * The console against customers who write to attack it, and against an unlucky network: a real
 * Chromium on the in-process service, with what a user would see asserted (no dialog, no script
 * run, nothing off screen, still signed in).
 */
describe('the listening console against hostile data', () => {
  let app: TestApp;
  let browser: Browser;
  let db: pg.Client;

  const ingest = (lines: Record<string, unknown>[]) => ingestAll(app, KEYS.svc, lines);
  const api = <T>(query: string, variables: Record<string, unknown> = {}) => gqlData<T>(app, KEYS.admin, query, variables);

  /** A new complaint from a new customer (by email); resolves to the customer's global id and uuid once it is queued. */
  const complaint = async (over: { displayName: string; text: string }): Promise<{ id: string; uuid: string; email: string }> => {
    const email = `c-${randomUUID()}@example.com`;
    await ingest([{ source: 'email', externalId: randomUUID(), occurredAt: new Date().toISOString(), direction: 'inbound', author: { email, displayName: over.displayName }, text: over.text }]);
    const found = await api<{ customers: { edges: { node: { id: string } }[] } }>('query($q: String) { customers(first: 2, filter: { search: $q }) { edges { node { id } } } }', { q: email });
    expect(found.customers.edges).toHaveLength(1);
    const id = found.customers.edges[0]!.node.id;
    const uuid = Buffer.from(id, 'base64').toString('utf8').replace(/^Customer:/, '');
    const open = await api<{ openItems: { edges: { node: { customer: { id: string } | null } }[] } }>('{ openItems(first: 100) { edges { node { customer { id } } } } }');
    expect(open.openItems.edges.map((e) => e.node.customer?.id)).toContain(id);
    return { id, uuid, email };
  };

  /** A fresh browser session that records dialogs and CSP violations, signed in as `role`. */
  const signIn = async (role: keyof typeof KEYS, hash: string, viewport = { width: 1366, height: 900 }, base = app.url): Promise<{ page: Page; dialogs: string[] }> => {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => ((window as unknown as { __csp: string[] }).__csp ??= []).push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    await page.goto(`${base}/console/${hash}`);
    await page.getByRole('textbox', { name: 'API key' }).fill(KEYS[role]);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Console' }).waitFor();
    return { page, dialogs };
  };

  /** What an injected script would have left behind: its flag, and the CSP's refusals. */
  const ran = (page: Page) => page.evaluate(() => ({ pwned: (window as unknown as { __pwned?: number }).__pwned ?? null, csp: (window as unknown as { __csp?: string[] }).__csp ?? [] }));
  const overflow = (page: Page) => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

  const openItem = async (page: Page, name: string) => {
    const row = page.getByTestId('queue-list').locator('li', { hasText: name }).first();
    await row.waitFor({ timeout: 20_000 }).catch(async (e: Error) => {
      // say what the queue showed instead (its count, its rows, an error), not only that it timed out
      const shown = await page.locator('.queue').innerText().catch(() => '(no queue on the page)');
      throw new Error(`${name} is not in the queue after 20 s; the page shows:\n${shown.slice(0, 2_000)}\n${e.message}`);
    });
    await row.getByRole('button').click();
    await page.getByTestId('item-panel').locator('.thread li').first().waitFor();
  };

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest', EARSHOT_API_KEYS: `${KEYS.admin}:admin:root,${KEYS.agent}:agent:alice,${KEYS.svc}:service` }, 'conhostile');
    db = new pg.Client({ connectionString: app.database.url });
    await db.connect();
    // the Salesforce org's instance URL comes from an OAuth token answer, stored as given
    await db.query(`INSERT INTO crm_org (system, org_key, instance_url, portal_id) VALUES ('salesforce', 'org', 'javascript:window.__pwned=1;alert(document.domain)//', null), ('hubspot', 'portal', null, '4242')`);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await db?.end();
    await app?.close();
  });

  it('shows markup in names, handles, texts, topics, CRM records and assignees as text, and runs none of it', async () => {
    const name = `Mallory ${XSS}`.slice(0, 300);
    const c = await complaint({ displayName: name, text: `My parcel is late and nobody answers. Terrible. ${XSS}` });
    await db.query(`INSERT INTO crm_record (customer_id, system, object_type, external_id, owner_id) VALUES ($1, 'hubspot', 'contacts', $2, $3)`, [c.uuid, `"><img src=x onerror=alert(9)>`, XSS]);
    await api('mutation($input: TopicInput!) { upsertTopic(input: $input) { job { id } } }', { input: { name: 'xss_topic', label: XSS.slice(0, 200), department: XSS.slice(0, 200), phrases: ['parcel late'] } });
    const item = await api<{ openItems: { edges: { node: { id: string; customer: { id: string } | null } }[] } }>('{ openItems(first: 100) { edges { node { id customer { id } } } } }');
    const itemId = item.openItems.edges.find((e) => e.node.customer?.id === c.id)!.node.id;
    await api('mutation($id: ID!, $user: String) { assignItem(id: $id, user: $user) { id } }', { id: itemId, user: `<img src=x onerror=alert(7)>` });

    const { page, dialogs } = await signIn('admin', '#/queue');
    await openItem(page, 'Mallory');
    await page.getByTestId('item-panel').getByText('onerror="window.__pwned=1;alert(1)"', { exact: false }).first().waitFor();
    await page.getByRole('link', { name: 'open customer' }).click();
    await page.getByRole('heading', { level: 1, name: /^Mallory <img src=x/ }).waitFor();
    await page.getByText(/owner <img src=x onerror=/).waitFor();
    await page.goto(`${app.url}/console/#/departments`);
    await page.getByTestId('gap-kpis').waitFor();
    await page.goto(`${app.url}/console/#/admin`);
    await page.getByRole('rowheader', { name: /xss_topic/ }).waitFor();
    await page.goto(`${app.url}/console/#/customers`);
    await page.getByTestId('customer-results').getByText(/^Mallory <img/).first().waitFor();

    expect(dialogs).toEqual([]);
    await expect(ran(page)).resolves.toEqual({ pwned: null, csp: [] });
    expect(await page.locator('img[src="x"], svg[onload], script:not([src])').count()).toBe(0);
    await page.context().close();
  });

  it('never turns a CRM deep link that is not http(s) into a link (javascript: from the org instance URL)', async () => {
    const name = `Crm Victim ${nameTag()}`;
    const c = await complaint({ displayName: name, text: 'My parcel is late and nobody answers. Terrible.' });
    await db.query(`INSERT INTO crm_record (customer_id, system, object_type, external_id) VALUES ($1, 'salesforce', 'Contact', $2), ($1, 'hubspot', 'contacts', $3)`, [c.uuid, `003${c.uuid.slice(0, 8)}`, `77${c.uuid.slice(0, 6)}`]);
    const { page, dialogs } = await signIn('agent', '#/queue');
    const check = async () => {
      // the HubSpot record keeps its https link; the Salesforce one is shown as text, not a link to javascript:
      await expect(page.locator('a[href^="https://app.hubspot.com/contacts/4242/record/0-1/"]').count()).resolves.toBeGreaterThan(0);
      await page.getByText(/salesforce Contact/).first().waitFor();
      expect(await page.locator('a[href^="javascript:" i], a[href^="data:" i]').count()).toBe(0);
    };
    await openItem(page, name);
    await page.getByTestId('item-panel').getByText('salesforce Contact').waitFor();
    await check();
    await page.goto(`${app.url}/console/#/customers/${encodeURIComponent(c.id)}`);
    await page.getByRole('heading', { name: 'CRM records' }).waitFor();
    await check();
    expect(dialogs).toEqual([]);
    await expect(ran(page)).resolves.toEqual({ pwned: null, csp: [] });
    await page.context().close();
  });

  it('opens a link with broken percent-encoding (#/customers/%E0%A4%A) instead of a blank page', async () => {
    const { page } = await signIn('agent', '#/queue');
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // followed from the queue (a hash change) ...
    await page.evaluate(() => {
      location.hash = '#/customers/%E0%A4%A';
    });
    await page.getByRole('heading', { name: 'Queue' }).waitFor({ state: 'detached' });
    await page.getByRole('alert').or(page.getByText('This customer does not exist')).waitFor();
    // ... and opened as a page of its own (a reload, a link from a chat)
    await page.reload();
    await page.getByRole('navigation', { name: 'Console' }).waitFor();
    await page.getByRole('alert').or(page.getByText('This customer does not exist')).waitFor();
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('wraps a 20,000-character word, a 300-character name and a 200-character department: nothing is wider than the screen', async () => {
    const tag = randomUUID().slice(0, 8);
    const longName = `L${tag}${'W'.repeat(290)}`;
    await complaint({ displayName: longName, text: `My parcel is late and nobody answers. Terrible. https://example.com/${'a'.repeat(20_000)} ${'\u202E'}gnp.exe` });
    await api('mutation($input: TopicInput!) { upsertTopic(input: $input) { job { id } } }', { input: { name: `long_${tag}`, label: 'L'.repeat(200), department: `D${'e'.repeat(199)}`, phrases: ['parcel late'] } });
    for (const viewport of [
      { width: 1366, height: 900 },
      { width: 390, height: 844 },
    ]) {
      const { page } = await signIn('admin', '#/queue', viewport);
      await openItem(page, `L${tag}`);
      await page.getByTestId('item-panel').getByText('https://example.com/aaaa', { exact: false }).waitFor();
      expect(await overflow(page), `queue at ${viewport.width}px`).toBeLessThanOrEqual(0);
      await page.getByRole('link', { name: 'open customer' }).click();
      await page.getByRole('heading', { level: 1, name: `L${tag}`, exact: false }).waitFor();
      await page.locator('.thread li').first().waitFor();
      expect(await overflow(page), `customer page at ${viewport.width}px`).toBeLessThanOrEqual(0);
      await page.goto(`${app.url}/console/#/admin`);
      await page.getByRole('rowheader', { name: new RegExp(`long_${tag}`) }).waitFor();
      expect(await overflow(page), `admin page at ${viewport.width}px`).toBeLessThanOrEqual(0);
      // still usable: the actions are on screen and work
      await page.goto(`${app.url}/console/#/queue`);
      await openItem(page, `L${tag}`);
      const assign = page.getByTestId('item-panel').getByRole('button', { name: 'Assign' });
      const box = (await assign.boundingBox())!;
      expect(box.x + box.width).toBeLessThanOrEqual(viewport.width);
      await page.context().close();
    }
  });

  it('keeps the sign-in when Earshot cannot be reached at a reload (a restart behind a load balancer)', async () => {
    // a load balancer in front: while Earshot restarts it answers 502 with its own HTML page
    let down = false;
    const target = new URL(app.url);
    const proxy = http.createServer((req, res) => {
      if (down && req.url === '/graphql') {
        res.writeHead(502, { 'content-type': 'text/html' }).end('<html><body>502 Bad Gateway</body></html>');
        return;
      }
      const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode!, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const base = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const { page } = await signIn('agent', '#/queue', undefined, base);
      down = true;
      await page.reload();
      await page.getByRole('alert').getByText(/HTTP 502/).waitFor();
      await expect(page.getByRole('textbox', { name: 'API key' }).count()).resolves.toBe(0);
      down = false;
      await page.getByRole('button', { name: 'Try again' }).click();
      await page.getByRole('navigation', { name: 'Console' }).waitFor();
      // the queue asks again too: no leftover error from the attempt made while it was down
      await page.waitForFunction(() => /^\d+$/.test(document.querySelector('[data-testid=open-count]')?.textContent ?? ''), undefined, { timeout: 10_000 });
      await expect(page.getByRole('alert').count()).resolves.toBe(0);
      // and a reload once it is back needs no key either
      await page.reload();
      await page.getByRole('navigation', { name: 'Console' }).waitFor();
      await page.context().close();
    } finally {
      proxy.close();
    }
  });

  it('loads the queue by itself after a busy moment (one 503 SERVICE_UNAVAILABLE), with no click', async () => {
    const name = `Busy Moment ${nameTag()}`;
    await complaint({ displayName: name, text: 'My parcel is late and nobody answers. Terrible.' });
    const context = await browser.newContext();
    const page = await context.newPage();
    // the first load of the queue meets Earshot's own answer when every operation slot is taken
    let refused = 0;
    let queueLoads = 0;
    await page.route('**/graphql', async (route) => {
      const isQueue = route.request().method() === 'POST' && (route.request().postData() ?? '').includes('query Queue');
      if (isQueue) queueLoads++;
      if (isQueue && refused === 0) {
        refused++;
        await route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ errors: [{ message: 'too many GraphQL operations are waiting; try again shortly', extensions: { code: 'SERVICE_UNAVAILABLE' } }] }) });
        return;
      }
      await route.continue();
    });
    await page.goto(`${app.url}/console/#/queue`);
    await page.getByRole('textbox', { name: 'API key' }).fill(KEYS.agent);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // nothing clicked, nothing reloaded: the page asks again, and the error it showed meanwhile goes
    await page.getByTestId('queue-list').locator('li', { hasText: name }).waitFor();
    await expect(page.getByRole('alert').count()).resolves.toBe(0);
    expect(refused).toBe(1);
    expect(queueLoads).toBeGreaterThanOrEqual(2);
    await context.close();
  });

  it('still signs out on a refused key', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${app.url}/console/#/queue`);
    await page.evaluate(() => sessionStorage.setItem('earshot.console.credentials', JSON.stringify({ kind: 'key', value: 'revoked-key-0000000000' })));
    await page.reload();
    await page.getByRole('alert').getByText(/invalid API key/i).waitFor();
    await page.getByRole('textbox', { name: 'API key' }).waitFor();
    await expect(page.evaluate(() => sessionStorage.getItem('earshot.console.credentials'))).resolves.toBeNull();
    await context.close();
  });
});

import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, SCREENSHOTS } from '../support/browser';
import { spawnEarshot, type EarshotProcess } from '../support/earshot-process';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

const KEYS = { agent: 'console-agent-key-0001', analyst: 'console-analyst-key-01', admin: 'console-admin-key-0001' };
const DAY = 86_400_000;

/**
 * The console as a care desk uses it: the compiled service with the demo data, real Chromium,
 * clicks and typing only. Every wait is for something to appear or disappear on the page.
 */
describe('the listening console in a real browser', () => {
  let database: TestDatabase;
  let earshot: EarshotProcess;
  let browser: Browser;
  let base: string;

  const api = async <T>(role: keyof typeof KEYS, query: string, variables: Record<string, unknown> = {}): Promise<T> => {
    const res = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': KEYS[role] },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data: T; errors?: unknown[] };
    expect(body.errors).toBeUndefined();
    return body.data;
  };

  /** A fresh browser session (its own sessionStorage) signed in with `role`'s key. */
  const signIn = async (role: keyof typeof KEYS, hash = ''): Promise<Page> => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${base}/console/${hash}`);
    await page.getByRole('textbox', { name: 'API key' }).fill(KEYS[role]);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Console' }).waitFor();
    return page;
  };
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    database = await createTestDatabase('console');
    earshot = spawnEarshot(
      {
        DATABASE_URL: database.url,
        EARSHOT_ROLES: 'api,ingest',
        EARSHOT_API_KEYS: `${KEYS.agent}:agent:alice,${KEYS.analyst}:analyst:bob,${KEYS.admin}:admin:root`,
        // info: the "listening" line carries the URL
        LOG_LEVEL: 'info',
      },
      { args: ['demo'] },
    );
    base = (await earshot.listening()).replace('localhost', '127.0.0.1');
    browser = await launchChromium();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await earshot?.kill('SIGTERM');
    await database?.drop();
  });

  it('refuses a wrong key and keeps the sign-in form', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${base}/console/`);
    await page.getByRole('textbox', { name: 'API key' }).fill('not-a-key-of-this-instance');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/invalid API key/i);
    await page.context().close();
  });

  it('works an item from the queue to closed, and a second page sees it leave without reloading', async () => {
    const desk = await signIn('agent', '#/queue');
    const watcher = await signIn('agent', '#/queue');
    await desk.locator('[data-testid=queue-list] li').first().waitFor();
    const id = (await desk.locator('[data-testid=queue-list] li').first().getAttribute('data-item-id'))!;
    await watcher.locator(`[data-item-id="${id}"]`).waitFor();
    const before = Number(await watcher.getByTestId('open-count').textContent());
    await shot(desk, 'console-queue');

    await desk.locator(`[data-item-id="${id}"] button`).click();
    const panel = desk.getByTestId('item-panel');
    await panel.locator('.thread li').first().waitFor();
    await panel.getByLabel('Assign to').fill('alice');
    await panel.getByRole('button', { name: 'Assign' }).click();
    await desk.locator(`[data-item-id="${id}"] .meta`, { hasText: 'alice' }).waitFor();
    await shot(desk, 'console-item');

    await panel.getByLabel('Close reason').fill('refunded by phone');
    await panel.getByRole('button', { name: 'Close' }).click();
    await desk.locator(`[data-item-id="${id}"]`).waitFor({ state: 'detached' });

    // the other page was never reloaded: a live event (or its polling fallback) took the item away
    const navigations: string[] = [];
    watcher.on('framenavigated', (f) => navigations.push(f.url()));
    await watcher.locator(`[data-item-id="${id}"]`).waitFor({ state: 'detached', timeout: 30_000 });
    expect(navigations).toEqual([]);
    await expect(watcher.getByTestId('open-count').textContent()).resolves.toBe(String(before - 1));

    const open = await api<{ openItems: { edges: { node: { id: string } }[] } }>('agent', '{ openItems(first: 100) { edges { node { id } } } }');
    expect(open.openItems.edges.map((e) => e.node.id)).not.toContain(id);
    await desk.context().close();
    await watcher.context().close();
  });

  it('finds a customer by email as agent, and not as analyst', async () => {
    const all = await api<{ customers: { edges: { node: { id: string; displayName: string; identities: { kind: string; value: string | null }[] } }[] } }>(
      'admin',
      '{ customers(first: 100) { edges { node { id displayName identities { kind value } } } } }',
    );
    const person = all.customers.edges.map((e) => e.node).find((c) => c.identities.some((i) => i.kind === 'EMAIL' && i.value));
    expect(person).toBeDefined();
    const email = person!.identities.find((i) => i.kind === 'EMAIL')!.value!;

    const agent = await signIn('agent', '#/customers');
    await agent.getByRole('searchbox', { name: 'Search' }).fill(email);
    await agent.getByRole('button', { name: 'Search' }).click();
    // by its link, not its name: the demo draws names from 30 × 20, so several customers share one,
    // and one CI run listed two "Isla Rossi" for one email
    const row = agent.getByTestId('customer-results').locator(`a[href="#/customers/${encodeURIComponent(person!.id)}"]`);
    await row.waitFor();
    await expect(row.textContent()).resolves.toBe(person!.displayName);
    await row.click();
    await agent.getByTestId('identities').getByText(email).waitFor();
    await agent.locator('canvas[data-points]').first().waitFor();
    await shot(agent, 'console-customer');

    const analyst = await signIn('analyst', '#/customers');
    await analyst.getByRole('searchbox', { name: 'Search' }).fill(email);
    await analyst.getByRole('button', { name: 'Search' }).click();
    await analyst.getByText('No customer matches.').waitFor();
    expect(await analyst.content()).not.toContain(email);
    await agent.context().close();
    await analyst.context().close();
  });

  it("renders the department page with the demo's figures", async () => {
    const page = await signIn('analyst', '#/departments');
    await page.getByTestId('gap-table').first().locator('tbody tr').first().waitFor();
    // the page's default window: the last 30 whole days
    const end = Math.ceil(Date.now() / DAY) * DAY;
    const gap = await api<{ listeningGap: { received: number; byDepartment: { department: string; received: number; answered: number }[] } }>(
      'analyst',
      'query G($from: DateTimeISO!, $to: DateTimeISO!) { listeningGap(from: $from, to: $to) { received byDepartment { department received answered } } }',
      { from: new Date(end - 30 * DAY).toISOString(), to: new Date(end).toISOString() },
    );
    expect(gap.listeningGap.received).toBeGreaterThan(0);
    await expect(page.getByTestId('gap-kpis').locator('dd').first().textContent()).resolves.toBe(String(gap.listeningGap.received));
    const rows = await page.getByTestId('gap-table').first().locator('tbody tr').evaluateAll((trs) =>
      trs.map((tr) => [tr.querySelector('th')!.textContent, tr.querySelectorAll('td')[0]!.textContent, tr.querySelectorAll('td')[1]!.textContent]),
    );
    expect(rows).toEqual(gap.listeningGap.byDepartment.map((d) => [d.department, String(d.received), String(d.answered)]));

    // the charts drew something: the canvas has painted pixels, and its data points are the API's
    const charts = page.locator('canvas[data-points]');
    await expect(charts.count()).resolves.toBeGreaterThanOrEqual(2);
    const painted = await charts.first().evaluate((c: HTMLCanvasElement) => {
      const ctx = c.getContext('2d')!;
      const px = ctx.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i]! > 0) n++;
      return n;
    });
    expect(painted).toBeGreaterThan(1000);
    await expect(charts.nth(1).getAttribute('data-points')).resolves.toBe(String(gap.listeningGap.byDepartment.length));
    await shot(page, 'console-departments');
    await page.context().close();
  });

  it('shows the admin page (taxonomy, CRM sync) to admins only', async () => {
    const admin = await signIn('admin', '#/admin');
    await admin.getByRole('heading', { name: 'Taxonomy' }).waitFor();
    await admin.getByRole('cell', { name: 'Logistics' }).first().waitFor();
    await shot(admin, 'console-admin');
    const agent = await signIn('agent', '#/admin');
    await agent.getByText('The admin page is for the admin role.').waitFor();
    await expect(agent.getByRole('link', { name: 'Admin' }).count()).resolves.toBe(0);
    await admin.context().close();
    await agent.context().close();
  });

  it('is usable on a phone-sized screen with the keyboard alone', async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    const page = await context.newPage();
    await page.goto(`${base}/console/#/queue`);
    await page.getByRole('textbox', { name: 'API key' }).focus();
    await page.keyboard.type(KEYS.agent);
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=queue-list] li').first().waitFor();
    // nothing wider than the screen
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    // Tab reaches the first queue item and Enter opens it
    await page.locator('[data-testid=queue-list] li button').first().focus();
    await page.keyboard.press('Enter');
    await page.getByTestId('item-panel').waitFor();
    await shot(page, 'console-phone');
    await context.close();
  });
});

import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gqlData, ingestAll } from '../support/api-calls';
import { startTestApp, type TestApp } from '../support/app';
import { launchChromium } from '../support/browser';

const KEYS = { admin: 'hdata-admin-key-00001', agent: 'hdata-agent-key-00001', analyst: 'hdata-analyst-key-0001', svc: 'hdata-svc-key-0000001' };

/** Every way of running script from data sets this flag. */
const FLAG = `window.__pwned=1`;
const MARKUP = `<img src=x onerror="${FLAG}"><script>${FLAG}</script><svg onload="${FLAG}"><a href="javascript:${FLAG}">click</a>`;
const MARKDOWN = `# Heading\n**bold** [click me](javascript:${FLAG}) ![x](data:text/html,<script>${FLAG}</script>) <javascript:${FLAG}> [data](data:text/html;base64,PHNjcmlwdD4=)`;
const RLO = '\u202E';
const ZALGO_MARKS = Array.from({ length: 500 }, (_, i) => String.fromCharCode(0x300 + (i % 0x70))).join('');

interface Perf {
  firstItemMs: number | null;
  longestTaskMs: number;
  tasks: number;
}

/**
 * The console against what customers write and what CRMs hold: huge words and URLs, emoji floods,
 * zalgo, bidi overrides, newline floods, markup and markdown, control characters, a customer with a
 * thousand interactions and a queue of 500 items, all ingested through `/ingest` and looked at in
 * a real Chromium as a care-desk agent and an analyst would. What is asserted is what a user would
 * notice: the page answers quickly, no script runs, the actions stay on screen and clickable, and
 * the text can be read.
 */
describe('the listening console against hostile customer data', () => {
  let app: TestApp;
  let browser: Browser;
  let db: pg.Client;

  const ingest = (lines: Record<string, unknown>[]) => ingestAll(app, KEYS.svc, lines);
  const api = <T>(query: string, variables: Record<string, unknown> = {}) => gqlData<T>(app, KEYS.admin, query, variables);

  const line = (email: string, displayName: string, text: string, over: Record<string, unknown> = {}, author: Record<string, unknown> = {}) => ({
    source: 'email',
    externalId: randomUUID(),
    occurredAt: new Date().toISOString(),
    direction: 'inbound',
    author: { email, displayName, ...author },
    text,
    ...over,
  });

  /** A new complaint from a new customer; resolves to the customer's global id and uuid once it is queued. */
  const complaint = async (displayName: string, text: string, over: Record<string, unknown> = {}, author: Record<string, unknown> = {}): Promise<{ id: string; uuid: string; email: string }> => {
    const email = `c-${randomUUID()}@example.com`;
    await ingest([line(email, displayName, text, over, author)]);
    return customerOf(email);
  };

  const customerOf = async (email: string) => {
    const found = await api<{ customers: { edges: { node: { id: string } }[] } }>('query($q: String) { customers(first: 2, filter: { search: $q }) { edges { node { id } } } }', { q: email });
    expect(found.customers.edges).toHaveLength(1);
    const id = found.customers.edges[0]!.node.id;
    return { id, uuid: Buffer.from(id, 'base64').toString('utf8').replace(/^Customer:/, ''), email };
  };

  /**
   * A fresh signed-in session (the key put where the sign-in form puts it), recording dialogs,
   * CSP refusals, long main-thread tasks and when the first queue item appeared.
   */
  const session = async (role: keyof typeof KEYS, hash: string, viewport = { width: 1366, height: 900 }): Promise<{ page: Page; dialogs: string[] }> => {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.addInitScript((key) => {
      sessionStorage.setItem('earshot.console.credentials', JSON.stringify({ kind: 'key', value: key }));
      const w = window as unknown as { __csp: string[]; __longest: number; __tasks: number; __firstItem: number | null };
      w.__csp = [];
      w.__longest = 0;
      w.__tasks = 0;
      w.__firstItem = null;
      document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          w.__tasks++;
          w.__longest = Math.max(w.__longest, e.duration);
        }
      }).observe({ type: 'longtask', buffered: true });
      new MutationObserver((_, obs) => {
        if (document.querySelector('[data-testid=queue-list] li')) {
          w.__firstItem = performance.now();
          obs.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    }, KEYS[role]);
    await page.goto(`${app.url}/console/${hash}`);
    await page.getByRole('navigation', { name: 'Console' }).waitFor();
    return { page, dialogs };
  };

  const perf = (page: Page): Promise<Perf> =>
    page.evaluate(() => {
      const w = window as unknown as { __longest: number; __tasks: number; __firstItem: number | null };
      return { firstItemMs: w.__firstItem === null ? null : Math.round(w.__firstItem), longestTaskMs: Math.round(w.__longest), tasks: w.__tasks };
    });

  const ran = (page: Page) => page.evaluate(() => ({ pwned: (window as unknown as { __pwned?: number }).__pwned ?? null, csp: (window as unknown as { __csp?: string[] }).__csp ?? [] }));
  const overflow = (page: Page) => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

  const openItem = async (page: Page, name: string) => {
    const row = page.getByTestId('queue-list').locator('li', { hasText: name }).first();
    await row.waitFor({ timeout: 20_000 });
    await row.getByRole('button').click();
    await page.getByTestId('item-panel').locator('.thread li').first().waitFor();
    return row;
  };

  /** The item's actions are inside the panel, on screen once scrolled to, and take a click (Playwright's actionability checks). */
  const actionsWork = async (page: Page, label: string) => {
    const panel = page.getByTestId('item-panel');
    const panelBox = (await panel.boundingBox())!;
    for (const name of ['Assign', 'Mark responded', 'Close']) {
      const button = panel.getByRole('button', { name, exact: true });
      await button.scrollIntoViewIfNeeded();
      await expect(button.isVisible(), `${label}: ${name} visible`).resolves.toBe(true);
      const b = (await button.boundingBox())!;
      const vw = page.viewportSize()!.width;
      expect(b.x, `${label}: ${name} inside the panel`).toBeGreaterThanOrEqual(panelBox.x);
      expect(b.x + b.width, `${label}: ${name} inside the panel`).toBeLessThanOrEqual(panelBox.x + panelBox.width + 0.5);
      expect(b.x + b.width, `${label}: ${name} on screen`).toBeLessThanOrEqual(vw);
      // trial: every actionability check (visible, stable, enabled, receives the pointer) without acting
      if (name !== 'Close') await button.click({ trial: true, timeout: 5_000 });
    }
    await panel.getByRole('textbox', { name: 'Close reason' }).fill('checked');
    await panel.getByRole('button', { name: 'Close', exact: true }).click({ trial: true, timeout: 5_000 });
    await panel.getByRole('textbox', { name: 'Close reason' }).fill('');
  };

  beforeAll(async () => {
    app = await startTestApp(
      { EARSHOT_ROLES: 'api,ingest', EARSHOT_API_KEYS: `${KEYS.admin}:admin:root,${KEYS.agent}:agent:alice,${KEYS.analyst}:analyst:ann,${KEYS.svc}:service` },
      'conhostiledata',
    );
    db = new pg.Client({ connectionString: app.database.url });
    await db.connect();
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await db?.end();
    await app?.close();
  });

  /** Whether `target` paints outside its own box: screenshots of its neighbours with it shown and hidden differ. */
  const paintsOver = async (target: Locator, neighbours: Locator[]): Promise<boolean> => {
    // each neighbour less its two outer pixel rows at top and bottom: at a fractional position the
    // pixel row a neighbour shares with the target changes with it, though nothing paints over
    const shots = () =>
      Promise.all(
        neighbours.map(async (n) => {
          await n.scrollIntoViewIfNeeded();
          const b = (await n.boundingBox())!;
          return n.page().screenshot({ clip: { x: b.x, y: b.y + 2, width: b.width, height: Math.max(1, b.height - 4) }, animations: 'disabled' });
        }),
      );
    for (let attempt = 0; attempt < 5; attempt++) {
      const shown = await shots();
      await target.evaluate((e) => ((e as HTMLElement).style.visibility = 'hidden'));
      const hidden = await shots();
      await target.evaluate((e) => ((e as HTMLElement).style.visibility = ''));
      // the page changed by itself meanwhile (a live event re-rendered the queue): compare again
      const again = await shots();
      if (!shown.every((b, i) => b.equals(again[i]!))) continue;
      return shown.some((b, i) => !b.equals(hidden[i]!));
    }
    throw new Error('the page kept changing while the neighbours were compared');
  };

  const queued = async (customerId: string) => {
    const open = await api<{ openItems: { edges: { node: { customer: { id: string } | null } }[] } }>('{ openItems(first: 100) { edges { node { customer { id } } } } }');
    expect(open.openItems.edges.map((e) => e.node.customer?.id)).toContain(customerId);
  };

  it('keeps the actions of an item with a 100,000-character word or a 50 kB URL near, and shows the text whole on request', async () => {
    const tag = randomUUID().slice(0, 6);
    const word = 'w'.repeat(100_000);
    const url = `https://example.com/${'p/'.repeat(25_000)}`;
    await complaint(`Word ${tag}`, `My parcel is late and nobody answers. Terrible. ${word}`);
    await complaint(`Url ${tag}`, `My parcel is late and nobody answers. Terrible: ${url}`);
    for (const viewport of [
      { width: 1366, height: 900 },
      { width: 390, height: 844 },
    ]) {
      const { page, dialogs } = await session('agent', '#/queue', viewport);
      await page.getByTestId('queue-list').locator('li', { hasText: `Url ${tag}` }).waitFor({ timeout: 20_000 });
      const queue = await perf(page);
      for (const [name, long] of [
        ['Word', word],
        ['Url', url],
      ] as const) {
        const label = `${name} at ${viewport.width}px`;
        await openItem(page, `${name} ${tag}`);
        const panel = page.getByTestId('item-panel');
        // the actions are within three screens of the item's title, not below 40,000 px of one word
        const distance = await panel.evaluate((p) => p.querySelector('.actions')!.getBoundingClientRect().top - p.getBoundingClientRect().top);
        console.info(`${label}: actions ${Math.round(distance)} px below the panel's top; queue ${JSON.stringify(queue)}`);
        expect(distance, `${label}: actions below the title`).toBeLessThan(3 * viewport.height);
        expect(await overflow(page), label).toBeLessThanOrEqual(0);
        await actionsWork(page, label);
        // the text can still be read whole: asked for, it is all there, wrapped
        await panel.getByRole('button', { name: /^Show all [\d,]+ characters$/ }).click();
        await expect(panel.locator('.thread p', { hasText: long.slice(0, 200) }).evaluate((p) => p.textContent!.length)).resolves.toBeGreaterThanOrEqual(long.length);
        expect(await overflow(page), `${label} shown whole`).toBeLessThanOrEqual(0);
        await actionsWork(page, `${label} shown whole`);
      }
      const p = await perf(page);
      console.info(`${viewport.width}px: ${JSON.stringify(p)}`);
      expect(p.longestTaskMs, `longest main-thread task at ${viewport.width}px`).toBeLessThan(1_000);
      expect(dialogs).toEqual([]);
      await expect(ran(page)).resolves.toEqual({ pwned: null, csp: [] });
      await page.context().close();
    }
  });

  it('shows 5,000 emoji, a flood of 10,000 newlines and zalgo readably, and zalgo paints over nothing around it', async () => {
    const tag = randomUUID().slice(0, 6);
    const zalgoName = `Zalgo ${tag} Z${ZALGO_MARKS}`.slice(0, 300);
    await complaint(`Emoji ${tag}`, `a My parcel is late. Terrible. ${'😡'.repeat(5_000)}`);
    await complaint(`Newlines ${tag}`, `${'\n'.repeat(10_000)}My parcel is late and nobody answers. Terrible.${'\r\n'.repeat(5_000)}Still nothing.`);
    const z = await complaint(zalgoName, `My parcel is late. Terrible. Z${ZALGO_MARKS}a${ZALGO_MARKS}lgo`);
    const { page } = await session('agent', '#/queue');
    const list = page.getByTestId('queue-list');
    await list.locator('li', { hasText: `Zalgo ${tag}` }).waitFor({ timeout: 20_000 });
    // an excerpt is cut between characters: no half emoji (a lone surrogate, shown as "�")
    const emoji = await list.locator('li', { hasText: `Emoji ${tag}` }).locator('.excerpt').textContent();
    expect(emoji!.isWellFormed(), `emoji excerpt ends in ${JSON.stringify(emoji!.slice(-3))}`).toBe(true);
    expect(emoji).not.toContain('\ufffd');
    // a flood of newlines before the words does not leave the excerpt blank
    await expect(list.locator('li', { hasText: `Newlines ${tag}` }).locator('.excerpt').textContent()).resolves.toMatch(/^My parcel is late/);
    // zalgo stays inside its own row: the rows above and below look the same with it hidden
    const rows = list.locator('li');
    const ids = await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-item-id')));
    const at = await list.locator('li', { hasText: `Zalgo ${tag}` }).evaluate((e) => [...e.parentElement!.children].indexOf(e));
    const around = [at - 1, at + 1].filter((i) => i >= 0 && i < ids.length).map((i) => rows.nth(i));
    expect(around.length).toBeGreaterThan(0);
    // the row's content, not its <li>: the <li>'s own border touches its neighbours, and at a
    // fractional position the pixel row they share changes with it
    expect(await paintsOver(rows.nth(at).locator('.item'), around), 'zalgo row paints over its neighbours').toBe(false);
    // ... and inside the item panel, it covers neither the facts nor the headings around its message
    await openItem(page, `Zalgo ${tag}`);
    const panel = page.getByTestId('item-panel');
    expect(await paintsOver(panel.locator('.thread li').first(), [panel.getByRole('heading', { name: 'Thread' }), panel.locator('.facts')]), 'zalgo message paints over the panel').toBe(false);
    expect(await paintsOver(panel.locator('h2'), [panel.locator('.facts')]), 'zalgo name paints over the facts').toBe(false);
    await actionsWork(page, 'zalgo');
    // the emoji message is there in full in the panel, cut nowhere
    await openItem(page, `Emoji ${tag}`);
    await panel.getByRole('button', { name: /^Show all/ }).click();
    await expect(panel.locator('.thread p').first().evaluate((p) => [...p.textContent!.matchAll(/😡/gu)].length)).resolves.toBe(5_000);
    // the customer page of the zalgo customer: its name paints over nothing
    await page.goto(`${app.url}/console/#/customers/${encodeURIComponent(z.id)}`);
    await page.locator('.thread li').first().waitFor();
    expect(await paintsOver(page.locator('h1'), [page.locator('.top'), page.locator('.grid')]), 'zalgo h1 paints over the page').toBe(false);
    await page.context().close();
  });

  it('keeps a right-to-left override in a name to the name: it reorders neither the text after it nor the Accept and Reject buttons', async () => {
    const tag = randomUUID().slice(0, 6);
    const a = await complaint(`Alice ${tag}`, 'My parcel is late and nobody answers. Terrible.');
    const b = await complaint(`${RLO}Eve ${tag} gnp.exe`, `${RLO}My parcel is late and nobody answers. Terrible.`);
    const { rows } = await db.query<{ id: string; customer_id: string }>(`SELECT id, customer_id FROM customer_identity WHERE customer_id = ANY($1::uuid[])`, [[a.uuid, b.uuid]]);
    const ia = rows.find((r) => r.customer_id === a.uuid)!.id;
    const ib = rows.find((r) => r.customer_id === b.uuid)!.id;
    // what the identity resolver leaves for a person it is not sure about
    await db.query(`INSERT INTO merge_suggestion (customer_a_id, customer_b_id, identity_a_id, identity_b_id, pair_key, score, reason) VALUES ($1, $2, $3, $4, $5, 3.5, 'similar name, same city')`, [a.uuid, b.uuid, ia, ib, `${ia}:${ib}`]);
    const { page } = await session('agent', `#/customers/${encodeURIComponent(a.id)}`);
    const line = page.locator('li', { hasText: 'Same person as' });
    await line.waitFor();
    const accept = (await line.getByRole('button', { name: 'Accept' }).boundingBox())!;
    const reject = (await line.getByRole('button', { name: 'Reject' }).boundingBox())!;
    expect(accept.x, 'Accept is left of Reject').toBeLessThan(reject.x);
    // the reason after the name reads left to right, after the name
    const order = await line.evaluate((li) => {
      const at = (text: string) => {
        const walker = document.createTreeWalker(li, NodeFilter.SHOW_TEXT);
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
          const i = n.textContent!.indexOf(text);
          if (i >= 0) {
            const r = document.createRange();
            r.setStart(n, i);
            r.setEnd(n, i + text.length);
            return r.getBoundingClientRect().left;
          }
        }
        return NaN;
      };
      return { same: at('Same person'), similar: at('similar'), city: at('city'), link: li.querySelector('a')!.getBoundingClientRect().left };
    });
    expect(order.same, JSON.stringify(order)).toBeLessThan(order.link);
    expect(order.link, JSON.stringify(order)).toBeLessThan(order.similar);
    expect(order.similar, JSON.stringify(order)).toBeLessThan(order.city);
    // in the queue, the row and the panel's title keep their order too
    await page.goto(`${app.url}/console/#/queue`);
    await openItem(page, 'Eve');
    const title = page.getByTestId('item-panel').getByRole('heading', { level: 2 });
    const t = await title.evaluate((h) => {
      const r = document.createRange();
      r.setStart(h.firstChild!, 0);
      r.setEnd(h.firstChild!, 'complaint'.length);
      return { word: r.getBoundingClientRect().left, h: h.getBoundingClientRect().left };
    });
    expect(t.word - t.h).toBeLessThan(2);
    await page.context().close();
  });

  it('shows markup, markdown, javascript: and data: URLs and control characters as text, to an agent and an analyst, and runs none of it', async () => {
    const tag = randomUUID().slice(0, 6);
    const text = `Terrible, awful, my parcel is late and nobody answers. ${MARKUP} ${MARKDOWN} ctl:\u0007\u001b[31mred\u001b[0m\u0008\u000b\u000c\u007f\u0085\u200b\ufeff:end`;
    const c = await complaint(`Markup ${tag} ${MARKUP}`.slice(0, 300), text, { url: `javascript:${FLAG}` }, { profileUrl: `data:text/html,<script>${FLAG}</script>` });
    await queued(c.id);
    for (const role of ['agent', 'analyst'] as const) {
      const { page, dialogs } = await session(role, role === 'agent' ? '#/queue' : `#/customers/${encodeURIComponent(c.id)}`);
      if (role === 'agent') {
        await openItem(page, `Markup ${tag}`);
        await page.getByTestId('item-panel').getByText('[click me](javascript:', { exact: false }).waitFor();
        await page.getByTestId('item-panel').getByText(/ctl:.*red.*:end/).waitFor();
        await page.getByRole('link', { name: 'open customer' }).click();
      }
      await page.locator('.thread li').first().getByText('[click me](javascript:', { exact: false }).waitFor();
      await page.goto(`${app.url}/console/#/departments`);
      await page.getByTestId('gap-kpis').waitFor();
      expect(dialogs, role).toEqual([]);
      await expect(ran(page), role).resolves.toEqual({ pwned: null, csp: [] });
      expect(await page.locator('a[href^="javascript:" i], a[href^="data:" i], img[src="x"], svg[onload], script:not([src])').count(), role).toBe(0);
      await page.context().close();
    }
  });

  it('answers quickly with 500 open items and a customer with 1,000 interactions and 50 topics', async () => {
    const tag = randomUUID().slice(0, 6);
    const words = Array.from({ length: 50 }, (_, i) => `zq${tag}w${i}`);
    for (const [i, w] of words.entries()) {
      await api('mutation($input: TopicInput!) { upsertTopic(input: $input) { job { id } } }', { input: { name: `t_${tag}_${i}`, label: `Topic ${i} ${tag}`, department: 'Logistics', phrases: [w] } });
    }
    const email = `busy-${tag}@example.com`;
    const base = Date.now() - 1_000 * 60_000;
    const lines = Array.from({ length: 1_000 }, (_, i) =>
      line(email, `Busy ${tag}`, i % 2 === 0 ? `My parcel ${i} is late and nobody answers. Terrible. ${words.join(' ')}` : `Thanks, parcel ${i} arrived fine. ${'😀'.repeat(50)}`, { occurredAt: new Date(base + i * 60_000).toISOString() }),
    );
    for (let i = 0; i < lines.length; i += 250) await ingest(lines.slice(i, i + 250));
    // and 500 other customers waiting for an answer
    await ingest(Array.from({ length: 500 }, (_, i) => line(`q${i}-${tag}@example.com`, `Waiting ${i} ${tag}`, `My parcel ${i} is late and nobody answers. Terrible.`)));
    try {
      const c = await customerOf(email);
      const count = await api<{ openItems: { totalCount: number } }>('{ openItems(first: 1) { totalCount } }');
      expect(count.openItems.totalCount).toBeGreaterThanOrEqual(501);

      const { page } = await session('agent', '#/queue');
      await page.getByTestId('queue-list').locator('li', { hasText: `Busy ${tag}` }).first().waitFor({ timeout: 20_000 });
      const q = await perf(page);
      console.info(`queue of ${count.openItems.totalCount}: ${JSON.stringify(q)}`);
      expect(q.firstItemMs!, 'time to first item').toBeLessThan(5_000);
      expect(q.longestTaskMs, 'longest task, queue').toBeLessThan(1_000);
      // the list holds the 50 most urgent and says so, rather than looking like the whole queue
      await expect(page.getByTestId('queue-list').locator('li').count()).resolves.toBe(50);
      await page.getByTestId('queue-shown').getByText(`Showing the 50 most urgent of ${count.openItems.totalCount}`).waitFor();
      await openItem(page, `Busy ${tag}`);
      await actionsWork(page, 'busy');
      await page.getByRole('link', { name: 'open customer' }).click();
      await page.locator('.thread li').nth(24).waitFor();
      await page.getByText(`t_${tag}_49`, { exact: false }).first().waitFor();
      expect(await overflow(page), 'customer page').toBeLessThanOrEqual(0);
      const cp = await perf(page);
      console.info(`customer with 1,000 interactions: ${JSON.stringify(cp)}`);
      expect(cp.longestTaskMs, 'longest task, customer page').toBeLessThan(1_000);
      void c;
      await page.context().close();
    } finally {
      // the other tests share this app's queue, which shows the 50 most urgent: these 501 items
      // are closed so that another test's item is not pushed out of it, whatever the order
      await db.query(
        `UPDATE listening_item SET status = 'closed', closed_at = now(), close_reason = 'test done'
          WHERE status <> 'closed' AND customer_id IN (SELECT customer_id FROM customer_identity WHERE kind = 'email' AND value LIKE $1)`,
        [`%-${tag}@example.com`],
      );
    }
  }, 180_000);
});

import { randomBytes, randomUUID } from 'node:crypto';
import type net from 'node:net';
import type { Browser, Page, WebSocket as PwWebSocket } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gqlData, ingestAll } from '../support/api-calls';
import { startTestApp, type TestApp } from '../support/app';
import { launchChromium } from '../support/browser';
import { spawnEarshot, type EarshotProcess } from '../support/earshot-process';
import { servicePort } from '../support/ports';
import { TcpProxy } from '../support/tcp-proxy';

const KEYS = { admin: 'reconnect-admin-key-001', agent: 'reconnect-agent-key-001', svc: 'reconnect-svc-key-00001' };
const ENV = { EARSHOT_ROLES: 'api,ingest', EARSHOT_API_KEYS: `${KEYS.admin}:admin:root,${KEYS.agent}:agent:alice,${KEYS.svc}:service` };

/** Letters only: an agent does not see a name that reads as a phone number. */
const nameTag = () => Array.from(randomBytes(8), (b) => String.fromCharCode(97 + (b % 26))).join('');

/**
 * A relay that can also go silent the way a dead Wi-Fi, a sleeping laptop or a NAT that forgot
 * the connection does: `freezeWebSockets()` stops copying the open WebSocket connections and
 * passes on neither their close nor a reset, so the browser's socket looks open and hears
 * nothing. New connections (and plain HTTP) are relayed as before.
 */
class FreezingProxy extends TcpProxy {
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket; ws: boolean }>();
  private held: [net.Socket, net.Socket][] | null = null;
  readonly frozen: net.Socket[] = [];

  protected override relay(client: net.Socket, upstream: net.Socket): void {
    if (this.held) {
      this.held.push([client, upstream]);
      return;
    }
    const pair = { client, upstream, ws: false };
    this.pairs.add(pair);
    client.once('data', (chunk: Buffer) => (pair.ws = /^upgrade:\s*websocket/im.test(chunk.toString('latin1'))));
    client.once('close', () => this.pairs.delete(pair));
    super.relay(client, upstream);
  }

  freezeWebSockets(): number {
    let frozen = 0;
    for (const p of this.pairs) {
      if (!p.ws || p.client.destroyed) continue;
      p.client.unpipe(p.upstream);
      p.upstream.unpipe(p.client);
      p.client.removeAllListeners('close');
      p.upstream.removeAllListeners('close');
      this.pairs.delete(p);
      this.frozen.push(p.client, p.upstream);
      frozen++;
    }
    return frozen;
  }

  /** What a load balancer's idle timeout does: resets the open connections; new ones are accepted but held (not answered) until `release()`. */
  resetAndHold(): void {
    this.held = [];
    for (const p of this.pairs) p.client.resetAndDestroy();
  }

  heldCount(): number {
    return this.held?.length ?? 0;
  }

  release(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const [client, upstream] of held) this.relay(client, upstream);
  }
}

/** Records, on the page, when each WebSocket was made and when it closed (on the page's clock, fake or not). */
const recordSockets = (page: Page) =>
  page.addInitScript(() => {
    const w = window as unknown as { __ws: { opened: number; closed: number | null }[] };
    w.__ws = [];
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        const entry = { opened: Date.now(), closed: null as number | null };
        w.__ws.push(entry);
        this.addEventListener('close', () => (entry.closed = Date.now()));
      }
    };
  });
const pageSockets = (page: Page) => page.evaluate(() => (window as unknown as { __ws: { opened: number; closed: number | null }[] }).__ws);
/** Seconds each attempt from the `from`-th on waited after the one before it closed. */
const waits = async (page: Page, from: number) => {
  const all = await pageSockets(page);
  return all.slice(from + 1).map((s, i) => (s.opened - all[from + i]!.closed!) / 1000);
};

/**
 * The queue an agent keeps open all day, on a network that drops: the WebSocket cut by a proxy,
 * the service restarted, a connection gone silent. What happened meanwhile (a new complaint,
 * an item closed by someone else) must be on screen once the page is connected again, with no
 * reload, and the page must say while it is not connected. Every wait is for the page.
 */
describe('the listening console across dropped connections', () => {
  let app: TestApp;
  let browser: Browser;

  const api = <T>(query: string, variables: Record<string, unknown> = {}) => gqlData<T>(app, KEYS.admin, query, variables);

  /** A new complaint from a new customer; resolves to its listening item's id once it is queued. */
  const complaint = async (name: string): Promise<string> => {
    const email = `c-${randomUUID()}@example.com`;
    await ingestAll(app, KEYS.svc, [
      { source: 'email', externalId: randomUUID(), occurredAt: new Date().toISOString(), direction: 'inbound', author: { email, displayName: name }, text: 'My parcel is late and nobody answers. Terrible.' },
    ]);
    const open = await api<{ openItems: { edges: { node: { id: string; customer: { displayName: string | null } | null } }[] } }>('{ openItems(first: 100) { edges { node { id customer { displayName } } } } }');
    const item = open.openItems.edges.find((e) => e.node.customer?.displayName === name);
    expect(item, `no open item for ${name}`).toBeDefined();
    return item!.node.id;
  };
  const close = (id: string) => api('mutation($id: ID!) { closeItem(id: $id, reason: "answered by phone") { id status } }', { id });

  /** A fresh session signed in as an agent on the queue, with the WebSockets it opens recorded (at what time, and which got an ack). */
  const signIn = async (base: string): Promise<{ page: Page; sockets: { at: number; ws: PwWebSocket; acked: boolean }[] }> => {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    const sockets: { at: number; ws: PwWebSocket; acked: boolean }[] = [];
    page.on('websocket', (ws) => {
      const s = { at: Date.now(), ws, acked: false };
      sockets.push(s);
      ws.on('framereceived', (f) => {
        if (String(f.payload).includes('connection_ack')) s.acked = true;
      });
    });
    await recordSockets(page);
    await page.goto(`${base}/console/#/queue`);
    await page.getByRole('textbox', { name: 'API key' }).fill(KEYS.agent);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Console' }).waitFor();
    return { page, sockets };
  };

  const row = (page: Page, id: string) => page.locator(`[data-testid=queue-list] [data-item-id="${id}"]`);
  /** Waits for `cond` on the page, failing with what the queue showed instead. */
  const waitFor = async (page: Page, what: string, locator: ReturnType<Page['locator']>, state: 'visible' | 'detached', timeout = 30_000) => {
    await locator.waitFor({ state, timeout }).catch(async (e: Error) => {
      const shown = await page.locator('.queue').innerText().catch(() => '(no queue on the page)');
      throw new Error(`${what} within ${timeout / 1000} s; the page shows:\n${shown.slice(0, 1_500)}\n${e.message}`);
    });
  };
  const reconnecting = (page: Page) => page.getByTestId('live-status').filter({ hasText: /reconnecting/i });
  /** Resolves once `n` WebSockets have been opened and the last one is acknowledged (the subscription is live). */
  const connected = async (page: Page, sockets: { acked: boolean }[], n: number) => {
    await expect.poll(() => sockets.length >= n && sockets[sockets.length - 1]!.acked, { timeout: 60_000, interval: 100 }).toBe(true);
    await reconnecting(page).waitFor({ state: 'detached' });
  };

  beforeAll(async () => {
    app = await startTestApp(ENV, 'conreconnect');
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('says it is reconnecting while a proxy has cut the socket, backs off, and shows what changed meanwhile once back', async () => {
    const proxy = new TcpProxy('127.0.0.1', Number(new URL(app.url).port));
    await proxy.listen();
    try {
      const stays = `Stays ${nameTag()}`;
      const leaves = `Leaves ${nameTag()}`;
      const [staysId, leavesId] = [await complaint(stays), await complaint(leaves)];
      const { page, sockets } = await signIn(`http://127.0.0.1:${proxy.port}`);
      await waitFor(page, `${leaves} is not in the queue`, row(page, leavesId), 'visible');
      await connected(page, sockets, 1);

      await proxy.cut();
      const cutAt = sockets.length;
      await waitFor(page, 'no "reconnecting" state', reconnecting(page), 'visible');
      // while nothing answers, tries again, but not in a loop: three attempts, each at least 1 s after the last
      await expect.poll(() => sockets.length, { timeout: 60_000, interval: 100 }).toBeGreaterThanOrEqual(cutAt + 3);
      await expect.poll(async () => (await pageSockets(page)).slice(cutAt, cutAt + 2).every((s) => s.closed !== null)).toBe(true);
      for (const w of (await waits(page, cutAt - 1)).slice(0, 2)) expect(w).toBeGreaterThanOrEqual(1);

      // meanwhile another agent closes one item and a new complaint comes in
      const arrived = `Arrived ${nameTag()}`;
      const arrivedId = await complaint(arrived);
      await close(leavesId);

      const before = sockets.length;
      await proxy.restore();
      await connected(page, sockets, before + 1);
      await waitFor(page, `${arrived}, which came in while the socket was cut, is not in the queue`, row(page, arrivedId), 'visible');
      await waitFor(page, `${leaves}, closed while the socket was cut, is still in the queue`, row(page, leavesId), 'detached');
      await expect(row(page, staysId).count()).resolves.toBe(1);
      await page.context().close();
    } finally {
      await proxy.cut();
    }
  }, 150_000);

  it('catches up after a socket reset by an idle timeout whose reconnection succeeds (no error in between)', async () => {
    const proxy = new FreezingProxy('127.0.0.1', Number(new URL(app.url).port));
    await proxy.listen();
    try {
      const leaves = `Leaves ${nameTag()}`;
      const leavesId = await complaint(leaves);
      const { page, sockets } = await signIn(`http://127.0.0.1:${proxy.port}`);
      await waitFor(page, `${leaves} is not in the queue`, row(page, leavesId), 'visible');
      await connected(page, sockets, 1);

      const before = sockets.length;
      proxy.resetAndHold();
      await waitFor(page, 'no "reconnecting" state', reconnecting(page), 'visible');
      // the page's next attempt is on its way, held by the proxy, while things change
      await expect.poll(() => sockets.length, { timeout: 60_000, interval: 100 }).toBe(before + 1);
      const arrived = `Arrived ${nameTag()}`;
      const arrivedId = await complaint(arrived);
      await close(leavesId);
      proxy.release();
      await connected(page, sockets, before + 1);
      // before: the socket came back without an error and nothing was asked again: stale until the next event
      await waitFor(page, `${arrived}, which came in while the socket was down, is not in the queue`, row(page, arrivedId), 'visible');
      await waitFor(page, `${leaves}, closed while the socket was down, is still in the queue`, row(page, leavesId), 'detached');
      await page.context().close();
    } finally {
      proxy.release();
      await proxy.cut();
    }
  }, 120_000);

  it('reconnects to a restarted service on the same port and shows what changed while it was down', async () => {
    const port = servicePort();
    const spawn = () => spawnEarshot({ DATABASE_URL: app.database.url, ...ENV, PORT: String(port), LOG_LEVEL: 'info' });
    let earshot: EarshotProcess = spawn();
    try {
      const base = (await earshot.listening()).replace('localhost', '127.0.0.1');
      const leaves = `Leaves ${nameTag()}`;
      const leavesId = await complaint(leaves);
      const { page, sockets } = await signIn(base);
      await waitFor(page, `${leaves} is not in the queue`, row(page, leavesId), 'visible');
      await connected(page, sockets, 1);

      await earshot.kill('SIGTERM');
      const downAt = sockets.length;
      await waitFor(page, 'no "reconnecting" state', reconnecting(page), 'visible');
      // the other instance (the in-process app, same database) takes the changes meanwhile
      const arrived = `Arrived ${nameTag()}`;
      const arrivedId = await complaint(arrived);
      await close(leavesId);
      await expect.poll(() => sockets.length, { timeout: 60_000, interval: 100 }).toBeGreaterThanOrEqual(downAt + 2);
      await expect.poll(async () => (await pageSockets(page)).slice(downAt, downAt + 1).every((s) => s.closed !== null)).toBe(true);
      for (const w of (await waits(page, downAt - 1)).slice(0, 1)) expect(w).toBeGreaterThanOrEqual(1);

      earshot = spawn();
      await earshot.listening();
      await connected(page, sockets, downAt + 1);
      await waitFor(page, `${arrived}, which came in while the service was down, is not in the queue`, row(page, arrivedId), 'visible');
      await waitFor(page, `${leaves}, closed while the service was down, is still in the queue`, row(page, leavesId), 'detached');
      await page.context().close();
    } finally {
      await earshot.kill('SIGTERM');
    }
  }, 180_000);

  it('keeps trying at least every 33 s however long Earshot stays unreachable (the page clock is driven by the test)', async () => {
    const proxy = new TcpProxy('127.0.0.1', Number(new URL(app.url).port));
    await proxy.listen();
    try {
      const context = await browser.newContext();
      const page = await context.newPage();
      await recordSockets(page);
      await page.clock.install();
      await page.goto(`http://127.0.0.1:${proxy.port}/console/#/queue`);
      await page.getByRole('textbox', { name: 'API key' }).fill(KEYS.agent);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByTestId('open-count').filter({ hasText: /^\d+$/ }).waitFor();
      const sockets = () => pageSockets(page);
      await expect.poll(async () => (await sockets()).length, { timeout: 30_000 }).toBe(1);

      await proxy.cut();
      await expect.poll(async () => (await sockets())[0]!.closed, { timeout: 30_000 }).not.toBeNull();
      await page.clock.pauseAt(await page.evaluate(() => Date.now() + 100));
      // 15 minutes of the page's time, 5 s at a step; each attempt is refused at once (real time)
      for (let t = 0; t < 15 * 60 && (await sockets()).length < 12; t += 5) {
        const n = (await sockets()).length;
        await page.clock.runFor(5_000);
        const after = await sockets();
        if (after.length > n) await expect.poll(async () => (await sockets())[after.length - 1]!.closed, { timeout: 30_000 }).not.toBeNull();
      }
      const all = await sockets();
      const waited = await waits(page, 0);
      // before: one refused attempt ended the subscription (then 5 s polling for good); and graphql-ws's own wait doubled without a bound
      expect(all.length, `attempts after waits of ${waited.join(', ')} s`).toBeGreaterThanOrEqual(12);
      for (const w of waited) expect(w).toBeGreaterThanOrEqual(1);
      for (const w of waited) expect(w).toBeLessThanOrEqual(33);
      await context.close();
    } finally {
      await proxy.cut();
    }
  }, 150_000);

  it('notices a connection that went silent (no close, no reset) and catches up', async () => {
    const proxy = new FreezingProxy('127.0.0.1', Number(new URL(app.url).port));
    await proxy.listen();
    try {
      const { page, sockets } = await signIn(`http://127.0.0.1:${proxy.port}`);
      await page.getByTestId('open-count').filter({ hasText: /^\d+$/ }).waitFor();
      await connected(page, sockets, 1);

      expect(proxy.freezeWebSockets()).toBe(1);
      const arrived = `Arrived ${nameTag()}`;
      const arrivedId = await complaint(arrived);
      // before: never, the page waited on a socket that would hear nothing again
      await waitFor(page, `${arrived}, which came in after the connection went silent, is not in the queue`, row(page, arrivedId), 'visible', 90_000);
      expect(sockets.length).toBeGreaterThanOrEqual(2);
      await page.context().close();
    } finally {
      for (const s of proxy.frozen) s.destroy();
      await proxy.cut();
    }
  }, 150_000);
});

/**
 * npm run bench:console — the listening console's figures: time from navigation to the first
 * queue item on screen (a signed-in care desk opening /console/#/queue on the demo data, fresh
 * browser context each time, so nothing is cached), the browser's first contentful paint, and
 * the bundle's size gzipped. `--json` prints one JSON object as the last line.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { CONSOLE_DIR } from '../../src/http/console.static';
import { launchChromium } from '../support/browser';
import { spawnEarshot } from '../support/earshot-process';
import { createTestDatabase, findTestPostgres, TEST_PG_ENV } from '../support/postgres';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const KEY = 'bench-console-agent-key-0001';

function bundleSizes(): { files: number; rawBytes: number; gzipBytes: number } {
  const files: string[] = [path.join(CONSOLE_DIR, 'index.html')];
  for (const f of readdirSync(path.join(CONSOLE_DIR, 'assets'))) files.push(path.join(CONSOLE_DIR, 'assets', f));
  let rawBytes = 0;
  let gzipBytes = 0;
  for (const f of files) {
    const data = readFileSync(f);
    rawBytes += data.length;
    gzipBytes += gzipSync(data, { level: 9 }).length;
  }
  return { files: files.length, rawBytes, gzipBytes };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const admin = await findTestPostgres();
  if (!admin) throw new Error('bench:console needs a PostgreSQL server (TEST_DATABASE_URL or 127.0.0.1:5432)');
  process.env[TEST_PG_ENV] = admin;
  const database = await createTestDatabase('benchconsole');
  const earshot = spawnEarshot({ DATABASE_URL: database.url, EARSHOT_ROLES: 'api,ingest', EARSHOT_API_KEYS: `${KEY}:agent:bench`, LOG_LEVEL: 'info' }, { args: ['demo'] });
  const browser = await launchChromium();
  try {
    const base = (await earshot.listening()).replace('localhost', '127.0.0.1');
    const queueMs: number[] = [];
    const fcpMs: number[] = [];
    let items = 0;
    for (let i = 0; i < RUNS + 1; i++) {
      const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
      // signed in already, as a desk returning to the tab: the figure is the queue, not the login form
      await context.addInitScript({ content: `sessionStorage.setItem('earshot.console.credentials', ${JSON.stringify(JSON.stringify({ kind: 'key', value: KEY }))})` });
      const page = await context.newPage();
      await page.goto(`${base}/console/#/queue`);
      await page.locator('[data-testid=queue-list] li').first().waitFor();
      const t = await page.evaluate(() => ({
        queue: performance.now(),
        fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
      }));
      const shown = await page.locator('[data-testid=queue-list] li').count();
      // the first run warms the server's caches and the database; it is not counted
      if (i > 0) {
        queueMs.push(t.queue);
        fcpMs.push(t.fcp);
      }
      items = shown;
      await context.close();
    }
    queueMs.sort((a, b) => a - b);
    fcpMs.sort((a, b) => a - b);
    const size = bundleSizes();
    const result = {
      runs: RUNS,
      queueItemsShown: items,
      queueFirstItemMsP50: Math.round(pct(queueMs, 50)),
      queueFirstItemMsP90: Math.round(pct(queueMs, 90)),
      firstContentfulPaintMsP50: Math.round(pct(fcpMs, 50)),
      bundleFiles: size.files,
      bundleRawBytes: size.rawBytes,
      bundleGzipBytes: size.gzipBytes,
    };
    console.log(`console: queue with ${items} items on screen after p50 ${result.queueFirstItemMsP50} ms, p90 ${result.queueFirstItemMsP90} ms (${RUNS} cold page loads); first contentful paint p50 ${result.firstContentfulPaintMsP50} ms`);
    console.log(`bundle: ${size.files} files, ${(size.rawBytes / 1024).toFixed(1)} kB, ${(size.gzipBytes / 1024).toFixed(1)} kB gzipped (target < 500 kB)`);
    if (json) console.log(JSON.stringify(result));
  } finally {
    await browser.close();
    await earshot.kill('SIGTERM');
    await database.drop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

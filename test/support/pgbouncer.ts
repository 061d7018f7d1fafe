import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { servicePort } from './ports';

export type PoolMode = 'session' | 'transaction' | 'statement';

export interface PgBouncer {
  /** `target` with its host and port replaced by the pooler's */
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** Debian's package installs it in /usr/sbin, which is not on every user's PATH. */
function pgbouncerBinary(): string {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/usr/bin']) {
    const candidate = path.join(dir, 'pgbouncer');
    if (dir && existsSync(candidate)) return candidate;
  }
  throw new Error('pgbouncer is not installed: `apt-get install pgbouncer` (.ci/run installs it)');
}

/**
 * A PgBouncer process of its own in `mode`, in front of the PostgreSQL server of `target` (a
 * database URL), on a free port, with its ini and user list in a temporary folder; clients are
 * trusted, the server is reached with `target`'s user and password. Runs in the foreground as a
 * child of the test (never as the machine's service) and logs to stderr; stop() ends it.
 */
export async function startPgBouncer(target: string, mode: PoolMode): Promise<PgBouncer> {
  const binary = pgbouncerBinary();
  const t = new URL(target);
  const user = decodeURIComponent(t.username || 'postgres');
  const password = decodeURIComponent(t.password);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'earshot-pgbouncer-'));
  // as root, pgbouncer refuses to run unless told a user (-u): that user must read the files
  chmodSync(dir, 0o755);
  const userlist = path.join(dir, 'userlist.txt');
  writeFileSync(userlist, `"${user}" ""\n`, { mode: 0o644 });
  let lastOutput = '';
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = servicePort();
    const ini = path.join(dir, 'pgbouncer.ini');
    writeFileSync(
      ini,
      [
        '[databases]',
        `* = host=${t.hostname} port=${t.port || 5432} user=${user}${password ? ` password=${password}` : ''}`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        'auth_type = trust',
        `auth_file = ${userlist}`,
        `pool_mode = ${mode}`,
        'default_pool_size = 60',
        'max_client_conn = 500',
        '',
      ].join('\n'),
      { mode: 0o644 },
    );
    const args = process.getuid?.() === 0 ? ['-u', 'nobody', ini] : [ini];
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const up = await new Promise<boolean>((resolve) => {
      let out = '';
      child.stderr!.on('data', (c: Buffer) => {
        out += c.toString();
        lastOutput = out;
        if (/process up/.test(out)) resolve(true);
      });
      child.once('exit', () => resolve(false));
    });
    if (up) {
      const url = new URL(target);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      return { url: url.toString(), port, stop: () => stopChild(child, dir) };
    }
    // most likely the random port was taken: another one
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`pgbouncer did not start:\n${lastOutput}`);
}

async function stopChild(child: ChildProcess, dir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
}

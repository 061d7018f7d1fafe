import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, REPO_ROOT } from '../support/postgres';

// The compiled CLI, as an operator starts it. EARSHOT_TEST_MAIN points at another build (used to
// check that these tests fail on the code before the fix).
const MAIN = process.env.EARSHOT_TEST_MAIN ?? path.join(REPO_ROOT, 'dist/src/main.js');

function serve(env: Record<string, string>): Promise<{ code: number | null; out: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, 'serve'], { cwd: path.resolve(MAIN, '../../..'), stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env } });
  let out = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    // A build that starts in spite of the bad variable logs: it is stopped at its first line, not left running.
    if (out === '') child.kill('SIGTERM');
    out += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out, stderr })));
}

describe('earshot serve with a bad variable', () => {
  it('exits 2 with one line naming the variable, the value and what is expected', async () => {
    const r = await serve({ PORT: '30s' });
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.stderr).toBe('earshot: invalid configuration: PORT="30s": expected an integer from 0 to 65535\n');
  });

  it('names a quoted secret in one line without its value', async () => {
    const secret = 'hunter2-'.repeat(5);
    const r = await serve({ EARSHOT_JWT_SECRET: `'${secret}'` });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("earshot: invalid configuration: EARSHOT_JWT_SECRET: the value is wrapped in quotes ('…'), which would be part of it; write it without them\n");
    expect(r.stderr).not.toContain('hunter2');
  });

  it('gives a line per bad variable, and the typo that explains them', async () => {
    const r = await serve({ NODE_ENV: 'production', EARSHOT_API_KEY: 'k-0123456789abcdef:admin', KAFKA_BROKERS: 'kafka' });
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')).toEqual([
      'earshot: invalid configuration: NODE_ENV=production requires authentication: set EARSHOT_API_KEYS, EARSHOT_JWT_SECRET or EARSHOT_JWKS_URL',
      'earshot: invalid configuration: KAFKA_BROKERS: "kafka" is not host:port',
      'earshot: note: EARSHOT_API_KEY is not a variable Earshot knows; did you mean EARSHOT_API_KEYS?',
      '',
    ]);
    expect(r.stderr).not.toContain('0123456789');
  });
});

/** The CLI run to its end, or stopped after `limitMs` (`stayed`): a start that fails must end the process. */
function run(args: string[], env: Record<string, string>, limitMs = 30_000): Promise<{ code: number | null; stayed: boolean; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: path.resolve(MAIN, '../../..'), stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env } });
  let stdout = '';
  let stderr = '';
  let stayed = false;
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const limit = setTimeout(() => {
    stayed = true;
    child.kill('SIGKILL');
  }, limitMs);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(limit);
      resolve({ code, stayed, stdout, stderr });
    }),
  );
}

describe('earshot with what an unlucky operator sets', () => {
  // each was `earshot: Error: getaddrinfo ENOTFOUND …` and a stack line, exit 1
  it.each([
    ['localhost:4000', 'a host name or address only; the port goes in PORT'],
    ['[::1]', 'write the IPv6 address without brackets (::1)'],
    ['http://0.0.0.0', 'a host name or address only, without a scheme'],
  ])('HOST=%s: exits 2 with one line saying what HOST takes', async (host, says) => {
    const r = await run(['serve'], { HOST: host, PORT: '0' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`earshot: invalid configuration: HOST=${JSON.stringify(host)}: ${says}\n`);
  });

  // TypeORM decodes the password itself: "URI malformed", exit 1, at every start
  it('a bare % in the DATABASE_URL password: exits 2 saying to write it %25, without the password', async () => {
    const r = await run(['migrate'], { DATABASE_URL: 'postgres://earshot:50%off-hunter2@127.0.0.1:1/earshot', DATABASE_START_WAIT_MS: '0' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('earshot: invalid configuration: DATABASE_URL: the user name or password holds a % that starts no percent-encoded character: write % as %25 (and # as %23, / as %2F, ? as %3F, @ as %40)\n');
  });

  // node-postgres read sslmode=requre as SSL with full verification: "The server does not support SSL connections"
  it('an sslmode node-postgres does not know: exits 2 naming the modes', async () => {
    const r = await run(['migrate'], { DATABASE_URL: 'postgres://earshot@127.0.0.1:1/earshot?sslmode=requre', DATABASE_START_WAIT_MS: '0' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('earshot: invalid configuration: DATABASE_URL: sslmode="requre": expected one of disable, prefer, require, verify-ca, verify-full, no-verify\n');
  });

  // parseArgs keeps the last value: the first customer named was not erased, and nothing said so
  it('erase with --email given twice: exits 2 before opening the database', async () => {
    const r = await run(['erase', '--email', 'ann@example.com', '--email', 'bob@example.com', '--reason', 'T-1'], { DATABASE_URL: 'postgres://earshot@127.0.0.1:1/earshot', DATABASE_START_WAIT_MS: '0' });
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('earshot: --email is given twice; give it once (erase takes one customer at a time)');
  });

  // The message came, then the background jobs it had started kept the process for ever
  it('a metrics port that is taken: one line, exit 1, and the process ends', async () => {
    const database = await createTestDatabase('cfgmetrics');
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const r = await run(['serve'], { DATABASE_URL: database.url, HOST: '127.0.0.1', PORT: '0', EARSHOT_METRICS_PORT: String(port), LOG_LEVEL: 'silent' }, 45_000);
      expect(r.stayed, 'still running 45 s after its start failed').toBe(false);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`earshot: cannot listen on 127.0.0.1:${port} (the port is taken): stop what uses it, or choose another PORT or HOST (EARSHOT_METRICS_PORT for the metrics listener)\n`);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
      await database.drop();
    }
  }, 90_000);
});

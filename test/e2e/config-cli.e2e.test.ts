import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { selfSignedCertificate, startFakeTlsPostgres, TLS_ACCEPTED } from '../support/fake-pg-tls';
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

/**
 * The CLI run to its end, or stopped after `limitMs` (`stayed`): a start that fails must end the
 * process. `afterStderrMs`: from its first output on stderr to its exit.
 */
function run(args: string[], env: Record<string, string>, limitMs = 30_000): Promise<{ code: number | null; stayed: boolean; stdout: string; stderr: string; afterStderrMs: number | null }> {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: path.resolve(MAIN, '../../..'), stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env } });
  let stdout = '';
  let stderr = '';
  let stayed = false;
  let stderrAt: number | null = null;
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => {
    stderrAt ??= performance.now();
    stderr += c.toString();
  });
  const limit = setTimeout(() => {
    stayed = true;
    child.kill('SIGKILL');
  }, limitMs);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(limit);
      resolve({ code, stayed, stdout, stderr, afterStderrMs: stderrAt === null ? null : performance.now() - stderrAt });
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

  // The message came, then the background jobs it had started kept the process for ever; then a
  // forced exit a second after the message hid what the failed start had left running. startApp
  // now closes it (test/integration/start-failure-cleanup.test.ts) and nothing forces the exit.
  it('a metrics port that is taken: one line, exit 1, and the process ends by itself', async () => {
    const database = await createTestDatabase('cfgmetrics');
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const r = await run(['serve'], { DATABASE_URL: database.url, HOST: '127.0.0.1', PORT: '0', EARSHOT_METRICS_PORT: String(port), LOG_LEVEL: 'silent' }, 45_000);
      expect(r.stayed, 'still running 45 s after its start failed').toBe(false);
      expect(r.code).toBe(1);
      expect(r.afterStderrMs, 'ms from its message to its exit').toBeLessThan(5_000);
      expect(r.stderr).toBe(`earshot: cannot listen on 127.0.0.1:${port} (the port is taken): stop what uses it, or choose another PORT or HOST (EARSHOT_METRICS_PORT for the metrics listener)\n`);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
      await database.drop();
    }
  }, 90_000);
});

describe('earshot with tracing, token and database settings it did not follow', () => {
  const NO_DB = { DATABASE_URL: 'postgres://earshot@127.0.0.1:1/earshot', DATABASE_START_WAIT_MS: '0' };

  // read as OTLP: the spans went to a collector nobody had named
  it('OTEL_TRACES_EXPORTER=zipkin: exits 2 naming the exporters Earshot has', async () => {
    const r = await run(['migrate'], { ...NO_DB, OTEL_TRACES_EXPORTER: 'zipkin' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('earshot: invalid configuration: OTEL_TRACES_EXPORTER="zipkin": expected one of none, otlp, console (one exporter, in any case): Earshot has no other\n');
  });

  // "a,b" was one audience named "a,b"; an empty entry is refused, not skipped
  it('EARSHOT_JWT_AUDIENCE with an empty entry: exits 2 in one line', async () => {
    const r = await run(['migrate'], { ...NO_DB, EARSHOT_JWT_SECRET: 'a-test-secret-of-at-least-32-characters', EARSHOT_JWT_AUDIENCE: 'api://earshot,,https://earshot.example.com' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('earshot: invalid configuration: EARSHOT_JWT_AUDIENCE="api://earshot,,https://earshot.example.com": expected one audience or a comma-separated list of them, with no empty entry\n');
  });

  // was `earshot: Error: ENOENT: no such file or directory, open '…'` and a stack, exit 1
  it('an sslrootcert that cannot be read: exits 2 in one line naming the file', async () => {
    const r = await run(['migrate'], { ...NO_DB, DATABASE_URL: 'postgres://earshot:hunter2@127.0.0.1:1/earshot?sslmode=verify-full&sslrootcert=/nonexistent/earshot-ca.pem' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('earshot: invalid configuration: DATABASE_URL: sslrootcert="/nonexistent/earshot-ca.pem": cannot read the file (no such file)\n');
    expect(r.stderr).not.toContain('hunter2');
  });

  // node-postgres did not read connect_timeout: an attempt waited its own 10 s
  it('connect_timeout=1 to a server that never answers: the attempt ends after 1 s, said in one line', async () => {
    const attempts: { openedAt: number; closedAt: number | null }[] = [];
    const silent = net.createServer((socket) => {
      const a = { openedAt: performance.now(), closedAt: null as number | null };
      attempts.push(a);
      socket.on('error', () => undefined);
      socket.on('close', () => (a.closedAt = performance.now()));
      // read (and ignore) the startup message: the client's hang-up is seen only past it
      socket.resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const r = await run(['migrate'], { DATABASE_URL: `postgres://earshot@127.0.0.1:${port}/earshot?connect_timeout=1`, DATABASE_START_WAIT_MS: '0' });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`earshot: cannot open the database at 127.0.0.1:${port}/earshot (DATABASE_URL): no answer within 1 s (connect_timeout in DATABASE_URL)\n`);
      expect(attempts).toHaveLength(1);
      const ms = attempts[0]!.closedAt! - attempts[0]!.openedAt;
      expect(ms, 'the attempt lasted (ms)').toBeGreaterThanOrEqual(900);
      expect(ms, 'the attempt lasted (ms)').toBeLessThan(3_000);
    } finally {
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  // node-postgres printed a multi-line SECURITY WARNING about sslmode at every start, and then
  // checked the certificate in full: "self-signed certificate"
  it('sslmode=require: no warning, and the connection is encrypted without checking the certificate', async () => {
    const cert = selfSignedCertificate('DNS:elsewhere.example');
    const server = await startFakeTlsPostgres(cert);
    try {
      const r = await run(['migrate'], { DATABASE_URL: `postgres://earshot@127.0.0.1:${server.port}/earshot?sslmode=require`, DATABASE_START_WAIT_MS: '0' });
      expect(r.stderr).not.toContain('SECURITY WARNING');
      expect(r.stderr).toBe(`earshot: cannot open the database at 127.0.0.1:${server.port}/earshot (DATABASE_URL): ${TLS_ACCEPTED}\n`);
      expect(r.code).toBe(1);
    } finally {
      await server.close();
      cert.remove();
    }
  });
});

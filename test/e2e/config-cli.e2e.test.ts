import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/postgres';

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

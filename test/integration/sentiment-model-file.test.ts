// The service refuses to start without usable model weights: a missing or corrupt file is named
// at start with the way to rebuild it, and the process exits non-zero before it listens.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/postgres';
import { spawnEarshot } from '../support/earshot-process';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-model-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function bogusFiles(): [string, string][] {
  const missing = path.join(dir, `missing-${process.pid}-${Math.random().toString(36).slice(2)}.bin.gz`);
  const garbage = path.join(dir, `garbage-${Math.random().toString(36).slice(2)}.bin.gz`);
  fs.writeFileSync(garbage, Buffer.from('this is not a gzip file at all'));
  // Valid gzip, right magic, weights cut short: a truncated download.
  const real = zlib.gunzipSync(fs.readFileSync(path.join(REPO_ROOT, 'models', fs.readdirSync(path.join(REPO_ROOT, 'models')).find((f) => f.endsWith('.bin.gz'))!)));
  const truncated = path.join(dir, `truncated-${Math.random().toString(36).slice(2)}.bin.gz`);
  fs.writeFileSync(truncated, zlib.gzipSync(real.subarray(0, real.length - 1000)));
  // Valid gzip of a whole file whose weights were altered: the header's sha256 no longer matches.
  const altered = Buffer.from(real);
  altered[altered.length - 7] ^= 0x55;
  const tampered = path.join(dir, `tampered-${Math.random().toString(36).slice(2)}.bin.gz`);
  fs.writeFileSync(tampered, zlib.gzipSync(altered));
  return [
    ['missing', missing],
    ['not gzip', garbage],
    ['truncated', truncated],
    ['tampered', tampered],
  ];
}

describe('a missing or corrupt sentiment model', () => {
  it.each(bogusFiles())('serve exits non-zero at start, naming the file and npm run train (%s)', async (_kind, file) => {
    const p = spawnEarshot({ EARSHOT_SENTIMENT_MODEL_FILE: file, EARSHOT_ROLES: 'api,ingest' });
    const code = await p.exited;
    expect(code).toBe(1);
    const out = p.output();
    expect(out).toContain(`sentiment model ${file}`);
    expect(out).toContain('npm run train');
    // It stopped before anything started: no HTTP, no database.
    expect(out).not.toContain('"httpUrl"');
    expect(out).not.toMatch(/at .*\.js:\d+/);
  });

  it('earshot analyze refuses too, before reading any input', async () => {
    const [, file] = bogusFiles()[0]!;
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist', 'src', 'main.js'), 'analyze'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', EARSHOT_SENTIMENT_MODEL_FILE: file },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.stdin.end('the parcel never arrived\n');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(out).toContain(`sentiment model ${file}: file not found`);
    expect(out).toContain('npm run train');
  });

  it('the committed model given explicitly starts as usual (analyze answers)', async () => {
    const models = path.join(REPO_ROOT, 'models');
    const file = path.join(models, fs.readdirSync(models).find((f) => f.endsWith('.bin.gz'))!);
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist', 'src', 'main.js'), 'analyze'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', EARSHOT_SENTIMENT_MODEL_FILE: file },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stdin.end('the parcel never arrived\n');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    expect(JSON.parse(out.trim().split('\n')[0]!)).toMatchObject({ label: expect.any(String), model: expect.any(String) });
  });
});

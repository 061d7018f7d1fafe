import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/postgres';

/** Runs the compiled CLI with `input` on stdin; resolves with its stdout lines and exit code. */
function run(args: string[], input = ''): Promise<{ code: number | null; lines: string[]; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist/src/main.js'), ...args], { cwd: REPO_ROOT });
    let out = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, lines: out.split('\n').filter(Boolean), stderr }));
    child.stdin.end(input);
  });
}

describe('earshot analyze', () => {
  it('writes one JSON object per input line, in order, empty lines included', async () => {
    const r = await run(['analyze'], 'I love it!\n\nMy refund never arrived, awful.\n');
    expect(r.code).toBe(0);
    expect(r.lines).toHaveLength(3);
    const [a, b, c] = r.lines.map((l) => JSON.parse(l));
    expect(a).toMatchObject({ label: 'positive', intent: 'praise' });
    expect(b).toMatchObject({ label: 'neutral', score: 0 });
    expect(c).toMatchObject({ label: 'negative' });
    expect(c.topics).toContainEqual({ name: 'returns', department: expect.any(String) });
    for (const o of [a, b, c]) expect(Object.keys(o)).toEqual(expect.arrayContaining(['score', 'label', 'confidence', 'intent', 'lang', 'topics', 'explanation']));
  });

  it('reads JSON lines with --jsonl, reports a bad line without stopping, and exits 1 because a line failed', async () => {
    const r = await run(['analyze', '--jsonl'], '{"text":"great app"}\nnot json\n{"text":"Das ist schlecht","lang":"de"}\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('earshot: 1 of 3 input lines failed (their output lines carry "error")\n');
    const out = r.lines.map((l) => JSON.parse(l));
    expect(out[0].label).toBe('positive');
    expect(out[1].error).toBeDefined();
    expect(out[2]).toMatchObject({ lang: 'de', label: 'neutral' });
  });

  it('handles 100,000 lines in one run', async () => {
    const input = Array.from({ length: 100_000 }, (_, i) => (i % 2 ? `order ${i} arrived late, not happy` : `thanks for the quick reply #${i}`)).join('\n');
    const r = await run(['analyze'], `${input}\n`);
    expect(r.code).toBe(0);
    expect(r.lines).toHaveLength(100_000);
    expect(JSON.parse(r.lines[99_999]!).label).toBe('negative');
  }, 120_000);
});

describe('earshot resolve', () => {
  it('clusters CRM-style records and ignores nothing but soc_sec_id', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'earshot-resolve-'));
    const file = path.join(dir, 'contacts.csv');
    writeFileSync(file, [
      'Id,FirstName,LastName,Email,Phone,MailingStreet,MailingCity,MailingPostalCode,MailingState,Birthdate',
      '003A,Jane,Doe,jane.doe@example.com,+1 415 555 0100,1 Main St,Springfield,12345,IL,1980-02-03',
      '003B,Jane,Doe,Jane.Doe@Example.com,,,,,,',
      '003C,Robert,Smith,bob@example.org,,22 High St,Shelbyville,54321,IL,1975-07-08',
    ].join('\n'));
    const r = await run(['resolve', '--input', file]);
    expect(r.code).toBe(0);
    const out = r.lines.map((l) => JSON.parse(l));
    expect(out.map((o) => o.id)).toEqual(['003A', '003B', '003C']);
    expect(out[0].cluster).toBe(out[1].cluster);
    expect(out[2].cluster).not.toBe(out[0].cluster);
  });

  it('says what is missing when --input is not given', async () => {
    const r = await run(['resolve']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('resolve needs --input FILE.csv');
  });

  it('answers a missing, a malformed or a folder input with one line and exit code 2, no stack trace', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'earshot-resolve-'));
    const malformed = path.join(dir, 'broken.csv');
    writeFileSync(malformed, 'Id,FirstName\n"003A,Jane\n');
    const cases: [string, string][] = [
      [path.join(dir, 'missing.csv'), `earshot: ${path.join(dir, 'missing.csv')}: no such file\n`],
      [malformed, `earshot: ${malformed} is not valid CSV: Quote Not Closed`],
      [dir, `earshot: ${dir}: is a folder, not a CSV file\n`],
    ];
    for (const [input, message] of cases) {
      const r = await run(['resolve', '--input', input]);
      expect(r.code).toBe(2);
      expect(r.stderr.startsWith(message)).toBe(true);
      expect(r.stderr).toContain('Run `earshot help` for the commands and options.');
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.lines).toEqual([]);
    }
  });
});

describe('earshot user mistakes', () => {
  it.each([
    [['frobnicate'], 'earshot: unknown command "frobnicate"'],
    [['serve', '--nope'], "earshot: Unknown option '--nope'"],
    [['analyze', 'extra'], "earshot: Unexpected argument 'extra'"],
    [['resolve', '--input'], "earshot: Option '--input <value>' argument missing"],
  ])('%j: a one-line message, a usage hint and exit code 2', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]!.startsWith(message)).toBe(true);
    expect(lines[1]).toBe('Run `earshot help` for the commands and options.');
  });
});

describe('earshot on a Node.js older than 24', () => {
  const expectRefusal = (r: { code: number | null; stderr: string; lines: string[] }, version: string) => {
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`earshot: Node.js 24 or newer is required; this is Node.js ${version}`);
    expect(r.stderr).toContain('npx earshot <command>');
    expect(r.stderr).toContain('npm start');
    expect(r.stderr).not.toMatch(/TypeError|\n\s+at /);
    expect(r.lines).toEqual([]);
  };

  it('refuses before loading anything else, naming the commands that work', async () => {
    // Node 24 posing as Node 20: proves the check runs first, whatever else main.js requires.
    const r = await runWith(process.execPath, ['-e', `Object.defineProperty(process, 'version', { value: 'v20.20.2' }); require(${JSON.stringify(path.join(REPO_ROOT, 'dist/src/main.js'))})`]);
    expectRefusal(r, 'v20.20.2');
  });

  it('refuses on every older node found on PATH (e.g. a distribution\'s Node 20)', async () => {
    const older = olderNodesOnPath();
    for (const node of older) {
      const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
      expectRefusal(await runWith(node, [path.join(REPO_ROOT, 'dist/src/main.js'), 'analyze']), version);
    }
  });
});

/** `node` executables on PATH whose major version is below 24 (none on a machine with only Node 24). */
function olderNodesOnPath(): string[] {
  const found = new Set<string>();
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/bin', '/usr/local/bin'])) {
    const file = path.join(dir, 'node');
    if (!existsSync(file)) continue;
    const real = realpathSync(file);
    if (found.has(real) || real === realpathSync(process.execPath)) continue;
    try {
      const major = Number(/^v(\d+)/.exec(execFileSync(real, ['--version'], { encoding: 'utf8' }))?.[1]);
      if (major < 24) found.add(real);
    } catch {
      // not runnable: not a node we could be started with
    }
  }
  return [...found];
}

function runWith(node: string, args: string[]): Promise<{ code: number | null; lines: string[]; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(node, args, { cwd: REPO_ROOT });
    let out = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, lines: out.split('\n').filter(Boolean), stderr }));
    child.stdin.end();
  });
}

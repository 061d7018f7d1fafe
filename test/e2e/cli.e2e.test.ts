import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
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

  it('reads JSON lines with --jsonl and reports a bad line without stopping', async () => {
    const r = await run(['analyze', '--jsonl'], '{"text":"great app"}\nnot json\n{"text":"Das ist schlecht","lang":"de"}\n');
    expect(r.code).toBe(0);
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
});

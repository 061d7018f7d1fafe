import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Client } from 'pg';
import { createTestDatabase, REPO_ROOT } from '../support/postgres';

// The compiled CLI, as an operator runs it. EARSHOT_TEST_MAIN points these tests at another build
// (used to check that each test fails on the code before its fix).
const MAIN = process.env.EARSHOT_TEST_MAIN ?? path.join(REPO_ROOT, 'dist/src/main.js');
const ROOT = path.resolve(MAIN, '../../..');

interface Run {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; stderr: string }>;
}

function start(args: string[], stdio: ('pipe' | 'ignore' | number)[] = ['pipe', 'pipe', 'pipe']): Run {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, stdio, env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'silent' } });
  let out = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin?.on('error', () => undefined); // a child that exits before reading all of it
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, out, stderr })),
  );
  return { child, done };
}

async function run(args: string[], input = '') {
  const r = start(args);
  r.child.stdin!.end(input);
  return r.done;
}

/** Writes `total` characters of `ch` to the child's stdin in 1 MB chunks, honouring backpressure. */
async function pour(child: ChildProcess, ch: string, total: number): Promise<void> {
  const chunk = ch.repeat(1 << 20);
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!child.stdin!.write(chunk)) await new Promise((r) => child.stdin!.once('drain', r));
  }
}

/** Peak resident memory of a live process, in MB (Linux). */
function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

function expectUserMistake(r: { code: number | null; stderr: string; out: string }, message: string | RegExp) {
  expect(r.code).toBe(2);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(2);
  if (typeof message === 'string') expect(lines[0]).toBe(message);
  else expect(lines[0]).toMatch(message);
  expect(lines[1]).toBe('Run `earshot help` for the commands and options.');
  expect(r.out).toBe('');
}

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'earshot-cli-hostile-'));

describe('earshot analyze on hostile stdin', () => {
  it('answers a plain line of 450 MB in bounded memory and goes on with the next line', async () => {
    const r = start(['analyze']);
    r.child.stdin!.write('I love it\n');
    await pour(r.child, 'a', 450 << 20);
    r.child.stdin!.write('\nMy refund never arrived, awful.\n');
    // Peak memory while the process still lives (it held the whole line before: 1.2 GB, and took 36 s).
    const peak = peakRssMb(r.child.pid!);
    r.child.stdin!.end();
    const { code, out, stderr } = await r.done;
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    expect(lines[0].label).toBe('positive');
    expect(lines[1].explanation).toContainEqual({ token: '(only the first 100000 characters were scored)', weight: 0 });
    expect(lines[2].label).toBe('negative');
    expect(peak).toBeLessThan(600);
  }, 120_000);

  it('answers a --jsonl line longer than 16 Mi characters with an error line, not a 16 MB parse, and goes on', async () => {
    const r = start(['analyze', '--jsonl']);
    r.child.stdin!.write('{"text":"');
    await pour(r.child, 'a', 17 << 20);
    r.child.stdin!.end('"}\n{"text":"great app"}\n');
    const { code, out, stderr } = await r.done;
    const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toEqual({ error: 'line longer than 16777216 characters' });
    expect(lines[1].label).toBe('positive');
    expect(code).toBe(1);
    expect(stderr).toBe('earshot: 1 of 2 input lines failed (their output lines carry "error")\n');
  }, 60_000);

  it('reads a --jsonl file that starts with a UTF-8 BOM and has CRLF line ends', async () => {
    const r = await run(['analyze', '--jsonl'], '\uFEFF{"text":"I love it"}\r\n{"text":"awful, I want a refund"}\r\n');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(lines.map((l) => l.label)).toEqual(['positive', 'negative']);
  });

  it('stops without a word when its reader goes away (`earshot analyze < big | head -1`)', async () => {
    const r = start(['analyze']);
    // Far more output than a pipe holds, so writes are pending when the reader closes.
    const input = Array.from({ length: 200_000 }, (_, i) => `order ${i} arrived late, not happy`).join('\n');
    r.child.stdin!.end(input);
    await new Promise<void>((resolve) => r.child.stdout!.once('data', () => resolve()));
    r.child.stdout!.destroy();
    const { code, signal, stderr } = await r.done;
    expect(stderr).toBe('');
    expect(signal).toBeNull();
    expect(code).toBe(0);
  }, 60_000);

  it('says in one line, without a stack trace, that the output cannot be written (a full disk)', async () => {
    const full = openSync('/dev/full', 'w');
    try {
      const r = start(['analyze'], ['pipe', full, 'pipe']);
      r.child.stdin!.end('I love it\n');
      const { code, stderr } = await r.done;
      expect(code).toBe(1);
      expect(stderr).toBe('earshot: cannot write the output: ENOSPC: no space left on device, write\n');
    } finally {
      closeSync(full);
    }
  });
});

describe('earshot resolve on hostile CSV files', () => {
  it('refuses a repeated id with one line and exit code 2 (not a stack trace and 1)', async () => {
    const file = path.join(tmp(), 'dup.csv');
    writeFileSync(file, 'Id,FirstName,LastName\n1,Jane,Doe\n2,Bob,Smith\n1,Robert,Smith\n');
    expectUserMistake(await run(['resolve', '--input', file]), `earshot: ${file}: data row 3 repeats the id "1" of data row 1; ids must be unique`);
  });

  it('refuses a field over 8 MiB and an endless file (/dev/zero) as malformed, at once', async () => {
    const file = path.join(tmp(), 'big.csv');
    writeFileSync(file, `Id,FirstName\n1,"${'a'.repeat(9 << 20)}"\n`);
    for (const input of [file, '/dev/zero']) {
      const r = await run(['resolve', '--input', input]);
      expectUserMistake(r, new RegExp(`^earshot: ${input} is not valid CSV: Max Record Size: record exceed the maximum number of tolerated bytes of 8388608 at line \\d$`));
    }
  }, 60_000);

  it('refuses a quote inside a field (a stray quote, a binary file) with one short line and exit code 2, not a stack trace with the file in it', async () => {
    const dir = tmp();
    const stray = path.join(dir, 'stray.csv');
    writeFileSync(stray, 'Id,FirstName,LastName\n1,Jane,O"Brien\n2,Bob,Smith\n');
    expectUserMistake(
      await run(['resolve', '--input', stray]),
      `earshot: ${stray} is not valid CSV: Invalid Opening Quote: a quote is found on field "LastName" at line 2, value is "O"`,
    );
    // bytes as a binary file holds them: control characters, a quote in a long field
    const binary = path.join(dir, 'binary.csv');
    writeFileSync(binary, Buffer.concat([Buffer.from('Id,FirstName\n1,'), Buffer.from('\x1b[31m\x07'.repeat(2_000) + 'x"y'), Buffer.from('\n')]));
    const r = await run(['resolve', '--input', binary]);
    expectUserMistake(r, new RegExp(`^earshot: ${binary} is not valid CSV: Invalid Opening Quote: a quote is found on field "FirstName" at line 2, value is ".{1,41}…"$`));
    expect(r.stderr).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
    expect(r.stderr.length).toBeLessThan(400);
  });

  it('answers a path it cannot open (under a file, a name too long) with one line and exit code 2', async () => {
    const dir = tmp();
    const file = path.join(dir, 'contacts.csv');
    writeFileSync(file, 'Id,FirstName\n1,Jane\n');
    expectUserMistake(await run(['resolve', '--input', path.join(file, 'x.csv')]), `earshot: ${path.join(file, 'x.csv')}: cannot be read (ENOTDIR)`);
    const long = path.join(dir, 'a'.repeat(300));
    expectUserMistake(await run(['resolve', '--input', long]), `earshot: ${long}: cannot be read (ENAMETOOLONG)`);
  });

  it('refuses a file with no column it reads (no header row, or ; separators) instead of answering every record alone', async () => {
    const dir = tmp();
    const semicolons = path.join(dir, 'excel.csv');
    writeFileSync(semicolons, 'Id;FirstName;LastName;Email\n1;Jane;Doe;jane@example.com\n2;Jane;Doe;jane@example.com\n');
    expectUserMistake(
      await run(['resolve', '--input', semicolons]),
      `earshot: ${semicolons}: no column Earshot reads (Id, FirstName, LastName, Email, Phone, …) in the header row; values must be separated by commas, not semicolons`,
    );
    const headerless = path.join(dir, 'headerless.csv');
    writeFileSync(headerless, 'rec-1-org, jane, doe\nrec-1-dup-0, jane, doe\n');
    expectUserMistake(await run(['resolve', '--input', headerless]), `earshot: ${headerless}: no column Earshot reads (Id, FirstName, LastName, Email, Phone, …) in the header row`);
  });

  it('reads both columns of a header given twice (Email, Email): an empty second one no longer hides the first', async () => {
    const file = path.join(tmp(), 'two-emails.csv');
    writeFileSync(file, 'Id,FirstName,LastName,Email,Email\n003A,Jane,Doe,jane.doe@example.com,\n003B,Jane,Doe,,Jane.Doe@Example.com\n');
    const r = await run(['resolve', '--input', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [a, b] = r.out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(a.cluster).toBe(b.cluster);
  });

  it('still reads a CSV with a BOM, CRLF and quoted line breaks, and from a pipe (--input <(…))', async () => {
    const file = path.join(tmp(), 'crm.csv');
    writeFileSync(file, '\uFEFFId,FirstName,LastName,MailingStreet\r\n1,Jane,Doe,"1 Main St\r\nApt 2"\r\n2,Jane,Doe,"1 Main St\nApt 2"\r\n');
    const r = await run(['resolve', '--input', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.out.split('\n').filter(Boolean).map((l) => JSON.parse(l).id)).toEqual(['1', '2']);
    const fifo = path.join(tmp(), 'fifo.csv');
    execFileSync('mkfifo', [fifo]);
    const fromPipe = start(['resolve', '--input', fifo]);
    fromPipe.child.stdin!.end();
    await writeFile(fifo, readFileSync(file));
    expect((await fromPipe.done).out).toBe(r.out);
  });
});

describe('earshot options that belong to another command', () => {
  it.each([
    [['analyze', '--input', 'x.csv'], 'earshot: --input is not an option of analyze'],
    [['resolve', '--input', 'x.csv', '--jsonl'], 'earshot: --jsonl is not an option of resolve'],
    [['help', '--revert'], 'earshot: --revert is not an option of help'],
    [['emit-schema', '--load-only'], 'earshot: --load-only is not an option of emit-schema'],
  ])('%j is a user mistake, before anything runs', async (args, message) => {
    expectUserMistake(await run(args), message);
  });
});

/**
 * An operator points a one-shot command at the wrong database: one that another application
 * already uses, or one that does not exist. `serve` said so in one line; `migrate`, `erase` and
 * `demo --load-only` printed a stack trace (`QueryFailedError: relation "customer" already exists`
 * and ten `at …` lines), without saying which migration failed or what to do.
 */
describe('earshot one-shot commands on the wrong database', () => {
  async function runWith(env: Record<string, string>, args: string[]) {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'silent', ...env } });
    let out = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    return new Promise<{ code: number | null; out: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, out, stderr })));
  }

  it('migrate on a database that holds another application\'s tables names the migration and the table in one line, and changes none of its data', async () => {
    const db = await createTestDatabase('otherapp');
    const pg = new Client({ connectionString: db.url });
    await pg.connect();
    try {
      await pg.query(`CREATE TABLE customer (id int PRIMARY KEY, name text); INSERT INTO customer VALUES (1, 'a customer of another application')`);
      for (const args of [['migrate'], ['demo', '--load-only']]) {
        const r = await runWith({ DATABASE_URL: db.url, DATABASE_START_WAIT_MS: '0' }, args);
        expect(r.code).toBe(1);
        const lines = r.stderr.trimEnd().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^earshot: cannot open the database at .*: migration Initial\d+ failed: relation "customer" already exists — .*a database of its own; nothing of it was applied$/);
      }
      expect((await pg.query(`SELECT id, name FROM customer`)).rows).toEqual([{ id: 1, name: 'a customer of another application' }]);
      // the migration ran in a transaction: none of Earshot's tables is there
      expect((await pg.query(`SELECT to_regclass('interaction') AS t`)).rows[0].t).toBeNull();
    } finally {
      await pg.end();
      await db.drop();
    }
  });

  it.each([[['migrate']], [['erase', '--email', 'jane@example.com', '--reason', 'DSR-1']]])('%j on a database that does not exist says so in one line', async (args) => {
    const db = await createTestDatabase('gone');
    await db.drop();
    const r = await runWith({ DATABASE_URL: db.url, DATABASE_START_WAIT_MS: '0' }, args);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(new RegExp(`^earshot: cannot open the database at .*/${db.name} \\(DATABASE_URL\\): database "${db.name}" does not exist$`))]);
    expect(r.out).toBe('');
  });
});

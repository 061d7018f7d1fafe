import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { serviceNodeFlags } from '../../src/service-flags';
import { REPO_ROOT } from './postgres';

export interface EarshotProcess {
  child: ChildProcess;
  /** everything the process wrote to stdout and stderr so far (JSON log lines) */
  output(): string;
  /** resolves with the exit code or signal */
  exited: Promise<number | NodeJS.Signals>;
  kill(signal: NodeJS.Signals): Promise<number | NodeJS.Signals>;
  /** resolves with the base URL (http://localhost:PORT) once the "listening" log line is out */
  listening(timeoutMs?: number): Promise<string>;
  /** resolves with `http://localhost:PORT` as soon as HTTP listens (before the database and Kafka are ready) */
  httpUrl(timeoutMs?: number): Promise<string>;
}

/**
 * Runs the compiled service (`node dist/src/main.js serve`) as a child process with `env`
 * on top of a minimal environment, so a test can kill it like an orchestrator would.
 *
 * What must stay true: it runs what `npm start` runs (the compiled build, Node 24), so the
 * build must be current: run `npm run build` first.
 */
export function spawnEarshot(env: Record<string, string>, opts: { root?: string; args?: string[]; /** a process group of its own, as a terminal gives `npm start` */ detached?: boolean } = {}): EarshotProcess {
  const root = opts.root ?? REPO_ROOT;
  const main = path.join(root, 'dist', 'src', 'main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` before this test`);
  const child = spawn(process.execPath, [...serviceNodeFlags(env.EARSHOT_ROLES), main, ...(opts.args ?? ['serve'])], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
  });
  let out = '';
  const keep = (c: Buffer) => {
    out += c.toString('utf8');
    // The tail is what explains a failure; the head would only grow memory.
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | NodeJS.Signals>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code ?? -1)));
  return {
    child,
    output: () => out,
    exited,
    async httpUrl(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = /"httpUrl":"(http:\/\/localhost:\d+)"/.exec(out);
        if (m) return m[1]!;
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`earshot exited before listening:\n${out.slice(-3000)}`);
        if (Date.now() > deadline) throw new Error(`earshot did not listen within ${timeoutMs} ms:\n${out.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    listening(timeoutMs = 120_000) {
      const found = () => /"url":"(http:\/\/[^"]+)\/graphql"/.exec(out)?.[1] ?? null;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`no "listening" line within ${timeoutMs} ms:\n${out.slice(-4000)}`)), timeoutMs);
        const check = () => {
          const url = found();
          if (url) done(null, url);
        };
        const done = (err: Error | null, url?: string) => {
          clearTimeout(timer);
          child.stdout!.off('data', check);
          if (err) reject(err);
          else resolve(url!);
        };
        child.stdout!.on('data', check);
        void exited.then((code) => done(new Error(`earshot exited with ${code} before listening:\n${out.slice(-4000)}`)));
        check();
      });
    },
  };
}

/**
 * Runs one command of the compiled CLI to its end (`node dist/src/main.js ...args`) with `env` on
 * top of a minimal environment; resolves with its exit code and what it wrote to stdout and stderr.
 */
export function runEarshot(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const main = path.join(REPO_ROOT, 'dist', 'src', 'main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` before this test`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

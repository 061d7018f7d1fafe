import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NO_API_NODE_FLAGS, SERVICE_NODE_FLAGS, serviceNodeFlags } from './service-flags';

const ROOT = path.resolve(__dirname, '..');

/** The arguments docker/serve.sh gives node under EARSHOT_ROLES=`roles` (a stub node prints them). */
function serveArgs(roles: string | undefined): string[] {
  const bin = mkdtempSync(path.join(os.tmpdir(), 'earshot-node-stub-'));
  try {
    writeFileSync(path.join(bin, 'node'), '#!/bin/sh\nfor a in "$@"; do printf \'%s\\n\' "$a"; done\n');
    chmodSync(path.join(bin, 'node'), 0o755);
    const env: Record<string, string> = { PATH: `${bin}:/usr/bin:/bin` };
    if (roles !== undefined) env.EARSHOT_ROLES = roles;
    return execFileSync('sh', [path.join(ROOT, 'docker/serve.sh')], { cwd: ROOT, env, encoding: 'utf8' }).trim().split('\n');
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
}

describe('the service runs with its V8 flags', () => {
  it('npm start runs docker/serve.sh', () => {
    const start = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start!;
    expect(start).toMatch(/&& sh docker\/serve\.sh$/);
  });

  it('the container image copies docker/serve.sh and runs it', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'docker/Dockerfile'), 'utf8');
    expect(JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? 'null')).toEqual(['sh', 'docker/serve.sh']);
    expect(dockerfile).toContain('COPY --from=build /app/docker/serve.sh ./docker/serve.sh');
  });

  it('docker/serve.sh passes the flags of serviceNodeFlags for every EARSHOT_ROLES', () => {
    const values = [undefined, '', 'api', 'ingest', 'sync', 'ingest,sync', ' ingest , sync ', 'api,ingest,sync', 'ingest,api', 'sync,api,ingest'];
    // blanks the config trims away: tabs, and the \r of an env file saved with CRLF
    values.push('ingest,api\r', '\tapi\t,ingest', 'ingest\r', 'ingest,\napi');
    for (const roles of values) {
      expect(serveArgs(roles), `EARSHOT_ROLES=${JSON.stringify(roles)}`).toEqual([...serviceNodeFlags(roles), 'dist/src/main.js', 'serve']);
    }
  });

  it('a process without the api role gets the single-threaded collector; one with it does not', () => {
    expect(serviceNodeFlags(undefined)).toEqual(SERVICE_NODE_FLAGS);
    expect(serviceNodeFlags('api,ingest')).toEqual(SERVICE_NODE_FLAGS);
    expect(serviceNodeFlags('ingest')).toEqual([...SERVICE_NODE_FLAGS, ...NO_API_NODE_FLAGS]);
    expect(serviceNodeFlags('sync, ingest')).toEqual([...SERVICE_NODE_FLAGS, ...NO_API_NODE_FLAGS]);
  });
});

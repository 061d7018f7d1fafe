import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVICE_NODE_FLAGS } from './service-flags';

const ROOT = path.resolve(__dirname, '..');

describe('the service runs with its V8 flags', () => {
  it('npm start passes every flag to node', () => {
    const start = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start!;
    expect(start).toContain(`node ${SERVICE_NODE_FLAGS.join(' ')} dist/src/main.js serve`);
  });

  it('the container image passes every flag to node', () => {
    const cmd = /^CMD (\[.*\])$/m.exec(readFileSync(path.join(ROOT, 'docker/Dockerfile'), 'utf8'))?.[1];
    expect(JSON.parse(cmd ?? 'null')).toEqual(['node', ...SERVICE_NODE_FLAGS, 'dist/src/main.js', 'serve']);
  });
});

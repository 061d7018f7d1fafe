import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

const root = path.resolve(__dirname, '..');

export default defineConfig({
  root,
  // type-graphql and TypeORM read decorator metadata: Vite's own transform (oxc) emits it
  // like tsc when asked, as esbuild never did.
  oxc: { decorator: { legacy: true, emitDecoratorMetadata: true } },
  resolve: {
    // One copy of graphql: type-graphql and Apollo load graphql's CommonJS
    // build, so our own code must too ("another module or realm" otherwise).
    alias: { graphql: path.join(root, 'node_modules/graphql/index.js') },
  },
  test: {
    globalSetup: [path.join(root, 'test/support/global-setup.ts')],
    setupFiles: ['reflect-metadata'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two test files at once even on two cores (Vitest's default there is one): most integration
    // files wait on the broker, PostgreSQL or a timer far more than they compute. Each file has
    // its own databases and topics, and looks only at its own database's locks and backends.
    // VITEST_MAX_WORKERS=1 runs them one at a time.
    maxWorkers: Math.max(2, os.availableParallelism() - 1),
    projects: [
      { extends: true, test: { name: 'unit', include: ['src/**/*.spec.ts'] } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'] } },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'] } },
    ],
  },
});

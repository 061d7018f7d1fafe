import path from 'node:path';
import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

const root = path.resolve(__dirname, '..');

// SWC instead of the default transform: type-graphql and TypeORM read the
// decorator metadata that only tsc and SWC emit.
export default defineConfig({
  root,
  plugins: [
    swc.vite({
      jsc: {
        target: 'es2022',
        parser: { syntax: 'typescript', decorators: true },
        transform: { legacyDecorator: true, decoratorMetadata: true },
      },
      module: { type: 'es6' },
    }),
  ],
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
    projects: [
      { extends: true, test: { name: 'unit', include: ['src/**/*.spec.ts'] } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'] } },
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'] } },
    ],
  },
});

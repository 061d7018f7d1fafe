import path from 'node:path';
import { defineConfig } from 'vite';

// The console is bundled at build time into dist/console and served by Earshot at /console:
// no CDN at run time, so it works inside company networks.
export default defineConfig({
  root: import.meta.dirname,
  base: '/console/',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: path.resolve(import.meta.dirname, '../dist/console'),
    emptyOutDir: true,
    target: 'es2022',
    // one small app: a single chunk keeps the first paint to two requests
    chunkSizeWarningLimit: 600,
  },
});

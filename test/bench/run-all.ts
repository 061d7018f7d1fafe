/**
 * npm run bench — every benchmark, each in its own process (so one's memory does not skew
 * another's), printed in turn. Single ones: bench:api, bench:sentiment, bench:ingest, …
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const BENCHES = ['api.bench.js', 'sentiment.bench.js', 'identity.bench.js', 'ingest.bench.js', 'crm.bench.js', 'listening-gap.bench.js', 'graphql-limits.bench.js', 'rescore.bench.js', 'soak.bench.js', 'erasure.bench.js', 'subscriptions.bench.js', 'graphql.bench.js', 'console.bench.js'];

let failed = 0;
for (const file of BENCHES) {
  const full = path.join(__dirname, file);
  if (!existsSync(full)) continue;
  console.log(`\n=== ${file.replace('.bench.js', '')} ===`);
  const r = spawnSync(process.execPath, [full], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exitCode = failed > 0 ? 1 : 0;

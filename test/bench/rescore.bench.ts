// How fast the re-score job gets through stored interactions: `npm run bench:rescore`
// (BENCH_INTERACTIONS=20000, EARSHOT_RESCORE_BATCH_SIZE=500). A fresh, migrated database gets
// interactions straight from SQL (texts from customer-service templates, one customer per ten,
// no model recorded), then three runs, each timed from startRescore to succeeded:
//  1. built-in model over rows that record no model: every row is written (the full write path:
//     rows, customer rollups and summaries, items, outbox, the cursor), then the rollup rebuilds;
//  2. the same model again: every row is read and analyzed, nothing is written (idempotence);
//  3. a local model server (test/support/model-server.ts, batches of 64) as the new model: every
//     row goes over HTTP and is written.
// The last line is JSON.
import 'reflect-metadata';
import path from 'node:path';
import { createServices, openDatabase } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../src/db/embedded-postgres';
import { createLogger } from '../../src/shared/logger';
import { Metrics } from '../../src/shared/metrics';
import { ModelServer } from '../support/model-server';
import { createTestDatabase, findTestPostgres, REPO_ROOT, TEST_PG_ENV } from '../support/postgres';

const N = Number(process.env.BENCH_INTERACTIONS ?? 20_000);
const TEXTS = [
  'I was charged twice for my subscription and nobody answers',
  'My parcel is late again. Terrible service.',
  'Love the new app, checkout is so fast!',
  'How do I change the delivery address on my order?',
  'Been on hold for an hour, can someone call me back',
  'Thanks, the refund arrived this morning',
  'I will cancel my next four flights if this happens again',
  'The product broke after two days, want a replacement',
];

async function main(): Promise<void> {
  const log = createLogger('warn');
  let embedded: EmbeddedPostgresHandle | null = null;
  let admin = await findTestPostgres();
  if (!admin) {
    embedded = await startEmbeddedPostgres(path.join(REPO_ROOT, '.earshot', 'bench'), 54331, log);
    admin = embedded.url;
  }
  process.env[TEST_PG_ENV] = admin;
  const database = await createTestDatabase('rescorebench');
  const server = await new ModelServer('bench-model-v1', (it) => ({ score: it.text.length % 2 === 0 ? -0.6 : 0.5, complaint: it.text.includes('charged') })).start();
  const base = { DATABASE_URL: database.url, LOG_LEVEL: 'warn' };
  const db = await openDatabase(loadConfig(base), log);
  try {
    const ds = db.ds;
    const builtIn = createServices(loadConfig(base), db, log, new Metrics());
    await builtIn.taxonomy.ensureSeeded();
    await builtIn.listeningGap.ensureDefaultDepartment();
    await ds.query(`INSERT INTO customer (display_name) SELECT 'customer ' || g FROM generate_series(1, $1) g`, [Math.max(1, Math.round(N / 10))]);
    await ds.query(
      `INSERT INTO interaction (source, external_id, text, occurred_at, direction, author_handle, sentiment_score, sentiment_label,
                               sentiment_confidence, intent, customer_id, lang)
       SELECT 'x', 'b' || g, ($2::text[])[1 + g % array_length($2::text[], 1)] || ' #' || g, now() - (g % 90) * interval '1 day', 'inbound',
              'author' || (g % $3), 0, 'neutral', 0.5, 'other', c.id, 'en'
         FROM generate_series(1, $1) g
         JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM customer) c ON c.n = g % $3`,
      [N, TEXTS, Math.max(1, Math.round(N / 10))],
    );
    await ds.query('ANALYZE');

    const run = async (services: ReturnType<typeof createServices>): Promise<{ seconds: number; changed: number }> => {
      const t0 = performance.now();
      const job = await services.rescore.start('bench');
      for (;;) {
        const [row] = await ds.query(`SELECT status, changed, error FROM rescore_job WHERE id = $1`, [job.id]);
        if (row.status === 'failed') throw new Error(row.error);
        if (row.status === 'succeeded') return { seconds: (performance.now() - t0) / 1000, changed: row.changed };
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const first = await run(builtIn);
    const again = await run(builtIn);
    await builtIn.rescore.stop();
    const remote = createServices(loadConfig({ ...base, EARSHOT_SENTIMENT_URL: server.url }), db, log, new Metrics());
    const third = await run(remote);
    await remote.rescore.stop();
    remote.remoteModel?.shutdown();

    const rate = (r: { seconds: number }) => Math.round(N / r.seconds);
    console.log(`interactions: ${N}`);
    console.log(`built-in, every row written:  ${first.seconds.toFixed(2)} s  ${rate(first)}/s  (changed ${first.changed})`);
    console.log(`built-in again, nothing new:   ${again.seconds.toFixed(2)} s  ${rate(again)}/s  (changed ${again.changed})`);
    console.log(`model server, every row:       ${third.seconds.toFixed(2)} s  ${rate(third)}/s  (changed ${third.changed}, ${server.requests.length} requests)`);
    console.log(
      JSON.stringify({
        interactions: N,
        rescoreBuiltInPerSecond: rate(first),
        rescoreUnchangedPerSecond: rate(again),
        rescoreModelServerPerSecond: rate(third),
        modelServerRequests: server.requests.length,
      }),
    );
  } finally {
    await db.close();
    await server.close();
    await database.drop();
    if (embedded) await embedded.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

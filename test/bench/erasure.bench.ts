// Erasure of one customer with 10,000 interactions (target: under 5 s):
// `npm run bench:erase` (BENCH_ERASE_INTERACTIONS=10000, BENCH_ERASE_OTHERS=20000).
// Everything is seeded through the real ingest pipeline (so the outbox, rollups, listening items
// and identity links are what production writes) into a fresh, migrated database, beside other
// customers' interactions; no Kafka (outbox rows stay unsent, the worst case for the redaction).
// The last line is JSON.
import 'reflect-metadata';
import path from 'node:path';
import { createServices, openDatabase } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../src/db/embedded-postgres';
import { createLogger } from '../../src/shared/logger';
import { Metrics } from '../../src/shared/metrics';
import { createTestDatabase, findTestPostgres, REPO_ROOT, TEST_PG_ENV } from '../support/postgres';

const N = Number(process.env.BENCH_ERASE_INTERACTIONS ?? 10_000);
const OTHERS = Number(process.env.BENCH_ERASE_OTHERS ?? 20_000);
const TARGET_MS = 5_000;
const TEXTS = [
  'My parcel is late again and nobody answers. Terrible service.',
  'Charged twice for my order, I want a refund now!',
  'Thanks, the support team fixed it fast. Great job.',
  'How do I change the delivery address on my account?',
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
  const database = await createTestDatabase('erasebench');
  const config = loadConfig({ DATABASE_URL: database.url, LOG_LEVEL: 'warn' });
  const db = await openDatabase(config, log);
  try {
    const services = createServices(config, db, log, new Metrics());
    await services.taxonomy.ensureSeeded();
    await services.listeningGap.ensureDefaultDepartment();
    const t0 = performance.now();
    const at = (i: number) => new Date(Date.now() - (i % 90) * 86_400_000 - i * 1000).toISOString();
    for (let i = 0; i < OTHERS; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, OTHERS - i) }, (_, k) => {
        const n = i + k;
        return { source: 'x', externalId: `o-${n}`, occurredAt: at(n), direction: 'inbound', author: { handle: `other${n % 2000}`, displayName: `Other ${n % 2000}` }, text: TEXTS[n % 4] };
      });
      await services.ingest.ingestObjects(batch, 'bench');
    }
    for (let i = 0; i < N; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, N - i) }, (_, k) => {
        const n = i + k;
        return {
          source: n % 2 ? 'x' : 'email', externalId: `p-${n}`, occurredAt: at(n), direction: 'inbound',
          author: { handle: 'erase_me', email: 'erase.me@example.org', phone: '+1 415 555 0100', displayName: 'Erase Me' },
          text: `${TEXTS[n % 4]} (${n})`,
        };
      });
      await services.ingest.ingestObjects(batch, 'bench');
    }
    const seedMs = performance.now() - t0;
    const customerId = await services.erasure.findCustomer({ email: 'erase.me@example.org' });
    const [{ n: interactions }] = await db.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE customer_id = $1`, [customerId]);
    const [{ n: outbox }] = await db.ds.query(`SELECT count(*)::int AS n FROM outbox`);
    const t1 = performance.now();
    const out = await services.erasure.erase(customerId, 'bench', 'bench');
    const eraseMs = performance.now() - t1;
    const t2 = performance.now();
    const again = await services.erasure.erase(customerId, 'bench', 'bench');
    const againMs = performance.now() - t2;
    console.log(`seeded ${OTHERS + N} interactions through the pipeline in ${(seedMs / 1000).toFixed(1)} s (outbox ${outbox} rows)`);
    console.log(`erased a customer with ${interactions} interactions in ${eraseMs.toFixed(0)} ms (target < ${TARGET_MS} ms); repeat (idempotent no-op) ${againMs.toFixed(1)} ms`);
    console.log(`  outbox rows removed ${out.request.outboxRowsRemoved}, identities ${out.request.identities}, listening items closed ${out.request.listeningItemsClosed}`);
    console.log(JSON.stringify({ bench: 'erasure', interactions, otherInteractions: OTHERS, outboxRows: outbox, eraseMs: Math.round(eraseMs), repeatMs: Math.round(againMs), targetMs: TARGET_MS, pass: eraseMs < TARGET_MS && !again.erasedNow }));
    process.exitCode = eraseMs < TARGET_MS ? 0 : 1;
  } finally {
    await db.close();
    await database.drop();
    if (embedded) await embedded.stop();
  }
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

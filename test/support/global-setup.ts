import path from 'node:path';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../src/db/embedded-postgres';
import { createLogger } from '../../src/shared/logger';
import { ensureKafka } from './kafka';
import { findTestPostgres, REPO_ROOT, TEST_PG_ENV } from './postgres';

let embedded: EmbeddedPostgresHandle | null = null;

/**
 * Finds or starts the real servers every test needs: PostgreSQL (TEST_DATABASE_URL, the
 * local server, or an embedded one) and a Kafka broker (KAFKA_BROKERS, or the project's
 * own single-node broker). Test files create their own databases and topics on them.
 */
export default async function setup(): Promise<() => Promise<void>> {
  let admin = await findTestPostgres();
  if (!admin) {
    const log = createLogger('warn');
    embedded = await startEmbeddedPostgres(path.join(REPO_ROOT, '.earshot', 'test'), Number(process.env.EARSHOT_TEST_PG_PORT ?? 54330), log);
    admin = embedded.url;
  }
  process.env[TEST_PG_ENV] = admin;
  process.env.EARSHOT_TEST_KAFKA_BROKERS = await ensureKafka();
  return async () => {
    if (embedded) await embedded.stop();
  };
}

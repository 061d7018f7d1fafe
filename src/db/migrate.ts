import { MigrationExecutor, type DataSource, type Migration } from 'typeorm';
import type { Logger } from '../shared/logger';
import { advisoryLock, advisoryUnlock, tryAdvisoryLock } from './sql';

/**
 * Session advisory lock key of the migration runner (per database; the job leader locks use
 * 7_0xx_xxx and 7_3xx_xxx/7_4xx_xxx keys in the same one-bigint space).
 */
export const MIGRATION_LOCK = 7_000_001;

/**
 * Runs the pending migrations, one process at a time. Replicas started together on a new
 * database (or on a release with a new migration) each read the migration table before any had
 * written to it, and all but one failed at start on `duplicate key value violates unique
 * constraint "pg_type_typname_nsp_index"` (three `openDatabase` at once: two failed). A session
 * advisory lock on one connection, which also runs the migrations (so a pool of one connection
 * is enough), makes the others wait and then find nothing pending.
 */
export async function runMigrationsLocked(ds: DataSource, log: Logger): Promise<Migration[]> {
  const qr = ds.createQueryRunner();
  try {
    await qr.connect();
    if (!(await tryAdvisoryLock(qr, MIGRATION_LOCK))) {
      log.info('another process is running migrations: waiting for it to finish');
      await advisoryLock(qr, MIGRATION_LOCK);
    }
    try {
      const executor = new MigrationExecutor(ds, qr);
      executor.transaction = 'each';
      return await executor.executePendingMigrations();
    } finally {
      await advisoryUnlock(qr, MIGRATION_LOCK).catch(() => undefined);
    }
  } finally {
    await qr.release();
  }
}

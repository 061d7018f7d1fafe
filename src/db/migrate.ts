import { setTimeout as sleep } from 'node:timers/promises';
import { MigrationExecutor, type DataSource, type Migration } from 'typeorm';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import { sqlState } from './failures';
import { advisoryLock, advisoryUnlock, liftSessionTimeouts, resetSessionTimeouts, sessionLockTimeout, tryAdvisoryLock } from './sql';

/**
 * Session advisory lock key of the migration runner (per database; the job leader locks use
 * 7_0xx_xxx and 7_3xx_xxx/7_4xx_xxx keys in the same one-bigint space).
 */
export const MIGRATION_LOCK = 7_000_001;

/**
 * How a migration waits for the tables it changes. Each statement waits at most `lockTimeoutMs`
 * for a lock (PostgreSQL's `lock_timeout`, on the migrating connection only); a migration that
 * timed out is rolled back whole, the runner waits (0.5 s, doubling, at most 10 s) and tries it
 * again, `attempts` times in all, then fails naming it. Without a bound, a migration that waited
 * for one table (an operator's open transaction, a `LOCK TABLE`) held the locks it had already
 * taken on others for as long: every ingest batch waited behind it, and after `earshot migrate`
 * was killed its session went on waiting and holding them.
 */
export interface MigrationLockOptions {
  lockTimeoutMs?: number;
  attempts?: number;
}

export const MIGRATION_LOCK_TIMEOUT_MS = 2_000;
export const MIGRATION_ATTEMPTS = 10;

/**
 * Runs the pending migrations, one process at a time. Replicas started together on a new
 * database (or on a release with a new migration) each read the migration table before any had
 * written to it, and all but one failed at start on `duplicate key value violates unique
 * constraint "pg_type_typname_nsp_index"` (three `openDatabase` at once: two failed). A session
 * advisory lock on one connection, which also runs the migrations (so a pool of one connection
 * is enough), makes the others wait and then find nothing pending.
 *
 * Each migration runs in a transaction of its own with its row in the migration table (no
 * migration may opt out: test/integration/migrations-round-trip.test.ts), so one that fails or
 * whose process is killed leaves nothing of itself, and the next run starts it again.
 */
export async function runMigrationsLocked(ds: DataSource, log: Logger, opts: MigrationLockOptions = {}): Promise<Migration[]> {
  return withMigrationLock(ds, log, opts, async (executor) => {
    const pending = await executor.getPendingMigrations();
    if (pending.length === 0) return [];
    // after a timeout, the first one still pending is the one that timed out
    await retryOnLockTimeout(log, opts, async () => (await executor.getPendingMigrations())[0]?.name ?? null, () => executor.executePendingMigrations());
    return pending;
  });
}

/**
 * Undoes the last applied migration (`migrate --revert`), under the same lock and lock timeout
 * as runMigrationsLocked: a replica starting meanwhile would otherwise apply it again while its
 * down() runs. Its down() and the removal of its row run in one transaction: a failure or a
 * killed process leaves it applied. Returns the name of the migration reverted, null when none
 * was applied.
 */
export async function revertLastMigrationLocked(ds: DataSource, log: Logger, opts: MigrationLockOptions = {}): Promise<string | null> {
  return withMigrationLock(ds, log, opts, async (executor) => {
    // newest first (by id), as undoLastMigration picks the one it reverts
    const [last] = await executor.getExecutedMigrations();
    if (!last) return null;
    await retryOnLockTimeout(log, opts, async () => `${last.name} (its revert)`, () => executor.undoLastMigration());
    return last.name;
  });
}

async function withMigrationLock<T>(ds: DataSource, log: Logger, opts: MigrationLockOptions, run: (executor: MigrationExecutor) => Promise<T>): Promise<T> {
  const qr = ds.createQueryRunner();
  let lifted = false;
  try {
    await qr.connect();
    // An operator's lock_timeout or statement_timeout for the database or role does not reach
    // this session: with `lock_timeout = '100ms'`, of two replicas started together on a new
    // database one exited at start with "canceling statement due to lock timeout" (its wait for
    // the other's migrations), and a statement_timeout shorter than a migration failed it at
    // every start. The wait for another process's migrations is unbounded, as without such a
    // setting; each migration's lock waits are bounded by the runner's own lock_timeout below.
    lifted = true;
    await liftSessionTimeouts(qr);
    if (!(await tryAdvisoryLock(qr, MIGRATION_LOCK))) {
      log.info('another process is running migrations: waiting for it to finish');
      await advisoryLock(qr, MIGRATION_LOCK);
    }
    try {
      // after the advisory lock: lock_timeout bounds advisory lock waits too
      await sessionLockTimeout(qr, opts.lockTimeoutMs ?? MIGRATION_LOCK_TIMEOUT_MS);
      const executor = new MigrationExecutor(ds, qr);
      executor.transaction = 'each';
      return await run(executor);
    } finally {
      await advisoryUnlock(qr, MIGRATION_LOCK).catch(() => undefined);
    }
  } finally {
    // the connection goes back to the pool with the database's timeouts
    if (lifted) await resetSessionTimeouts(qr).catch(() => undefined);
    await qr.release();
  }
}

/** SQLSTATEs of a name already taken: duplicate table, object, schema, function, column. */
const NAME_TAKEN = new Set(['42P07', '42710', '42P06', '42723', '42701']);

/**
 * A migration failed for another reason than a lock: said in one line, with the migration's
 * name. Its transaction was rolled back, so nothing of it is applied (the ones before it are).
 * A name already taken means the database holds objects Earshot did not make (another
 * application's `customer` table, a hand-made one): Earshot needs a database of its own.
 */
export class MigrationFailedError extends Error {
  readonly code: string | undefined;
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'MigrationFailedError';
    this.code = sqlState(cause) ?? undefined;
  }
}

async function migrationFailed(e: unknown, current: () => Promise<string | null>): Promise<unknown> {
  // not the migration's own doing (the connection went away): the caller's retry or message says so
  if (sqlState(e) === null || /^08/.test(sqlState(e)!)) return e;
  const name = await current().catch(() => null);
  if (name === null) return e;
  const reason = String((e as Error).message).split('\n')[0];
  const hint = NAME_TAKEN.has(sqlState(e)!)
    ? ' — the database already holds an object of that name that Earshot did not make (another application\'s?): give Earshot a database of its own'
    : '';
  return new MigrationFailedError(`migration ${name} failed: ${reason}${hint}; nothing of it was applied`, e);
}

async function retryOnLockTimeout(log: Logger, opts: MigrationLockOptions, current: () => Promise<string | null>, step: () => Promise<unknown>): Promise<void> {
  const attempts = Math.max(1, opts.attempts ?? MIGRATION_ATTEMPTS);
  const lockTimeoutMs = opts.lockTimeoutMs ?? MIGRATION_LOCK_TIMEOUT_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      await step();
      return;
    } catch (e) {
      // 55P03 lock_not_available: the statement waited lock_timeout; the migration was rolled back
      if (sqlState(e) !== '55P03') throw await migrationFailed(e, current);
      const name = await current();
      const what = `migration ${name ?? '(unknown)'} waited ${lockTimeoutMs} ms for a lock on a table another session holds (an open transaction, LOCK TABLE, VACUUM FULL…)`;
      if (attempt >= attempts) {
        throw new AppError(
          'SERVICE_UNAVAILABLE',
          `${what}, ${attempts} times: nothing of it was applied (the migrations before it were); run migrate again once that session has ended (pg_stat_activity, pg_locks show it)`,
        );
      }
      const delayMs = Math.min(500 * 2 ** (attempt - 1), 10_000);
      log.warn({ migration: name, attempt, attempts, retryInMs: delayMs }, `${what}: rolled back, trying again`);
      await sleep(delayMs);
    }
  }
}

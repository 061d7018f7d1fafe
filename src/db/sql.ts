import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { withArrayParams } from './array-param';

/**
 * What runs SQL: the data source (each statement on a pooled connection) or a transaction's
 * query runner. TypeORM keeps the pool, transactions and migrations; statements go through
 * `rows`, `firstRow`, `exec` and `modify`, called from the `*.repository.ts` modules, whose
 * functions declare what their rows are (src/db/sql-boundary.spec.ts keeps SQL there). The
 * driver's untyped result is given its type here and nowhere else. Array parameters are written
 * as array literals here (./array-param.ts: the driver's text, for less CPU).
 */
export type Db = Pick<DataSource, 'query'> | Pick<QueryRunner, 'query'> | Pick<EntityManager, 'query'>;

/**
 * `ARRAY(SELECT unnest($n::uuid[]))`: the ids of parameter n, for `id = ANY (…)` where the
 * statement must go through the index whatever the table's size. Given `$n` itself, the planner
 * counts the ids and, on a table of a few thousand rows, scans it whole instead; an array it
 * cannot count before running it is taken as a few ids (ingest-explain.test.ts).
 */
export function batchIds(n: number): string {
  return `ARRAY(SELECT unnest($${n}::uuid[]))`;
}

/**
 * Exempts a dedicated session that is idle by design (the live-events LISTEN session, the outbox
 * relay's leader lock) from an operator's `idle_session_timeout`: with it at 200 ms, both were
 * ended about every 0.4 s (live subscribers missed commits, the relay's leadership churned and
 * logged a warning each time). Pooled connections keep the operator's setting: the pool replaces
 * those it ends. PostgreSQL before 14 has no such setting: then this does nothing.
 */
export async function keepWhileIdle(session: { query(text: string): Promise<unknown> }): Promise<void> {
  await session.query(`SELECT set_config('idle_session_timeout', '0', false) FROM pg_settings WHERE name = 'idle_session_timeout'`);
}

/**
 * Gives a runner's lock session, before it goes back to the pool, the idle_session_timeout the
 * operator set (`keepWhileIdle` exempted it while it held the lock). Does nothing before PostgreSQL 14.
 */
export async function restoreIdleTimeout(session: { query(text: string): Promise<unknown> }): Promise<void> {
  await session.query(`SELECT set_config('idle_session_timeout', reset_val, false) FROM pg_settings WHERE name = 'idle_session_timeout'`);
}

/**
 * The session settings Earshot's SQL and node-postgres' readers depend on, whatever an operator
 * made the database's or role's defaults (`ALTER DATABASE … SET`, `ALTER ROLE … SET`), which
 * every new session inherits (test/integration/db-session-settings.test.ts). Before, with
 * `DateStyle = 'SQL, DMY'` every timestamp read back was null (node-postgres reads ISO only):
 * GraphQL answered internal errors ("Cannot return null for non-nullable field
 * Interaction.occurredAt"). With `extra_float_digits = -15` floats were read with two digits: the
 * API and Kafka's interactions.enriched.v1 gave a score of 0.869 as 0.9, and paging customers by
 * score (a float cursor) returned 1 of 10 customers. With `array_nulls = off` a null in an array
 * parameter (./array-param.ts writes array literals) was the string "NULL": 7 of 10 ingested
 * lines were rejected (invalid input syntax for type timestamp with time zone: "NULL"). The
 * others are pinned because Earshot's SQL and parsers are written for them (UTC for `::date`
 * and timestamp text, read committed for its retry and SKIP LOCKED logic) though no failure was
 * seen without them. `jit` is off: PostgreSQL compiles a statement whose planner cost passes
 * jit_above_cost (100,000 by default; past 500,000 it inlines and optimises too) on every run,
 * and Earshot's costliest statements rank every open item or customer for one page, where
 * compiling costs more than it saves. Measured on a copy with 25,000 customers (5,000 more
 * merged away), 113,000 interactions and 7,100 open items, each statement replayed with JIT on,
 * then off: the `openItems` page (cost 124,000) 130 ms, 51 of them compiling, then 60 ms;
 * `customers(order: OPEN_ITEMS)` (cost 296,000) 125 then 83 ms. On the listening-gap bench's
 * data (1,000,000 interactions, 105,000 open items): the `openItems` page 1.5 s (1.1 s
 * compiling) then 0.59 s, `listeningItems(order: URGENCY)` 0.71 then 0.20 s. No statement was
 * faster with it: the 60-day sentiment trend (cost 149,000) 546 then 475 ms; the others,
 * ingest's included (at most 17,000), stay under the threshold. Not pinned: what an operator
 * decides on purpose (search_path, checked at start by ./session-checks.ts;
 * default_transaction_read_only; statement_timeout, lock_timeout,
 * idle_in_transaction_session_timeout, idle_session_timeout: named when they cancel something;
 * the migration runner lifts the first two for its own session, ./migrate.ts).
 * Sent as a statement when a connection is made, not as the startup packet's `options`:
 * PgBouncer 1.18 refuses the connection ("unsupported startup parameter: options").
 */
export const PINNED_SESSION_SETTINGS: Readonly<Record<string, string>> = {
  DateStyle: 'ISO, MDY',
  IntervalStyle: 'postgres',
  TimeZone: 'UTC',
  extra_float_digits: '1',
  bytea_output: 'hex',
  standard_conforming_strings: 'on',
  default_transaction_isolation: 'read committed',
  array_nulls: 'on',
  transform_null_equals: 'off',
  gin_fuzzy_search_limit: '0',
  jit: 'off',
};

const PIN_SESSION = Object.entries(PINNED_SESSION_SETTINGS)
  .map(([name, value]) => `SET ${name} = '${value}'`)
  .join('; ');

/** Pins PINNED_SESSION_SETTINGS for the rest of a new session: one round trip, before it runs anything else. */
export async function pinSessionSettings(session: { query(text: string): Promise<unknown> }): Promise<void> {
  await session.query(PIN_SESSION);
}

/**
 * The PostgreSQL server process that runs a statement of this session (a pg client of its own):
 * one for the session's whole life, unless a pooler in transaction mode stands between
 * (./session-pooling.ts).
 */
export async function backendPid(session: { query(text: string): Promise<{ rows: unknown[] }> }): Promise<number> {
  const { rows: [row] } = await session.query('SELECT pg_backend_pid() AS pid');
  return (row as { pid: number }).pid;
}

/** The rows of one statement, typed as `R` (the caller declares the shape its SQL selects). */
export async function rows<R>(db: Db, text: string, params?: readonly unknown[]): Promise<R[]> {
  return (await db.query(text, withArrayParams(params))) as R[];
}

/** The first row of one statement, or undefined. */
export async function firstRow<R>(db: Db, text: string, params?: readonly unknown[]): Promise<R | undefined> {
  return (await rows<R>(db, text, params))[0];
}

/** Runs one statement for its effect. */
export async function exec(db: Db, text: string, params?: readonly unknown[]): Promise<void> {
  await db.query(text, withArrayParams(params));
}

/**
 * Runs an UPDATE or DELETE (with or without RETURNING): the rows it returned and how many it
 * touched. (Through TypeORM the pg driver answers such a statement as [rows, rowCount].)
 */
export async function modify<R = never>(db: Db, text: string, params?: readonly unknown[]): Promise<{ rows: R[]; count: number }> {
  const [out, count] = (await db.query(text, withArrayParams(params))) as [R[], number];
  return { rows: out, count };
}

/**
 * A session-level advisory lock on the given connection (a leader lock: one runner of a job
 * across replicas); whether it was free. Release it on the same connection.
 */
export async function tryAdvisoryLock(db: Db, key: number): Promise<boolean> {
  return (await firstRow<{ ok: boolean }>(db, 'SELECT pg_try_advisory_lock($1) AS ok', [key]))?.ok === true;
}

/** Waits for a session-level advisory lock on the given connection (see {@link tryAdvisoryLock}). */
export async function advisoryLock(db: Db, key: number): Promise<void> {
  await exec(db, 'SELECT pg_advisory_lock($1)', [key]);
}

export async function advisoryUnlock(db: Db, key: number): Promise<void> {
  await exec(db, 'SELECT pg_advisory_unlock($1)', [key]);
}

/**
 * How long each statement of this connection waits for a lock, for the rest of the session
 * (null: back to the database's or server's setting). Set outside a transaction, so that a
 * rollback does not undo it; reset before the connection goes back to the pool.
 */
export async function sessionLockTimeout(db: Db, lockTimeoutMs: number | null): Promise<void> {
  if (lockTimeoutMs === null) await exec(db, 'RESET lock_timeout');
  else await rows(db, `SELECT set_config('lock_timeout', $1, false)`, [`${Math.max(1, Math.round(lockTimeoutMs))}ms`]);
}

/**
 * Lifts this connection's lock_timeout and statement_timeout, those an operator set for the
 * database or role (`ALTER DATABASE … SET lock_timeout = …`) included, until
 * resetSessionTimeouts: for a session whose waits and statements are bounded otherwise (the
 * migration runner: its own lock_timeout per migration, one migration at a time).
 */
export async function liftSessionTimeouts(db: Db): Promise<void> {
  await exec(db, `SELECT set_config('lock_timeout', '0', false), set_config('statement_timeout', '0', false)`);
}

/** Gives this connection back the database's (or role's, or server's) lock_timeout and statement_timeout. */
export async function resetSessionTimeouts(db: Db): Promise<void> {
  await exec(db, 'RESET lock_timeout');
  await exec(db, 'RESET statement_timeout');
}

/**
 * `COPY target FROM STDIN` on the transaction's own connection, with `rows` (each one row in
 * COPY's text format, ./copy-text.ts, without its newline) as its data, sent as one buffer. All
 * rows or none: a row PostgreSQL refuses (a unique key stored meanwhile, say) fails the
 * statement, and with it the transaction.
 *
 * Each row is encoded on its own: one string of the whole batch became UTF-8 in 3–4 ms for 465
 * tweets (most of it joining the pieces into one string, two bytes a character as soon as one
 * row holds an emoji), the rows one by one in 0.6 ms (README, "Ingest write path").
 */
export async function copyIn(qr: QueryRunner, target: string, rows: readonly string[]): Promise<void> {
  const client = (await qr.connect()) as PoolClient;
  const parts = new Array<Buffer>(rows.length);
  for (let i = 0; i < rows.length; i++) parts[i] = Buffer.from(`${rows[i]}\n`, 'utf8');
  await pipeline(Readable.from([Buffer.concat(parts)]), client.query(copyFrom(`COPY ${target} FROM STDIN`)));
}

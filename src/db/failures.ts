/**
 * Which failures of the write path are worth retrying. The rule is narrow on purpose: only a
 * failure of the connection or of concurrency (locks, serialization, deadlock) can succeed
 * on a later attempt with the same data; everything else — a value PostgreSQL refuses, an
 * encoding error, a stack overflow, a bug — fails again forever, so retrying it stalls a
 * Kafka partition or a request without end.
 */

/**
 * SQLSTATEs that describe the server or the session, not the data:
 * 08 connection exception, 40001 serialization failure, 40P01 deadlock, 55P03 lock not
 * available, 55006 object in use, 57014 query canceled (statement or lock timeout), 57P01-57P05
 * shutdown, crash, cannot connect now, idle session timeout, 53 insufficient resources (disk
 * full, out of memory, too many connections), 58 system (I/O) errors.
 *
 * Also 25006 (read-only transaction: a failover left the service on a demoted primary or a
 * standby, or an operator set default_transaction_read_only), 25P03 (the session was ended for
 * idling in a transaction), 28 (authorization), 3D/3F (no such database or schema) and 42 (missing table or
 * column, permission denied): with parameterized SQL no message value can cause them; they
 * mean the deployment is broken (a migration not applied, a revoked grant), every message
 * would fail alike, and dead-lettering would empty the topic into its DLQ. The partition
 * waits instead, and stall detection tells the operator.
 */
const RETRIABLE_SQLSTATE = /^(08[0-9A-Z]{3}|40001|40P01|55P03|55006|57014|57P0[1-5]|53[0-9A-Z]{3}|58[0-9A-Z]{3}|25006|25P03|28[0-9A-Z]{3}|3D000|3F000|42[0-9A-Z]{3})$/;

/** Socket-level errors of the driver (no SQLSTATE): the server was not reached or went away. */
const RETRIABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'ENETDOWN']);

/** Messages of node-postgres, pg-pool and TypeORM for a lost or unobtainable connection. */
const RETRIABLE_MESSAGE =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection is not established|terminating connection|server closed the connection unexpectedly|Query read timeout|the database system is (starting up|shutting down|in recovery mode)/i;

/** The SQLSTATE of a pg or TypeORM error (TypeORM keeps the driver's error in driverError), else null. */
export function sqlState(e: unknown): string | null {
  if (!e || typeof e !== 'object') return null;
  const err = e as { code?: unknown; driverError?: { code?: unknown } };
  const code = err.driverError?.code ?? err.code;
  // SQLSTATE classes are two digits, or F0, HV, P0, XX: 'EPIPE' is an errno, not a SQLSTATE.
  return typeof code === 'string' && /^([0-9]{2}|F0|HV|P0|XX)[0-9A-Z]{3}$/.test(code) ? code : null;
}

/** The constraint a pg or TypeORM error names (a unique, foreign key or check violation), else null. */
export function violatedConstraint(e: unknown): string | null {
  if (!e || typeof e !== 'object') return null;
  const err = e as { constraint?: unknown; driverError?: { constraint?: unknown } };
  const name = err.driverError?.constraint ?? err.constraint;
  return typeof name === 'string' ? name : null;
}

/**
 * True for a failure that may succeed if the same data is written again later: connection
 * errors and lock, serialization and deadlock conflicts.
 *
 * What must stay true: anything without such a SQLSTATE or connection symptom — validation,
 * out-of-range values (22…), constraint violations (23…), encoding, RangeError, TypeError —
 * is false, so that it is rejected (HTTP) or dead-lettered (Kafka) and never retried forever.
 */
export function isRetriable(e: unknown): boolean {
  for (const cur of causes(e)) {
    const code = sqlState(cur);
    if (code !== null) return RETRIABLE_SQLSTATE.test(code);
    const err = cur as { code?: unknown; message?: unknown };
    if (typeof err.code === 'string' && RETRIABLE_ERRNO.has(err.code)) return true;
    if (typeof err.message === 'string' && RETRIABLE_MESSAGE.test(err.message)) return true;
  }
  return false;
}

/** `e` and the errors it wraps (TypeORM's `driverError`, `cause`), at most five deep. */
function* causes(e: unknown): Generator<object> {
  for (let cur: unknown = e, hops = 0; cur && typeof cur === 'object' && hops < 5; hops++) {
    yield cur;
    const err = cur as { driverError?: unknown; cause?: unknown };
    cur = err.driverError ?? err.cause;
  }
}

/** The first SQLSTATE of `e` or of an error it wraps, else null (what isRetriable decides on). */
export function failureSqlState(e: unknown): string | null {
  for (const cur of causes(e)) {
    const code = sqlState(cur);
    if (code !== null) return code;
  }
  return null;
}

/**
 * True for a retriable failure that passes by itself (a connection, a lock, a conflict, lack of
 * resources, a read-only or restarting server): a client may be told to try again shortly. Not
 * the deployment faults that are retried for Kafka's sake (28, 3D000, 3F000, 42: a missing
 * migration, table or grant), which a person must mend: to an API client they stay internal errors.
 */
export function isTransient(e: unknown): boolean {
  return isRetriable(e) && !/^(28|3D|3F|42)/.test(failureSqlState(e) ?? '');
}

/**
 * A background job's patience with database failures that pass by themselves (`isTransient`): it
 * pauses on one and resumes later, unless `max` came in a row without a page done (a page that
 * always waits past lock_timeout or statement_timeout, a database read-only for good): then it
 * fails, so that it is not paused and resumed for ever.
 */
export class PauseBudget {
  private inRow = 0;
  /** `unit`: what the job counts as done, named in its failure (a page, a step) */
  constructor(
    readonly max = 12,
    readonly unit = 'page',
  ) {}

  /** Pauses since the last page done. */
  get inARow(): number {
    return this.inRow;
  }

  /** A page (a step) of the job committed: the count starts again. */
  progressed(): void {
    this.inRow = 0;
  }

  /** Whether the job pauses on `err` rather than fails (counted when it does). */
  pauses(err: unknown): boolean {
    if (!isTransient(err) || this.inRow >= this.max) return false;
    this.inRow++;
    return true;
  }

  /** What the failed job says: the error's message, and the count when the pauses ran out. */
  failure(err: unknown): string {
    const message = err instanceof Error ? err.message : String(err);
    return isTransient(err) ? `${message} (${this.max + 1} times without a ${this.unit} done)` : message;
  }
}

/**
 * Why a transient database failure happened, in words a client or an operator can act on: a full
 * disk, a read-only server, no free connection were all "the database is unavailable", which sent
 * operators looking for a server that was up (PostgreSQL's own message is in the log).
 */
export function unavailableReason(e: unknown): string {
  const code = failureSqlState(e) ?? '';
  if (code === '55P03') return 'the database is busy (a table is locked by another session)';
  if (code === '53100') return 'the database is out of disk space';
  if (code === '53200') return 'the database is out of memory';
  if (code === '53300') return 'the database has no connection free (max_connections)';
  if (code === '25006') return 'the database is read-only';
  if (/^57P0[1-3]$/.test(code)) return 'the database is restarting';
  if (code === '40001' || code === '40P01') return 'the database met a concurrent change (serialization failure or deadlock)';
  // an operator's limits (ALTER DATABASE/ROLE … SET, postgresql.conf): named, so that they are
  // not taken for an outage (before: "the database is unavailable or busy")
  if (isStatementTimeout(e)) return cancelReason(e);
  if (code === '25P03') return "the database ended a transaction that waited past its idle_in_transaction_session_timeout (set for the database, Earshot's role or the server)";
  // pg-pool's own wait: the database is up, this process's connections are all taken
  for (const cur of causes(e)) {
    if (/^timeout exceeded when trying to connect/.test(String((cur as { message?: unknown }).message))) return "all pooled database connections are busy";
  }
  return 'the database is unavailable';
}

/**
 * True when PostgreSQL cancelled a statement (SQLSTATE 57014): its `statement_timeout`, or a cancel
 * request (an operator's `pg_cancel_backend`). The message cannot tell the two apart: PostgreSQL
 * words a statement_timeout that fires as one statement of a multi-statement query ends as
 * "canceling statement due to user request" (seen on PostgreSQL 15 under a 10 ms timeout, and on
 * the relay under 20 ms), and under another `lc_messages` every wording is translated. Before,
 * only the English "statement timeout" wording counted, so such a timeout was retried whole
 * instead of split and reported as "the database is unavailable".
 *
 * Such a failure is retriable, but the same batch fails the same way every time: a caller should
 * try smaller batches rather than the same one again (persistIsolating splits it). A cancelled
 * statement in smaller pieces goes through whichever it was.
 */
export function isStatementTimeout(e: unknown): boolean {
  return failureSqlState(e) === '57014';
}

/** What unavailableReason says of a cancelled statement: the timeout when PostgreSQL says so, else both causes. */
function cancelReason(e: unknown): string {
  for (const cur of causes(e)) {
    const message = (cur as { message?: unknown }).message;
    if (sqlState(cur) === '57014' && typeof message === 'string' && /statement timeout/i.test(message)) {
      return "a statement ran past the database's statement_timeout (set for the database, Earshot's role or the server)";
    }
  }
  return "the database cancelled a statement (its statement_timeout, set for the database, Earshot's role or the server, or a cancel such as pg_cancel_backend)";
}

/** A reason for a rejected line that a producer can act on, without stack or connection details. */
export function rejectionReason(e: unknown): string {
  const code = sqlState(e);
  const message = e instanceof Error ? e.message : String(e);
  const short = message.length > 500 ? `${message.slice(0, 500)}…` : message;
  if (code !== null) return `rejected by the database (SQLSTATE ${code}): ${short}`;
  if (e instanceof RangeError) return `could not be processed (${short}): the message is too deeply nested or too large`;
  return `could not be processed: ${short}`;
}

import { describe, expect, it } from 'vitest';
import { DatabaseStartError, EmbeddedStartError, embeddedFailureReason } from './app';

// initdb's output on a 20 MB data volume (tried by hand: a tmpfs of 20 MB), as startEmbeddedPostgres reports it
const INITDB_DISK_FULL = `initdb failed (code 1): The files belonging to this database system will be owned by user "postgres".
This user must also own the server process.

The database cluster will be initialized with this locale configuration:
  locale provider:   libc
  LC_COLLATE:  C.UTF-8
Data page checksums are enabled.

fixing permissions on existing directory /tmp/small/d/pg ... ok
creating subdirectories ... ok
creating configuration files ... ok
running bootstrap script ... 2026-12-04 21:05:56.685 UTC [19012] FATAL:  could not extend file "base/1/2691": No space left on device
2026-12-04 21:05:56.685 UTC [19012] HINT:  Check free disk space.
2026-12-04 21:05:56.689 UTC [19012] PANIC:  cannot abort transaction 1, it was already committed
Aborted
child process exited with exit code 134
initdb: removing contents of data directory "/tmp/small/d/pg"`;

describe('an embedded PostgreSQL that cannot start', () => {
  it('is told in one line: the data folder, and the line of PostgreSQL\'s output that says why', () => {
    const e = new EmbeddedStartError('/tmp/small/d', new Error(INITDB_DISK_FULL));
    expect(e.message).toBe(
      'cannot start the embedded PostgreSQL (data in /tmp/small/d, EARSHOT_DATA_DIR; or set DATABASE_URL): initdb failed (code 1): could not extend file "base/1/2691": No space left on device',
    );
    expect(e.message).not.toContain('\n');
  });

  it('keeps a one-line cause as it is, and reads initdb\'s own errors', () => {
    expect(embeddedFailureReason(new Error('port 54329 for the embedded PostgreSQL is taken; stop what uses it'))).toBe('port 54329 for the embedded PostgreSQL is taken; stop what uses it');
    expect(embeddedFailureReason(new Error('initdb failed (code 1): creating directory /x/pg ... \ninitdb: error: could not create directory "/x/pg": Permission denied'))).toBe(
      'initdb failed (code 1): could not create directory "/x/pg": Permission denied',
    );
    expect(embeddedFailureReason(new Error('the embedded PostgreSQL exited (code 1) while starting: 2026-12-04 LOG:  starting\n2026-12-04 FATAL:  could not create lock file "/tmp/.s.PGSQL.5432.lock": Permission denied'))).toBe(
      'the embedded PostgreSQL exited (code 1) while starting: could not create lock file "/tmp/.s.PGSQL.5432.lock": Permission denied',
    );
    expect(embeddedFailureReason('plain')).toBe('plain');
    // a data folder of PostgreSQL 17 under the package's 18 (measured: PG_VERSION changed by hand)
    expect(embeddedFailureReason(new Error('the embedded PostgreSQL exited (code 1) while starting: 2026-12-04 21:23:00.257 UTC [29458] FATAL:  database files are incompatible with server\n2026-12-04 21:23:00.257 UTC [29458] DETAIL:  The data directory was initialized by PostgreSQL version 17, which is not compatible with this version 18.'))).toBe(
      'the embedded PostgreSQL exited (code 1) while starting: database files are incompatible with server (the data folder was made by another PostgreSQL major version: dump it with that version and restore it, or start on a new EARSHOT_DATA_DIR)',
    );
  });
});

describe('a database that cannot be opened at start', () => {
  it('is named by host, port and database, or by the socket folder of libpq\'s Unix-socket URL; never by its password', () => {
    const noDb = new Error('database "nodb" does not exist');
    expect(new DatabaseStartError('postgres://bob:S3cr3t@db.internal:5433/nodb', noDb, 1, 0).message).toBe('cannot open the database at db.internal:5433/nodb (DATABASE_URL): database "nodb" does not exist');
    const socket = new DatabaseStartError('postgresql://bob:S3cr3t@/nodb?sslmode=disable&host=%2Fvar%2Frun%2Fpostgresql', noDb, 1, 0).message;
    expect(socket).toBe('cannot open the database at /var/run/postgresql/nodb (DATABASE_URL): database "nodb" does not exist');
    expect(socket).not.toContain('S3cr3t');
  });
});

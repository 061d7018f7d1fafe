import { describe, expect, it } from 'vitest';
import { identitiesKeepMoving } from '../identity/author-resolution';
import { isRetriable, isTransient, rejectionReason, sqlState, unavailableReason } from './failures';

describe('failure classification', () => {
  it('retries connection, lock, serialization and deadlock failures only', () => {
    const retriable = [
      { code: '08006' }, // connection failure
      { code: '08001' },
      { code: '40001' }, // serialization failure
      { code: '40P01' }, // deadlock
      { code: '55P03' }, // lock not available
      { code: '57P01' }, // admin shutdown
      { code: '57P03' }, // cannot connect now
      { code: '57014' }, // statement timeout
      { code: '53300' }, // too many connections
      { code: '42P01' }, // undefined table: a migration is missing, not a bad message
      { code: '42501' }, // permission denied
      { code: '25006' }, // read-only transaction: a failover's demoted primary, default_transaction_read_only
      { code: '25P03' }, // session ended for idling in a transaction
      { driverError: { code: '40P01' } }, // TypeORM QueryFailedError
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }),
      new Error('Connection terminated unexpectedly'),
      new Error('timeout exceeded when trying to connect'),
      new Error('wrapped', { cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }) }),
      // the author resolution's own conflict: identities moved by merges and erasures racing the batch
      identitiesKeepMoving(),
    ];
    for (const e of retriable) expect(isRetriable(e), JSON.stringify(e) + String(e)).toBe(true);
  });

  it('never retries data, encoding, stack or unknown failures', () => {
    const permanent = [
      { code: '22021' }, // invalid byte sequence (NUL)
      { code: '22P05' }, // unsupported Unicode escape in jsonb
      { code: '22008' }, // datetime field overflow
      { code: '22003' }, // numeric out of range
      { code: '23505' }, // unique violation
      { code: '23514' }, // check violation
      { code: '54001' }, // statement too complex
      { code: 'XX000' }, // internal error
      new RangeError('Maximum call stack size exceeded'),
      new TypeError("Cannot read properties of undefined (reading 'x')"),
      new Error('LZ4 compression not implemented'),
      'a string',
      null,
      undefined,
    ];
    for (const e of permanent) expect(isRetriable(e), String(e)).toBe(false);
  });

  it('reads SQLSTATEs only where they are SQLSTATEs', () => {
    expect(sqlState({ code: 'EPIPE' })).toBeNull();
    expect(sqlState({ code: '22P05' })).toBe('22P05');
    expect(sqlState({ driverError: { code: '40P01' } })).toBe('40P01');
  });

  it('gives a reason a producer can act on', () => {
    expect(rejectionReason(Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' }))).toBe(
      'rejected by the database (SQLSTATE 22021): invalid byte sequence for encoding "UTF8": 0x00',
    );
    expect(rejectionReason(new RangeError('Maximum call stack size exceeded'))).toMatch(/too deeply nested or too large/);
  });

  it('tells transient failures (try again shortly) from deployment faults a person must mend', () => {
    for (const e of [{ code: '08006' }, { code: '53300' }, { code: '55P03' }, { code: '40P01' }, { code: '25006' }, { code: '57014' }, { driverError: { code: '53300' } }, new Error('Connection terminated unexpectedly')]) {
      expect(isTransient(e), JSON.stringify(e) + String(e)).toBe(true);
    }
    for (const e of [{ code: '42P01' }, { code: '42501' }, { code: '28P01' }, { code: '3D000' }, { code: '3F000' }, { code: '23505' }, new TypeError('x')]) {
      expect(isTransient(e), JSON.stringify(e) + String(e)).toBe(false);
    }
  });

  it('says which resource is lacking: a full disk, a read-only server, no connection free, a restart', () => {
    // PostgreSQL with its data volume full, measured: every batch failed with 53100 and /ingest said "the database is unavailable"
    const full = Object.assign(new Error('could not extend file "base/16384/17092": No space left on device'), { code: '53100' });
    expect(isTransient(full)).toBe(true);
    expect(unavailableReason(full)).toBe('the database is out of disk space');
    expect(unavailableReason({ driverError: { code: '25006' } })).toBe('the database is read-only');
    expect(unavailableReason({ code: '53300' })).toBe('the database has no connection free (max_connections)');
    expect(unavailableReason({ code: '53200' })).toBe('the database is out of memory');
    expect(unavailableReason({ code: '57P01' })).toBe('the database is restarting');
    expect(unavailableReason({ code: '55P03' })).toBe('the database is busy (a table is locked by another session)');
    expect(unavailableReason({ code: '08006' })).toBe('the database is unavailable');
    expect(unavailableReason(new Error('Connection terminated unexpectedly'))).toBe('the database is unavailable');
    // 160 aliased reads on 10 pooled connections: pg-pool gave up waiting, the database was up
    expect(unavailableReason(new Error('timeout exceeded when trying to connect'))).toBe("all pooled database connections are busy");
  });

  it("names an operator's statement_timeout and idle_in_transaction_session_timeout, not an outage", () => {
    const timedOut = { driverError: Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }) };
    expect(unavailableReason(timedOut)).toMatch(/^a statement ran past the database's statement_timeout/);
    expect(unavailableReason({ code: '25P03' })).toMatch(/idle_in_transaction_session_timeout/);
    // "due to user request" is an operator's cancel or a statement_timeout PostgreSQL words so: named as either, never an outage
    expect(unavailableReason(Object.assign(new Error('canceling statement due to user request'), { code: '57014' }))).toMatch(/^the database cancelled a statement \(its statement_timeout.*pg_cancel_backend\)$/);
  });
});

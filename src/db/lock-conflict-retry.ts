import type { DataSource, QueryRunner } from 'typeorm';
import { AppError } from '../shared/app-error';
import { sqlState } from './failures';
import { inTransaction } from './transaction';

const ATTEMPTS = 5;

/**
 * `inTransaction` for a person's identity and privacy decisions (merges, undos, links, the review
 * queue, erasure), which can meet one another and ingest in opposite lock orders: a merge
 * repoints the customers merged into the one it merges away (rows it did not lock first), an undo
 * follows a survivor merged meanwhile, an erasure deletes a suggestion an accept holds. PostgreSQL
 * then aborts one transaction as a deadlock (40P01) or serialization failure (40001); it was
 * rolled back whole, so it runs again and sees what the winner committed (and answers CONFLICT or
 * NOT_FOUND where the winner took what it wanted). After `ATTEMPTS` it answers CONFLICT, never an
 * internal error.
 * Must stay true: `fn` has no effect outside its transaction (it may run more than once).
 */
export async function inTransactionRetrying<T>(ds: DataSource, fn: (qr: QueryRunner) => Promise<T>, attempts = ATTEMPTS): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await inTransaction(ds, fn);
    } catch (e) {
      const code = sqlState(e);
      if (code !== '40P01' && code !== '40001') throw e;
      if (attempt >= attempts) throw new AppError('CONFLICT', 'the customers changed under a concurrent change several times; try again');
    }
  }
}

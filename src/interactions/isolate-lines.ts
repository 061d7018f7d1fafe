import { isRetriable, isStatementTimeout, rejectionReason, sqlState } from '../db/failures';

/** What the batch-persist call of the pipeline reports (RecordInteractionsService.record). */
export interface PersistOutcome {
  accepted: number;
  duplicates: number;
}

export interface IsolatedOutcome {
  accepted: number;
  duplicates: number;
  /** positions in the input that failed alone, with a reason; in input order */
  rejected: { index: number; error: string; sqlState: string | null }[];
  /** persist calls made (1 when the batch went through whole) */
  attempts: number;
  /** times a part was split because it ran past the database's statement_timeout */
  timeoutSplits: number;
}

/**
 * Runs the pipeline's batch-persist call so that one line the database (or the pipeline)
 * refuses for its content cannot take the others down with it: when the batch fails with a
 * non-retriable error, it is split in halves, and halves of halves, until each failing line
 * is alone; that line is rejected with its reason, every other line is stored.
 *
 * A wrapper, not a change inside the pipeline: `persist` is any all-or-nothing batch call
 * (one transaction), so the pipeline's internals can change freely beneath it.
 *
 * What must stay true:
 * - a retriable failure (connection, lock, serialization, deadlock) is thrown unchanged,
 *   never turned into a rejection, so callers retry it;
 * - a batch cancelled by the database's `statement_timeout` is split in halves too, each stored
 *   on its own, down to what fits: the whole batch would time out again on every retry (an
 *   operator's `statement_timeout = '100ms'` stalled a Kafka partition on its 500-message chunk
 *   for ever). A single line that still times out is thrown as retriable, never rejected; the
 *   halves tried first run one after the other, so a timeout that no size cures (a lock wait
 *   cut by the timeout) costs about log2(n) attempts before it is thrown;
 * - every input item is either counted as accepted or duplicate, or listed as rejected;
 * - a batch with k bad lines costs about 2·k·log2(n) extra calls, and none when nothing fails;
 * - persist must be idempotent on retried items (the pipeline dedupes on (source, externalId)).
 */
export async function persistIsolating<T>(items: readonly T[], persist: (batch: T[]) => Promise<PersistOutcome>): Promise<IsolatedOutcome> {
  const out: IsolatedOutcome = { accepted: 0, duplicates: 0, rejected: [], attempts: 0, timeoutSplits: 0 };
  const run = async (from: number, to: number): Promise<void> => {
    if (from >= to) return;
    out.attempts++;
    try {
      const r = await persist(items.slice(from, to));
      out.accepted += r.accepted;
      out.duplicates += r.duplicates;
    } catch (e) {
      if (isRetriable(e)) {
        if (to - from === 1 || !isStatementTimeout(e)) throw e;
        out.timeoutSplits++;
      } else if (to - from === 1) {
        out.rejected.push({ index: from, error: rejectionReason(e), sqlState: sqlState(e) });
        return;
      }
      const mid = from + Math.ceil((to - from) / 2);
      await run(from, mid);
      await run(mid, to);
    }
  };
  await run(0, items.length);
  return out;
}

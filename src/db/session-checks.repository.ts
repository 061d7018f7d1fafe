import { firstRow, type Db } from './sql';

/** Tables every Earshot schema holds from its first migration on: where they all are, Earshot's data is. */
const EARSHOT_TABLES = ['migration', 'interaction', 'customer', 'outbox_batch'];

export interface SessionFacts {
  /** the session's current_schema(): the first schema of its search_path that exists (null: none) */
  current: string | null;
  search_path: string;
  /** the schemas of this database that hold Earshot's tables */
  holding: string[];
  session_replication_role: string;
}

/** What a new session of Earshot's inherits that its start checks (./session-checks.ts). */
export async function sessionFacts(db: Db): Promise<SessionFacts> {
  return (await firstRow<SessionFacts>(
    db,
    `SELECT current_schema() AS current, current_setting('search_path') AS search_path,
            coalesce((SELECT array_agg(n.nspname::text ORDER BY n.nspname) FROM pg_namespace n
                       WHERE (SELECT count(*) FROM pg_class c
                               WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p') AND c.relname = ANY($1::text[])) = cardinality($1::text[])),
                     '{}') AS holding,
            current_setting('session_replication_role') AS session_replication_role`,
    [EARSHOT_TABLES],
  ))!;
}

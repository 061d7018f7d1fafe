import type { Db } from './sql';
import { sessionFacts } from './session-checks.repository';

/** A setting Earshot's sessions inherit would make it lose or hide data: said in one line, with what to do. */
export class SessionSettingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SessionSettingError';
  }
}

const SET_WHERE = 'set for the database, the role or the server';

/**
 * Checks at start what an operator's `ALTER DATABASE … SET` or `ALTER ROLE … SET` hands every
 * new session of Earshot's, where Earshot must not pin its own value (./sql.ts pins the others).
 *
 * The schema Earshot creates and reads tables in (the first of the search_path that exists) must
 * be the one that holds its tables. Before, after `search_path = other` Earshot restarted on an
 * empty copy of its tables made in `other` (GraphQL answered totalCount 0 for a database holding
 * data, and ingest wrote there), and with a search_path naming no schema it exited with "no
 * schema has been selected to create in". A new database (no schema holds the tables yet) starts
 * in whichever schema the search_path leads to, as an operator who gives Earshot a schema of its
 * own wants. `checkSchema` false: the caller chose the schema (tests), nothing is checked about it.
 *
 * `session_replication_role` must be `origin`: as `replica` (a superuser's setting, which Earshot's
 * role cannot undo) PostgreSQL fires no ordinary trigger and checks no foreign key. Before, Earshot
 * started on such a database and the live-events trigger sent 0 notifications for 3 stored
 * interactions (GraphQL subscriptions received nothing, with no error); its triggers also fill
 * the CRM write-back queue and the listening-item history.
 */
export async function assertSessionSettings(db: Db, opts: { checkSchema: boolean }): Promise<void> {
  const { current, search_path: searchPath, holding, session_replication_role: replicationRole } = await sessionFacts(db);
  if (replicationRole !== 'origin') {
    throw new SessionSettingError(
      `its sessions' session_replication_role is ${replicationRole} (${SET_WHERE}: ALTER DATABASE … RESET session_replication_role, ALTER ROLE … RESET session_replication_role): ` +
        "PostgreSQL then fires none of the triggers that feed Earshot's live subscriptions, CRM write-back queue and listening-item history, and checks no foreign key",
    );
  }
  if (!opts.checkSchema) return;
  const how = `${SET_WHERE}: ALTER DATABASE … SET search_path, ALTER ROLE … SET search_path`;
  if (current === null) {
    throw new SessionSettingError(
      `its sessions' search_path (${searchPath}; ${how}) names no schema that exists, and Earshot makes and reads its tables in the first one that does: create that schema or set a search_path that leads to ${holding[0] ?? 'public'}`,
    );
  }
  if (holding.length > 0 && !holding.includes(current)) {
    throw new SessionSettingError(
      `Earshot's tables are in schema ${holding.join(', ')}, but its sessions' search_path (${searchPath}; ${how}) leads to schema ${current}, where it would start with no data and make its tables anew: ` +
        `set a search_path whose first existing schema is ${holding[0]}, or move Earshot's tables`,
    );
  }
}

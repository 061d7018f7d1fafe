import pg from 'pg';
import { pgClientConfig, settlePreferSsl } from './pg-connection';
import { backendPid } from './sql';

/**
 * Which of two probe sessions runs each statement: interleaved so that a pooler handing out its
 * server connections last-in-first-out (PgBouncer's default) shows itself at the second
 * statement, and one handing them out in turn (`server_round_robin = 1`) by the fourth, whatever
 * the number of idle server connections.
 */
const PROBE_ORDER = [0, 1, 0, 0, 1, 1, 0, 1] as const;

/**
 * DATABASE_URL leads to a pooler that gives each transaction whichever server connection is
 * free (PgBouncer's `pool_mode = transaction` or `statement`): what Earshot keeps on a session
 * is then on a server connection other clients use. Measured behind PgBouncer 1.18 in
 * transaction mode: two replicas were both outbox relay leaders (each published all 4,000
 * events of 2,000 interactions: 8,000 messages), the leader lock stayed held after both had
 * stopped, GraphQL subscriptions received 0 of 10 stored interactions (the LISTEN was on a
 * server connection the pooler had taken back), and a `lock_timeout` set by one client was
 * seen by another. Session pooling keeps all of it.
 */
export class SessionPoolingError extends Error {
  constructor(evidence: string) {
    super(
      `it is reached through a connection pooler in transaction or statement mode (${evidence}): Earshot keeps advisory locks, LISTEN and settings on its sessions, which such a pooler shares between clients; ` +
        'point DATABASE_URL at PostgreSQL itself or at a pool in session mode (PgBouncer: pool_mode = session)',
    );
    this.name = 'SessionPoolingError';
  }
}

/**
 * Throws {@link SessionPoolingError} when the server connections behind `url` are shared
 * between sessions. Two sessions of its own run a few `pg_backend_pid()` in turn (each statement
 * a transaction of its own): on PostgreSQL itself, or through a pooler in session mode, each
 * session stays on one server process from connect to end, and two sessions open at once never
 * share one; a pooler in transaction or statement mode breaks one or the other. Whatever else
 * the pooler serves meanwhile, a positive is proof, so a direct connection never fails it.
 * A connection failure is thrown as it is (the caller's wait and messages handle it).
 */
export async function assertSessionsKept(url: string): Promise<void> {
  // sslmode=prefer against a server without SSL: these plain clients take ssl: false from pgClientConfig once it is known
  await settlePreferSsl(url);
  const sessions = [0, 1].map(
    () => new pg.Client(pgClientConfig({ connectionString: url, application_name: 'earshot-session-check', connectionTimeoutMillis: 10_000 })),
  );
  // an error on an idle probe session must not end the process; the statement's own error is thrown
  for (const s of sessions) s.on('error', () => undefined);
  try {
    await Promise.all(sessions.map((s) => s.connect()));
    const seen: number[][] = [[], []];
    for (const who of PROBE_ORDER) {
      seen[who]!.push(await backendPid(sessions[who]!));
    }
    const evidence = sharedServerProcesses(seen[0]!, seen[1]!);
    if (evidence !== null) throw new SessionPoolingError(evidence);
  } finally {
    await Promise.all(sessions.map((s) => s.end().catch(() => undefined)));
  }
}

/** Why the server processes two sessions ran on show pooling (see assertSessionsKept), else null. */
export function sharedServerProcesses(a: readonly number[], b: readonly number[]): string | null {
  for (const pids of [a, b]) {
    const distinct = [...new Set(pids)];
    if (distinct.length > 1) return `the statements of one session ran on PostgreSQL server processes ${distinct.join(', ')}`;
  }
  const shared = a.find((pid) => b.includes(pid));
  if (shared !== undefined) return `two sessions open at once ran on one PostgreSQL server process, pid ${shared}`;
  return null;
}

import net from 'node:net';
import pg from 'pg';
import { DataSource, type Logger as TypeOrmLogger } from 'typeorm';
import { AppError } from '../shared/app-error';
import { loopTurns } from '../shared/loop-turns';
import { requestContext } from '../shared/request-context';
import { migrations } from '../../migrations';
import { sqlState } from './failures';
import { pgConnection } from './pg-connection';
import { PinnedClient } from './session-settings';

/**
 * Counts SQL statements, in all and per HTTP request (by request id); tests use it to prove
 * DataLoaders keep a request's query count constant, whatever background jobs do meanwhile.
 */
export class QueryCounter implements TypeOrmLogger {
  count = 0;
  private readonly perRequest = new Map<string, number>();

  logQuery(): void {
    this.count++;
    const id = requestContext.getStore()?.requestId;
    if (id === undefined) return;
    this.perRequest.set(id, (this.perRequest.get(id) ?? 0) + 1);
    // bounded: only the newest requests are kept
    if (this.perRequest.size > 1000) this.perRequest.delete(this.perRequest.keys().next().value!);
  }

  ofRequest(requestId: string): number {
    return this.perRequest.get(requestId) ?? 0;
  }

  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

export interface DataSourceOptions {
  url: string;
  poolSize?: number;
  /**
   * an idle pooled connection is closed after this long (ms; node-postgres' default is 10 s). A
   * new connection costs a connection set-up and a backend with cold catalog caches: with the
   * default, the API closed its pool in each 10-second lull of bench:graphql's turns, and the
   * first requests after it waited up to 330 ms at 10 connections (180–220 ms with 60 s)
   */
  poolIdleMs?: number;
  /** applies to every connection: lets tests isolate themselves in a schema */
  schema?: string;
  applicationName?: string;
  /** counts this data source's statements too (the ingest pool shares the main pool's counter) */
  queries?: QueryCounter;
  /** told when a connection in use is lost (its statement or transaction fails on its own) */
  onConnectionLost?: (err: Error) => void;
}

export function createDataSource(opts: DataSourceOptions): { dataSource: DataSource; queries: QueryCounter } {
  const queries = opts.queries ?? new QueryCounter();
  const dataSource = new DataSource({
    type: 'postgres',
    url: opts.url,
    schema: opts.schema,
    // no entities: SQL lives in the feature repositories (src/**/*.repository.ts, through src/db/sql.ts)
    entities: [],
    migrations,
    migrationsTableName: 'migration',
    synchronize: false,
    logging: ['query'],
    logger: queries,
    poolSize: opts.poolSize ?? 10,
    applicationName: opts.applicationName ?? 'earshot',
    extra: {
      // the wait for a connection of the pool (a free one, or a new one): 10 s, or the URL's
      // connect_timeout when longer, so that each attempt has all of it (PinnedClient bounds the
      // attempt itself by connect_timeout, ./pg-connection.ts)
      connectionTimeoutMillis: Math.max(10_000, pgConnection(opts.url).connectTimeoutMs ?? 0),
      idleTimeoutMillis: opts.poolIdleMs ?? 60_000,
      options: opts.schema ? `-c search_path=${opts.schema}` : undefined,
      Client: guardedClient(opts.onConnectionLost ?? (() => undefined)),
      types: UTC_DATES,
    },
  });
  takeTurnsInRequests(dataSource);
  return { dataSource, queries };
}

const DATE_OID = 1082;

/**
 * A `date` value (a UTC day everywhere in Earshot: the rollups' `day`, `sentiment_ref`) read as
 * the UTC midnight it names. node-postgres reads it as the midnight of the host's time zone, so the
 * data export's `dailySentiment` day 2026-12-04 came out as 2026-12-03T10:00:00.000Z under
 * TZ=Pacific/Kiritimati and 2026-12-04T11:00:00.000Z under TZ=Pacific/Pago_Pago. Infinity stays.
 */
const localMidnight = pg.types.getTypeParser(DATE_OID, 'text');
function utcDate(value: string): unknown {
  const local = localMidnight(value) as unknown;
  if (!(local instanceof Date) || Number.isNaN(local.getTime())) return local;
  const utc = new Date(0);
  utc.setUTCFullYear(local.getFullYear(), local.getMonth(), local.getDate());
  return utc;
}
export const UTC_DATES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === DATE_OID && format !== 'binary' ? utcDate : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * Every pooled connection of the data source, with an 'error' listener from the moment it is
 * made (pg-pool's `Client` option). node-postgres' pool listens only while a connection is idle,
 * TypeORM only while a query runner holds it. A pg connection that emits 'error' with no listener
 * ends the process: no 503 while the embedded server is restarted, no retry. One CI run's
 * self-healing test died so ("Unhandled 'error' event … unexpected postmaster exit"); which
 * connection that was, and in which state, was not found, so this listener is a guard for every
 * state of a pooled one, not a proven fix. Whoever uses the connection still sees its failure.
 */
function guardedClient(onLost: (err: Error) => void): typeof pg.Client {
  // with Earshot's session settings pinned, whatever the database's defaults (./session-settings.ts)
  return class GuardedClient extends PinnedClient {
    constructor(config?: string | pg.ClientConfig) {
      super(config);
      // A client the pool is ending (a pool closed at shutdown ends its clients without waiting
      // for the server) may still hear the server's own fast shutdown, 57P01: that is no lost
      // connection. Under load the backend had not yet read the client's Terminate when the
      // embedded PostgreSQL stopped, and a clean Ctrl-C logged a warning with a stack.
      this.on('error', (err: Error) => {
        if (!(this as unknown as { _ending?: boolean })._ending) onLost(err);
      });
    }
  };
}

/**
 * A statement run on the pool (`DataSource.query`, not in a transaction) on behalf of a GraphQL
 * operation resumes its caller in a turn of the event loop of its own (src/shared/loop-turns.ts):
 * what the operation does with the rows — executing its selection, serializing the answer — no
 * longer runs in the callback that read them, with every other result read in the same turn.
 * Statements in transactions (a query runner) resume at once: they hold locks.
 *
 * A GraphQL query's such statements are also bounded by its time budget (see queryWithin).
 */
function takeTurnsInRequests(dataSource: DataSource): void {
  const query = dataSource.query.bind(dataSource);
  dataSource.query = async function turnTakingQuery(text, parameters, queryRunner) {
    const store = requestContext.getStore();
    const deadline = queryRunner ? undefined : store?.readDeadline;
    const read = store?.readBytes;
    if (read !== undefined && read.used > read.limit) throw overReadBudget(read.limit);
    const result: unknown = deadline ? await queryWithin(dataSource, query, deadline, text, parameters) : await query(text, parameters, queryRunner);
    if (read !== undefined && Array.isArray(result)) {
      read.used += textIn(result);
      // the rows are dropped here, before the operation builds its answer from them
      if (read.used > read.limit) throw overReadBudget(read.limit);
    }
    if (!queryRunner && store?.loopTurns) await loopTurns.take();
    return result;
  } as DataSource['query'];
}

/** Characters in the string values of a statement's rows (the text a GraphQL query holds and answers with). */
function textIn(rows: unknown[]): number {
  let n = 0;
  for (const row of rows) {
    if (row === null || typeof row !== 'object') continue;
    for (const v of Object.values(row as Record<string, unknown>)) if (typeof v === 'string') n += v.length;
  }
  return n;
}

function overReadBudget(limit: number): AppError {
  return new AppError(
    'COST_LIMIT_EXCEEDED',
    `the query read more than ${limit} characters of text from the database (EARSHOT_GRAPHQL_MAX_READ_BYTES): ask for fewer items or aliases in one request, or page an export with interactionsFirst (listeningItemsFirst, addressedRepliesFirst for those lists)`,
  );
}

function overBudget(deadline: { budgetMs: number }): AppError {
  return new AppError(
    'TIME_BUDGET_EXCEEDED',
    `the database did not answer within the operation's time budget of ${deadline.budgetMs} ms (EARSHOT_GRAPHQL_TIME_BUDGET_MS) and the statement was cancelled: ` +
      'a table it reads may be locked by maintenance (VACUUM FULL, ALTER TABLE, a migration) or the database is overloaded; try again shortly, and ask for less if it keeps failing',
  );
}

/**
 * Runs a GraphQL query's pooled statement, cancelled on the server once the query is past its
 * budget (`deadline`). Without it, a read blocked by a lock (`LOCK TABLE customer IN ACCESS
 * EXCLUSIVE MODE`, as VACUUM FULL or ALTER TABLE take) waited for the lock for ever on its pooled
 * connection: ten such requests held the whole pool, and /readyz's own statement waited for one.
 * The cancel is PostgreSQL's cancel request, sent on a socket of its own (no pooled connection, no
 * privilege): the statement fails with 57014 and its connection goes back to the pool, usable. A
 * statement waiting for a pooled connection past the deadline stops waiting (the connection, once
 * got, goes back unused). A timer alone in the client (pg's query_timeout) would leave the
 * statement running on the server, holding its connection. A per-session
 * lock_timeout or statement_timeout would reach migrations, ingest and jobs on the same pool.
 */
async function queryWithin(
  dataSource: DataSource,
  query: DataSource['query'],
  deadline: { at: number; budgetMs: number },
  text: string,
  parameters: Parameters<DataSource['query']>[1],
): Promise<unknown> {
  const qr = dataSource.createQueryRunner();
  const connecting = qr.connect() as Promise<pg.Client>;
  let client: pg.Client | null = null;
  let cancelled: Promise<void> | null = null;
  let expire!: (value: null) => void;
  const expired = new Promise<null>((resolve) => (expire = resolve));
  const timer = setTimeout(() => {
    if (client !== null) cancelled = cancelStatement(client);
    expire(null);
  }, Math.max(0, deadline.at - performance.now()));
  try {
    client = await Promise.race([connecting, expired]);
  } catch (e) {
    clearTimeout(timer);
    await qr.release().catch(() => undefined);
    throw e;
  }
  if (client === null) {
    // still waiting for the pool: the connection goes back as soon as it is got
    connecting.then(() => qr.release(), () => qr.release()).catch(() => undefined);
    throw overBudget(deadline);
  }
  try {
    return await query(text, parameters, qr);
  } catch (e) {
    if (cancelled !== null && sqlState(e) === '57014') throw overBudget(deadline);
    throw e;
  } finally {
    clearTimeout(timer);
    // a cancel that reached the server after the statement ended must not meet the next one on
    // this connection: it goes back to the pool once the server has taken the cancel
    if (cancelled !== null) await cancelled;
    await qr.release();
  }
}

/**
 * PostgreSQL's cancel request for the statement `client` runs, on a connection of its own; done
 * when the server has taken it (it closes that connection) or could not be reached.
 */
function cancelStatement(client: pg.Client): Promise<void> {
  const { processID, secretKey, host, port } = client as pg.Client & { processID: number | null; secretKey: number | null };
  if (processID === null || secretKey === null) return Promise.resolve();
  return new Promise((resolve) => {
    const socket = host.startsWith('/') ? net.connect(`${host}/.s.PGSQL.${port}`) : net.connect(port, host);
    const done = () => {
      clearTimeout(giveUp);
      socket.destroy();
      resolve();
    };
    // a server that neither takes nor refuses it does not hold the connection back for long
    const giveUp = setTimeout(done, CANCEL_WAIT_MS);
    socket.on('error', done);
    socket.on('close', done);
    socket.on('connect', () => {
      const packet = Buffer.alloc(16);
      packet.writeInt32BE(16, 0);
      packet.writeInt32BE(80877102, 4); // CancelRequest code
      packet.writeInt32BE(processID, 8);
      packet.writeInt32BE(secretKey, 12);
      socket.end(packet);
    });
  });
}

/** How long a cancel request may take to be taken before its connection is released anyway. */
const CANCEL_WAIT_MS = 5_000;

/** Pending migrations, without running them. */
export async function pendingMigrations(ds: DataSource): Promise<boolean> {
  return ds.showMigrations();
}

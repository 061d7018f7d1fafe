import pg from 'pg';
import { DataSource, type Logger as TypeOrmLogger } from 'typeorm';
import { loopTurns } from '../shared/loop-turns';
import { requestContext } from '../shared/request-context';
import { migrations } from '../../migrations';

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
  /** told when a connection in use is lost (its statement or transaction fails on its own) */
  onConnectionLost?: (err: Error) => void;
}

export function createDataSource(opts: DataSourceOptions): { dataSource: DataSource; queries: QueryCounter } {
  const queries = new QueryCounter();
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
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: opts.poolIdleMs ?? 60_000,
      options: opts.schema ? `-c search_path=${opts.schema}` : undefined,
      Client: guardedClient(opts.onConnectionLost ?? (() => undefined)),
    },
  });
  takeTurnsInRequests(dataSource);
  return { dataSource, queries };
}

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
  return class GuardedClient extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      super(config);
      this.on('error', onLost);
    }
  };
}

/**
 * A statement run on the pool (`DataSource.query`, not in a transaction) on behalf of a GraphQL
 * operation resumes its caller in a turn of the event loop of its own (src/shared/loop-turns.ts):
 * what the operation does with the rows — executing its selection, serializing the answer — no
 * longer runs in the callback that read them, with every other result read in the same turn.
 * Statements in transactions (a query runner) resume at once: they hold locks.
 */
function takeTurnsInRequests(dataSource: DataSource): void {
  const query = dataSource.query.bind(dataSource);
  dataSource.query = async function turnTakingQuery(text, parameters, queryRunner) {
    const result: unknown = await query(text, parameters, queryRunner);
    if (!queryRunner && requestContext.getStore()?.loopTurns) await loopTurns.take();
    return result;
  } as DataSource['query'];
}

/** Pending migrations, without running them. */
export async function pendingMigrations(ds: DataSource): Promise<boolean> {
  return ds.showMigrations();
}

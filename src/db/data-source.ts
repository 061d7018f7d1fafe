import { DataSource, type Logger as TypeOrmLogger } from 'typeorm';
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
  /** applies to every connection: lets tests isolate themselves in a schema */
  schema?: string;
  applicationName?: string;
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
      options: opts.schema ? `-c search_path=${opts.schema}` : undefined,
    },
  });
  return { dataSource, queries };
}

/** Pending migrations, without running them. */
export async function pendingMigrations(ds: DataSource): Promise<boolean> {
  return ds.showMigrations();
}

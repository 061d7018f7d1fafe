import { DataSource, type Logger as TypeOrmLogger } from 'typeorm';
import { migrations } from '../../migrations';
import { entities } from './entities';

/** Counts SQL statements; tests use it to prove DataLoaders keep query counts constant. */
export class QueryCounter implements TypeOrmLogger {
  count = 0;
  logQuery(): void {
    this.count++;
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
    entities,
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

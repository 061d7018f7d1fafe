import { startApp, type RunningApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import type { Clock } from '../../src/shared/clock';
import { createLogger } from '../../src/shared/logger';
import { createTestDatabase, type TestDatabase } from './postgres';

export interface TestApp extends RunningApp {
  database: TestDatabase;
  /** POST a GraphQL operation; returns the parsed body and the HTTP status */
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Promise<{ status: number; data: T; errors?: { message: string; extensions?: { code?: string } }[] }>;
  close(): Promise<void>;
}

/**
 * The whole service in-process on its own fresh database, listening on a free port. Pass the
 * `database` of an earlier app (stopped with `stop()`) to start again on its data: a restart.
 */
export async function startTestApp(env: Record<string, string> = {}, label = 'app', existing?: TestDatabase, opts: { clock?: Clock } = {}): Promise<TestApp> {
  const database = existing ?? (await createTestDatabase(label));
  const config = loadConfig({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', DATABASE_URL: database.url, ...env });
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'error');
  const app = await startApp(config, log, undefined, opts);
  return Object.assign(app, {
    database,
    async gql(query: string, variables?: Record<string, unknown>, headers: Record<string, string> = {}) {
      const res = await fetch(`${app.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await res.json()) as { data: never; errors?: never };
      return { status: res.status, data: body.data, errors: body.errors };
    },
    async close() {
      await app.stop();
      await database.drop();
    },
  });
}

/**
 * One valid interactions.v1 message; override what the test is about. occurredAt is n minutes
 * after 2026-11-01T12:00Z, n taken modulo 40,000 (at most 2026-11-29): ingest refuses dates more
 * than a day past its clock (EARSHOT_INGEST_MAX_FUTURE_DAYS), and tests use n in the millions.
 */
export function message(n: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    eventId: `evt-${n}`,
    source: 'x',
    externalId: `ext-${n}`,
    occurredAt: new Date(Date.UTC(2026, 10, 1, 12, 0, 0) + (n % 40_000) * 60_000).toISOString(),
    direction: 'inbound',
    author: { handle: `user${n}`, displayName: `User ${n}` },
    text: n % 3 === 0 ? 'I love this, great service!' : n % 3 === 1 ? 'My parcel is late and nobody answers. Terrible.' : 'How do I change my password?',
    ...over,
  };
}

export function ndjson(lines: unknown[]): string {
  return lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n');
}

/** Starts a re-score job and waits for this process to finish it (`idle`); throws unless it succeeded. */
export async function rescoreToEnd(app: TestApp) {
  const job = await app.services.rescore.start('test');
  await app.services.rescore.idle();
  const done = await app.services.rescore.get(job.id);
  if (done.status !== 'succeeded') throw new Error(`re-score job ${done.status}: ${done.error ?? 'not finished'}`);
  return done;
}

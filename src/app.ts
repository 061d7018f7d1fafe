import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import type http from 'node:http';
import type { DataSource } from 'typeorm';
import { AuthService } from './auth/auth.service';
import type { Config } from './config/config';
import { CustomerResolver } from './customers/customer.resolver';
import { CustomerService } from './customers/customer.service';
import { createCrmClients } from './crm/crm-clients';
import { CrmRecordService } from './crm/crm-record.service';
import { CrmResolver } from './crm/crm.resolver';
import { CrmSyncService } from './crm/crm-sync.service';
import { CrmWritebackService } from './crm/crm-writeback.service';
import { createDataSource, type QueryCounter } from './db/data-source';
import { pgConnection, settlePreferSsl } from './db/pg-connection';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from './db/embedded-postgres';
import { runMigrationsLocked } from './db/migrate';
import { assertSessionsKept } from './db/session-pooling';
import { assertSessionSettings } from './db/session-checks';
import { exec } from './db/sql';
import { createApollo } from './graphql/apollo';
import { createLoaders } from './graphql/loaders';
import { NodeResolver } from './graphql/node.resolver';
import { createSchema } from './graphql/schema';
import { ViewerResolver } from './auth/viewer.resolver';
import { CONSOLE_DIR } from './http/console.static';
import { toSubgraphSchema } from './graphql/federation';
import { TrustedDocuments } from './graphql/trusted-documents';
import { LiveEvents } from './graphql/live-events';
import { LiveHub } from './graphql/live-hub';
import { SubscriptionResolver } from './graphql/subscription.resolver';
import { attachSubscriptionServer } from './graphql/ws-server';
import { createHttpServer, createMetricsServer, type HttpDeps, type StartingServer } from './http/http-server';
import { OperationSlots } from './http/operation-slots';
import { IdentityService } from './identity/identity.service';
import { CustomerMergeHistoryResolver, IdentityChangeResolver, IdentityResolver } from './identity/identity.resolver';
import { ReresolutionJobService } from './identity/reresolve.job';
import { startKafkaPipeline, type KafkaPipeline } from './ingest/kafka-pipeline';
import { IngestService } from './interactions/ingest.service';
import { AuthorResolver, InteractionResolver } from './interactions/interaction.resolver';
import { InteractionService } from './interactions/interaction.service';
import { EscalationJob } from './listening-gap/escalation.job';
import { ListeningGapResolver, TopicInsightResolver } from './listening-gap/listening-gap.resolver';
import { ListeningGapService } from './listening-gap/listening-gap.service';
import { ListeningGapTracker } from './listening-gap/listening-gap.tracker';
import { RecordInteractionsService } from './interactions/record-interactions.service';
import { AnalyzePool } from './sentiment/analyze.pool';
import { warmLanguageDetector } from './sentiment/language';
import { ErasureService } from './privacy/erasure.service';
import { CustomerExportService } from './privacy/export.service';
import { PrivacyResolver } from './privacy/privacy.resolver';
import { RetentionJob } from './privacy/retention.job';
import { RetagJobRunner } from './sentiment/retag.job';
import { RemoteSentimentModel } from './sentiment/remote-model.client';
import { RescoreJobRunner } from './sentiment/rescore.job';
import { SentimentScorer } from './sentiment/sentiment.scorer';
import { SentimentResolver } from './sentiment/sentiment.resolver';
import { TaxonomyService } from './sentiment/taxonomy.service';
import { systemClock, type Clock } from './shared/clock';
import type { Logger } from './shared/logger';
import { IdleGc } from './shared/idle-gc';
import { Metrics } from './shared/metrics';
import type { TaskDeps } from './shared/task-runner';

export interface Database {
  /** the main pool (DATABASE_POOL_SIZE): the API, readiness, migrations (and the jobs without a jobs pool) */
  ds: DataSource;
  /**
   * the ingest pool (DATABASE_INGEST_POOL_SIZE) once {@link Database.openIngestPool} opened it,
   * else null and ingest stores on `ds`. Its own: the API's reads, however many wait on a lock,
   * cannot take the connections POST /ingest and the Kafka consumer store with
   */
  ingestDs: DataSource | null;
  /**
   * the jobs pool (DATABASE_JOBS_POOL_SIZE) once {@link Database.openJobsPool} opened it, else null
   * and the background jobs run on `ds`. Its own: jobs waiting on a lock (a re-score's page, a CRM
   * sync's batch behind an operator's CREATE INDEX) hold their connections here, not the API's
   */
  jobsDs: DataSource | null;
  queries: QueryCounter;
  embedded: EmbeddedPostgresHandle | null;
  /** opens the ingest pool (once; closed with the database) */
  openIngestPool(): Promise<DataSource>;
  /** opens the jobs pool (once; closed with the database) */
  openJobsPool(): Promise<DataSource>;
  close(): Promise<void>;
}

/** Connects to DATABASE_URL, or starts the embedded server first; runs pending migrations. */
export async function openDatabase(
  config: Config,
  log: Logger,
  opts: { migrate?: boolean; schema?: string; onFatal?: (err: Error) => void; useRunningEmbedded?: boolean } = {},
): Promise<Database> {
  let embedded: EmbeddedPostgresHandle | null = null;
  let url = config.databaseUrl;
  if (!url) {
    embedded = await startEmbeddedPostgres(config.dataDir, config.embeddedPgPort, log, { onFatal: opts.onFatal, useRunning: opts.useRunningEmbedded }).catch((e: unknown) => {
      throw new EmbeddedStartError(config.dataDir, e);
    });
    url = embedded.url;
  }
  const { dataSource: ds, queries } = createDataSource({
    url,
    poolSize: config.databasePoolSize,
    poolIdleMs: config.databasePoolIdleMs,
    schema: opts.schema,
    onConnectionLost: (err) => log.warn({ err }, 'a database connection was lost; a statement on it fails, and the pool opens a new one'),
  });
  try {
    // sslmode=prefer: whether the server offers SSL, asked once before the first connection (src/db/pg-connection.ts)
    if (!embedded) await settlePreferSsl(url, { log });
    await ds.initialize();
    // before any lock or LISTEN is taken: a transaction-mode pooler shares them (src/db/session-pooling.ts)
    if (!embedded) await assertSessionsKept(url);
    // what an operator's database or role settings hand the sessions (a schema given by the caller, in tests, is chosen on purpose)
    await assertSessionSettings(ds, { checkSchema: !opts.schema });
    if (opts.migrate !== false) {
      const ran = await runMigrationsLocked(ds, log);
      if (ran.length > 0) log.info({ migrations: ran.map((m) => m.name) }, 'migrations applied');
    }
  } catch (e) {
    if (ds.isInitialized) await ds.destroy().catch(() => undefined);
    if (embedded) await embedded.stop().catch(() => undefined);
    throw e;
  }
  /**
   * A pool besides the main one, opened once: the same database, schema and connection guard;
   * its statements are counted with the main pool's (tests count a request's statements,
   * whichever pool ran them). A failed open is tried again at the next call.
   */
  const extraPool = (pool: 'ingest' | 'jobs', poolSize: number, opened: (ds: DataSource) => void) => {
    let opening: Promise<DataSource> | null = null;
    return {
      open(): Promise<DataSource> {
        opening ??= (async () => {
          const { dataSource } = createDataSource({
            url: url!,
            poolSize,
            poolIdleMs: config.databasePoolIdleMs,
            schema: opts.schema,
            applicationName: `earshot-${pool}`,
            queries,
            onConnectionLost: (err) => log.warn({ err, pool }, 'a database connection was lost; a statement on it fails, and the pool opens a new one'),
          });
          await dataSource.initialize();
          opened(dataSource);
          return dataSource;
        })().catch((e) => {
          opening = null;
          throw e;
        });
        return opening;
      },
      async close(): Promise<void> {
        const opened = await opening?.catch(() => null);
        if (opened?.isInitialized) await opened.destroy();
      },
    };
  };
  const ingestPool = extraPool('ingest', config.databaseIngestPoolSize, (d) => (database.ingestDs = d));
  const jobsPool = extraPool('jobs', config.databaseJobsPoolSize, (d) => (database.jobsDs = d));
  const database: Database = {
    ds,
    ingestDs: null,
    jobsDs: null,
    queries,
    embedded,
    openIngestPool: () => ingestPool.open(),
    openJobsPool: () => jobsPool.open(),
    async close() {
      await ingestPool.close();
      await jobsPool.close();
      if (ds.isInitialized) await ds.destroy();
      if (embedded) await embedded.stop();
    },
  };
  return database;
}

/** pg and socket errors of a database that may answer soon: not up yet, starting up, restarting, full. */
const TRANSIENT_CONNECT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', '57P03', '53300']);

export function isTransientConnectError(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | null;
  if (typeof err?.code === 'string' && TRANSIENT_CONNECT_CODES.has(err.code)) return true;
  // node-postgres' own connection timeout and a server that hangs up during start carry no code
  return typeof err?.message === 'string' && /^(timeout expired|Connection terminated)/.test(err.message);
}

/**
 * The embedded PostgreSQL (no DATABASE_URL) could not start: said in one line with the data
 * folder and the line of PostgreSQL's output that tells why (initdb's 40 lines of progress on a
 * full disk, or a stack trace for a folder that cannot be made, hid it).
 */
export class EmbeddedStartError extends Error {
  constructor(dataDir: string, cause: unknown) {
    super(`cannot start the embedded PostgreSQL (data in ${dataDir}, EARSHOT_DATA_DIR; or set DATABASE_URL): ${embeddedFailureReason(cause)}`, { cause });
    this.name = 'EmbeddedStartError';
  }
}

/** The telling line of an embedded start failure: PostgreSQL's FATAL/PANIC/ERROR line when its output holds one. */
export function embeddedFailureReason(cause: unknown): string {
  const message = String((cause as Error)?.message ?? cause);
  const lines = message.split('\n').map((l) => l.trim()).filter(Boolean);
  const first = lines[0] ?? 'unknown error';
  const telling = lines.find((l) => /\b(FATAL|PANIC|ERROR):\s/.test(l) || /^initdb: error:/.test(l));
  if (!telling) return first;
  // "2026-12-04 21:05:56.685 UTC [19012] FATAL:  could not extend …": the words after the level
  const what = telling.replace(/^.*?\b(FATAL|PANIC|ERROR):\s+/, '').replace(/^initdb: error:\s*/, '');
  // a data folder made by another major version (the embedded-postgres package was upgraded)
  const hint = /database files are incompatible with server/.test(what)
    ? ' (the data folder was made by another PostgreSQL major version: dump it with that version and restore it, or start on a new EARSHOT_DATA_DIR)'
    : '';
  return `${first.replace(/:$/, '').split(': ')[0]}: ${what}${hint}`;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The database could not be opened at start: said in one line (host, port, database; never the password). */
export class DatabaseStartError extends Error {
  constructor(url: string, cause: unknown, attempts: number, waitedMs: number) {
    let where = 'named by DATABASE_URL';
    try {
      const u = new URL(url);
      where = `at ${u.hostname}${u.port ? `:${u.port}` : ''}/${decodeURIComponent(u.pathname.slice(1)) || '(default database)'} (DATABASE_URL)`;
    } catch {
      // a URL pg accepts but WHATWG does not: libpq's Unix-socket form names the socket's folder
      const socket = /^postgres(?:ql)?:\/\/(?:[^@/?#]*@)?\/([^?#]*)\?(?:[^#]*&)?host=([^&#]*)/i.exec(url);
      if (socket) where = `at ${safeDecode(socket[2]!)}/${safeDecode(socket[1]!) || '(default database)'} (DATABASE_URL)`;
    }
    let reason = String((cause as Error)?.message ?? cause).split('\n')[0];
    // node-postgres' words for an attempt cut at its bound: say which bound, and where it is set
    if (/^(timeout expired|Connection terminated due to connection timeout)/.test(reason!)) {
      const given = pgConnection(url).connectTimeoutMs;
      reason = `no answer within ${given === null ? '10 s (set connect_timeout in DATABASE_URL for another bound)' : `${given / 1000} s (connect_timeout in DATABASE_URL)`}`;
    }
    super(`cannot open the database ${where}: ${reason}${attempts > 1 ? ` (${attempts} tries in ${Math.round(waitedMs / 1000)} s, DATABASE_START_WAIT_MS)` : ''}`, { cause });
    this.name = 'DatabaseStartError';
  }
}

/**
 * {@link openDatabase} for `serve`: with DATABASE_URL, a database that cannot be reached yet
 * (a compose file or an orchestrator starting both at once, a failover) is tried again with
 * backoff for `databaseStartWaitMs`; an error that waiting cannot mend (no such database, a
 * wrong password, a missing grant) ends the start at once. Either failure is a
 * {@link DatabaseStartError}. `stop` resolves when the process is asked to stop: the wait ends.
 */
export async function openDatabaseWaiting(
  config: Config,
  log: Logger,
  opts: Parameters<typeof openDatabase>[2] & { onWait?: (attempt: number) => void; stop?: Promise<void> },
): Promise<Database> {
  const started = Date.now();
  let delay = 500;
  let stopped = false;
  void opts.stop?.then(() => (stopped = true));
  for (let attempt = 1; ; attempt++) {
    try {
      return await openDatabase(config, log, opts);
    } catch (e) {
      if (!config.databaseUrl) throw e;
      const waited = Date.now() - started;
      if (!isTransientConnectError(e) || stopped || waited + delay > config.databaseStartWaitMs) throw new DatabaseStartError(config.databaseUrl, e, attempt, waited);
      log.warn({ err: e, attempt, retryInMs: delay }, 'the database cannot be reached yet; trying again');
      opts.onWait?.(attempt);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise((r) => (timer = setTimeout(r, delay))), opts.stop ?? new Promise(() => undefined)]);
      clearTimeout(timer);
      delay = Math.min(delay * 2, 5_000);
    }
  }
}

/** Every service of the process, wired by hand in one place. */
export function createServices(config: Config, db: Database, log: Logger, metrics: Metrics, clock: Clock = systemClock) {
  const tasks: TaskDeps = { clock, onRun: (name, outcome, seconds) => metrics.taskRuns.labels(name, outcome).observe(seconds) };
  // ingest stores on a pool of its own when the process opened one (the ingest role: startApp)
  const ingestDs = db.ingestDs ?? db.ds;
  // and background jobs on theirs (startApp opens it): waiting on a lock, they hold none of the API's
  const jobsDs = db.jobsDs ?? db.ds;
  const taxonomy = new TaxonomyService(db.ds, ingestDs);
  const { url } = config.sentiment;
  const remoteModel = url ? new RemoteSentimentModel({ ...config.sentiment, url }, log.child({ component: 'sentiment-model' }), metrics.registry) : null;
  const scorer = new SentimentScorer(taxonomy, remoteModel, log.child({ component: 'sentiment-model' }), config.sentiment.batchSize);
  const gapTracker = new ListeningGapTracker(config.listeningGap);
  const recorder = new RecordInteractionsService(ingestDs, taxonomy, config, log.child({ component: 'pipeline' }), gapTracker, scorer);
  recorder.onHubCapped = (n) => metrics.identityHubCapped.inc(n);
  // the edge measures "too far in the future" against the service's clock, as every later stage does
  const ingestLimits = { ...config.ingestLimits, now: () => clock.now() };
  const ingest = new IngestService(recorder, ingestLimits, metrics, log.child({ component: 'ingest' }), config.ingestLanes);
  const customers = new CustomerService(db.ds);
  const interactions = new InteractionService(db.ds);
  const auth = new AuthService(config.auth);
  // the CRM sync's intake writes on the jobs pool; merges and suggestions of the API on the main one
  const identity = new IdentityService(db.ds, config, log.child({ component: 'identity' }), jobsDs);
  const reresolution = new ReresolutionJobService(jobsDs, identity, config, log.child({ component: 'reresolution' }), tasks);
  const retag = new RetagJobRunner(jobsDs, taxonomy, log.child({ component: 'retag' }), tasks);
  const analyzePool = new AnalyzePool({ threads: config.graphql.analyzeWorkers, minBytes: config.graphql.analyzeWorkerMinBytes }, log.child({ component: 'analyze' }));
  const rescore = new RescoreJobRunner(jobsDs, taxonomy, scorer, gapTracker, config, log.child({ component: 'rescore' }));
  const crmClients = createCrmClients(config.crm, log, { now: () => clock.now() });
  const crmSync = new CrmSyncService(jobsDs, identity, crmClients, config.crm, log.child({ component: 'crm-sync' }), tasks);
  const crmWriteback = new CrmWritebackService(jobsDs, crmClients, config.crm, config.publicUrl, log.child({ component: 'crm-writeback' }), undefined, tasks, metrics.registry);
  const crmRecords = new CrmRecordService(db.ds, config.crm);
  const listeningGap = new ListeningGapService(db.ds, config.listeningGap, clock);
  const escalation = new EscalationJob(jobsDs, crmClients, config.listeningGap, config.publicUrl, log.child({ component: 'escalation' }), { ...tasks, onSkipped: (n) => metrics.gapEscalationsSkipped.labels('past_horizon').inc(n) });
  const erasure = new ErasureService(db.ds, crmClients, identity.keyOptions, log.child({ component: 'erasure' }), tasks);
  const exports = new CustomerExportService(db.ds, identity.keyOptions);
  const retention = new RetentionJob(jobsDs, config.retentionDays, log.child({ component: 'retention' }), { ...tasks, onRedacted: (n) => metrics.retentionRedacted.inc(n) });
  return { taxonomy, remoteModel, scorer, rescore, recorder, ingestLimits, ingest, customers, interactions, auth, retag, analyzePool, identity, reresolution, crmSync, crmWriteback, crmRecords, listeningGap, escalation, erasure, exports, retention };
}
export type Services = ReturnType<typeof createServices>;

export interface RunningApp {
  url: string;
  /** /metrics on its own port (EARSHOT_METRICS_PORT), else null */
  metricsUrl: string | null;
  db: Database;
  services: Services;
  metrics: Metrics;
  server: http.Server;
  /** the ingest role's consumer and outbox relay; null without KAFKA_BROKERS or the ingest role */
  kafka: KafkaPipeline | null;
  stop(): Promise<void>;
}

/**
 * Starts the roles of `config` and listens; `stop()` drains and closes everything.
 *
 * What must stay true: HTTP answers before the Kafka consumer has joined its group (which
 * can take a session timeout after a crash): /readyz says why it is not ready meanwhile.
 * `opts.server`, already listening (listenWhileStarting), is used instead of a new one;
 * `opts.clock` drives the background tasks (tests move it instead of sleeping).
 *
 * A start that fails at any step (the metrics port taken, the Kafka group not joined, the
 * LISTEN session refused) closes what the steps before had started (HTTP servers, the Kafka
 * consumer and relay, background jobs and their timers, worker threads, the database pools it
 * opened) before it rejects: the process then ends by itself with its exit code. It stayed,
 * held by those handles, and main.ts ended it a second later whatever was still running
 * (test/integration/start-failure-cleanup.test.ts).
 */
export async function startApp(config: Config, log: Logger, database?: Database, opts: { server?: StartingServer; clock?: Clock } = {}): Promise<RunningApp> {
  const startedAt = Date.now();
  const db = database ?? (await openDatabase(config, log));
  // What the start has started so far, each closed by `close` below: at stop(), or when a later step fails.
  let services: Services | null = null;
  let apollo: Awaited<ReturnType<typeof createApollo>> | null = null;
  let server: http.Server | null = null;
  let kafka: KafkaPipeline | null = null;
  let idleGc: IdleGc | null = null;
  let live: { events: LiveEvents; hub: LiveHub; ws: { close(): Promise<void> } } | null = null;
  let metricsServer: http.Server | null = null;
  /**
   * Closes what was started, in the order a stop drains it. `drain`: in-flight HTTP requests get
   * EARSHOT_SHUTDOWN_TIMEOUT_MS (a stop); without it (a failed start) connections are cut at once.
   * Each step runs even when one before it failed; the first failure is thrown at the end.
   */
  const close = async (drain: boolean): Promise<void> => {
    let failed: unknown = null;
    const step = async (what: () => unknown): Promise<void> => {
      try {
        await what();
      } catch (e) {
        failed ??= e;
      }
    };
    idleGc?.stop();
    // WebSocket clients are told first (1001), or the HTTP server would wait for them
    if (live) {
      const { ws, hub, events } = live;
      await step(() => ws.close());
      hub.close();
      await step(() => events.stop());
    }
    const httpServer = server;
    const closed = httpServer ? new Promise<void>((resolve) => httpServer.close(() => resolve())) : Promise.resolve();
    metricsServer?.close();
    let timer: NodeJS.Timeout | undefined;
    if (httpServer && drain) {
      httpServer.closeIdleConnections();
      timer = setTimeout(() => httpServer.closeAllConnections(), config.shutdownTimeoutMs);
    } else httpServer?.closeAllConnections();
    if (!drain) metricsServer?.closeAllConnections();
    // The consumer finishes and commits its chunk in flight while HTTP requests drain.
    await Promise.all([closed, step(() => kafka?.stop())]);
    clearTimeout(timer);
    if (services) {
      const s = services;
      await step(() => s.retag.stop());
      await step(() => s.rescore.stop());
      s.remoteModel?.shutdown();
      await Promise.all([s.crmSync.stop(), s.crmWriteback.stop(), s.escalation.stop(), s.erasure.crmTask.stop(), s.retention.stop()].map((p) => step(() => p)));
    }
    if (apollo) await step(() => apollo!.stop());
    if (services) {
      const s = services;
      await step(() => s.analyzePool.close());
      await step(() => s.reresolution.drain());
    }
    if (!database) await step(() => db.close());
    if (failed) throw failed;
  };
  try {
    return await (async (): Promise<RunningApp> => {
      // POST /ingest, ingestInteractions and the Kafka consumer store on connections the API cannot take
      if (config.roles.includes('ingest')) await db.openIngestPool();
      // re-score, re-tag and re-resolution run in every role; the sync role's jobs on a schedule
      await db.openJobsPool();
      const metrics = new Metrics();
      const svc = createServices(config, db, log, metrics, opts.clock);
      services = svc;
      await svc.taxonomy.ensureSeeded();
      await svc.listeningGap.ensureDefaultDepartment();
      // a re-tagging job cut short by the last shutdown goes on where the taxonomy left it
      svc.retag.kick();
      // so does a re-score, after its last committed page
      svc.rescore.kick();

      const apiOn = config.roles.includes('api');
      const ingestOn = config.roles.includes('ingest');
      if (config.roles.includes('sync')) {
        // Both log once and idle when no CRM is configured.
        svc.crmSync.start();
        svc.crmWriteback.start();
        svc.escalation.start();
        svc.erasure.crmTask.start();
        svc.retention.start();
      }
      let schema = null;
      if (apiOn) {
        schema = await createSchema(
          new Map<Function, unknown>([
            [CustomerResolver, new CustomerResolver(svc.customers)],
            [InteractionResolver, new InteractionResolver(svc.interactions, svc.ingest)],
            [AuthorResolver, new AuthorResolver()],
            [NodeResolver, new NodeResolver()],
            [IdentityResolver, new IdentityResolver(svc.identity, svc.reresolution)],
            [IdentityChangeResolver, new IdentityChangeResolver()],
            [CustomerMergeHistoryResolver, new CustomerMergeHistoryResolver(svc.identity)],
            [CrmResolver, new CrmResolver(svc.crmSync, svc.crmWriteback)],
            [SentimentResolver, new SentimentResolver(svc.taxonomy, svc.retag, svc.analyzePool, svc.scorer, svc.rescore)],
            [ListeningGapResolver, new ListeningGapResolver(svc.listeningGap)],
            [TopicInsightResolver, new TopicInsightResolver()],
            [SubscriptionResolver, new SubscriptionResolver()],
            [PrivacyResolver, new PrivacyResolver(svc.erasure, svc.exports, svc.retention)],
            [ViewerResolver, new ViewerResolver()],
          ]),
        );
        const created = createApollo(config.graphqlApi.federation ? toSubgraphSchema(schema, { sdlNeedsCredential: !config.graphql.introspection }) : schema, log.child({ component: 'graphql' }), metrics, config.nodeEnv === 'production', config.graphql, config.metrics, log.child({ component: 'access' }));
        await created.start();
        apollo = created;
      }

      let kafkaStarting = ingestOn && config.kafka.brokers ? 'kafka consumer: connecting and joining the consumer group' : null;
      // one manifest for HTTP and WebSocket: `only` must hold on both
      const trustedDocuments = apiOn ? new TrustedDocuments(config.graphqlApi.trustedDocuments, config.graphqlApi.persistedOperationsFile) : null;
      // Each GraphQL operation in flight holds its rows, loaders and answer: one bound for HTTP and
      // WebSocket operations alike (a socket ran up to 100 at once, outside the HTTP bound)
      const graphqlSlots = new OperationSlots(config.graphqlConcurrency, config.graphqlQueueMax, config.graphqlQueueMaxPerPrincipal);
      const deps: HttpDeps = {
        log: log.child({ component: 'http' }),
        metrics,
        auth: svc.auth,
        apollo,
        makeLoaders: (principal) => createLoaders(svc, principal),
        ingest: ingestOn ? svc.ingest : null,
        ingestMaxBytes: config.ingestMaxBytes,
        explorer: config.graphqlApi.explorer,
        corsOrigins: config.graphqlApi.corsOrigins,
        trustedDocuments,
        metricsAccess: { onMainPort: config.metrics.onMainPort, key: config.metrics.key },
        accessLog: log.child({ component: 'access' }),
        // the console only calls the public GraphQL API, so it needs the api role beside it
        consoleDir: config.console && apollo ? CONSOLE_DIR : null,
        readiness: async () => {
          try {
            // on the ingest pool when there is one: the API's reads waiting on a lock can hold the
            // main pool for their time budget, and the database answering ingest is not unreachable
            const probe = db.ingestDs ?? db.ds;
            await exec(probe, 'SELECT 1');
            if (await probe.showMigrations()) return 'database migrations are pending';
            return kafkaStarting ?? kafka?.health() ?? null;
          } catch (e) {
            // the driver's message names hosts, ports and users: it goes to the log, not to callers
            log.warn({ err: e }, 'readiness: the database does not answer');
            return 'database unreachable';
          }
        },
        liveness: () => db.embedded?.problem() ?? null,
        graphqlSlots,
        httpLimits: config.http,
      };
      let httpServer: http.Server;
      if (opts.server) {
        opts.server.attach(deps);
        httpServer = server = opts.server.server;
      } else {
        httpServer = server = createHttpServer(deps);
        await new Promise<void>((resolve, reject) => {
          httpServer.once('error', reject);
          httpServer.listen(config.port, config.host, () => resolve());
        });
      }
      if (ingestOn) {
        // before the consumer joins: the first non-English message must not wait for the table
        const lang = warmLanguageDetector();
        if (lang.available) log.info({ ms: lang.ms }, 'language detector ready');
        else log.warn('language detector unavailable (the eld package is missing or its files changed): texts that are not plainly English are stored as und');
      }
      if (kafkaStarting) {
        kafka = await startKafkaPipeline(config, db.ds, svc.recorder, metrics, log, { ingestLimits: svc.ingestLimits });
        kafkaStarting = null;
      } else if (ingestOn) await startKafkaPipeline(config, db.ds, svc.recorder, metrics, log); // logs that Kafka is off
      idleGc = new IdleGc(log.child({ component: 'memory' }));
      idleGc.start();
      if (schema) {
        const options = db.ds.options as { url?: string; schema?: string };
        const events = new LiveEvents(options.url!, options.schema ?? 'public', log.child({ component: 'live-events' }));
        const hub = new LiveHub(
          events,
          {
            interaction: (ids) => svc.interactions.byIds(ids),
            listening_item: (ids) => svc.listeningGap.byIds(ids),
            customer_sentiment: (ids) => svc.customers.byIds(ids),
          },
          log.child({ component: 'subscriptions' }),
        );
        // the session is closed by `close` from here on, whether or not it could LISTEN yet
        live = { events, hub, ws: { close: async () => undefined } };
        await events.start();
        live.ws = attachSubscriptionServer({
          server: httpServer,
          schema,
          auth: svc.auth,
          hub,
          limits: { queueLimit: config.graphqlApi.subscriptionQueueLimit, maxBufferedBytes: config.graphqlApi.subscriptionMaxBufferedBytes },
          makeLoaders: (principal) => createLoaders(svc, principal),
          graphql: config.graphql,
          trustedDocuments,
          slots: graphqlSlots,
          ws: config.ws,
          log: log.child({ component: 'subscriptions' }),
        });
      }
      const port = (httpServer.address() as AddressInfo).port;
      const url = `http://localhost:${port}`;
      let metricsUrl: string | null = null;
      if (config.metrics.port !== null) {
        const ms = createMetricsServer(metrics, config.metrics.key, config.http);
        metricsServer = ms;
        await new Promise<void>((resolve, reject) => {
          ms.once('error', reject);
          ms.listen(config.metrics.port!, config.host, () => resolve());
        });
        metricsUrl = `http://localhost:${(ms.address() as AddressInfo).port}/metrics`;
      } else if (!config.metrics.onMainPort) {
        log.warn('/metrics is off: in production set EARSHOT_METRICS_KEY or EARSHOT_METRICS_PORT to scrape it');
      }
      if (config.auth.open) log.warn('authentication is not configured: every caller acts as admin (allowed only outside production)');
      log.info({ url: `${url}/graphql`, roles: config.roles, startupMs: Date.now() - startedAt, embeddedDatabase: db.embedded !== null }, 'Earshot is listening');

      let stopping: Promise<void> | null = null;
      return {
        url,
        metricsUrl,
        db,
        services: svc,
        metrics,
        server: httpServer,
        kafka,
        stop() {
          stopping ??= (async () => {
            log.info('shutting down: no new connections, finishing in-flight requests');
            await close(true);
            log.info('stopped');
          })();
          return stopping;
        },
      };
    })();
  } catch (e) {
    // The start fails as a whole (an orchestrator restarts the process): nothing may keep running.
    await close(false).catch((err: unknown) => log.warn({ err }, 'closing what the failed start had started failed too'));
    throw e;
  }
}

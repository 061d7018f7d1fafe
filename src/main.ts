#!/usr/bin/env node
// First, before anything that needs Node.js 24: an older Node gets a message and exit code 3.
import './node-version';
import 'reflect-metadata';
// first: with OTEL_* set, tracing must patch pg and node:http before anything loads them
import { tracing } from './tracing/register';
import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DatabaseStartError, EmbeddedStartError, openDatabase, openDatabaseWaiting, startApp, createServices } from './app';
import { revertLastMigrationLocked } from './db/migrate';
import { ConfigError, loadConfig, type Config } from './config/config';
import { createCrmClients } from './crm/crm-clients';
import { generateDemoInteractions } from './demo/demo-data';
import { listenWhileStarting } from './http/http-server';
import { printSdl } from './graphql/schema';
import { AppError } from './shared/app-error';
import { Metrics } from './shared/metrics';
import { createLogger, type Logger } from './shared/logger';
import { defaultModelFile, loadDefaultModel, ModelLoadError } from './sentiment/model/linear-model';

const USAGE = `Usage: earshot [command] [options]

Commands:
  serve                 start the roles in EARSHOT_ROLES (default command)
    --demo              load the demo data set first
  demo                  load the demo data set (through the ingest pipeline), then serve
    --load-only         exit after loading
    --crm               also start the local Salesforce and HubSpot API servers (test/crm-servers,
                        after npm run build), sync from them and write sentiment back to them
  setup-crm             create the HubSpot property group and properties (idempotent) and check
                        that the Salesforce fields of docker/salesforce are deployed
  migrate               apply pending database migrations and exit
    --revert            undo the last applied migration instead
  emit-schema           write schema/schema.graphql from the code
    --check             exit 1 when the committed file differs instead of writing
  analyze               score texts from stdin, one per line, as JSON lines on stdout
    --jsonl             input lines are JSON objects with a "text" field
  resolve --input F.csv resolve person records of a CSV into clusters (JSON lines)
  erase                 erase one customer everywhere (see README, Privacy); prints the audit record
    --email E | --phone P | --handle network:handle | --id UUID
    --reason R          a ticket reference (kept in the audit row: no personal data)
  help                  show this text

Configuration comes from environment variables; see README.md.`;

const COMMANDS = new Set(['serve', 'demo', 'setup-crm', 'migrate', 'emit-schema', 'analyze', 'resolve', 'erase', 'help']);

/** The options each command takes (and --help, which all take). Any other is a user mistake. */
const OPTIONS_OF: Record<string, string[]> = {
  serve: ['demo', 'crm'],
  demo: ['load-only', 'crm'],
  'setup-crm': [],
  migrate: ['revert'],
  'emit-schema': ['check'],
  analyze: ['jsonl'],
  resolve: ['input'],
  erase: ['email', 'phone', 'handle', 'id', 'reason'],
  help: [],
};

async function main(argv: string[]): Promise<number> {
  const command = argv[0] && !argv[0].startsWith('-') ? argv[0] : 'serve';
  // Checked before anything starts: a typo must not open the database first.
  if (!COMMANDS.has(command)) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  const rest = command === argv[0] ? argv.slice(1) : argv;
  const { values, tokens } = parseArgs({
    args: rest,
    tokens: true,
    options: {
      demo: { type: 'boolean', default: false },
      'load-only': { type: 'boolean', default: false },
      crm: { type: 'boolean', default: false },
      revert: { type: 'boolean', default: false },
      check: { type: 'boolean', default: false },
      jsonl: { type: 'boolean', default: false },
      input: { type: 'string' },
      email: { type: 'string' },
      phone: { type: 'string' },
      handle: { type: 'string' },
      id: { type: 'string' },
      reason: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  // `earshot --input x.csv` (the command forgotten) started the whole service on port 4000.
  const given = new Set<string>();
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    if (t.name !== 'help' && !OPTIONS_OF[command]!.includes(t.name)) throw new UsageError(`${t.rawName} is not an option of ${command}`);
    // parseArgs keeps the last value: `erase --email a@x --email b@x` erased b alone
    if (t.value !== undefined && given.has(t.name)) throw new UsageError(`--${t.name} is given twice; give it once${command === 'erase' ? ' (erase takes one customer at a time)' : ''}`);
    given.add(t.name);
  }
  // The commands that print their result: a reader that goes away (`| head -1`) ends the command
  // without a word; other write errors (a full disk) in one line. Not for serve/demo (their log).
  if (command !== 'serve' && command !== 'demo') process.stdout.on('error', onOutputError);
  if (values.help || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (command === 'emit-schema') return emitSchema(values.check);
  if (command === 'analyze') {
    const { runAnalyzeCommand } = await import('./sentiment/analyze.command.js');
    // Configuration is not loaded for this tool; the model file is its one setting.
    loadDefaultModel(process.env.EARSHOT_SENTIMENT_MODEL_FILE?.trim() || null);
    const { lines, failed } = await runAnalyzeCommand({ jsonl: values.jsonl, input: process.stdin, output: process.stdout });
    if (failed === 0) return 0;
    // Every line was still answered (an {"error"} line each); the exit code lets a script notice.
    process.stderr.write(`earshot: ${failed} of ${lines} input lines failed (their output lines carry "error")\n`);
    return 1;
  }
  if (command === 'resolve') {
    if (!values.input) throw new UsageError('resolve needs --input FILE.csv');
    const { runResolveCommand } = await import('./identity/resolve.command.js');
    await runResolveCommand({ input: values.input, output: process.stdout });
    return 0;
  }

  let config = loadConfig();
  const log = createLogger(config.logLevel);
  // typos such as EARSHOT_ROLE would otherwise be ignored without a word
  for (const w of config.warnings) log.warn(w);
  let stopCrm: (() => Promise<void>) | null = null;
  if (values.crm && (command === 'demo' || command === 'serve')) {
    // demo only: the local CRM servers are no part of the production image
    const { startDemoCrm } = await import('./demo/demo-crm.js');
    ({ config, stop: stopCrm } = await startDemoCrm(config, log));
  }
  switch (command) {
    case 'serve':
      return serve(config, log, values.demo, false).finally(() => stopCrm?.());
    case 'demo':
      return serve(config, log, true, values['load-only']).finally(() => stopCrm?.());
    case 'setup-crm':
      return setupCrm(config, log);
    case 'migrate':
      return migrate(config, log, values.revert);
    case 'erase':
      return erase(config, log, values);
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

class UsageError extends Error {}

function onOutputError(err: NodeJS.ErrnoException): void {
  if (err.code === 'EPIPE') process.exit(0);
  process.stderr.write(`earshot: cannot write the output: ${oneLine(err.message)}\n`);
  process.exit(1);
}

/** Creates what write-back needs in each configured CRM; prints what it did as JSON. */
async function setupCrm(config: Config, log: Logger): Promise<number> {
  const clients = createCrmClients(config.crm, log);
  if (clients.length === 0) throw new UsageError('setup-crm needs Salesforce or HubSpot credentials (see README.md, CRM sync)');
  let missing = 0;
  for (const client of clients) {
    const report = await client.setup();
    missing += report.manual.length;
    process.stdout.write(`${JSON.stringify({ system: client.system, ...report })}\n`);
  }
  return missing > 0 ? 1 : 0;
}

async function emitSchema(check: boolean): Promise<number> {
  const file = path.resolve(__dirname, '../../schema/schema.graphql');
  const sdl = await printSdl();
  if (check) {
    const committed = readFileSync(file, 'utf8');
    if (committed !== sdl) {
      process.stderr.write('schema/schema.graphql differs from the code: run `npm run schema:emit` and commit it\n');
      return 1;
    }
    process.stdout.write('schema/schema.graphql matches the code\n');
    return 0;
  }
  writeFileSync(file, sdl);
  process.stdout.write(`wrote ${file}\n`);
  return 0;
}

/** `earshot erase`: the same erasure as the eraseCustomer mutation, then one pass of the CRM clean-up. */
async function erase(config: Config, log: Logger, v: { email?: string; phone?: string; handle?: string; id?: string; reason?: string }): Promise<number> {
  if ([v.email, v.phone, v.handle, v.id].filter(Boolean).length !== 1) throw new UsageError('erase needs exactly one of --email, --phone, --handle, --id');
  if (!v.reason) throw new UsageError('erase needs --reason (a ticket reference, no personal data)');
  const db = await openDatabaseWaiting(config, log, { useRunningEmbedded: true });
  try {
    const services = createServices(config, db, log, new Metrics());
    const customerId = await services.erasure.findCustomer(v);
    const out = await services.erasure.erase(customerId, v.reason, `cli:${process.env.USER ?? 'unknown'}`);
    // CRM fields and cases now when a CRM is configured; the sync role retries what fails
    if (out.request.status === 'crm_pending') await services.erasure.crmTask.runNow().catch((e: Error) => log.warn({ err: e.message }, 'CRM clean-up left for the sync role'));
    const request = (await services.erasure.requestFor(customerId)) ?? out.request;
    process.stdout.write(`${JSON.stringify({ erasedNow: out.erasedNow, ...request })}\n`);
  } finally {
    await db.close();
  }
  return 0;
}

async function migrate(config: Config, log: Logger, revert: boolean): Promise<number> {
  // as serve: a database still starting is waited for, and a failure is one line (DatabaseStartError)
  const db = await openDatabaseWaiting(config, log, { migrate: !revert, useRunningEmbedded: true });
  try {
    if (revert) {
      const name = await revertLastMigrationLocked(db.ds, log);
      if (name) log.info({ migration: name }, 'reverted the last migration');
      else log.info('no migration is applied: nothing to revert');
    } else log.info('migrations are up to date');
  } finally {
    await db.close();
  }
  return 0;
}

async function loadDemo(config: Config, log: Logger, db: Awaited<ReturnType<typeof openDatabase>>): Promise<void> {
  const services = createServices(config, db, log, new Metrics());
  await services.taxonomy.ensureSeeded();
  const messages = generateDemoInteractions();
  const started = Date.now();
  const result = await services.ingest.ingestObjects(messages, 'demo');
  log.info({ ...result, rejected: result.rejected.length, ms: Date.now() - started }, 'demo data loaded (already-loaded items count as duplicates)');
}

async function serve(config: Config, log: Logger, demo: boolean, loadOnly: boolean): Promise<number> {
  // Before anything starts: without its weights every interaction would be refused one by one.
  const model = loadDefaultModel(config.sentiment.modelFile);
  log.info({ model: model.name, file: defaultModelFile() }, 'sentiment model loaded');
  if (loadOnly) {
    const db = await openDatabaseWaiting(config, log, { useRunningEmbedded: true });
    try {
      await loadDemo(config, log, db);
    } finally {
      await db.close();
    }
    return 0;
  }
  let signalled: string | null = null;
  const stopRequested = new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      log.info({ signal }, 'signal received');
      signalled = signal;
      resolve();
      // A second Ctrl-C (or SIGTERM) means now: exit without waiting for the work in flight.
      // The embedded PostgreSQL is asked for its fast shutdown on the way out (it no longer
      // shares the terminal's process group; see embedded-postgres.ts).
      const now = (again: NodeJS.Signals) => {
        log.warn({ signal: again }, 'second signal: exiting now, without waiting for the work in flight');
        process.exit(again === 'SIGINT' ? 130 : 143);
      };
      process.once('SIGTERM', now);
      process.once('SIGINT', now);
      // From the signal on, whatever runs (a start that waits for a migration lock or a
      // database, a drain that hangs) has the shutdown time and 10 s more. Armed only after the
      // start before, so a process asked to stop while it started stayed until the start ended:
      // a wait for another process's migrations had no end.
      setTimeout(() => {
        log.error({ signal }, 'shutdown took too long; exiting');
        process.exit(1);
      }, config.shutdownTimeoutMs + 10_000).unref();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  // HTTP first: after a crash the orchestrator sees a live process at once, and /readyz says
  // what is still starting (the database, the schema, the Kafka group) instead of no answer.
  let phase = 'opening the database';
  const early = await listenWhileStarting(config.port, config.host, () => phase, config.http);
  log.info({ httpUrl: early.url, readyz: `${early.url}/readyz` }, 'HTTP is up; /readyz says when Earshot is ready');
  const db = await openDatabaseWaiting(config, log, {
    // The embedded PostgreSQL died and would not start again: only a new process can help.
    onFatal: (err) => {
      log.fatal({ err }, 'exiting so that the supervisor starts Earshot again');
      process.exit(1);
    },
    onWait: () => (phase = 'waiting for the database (unreachable; trying again)'),
    stop: stopRequested,
  }).catch(async (e: unknown) => {
    early.server.close();
    early.server.closeAllConnections();
    throw e;
  });
  const stoppedWhileStarting = async (): Promise<boolean> => {
    if (signalled === null) return false;
    log.info('asked to stop while starting: not starting the rest');
    early.server.close();
    early.server.closeAllConnections();
    await db.close();
    await tracing?.shutdown();
    return true;
  };
  if (await stoppedWhileStarting()) return 0;
  // a failure from here on (the demo data, any step of startApp, which closes what it started)
  // closes the early listener and the database too: nothing is left to keep the process
  const failed = async (e: unknown): Promise<never> => {
    if (early.server.listening) {
      early.server.close();
      early.server.closeAllConnections();
    }
    await db.close().catch(() => undefined);
    throw e;
  };
  if (demo) {
    phase = 'loading the demo data set';
    await loadDemo(config, log, db).catch(failed);
    if (await stoppedWhileStarting()) return 0;
  }
  phase = config.roles.includes('ingest') && config.kafka.brokers ? 'building the schema, then joining the Kafka consumer group' : 'building the schema';
  const app = await startApp(config, log, db, { server: early }).catch(failed);
  if (signalled === null) await stopRequested;
  await app.stop();
  await db.close();
  await tracing?.shutdown();
  // Everything of ours has stopped. A Kafka client whose stop gave up on a broker out of reach
  // goes on retrying in the background (kafkajs, up to about 15 s): the process does not wait for
  // it, once a second has let the last log lines out.
  setTimeout(() => process.exit(), 1_000).unref();
  return 0;
}

/**
 * Exit codes (README, Command line): 0 done; 1 a failure at run time, or `analyze` input lines
 * that failed; 2 a user mistake (unknown command or flag, missing or unreadable input, invalid
 * configuration), told in one line with a hint and no stack trace; 3 Node.js older than 24
 * (./node-version).
 */
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // one line per bad variable, each `earshot: invalid configuration: NAME=…: expected …`
    if (err instanceof ConfigError) process.stderr.write(err.message.split('\n').map((l) => `earshot: ${l}\n`).join(''));
    else if (err instanceof ModelLoadError || err instanceof DatabaseStartError || err instanceof EmbeddedStartError || (err as Error | null)?.name === 'KafkaStartError') process.stderr.write(`earshot: ${oneLine((err as Error).message)}\n`);
    else if (isUserMistake(err)) process.stderr.write(`earshot: ${oneLine((err as Error).message)}\nRun \`earshot help\` for the commands and options.\n`);
    // e.g. erase: NOT_FOUND for nobody with that email, in one line
    else if (err instanceof AppError) process.stderr.write(`earshot: ${err.code}: ${oneLine(err.message)}\n`);
    else if (isListenError(err)) process.stderr.write(`earshot: cannot listen on ${err.address}:${err.port} ${listenRemedy(err.code)}\n`);
    else process.stderr.write(`earshot: ${(err as Error).stack ?? String(err)}\n`);
    // A start that fails half-way (the metrics port taken) closes what it had started (startApp),
    // and the process ends by itself with this code once its message is out (380 ms measured;
    // test/integration/start-failure-cleanup.test.ts). Should some other path leave a handle
    // behind, a failed command must still end: a last resort, well after that.
    process.exitCode = err instanceof ConfigError || isUserMistake(err) ? 2 : 1;
    setTimeout(() => process.exit(), 10_000).unref();
  },
);

/** A listener that could not bind (the port taken, not allowed, an address not on this host). */
function isListenError(err: unknown): err is NodeJS.ErrnoException & { address: string; port: number } {
  const e = err as NodeJS.ErrnoException & { address?: unknown; port?: unknown };
  return e?.syscall === 'listen' && typeof e.address === 'string' && typeof e.port === 'number';
}

function listenRemedy(code: string | undefined): string {
  if (code === 'EADDRINUSE') return '(the port is taken): stop what uses it, or choose another PORT or HOST (EARSHOT_METRICS_PORT for the metrics listener)';
  // a HOST that is a name no resolver knows (a typo, a service name of another network)
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `(no such host name, ${code}): set HOST to an address of this machine (0.0.0.0 for every interface, 127.0.0.1 for this machine only) or a name that resolves to one`;
  if (code === 'EADDRNOTAVAIL') return '(EADDRNOTAVAIL: not an address of this machine): set HOST to one of its addresses, or 0.0.0.0 for every interface';
  return `(${code}): choose another PORT or HOST (EARSHOT_METRICS_PORT for the metrics listener)`;
}

function isUserMistake(err: unknown): boolean {
  if (err instanceof UsageError) return true;
  if (err instanceof AppError) return err.code === 'BAD_USER_INPUT';
  // parseArgs: ERR_PARSE_ARGS_UNKNOWN_OPTION, …_INVALID_OPTION_VALUE, …_UNEXPECTED_POSITIONAL
  return String((err as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS_');
}

function oneLine(message: string): string {
  return message.split('\n')[0]!.trim();
}

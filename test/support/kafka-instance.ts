import { Writable } from 'node:stream';
import { startApp, type RunningApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/shared/logger';
import { message } from './app';
import { kafkaEnv, type KafkaNames, type Outgoing } from './kafka-fixtures';
import type { TestDatabase } from './postgres';

/** An ingest instance on the test's own database and topics, with every log line it writes, parsed (tests of what an operator does to a running system). */
export interface Instance {
  app: RunningApp;
  /** every log line of this instance, parsed */
  logs: Record<string, unknown>[];
}

export async function startInstance(database: TestDatabase, names: KafkaNames, extra: Record<string, string> = {}): Promise<Instance> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const config = loadConfig({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', DATABASE_URL: database.url, EARSHOT_ROLES: 'ingest', ...kafkaEnv(names), ...extra });
  const app = await startApp(config, createLogger('info', {}, sink));
  return { app, logs };
}

export const metric = async (app: RunningApp, name: string, labels: Record<string, string>): Promise<number> => {
  const text = await (await fetch(`${app.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const got = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(line.split(' ').at(-1));
  }
  return sum;
};

export const stored = async (app: RunningApp, like: string): Promise<number> =>
  ((await app.db.ds.query(`SELECT count(*)::int AS n FROM interaction WHERE external_id LIKE $1`, [like])) as { n: number }[])[0]!.n;

export const onPartition = (partition: number, from: number, count: number, label: string): Outgoing[] =>
  Array.from({ length: count }, (_, i) => ({ key: null, partition, value: JSON.stringify(message(from + i, { externalId: `${label}-${from + i}` })) }));

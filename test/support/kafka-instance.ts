import { Writable } from 'node:stream';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import { afterAll, beforeAll } from 'vitest';
import { startApp, type RunningApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/shared/logger';
import { message } from './app';
import { kafkaEnv, kafkaNames, testKafka, type KafkaNames, type Outgoing } from './kafka-fixtures';
import { createTestDatabase, type TestDatabase } from './postgres';

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

/**
 * What a file of operator tests on a running system shares: one Kafka client and admin for the
 * file, and what its tests make (apps, consumers, databases, topics, groups), all stopped,
 * dropped and deleted after the file. `fresh(label)` gives a test its own topics, group and
 * database. Call at the top of a `describe`.
 */
export function kafkaWorld() {
  let kafka: Kafka | undefined;
  let admin: Admin | undefined;
  const world = {
    get kafka(): Kafka {
      return kafka!;
    },
    get admin(): Admin {
      return admin!;
    },
    running: [] as RunningApp[],
    consumers: [] as Consumer[],
    databases: [] as TestDatabase[],
    topics: [] as string[],
    groups: [] as string[],
    /** names of its own (registered for deletion), and a fresh database */
    async fresh(label: string): Promise<{ names: KafkaNames; database: TestDatabase }> {
      const names = kafkaNames(label);
      world.topics.push(...names.all);
      world.groups.push(names.group);
      const database = await createTestDatabase(`kafka${label}`);
      world.databases.push(database);
      return { names, database };
    },
  };
  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
  });
  afterAll(async () => {
    for (const c of world.consumers) await c.disconnect().catch(() => undefined);
    for (const app of world.running) await app.stop().catch(() => undefined);
    for (const d of world.databases) await d.drop().catch(() => undefined);
    await admin?.deleteTopics({ topics: world.topics }).catch(() => undefined);
    await admin?.deleteGroups(world.groups).catch(() => undefined);
    await admin?.disconnect();
  });
  return world;
}

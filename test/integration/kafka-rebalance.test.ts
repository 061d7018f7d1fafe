import { type Admin, type Kafka } from 'kafkajs';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type RunningApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/shared/logger';
import { message } from '../support/app';
import { groupLag, kafkaEnv, kafkaNames, produce, readTopic, testKafka, waitFor } from '../support/kafka-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

const DISTINCT = 9_000;

describe('Kafka consumer: two replicas in one group, joining and leaving mid-stream', () => {
  const names = kafkaNames('rebalance');
  let kafka: Kafka;
  let admin: Admin;
  let database: TestDatabase;
  let direct: Client;
  const apps: RunningApp[] = [];

  const replica = async () => {
    // chunks of 500 whatever the default: the stream must still be in flight when the first
    // replica leaves, and chunks of 2,000 store these 9,000 messages before it does
    const config = loadConfig({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', DATABASE_URL: database.url, EARSHOT_ROLES: 'ingest', KAFKA_CHUNK_SIZE: '500', ...kafkaEnv(names) });
    const app = await startApp(config, createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'));
    apps.push(app);
    return app;
  };
  const processedBy = async (app: RunningApp) => (await app.metrics.kafkaMessages.get()).values.reduce((sum, v) => sum + v.value, 0);
  const stored = async () => ((await direct.query(`SELECT count(*)::int AS n FROM interaction`)).rows[0] as { n: number }).n;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    database = await createTestDatabase('kafkarebalance');
    direct = new Client({ connectionString: database.url });
    await direct.connect();
  });

  afterAll(async () => {
    for (const app of apps) await app.stop();
    await direct?.end();
    await database?.drop();
    await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin?.disconnect();
  });

  it('loses nothing and records nothing twice; one relay publishes at a time and another takes over', async () => {
    const first = await replica();
    const stream = Array.from({ length: DISTINCT }, (_, n) => ({ key: `user${n % 401}`, value: JSON.stringify(message(n)) }));
    await produce(kafka, names.topic, stream.slice(0, DISTINCT / 3));
    await waitFor('the first replica to be mid-stream', async () => (await stored()) >= DISTINCT / 10, 60_000, 20);

    const second = await replica();
    await second.kafka!.consumer.whenJoined();
    // exactly one leader publishes the outbox
    expect([first, second].filter((a) => a.kafka!.relay.isLeader())).toHaveLength(1);
    expect(first.kafka!.relay.isLeader()).toBe(true);
    await produce(kafka, names.topic, stream.slice(DISTINCT / 3));
    // both replicas consume: the partitions were really split between them
    await waitFor('the second replica to consume its share', async () => (await processedBy(second)) > 0, 30_000, 20);
    expect(await processedBy(first)).toBeGreaterThan(0);

    // the first replica leaves gracefully mid-stream: its chunk in flight commits, its partitions move
    await first.stop();
    expect(await groupLag(admin, names.group, names.topic)).toBeGreaterThan(0);
    await waitFor('every offset to be committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 90_000, 100);
    await waitFor('the second relay to take over and publish everything', async () => {
      const { rows } = await direct.query(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`);
      return second.kafka!.relay.isLeader() && (rows[0] as { n: number }).n === 0;
    }, 30_000);

    expect(await stored()).toBe(DISTINCT);
    const { rows } = await direct.query(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'interactions.enriched.v1'`);
    expect((rows[0] as { n: number }).n).toBe(DISTINCT);
    const published = await readTopic(kafka, names.enriched, 60_000);
    expect(new Set(published.map((p) => (JSON.parse(p.value!.toString('utf8')) as { externalId: string }).externalId)).size).toBe(DISTINCT);
    const ready = await fetch(`${second.url}/readyz`);
    expect(ready.status).toBe(200);

    await second.stop();
    const stopped = await fetch(`${second.url}/readyz`).catch(() => null);
    expect(stopped).toBeNull();
    console.info(`kafka-rebalance: ${published.length} enriched events published for ${DISTINCT} interactions`);
  });
});

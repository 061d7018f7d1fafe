import { type Admin, type Kafka } from 'kafkajs';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message } from '../support/app';
import { spawnEarshot, type EarshotProcess } from '../support/earshot-process';
import { groupLag, kafkaEnv, kafkaNames, produce, readTopic, testKafka, waitFor } from '../support/kafka-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

const DISTINCT = 8_000;

describe('Kafka consumer: SIGKILL mid-stream, then restart', () => {
  const names = kafkaNames('crash');
  let kafka: Kafka;
  let admin: Admin;
  let database: TestDatabase;
  let db: Client;
  let running: EarshotProcess | null = null;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    database = await createTestDatabase('kafkacrash');
    db = new Client({ connectionString: database.url });
    await db.connect();
  });

  afterAll(async () => {
    await running?.kill('SIGKILL');
    await db?.end();
    await database?.drop();
    await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin?.disconnect();
  });

  const count = async (sql: string): Promise<number> => ((await db.query(sql)).rows[0] as { n: number }).n;
  const start = () => (running = spawnEarshot({ ...kafkaEnv(names), DATABASE_URL: database.url, EARSHOT_ROLES: 'ingest', KAFKA_SESSION_TIMEOUT_MS: '6000' }));

  it('loses nothing and stores nothing twice', async () => {
    // every 10th message is sent twice: redelivery inside the stream as well as after the crash
    const stream = Array.from({ length: DISTINCT }, (_, n) => message(n)).flatMap((m, n) => {
      const out = { key: `user${n % 501}`, value: JSON.stringify(m) };
      return n % 10 === 0 ? [out, out] : [out];
    });
    // The topic exists before Earshot first starts: what was produced before counts too.
    await admin.createTopics({ topics: [{ topic: names.topic, numPartitions: 3 }], waitForLeaders: true });
    await produce(kafka, names.topic, stream);

    const first = start();
    await waitFor('the first process to store 2,000 interactions', async () => {
      if (first.child.exitCode !== null) throw new Error(`earshot exited early:\n${first.output().slice(-3000)}`);
      return (await count(`SELECT count(*)::int AS n FROM interaction`).catch(() => 0)) >= 2_000;
    }, 90_000, 50);
    expect(await first.kill('SIGKILL')).toBe('SIGKILL');
    const atKill = await count(`SELECT count(*)::int AS n FROM interaction`);
    expect(atKill).toBeLessThan(DISTINCT);
    expect(await groupLag(admin, names.group, names.topic)).toBeGreaterThan(0);

    const second = start();
    await waitFor('the restarted process to commit every offset', async () => {
      if (second.child.exitCode !== null) throw new Error(`earshot exited early:\n${second.output().slice(-3000)}`);
      return (await groupLag(admin, names.group, names.topic)) === 0;
    }, 120_000, 250);
    await waitFor('the outbox to be published', async () => (await count(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`)) === 0, 60_000);

    expect(await count(`SELECT count(*)::int AS n FROM interaction`)).toBe(DISTINCT);
    expect(await count(`SELECT count(DISTINCT external_id)::int AS n FROM interaction`)).toBe(DISTINCT);
    // one enriched event per interaction: no message was recorded twice across the crash
    expect(await count(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'interactions.enriched.v1'`)).toBe(DISTINCT);
    // every interaction reached the output topic (at least once: the relay may repeat what it sent before the kill)
    const published = await readTopic(kafka, names.enriched, 60_000);
    const ids = new Set(published.map((p) => (JSON.parse(p.value!.toString('utf8')) as { externalId: string }).externalId));
    expect(ids.size).toBe(DISTINCT);

    expect(await second.kill('SIGTERM')).toBe(0);
    expect(second.output()).toMatch(/kafka consumer stopped/);
    console.info(`kafka-crash: killed at ${atKill} of ${DISTINCT} interactions; ${published.length} enriched events published for ${DISTINCT}`);
  });
});

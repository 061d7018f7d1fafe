import { type Admin, type Kafka } from 'kafkajs';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type RunningApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/shared/logger';
import { message } from '../support/app';
import { groupLag, kafkaEnv, kafkaNames, produce, testKafka, waitFor } from '../support/kafka-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { TcpProxy } from '../support/tcp-proxy';

const HALF = 2_000;
/** The outage lasts until the consumer has failed against the missing database this many times more. */
const RETRIES_DURING_OUTAGE = 3;

describe('Kafka consumer: PostgreSQL unreachable mid-stream', () => {
  const names = kafkaNames('outage');
  let kafka: Kafka;
  let admin: Admin;
  let database: TestDatabase;
  let direct: Client;
  let proxy: TcpProxy;
  let app: RunningApp;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    database = await createTestDatabase('kafkaoutage');
    direct = new Client({ connectionString: database.url });
    await direct.connect();
    const target = new URL(database.url);
    proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
    await proxy.listen();
    const viaProxy = new URL(database.url);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    const config = loadConfig({
      NODE_ENV: 'test',
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: viaProxy.toString(),
      EARSHOT_ROLES: 'ingest',
      ...kafkaEnv(names),
    });
    app = await startApp(config, createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'));
  });

  afterAll(async () => {
    await proxy?.restore().catch(() => undefined);
    await app?.stop();
    await direct?.end();
    await database?.drop();
    await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin?.disconnect();
  });

  const retries = async () => {
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    return Number(/earshot_kafka_retries_total\{[^}]*\} (\d+)/.exec(metrics)?.[1] ?? 0);
  };
  const stored = async () => ((await direct.query(`SELECT count(*)::int AS n FROM interaction`)).rows[0] as { n: number }).n;

  it('pauses while the database is away, resumes, and loses nothing', async () => {
    const stream = Array.from({ length: 2 * HALF }, (_, n) => ({ key: `user${n % 301}`, value: JSON.stringify(message(n)) }));
    await produce(kafka, names.topic, stream.slice(0, HALF));
    await waitFor('the consumer to be mid-stream', async () => (await stored()) >= HALF / 2, 60_000, 20);

    const retriesBefore = await retries();
    await proxy.cut();
    const cutAt = Date.now();
    await produce(kafka, names.topic, stream.slice(HALF));
    const ready = await fetch(`${app.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { reason: string }).reason).toMatch(/database unreachable/);

    // Nothing moves while the database is away: no rows, no committed offsets.
    const rowsDuring = await stored();
    const lagDuring = await groupLag(admin, names.group, names.topic);
    // No fixed wait: the outage lasts until the consumer has met it again and again (backing off).
    await waitFor('the consumer to retry against the missing database', async () => (await retries()) >= retriesBefore + RETRIES_DURING_OUTAGE, 60_000, 50);
    const outageMs = Date.now() - cutAt;
    expect(await stored()).toBe(rowsDuring);
    expect(await groupLag(admin, names.group, names.topic)).toBe(lagDuring);
    expect(lagDuring).toBeGreaterThan(HALF);

    await proxy.restore();
    const restoredAt = Date.now();
    await waitFor('every offset to be committed after the outage', async () => (await groupLag(admin, names.group, names.topic)) === 0, 90_000, 100);
    const recoveredMs = Date.now() - restoredAt;

    expect(await stored()).toBe(2 * HALF);
    const [{ n }] = (await direct.query(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'interactions.enriched.v1'`)).rows as { n: number }[];
    expect(n).toBe(2 * HALF);
    expect(await dlqSize()).toBe(0);
    await waitFor('readiness to come back', async () => (await fetch(`${app.url}/readyz`)).status === 200, 20_000);
    console.info(`kafka-outage: ${rowsDuring} rows at the cut, ${outageMs} ms outage, all ${2 * HALF} committed ${recoveredMs} ms after the database came back`);
  });

  async function dlqSize(): Promise<number> {
    const offsets = await admin.fetchTopicOffsets(names.dlq);
    return offsets.reduce((a, o) => a + Number(o.high), 0);
  }
});

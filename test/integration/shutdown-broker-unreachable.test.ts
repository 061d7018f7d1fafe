import type { Admin } from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson } from '../support/app';
import { spawnEarshot, type EarshotProcess } from '../support/earshot-process';
import { kafkaEnv, kafkaNames, testBrokers, testKafka, waitFor } from '../support/kafka-fixtures';
import { KafkaProxy } from '../support/kafka-proxy';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

/**
 * A replica asked to stop (SIGTERM: a deploy, a scale-down) while the broker is out of reach, with
 * events waiting to be published: it must end by itself, exit code 0, within
 * EARSHOT_SHUTDOWN_TIMEOUT_MS, and leave the waiting events in the outbox for the next leader.
 * The relay's thread, stopped after the consumer, had its drain (5 s) and 15 s more to end while
 * its send waited on kafkajs' retries: 20 s after SIGTERM, and with a consumer's stop of up to
 * about 6 s against such a broker, past the exit watchdog's 25 s.
 */
describe('stopping while the Kafka broker is out of reach', () => {
  const KEY = 'shutdown-key-0123456789';
  let database: TestDatabase;
  let admin: Admin;
  let proxy: KafkaProxy;
  let earshot: EarshotProcess | null = null;
  const names = kafkaNames('shutcut');

  beforeAll(async () => {
    database = await createTestDatabase('shutcut');
    admin = testKafka().admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: names.topic, numPartitions: 3 }], waitForLeaders: true });
    const [host, port] = testBrokers().split(',')[0]!.split(':');
    proxy = new KafkaProxy(host!, Number(port));
    await proxy.listen();
  });

  afterAll(async () => {
    await earshot?.kill('SIGKILL');
    await proxy?.restore();
    await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin?.deleteGroups([names.group]).catch(() => undefined);
    await admin?.disconnect();
    await database?.drop();
  });

  it('exits by itself with code 0 within the shutdown timeout, the waiting events kept in the outbox', { timeout: 180_000 }, async () => {
    earshot = spawnEarshot({
      DATABASE_URL: database.url,
      EARSHOT_ROLES: 'api,ingest',
      EARSHOT_API_KEYS: `${KEY}:service`,
      EARSHOT_SHUTDOWN_TIMEOUT_MS: '15000',
      ...kafkaEnv(names, { KAFKA_BROKERS: proxy.brokers }),
    });
    const url = await earshot.listening(60_000);
    await waitFor('ready: the group joined and the relay leading', async () => (await fetch(`${url}/readyz`)).status === 200, 60_000, 200);

    await proxy.cut();
    const res = await fetch(`${url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', 'x-api-key': KEY },
      body: ndjson(Array.from({ length: 5 }, (_, i) => message(i + 1, { externalId: `cut-${i}` }))),
    });
    expect(res.status).toBe(200);
    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    try {
      // the relay has taken the new row up and is trying to send it to the broker that is gone
      await waitFor('the relay tried to publish', async () => /Connection|ECONNREFUSED|ECONNRESET|broker/i.test(earshot!.output()) || null, 60_000, 100);

      const started = Date.now();
      const exit = await earshot.kill('SIGTERM');
      const ms = Date.now() - started;
      console.log(`stopped ${ms} ms after SIGTERM with the broker out of reach`);
      expect(earshot.output()).not.toContain('shutdown took too long');
      expect(exit).toBe(0);
      expect(ms, 'SIGTERM to exit, EARSHOT_SHUTDOWN_TIMEOUT_MS being 15 s').toBeLessThan(15_000);
      earshot = null;

      // nothing lost: the events wait in the outbox for the next leader
      const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM outbox_batch WHERE sent_at IS NULL AND cardinality(interaction_ids) > 0`);
      expect(rows[0]!.n).toBeGreaterThan(0);
      const stored = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM interaction WHERE external_id LIKE 'cut-%'`);
      expect(stored.rows[0]!.n).toBe(5);
    } finally {
      await db.end();
    }
  });
});

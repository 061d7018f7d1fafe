import type { Admin, Kafka } from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, readTopic, stopAndDropTopics, testKafka, waitFor } from '../support/kafka-fixtures';

// `sent_at` (and the publish-delay histogram read from it) is the broker's acknowledgement, not
// the end of the relay's bookkeeping after it: a marking UPDATE that waits behind another
// session's lock on the row must not count that wait as publishing delay.
describe('outbox: the publish delay ends at the broker acknowledgement', () => {
  const names = kafkaNames('pubdelay');
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'ingest' }), 'pubdelay');
  });
  afterAll(async () => {
    await stopAndDropTopics(app, admin, names);
    await admin?.disconnect();
  });

  it('a marking held up by another writer of the row after the acknowledgement does not count the wait', { timeout: 90_000 }, async () => {
    // The relay renders enriched events with a read of interaction_topic; these texts match no
    // topic, so the ingest never touches it. Locking it holds the relay before it publishes,
    // after the row is committed: long enough for the test to lock the outbox row itself.
    const renderGate = new pg.Client({ connectionString: app.database.url });
    const rowLock = new pg.Client({ connectionString: app.database.url });
    await renderGate.connect();
    await rowLock.connect();
    try {
      await renderGate.query('BEGIN');
      await renderGate.query('LOCK TABLE interaction_topic IN ACCESS EXCLUSIVE MODE');
      const lines = [1, 2].map((n) => message(n, { externalId: `delay-${n}`, eventId: `delay-${n}`, text: 'hello, a plain note' }));
      const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
      expect(res.status).toBe(200);

      await rowLock.query('BEGIN');
      // as another writer of the row would (an erasure taking events out of unsent rows updates them)
      const locked = (await rowLock.query('UPDATE outbox_batch SET last_error = last_error WHERE sent_at IS NULL RETURNING id')).rows as { id: string }[];
      expect(locked).toHaveLength(1);
      await renderGate.query('COMMIT');

      // the events reach the broker; the relay's marking then waits on the row lock
      await waitFor('the two events on the enriched topic', async () => {
        const ends = await admin.fetchTopicOffsets(names.enriched).catch(() => []);
        return ends.reduce((n, e) => n + Number(e.high), 0) >= 2;
      }, 30_000, 20);
      const enriched = await readTopic(kafka, names.enriched);
      expect(enriched.map((r) => JSON.parse(r.value!.toString('utf8')).externalId).sort()).toEqual(['delay-1', 'delay-2']);
      await waitFor('the relay to wait on the outbox row lock', async () => {
        const r = await rowLock.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'earshot-outbox-relay' AND wait_event_type = 'Lock' AND query LIKE 'UPDATE outbox_batch SET sent_at%'`,
        );
        return r.rowCount! > 0;
      }, 30_000, 20);
      const [{ released }] = (await rowLock.query(`SELECT clock_timestamp() AS released`)).rows as { released: Date }[];
      await rowLock.query('COMMIT');

      const sent = await waitFor('the row to be marked sent', async () => {
        const rows = (await app.db.ds.query('SELECT sent_at, created_at FROM outbox_batch WHERE id = $1 AND sent_at IS NOT NULL', [locked[0]!.id])) as { sent_at: Date; created_at: Date }[];
        return rows[0];
      }, 30_000, 20);
      // acknowledged before the lock was released: the marking's wait is not publishing delay
      expect(sent.sent_at.getTime()).toBeLessThan(released.getTime());
      expect(sent.sent_at.getTime()).toBeGreaterThanOrEqual(sent.created_at.getTime());
    } finally {
      await renderGate.query('ROLLBACK').catch(() => undefined);
      await rowLock.query('ROLLBACK').catch(() => undefined);
      await renderGate.end();
      await rowLock.end();
    }
  });
});

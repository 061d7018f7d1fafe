import type { Kafka } from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../src/config/config';
import { topicSpecs } from '../../src/ingest/kafka-client';
import { metricsSink, OutboxRelay } from '../../src/outbox/outbox-relay';
import { PlatformaticRelayProducer } from '../../src/outbox/relay-producer';
import { createLogger } from '../../src/shared/logger';
import { Metrics } from '../../src/shared/metrics';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, readTopic, testBrokers, testKafka, waitFor, type KafkaNames } from '../support/kafka-fixtures';

// A DBA's short `statement_timeout` for the database (ALTER DATABASE … SET), which Earshot's
// connections keep on purpose. The relay read and rendered up to 500 events in one statement:
// with the timeout under what that statement takes, it was cancelled again and again, every
// cancel counted as a failed attempt of all the rows of the chunk, and the relay backed off up to
// 10 s between tries. At 20 ms, 40 rows of 500 interactions waiting in the outbox: 4 went out in
// 10 minutes; 20,000 interactions ingested under it: 102 failed cycles, publish delays of 2.5 to
// 30 s. A row whose own event ran past the timeout held back the rows grouped with it for good,
// and a marking cancelled after the broker's acknowledgement published the row again. It now
// reads, renders and marks in smaller pieces when PostgreSQL cancels a statement, down to one
// event or row, says so once, and counts a failure only against the row whose event alone is
// cancelled (twice in a row).
//
// What the timeout cuts is made certain rather than left to the machine's speed: `outbox_ts`,
// which writes every timestamp of a rendered event (two per event), sleeps 1 ms per call here,
// the same text otherwise. A statement of the 500 events a chunk holds then takes at least 1 s,
// well past the 250 ms timeout; one event about 2 ms, far under it, however loaded the machine.

const TIMEOUT = '250ms';

const SLOW_OUTBOX_TS = `CREATE OR REPLACE FUNCTION outbox_ts(t timestamptz) RETURNS text LANGUAGE plpgsql STABLE AS $$
  BEGIN
    PERFORM pg_sleep(0.001);
    RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
  END $$`;

function kafkaSettings(app: TestApp, names: KafkaNames): Config['kafka'] {
  return loadConfig({ NODE_ENV: 'test', DATABASE_URL: app.database.url, ...kafkaEnv(names) }).kafka;
}

async function createTopics(kafka: Kafka, settings: Config['kafka']): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: topicSpecs(settings).filter((t) => t.topic.startsWith(settings.outputTopicPrefix)), waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

async function gauge(metrics: Metrics, name: string): Promise<number> {
  const m = await metrics.registry.getSingleMetric(name)!.get();
  return m.values[0]?.value ?? 0;
}

/** Event ids seen more than once in a topic. */
function repeated(records: { headers: Record<string, string> }[]): string[] {
  const seen = new Map<string, number>();
  for (const r of records) seen.set(r.headers['event-id']!, (seen.get(r.headers['event-id']!) ?? 0) + 1);
  return [...seen].filter(([, n]) => n > 1).map(([id]) => id);
}

describe("outbox relay under a DBA's short statement_timeout", () => {
  const names = kafkaNames('outboxst');
  let kafka: Kafka;
  let app: TestApp;
  /** the test's own session, without the timeout */
  let own: pg.Client;
  let relay: OutboxRelay | undefined;
  const metrics = new Metrics();
  const logLines: { level: string; msg: string; statement?: string }[] = [];

  const post = async (lines: unknown[]) => {
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(res.status).toBe(200);
  };
  /** `count` lines from `from` on, by 50 authors: one outbox row of `count` interactions and 50 customers per request */
  const lines = (from: number, count: number) => Array.from({ length: count }, (_, i) => message(from + i, { author: { handle: `st${(from + i) % 50}`, displayName: `St ${(from + i) % 50}` } }));
  const q = async <T,>(sql: string, params: unknown[] = []) => (await own.query(sql, params)).rows as T[];

  beforeAll(async () => {
    kafka = testKafka();
    // no Kafka for the service itself: the outbox waits for the test's relay
    app = await startTestApp({}, 'outboxst');
    own = new pg.Client({ connectionString: app.database.url });
    await own.connect();
  });

  afterAll(async () => {
    await relay?.stop(0);
    await own?.end();
    await app?.close();
    const admin = kafka?.admin();
    await admin?.connect();
    await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin?.disconnect();
  });

  it('publishes every event exactly once, parks nothing, counts no failed attempt, and says so once in the log', { timeout: 180_000 }, async () => {
    // a backlog written before the timeout: two rows of 500 interactions and 50 customers each (550 events, more than a chunk)
    await post(lines(0, 500));
    await post(lines(500, 500));

    await own.query(SLOW_OUTBOX_TS);
    await own.query(`ALTER DATABASE ${app.database.name} SET statement_timeout = '${TIMEOUT}'`);
    {
      const probe = new pg.Client({ connectionString: app.database.url });
      await probe.connect();
      const [{ s }] = (await probe.query(`SELECT current_setting('statement_timeout') AS s`)).rows as { s: string }[];
      await probe.end();
      expect(s).toBe(TIMEOUT);
    }
    // the statement the relay ran for a chunk of 500 events (the first slice of a row) runs past it
    const [{ id: first }] = await q<{ id: string }>(`SELECT min(id)::text AS id FROM outbox_batch`);
    const timed = new pg.Client({ connectionString: app.database.url });
    await timed.connect();
    try {
      await expect(timed.query(`SELECT outbox_ts(i.occurred_at), outbox_ts(i.created_at) FROM outbox_batch b, unnest(b.interaction_ids) WITH ORDINALITY x(id, n) JOIN interaction i ON i.id = x.id WHERE b.id = $1 AND x.n <= 500`, [first])).rejects.toThrow(/statement timeout/);
    } finally {
      await timed.end();
    }

    const settings = kafkaSettings(app, names);
    await createTopics(kafka, settings);
    const log = createLogger('debug', { component: 'outbox-relay' }, {
      write(line: string) {
        const l = JSON.parse(line) as { level: string; msg: string; statement?: string };
        if (l.level !== 'debug' && l.level !== 'info') logLines.push(l);
      },
    });
    relay = new OutboxRelay(new PlatformaticRelayProducer(settings, 'outboxst'), { url: app.database.url }, settings, metricsSink(metrics), log);
    await relay.start();

    // and one more row written while the relay publishes under the timeout
    await post(lines(1_000, 500));

    await waitFor('every outbox row to be sent', async () => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox_batch WHERE sent_at IS NULL`))[0]!.n === 0, 120_000, 250);

    const stored = await q<{ id: string }>(`SELECT id FROM interaction`);
    expect(stored).toHaveLength(1_500);
    const enriched = await readTopic(kafka, names.enriched, 60_000);
    expect(repeated(enriched)).toEqual([]);
    expect(new Set(enriched.map((r) => (JSON.parse(r.value!.toString('utf8')) as { interactionId: string }).interactionId))).toEqual(new Set(stored.map((s) => s.id)));
    // one summary per customer of each row, once
    const [{ n: summaries }] = await q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox_batch b, unnest(b.customer_ids)`);
    const sentiment = await readTopic(kafka, names.sentiment, 60_000);
    expect(repeated(sentiment)).toEqual([]);
    expect(sentiment).toHaveLength(summaries);

    // nothing parked, and no row counted a failed attempt: each was published and marked once
    const rows = await q<{ attempts: number; parked: boolean; last_error: string | null }>(`SELECT attempts, parked_at IS NOT NULL AS parked, last_error FROM outbox_batch ORDER BY id`);
    expect(rows.length).toBeGreaterThanOrEqual(3);
    for (const r of rows) expect(r).toEqual({ attempts: 1, parked: false, last_error: null });
    expect(await gauge(metrics, 'earshot_outbox_rows_parked')).toBe(0);
    await waitFor('the backlog gauge to read 0', async () => (await gauge(metrics, 'earshot_outbox_backlog')) === 0, 10_000, 100);
    expect(relay.health()).toBeNull();

    // said once, whatever number of statements it cut; no other warning (no cycle failed, no row parked)
    const said = logLines.filter((l) => /statement_timeout cancels the outbox relay's statements/.test(l.msg));
    expect(said).toHaveLength(1);
    expect(logLines.filter((l) => !said.includes(l)).map((l) => l.msg)).toEqual([]);
  });
});

/** A service without Kafka writing the outbox, the test's own session (no timeout), and a relay of the test's own once started. */
function relayHarness(label: string) {
  const h = {
    names: kafkaNames(label),
    kafka: null as unknown as Kafka,
    app: null as unknown as TestApp,
    own: null as unknown as pg.Client,
    relay: undefined as OutboxRelay | undefined,
    metrics: new Metrics(),
    logLines: [] as { level: string; msg: string; outboxRow?: string }[],
    async q<T>(sql: string, params: unknown[] = []): Promise<T[]> {
      return (await h.own.query(sql, params)).rows as T[];
    },
    async post(lines: unknown[]): Promise<void> {
      const res = await fetch(`${h.app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
      expect(res.status).toBe(200);
    },
    async start(opts: ConstructorParameters<typeof OutboxRelay>[5] = {}): Promise<void> {
      const settings = kafkaSettings(h.app, h.names);
      await createTopics(h.kafka, settings);
      const log = createLogger('warn', { component: 'outbox-relay' }, { write: (line: string) => void h.logLines.push(JSON.parse(line)) });
      h.relay = new OutboxRelay(new PlatformaticRelayProducer(settings, label), { url: h.app.database.url }, settings, metricsSink(h.metrics), log, opts);
      await h.relay.start();
    },
  };
  beforeAll(async () => {
    h.kafka = testKafka();
    h.app = await startTestApp({}, label);
    h.own = new pg.Client({ connectionString: h.app.database.url });
    await h.own.connect();
    await h.own.query(`ALTER DATABASE ${h.app.database.name} SET statement_timeout = '${TIMEOUT}'`);
  });
  afterAll(async () => {
    await h.relay?.stop(0);
    await h.own?.end();
    await h.app?.close();
    const admin = h.kafka?.admin();
    await admin?.connect();
    await admin?.deleteTopics({ topics: h.names.all }).catch(() => undefined);
    await admin?.disconnect();
  });
  return h;
}

describe("outbox relay under a DBA's short statement_timeout: a row whose one event alone runs past it", () => {
  const h = relayHarness('outboxstalone');

  it('parks that row only, saying why, publishes the rows around it once, and the row once it fits', { timeout: 120_000 }, async () => {
    // every timestamp of an event takes 1 ms to write, and the one of 2026-11-28T00:00Z 1 s:
    // the event of that interaction (and its customer's summary) runs past the timeout alone
    await h.own.query(`CREATE OR REPLACE FUNCTION outbox_ts(t timestamptz) RETURNS text LANGUAGE plpgsql STABLE AS $$
      BEGIN
        PERFORM pg_sleep(CASE WHEN t = timestamptz '2026-11-28T00:00:00Z' THEN 1 ELSE 0.001 END);
        RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
      END $$`);
    await h.post([1, 2, 3].map((n) => message(n, { author: { handle: `before${n}` } })));
    await h.post([message(4, { author: { handle: 'slow' }, occurredAt: '2026-11-28T00:00:00.000Z' })]);
    await h.post([5, 6, 7].map((n) => message(n, { author: { handle: `after${n}` } })));
    const [slow] = await h.q<{ id: string }>(`SELECT b.id::text FROM outbox_batch b JOIN interaction i ON i.id = ANY(b.interaction_ids) WHERE i.external_id = 'ext-4'`);
    await h.start({ parkAfterAttempts: 2, parkedRetryMs: 500 });

    await waitFor('the slow row to be parked and the others sent', async () => {
      const rows = await h.q<{ id: string; sent: boolean; parked: boolean }>(`SELECT id::text, sent_at IS NOT NULL AS sent, parked_at IS NOT NULL AS parked FROM outbox_batch ORDER BY id`);
      return rows.every((r) => (r.id === slow!.id ? r.parked && !r.sent : r.sent));
    }, 60_000, 100);
    const [parked] = await h.q<{ last_error: string }>(`SELECT last_error FROM outbox_batch WHERE id = $1`, [slow!.id]);
    expect(parked!.last_error).toMatch(/statement timeout/);
    const named = h.logLines.filter((l) => /statement ran past the database's statement_timeout even for one event alone/.test(l.msg));
    expect(named.length).toBeGreaterThanOrEqual(1);
    expect(h.logLines.filter((l) => /^outbox row parked/.test(l.msg)).map((l) => l.outboxRow)).toEqual([slow!.id]);
    expect(h.relay!.health()).toBeNull();

    // the event fits again (the operator raised the timeout, or the data changed): the parked row goes out on its retry
    await h.own.query(`CREATE OR REPLACE FUNCTION outbox_ts(t timestamptz) RETURNS text LANGUAGE sql STABLE AS
      $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$`);
    await waitFor('the parked row to be published', async () => (await h.q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox_batch WHERE sent_at IS NULL`))[0]!.n === 0, 60_000, 100);
    const enriched = await readTopic(h.kafka, h.names.enriched, 30_000);
    expect(repeated(enriched)).toEqual([]);
    expect(enriched.map((r) => (JSON.parse(r.value!.toString('utf8')) as { externalId: string }).externalId).sort()).toEqual(['ext-1', 'ext-2', 'ext-3', 'ext-4', 'ext-5', 'ext-6', 'ext-7']);
  });
});

describe("outbox relay under a DBA's short statement_timeout: the marking of a published row held past it", () => {
  const h = relayHarness('outboxstmark');

  it('publishes the row once and marks it sent once the lock is gone', { timeout: 120_000 }, async () => {
    await h.post([1, 2, 3].map((n) => message(n, { author: { handle: `mark${n}` } })));
    const [row] = await h.q<{ id: string }>(`SELECT b.id::text FROM outbox_batch b JOIN interaction i ON i.id = ANY(b.interaction_ids) WHERE i.external_id = 'ext-1'`);
    // another writer of the row holds it (as an erasure taking events out of unsent rows does), longer than the timeout
    const holder = new pg.Client({ connectionString: h.app.database.url });
    await holder.connect();
    try {
      await holder.query(`SET statement_timeout = 0`);
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM outbox_batch WHERE id = $1 FOR UPDATE`, [row!.id]);
      await h.start();
      await waitFor('the events on the topic', async () => {
        const admin = h.kafka.admin();
        await admin.connect();
        try {
          return (await admin.fetchTopicOffsets(h.names.enriched)).reduce((n, p) => n + Number(p.high), 0) >= 3;
        } finally {
          await admin.disconnect();
        }
      }, 30_000, 100);
      // the relay's marking waits on the lock, is cancelled by the timeout, and is tried again, more than once
      for (let i = 0; i < 3; i++) {
        await waitFor('the relay to wait for the row again', async () => {
          const r = await h.own.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'earshot-outbox-relay' AND wait_event_type = 'Lock' AND query LIKE 'UPDATE outbox_batch SET sent_at%'`);
          return r.rowCount! > 0;
        }, 30_000, 20);
        await waitFor('that wait to end', async () => {
          const r = await h.own.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'earshot-outbox-relay' AND wait_event_type = 'Lock' AND query LIKE 'UPDATE outbox_batch SET sent_at%'`);
          return r.rowCount === 0;
        }, 30_000, 20);
      }
      await holder.query('COMMIT');
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
    await waitFor('the row to be marked sent', async () => (await h.q<{ sent: boolean }>(`SELECT sent_at IS NOT NULL AS sent FROM outbox_batch WHERE id = $1`, [row!.id]))[0]!.sent, 30_000, 100);
    const enriched = await readTopic(h.kafka, h.names.enriched, 30_000);
    expect(repeated(enriched)).toEqual([]);
    expect(enriched).toHaveLength(3);
    const sentiment = await readTopic(h.kafka, h.names.sentiment, 30_000);
    expect(repeated(sentiment)).toEqual([]);
    expect(sentiment).toHaveLength(3);
    // said once for the row, however often its marking was tried
    expect(h.logLines.filter((l) => /marking it sent failed/.test(l.msg)).map((l) => l.outboxRow)).toEqual([row!.id]);
  });
});

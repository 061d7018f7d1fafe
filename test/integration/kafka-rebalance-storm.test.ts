import { type Admin, type Kafka } from 'kafkajs';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { groupLag, kafkaNames, produce, readTopic, testKafka, waitFor, type KafkaNames } from '../support/kafka-fixtures';
import { onPartition, startInstance, stored, type Instance } from '../support/kafka-instance';
import { KafkaProxy } from '../support/kafka-proxy';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

/**
 * Consumer-group churn as a rolling deploy or a jumpy autoscaler makes it: members join and
 * leave (gracefully, mid-rebalance, or cut off from the broker) while messages flow, and a
 * member whose batch outlasts the session loses its partitions mid-batch. The promises: each
 * message stored once and its event published once, every partition committed to its end,
 * stops within bounds, and a routine rebalance is not an error in the log.
 */

const PARTITIONS = 6;

const errorLines = (i: Instance) => i.logs.filter((l) => l.level === 'error');
const processed = async (i: Instance) => (await i.app.metrics.kafkaMessages.get()).values.reduce((s, v) => s + v.value, 0);
const duplicatesSeen = async (i: Instance) =>
  (await i.app.metrics.kafkaMessages.get()).values.filter((v) => v.labels.result === 'duplicate').reduce((s, v) => s + v.value, 0);
/** per event-id, how many times it is on the topic */
const eventCopies = async (kafka: Kafka, topic: string) => {
  const copies = new Map<string, number>();
  for (const r of await readTopic(kafka, topic, 60_000)) copies.set(r.headers['event-id']!, (copies.get(r.headers['event-id']!) ?? 0) + 1);
  return copies;
};

describe('Kafka consumer under consumer-group churn', () => {
  let kafka: Kafka;
  let admin: Admin;
  const databases: TestDatabase[] = [];
  const running = new Set<Instance>();
  const topics: string[] = [];
  const groups: string[] = [];

  const fresh = async (label: string) => {
    const names = kafkaNames(label);
    topics.push(...names.all);
    groups.push(names.group);
    const database = await createTestDatabase(`kafka${label}`);
    databases.push(database);
    await admin.createTopics({ topics: [{ topic: names.topic, numPartitions: PARTITIONS }], waitForLeaders: true });
    return { names, database };
  };
  const start = async (database: TestDatabase, names: KafkaNames, extra: Record<string, string>) => {
    const i = await startInstance(database, names, { KAFKA_TOPIC_PARTITIONS: String(PARTITIONS), KAFKA_FETCH_MAX_WAIT_MS: '500', ...extra });
    running.add(i);
    return i;
  };
  /** stops `i`; returns how long it took */
  const stop = async (i: Instance) => {
    const t = Date.now();
    await i.app.stop();
    running.delete(i);
    return Date.now() - t;
  };
  const count = async (i: Instance, sql: string) => ((await i.app.db.ds.query(sql)) as { n: number }[])[0]!.n;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
  });

  afterAll(async () => {
    for (const i of running) await i.app.stop().catch(() => undefined);
    for (const d of databases) await d.drop().catch(() => undefined);
    await admin?.deleteTopics({ topics }).catch(() => undefined);
    await admin?.deleteGroups(groups).catch(() => undefined);
    await admin?.disconnect();
  });

  it('a rebalance storm: one replica of three stopped and started again and again while messages flow', { timeout: 180_000 }, async () => {
    const { names, database } = await fresh('storm');
    const proxy = new KafkaProxy('127.0.0.1', Number(process.env.EARSHOT_TEST_KAFKA_BROKERS!.split(',')[0]!.split(':')[1]));
    await proxy.listen();
    try {
      const env = { KAFKA_SESSION_TIMEOUT_MS: '6000', KAFKA_CHUNK_SIZE: '25' };
      const a = await start(database, names, env);
      const b = await start(database, names, env);
      await Promise.all([a.app.kafka!.consumer.whenJoined(), b.app.kafka!.consumer.whenJoined()]);

      // each round: the third replica joins, a slice is written, and it leaves again mid-stream:
      // gracefully, cut off from the broker first, or before it has even joined (the group rebalancing)
      const ROUNDS = 6;
      const PER_ROUND = 500;
      const stops: { kind: string; ms: number }[] = [];
      const churned: Instance[] = [];
      const rounds: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const began = Date.now();
        const kind = (['graceful', 'cut off', 'mid-rebalance'] as const)[round % 3]!;
        const slice = Array.from({ length: PARTITIONS }, (_, p) => onPartition(p, p * 10_000 + round * (PER_ROUND / PARTITIONS), Math.floor(PER_ROUND / PARTITIONS), 'storm')).flat();
        const c = await start(database, names, kind === 'cut off' ? { ...env, KAFKA_BROKERS: proxy.brokers } : env);
        churned.push(c);
        let sending: Promise<void>;
        if (kind === 'mid-rebalance') {
          sending = produce(kafka, names.topic, slice, 50);
        } else {
          await c.app.kafka!.consumer.whenJoined();
          const before = await processed(c);
          sending = produce(kafka, names.topic, slice, 50);
          // bounded: the group may have given it nothing this round
          await waitFor('the churning replica to consume', async () => (await processed(c)) > before, 15_000, 10).catch(() => undefined);
        }
        if (kind === 'cut off') await proxy.cut();
        stops.push({ kind, ms: await stop(c) });
        if (kind === 'cut off') await proxy.restore();
        await sending;
        rounds.push(Date.now() - began);
      }
      const total = ROUNDS * PARTITIONS * Math.floor(PER_ROUND / PARTITIONS);
      const lastLeft = Date.now();
      // a member cut off leaves only when its session expires (6 s); its partitions wait that long
      await waitFor('every partition committed to its end', async () => (await groupLag(admin, names.group, names.topic)) === 0, 60_000, 100);
      const lagZeroMs = Date.now() - lastLeft;
      await waitFor('the outbox published', async () => (await count(a, `SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`)) === 0, 60_000);

      expect(await count(a, `SELECT count(*)::int AS n FROM interaction WHERE external_id LIKE 'storm-%'`)).toBe(total);
      expect(await count(a, `SELECT count(DISTINCT (source, external_id))::int AS n FROM interaction`)).toBe(total);
      expect(await count(a, `SELECT count(*)::int AS n FROM outbox WHERE topic = 'interactions.enriched.v1'`)).toBe(total);
      const copies = await eventCopies(kafka, names.enriched);
      expect(copies.size).toBe(total);
      expect([...copies.values()].filter((n) => n > 1)).toEqual([]);
      // every stop within bounds, including one mid-rebalance and one cut off from the broker
      for (const s of stops) expect(s.ms, JSON.stringify(stops)).toBeLessThan(10_000);
      // a rebalance is routine: the members that stay, and those that leave gracefully, log no error;
      // one cut off logs its lost connections (and, once the broker is back, that the group had dropped it), nothing else
      for (const i of [a, b, ...churned.filter((_, n) => n % 3 !== 1)]) expect(errorLines(i), JSON.stringify(errorLines(i).slice(0, 3))).toEqual([]);
      for (const i of churned.filter((_, n) => n % 3 === 1)) {
        for (const l of errorLines(i)) expect(`${String(l.msg)} ${String(l.error)}`).toMatch(/ECONNRESET|ECONNREFUSED|Connection error|seed broker|Connection timeout|not aware of this member/);
      }
      const joins = [a, b, ...churned].reduce((s, i) => s + i.logs.filter((l) => l.msg === 'kafka consumer joined its group').length, 0);
      const duplicates = (await Promise.all([a, b].map(duplicatesSeen))).reduce((x, y) => x + y, 0);
      console.info(`kafka-rebalance-storm: ${total} messages over ${ROUNDS} rounds, ${joins} group joins, ${duplicates} redelivered duplicates ignored, lag 0 ${lagZeroMs} ms after the last leave, stops ${stops.map((s) => `${s.kind} ${s.ms} ms`).join(', ')}; rounds ${rounds.join(', ')} ms`);
    } finally {
      await proxy.cut();
    }
  });

  it('a batch blocked past the session timeout (table locked) loses its partitions: the late commit is refused, the batch is redone, nothing twice', { timeout: 120_000 }, async () => {
    const { names, database } = await fresh('slowbatch');
    const env = { KAFKA_SESSION_TIMEOUT_MS: '6000', KAFKA_CHUNK_SIZE: '50' };
    const a = await start(database, names, env);
    const b = await start(database, names, env);
    await Promise.all([a.app.kafka!.consumer.whenJoined(), b.app.kafka!.consumer.whenJoined()]);
    const group = async () => (await admin.describeGroups([names.group])).groups[0]!;
    await waitFor('both members in a stable group', async () => {
      const g = await group();
      return g.state === 'Stable' && g.members.length === 2;
    }, 30_000);
    await produce(kafka, names.topic, Array.from({ length: PARTITIONS }, (_, p) => onPartition(p, p * 1_000, 10, 'warm')).flat());
    await waitFor('the warm-up stored', async () => (await stored(a.app, 'warm-%')) === 60, 30_000);

    // an operator's migration holds a lock that blocks every insert into interaction
    const lock = new Client({ connectionString: database.url });
    await lock.connect();
    await lock.query('BEGIN');
    await lock.query('LOCK TABLE interaction IN SHARE ROW EXCLUSIVE MODE');
    await produce(kafka, names.topic, Array.from({ length: PARTITIONS }, (_, p) => onPartition(p, p * 1_000 + 10, 100, 'slow')).flat());
    await waitFor('both members to wait on the lock mid-batch', async () => {
      const { rows } = await lock.query(`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'interaction' AND NOT l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
      return (rows[0] as { n: number }).n >= 2;
    }, 30_000, 50);
    // neither heartbeats while its batch waits: the broker drops both when their sessions expire
    await waitFor('the group to drop the blocked members', async () => (await group()).state === 'Empty', 30_000, 100);
    await lock.query('ROLLBACK');
    await lock.end();
    const released = Date.now();

    await waitFor('every partition committed to its end', async () => (await groupLag(admin, names.group, names.topic)) === 0, 60_000, 100);
    const lagZeroMs = Date.now() - released;
    await waitFor('the outbox published', async () => (await count(a, `SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`)) === 0, 60_000);
    expect(await count(a, `SELECT count(*)::int AS n FROM interaction`)).toBe(660);
    expect(await count(a, `SELECT count(*)::int AS n FROM outbox WHERE topic = 'interactions.enriched.v1'`)).toBe(660);
    const copies = await eventCopies(kafka, names.enriched);
    expect(copies.size).toBe(660);
    expect([...copies.values()].filter((n) => n > 1)).toEqual([]);
    // the blocked chunks committed in the database, their offsets did not: redelivered and ignored
    const duplicates = (await duplicatesSeen(a)) + (await duplicatesSeen(b));
    expect(duplicates).toBeGreaterThan(0);
    // what is logged at error is the members being dropped (a batch outlasted the session), not the rebalance
    for (const l of [...errorLines(a), ...errorLines(b)]) expect(`${String(l.msg)} ${String(l.error)}`).toMatch(/not aware of this member/);
    expect(await stop(a)).toBeLessThan(10_000);
    expect(await stop(b)).toBeLessThan(10_000);
    console.info(`kafka-rebalance-storm: batch blocked past the session; ${duplicates} redelivered messages ignored, lag 0 ${lagZeroMs} ms after the lock was released`);
  });

  it('a replica cut off from the broker while its chunk waits on a lock stops within bounds; nothing is lost or stored twice', { timeout: 120_000 }, async () => {
    const { names, database } = await fresh('cutstop');
    const proxy = new KafkaProxy('127.0.0.1', Number(process.env.EARSHOT_TEST_KAFKA_BROKERS!.split(',')[0]!.split(':')[1]));
    await proxy.listen();
    try {
      const env = { KAFKA_SESSION_TIMEOUT_MS: '6000', KAFKA_CHUNK_SIZE: '50' };
      const first = await start(database, names, { ...env, KAFKA_BROKERS: proxy.brokers });
      await first.app.kafka!.consumer.whenJoined();
      const lock = new Client({ connectionString: database.url });
      await lock.connect();
      await lock.query('BEGIN');
      await lock.query('LOCK TABLE interaction IN SHARE ROW EXCLUSIVE MODE');
      await produce(kafka, names.topic, Array.from({ length: PARTITIONS }, (_, p) => onPartition(p, p * 1_000, 100, 'cut')).flat());
      await waitFor('a chunk to wait on the lock', async () => {
        const { rows } = await lock.query(`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'interaction' AND NOT l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
        return (rows[0] as { n: number }).n >= 1;
      }, 30_000, 50);
      // the broker's host goes away, then the replica is told to stop, and the lock goes
      await proxy.cut();
      // the consumer's own stop is measured: the outbox relay's drain to an unreachable broker is not its part
      const stopping = (async () => {
        const t = Date.now();
        await first.app.kafka!.consumer.stop();
        const ms = Date.now() - t;
        await proxy.restore();
        await stop(first);
        return ms;
      })();
      await lock.query('ROLLBACK');
      await lock.end();
      const stopMs = await stopping;
      // EARSHOT_SHUTDOWN_TIMEOUT_MS is 15 s by default: the chunk's commit and the group's leave, both
      // to a broker out of reach, must not hold the stop for kafkajs' retries (15 s, 30 s before)
      expect(stopMs).toBeLessThan(10_000);
      expect(first.logs.filter((l) => l.level === 'warn' && String(l.msg).startsWith('stopping: the broker did not take the offset commit')).length).toBeGreaterThan(0);

      const second = await start(database, names, env);
      await waitFor('every partition committed to its end', async () => (await groupLag(admin, names.group, names.topic)) === 0, 60_000, 100);
      await waitFor('the outbox published', async () => (await count(second, `SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`)) === 0, 60_000);
      expect(await count(second, `SELECT count(*)::int AS n FROM interaction`)).toBe(600);
      expect(await count(second, `SELECT count(*)::int AS n FROM outbox WHERE topic = 'interactions.enriched.v1'`)).toBe(600);
      console.info(`kafka-rebalance-storm: stop of a replica cut off from the broker mid-chunk took ${stopMs} ms`);
    } finally {
      await proxy.cut();
    }
  });
});

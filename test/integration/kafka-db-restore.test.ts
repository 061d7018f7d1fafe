import { Client } from 'pg';
import { describe, expect, it } from 'vitest';
import { groupLag, produce, waitFor } from '../support/kafka-fixtures';
import { createTestDatabase, TEST_PG_ENV, type TestDatabase } from '../support/postgres';
import { kafkaWorld, metric, onPartition, startInstance, stored, type Instance } from '../support/kafka-instance';
import type { KafkaNames } from '../support/kafka-fixtures';

/**
 * The database goes back in time under a running Kafka group: restored from last night's backup,
 * or failed over to an asynchronous standby that had not received the last commits. The group's
 * committed offsets in Kafka are past what the database now holds; what lies between must be read
 * again (each interaction stored once), and what retention deleted meanwhile must be said to be
 * lost, with how many.
 */

describe('Kafka ingest after the database goes back in time', () => {
  const world = kafkaWorld();

  const start = async (database: TestDatabase, names: KafkaNames): Promise<Instance> => {
    const i = await startInstance(database, names);
    world.running.push(i.app);
    return i;
  };
  const stop = async (i: Instance) => {
    await i.app.stop();
    world.running.splice(world.running.indexOf(i.app), 1);
  };
  const admin = async <T>(fn: (c: Client) => Promise<T>): Promise<T> => {
    const c = new Client({ connectionString: process.env[TEST_PG_ENV] });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  /** A file-level copy of the stopped app's database, like a backup (CREATE DATABASE … TEMPLATE). */
  const backup = async (database: TestDatabase): Promise<TestDatabase> => {
    await waitFor('the stopped app to close its connections', () => admin(async (c) => (await c.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1`, [database.name])).rows[0].n === 0), 30_000);
    const snap = await createTestDatabase('snap', database);
    world.databases.push(snap);
    return snap;
  };
  /** The app's database replaced by the backup, under the same name. */
  const restore = (database: TestDatabase, snap: TestDatabase) =>
    admin(async (c) => {
      await c.query(`DROP DATABASE ${database.name} WITH (FORCE)`);
      await c.query(`CREATE DATABASE ${database.name} TEMPLATE ${snap.name}`);
    });
  /** waits until `n` interactions are stored; on timeout, says how many were */
  const storedAll = (i: Instance, n: number, what: string) =>
    waitFor(what, async () => {
      const got = (await count(i, '%')).n;
      if (got !== n) throw new Error(`${got} stored`);
      return true;
    }, 60_000);
  const count = async (i: Instance, like: string) =>
    ((await i.app.db.ds.query(`SELECT count(*)::int AS n, count(DISTINCT external_id)::int AS d FROM interaction WHERE external_id LIKE $1`, [like])) as { n: number; d: number }[])[0]!;

  /** 20 messages stored, backed up, 20 more stored, the backup restored; returns the stopped world. */
  const restoredAfterMore = async (label: string, beforeRestore?: (names: KafkaNames) => Promise<void>) => {
    const { names, database } = await world.fresh(label);
    const first = await start(database, names);
    await first.app.kafka!.consumer.whenJoined();
    await produce(world.kafka, names.topic, [...onPartition(0, 0, 10, 'old'), ...onPartition(1, 1_000, 10, 'old')]);
    await waitFor('the first 20', async () => (await stored(first.app, 'old-%')) === 20, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(world.admin, names.group, names.topic)) === 0, 30_000);
    await stop(first);
    const snap = await backup(database);

    const second = await start(database, names);
    await produce(world.kafka, names.topic, [...onPartition(0, 10, 10, 'new'), ...onPartition(1, 1_010, 10, 'new')]);
    await waitFor('the next 20', async () => (await stored(second.app, 'new-%')) === 20, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(world.admin, names.group, names.topic)) === 0, 30_000);
    await stop(second);

    await restore(database, snap);
    await beforeRestore?.(names);
    return { names, database };
  };

  it('restored from a backup taken before the last 20: all 40 stored, each once, and a warning per partition says what was read again', { timeout: 180_000 }, async () => {
    const { names, database } = await restoredAfterMore('restore');
    const third = await start(database, names);
    await storedAll(third, 40, 'all 40 after the restore');
    await waitFor('every offset committed', async () => (await groupLag(world.admin, names.group, names.topic)) === 0, 30_000);
    expect(await count(third, '%')).toEqual({ n: 40, d: 40 });
    expect(await count(third, 'new-%')).toEqual({ n: 20, d: 20 });
    const warned = third.logs.filter((l) => l.level === 'warn' && l.topic === names.topic && l.databaseOffset !== undefined);
    expect(warned.map((l) => ({ partition: l.partition, committedOffset: l.committedOffset, databaseOffset: l.databaseOffset, reRead: l.reRead })).sort((a, b) => Number(a.partition) - Number(b.partition))).toEqual([
      { partition: 0, committedOffset: '20', databaseOffset: '10', reRead: 10 },
      { partition: 1, committedOffset: '20', databaseOffset: '10', reRead: 10 },
    ]);
    expect(String(warned[0]!.msg)).toMatch(/restored|failed over/);
    expect(await metric(third.app, 'earshot_kafka_offsets_skipped_total', {})).toBe(0);
  });

  it('restored after retention deleted part of what the database misses: the error says how many are lost, the rest is read again, ingest goes on', { timeout: 180_000 }, async () => {
    // offsets 10..14 of partition 0 deleted (log start 15): the database, back at 10, can never have them again
    const { names, database } = await restoredAfterMore('retention', (n) => world.admin.deleteTopicRecords({ topic: n.topic, partitions: [{ partition: 0, offset: '15' }] }));
    const third = await start(database, names);
    await storedAll(third, 35, 'the 35 still in the log');
    const lost = await waitFor('the loss to be said', async () => third.logs.find((l) => l.level === 'error' && l.topic === names.topic && l.lost !== undefined), 30_000);
    expect(lost).toMatchObject({ partition: 0, databaseOffset: '10', logStartOffset: '15', committedOffset: '20', lost: 5, reRead: 5 });
    expect(await metric(third.app, 'earshot_kafka_offsets_skipped_total', { topic: names.topic, partition: '0' })).toBe(5);
    // partition 1 lost nothing: read again from the database's offset
    expect(third.logs.filter((l) => l.level === 'warn' && l.topic === names.topic && l.partition === 1 && l.reRead === 10)).toHaveLength(1);
    await produce(world.kafka, names.topic, onPartition(0, 20, 5, 'after'));
    await waitFor('the 5 written after', async () => (await stored(third.app, 'after-%')) === 5, 60_000);
    expect(await count(third, '%')).toEqual({ n: 40, d: 40 });
    // new-10..new-14 are gone for good, new-15..new-19 were read again
    expect(await count(third, 'new-1_')).toEqual({ n: 5, d: 5 });
    expect((await fetch(`${third.app.url}/readyz`)).status).toBe(200);
  });

  it('moved forward on purpose by an operator while stopped (a reset to the end): the skipped messages stay skipped, the database follows', { timeout: 120_000 }, async () => {
    const { names, database } = await world.fresh('skipforward');
    const first = await start(database, names);
    await first.app.kafka!.consumer.whenJoined();
    await produce(world.kafka, names.topic, onPartition(0, 0, 10, 'kept'));
    await waitFor('the first 10', async () => (await stored(first.app, 'kept-%')) === 10, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(world.admin, names.group, names.topic)) === 0, 30_000);
    await stop(first);
    // a backlog the operator decides to skip, as kafka-consumer-groups --reset-offsets --to-latest
    // would (another client's commit: no Earshot metadata)
    await produce(world.kafka, names.topic, onPartition(0, 10, 10, 'skipped'));
    await world.admin.setOffsets({ groupId: names.group, topic: names.topic, partitions: [{ partition: 0, offset: '20' }] });
    const second = await start(database, names);
    await produce(world.kafka, names.topic, onPartition(0, 20, 5, 'later'));
    await waitFor('the 5 written after', async () => (await stored(second.app, 'later-%')) === 5, 60_000);
    expect(await stored(second.app, 'skipped-%')).toBe(0);
    const followed = second.logs.filter((l) => l.topic === names.topic && l.databaseOffset !== undefined);
    expect(followed.map((l) => ({ level: l.level, partition: l.partition, committedOffset: l.committedOffset, databaseOffset: l.databaseOffset }))).toEqual([
      { level: 'info', partition: 0, committedOffset: '20', databaseOffset: '10' },
    ]);
    expect(String(followed[0]!.msg)).toMatch(/another client/);
    // and the database took the move: a restart reads nothing again
    await waitFor('every offset committed', async () => (await groupLag(world.admin, names.group, names.topic)) === 0, 30_000);
    expect(((await second.app.db.ds.query(`SELECT next_offset::int AS n FROM kafka_progress WHERE topic = $1 AND partition = 0`, [names.topic])) as { n: number }[])[0]!.n).toBe(25);
  });

  it("partitions whose chunks finish together: each partition's committed offset is Earshot's own (the mark a restore is told by), round after round", { timeout: 180_000 }, async () => {
    // kafkajs commits every resolved offset after any partition's batch: a partition's offset
    // resolved while its own marked commit is in flight was committed again unmarked, and a
    // restore then took Earshot's commit for an operator's move and read nothing again
    const { names, database } = await world.fresh('together');
    const i = await start(database, names);
    await i.app.kafka!.consumer.whenJoined();
    for (let round = 0; round < 25; round++) {
      await produce(world.kafka, names.topic, [0, 1, 2].flatMap((p) => onPartition(p, p * 1_000 + round, 1, `r${round}`)));
      await waitFor(`round ${round} stored`, async () => (await stored(i.app, `r${round}-%`)) === 3, 60_000);
      await waitFor(`round ${round} committed`, async () => (await groupLag(world.admin, names.group, names.topic)) === 0, 30_000);
      const [offsets] = await world.admin.fetchOffsets({ groupId: names.group, topics: [names.topic] });
      expect(offsets!.partitions.map((p) => ({ partition: p.partition, offset: p.offset, metadata: p.metadata })).sort((a, b) => a.partition - b.partition), `round ${round}`).toEqual(
        [0, 1, 2].map((partition) => ({ partition, offset: String(round + 1), metadata: 'earshot' })),
      );
    }
  });

  it('restarted without a restore, after a last chunk of dead letters only: nothing read again, nothing said', { timeout: 120_000 }, async () => {
    const { names, database } = await world.fresh('norestore');
    const first = await start(database, names);
    await first.app.kafka!.consumer.whenJoined();
    await produce(world.kafka, names.topic, onPartition(0, 0, 20, 'one'));
    await waitFor('the first 20', async () => (await stored(first.app, 'one-%')) === 20, 60_000);
    // a chunk that stores nothing still moves the database's progress
    await produce(world.kafka, names.topic, [0, 1, 2].map(() => ({ key: null, partition: 0, value: 'not json' })));
    await waitFor('the 3 dead letters', async () => (await metric(first.app, 'earshot_kafka_messages_total', { topic: names.topic, result: 'dead_letter' })) === 3 || null, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(world.admin, names.group, names.topic)) === 0, 30_000);
    await stop(first);
    const second = await start(database, names);
    await produce(world.kafka, names.topic, onPartition(0, 20, 5, 'two'));
    await waitFor('the next 5', async () => (await stored(second.app, 'two-%')) === 5, 60_000);
    expect(await metric(second.app, 'earshot_kafka_messages_total', { topic: names.topic, result: 'duplicate' })).toBe(0);
    expect(await metric(second.app, 'earshot_kafka_messages_total', { topic: names.topic, result: 'dead_letter' })).toBe(0);
    expect(second.logs.filter((l) => l.databaseOffset !== undefined)).toEqual([]);
  });
});

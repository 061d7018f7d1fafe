import { type Admin, type Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app';
import { groupLag, kafkaNames, produce, readTopic, testKafka, waitFor, type KafkaNames, type Outgoing } from '../support/kafka-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { metric, onPartition, startInstance, stored, type Instance } from '../support/kafka-instance';

/**
 * What an unlucky operator does to a running system, on the real broker: partitions added to
 * the input topic, the committed offset made out of range (records deleted under it), the
 * input topic deleted and recreated, the group's offsets reset to earlier ones. The promises
 * checked: nothing written to the topic is skipped without an error log and a metric saying
 * so, no partition stalls, and a replay stores nothing twice and publishes nothing twice.
 */

describe('Kafka operator mishaps', () => {
  let kafka: Kafka;
  let admin: Admin;
  const databases: TestDatabase[] = [];
  const running: RunningApp[] = [];
  const topics: string[] = [];
  const groups: string[] = [];

  const fresh = async (label: string) => {
    const names = kafkaNames(label);
    topics.push(...names.all);
    groups.push(names.group);
    const database = await createTestDatabase(`kafka${label.replace(/\W/g, '')}`);
    databases.push(database);
    return { names, database };
  };
  const start = async (database: TestDatabase, names: KafkaNames, extra: Record<string, string> = {}) => {
    const i = await startInstance(database, names, extra);
    running.push(i.app);
    return i;
  };
  const stop = async (i: Instance) => {
    await i.app.stop();
    running.splice(running.indexOf(i.app), 1);
  };
  /**
   * Adds partitions to the topic and writes to them at once, before Earshot can have noticed them.
   * The broker can answer a metadata request with the old partition count for a few ms after
   * createPartitions returned (2 of 100 tries on an idle machine, longer under load), and a kafkajs
   * producer sends nothing to a partition its metadata does not list and resolves all the same:
   * the test could then wait 60 s for messages that were never written. So the writes start once the
   * broker lists the new partitions with a leader that answers for them (a leader just elected
   * can still say it is not the leader), and each partition's end is checked to have moved by
   * what was written to it.
   */
  const addPartitionsAndWrite = async (topic: string, count: number, messages: Outgoing[]): Promise<number> => {
    await admin.createPartitions({ topicPartitions: [{ topic, count }] });
    const added = Date.now();
    const before = await waitFor('the broker to list the new partitions and answer for them', async () => {
      const listed = (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]!.partitions.filter((p) => p.leader >= 0).length;
      const ends = listed === count ? await admin.fetchTopicOffsets(topic) : [];
      return ends.length === count ? new Map(ends.map((o) => [o.partition, Number(o.high)])) : null;
    }, 30_000);
    await produce(kafka, topic, messages);
    const after = await admin.fetchTopicOffsets(topic);
    const written = new Map<number, number>();
    for (const m of messages) written.set(m.partition!, (written.get(m.partition!) ?? 0) + 1);
    expect(Object.fromEntries(after.filter((o) => written.has(o.partition)).map((o) => [o.partition, Number(o.high) - (before.get(o.partition) ?? 0)]))).toEqual(Object.fromEntries(written));
    return added;
  };

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
  });

  afterAll(async () => {
    for (const app of running) await app.stop().catch(() => undefined);
    for (const d of databases) await d.drop().catch(() => undefined);
    await admin?.deleteTopics({ topics }).catch(() => undefined);
    await admin?.deleteGroups(groups).catch(() => undefined);
    await admin?.disconnect();
  });

  it('partitions added while consuming are picked up from their first offset', { timeout: 120_000 }, async () => {
    const { names, database } = await fresh('addparts');
    const i = await start(database, names, { KAFKA_METADATA_MAX_AGE_MS: '2000' });
    await i.app.kafka!.consumer.whenJoined();
    await produce(kafka, names.topic, [0, 1, 2].flatMap((p) => onPartition(p, p * 1_000, 10, 'before')));
    await waitFor('the first 30', async () => (await stored(i.app, 'before-%')) === 30, 60_000);
    // written at once, before Earshot can have noticed the new partitions
    const added = await addPartitionsAndWrite(names.topic, 5, [3, 4].flatMap((p) => onPartition(p, p * 1_000, 10, 'added')));
    await waitFor('the 20 on the new partitions', async () => (await stored(i.app, 'added-%')) === 20, 60_000);
    console.info(`kafka-operator-mishaps: messages on added partitions stored ${Date.now() - added} ms after the partitions were added`);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
  });

  it('with KAFKA_OFFSET_RESET=latest, partitions added while consuming are still read from their first offset', { timeout: 120_000 }, async () => {
    const { names, database } = await fresh('addlatest');
    const i = await start(database, names, { KAFKA_OFFSET_RESET: 'latest', KAFKA_METADATA_MAX_AGE_MS: '2000' });
    await i.app.kafka!.consumer.whenJoined();
    await produce(kafka, names.topic, [0, 1, 2].flatMap((p) => onPartition(p, p * 1_000, 10, 'before')));
    await waitFor('the first 30', async () => (await stored(i.app, 'before-%')) === 30, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    // written at once, before Earshot can have noticed the new partitions: they are not new to the group
    const added = await addPartitionsAndWrite(names.topic, 5, [3, 4].flatMap((p) => onPartition(p, p * 1_000, 10, 'added')));
    await waitFor('the 20 on the new partitions', async () => (await stored(i.app, 'added-%')) === 20, 45_000);
    console.info(`kafka-operator-mishaps: with latest, messages on added partitions stored ${Date.now() - added} ms after the partitions were added`);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    const said = i.logs.filter((l) => l.level === 'info' && l.topic === names.topic && l.startsAt === '0');
    expect(said.map((l) => l.partition).sort()).toEqual([3, 4]);
    expect(await metric(i.app, 'earshot_kafka_offsets_skipped_total', {})).toBe(0);
    expect(await metric(i.app, 'earshot_kafka_offset_resets_total', {})).toBe(0);
  });

  it('with KAFKA_OFFSET_RESET=latest, a new group starts at the end, and where it started holds across a restart', { timeout: 120_000 }, async () => {
    const { names, database } = await fresh('newlatest');
    await admin.createTopics({ topics: [{ topic: names.topic, numPartitions: 3 }], waitForLeaders: true });
    await produce(kafka, names.topic, [0, 1, 2].flatMap((p) => onPartition(p, p * 1_000, 10, 'old')));
    const first = await start(database, names, { KAFKA_OFFSET_RESET: 'latest' });
    await first.app.kafka!.consumer.whenJoined();
    await produce(kafka, names.topic, onPartition(0, 100, 5, 'new'));
    await waitFor('the 5 written after it started', async () => (await stored(first.app, 'new-%')) === 5, 60_000);
    // partitions 1 and 2 had nothing new: their start is committed all the same
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    await stop(first);
    await produce(kafka, names.topic, onPartition(2, 2_100, 5, 'stopped'));
    const second = await start(database, names, { KAFKA_OFFSET_RESET: 'latest' });
    await waitFor('the 5 written while stopped', async () => (await stored(second.app, 'stopped-%')) === 5, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    expect(await stored(second.app, 'old-%')).toBe(0);
    expect(await metric(second.app, 'earshot_kafka_messages_total', { topic: names.topic, result: 'accepted' })).toBe(5);
  });

  it('records deleted past the committed offset while stopped: resumes at the first offset left, says what it skipped', { timeout: 120_000 }, async () => {
    const { names, database } = await fresh('deleted');
    const first = await start(database, names);
    await produce(kafka, names.topic, onPartition(0, 0, 100, 'kept'));
    await waitFor('the first 100', async () => (await stored(first.app, 'kept-%')) === 100, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    await stop(first);

    await produce(kafka, names.topic, onPartition(0, 100, 100, 'later'));
    // retention (or an operator) removes offsets 0..149: 100..149 were never read
    await admin.deleteTopicRecords({ topic: names.topic, partitions: [{ partition: 0, offset: '150' }] });

    const second = await start(database, names);
    await waitFor('offsets 150..199', async () => (await stored(second.app, 'later-%')) === 50, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    expect(await waitFor('the skip to be counted', async () => (await metric(second.app, 'earshot_kafka_offsets_skipped_total', { topic: names.topic, partition: '0' })) || null, 10_000)).toBe(50);
    expect(await metric(second.app, 'earshot_kafka_offset_resets_total', { topic: names.topic, partition: '0', reason: 'before-log-start' })).toBe(1);
    const said = second.logs.filter((l) => l.level === 'error' && l.topic === names.topic && l.skipped === 50);
    expect(said, JSON.stringify(second.logs.filter((l) => l.level === 'error'))).toHaveLength(1);
    expect(said[0]).toMatchObject({ partition: 0, committedOffset: '100', resumedAt: '150' });
    expect((await fetch(`${second.app.url}/readyz`)).status).toBe(200);
  });

  it('with KAFKA_OFFSET_RESET=latest, a partition whose committed offset is gone resumes at its end, and says so', { timeout: 120_000 }, async () => {
    const { names, database } = await fresh('latest');
    const first = await start(database, names, { KAFKA_OFFSET_RESET: 'latest' });
    await first.app.kafka!.consumer.whenJoined();
    await produce(kafka, names.topic, onPartition(0, 0, 20, 'kept'));
    await waitFor('the first 20', async () => (await stored(first.app, 'kept-%')) === 20, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    await stop(first);
    await produce(kafka, names.topic, onPartition(0, 20, 30, 'gone'));
    await admin.deleteTopicRecords({ topic: names.topic, partitions: [{ partition: 0, offset: '30' }] });
    const second = await start(database, names, { KAFKA_OFFSET_RESET: 'latest' });
    await waitFor('the reset to be counted', async () => (await metric(second.app, 'earshot_kafka_offset_resets_total', { topic: names.topic, partition: '0' })) === 1 || null, 30_000);
    // 20..49 skipped: 20..29 deleted, 30..49 there but behind the end it resumed at
    expect(await metric(second.app, 'earshot_kafka_offsets_skipped_total', { topic: names.topic, partition: '0' })).toBe(30);
    // where it resumed is committed (kafkajs' own reset commits none), so a restart before the
    // next message neither reads what the reset skipped nor counts it again
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    await stop(second);
    const third = await start(database, names, { KAFKA_OFFSET_RESET: 'latest' });
    await produce(kafka, names.topic, onPartition(0, 50, 5, 'after'));
    await waitFor('the 5 written after', async () => (await stored(third.app, 'after-%')) === 5, 60_000);
    expect(await stored(third.app, 'gone-%')).toBe(0);
    expect(await metric(third.app, 'earshot_kafka_offset_resets_total', {})).toBe(0);
    expect(await metric(third.app, 'earshot_kafka_offsets_skipped_total', {})).toBe(0);
  });

  it('offsets set past the end while stopped: the partition is read again from its start, nothing stored twice, and it says so', { timeout: 120_000 }, async () => {
    const { names, database } = await fresh('pastend');
    const first = await start(database, names);
    await produce(kafka, names.topic, onPartition(0, 0, 20, 'first'));
    await waitFor('the first 20', async () => (await stored(first.app, 'first-%')) === 20, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    await stop(first);
    // kafka-consumer-groups --reset-offsets --to-offset 1000: a mistyped offset
    await admin.setOffsets({ groupId: names.group, topic: names.topic, partitions: [{ partition: 0, offset: '1000' }] });
    const second = await start(database, names);
    await waitFor('the reset to be counted', async () => (await metric(second.app, 'earshot_kafka_offset_resets_total', { topic: names.topic, partition: '0', reason: 'past-end' })) === 1 || null, 30_000);
    await produce(kafka, names.topic, onPartition(0, 20, 5, 'then'));
    await waitFor('the 5 written after', async () => (await stored(second.app, 'then-%')) === 5, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    expect(await metric(second.app, 'earshot_kafka_messages_total', { topic: names.topic, result: 'duplicate' })).toBe(20);
    expect(await stored(second.app, 'first-%')).toBe(20);
    expect(await metric(second.app, 'earshot_kafka_offsets_skipped_total', { topic: names.topic })).toBe(0);
    expect(second.logs.filter((l) => l.level === 'error' && l.reason === 'past-end')).toMatchObject([{ committedOffset: '1000', resumedAt: '0', skipped: 0 }]);
  });

  it('input topic deleted and recreated while Earshot runs: /readyz says so, it recovers and reads the new topic from its start', { timeout: 180_000 }, async () => {
    const { names, database } = await fresh('recreated');
    const i = await start(database, names, { KAFKA_METADATA_MAX_AGE_MS: '2000' });
    await produce(kafka, names.topic, onPartition(0, 0, 50, 'old'));
    await waitFor('the first 50', async () => (await stored(i.app, 'old-%')) === 50, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    const deleted = Date.now();
    await admin.deleteTopics({ topics: [names.topic] });
    const reason = await waitFor('/readyz to name the missing topic', async () => {
      const res = await fetch(`${i.app.url}/readyz`);
      const r = res.status === 503 ? ((await res.json()) as { reason?: string }).reason ?? 'no reason' : null;
      return r && /does not exist/.test(r) ? r : null;
    }, 90_000);
    expect(reason).toBe(`kafka consumer: input topic ${names.topic} does not exist (deleted), waiting for it`);
    console.info(`kafka-operator-mishaps: /readyz failed ${Date.now() - deleted} ms after the topic was deleted: ${reason}`);
    await waitFor('the topic to be gone', async () => !(await admin.listTopics()).includes(names.topic) || null, 30_000);
    await admin.createTopics({ topics: [{ topic: names.topic, numPartitions: 3 }], waitForLeaders: true });
    // more than were committed before, written before Earshot can have seen the new topic
    await produce(kafka, names.topic, onPartition(0, 1_000, 80, 'new'));
    await waitFor('the 80 on the new topic', async () => (await stored(i.app, 'new-%')) === 80, 120_000);
    console.info(`kafka-operator-mishaps: new topic's messages stored ${Date.now() - deleted} ms after the deletion`);
    await waitFor('/readyz to pass again', async () => (await fetch(`${i.app.url}/readyz`)).status === 200, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    const errors = [...new Set(i.logs.filter((l) => l.level === 'error' || l.level === 'warn').map((l) => `${String(l.level)} ${String(l.msg)}`))];
    console.info(`kafka-operator-mishaps: restarts ${await metric(i.app, 'earshot_kafka_consumer_restarts_total', {})}, resets ${await metric(i.app, 'earshot_kafka_offset_resets_total', {})}; log lines: ${i.logs.length}; distinct warnings and errors:\n${errors.join('\n')}`);
  });

  it('input topic deleted and recreated while Earshot is stopped: the group forgets its offsets, the new topic is read from its start', { timeout: 120_000 }, async () => {
    const { names, database } = await fresh('recreatedstopped');
    const first = await start(database, names);
    await produce(kafka, names.topic, onPartition(0, 0, 50, 'old'));
    await waitFor('the first 50', async () => (await stored(first.app, 'old-%')) === 50, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    await stop(first);
    await admin.deleteTopics({ topics: [names.topic] });
    await waitFor('the topic to be gone', async () => !(await admin.listTopics()).includes(names.topic) || null, 30_000);
    await admin.createTopics({ topics: [{ topic: names.topic, numPartitions: 3 }], waitForLeaders: true });
    // more than the 50 committed: had the group kept offset 50, the first 50 would be skipped without a word
    await produce(kafka, names.topic, onPartition(0, 1_000, 80, 'new'));
    const [committed] = await admin.fetchOffsets({ groupId: names.group, topics: [names.topic] });
    expect(committed!.partitions.map((p) => p.offset)).toEqual(['-1', '-1', '-1']);
    const second = await start(database, names);
    await waitFor('the 80 on the new topic', async () => (await stored(second.app, 'new-%')) === 80, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    expect(await metric(second.app, 'earshot_kafka_offset_resets_total', {})).toBe(0);
  });

  it('offsets reset to the beginning while stopped: the replay stores nothing twice and publishes nothing twice', { timeout: 120_000 }, async () => {
    const { names, database } = await fresh('replay');
    const first = await start(database, names);
    await produce(kafka, names.topic, [0, 1, 2].flatMap((p) => onPartition(p, p * 1_000, 40, 'once')));
    await waitFor('the 120', async () => (await stored(first.app, 'once-%')) === 120, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    await waitFor('the outbox published', async () => ((await first.app.db.ds.query(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`)) as { n: number }[])[0]!.n === 0, 30_000);
    const enrichedBefore = (await readTopic(kafka, names.enriched)).length;
    const sentimentBefore = (await readTopic(kafka, names.sentiment)).length;
    const outboxBefore = ((await first.app.db.ds.query(`SELECT count(*)::int AS n FROM outbox_batch`)) as { n: number }[])[0]!.n;
    expect(enrichedBefore).toBe(120);
    await stop(first);

    await admin.setOffsets({ groupId: names.group, topic: names.topic, partitions: [0, 1, 2].map((partition) => ({ partition, offset: '0' })) });
    const second = await start(database, names);
    await produce(kafka, names.topic, onPartition(1, 5_000, 10, 'fresh'));
    await waitFor('the 10 new ones', async () => (await stored(second.app, 'fresh-%')) === 10, 60_000);
    await waitFor('every offset committed', async () => (await groupLag(admin, names.group, names.topic)) === 0, 30_000);
    expect(await metric(second.app, 'earshot_kafka_messages_total', { topic: names.topic, result: 'duplicate' })).toBe(120);
    expect(await stored(second.app, 'once-%')).toBe(120);
    await waitFor('the outbox published', async () => ((await second.app.db.ds.query(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`)) as { n: number }[])[0]!.n === 0, 30_000);
    const enriched = await readTopic(kafka, names.enriched);
    expect(enriched).toHaveLength(130);
    expect(new Set(enriched.map((e) => (JSON.parse(e.value!.toString('utf8')) as { externalId: string }).externalId)).size).toBe(130);
    const outboxAfter = ((await second.app.db.ds.query(`SELECT count(*)::int AS n FROM outbox_batch`)) as { n: number }[])[0]!.n;
    const sentimentAfter = (await readTopic(kafka, names.sentiment)).length;
    console.info(`kafka-operator-mishaps: outbox rows ${outboxBefore} -> ${outboxAfter}; sentiment events ${sentimentBefore} -> ${sentimentAfter}`);
    // one summary event for each of the 10 new authors, none for the 120 replayed
    expect(sentimentAfter).toBe(sentimentBefore + 10);
    expect(await metric(second.app, 'earshot_kafka_offset_resets_total', {})).toBe(0);
  });
});

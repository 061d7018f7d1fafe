import { describe, expect, it } from 'vitest';
import { kafkaNames, produce, waitFor } from '../support/kafka-fixtures';
import { kafkaWorld, onPartition, startInstance, stored } from '../support/kafka-instance';

/**
 * Two deployments that read other topics under one KAFKA_GROUP_ID (both kept the default,
 * `earshot-ingest`). kafkajs' own assigner gives every member partitions of the leader's topics:
 * before, the leader's deployment stored 20 of its 30 messages (the other member dropped the
 * partitions it was handed), the other deployment none of its 30, and both said ready. Now each
 * member is given partitions of its own topics only, and a leader that still assigns the old way
 * (an older Earshot, another kafkajs application) is named in an error log.
 */

describe('two deployments sharing one consumer group', () => {
  const world = kafkaWorld();
  const { running, fresh } = world;
  const { consumers } = world;

  it('each deployment reads every partition of its own topic, and both are told the group is shared', { timeout: 120_000 }, async () => {
    const a = await fresh('sharedgroupa');
    const b = await fresh('sharedgroupb');
    const group = a.names.group;
    const ia = await startInstance(a.database, a.names);
    running.push(ia.app);
    await ia.app.kafka!.consumer.whenJoined();
    const ib = await startInstance(b.database, b.names, { KAFKA_GROUP_ID: group });
    running.push(ib.app);
    await ib.app.kafka!.consumer.whenJoined();
    await produce(world.kafka, a.names.topic, [0, 1, 2].flatMap((p) => onPartition(p, p * 1_000, 10, 'a')));
    await produce(world.kafka, b.names.topic, [0, 1, 2].flatMap((p) => onPartition(p, p * 1_000, 10, 'b')));
    await waitFor('all 60 stored, each by its own deployment', async () => ((await stored(ia.app, 'a-%')) === 30 && (await stored(ib.app, 'b-%')) === 30) || null, 60_000);
    expect(await stored(ia.app, 'b-%')).toBe(0);
    expect(await stored(ib.app, 'a-%')).toBe(0);
    expect((await fetch(`${ia.app.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${ib.app.url}/readyz`)).status).toBe(200);
    // the leader (the first to join) saw the other deployment's topic
    const said = ia.logs.filter((l) => l.level === 'warn' && Array.isArray(l.topics) && l.topics.includes(b.names.topic));
    expect(said.length, JSON.stringify(ia.logs.filter((l) => l.level === 'warn'))).toBeGreaterThan(0);
    expect(String(said[0]!.msg)).toMatch(/another deployment shares KAFKA_GROUP_ID.*give each deployment its own KAFKA_GROUP_ID/);
  });

  it('a leader that assigns by its own topics only (kafkajs\' assigner) is named in the log', { timeout: 120_000 }, async () => {
    const { names, database } = await fresh('sharedgroupold');
    const other = kafkaNames('sharedgroupother');
    world.topics.push(other.topic);
    await world.admin.createTopics({ topics: [{ topic: other.topic, numPartitions: 3 }], waitForLeaders: true });
    // first in the group, so its leader
    const old = world.kafka.consumer({ groupId: names.group });
    consumers.push(old);
    await old.connect();
    await old.subscribe({ topics: [other.topic] });
    let oldJoined!: () => void;
    const joined = new Promise<void>((resolve) => (oldJoined = resolve));
    old.on(old.events.GROUP_JOIN, () => oldJoined());
    await old.run({ eachMessage: async () => undefined });
    await joined;
    const i = await startInstance(database, names);
    running.push(i.app);
    const said = await waitFor('the log to name the topic it was given', async () => i.logs.find((l) => l.level === 'error' && Array.isArray(l.topics) && l.topics.includes(other.topic)), 60_000);
    expect(String(said.msg)).toMatch(/another deployment sharing KAFKA_GROUP_ID.*give each deployment its own KAFKA_GROUP_ID/);
    // once the other member leaves, this replica is given every partition of its topic
    await old.disconnect();
    await produce(world.kafka, names.topic, [0, 1, 2].flatMap((p) => onPartition(p, p * 1_000, 5, 'mine')));
    await waitFor('all 15 stored', async () => (await stored(i.app, 'mine-%')) === 15 || null, 60_000);
  });
});

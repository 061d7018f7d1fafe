import { AssignerProtocol } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { subscriptionAwareRoundRobin } from './subscription-assigner';

// patches/kafkajs+2.2.4.patch, consumerGroup.js: kafkajs notices partitions added to a topic it
// reads when a fetch finds more partitions in the metadata than it listed at its last SyncGroup,
// and then joins the group again. 2.2.4 stored that list before sending SyncGroup: a SyncGroup that
// failed (a timeout, a dropped connection: retried by the runner without a new join) left the list
// naming the new partitions while the old assignment stayed, so no later fetch saw a difference,
// and the new partitions were read by no one until the coordinator dropped the member after its
// rebalance timeout (60 s; 63 s measured on the real broker). Patched, the list is taken with
// the assignment, and the next fetch joins again (2 s). A group coordinator stands in for the broker here.

// eslint-disable-next-line @typescript-eslint/no-require-imports
const ConsumerGroup = require('kafkajs/src/consumer/consumerGroup') as new (o: object) => Group;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { KafkaJSRequestTimeoutError } = require('kafkajs/src/errors') as { KafkaJSRequestTimeoutError: new (m: string) => Error };

interface Group {
  joinAndSync(): Promise<void>;
  checkForStaleAssignment(): void;
  assigned(): { topic: string; partitions: number[] }[];
}

const TOPIC = 'interactions.v1';
const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
const logger = { ...quiet, namespace: () => quiet };

function world() {
  let partitions = [0, 1, 2];
  let failNextSync = false;
  let generation = 0;
  const coordinator = {
    joinGroup: async () => ({
      generationId: ++generation,
      leaderId: 'm1',
      memberId: 'm1',
      groupProtocol: 'RoundRobinAssigner',
      members: [{ memberId: 'm1', memberMetadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics: [TOPIC], userData: Buffer.alloc(0) }) }],
    }),
    syncGroup: async ({ groupAssignment }: { groupAssignment: { memberId: string; memberAssignment: Buffer }[] }) => {
      if (failNextSync) {
        failNextSync = false;
        throw new KafkaJSRequestTimeoutError('Request SyncGroup(key: 14, version: 3) timed out');
      }
      return { memberAssignment: groupAssignment.find((a) => a.memberId === 'm1')!.memberAssignment };
    },
  };
  const committed = {};
  const cluster = {
    committedOffsets: () => committed,
    findGroupCoordinator: async () => coordinator,
    refreshMetadata: async () => {},
    refreshMetadataIfNecessary: async () => {},
    findTopicPartitionMetadata: (topic: string) => (topic === TOPIC ? partitions.map((partitionId) => ({ partitionId, leader: 0 })) : []),
  };
  const assigner = subscriptionAwareRoundRobin(async () => new Map(), () => {})({ cluster } as never);
  const group = new ConsumerGroup({
    retry: { retries: 0 },
    cluster,
    groupId: 'spec',
    topics: [TOPIC],
    topicConfigurations: { [TOPIC]: { fromBeginning: true } },
    logger,
    instrumentationEmitter: { emit: () => {} },
    assigners: [assigner],
    sessionTimeout: 30_000,
    rebalanceTimeout: 60_000,
  });
  return {
    group,
    addPartitions: (count: number) => (partitions = Array.from({ length: count }, (_, i) => i)),
    failNextSync: () => (failNextSync = true),
  };
}

describe('kafkajs consumer group, partitions added to a topic (patched)', () => {
  it('a SyncGroup that failed after the new partitions were seen leaves them to be seen again, and the next join takes them', async () => {
    const w = world();
    await w.group.joinAndSync();
    expect(w.group.assigned()).toEqual([{ topic: TOPIC, partitions: [0, 1, 2] }]);
    w.addPartitions(5);
    // what a fetch does first: the metadata lists partitions the assignment was not made with
    expect(() => w.group.checkForStaleAssignment()).toThrow('Topic has been updated');
    w.failNextSync();
    await expect(w.group.joinAndSync()).rejects.toThrow('timed out');
    expect(w.group.assigned()).toEqual([{ topic: TOPIC, partitions: [0, 1, 2] }]);
    // before the patch: nothing thrown, so the runner fetched partitions 0-2 only until the coordinator dropped the member
    expect(() => w.group.checkForStaleAssignment()).toThrow('Topic has been updated');
    await w.group.joinAndSync();
    expect(w.group.assigned()).toEqual([{ topic: TOPIC, partitions: [0, 1, 2, 3, 4] }]);
    expect(() => w.group.checkForStaleAssignment()).not.toThrow();
  });
});

import { AssignerProtocol, type Assigner, type GroupMember, type GroupMemberAssignment, type PartitionAssigner } from 'kafkajs';

/**
 * kafkajs' RoundRobinAssigner, told which topics each member reads. kafkajs' own (2.2.4) takes
 * the leader's topics for everyone's: when two deployments share KAFKA_GROUP_ID and read other
 * topics (the default group id, `earshot-ingest`, kept by both), the leader handed half of its
 * topic's partitions to a member that does not read it, which dropped them, and no member was
 * given the other deployment's topics at all; both went on reporting ready. Here each partition
 * of every topic a member reads goes, round robin, to the next member that reads its topic (the
 * Java client's RoundRobinAssignor). When every member reads the same topics (one deployment),
 * the assignment is the one kafkajs made, so the protocol keeps kafkajs' name and version and
 * replicas of an older release share a group with these.
 *
 * `partitionsOf` gives the partitions of the topics the leader does not read itself (kafkajs'
 * cluster knows only its own; an unknown topic gives none); `onForeignTopics` is told of the
 * other members' topics, if any.
 */
export function subscriptionAwareRoundRobin(
  partitionsOf: (topics: string[]) => Promise<Map<string, number[]>>,
  onForeignTopics: (foreign: string[]) => void,
): PartitionAssigner {
  return ({ cluster }) => ({
    name: 'RoundRobinAssigner',
    version: 0,
    async assign({ members, topics: own }: { members: GroupMember[]; topics: string[] }): Promise<GroupMemberAssignment[]> {
      const reads = new Map<string, Set<string>>();
      for (const m of members) reads.set(m.memberId, new Set(AssignerProtocol.MemberMetadata.decode(m.memberMetadata)?.topics ?? []));
      const all = [...new Set([...own, ...[...reads.values()].flatMap((t) => [...t])])].sort();
      const foreign = all.filter((t) => !own.includes(t));
      const partitions = new Map<string, number[]>(own.map((t) => [t, cluster.findTopicPartitionMetadata(t).map((p) => p.partitionId)]));
      if (foreign.length > 0) {
        onForeignTopics(foreign);
        for (const [t, ps] of await partitionsOf(foreign)) partitions.set(t, ps);
      }
      const sorted = members.map((m) => m.memberId).sort();
      const assignment = new Map<string, Record<string, number[]>>(sorted.map((id) => [id, {}]));
      let next = 0;
      // kafkajs' order (the leader's topics as given, then partitions as listed); the others after
      for (const topic of [...own, ...foreign]) {
        for (const partition of partitions.get(topic) ?? []) {
          for (let tried = 0; tried < sorted.length; tried++, next++) {
            const member = sorted[next % sorted.length]!;
            if (!reads.get(member)!.has(topic)) continue;
            (assignment.get(member)![topic] ??= []).push(partition);
            next++;
            break;
          }
        }
      }
      return sorted.map((memberId) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment: assignment.get(memberId)!, userData: Buffer.alloc(0) }),
      }));
    },
    protocol({ topics }: { topics: string[] }) {
      return { name: 'RoundRobinAssigner', metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) };
    },
  }) as Assigner;
}

import { authorIdentities } from '../identity/author-identities';
import type { IdentityKeyOptions } from '../identity/normalize';
import { authorKeyOf, recipientOf } from '../listening-gap/recipient';
import type { InteractionMessage } from './interaction-message';

/**
 * Splits one request's messages into lanes that can be stored at the same time, the way Kafka
 * partitions keyed by author are: messages that could meet in the pipeline share a lane, in
 * the order they came.
 *
 * Two messages meet when they share a thread (one's `externalId` is the other's `inReplyTo`,
 * or both answer the same message) or a person: the listening-gap tracker's author key (an
 * inbound author's handle, else e-mail; the handle an outbound reply addresses) and the author's
 * identities as identity resolution normalizes them (`authorIdentities` with the service's
 * `identity` options: CRM ids, e-mail, phone, handle, profile URL). Messages connected through
 * any chain of those keys form one conversation, and a conversation never spans two lanes; so
 * within a conversation messages are stored in line order, as they were before lanes. Across
 * conversations nothing depends on order: the pipeline is correct for concurrent writers (Kafka
 * partitions, replicas), taking its row and advisory locks in sorted order, and tested for it.
 *
 * A brand's own handle is not a key: every outbound reply has it, and it would join all
 * conversations into one.
 *
 * Lanes: at most `maxLanes`, and no more than the request has batches of `batchSize` (a small
 * request stays one transaction). Conversations, in the order of their first line, go to the
 * lane with the fewest messages so far, so the split is deterministic.
 *
 * Returns the lanes as lists of indexes into `messages`, each ascending; none is empty.
 */
export function ingestLanes(messages: readonly InteractionMessage[], maxLanes: number, batchSize: number, identity: IdentityKeyOptions = {}): number[][] {
  const laneCount = Math.max(1, Math.min(maxLanes, Math.ceil(messages.length / batchSize)));
  if (laneCount === 1) return messages.length === 0 ? [] : [messages.map((_, i) => i)];

  // union-find over messages; a key joins every message that carries it to the first that did
  const parent = messages.map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!;
      i = parent[i]!;
    }
    return i;
  };
  const owner = new Map<string, number>();
  const join = (key: string, i: number) => {
    const j = owner.get(key);
    if (j === undefined) owner.set(key, i);
    else {
      const a = find(i);
      const b = find(j);
      // the smaller index stays the root, so a conversation is named by its first line
      if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
    }
  };
  messages.forEach((m, i) => {
    for (const key of conversationKeys(m, identity)) join(key, i);
  });

  const lanes: number[][] = Array.from({ length: laneCount }, () => []);
  const laneOfRoot = new Map<number, number[]>();
  // sizes first, so the least-loaded choice weighs whole conversations
  const size = new Map<number, number>();
  messages.forEach((_, i) => {
    const r = find(i);
    size.set(r, (size.get(r) ?? 0) + 1);
  });
  const load = new Array<number>(laneCount).fill(0);
  messages.forEach((_, i) => {
    const r = find(i);
    let lane = laneOfRoot.get(r);
    if (!lane) {
      let best = 0;
      for (let l = 1; l < laneCount; l++) if (load[l]! < load[best]!) best = l;
      load[best]! += size.get(r)!;
      lane = lanes[best]!;
      laneOfRoot.set(r, lane);
    }
    lane.push(i);
  });
  return lanes.filter((l) => l.length > 0);
}

const SEP = '\u0000';

/** The keys by which a message can meet another in the pipeline (see `ingestLanes`). */
export function conversationKeys(m: InteractionMessage, identity: IdentityKeyOptions = {}): string[] {
  const keys = [`t${SEP}${m.source}${SEP}${m.externalId}`];
  if (m.inReplyTo) keys.push(`t${SEP}${m.source}${SEP}${m.inReplyTo}`);
  // the listening-gap tracker's key: the author of an inbound message, the addressee of a reply
  const who = m.direction === 'outbound' ? recipientOf(m, identity) : authorKeyOf(m, identity);
  if (who) keys.push(`a${SEP}${m.source}${SEP}${who}`);
  // identity resolution's keys, normalized as it normalizes them (an outbound author is the brand)
  if (m.direction === 'inbound') for (const c of authorIdentities(m, identity)) keys.push(`i${SEP}${c.kind}${SEP}${c.value}`);
  return keys;
}

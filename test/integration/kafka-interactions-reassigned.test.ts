import { randomUUID } from 'node:crypto';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import reassignedSchema from '../../schema/interactions.reassigned.v1.schema.json';
import { toGlobalId } from '../../src/graphql/relay';
import { OUTBOX_TOPICS } from '../../src/outbox/outbox-events';
import { ndjson, startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, stopAndDropTopics, testKafka, waitFor } from '../support/kafka-fixtures';

/**
 * interactions.reassigned.v1: an undo (unmergeCustomer) or an unlinkIdentity announces the
 * interactions it moves, the brand's replies to them included, from and to which customer, in
 * events of at most 1,000 ids, published from the outbox written in the move's transaction. A
 * move of nothing publishes nothing. Read from the real broker, from the start of the topic.
 */

interface ReassignedV1 {
  schemaVersion: 1;
  eventId: string;
  reason: 'unmerge' | 'unlink';
  mergeId: string | null;
  fromCustomerId: string;
  toCustomerId: string;
  interactionIds: string[];
  occurredAt: string;
}

interface Seen {
  partition: number;
  offset: string;
  key: string | null;
  value: ReassignedV1;
  headers: Record<string, string>;
}

const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
const validReassigned = ajv.compile(reassignedSchema);

const cid = (uuid: string) => toGlobalId('Customer', uuid);
const run = randomUUID().slice(0, 8);
const t0 = Date.UTC(2026, 10, 1, 12, 0, 0);
let n = 0;
/** One message of `handle` (inbound), or the brand's reply to `inReplyTo` (outbound); its external id. */
const line = (handle: string, text: string, inReplyTo?: string) => {
  n++;
  const externalId = `re-${run}-${n}`;
  return {
    externalId,
    body: {
      eventId: externalId,
      source: 'x',
      externalId,
      occurredAt: new Date(t0 + n * 60_000).toISOString(),
      direction: inReplyTo ? 'outbound' : 'inbound',
      ...(inReplyTo ? { inReplyTo } : {}),
      author: { handle: inReplyTo ? 'brand' : handle, displayName: inReplyTo ? 'Brand' : handle },
      text,
    },
  };
};

describe('interactions.reassigned.v1 on the real broker', () => {
  const names = kafkaNames('reassigned');
  const topic = `${names.prefix}${OUTBOX_TOPICS.reassigned.name}`;
  let app: TestApp;
  let kafka: Kafka;
  let admin: Admin;
  let reader: Consumer;
  const seen: Seen[] = [];

  beforeAll(async () => {
    app = await startTestApp(kafkaEnv(names), 'reassigned');
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    // the service creates its output topics at start; a topic just created may not be served yet
    await waitFor('the reassigned topic', async () => (await admin.listTopics()).includes(topic) && (await admin.fetchTopicOffsets(topic)).length > 0, 30_000);
    reader = kafka.consumer({ groupId: `${names.group}.reader` });
    await reader.connect();
    await reader.subscribe({ topics: [topic], fromBeginning: true });
    await reader.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        seen.push({ partition, offset: message.offset, key: message.key?.toString() ?? null, value: JSON.parse(message.value!.toString('utf8')) as ReassignedV1, headers });
      },
    });
  }, 120_000);

  afterAll(async () => {
    await reader?.disconnect();
    await stopAndDropTopics(app, admin, names);
  });

  const q = async <T,>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  const gql = async <T,>(query: string, variables: Record<string, unknown> = {}): Promise<T> => {
    const r = await app.gql<T>(query, variables);
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    return r.data;
  };
  const ingest = async (lines: { body: Record<string, unknown> }[]) => {
    for (let i = 0; i < lines.length; i += 500) {
      const chunk = lines.slice(i, i + 500);
      const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(chunk.map((l) => l.body)) });
      const body = (await res.json()) as { accepted: number; rejected: unknown[] };
      expect(body.rejected).toEqual([]);
      expect(body.accepted).toBe(chunk.length);
    }
  };
  /** the customer (root) holding an x handle */
  const customerOf = async (handle: string): Promise<string> => {
    const [row] = await q<{ id: string }>(
      `SELECT coalesce(c.merged_into_id, c.id) AS id FROM customer_identity ci JOIN customer c ON c.id = ci.customer_id WHERE ci.kind = 'handle' AND ci.value = $1`,
      [`x:${handle}`],
    );
    return row!.id;
  };
  const idsOf = async (externalIds: readonly string[]): Promise<string[]> =>
    (await q<{ id: string }>(`SELECT id FROM interaction WHERE source = 'x' AND external_id = ANY($1::text[])`, [externalIds])).map((r) => r.id).sort();
  const ownersOf = async (ids: readonly string[]): Promise<string[]> =>
    [...new Set((await q<{ customer_id: string }>(`SELECT customer_id FROM interaction WHERE id = ANY($1::uuid[])`, [ids])).map((r) => r.customer_id))];
  /** every outbox row published, and every record of the topic read */
  const drained = async () => {
    await waitFor('the outbox to be published', async () => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`))[0]!.n === 0, 30_000, 50);
    const ends = await admin.fetchTopicOffsets(topic);
    await waitFor('the reader to reach the end of the topic', async () =>
      ends.every((o) => Number(o.high) === 0 || seen.some((s) => s.partition === o.partition && Number(s.offset) >= Number(o.high) - 1)),
    30_000, 50);
  };
  /** the events that name `customerId` as one side of the move, each once (deduped on event-id) */
  const eventsAbout = (customerId: string): Seen[] => {
    const ids = new Set<string>();
    return seen.filter((s) => {
      if (s.value.fromCustomerId !== customerId && s.value.toCustomerId !== customerId) return false;
      if (ids.has(s.headers['event-id']!)) return false;
      ids.add(s.headers['event-id']!);
      return true;
    });
  };
  /** what every reassigned event must be, whatever it says */
  const wellFormed = (events: readonly Seen[]) => {
    for (const e of events) {
      expect(validReassigned(e.value), JSON.stringify(validReassigned.errors)).toBe(true);
      expect(e.key).toBe(e.value.toCustomerId);
      expect(e.headers).toMatchObject({ 'schema-version': '1', 'event-id': e.value.eventId, 'content-type': 'application/json' });
    }
  };
  const merge = async (survivor: string, merged: string) =>
    (await gql<{ mergeCustomers: { audit: { id: string } } }>(
      `mutation M($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "same person") { audit { id } } }`,
      { s: cid(survivor), m: cid(merged) },
    )).mergeCustomers.audit.id;
  const unmerge = (auditId: string) => gql(`mutation U($id: ID!) { unmergeCustomer(mergeId: $id, reason: "not the same") { customers { id } } }`, { id: auditId });

  it('an undo names the interactions the merged customer takes back, with the replies to them, from the survivor to it', async () => {
    const [ann, ben] = [`ann${run}`, `ben${run}`];
    const annHers = line(ann, 'I love the app');
    const benFirst = line(ben, 'My parcel is late');
    const reply1 = line('', 'Sorry, DM us', benFirst.externalId);
    const reply2 = line('', 'Did the DM reach you?', reply1.externalId);
    await ingest([annHers, benFirst, reply1, reply2]);
    const [annId, benId] = [await customerOf(ann), await customerOf(ben)];
    const auditId = await merge(annId, benId);
    // while merged: ben writes again and the brand answers (both on ann's customer), ann writes too
    const benWhileMerged = line(ben, 'Still waiting');
    const replyWhileMerged = line('', 'Looking into it', benWhileMerged.externalId);
    const annWhileMerged = line(ann, 'Great support');
    await ingest([benWhileMerged, replyWhileMerged, annWhileMerged]);
    const bens = await idsOf([benFirst, reply1, reply2, benWhileMerged, replyWhileMerged].map((l) => l.externalId));
    expect(await ownersOf(bens)).toEqual([annId]);

    await unmerge(auditId);
    await drained();
    expect(await ownersOf(bens)).toEqual([benId]);
    const events = eventsAbout(benId);
    wellFormed(events);
    expect(events).toHaveLength(1);
    expect(events[0]!.value).toMatchObject({ schemaVersion: 1, reason: 'unmerge', mergeId: auditId, fromCustomerId: annId, toCustomerId: benId });
    expect([...events[0]!.value.interactionIds].sort()).toEqual(bens);
    // ann's own interactions did not move and are not named
    expect(await ownersOf(await idsOf([annHers.externalId, annWhileMerged.externalId]))).toEqual([annId]);
  }, 120_000);

  it('an unlink names the interactions the unlinked identity attached, with the replies to them, from its customer to the new one', async () => {
    const [cleo, cleoAlt] = [`cleo${run}`, `cleoalt${run}`];
    const cleoHers = line(cleo, 'How do I change my address?');
    await ingest([cleoHers]);
    const cleoId = await customerOf(cleo);
    await gql(`mutation L($c: ID!, $v: String!) { linkIdentity(customerId: $c, kind: HANDLE, network: "x", value: $v) { customers { id } } }`, { c: cid(cleoId), v: cleoAlt });
    const alt1 = line(cleoAlt, 'Terrible delay');
    const altReply = line('', 'We are sorry', alt1.externalId);
    const alt2 = line(cleoAlt, 'Any news?');
    const cleoReply = line('', 'Here is how', cleoHers.externalId);
    await ingest([alt1, altReply, alt2, cleoReply]);
    const alts = await idsOf([alt1, altReply, alt2].map((l) => l.externalId));
    expect(await ownersOf(alts)).toEqual([cleoId]);

    const r = await gql<{ unlinkIdentity: { customers: { id: string }[] } }>(
      `mutation U($c: ID!, $v: String!) { unlinkIdentity(customerId: $c, kind: HANDLE, network: "x", value: $v) { customers { id } } }`,
      { c: cid(cleoId), v: cleoAlt },
    );
    await drained();
    const fresh = await customerOf(cleoAlt);
    expect(fresh).not.toBe(cleoId);
    expect(r.unlinkIdentity.customers.map((c) => c.id)).toContain(cid(fresh));
    expect(await ownersOf(alts)).toEqual([fresh]);
    const events = eventsAbout(fresh);
    wellFormed(events);
    expect(events).toHaveLength(1);
    expect(events[0]!.value).toMatchObject({ schemaVersion: 1, reason: 'unlink', mergeId: null, fromCustomerId: cleoId, toCustomerId: fresh });
    expect([...events[0]!.value.interactionIds].sort()).toEqual(alts);
    expect(await ownersOf(await idsOf([cleoHers.externalId, cleoReply.externalId]))).toEqual([cleoId]);
  }, 120_000);

  it('an undo of a customer with more than 1,000 interactions names them all once, in events of at most 1,000 ids', async () => {
    const [dora, eli] = [`dora${run}`, `eli${run}`];
    const doraHers = line(dora, 'Hello');
    const elis = Array.from({ length: 1_150 }, (_, i) => line(eli, `message ${i} about my order`));
    // and the brand's replies to the first 100 of them
    const replies = elis.slice(0, 100).map((m) => line('', 'Thanks for writing', m.externalId));
    await ingest([doraHers, ...elis, ...replies]);
    const [doraId, eliId] = [await customerOf(dora), await customerOf(eli)];
    const auditId = await merge(doraId, eliId);
    const moving = await idsOf([...elis, ...replies].map((l) => l.externalId));
    expect(moving).toHaveLength(1_250);
    expect(await ownersOf(moving)).toEqual([doraId]);

    await unmerge(auditId);
    await drained();
    const events = eventsAbout(eliId);
    wellFormed(events);
    expect(events).toHaveLength(2);
    for (const e of events) {
      expect(e.value).toMatchObject({ reason: 'unmerge', mergeId: auditId, fromCustomerId: doraId, toCustomerId: eliId });
      expect(e.value.interactionIds.length).toBeLessThanOrEqual(1_000);
    }
    const named = events.flatMap((e) => e.value.interactionIds);
    expect(named).toHaveLength(1_250);
    expect([...named].sort()).toEqual(moving);
    // one move: the same time on each of its events
    expect(new Set(events.map((e) => e.value.occurredAt)).size).toBe(1);
  }, 180_000);

  it('a move of nothing publishes nothing: an undone link and an unlink of an identity without interactions', async () => {
    const [fay, fayAlt, fayOther] = [`fay${run}`, `fa${run}`, `fo${run}`]; // x handles: at most 15 characters
    await ingest([line(fay, 'Great service')]);
    const fayId = await customerOf(fay);
    // a handle linked by hand (no interaction of it yet), then the link undone: a new customer takes it, with nothing
    const linked = await gql<{ linkIdentity: { audit: { id: string } } }>(
      `mutation L($c: ID!, $v: String!) { linkIdentity(customerId: $c, kind: HANDLE, network: "x", value: $v) { audit { id } } }`,
      { c: cid(fayId), v: fayAlt },
    );
    await unmerge(linked.linkIdentity.audit.id);
    const split = await customerOf(fayAlt);
    expect(split).not.toBe(fayId);
    // another handle linked and unlinked without a message of its own
    await gql(`mutation L($c: ID!, $v: String!) { linkIdentity(customerId: $c, kind: HANDLE, network: "x", value: $v) { customers { id } } }`, { c: cid(fayId), v: fayOther });
    await gql(`mutation U($c: ID!, $v: String!) { unlinkIdentity(customerId: $c, kind: HANDLE, network: "x", value: $v) { customers { id } } }`, { c: cid(fayId), v: fayOther });
    const other = await customerOf(fayOther);
    expect(other).not.toBe(fayId);
    await drained();
    expect(eventsAbout(fayId)).toEqual([]);
    expect(eventsAbout(split)).toEqual([]);
    expect(eventsAbout(other)).toEqual([]);
    // nor was one written to the outbox
    expect((await q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE topic = $1 AND message_key = ANY($2::text[])`, [OUTBOX_TOPICS.reassigned.name, [fayId, split, other]]))[0]!.n).toBe(0);
  }, 120_000);
});

import { type Admin, type Consumer, type Kafka } from 'kafkajs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { displayNameFor, PUBLIC_VIEWER } from '../../src/auth/pii.policy';
import { fromGlobalId, toGlobalId } from '../../src/graphql/relay';
import { OUTBOX_TOPICS } from '../../src/outbox/outbox-events';
import { ndjson, startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, produce, stopAndDropTopics, testKafka, waitFor, type CustomerSentimentV1 } from '../support/kafka-fixtures';
import { ModelServer, type ModelRequestItem } from '../support/model-server';

/**
 * A data team's replica of Earshot, built from the output topics only, as the README tells
 * consumers to (section "Kafka" and the topics' schemas): dedupe on the `event-id` header; on
 * `customer-sentiment.v1` (compacted) the latest value per key is the customer, a tombstone
 * deletes it; `interactions.enriched.v1` events are kept per interactionId; a
 * `customer-erasure.v1` event deletes the interactions it lists (also from what was kept of
 * `listening-gap.v1`) and the customers it names; an `interactions.reassigned.v1` event (an undo,
 * an unlink) moves the interactions it lists to its `toCustomerId`, and the latest move of an
 * interaction wins over the customerId of its enriched event, whichever is read first. After what an outsider does on a live system
 * (ingest over HTTP and Kafka, a merge by hand and its undo, an accepted merge suggestion, links
 * and unlinks, CRM records joining customers, an erasure, a re-score), the replica is compared
 * with what the GraphQL API answers.
 */

const HEADERS_EVENT_ID = 'event-id';
const SENTIMENT = OUTBOX_TOPICS.sentiment.name;
const ENRICHED = OUTBOX_TOPICS.enriched.name;
const ERASURE = OUTBOX_TOPICS.erasure.name;
const GAP = OUTBOX_TOPICS.listeningGap.name;
const REASSIGNED = OUTBOX_TOPICS.reassigned.name;

interface Seen {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

interface Replica {
  customers: Map<string, CustomerSentimentV1>;
  /** interactionId → customerId as last published */
  interactions: Map<string, string | null>;
  /** listening-gap.v1: itemId → the interaction it names and its text */
  gaps: Map<string, { interactionId: string; text: string }>;
  erasedCustomers: Set<string>;
  erasedInteractions: Set<string>;
}

/** What a consumer following the README holds after reading `seen` in arrival order. */
function buildReplica(seen: readonly Seen[]): Replica {
  const ids = new Set<string>();
  const r: Replica = { customers: new Map(), interactions: new Map(), gaps: new Map(), erasedCustomers: new Set(), erasedInteractions: new Set() };
  /** interactionId → the customer its latest interactions.reassigned.v1 event moved it to */
  const moved = new Map<string, string>();
  for (const m of seen) {
    const id = `${m.topic}\u0000${m.headers[HEADERS_EVENT_ID]}`;
    if (ids.has(id)) continue;
    ids.add(id);
    if (m.topic === SENTIMENT) {
      if (m.value === null) r.customers.delete(m.key!);
      else r.customers.set(m.key!, JSON.parse(m.value) as CustomerSentimentV1);
    } else if (m.topic === ENRICHED) {
      const v = JSON.parse(m.value!) as { interactionId: string; customerId: string | null };
      if (!r.erasedInteractions.has(v.interactionId)) r.interactions.set(v.interactionId, moved.get(v.interactionId) ?? v.customerId);
    } else if (m.topic === GAP) {
      const v = JSON.parse(m.value!) as { itemId: string; interaction: { id: string; text: string } };
      if (!r.erasedInteractions.has(v.interaction.id)) r.gaps.set(v.itemId, { interactionId: v.interaction.id, text: v.interaction.text });
    } else if (m.topic === REASSIGNED) {
      const v = JSON.parse(m.value!) as { toCustomerId: string; interactionIds: string[] };
      for (const i of v.interactionIds) {
        if (r.erasedInteractions.has(i)) continue;
        moved.set(i, v.toCustomerId);
        if (r.interactions.has(i)) r.interactions.set(i, v.toCustomerId);
      }
    } else if (m.topic === ERASURE) {
      const v = JSON.parse(m.value!) as { customerIds: string[]; interactionIds: string[] };
      for (const c of v.customerIds) {
        r.erasedCustomers.add(c);
        r.customers.delete(c);
      }
      for (const i of v.interactionIds) {
        r.erasedInteractions.add(i);
        r.interactions.delete(i);
        moved.delete(i);
        for (const [item, g] of r.gaps) if (g.interactionId === i) r.gaps.delete(item);
      }
    }
  }
  return r;
}

type ApiCustomer = { id: string; displayName: string | null; sentiment: { score: number | null; label: string | null; interactionCount: number; trend: number | null; lastInteractionAt: string | null } };
type ApiInteraction = { id: string; text: string; customer: { id: string } | null };

const uuidOf = (globalId: string) => fromGlobalId(globalId).id;
const cid = (uuid: string) => toGlobalId('Customer', uuid);

const t0 = Date.now() - 3 * 86_400_000;
let n = 0;
/** One inbound message of `author`, a minute after the one before. */
const msg = (handle: string, text: string, author: Record<string, unknown> = {}) => {
  n++;
  return { eventId: `rep-${n}`, source: 'x', externalId: `rep-${n}`, occurredAt: new Date(t0 + n * 60_000).toISOString(), direction: 'inbound', author: { handle, displayName: handle[0]!.toUpperCase() + handle.slice(1), ...author }, text };
};

/** One app (roles api and ingest) with a model server, and a consumer reading its output topics into `seen`. */
function harness(label: string, env: Record<string, string> = {}, opts: { kafkaFromStart?: boolean } = {}) {
  const names = kafkaNames(label);
  const topics = Object.values(OUTBOX_TOPICS).map((t) => `${names.prefix}${t.name}`);
  let app: TestApp;
  let kafka: Kafka;
  let admin: Admin;
  let reader: Consumer;
  const seen: Seen[] = [];
  /** the model server's answers change after day one: a re-score then moves scores */
  const clock = { day: 1 };
  const model = new ModelServer('replica-model', (it: ModelRequestItem) => {
    const bad = /late|broken|awful|terrible/i.test(it.text);
    const good = /love|great|thanks/i.test(it.text);
    if (clock.day === 1) return { score: bad ? -0.6 : good ? 0.6 : 0 };
    return { score: bad ? -0.9 : good ? 0.2 : -0.3 };
  });

  const q = async <T,>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  /** an operation that may be refused (CONFLICT, NOT_FOUND, BAD_USER_INPUT): the codes of its errors; never an internal error */
  const attempt = async (query: string, variables: Record<string, unknown> = {}): Promise<string[]> => {
    const r = await app.gql(query, variables);
    const codes = (r.errors ?? []).map((e) => e.extensions?.code ?? 'none');
    expect(codes.filter((c) => !['CONFLICT', 'NOT_FOUND', 'BAD_USER_INPUT'].includes(c)), JSON.stringify(r.errors)).toEqual([]);
    return codes;
  };
  const gql = async <T,>(query: string, variables: Record<string, unknown> = {}): Promise<T> => {
    const r = await app.gql<T>(query, variables);
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    return r.data;
  };
  const ingest = async (lines: Record<string, unknown>[]) => {
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    const body = (await res.json()) as { accepted: number; rejected: unknown[] };
    expect(body.rejected).toEqual([]);
    expect(body.accepted).toBe(lines.length);
  };
  /** the customer (root) holding a handle, as the API answers it */
  const customerOf = async (handle: string): Promise<string> => {
    const [row] = await q<{ id: string }>(
      `SELECT coalesce(c.merged_into_id, c.id) AS id FROM customer_identity ci JOIN customer c ON c.id = ci.customer_id WHERE ci.kind = 'handle' AND ci.value = $1`,
      [handle],
    );
    return row!.id;
  };
  /** every outbox row published and every record read by the replica's consumer */
  const drained = async () => {
    await waitFor('the outbox to be published', async () => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`))[0]!.n === 0, 30_000, 50);
    const ends = await Promise.all(topics.map(async (t) => ({ t: t.slice(names.prefix.length), offs: await admin.fetchTopicOffsets(t) })));
    await waitFor('the reader to reach the end of every output topic', async () =>
      ends.every(({ t, offs }) => offs.every((o) => Number(o.high) === 0 || seen.some((s) => s.topic === t && s.partition === o.partition && Number(s.offset) >= Number(o.high) - 1))),
    30_000, 50);
  };
  const apiCustomers = async (): Promise<ApiCustomer[]> => {
    const all: ApiCustomer[] = [];
    let after: string | null = null;
    for (;;) {
      const d: { customers: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: { node: ApiCustomer }[] } } = await gql(
        `query C($after: String) { customers(first: 100, after: $after) { pageInfo { hasNextPage endCursor } edges { node { id displayName sentiment { score label interactionCount trend lastInteractionAt } } } } }`,
        { after },
      );
      all.push(...d.customers.edges.map((e) => e.node));
      if (!d.customers.pageInfo.hasNextPage) return all;
      after = d.customers.pageInfo.endCursor;
    }
  };
  const apiInteractions = async (): Promise<ApiInteraction[]> => {
    const all: ApiInteraction[] = [];
    let after: string | null = null;
    for (;;) {
      const d: { interactions: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: { node: ApiInteraction }[] } } = await gql(
        `query I($after: String) { interactions(first: 100, after: $after) { pageInfo { hasNextPage endCursor } edges { node { id text customer { id } } } } }`,
        { after },
      );
      all.push(...d.interactions.edges.map((e) => e.node));
      if (!d.interactions.pageInfo.hasNextPage) return all;
      after = d.interactions.pageInfo.endCursor;
    }
  };

  const appEnv = () => ({
    EARSHOT_ROLES: 'api,ingest', EARSHOT_SENTIMENT_URL: model.url, EARSHOT_IDENTITY_HUB_CAP: '1', EARSHOT_RESCORE_BATCH_SIZE: '5',
    // escalated by the test (runOnce), to no CRM, however long ago the item was due
    EARSHOT_GAP_ESCALATION: 'off', EARSHOT_GAP_ESCALATION_TARGETS: '*=none', EARSHOT_GAP_ESCALATION_HORIZON_HOURS: '0',
    ...env,
  });
  /** the replica's consumer, from the start of every output topic */
  const read = async () => {
    await waitFor('the output topics', async () => {
      const existing = new Set(await admin.listTopics());
      // and led by the broker: a topic just created may not be served yet
      return topics.every((t) => existing.has(t)) && (await Promise.all(topics.map((t) => admin.fetchTopicOffsets(t)))).length > 0;
    }, 30_000);
    reader = kafka.consumer({ groupId: `${names.group}.reader` });
    await reader.connect();
    await reader.subscribe({ topics, fromBeginning: true });
    await reader.run({
      eachMessage: async ({ topic, partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        seen.push({ topic: topic.slice(names.prefix.length), partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value?.toString() ?? null, headers });
      },
    });
  };
  beforeAll(async () => {
    seen.length = 0;
    await model.start();
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    if (opts.kafkaFromStart === false) {
      // no KAFKA_BROKERS: ingest over HTTP only, and the outbox waits in the database
      app = await startTestApp(appEnv(), label);
      return;
    }
    app = await startTestApp(kafkaEnv(names, appEnv()), label);
    await read();
  }, 120_000);

  afterAll(async () => {
    await reader?.disconnect();
    await stopAndDropTopics(app, admin, names);
    await model.close();
  });

  /** The differences between the replica and the API, one line each (empty: they agree). */
  async function differences(): Promise<{ customers: string[]; interactions: string[]; owners: string[] }> {
    await drained();
    const replica = buildReplica(seen);
    const customers: string[] = [];
    const api = await apiCustomers();
    const apiIds = new Set(api.map((c) => uuidOf(c.id)));
    for (const c of api) {
      const id = uuidOf(c.id);
      const mine = replica.customers.get(id);
      if (!mine) {
        customers.push(`${id} (${c.displayName}) is live in the API but not in the replica`);
        continue;
      }
      const want = { displayName: displayNameFor(PUBLIC_VIEWER, c.displayName), score: c.sentiment.score, label: c.sentiment.label?.toLowerCase() ?? null, interactionCount: c.sentiment.interactionCount, trend: c.sentiment.trend, lastInteractionAt: c.sentiment.lastInteractionAt };
      const got = { displayName: mine.displayName, score: mine.score, label: mine.label, interactionCount: mine.interactionCount, trend: mine.trend30d, lastInteractionAt: mine.lastInteractionAt };
      if (JSON.stringify(want) !== JSON.stringify(got)) customers.push(`${id}: API ${JSON.stringify(want)}, replica ${JSON.stringify(got)}`);
    }
    for (const [id, v] of replica.customers) if (!apiIds.has(id)) customers.push(`${id} (${v.displayName}) is in the replica but not live in the API`);

    // The API keeps an erased person's interactions without text or customer (README, Erasure):
    // what a consumer must have deleted. Everything else the API lists, the replica must hold.
    const interactions: string[] = [];
    const owners: string[] = [];
    const listed = await apiInteractions();
    const erasedInApi = new Set(listed.filter((i) => i.customer === null && i.text === '').map((i) => uuidOf(i.id)));
    const live = listed.filter((i) => !erasedInApi.has(uuidOf(i.id)));
    for (const i of live) {
      const id = uuidOf(i.id);
      if (!replica.interactions.has(id)) interactions.push(`${id} is in the API but not in the replica`);
      else if ((replica.interactions.get(id) ?? null) !== (i.customer ? uuidOf(i.customer.id) : null)) {
        owners.push(`${id}: API customer ${i.customer ? uuidOf(i.customer.id) : null}, replica ${replica.interactions.get(id)}`);
      }
    }
    for (const id of erasedInApi) if (replica.interactions.has(id)) interactions.push(`${id} was erased but the replica still holds it`);
    const liveIds = new Set(live.map((i) => uuidOf(i.id)));
    for (const id of replica.interactions.keys()) if (!liveIds.has(id) && !erasedInApi.has(id)) interactions.push(`${id} is in the replica but not in the API`);
    return { customers, interactions, owners };
  }

  /** Restarts the service on its database with Kafka (its outbox backlog is then published) and starts the replica's consumer. */
  async function connectKafka(): Promise<void> {
    await app.stop();
    app = await startTestApp(kafkaEnv(names, appEnv()), label, app.database);
    await read();
  }

  return { names, seen, clock, app: () => app, kafka: () => kafka, q, gql, attempt, ingest, customerOf, differences, connectKafka };
}

describe('a consumer replica built from the output topics agrees with the GraphQL API', () => {
  const h = harness('replica');
  const { seen, q, gql, ingest, customerOf, differences } = h;

  it('after ingest, merge and undo, an accepted suggestion, links, CRM records, an erasure and a re-score', async () => {
    // Day one: seven people write over HTTP, an eighth over Kafka (bob too).
    await ingest([
      msg('alice', 'I love the new app, great work'),
      msg('alice', 'My parcel is late again'),
      msg('bob', 'The app is broken'),
      msg('bob', 'Thanks for the fix'),
      msg('carol', 'Awful service, nobody answers', { email: 'carol@example.com' }),
      msg('carol', 'Still waiting for my refund'),
      msg('dave', 'Where is my order?', { email: 'dave@example.com' }),
      msg('erin', 'Great support today'),
      msg('frank', 'Terrible delay on my delivery'),
      msg('gina', 'How do I change my address?'),
    ]);
    await produce(h.kafka(), h.names.topic, [
      { key: 'instagram:henry', value: JSON.stringify({ ...msg('henry', 'love the colours'), source: 'instagram' }) },
      { key: 'instagram:henry', value: JSON.stringify({ ...msg('henry', 'my order arrived broken'), source: 'instagram' }) },
      { key: 'x:bob', value: JSON.stringify(msg('bob', 'How do I reset my password?')) },
    ]);
    await waitFor('the Kafka messages to be stored', async () => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM interaction`))[0]!.n === 13, 60_000);
    // carol's complaint goes unanswered past its SLA: escalated, one listening-gap.v1 event
    await h.app().services.escalation.runOnce();
    expect(await differences()).toEqual({ customers: [], interactions: [], owners: [] });
    expect([...buildReplica(seen).gaps.values()].map((g) => g.text)).toContain('Awful service, nobody answers');

    // A merge by hand, a message of the merged customer while merged, and the undo.
    const [alice, bob] = [await customerOf('x:alice'), await customerOf('x:bob')];
    const merged = await gql<{ mergeCustomers: { audit: { id: string } } }>(
      `mutation M($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "same person") { audit { id } } }`,
      { s: cid(alice), m: cid(bob) },
    );
    const whileMerged = msg('bob', 'Thanks, all good now');
    await ingest([whileMerged]);
    const afterMerge = await differences();
    expect(afterMerge.customers).toEqual([]);
    expect(afterMerge.interactions).toEqual([]);
    // bob's three earlier interactions still name bob's id, which is now a tombstone naming alice
    expect(afterMerge.owners).toHaveLength(3);
    const bobsTombstones = seen.filter((m) => m.topic === 'customer-sentiment.v1' && m.key === bob && m.value === null);
    expect(bobsTombstones.map((m) => m.headers['merged-into'])).toEqual([alice]);
    await gql(`mutation U($id: ID!) { unmergeCustomer(mergeId: $id, reason: "not the same") { customers { id } } }`, { id: merged.mergeCustomers.audit.id });
    const afterUnmerge = await differences();
    expect(afterUnmerge.customers).toEqual([]);
    expect(afterUnmerge.interactions).toEqual([]);
    // the undo's interactions.reassigned.v1 event gives bob back his four, the one written while merged too
    expect(afterUnmerge.owners).toEqual([]);

    // A second author gives dave's email: with a hub cap of 1 that is a suggestion, accepted.
    const dave2 = msg('dave2', 'Any update on my order?', { email: 'dave@example.com' });
    await ingest([dave2]);
    const suggestions = await gql<{ mergeSuggestions: { edges: { node: { id: string } }[] } }>(`{ mergeSuggestions(first: 10) { edges { node { id } } } }`);
    expect(suggestions.mergeSuggestions.edges).toHaveLength(1);
    await gql(`mutation A($id: ID!) { acceptMergeSuggestion(id: $id) { customers { id } } }`, { id: suggestions.mergeSuggestions.edges[0]!.node.id });
    expect((await differences()).customers).toEqual([]);

    // Links and unlinks by hand: frank's handle linked to erin (a merge), then unlinked (a new
    // customer takes frank's messages); an email linked to gina (no merge).
    const erin = await customerOf('x:erin');
    await gql(`mutation L($c: ID!) { linkIdentity(customerId: $c, kind: HANDLE, network: "x", value: "frank") { customers { id } } }`, { c: cid(erin) });
    await gql(`mutation L($c: ID!) { unlinkIdentity(customerId: $c, kind: HANDLE, network: "x", value: "frank") { customers { id } } }`, { c: cid(erin) });
    const gina = await customerOf('x:gina');
    await gql(`mutation L($c: ID!) { linkIdentity(customerId: $c, kind: EMAIL, value: "gina@example.com") { customers { id } } }`, { c: cid(gina) });
    const afterLinks = await differences();
    expect(afterLinks.customers).toEqual([]);
    expect(afterLinks.interactions).toEqual([]);
    // frank's message, moved by the unlink to the customer it made (interactions.reassigned.v1), is
    // under that customer in the replica too; only dave2's still names the customer it was published
    // under (merged away by the accepted suggestion: its tombstone names dave in `merged-into`)
    const externalNow = new Map((await q<{ id: string; external_id: string }>(`SELECT id, external_id FROM interaction`)).map((r) => [r.id, r.external_id]));
    expect(afterLinks.owners.map((o) => externalNow.get(o.slice(0, 36)))).toEqual([dave2.externalId]);

    // CRM records: one joins gina by her email, one is a person Earshot has not heard from.
    const crm = await h.app().services.identity.ingestCrmRecords('salesforce', 'Contact', [
      { externalId: '003000000000101AAA', person: { givenName: 'Gina', surname: 'Gold' }, identities: [{ kind: 'email', value: 'gina@example.com' }] },
      { externalId: '003000000000102AAA', person: { givenName: 'Ivy', surname: 'Iris' }, identities: [{ kind: 'email', value: 'ivy@example.com' }] },
    ]);
    expect(crm.customerIds[0]).toBe(gina);
    const ivy = crm.customerIds[1]!;
    const afterCrm = await differences();
    expect(afterCrm.interactions).toEqual([]);
    // ivy, whom only the CRM knows, is published by the intake itself, before her first interaction
    expect(afterCrm.customers).toEqual([]);
    expect(buildReplica(seen).customers.get(ivy)).toMatchObject({ displayName: 'Ivy Iris', score: null, interactionCount: 0 });
    await ingest([msg('ivy_writes', 'Great service', { email: 'ivy@example.com' })]);
    expect((await differences()).customers).toEqual([]);

    // Erasures: carol (escalated), and bob, one of whose messages was published under alice.
    for (const who of ['x:carol', 'x:bob']) {
      await gql(`mutation E($id: ID!) { eraseCustomer(id: $id, reason: "DSR-1") { id } }`, { id: cid(await customerOf(who)) });
    }
    const afterErasure = await differences();
    expect(afterErasure.customers).toEqual([]);
    expect(afterErasure.interactions).toEqual([]);
    const replica = buildReplica(seen);
    expect([...replica.gaps.values()].map((g) => g.text)).not.toContain('Awful service, nobody answers');
    expect(replica.erasedInteractions.size).toBe(6);

    // A re-score with the model's new answers moves every customer's score.
    h.clock.day = 2;
    const before = new Map([...replica.customers].map(([id, c]) => [id, c.score]));
    const job = await gql<{ startRescore: { id: string } }>(`mutation { startRescore { id } }`);
    const done = await waitFor('the re-score to finish', async () => {
      const d = await gql<{ rescoreJob: { status: string; changed: number } }>(`query J($id: ID!) { rescoreJob(id: $id) { status changed } }`, { id: job.startRescore.id });
      if (d.rescoreJob.status === 'failed') throw new Error('re-score failed');
      return d.rescoreJob.status === 'succeeded' && d.rescoreJob;
    }, 60_000, 100);
    expect(done.changed).toBeGreaterThan(0);
    // and a last message after it all
    await ingest([msg('alice', 'Love it')]);
    const end = await differences();
    expect(end.customers).toEqual([]);
    expect(end.interactions).toEqual([]);
    const after = buildReplica(seen).customers;
    expect([...before].filter(([id, score]) => after.get(id)?.score !== score).length).toBeGreaterThan(0);

    // interactions.enriched.v1 is the event of an arrival: after a merge (here the accepted
    // suggestion) a consumer that does not follow `merged-into` still holds the customerId the
    // interaction had when it was published: dave2's (API: dave). The undo and the unlink are
    // followed through interactions.reassigned.v1: frank's message (API: the customer the unlink
    // made) is under that customer in the replica too (before that topic, it was still under
    // frank's first customer, tombstoned by the link); bob's message written while merged into
    // alice was erased with bob, so no longer compared.
    const externalOf = new Map((await q<{ id: string; external_id: string }>(`SELECT id, external_id FROM interaction`)).map((r) => [r.id, r.external_id]));
    const differing = end.owners.map((o) => externalOf.get(o.slice(0, 36)));
    expect(differing).toEqual([dave2.externalId]);
    console.info(`kafka-consumer-replica: ${seen.length} records read; interactions under another customer than the API's: ${JSON.stringify(end.owners)}`);
  }, 240_000);
});

/** What an outsider does next; indices pick among what exists when the step runs. */
type Step =
  | { t: 'ingest'; via: 'http' | 'kafka'; authors: number[]; withEmail: boolean }
  | { t: 'merge'; a: number; b: number }
  | { t: 'unmerge'; a: number }
  | { t: 'accept'; a: number }
  | { t: 'link'; a: number; author: number }
  | { t: 'unlink'; a: number; b: number }
  | { t: 'crm'; email: number; fresh: boolean }
  | { t: 'erase'; a: number };
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ t: fc.constant('ingest' as const), via: fc.constantFrom('http' as const, 'kafka' as const), authors: fc.array(fc.nat(7), { minLength: 1, maxLength: 4 }), withEmail: fc.boolean() }),
  fc.record({ t: fc.constant('merge' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ t: fc.constant('unmerge' as const), a: fc.nat() }),
  fc.record({ t: fc.constant('accept' as const), a: fc.nat() }),
  fc.record({ t: fc.constant('link' as const), a: fc.nat(), author: fc.nat(7) }),
  fc.record({ t: fc.constant('unlink' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ t: fc.constant('crm' as const), email: fc.nat(5), fresh: fc.boolean() }),
  fc.record({ t: fc.constant('erase' as const), a: fc.nat() }),
);

type Harness = ReturnType<typeof harness>;

/** Does one step of run `run`; a refused operation (CONFLICT, NOT_FOUND, BAD_USER_INPUT) counts as not done. */
async function perform(h: Harness, s: Step, run: number, done: Record<string, number>, kafkaOn = true): Promise<void> {
  const { q, attempt, ingest } = h;
  const ok = (kind: string, codes: string[]) => {
    if (codes.length === 0) done[kind] = (done[kind] ?? 0) + 1;
  };
  const handle = (i: number) => `r${run}a${i}`;
  const email = (i: number) => `r${run}e${i % 3}@example.com`;
  const customers = await q<{ id: string; merged_into_id: string | null }>(`SELECT id, merged_into_id FROM customer ORDER BY created_at, id`);
  const live = customers.filter((c) => c.merged_into_id === null);
  const pick = <T,>(xs: T[], i: number): T | undefined => (xs.length === 0 ? undefined : xs[i % xs.length]);
  if (s.t === 'ingest') {
    const lines = s.authors.map((a) => msg(handle(a), a % 2 ? 'my parcel is late' : 'love it, thanks', s.withEmail ? { email: email(a) } : {}));
    done.ingest = (done.ingest ?? 0) + 1;
    if (s.via === 'http' || !kafkaOn) await ingest(lines);
    else {
      await produce(h.kafka(), h.names.topic, lines.map((l) => ({ key: l.author.handle, value: JSON.stringify(l) })));
      await waitFor('the Kafka messages to be stored', async () =>
        (await q<{ n: number }>(`SELECT count(*)::int AS n FROM interaction WHERE external_id = ANY($1)`, [lines.map((l) => l.externalId)]))[0]!.n === lines.length,
      60_000);
    }
  } else if (s.t === 'merge') {
    const [a, b] = [pick(live, s.a), pick(live, s.b)];
    if (a && b) ok(s.t, await attempt(`mutation M($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "generated") { customers { id } } }`, { s: cid(a.id), m: cid(b.id) }));
  } else if (s.t === 'unmerge') {
    const merged = customers.filter((c) => c.merged_into_id !== null);
    const c = pick(merged, s.a);
    if (c) ok(s.t, await attempt(`mutation U($c: ID!) { unmergeCustomer(customerId: $c, reason: "generated") { customers { id } } }`, { c: cid(c.id) }));
  } else if (s.t === 'accept') {
    const d = await h.gql<{ mergeSuggestions: { edges: { node: { id: string } }[] } }>(`{ mergeSuggestions(first: 50) { edges { node { id } } } }`);
    const sug = pick(d.mergeSuggestions.edges, s.a);
    if (sug) ok(s.t, await attempt(`mutation A($id: ID!) { acceptMergeSuggestion(id: $id) { customers { id } } }`, { id: sug.node.id }));
  } else if (s.t === 'link') {
    const c = pick(live, s.a);
    if (c) ok(s.t, await attempt(`mutation L($c: ID!, $v: String!) { linkIdentity(customerId: $c, kind: HANDLE, network: "x", value: $v) { customers { id } } }`, { c: cid(c.id), v: handle(s.author) }));
  } else if (s.t === 'unlink') {
    const c = pick(live, s.a);
    if (c) {
      const ids = await q<{ kind: string; network: string | null; raw_value: string; value: string }>(`SELECT kind, network, raw_value, value FROM customer_identity WHERE customer_id = $1 AND kind IN ('handle', 'email') ORDER BY created_at, id`, [c.id]);
      const i = pick(ids, s.b);
      if (i) ok(s.t, await attempt(`mutation L($c: ID!, $k: IdentityKind!, $n: String, $v: String!) { unlinkIdentity(customerId: $c, kind: $k, network: $n, value: $v) { customers { id } } }`, { c: cid(c.id), k: i.kind.toUpperCase(), n: i.kind === 'handle' ? i.network : null, v: i.kind === 'handle' ? i.value.slice(i.value.indexOf(':') + 1) : i.value }));
    }
  } else if (s.t === 'crm') {
    done.crm = (done.crm ?? 0) + 1;
    const ext = `003${String(run).padStart(6, '0')}${String(s.email).padStart(3, '0')}${s.fresh ? 'F' : 'A'}AA`;
    await h.app().services.identity.ingestCrmRecords('salesforce', 'Contact', [
      { externalId: ext, person: { givenName: `Crm${s.email}`, surname: `Run${run}` }, identities: [{ kind: 'email', value: s.fresh ? `r${run}fresh${s.email}@example.com` : email(s.email) }] },
    ]);
  } else if (s.t === 'erase') {
    const c = pick(live, s.a);
    if (c) ok(s.t, await attempt(`mutation E($id: ID!) { eraseCustomer(id: $id, reason: "DSR-p") { id } }`, { id: cid(c.id) }));
  }
}

describe('a consumer replica agrees with the GraphQL API after generated sequences of operations (fast-check)', () => {
  const h = harness('replicaprop');
  const { differences } = h;
  let run = 0;

  it('holds every live customer and interaction as the API does, and nothing of an erased person', async () => {
    /** operations that took effect, by kind */
    const done: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
        run++;
        for (const s of steps) await perform(h, s, run, done);
        const d = await differences();
        expect(d.customers).toEqual([]);
        expect(d.interactions).toEqual([]);
      }),
      { seed: 20261205, numRuns: 30, endOnFailure: true },
    );
    console.info(`kafka-consumer-replica (fast-check): ${run} runs, steps ${JSON.stringify(done)}, ${h.seen.length} records read`);
  }, 300_000);

  it('holds the same after operations that run at once (merges, undos, links, erasures and ingest racing)', async () => {
    const done: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 2, maxLength: 8 }), async (steps) => {
        run++;
        // CRM intake first, alone: at once with an erasure it can fail its batch (it reads a candidate
        // record's customer without a lock, and the erasure deletes that customer before
        // lockCustomers: "null value in column customer_a_id of merge_suggestion"; not this test's subject)
        for (const s of steps.filter((x) => x.t === 'crm')) await perform(h, s, run, done);
        // what exists is read before any step runs, so several steps aim at the same customers
        await Promise.all(steps.filter((x) => x.t !== 'crm').map((s) => perform(h, s, run, done)));
        const d = await differences();
        expect(d.customers).toEqual([]);
        expect(d.interactions).toEqual([]);
      }),
      { seed: 20261206, numRuns: 20, endOnFailure: true },
    );
    console.info(`kafka-consumer-replica (fast-check, at once): steps ${JSON.stringify(done)}, ${h.seen.length} records read`);
  }, 300_000);
});

describe('a consumer replica agrees with the GraphQL API when the outbox was published late, as one backlog', () => {
  const h = harness('replicabacklog', {}, { kafkaFromStart: false });

  it('after generated operations made while the service had no broker, then a restart with one', async () => {
    const done: Record<string, number> = {};
    // fixed sequences: a service without KAFKA_BROKERS does them all; events are rendered only when published
    const runs = fc.sample(fc.array(step, { minLength: 4, maxLength: 12 }), { seed: 20261207, numRuns: 30 });
    for (const [i, steps] of runs.entries()) for (const s of steps) await perform(h, s, 1_000 + i, done, false);
    const [{ n }] = await h.q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`);
    expect(n).toBeGreaterThan(0);
    await h.connectKafka();
    const d = await h.differences();
    expect(d.customers).toEqual([]);
    expect(d.interactions).toEqual([]);
    console.info(`kafka-consumer-replica (backlog): ${n} outbox rows waiting, steps ${JSON.stringify(done)}, ${h.seen.length} records read, ${d.owners.length} interactions under another customer than the API's`);
  }, 300_000);
});

describe('an erased person leaves no name on a customer they were once merged into', () => {
  const h = harness('replicaname');

  /** A customer known only by an email address (so without a name) and a named one; the second is merged into the first and split off again by `split`. */
  async function mergedAndSplit(tag: string, split: (survivor: string, merged: string, audit: string) => Promise<void>) {
    await h.ingest([
      { ...msg(`${tag}@example.com`, 'Where is my invoice?', { email: `${tag}@example.com`, displayName: undefined }), source: 'email' },
      msg(`${tag}_smith`, 'The app is broken', { displayName: `Robin ${tag} Smith` }),
    ]);
    const [mailOnly] = await h.q<{ id: string; display_name: string | null }>(`SELECT c.id, c.display_name FROM customer c JOIN customer_identity ci ON ci.customer_id = c.id WHERE ci.kind = 'email' AND ci.value = $1`, [`${tag}@example.com`]);
    expect(mailOnly!.display_name).toBeNull();
    const named = await h.customerOf(`x:${tag}_smith`);
    const merged = await h.gql<{ mergeCustomers: { audit: { id: string }; customers: { displayName: string | null }[] } }>(
      `mutation M($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "same person") { audit { id } customers { displayName } } }`,
      { s: cid(mailOnly!.id), m: cid(named) },
    );
    // the survivor takes the name while the two are one
    expect(merged.mergeCustomers.customers[0]!.displayName).toBe(`Robin ${tag} Smith`);
    await split(mailOnly!.id, named, merged.mergeCustomers.audit.id);
    return { survivor: mailOnly!.id, name: `Robin ${tag} Smith` };
  }

  /** Erases the customer holding `handle`; then neither the API nor what was published after names them. */
  async function eraseAndCheck(handle: string, survivor: string, name: string) {
    await h.differences();
    const from = h.seen.length;
    await h.gql(`mutation E($id: ID!) { eraseCustomer(id: $id, reason: "DSR-9") { id } }`, { id: cid(await h.customerOf(handle)) });
    const d = await h.differences();
    expect(d.customers).toEqual([]);
    const api = await h.gql<{ customer: { displayName: string | null } }>(`query C($id: ID!) { customer(id: $id) { displayName } }`, { id: cid(survivor) });
    expect(api.customer.displayName).not.toBe(name);
    expect(buildReplica(h.seen).customers.get(survivor)?.displayName ?? null).not.toBe(name);
    expect(h.seen.slice(from).filter((r) => r.value?.includes(name))).toEqual([]);
  }

  it('after the merge is undone (unmergeCustomer) and the named customer erased', async () => {
    const { survivor, name } = await mergedAndSplit('undo', async (_s, _m, audit) => {
      await h.gql(`mutation U($id: ID!) { unmergeCustomer(mergeId: $id, reason: "two people") { customers { id } } }`, { id: audit });
    });
    await eraseAndCheck('x:undo_smith', survivor, name);
  });

  it('after the named handle is unlinked (unlinkIdentity) and its customer erased', async () => {
    const { survivor, name } = await mergedAndSplit('unlink', async (s) => {
      await h.gql(`mutation L($c: ID!) { unlinkIdentity(customerId: $c, kind: HANDLE, network: "x", value: "unlink_smith") { customers { id } } }`, { c: cid(s) });
    });
    await eraseAndCheck('x:unlink_smith', survivor, name);
  });

  it('after the survivor was merged on into another nameless customer and the first merge is undone', async () => {
    const { survivor, name } = await mergedAndSplit('chain', async (s, _m, audit) => {
      // the survivor merges on into a third customer without a name, which takes the name too
      await h.ingest([{ ...msg('chain2@example.com', 'Any news?', { email: 'chain2@example.com', displayName: undefined }), source: 'email' }]);
      const [third] = await h.q<{ id: string }>(`SELECT customer_id AS id FROM customer_identity WHERE kind = 'email' AND value = 'chain2@example.com'`);
      const on = await h.gql<{ mergeCustomers: { customers: { displayName: string | null }[] } }>(
        `mutation M($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "same person") { customers { displayName } } }`,
        { s: cid(third!.id), m: cid(s) },
      );
      expect(on.mergeCustomers.customers[0]!.displayName).toBe('Robin chain Smith');
      await h.gql(`mutation U($id: ID!) { unmergeCustomer(mergeId: $id, reason: "two people") { customers { id } } }`, { id: audit });
    });
    await eraseAndCheck('x:chain_smith', survivor, name);
    // the customer it was merged on into (the survivor's root) holds no name of theirs either
    const [root] = await h.q<{ display_name: string | null }>(`SELECT r.display_name FROM customer c JOIN customer r ON r.id = c.merged_into_id WHERE c.id = $1`, [survivor]);
    expect(root!.display_name).toBeNull();
  });
});

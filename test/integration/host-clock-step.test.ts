import WebSocket from 'ws';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/config';
import type { CrmRecordInput } from '../../src/crm/crm.port';
import { topicSpecs } from '../../src/ingest/kafka-client';
import { metricsSink, OutboxRelay } from '../../src/outbox/outbox-relay';
import { PlatformaticRelayProducer } from '../../src/outbox/relay-producer';
import { createLogger } from '../../src/shared/logger';
import { Metrics } from '../../src/shared/metrics';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { KafkaProxy } from '../support/kafka-proxy';
import { kafkaEnv, kafkaNames, readTopic, testBrokers, testKafka, waitFor } from '../support/kafka-fixtures';

// The host's clock steps while Earshot runs: NTP correcting a VM that drifted, a VM restored from a
// snapshot. The process clock (`Date`) of this test process is moved, and it keeps running from
// where it was set; timers and `performance.now()` are left alone, as a real step leaves the
// monotonic clock alone.

const HOUR = 3_600_000;
const ADMIN = 'admin-key-0123456789';
const KEYS = { EARSHOT_API_KEYS: `${ADMIN}:admin`, EARSHOT_ROLES: 'api,ingest' };
const as = { 'x-api-key': ADMIN };
const UPSERT = `mutation($input: TopicInput!) { upsertTopic(input: $input) { job { id status } } }`;
/** the newest interaction (by occurredAt) */
const NEWEST = `{ interactions(first: 1) { edges { node { text topics { name } } } } }`;

/** Sets the process clock `ms` away from now (negative: back); it goes on running from there. */
function stepClock(ms: number): void {
  const to = Date.now() + ms;
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
  vi.setSystemTime(to);
}

async function ingest(app: TestApp, lines: Record<string, unknown>[]): Promise<void> {
  const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...as }, body: ndjson(lines) });
  expect(res.status).toBe(200);
  expect(((await res.json()) as { accepted: number }).accepted).toBe(lines.length);
}

describe('the host clock steps while Earshot runs', () => {
  const apps: TestApp[][] = [];

  /** Two replicas on one database of their own. */
  async function replicas(label: string): Promise<[TestApp, TestApp]> {
    const a = await startTestApp(KEYS, label);
    const pair: TestApp[] = [a];
    apps.push(pair);
    const b = await startTestApp(KEYS, label, a.database);
    pair.push(b);
    return [a, b];
  }

  afterEach(() => {
    vi.useRealTimers();
  });

  afterAll(async () => {
    vi.useRealTimers();
    for (const [a, ...others] of apps) {
      for (const o of others) await o.stop().catch(() => undefined);
      await a!.close();
    }
  });

  it("a replica tags new messages with another replica's taxonomy edit made after the step, as it does without one", async () => {
    const [a, b] = await replicas('clockstep');
    // replica b has read (and cached) the taxonomy
    await ingest(b, [message(1, { externalId: 'w-1', eventId: 'w-1', text: 'My wombat blanket is lovely' })]);

    // NTP steps the host clock back an hour; then an admin adds a topic on replica a
    stepClock(-HOUR);
    const edit = await a.gql<{ upsertTopic: { job: { id: string } } }>(
      UPSERT,
      { input: { name: 'wombat_blanket', label: 'Wombat blanket', department: 'Blanket Desk', phrases: ['wombat blanket'] } },
      as,
    );
    expect(edit.errors).toBeUndefined();

    // Messages go on arriving at replica b. Its taxonomy is cached for 10 s: a message it takes
    // after that carries the new topic. Before, its cache counted the 10 s on the stepped clock and
    // kept the old taxonomy for the hour the clock went back: every message stored untagged.
    let n = 0;
    const tagged = await waitFor(
      'a message taken by replica b tagged with the topic added on replica a',
      async () => {
        n++;
        const text = `Wombat blanket number ${n} arrived torn`;
        // each probe written a minute after the one before: the newest
        await ingest(b, [message(100 + n, { externalId: `p-${n}`, eventId: `p-${n}`, text })]);
        const r = await b.gql<{ interactions: { edges: { node: { text: string; topics: { name: string }[] } }[] } }>(NEWEST, {}, as);
        expect(r.errors).toBeUndefined();
        const node = r.data.interactions.edges[0]!.node;
        expect(node.text).toBe(text);
        return node.topics.some((t) => t.name === 'wombat_blanket') ? node : null;
      },
      25_000,
      500,
    );
    expect(tagged.topics.map((t) => t.name)).toContain('wombat_blanket');
  });

  it("a replica's CRM intake matches the records another replica took in after the step, as it does without one", async () => {
    const [a, b] = await replicas('clockstepcrm');
    const crm = (app: TestApp, system: 'salesforce' | 'hubspot', objectType: string, records: CrmRecordInput[]) => app.services.identity.ingestCrmRecords(system, objectType, records);
    // replica b has loaded its index of CRM profiles
    await crm(b, 'hubspot', 'contact', [{ externalId: '500', person: { givenName: 'Katherine', surname: 'Johnson', city: 'white sulphur springs', postcode: '24986' } }]);

    // NTP steps the host clock back an hour; then replica a takes in a Salesforce lead
    stepClock(-HOUR);
    const lead = await crm(a, 'salesforce', 'Lead', [
      { externalId: '00Q000000000002AAA', person: { givenName: 'Dorothy', surname: 'Vaughan', streetNumber: '4', address1: 'langley road', city: 'hampton', postcode: '23681', state: 'va' } },
    ]);
    const dorothy = lead.customerIds[0]!;

    // Replica b takes in the same person from HubSpot. Its index is refreshed from the database
    // every 5 s, so a record taken in after that is linked to the lead's customer (a record
    // b takes in unlinked is deleted again, so that the next one is not matched with it). Before,
    // the 5 s were counted on the stepped clock: for the hour the clock went back every such
    // record made a second customer of its own.
    let n = 0;
    const linked = await waitFor(
      "a HubSpot contact taken in by replica b linked to replica a's lead",
      async () => {
        n++;
        const person = { givenName: 'Dorothy', surname: 'Vaughn', city: 'hampton', postcode: '23681' };
        const r = await crm(b, 'hubspot', 'contact', [{ externalId: `778${n}`, person }]);
        if (r.customerIds[0] === dorothy) return r;
        await crm(b, 'hubspot', 'contact', [{ externalId: `778${n}`, person, deleted: true }]);
        return null;
      },
      25_000,
      500,
    );
    expect(linked).toMatchObject({ linked: 1, created: 0 });
  });

  it('keeps open WebSocket subscriptions open: a client sending a message after the step is not taken for a flood', async () => {
    const app = await startTestApp(KEYS, 'clockstepws');
    apps.push([app]);
    const ws = new WebSocket(`${app.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.once('close', (code, reason) => r({ code, reason: String(reason) })));
    ws.on('error', () => undefined);
    const messages: string[] = [];
    ws.on('message', (d) => messages.push(String(d)));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'connection_init', payload: { 'X-API-Key': ADMIN } }));
    await expect.poll(() => messages.map((m) => JSON.parse(m).type)).toEqual(['connection_ack']);

    // the host clock steps back an hour; the client's keep-alive ping goes on, one a minute or so
    stepClock(-HOUR);
    ws.send(JSON.stringify({ type: 'ping' }));
    // Before, the message-rate bound counted the hour back as a debt of an hour's messages and
    // closed the socket (1008 "Too many messages") at its first message after the step: every
    // subscriber of every replica cut off at once, and again for each that reconnects and pings
    // within the hour
    const outcome = await Promise.race([closed, expect.poll(() => messages.at(-1)).toBe('{"type":"pong"}').then(() => 'pong' as const)]);
    expect(outcome).toBe('pong');
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.close();
  });

  it('stays ready when the clock steps forward: its Kafka consumer is not taken for one the broker stopped answering', async () => {
    const own = kafkaNames('clockstep');
    const app = await startTestApp(kafkaEnv(own, { EARSHOT_ROLES: 'ingest' }), 'clockstepkafka');
    apps.push([app]);
    try {
      await waitFor('consumer', async () => app.kafka?.health() === null);
      // NTP steps a host that ran an hour behind forward
      stepClock(HOUR);
      // Before: 503 "no answer from the broker for 3600 s" until the next heartbeat, and a
      // partition with a batch in hand "stalled for 3600 s" until it committed: a load balancer
      // took every replica out at once
      const res = await fetch(`${app.url}/readyz`);
      expect(await res.text()).not.toMatch(/no answer from the broker|stalled/);
      expect(res.status).toBe(200);
    } finally {
      vi.useRealTimers();
      const admin = testKafka().admin();
      await admin.connect();
      await admin.deleteTopics({ topics: own.all }).catch(() => undefined);
      await admin.disconnect();
    }
  });

  it('retries a parked outbox row when it is due, not an hour later', async () => {
    const names = kafkaNames('clocksteppark');
    const app = await startTestApp({}, 'clocksteppark');
    apps.push([app]);
    const kafka = testKafka();
    const admin = kafka.admin();
    await admin.connect();
    let relay: OutboxRelay | null = null;
    try {
      const settings = loadConfig({ NODE_ENV: 'test', DATABASE_URL: app.database.url, ...kafkaEnv(names, { KAFKA_BROKERS: testBrokers() }) }).kafka;
      const outputs = topicSpecs(settings).filter((t) => t.topic.startsWith(settings.outputTopicPrefix));
      const erasureTopic = `${names.prefix}customer-erasure.v1`;
      // every output topic but the erasures' (deleted by hand): the erasure's row is parked
      await admin.createTopics({ topics: outputs.filter((t) => t.topic !== erasureTopic), waitForLeaders: true });
      const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'error', { component: 'outbox-relay' });
      const producer = new PlatformaticRelayProducer(settings, 'clocksteppark', { retries: 2 });
      relay = new OutboxRelay(producer, { url: app.database.url }, settings, metricsSink(new Metrics()), log, { parkAfterAttempts: 2, parkedRetryMs: 300 });
      await relay.start();
      const rows = async () => (await app.db.ds.query(`SELECT id, sent_at IS NOT NULL AS sent, parked_at IS NOT NULL AS parked FROM outbox_batch ORDER BY id`)) as { id: string; sent: boolean; parked: boolean }[];

      const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([message(1, { author: { handle: 'alpha' } })]) });
      expect(res.status).toBe(200);
      await waitFor('the first row published', async () => (await rows()).at(-1)!.sent);
      const [{ id: alpha }] = (await app.db.ds.query(`SELECT customer_id AS id FROM interaction WHERE external_id = 'ext-1'`)) as { id: string }[];
      const erased = await app.gql(`mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-9") { id } }`, { id: Buffer.from(`Customer:${alpha}`).toString('base64url') });
      expect(erased.errors).toBeUndefined();
      // a row is parked once it failed on its own while the rows after it go out
      await waitFor('the erasure row tried', async () => (await app.db.ds.query(`SELECT 1 FROM outbox_batch WHERE attempts >= 1`)).length > 0, 60_000);
      for (const n of [2, 3]) {
        const r = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([message(n, { author: { handle: `h${n}` } })]) });
        expect(r.status).toBe(200);
      }
      await waitFor('the erasure row parked', async () => (await rows()).some((r) => r.parked), 60_000);

      // the host clock steps back an hour; the operator creates the topic again
      stepClock(-HOUR);
      await admin.createTopics({ topics: outputs.filter((t) => t.topic === erasureTopic), waitForLeaders: true });
      // The parked row is due again within seconds (the database's clock says when). Before, the
      // relay looked for due parked rows "at most once a second" on the stepped clock: not for an
      // hour, and the erasure waited that long to reach its consumers.
      await waitFor('the parked erasure published', async () => (await rows()).every((r) => r.sent), 45_000, 250);
      const erasures = await readTopic(kafka, erasureTopic, 30_000);
      expect(erasures.map((r) => (JSON.parse(r.value!.toString('utf8')) as { customerId: string }).customerId)).toEqual([alpha]);
    } finally {
      vi.useRealTimers();
      await relay?.stop(0);
      await admin.deleteTopics({ topics: names.all }).catch(() => undefined);
      await admin.disconnect();
    }
  }, 180_000);

  /**
   * A relay publishing through a proxy the test cuts, failing since a row written after the cut was
   * tried; `unhealthyAfterMs` is how long a failure may last before health() reports it.
   */
  async function failingRelay(label: string, unhealthyAfterMs: number, run: (relay: OutboxRelay) => Promise<void>): Promise<void> {
    const names = kafkaNames(label);
    const app = await startTestApp({}, label);
    apps.push([app]);
    const kafka = testKafka();
    const admin = kafka.admin();
    await admin.connect();
    const [host, port] = testBrokers().split(',')[0]!.split(':');
    const proxy = new KafkaProxy(host!, Number(port));
    await proxy.listen();
    let relay: OutboxRelay | null = null;
    try {
      const settings = loadConfig({ NODE_ENV: 'test', DATABASE_URL: app.database.url, ...kafkaEnv(names, { KAFKA_BROKERS: proxy.brokers }) }).kafka;
      await admin.createTopics({ topics: topicSpecs(settings).filter((t) => t.topic.startsWith(settings.outputTopicPrefix)), waitForLeaders: true });
      const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'error', { component: 'outbox-relay' });
      const producer = new PlatformaticRelayProducer(settings, label, { retries: 2 });
      relay = new OutboxRelay(producer, { url: app.database.url }, settings, metricsSink(new Metrics()), log, { unhealthyAfterMs });
      await relay.start();
      const post = async (n: number) => {
        const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson([message(n, { author: { handle: `h${n}` } })]) });
        expect(res.status).toBe(200);
      };
      await post(1);
      await waitFor('the first row published', async () => (await app.db.ds.query(`SELECT 1 FROM outbox_batch WHERE sent_at IS NULL`)).length === 0);
      await proxy.cut();
      await post(2);
      await waitFor('the row after the cut tried and failed', async () => (await app.db.ds.query(`SELECT 1 FROM outbox_batch WHERE sent_at IS NULL AND attempts >= 1`)).length > 0, 60_000);
      await run(relay);
    } finally {
      vi.useRealTimers();
      await relay?.stop(0);
      await proxy.cut();
      await admin.deleteTopics({ topics: names.all }).catch(() => undefined);
      await admin.disconnect();
    }
  }

  it("does not call the outbox relay failing for an hour when the clock steps an hour forward a moment into a failure", async () => {
    await failingRelay('clockstepfwd', 10 * 60_000, async (relay) => {
      expect(relay.health()).toBeNull();
      stepClock(HOUR);
      // before: "outbox relay cannot publish since …" at once, so /readyz failed on a failure seconds old
      expect(relay.health()).toBeNull();
    });
  }, 120_000);

  it('keeps reporting a failing outbox relay when the clock steps an hour back, naming when the failure began', async () => {
    await failingRelay('clockstepback', 1, async (relay) => {
      const began = Date.now();
      await waitFor('the relay reported failing', async () => relay.health() !== null);
      stepClock(-HOUR);
      // before: null for the next hour (the failure seemed to start in the future), and /readyz said ready
      const said = relay.health();
      expect(said).toMatch(/^outbox relay cannot publish since /);
      const since = Date.parse(/since (\S+):/.exec(said!)![1]!);
      expect(Math.abs(since - began)).toBeLessThan(60_000);
    });
  }, 120_000);
});

import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import escalationSchema from '../../schema/listening-gap.v1.schema.json';
import { startApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/shared/logger';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { startTestApp, type TestApp } from '../support/app';
import { syncUntilTaken } from '../support/crm-env';
import { kafkaEnv, kafkaNames, produce, readTopic, testKafka, waitFor } from '../support/kafka-fixtures';

// An SLA breach, end to end: Kafka ingest → overdue item → exactly one Salesforce Case on the
// local Salesforce server and exactly one listening-gap.v1 event, with two replicas escalating at
// once, after a restart, and after a crash between the CRM call and the commit.

const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();

describe('listening-gap escalation', () => {
  const names = kafkaNames('gapesc');
  const gapTopic = `${names.prefix}listening-gap.v1`;
  let kafka: Kafka;
  let sf: SalesforceServer;
  let app: TestApp;
  let env: Record<string, string>;
  let accountId: string;
  let seed = 100;

  // Each test makes its own contact, complaint and replicas, and stops its replicas: any order works.
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  const cases = (itemId: string) => sf.store.list('Case', false).filter((c) => c.Earshot_Item_Id__c === itemId);
  const replica = async (over: Record<string, string> = {}) => {
    const config = loadConfig({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', DATABASE_URL: app.database.url, ...env, EARSHOT_ROLES: 'api,ingest,sync', ...over });
    return startApp(config, createLogger(process.env.TEST_LOG_LEVEL ?? 'error'));
  };
  /** A Salesforce contact of its own, synced into Earshot. */
  const newContact = async () => {
    const [c] = sf.store.generateContacts(1, { accountIds: [accountId], seed: seed++ });
    await syncUntilTaken(app, 'salesforce', String(c!.Id));
    return c as unknown as { Id: string; Email: string; OwnerId: string; AccountId: string | null };
  };
  const itemOf = async (externalId: string) =>
    (await q<{ id: string; status: string; escalation_state: string | null; escalation_case_id: string | null; close_reason: string | null }>(
      `SELECT li.id, li.status, li.escalation_state, li.escalation_case_id, li.close_reason FROM listening_item li JOIN interaction i ON i.id = li.interaction_id WHERE i.external_id = $1`,
      [externalId],
    ))[0];
  const eventsOf = async (itemId: string) => (await readTopic(kafka, gapTopic).catch(() => [])).filter((e) => e.key?.toString() === itemId);
  const outboxRowsOf = async (itemId: string) => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'listening-gap.v1' AND message_key = $1`, [itemId]))[0]!.n;
  /** An ignored email complaint 30 hours old (the email SLA is 24 h), through Kafka. */
  const overdueComplaint = async (tag: string, email: string, text = 'I was charged twice for my order this month and nobody answers. Not happy.') => {
    const complaint = {
      eventId: `esc-${tag}`, source: 'email', externalId: `mail-${tag}`, occurredAt: iso(Date.now() - 30 * HOUR), direction: 'inbound',
      author: { email, displayName: 'Jo Customer' }, text,
    };
    await produce(kafka, names.topic, [{ key: email, value: JSON.stringify(complaint) }]);
    return waitFor('item', () => itemOf(`mail-${tag}`));
  };

  beforeAll(async () => {
    kafka = testKafka();
    sf = new SalesforceServer();
    const { url } = await sf.start();
    [{ Id: accountId }] = sf.store.generateAccounts(1) as { Id: string }[];
    env = {
      ...kafkaEnv(names),
      EARSHOT_SF_LOGIN_URL: url,
      EARSHOT_SF_CLIENT_ID: sf.options.clientId,
      EARSHOT_SF_CLIENT_SECRET: sf.options.clientSecret,
      EARSHOT_SF_USERNAME: 'earshot@example.com',
      EARSHOT_SF_PASSWORD: 'password',
      EARSHOT_SF_OBJECTS: 'Account,Contact,Case',
      EARSHOT_CRM_SYNC_INTERVAL_MS: '3600000',
      EARSHOT_CRM_WRITEBACK: 'off',
      // manual runs; the background job runs in the replicas of the tests about it
      EARSHOT_GAP_ESCALATION: 'off',
    };
    app = await startTestApp(env, 'gapesc');
    await waitFor('consumer', async () => app.kafka?.health() === null);
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    await sf?.stop();
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin.disconnect();
  });

  it('escalates an ignored email complaint once: one Case linked to the contact, account and owner, one valid event', async () => {
    const contact = await newContact();
    const item = await overdueComplaint('once', contact.Email);
    expect(item.status).toBe('open');

    const second = await replica();
    try {
      const reports = await Promise.all([app.services.escalation.runOnce(), second.services.escalation.runOnce(), app.services.escalation.runOnce()]);
      expect(reports.reduce((n, r) => n + r.escalated, 0)).toBe(1);
      // and once more, after the race: nothing left to do
      expect((await second.services.escalation.runOnce()).escalated).toBe(0);
    } finally {
      await second.stop();
    }

    const made = cases(item.id);
    expect(made).toHaveLength(1);
    expect(made[0]).toMatchObject({ ContactId: contact.Id, AccountId: contact.AccountId, OwnerId: contact.OwnerId, Origin: 'email', Priority: 'High', Status: 'New', IsClosed: false });
    expect(String(made[0]!.Description)).toContain('charged twice');
    expect(await itemOf('mail-once')).toMatchObject({ escalation_state: 'done', escalation_case_id: made[0]!.Id });

    const events = await waitFor('listening-gap event', async () => {
      const got = await eventsOf(item.id);
      return got.length >= 1 ? got : null;
    });
    expect(events).toHaveLength(1);
    const ajv = new Ajv2020({ allErrors: true });
    addFormats(ajv);
    const valid = ajv.compile(escalationSchema);
    const payload = JSON.parse(events[0]!.value!.toString('utf8'));
    expect(valid(payload), JSON.stringify(valid.errors)).toBe(true);
    expect(events[0]!.headers).toMatchObject({ 'schema-version': '1', 'event-id': payload.eventId });
    expect(payload).toMatchObject({ itemId: item.id, department: 'Finance', channel: 'email', case: { system: 'salesforce', id: made[0]!.Id } });

    // The overdue item shows as escalated in the care desk's queue.
    const open = await app.gql<{ openItems: { edges: { node: { id: string; overdue: boolean; escalation: { system: string; caseId: string } } }[] } }>(
      `{ openItems(first: 100, overdueOnly: true) { edges { node { id overdue escalation { system caseId caseUrl } } } } }`,
    );
    const mine = open.data.openItems.edges.map((e) => e.node).find((n) => n.escalation?.caseId === made[0]!.Id);
    expect(mine).toMatchObject({ overdue: true, escalation: { system: 'SALESFORCE', caseId: made[0]!.Id } });
  });

  it('a complaint longer than a Case description takes: its start, how long it was, and the SLA and the link to Earshot after it, in at most 32,000 characters', async () => {
    const contact = await newContact();
    // 40,000 UTF-16 units: the complaint, then parcels (two units each), so a cut by units may
    // fall inside one
    const start = 'I was charged twice for my order this month and nobody answers. Not happy. ';
    const text = start + '📦'.repeat((40_000 - start.length) >> 1);
    const item = await overdueComplaint('long', contact.Email, text);
    expect((await app.services.escalation.runOnce()).escalated).toBe(1);

    const [made] = cases(item.id);
    const description = String(made!.Description);
    expect(description.length).toBeLessThanOrEqual(32_000);
    expect(description.length).toBeGreaterThan(31_000);
    expect(description.isWellFormed()).toBe(true);
    expect(description).toContain(start);
    expect(description).toContain(`[… cut: the message has ${text.length} characters; the whole text is in Earshot]`);
    const customerId = (await q<{ customer_id: string }>(`SELECT customer_id FROM listening_item WHERE id = $1`, [item.id]))[0]!.customer_id;
    expect(description).toMatch(/First response was due .* h overdue\./);
    expect(description.endsWith(`/customers/${customerId}`)).toBe(true);
  });

  it('a restarted service and the background jobs of two replicas make no second case and no second event', async () => {
    const contact = await newContact();
    const item = await overdueComplaint('restart', contact.Email);
    const first = await replica();
    expect((await first.services.escalation.runOnce()).escalated).toBeGreaterThanOrEqual(1);
    await first.stop();
    const restarted = await replica();
    const sync = { EARSHOT_ROLES: 'sync', EARSHOT_GAP_ESCALATION: 'on', EARSHOT_GAP_ESCALATION_INTERVAL_MS: '100' };
    const [a, b] = await Promise.all([replica(sync), replica(sync)]);
    try {
      expect((await restarted.services.escalation.runOnce()).escalated).toBe(0);
      // both replicas with the scheduled job on, for three rounds each
      await Promise.all([a.services.escalation.task.waitForRuns(3), b.services.escalation.task.waitForRuns(3)]);
      expect(a.services.escalation.task.errors + b.services.escalation.task.errors).toBe(0);
    } finally {
      await Promise.all([restarted.stop(), a.stop(), b.stop()]);
    }
    expect(cases(item.id)).toHaveLength(1);
    expect(await outboxRowsOf(item.id)).toBe(1);
    await waitFor('published', async () => (await q(`SELECT 1 FROM outbox WHERE message_key = $1 AND sent_at IS NOT NULL`, [item.id])).length > 0);
    expect(await eventsOf(item.id)).toHaveLength(1);
  });

  it('after a crash between the Salesforce call and the commit, the retry finds the same Case (upsert on the item id)', async () => {
    const contact = await newContact();
    const complaint = {
      // on chat (SLA 1 h), not due yet: the replicas' jobs leave it alone until the test moves its due time
      eventId: 'esc-crash', source: 'chat', externalId: 'mail-crash', occurredAt: iso(Date.now() - 0.5 * HOUR), direction: 'inbound',
      author: { email: contact.Email, displayName: 'Jo Customer' }, text: 'My parcel is 5 days late and the courier tracking has not moved. Terrible delivery.',
    };
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: JSON.stringify(complaint) });
    expect(res.status).toBe(200);
    const item = (await itemOf('mail-crash'))!;
    // What a replica that died right after the API call leaves behind: a claim with a lapsed lease and a Case in Salesforce.
    await q(`UPDATE listening_item SET escalation_state = 'pending', escalation_claim = gen_random_uuid(), escalation_lease_until = now() - interval '1 second' WHERE id = $1`, [item.id]);
    const client = app.services.crmSync.client('salesforce')!;
    const first = await client.createCase({ idempotencyKey: item.id, subject: 'x', description: 'y', origin: 'email', priority: 'medium', contactId: contact.Id, accountId: null, ownerId: null });
    expect(first.created).toBe(true);
    await q(`UPDATE listening_item SET due_at = now() - interval '1 minute' WHERE id = $1`, [item.id]);
    // The scheduled jobs of two replicas pick it up.
    const sync = { EARSHOT_ROLES: 'sync', EARSHOT_GAP_ESCALATION: 'on', EARSHOT_GAP_ESCALATION_INTERVAL_MS: '100' };
    const [a, b] = await Promise.all([replica(sync), replica(sync)]);
    try {
      await waitFor('escalated', async () => (await itemOf('mail-crash'))?.escalation_state === 'done');
      await Promise.all([a.services.escalation.task.waitForRuns(a.services.escalation.task.runsDone + 2), b.services.escalation.task.waitForRuns(b.services.escalation.task.runsDone + 2)]);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    expect(cases(item.id)).toHaveLength(1);
    expect((await itemOf('mail-crash'))!.escalation_case_id).toBe(first.externalId);
    expect(await outboxRowsOf(item.id)).toBe(1);
  });

  it('closing the Case in Salesforce closes the item at the next sync', async () => {
    const contact = await newContact();
    const { id } = await overdueComplaint('close', contact.Email);
    expect((await app.services.escalation.runOnce()).escalated).toBeGreaterThanOrEqual(1);
    const item = (await itemOf('mail-close'))!;
    expect(item.escalation_case_id).toBeTruthy();
    sf.store.update('Case', item.escalation_case_id!, { Status: 'Closed' });
    await app.services.crmSync.run('salesforce', 'incremental');
    expect(await itemOf('mail-close')).toMatchObject({ status: 'closed', close_reason: 'crm_case_closed' });
    const gap = await q(`SELECT responded_by FROM listening_item WHERE id = $1`, [id]);
    expect(gap).toEqual([{ responded_by: 'crm' }]);
  });
});

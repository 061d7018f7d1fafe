import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { Client } from '@hubspot/api-client';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import escalationSchema from '../../schema/listening-gap.v1.schema.json';
import { startApp, type RunningApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/shared/logger';
import { HubSpotServer } from '../crm-servers/hubspot/server';
import { OWNERS, type HsObject } from '../crm-servers/hubspot/store';
import { startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, readTopic, testKafka, waitFor } from '../support/kafka-fixtures';

// An SLA breach routed to HubSpot, end to end: HTTP ingest → overdue item → exactly one ticket on
// the local HubSpot server (batch upsert on the unique `earshot_item_id`, associated with the
// contact and its company, owned by the contact's owner) and exactly one listening-gap.v1 event,
// with two app instances escalating at once and after a crash between the HubSpot call and the commit.

const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
const FALLBACK_OWNER = OWNERS[1]!.id;

describe('listening-gap escalation to HubSpot', () => {
  const names = kafkaNames('gaphs');
  const gapTopic = `${names.prefix}listening-gap.v1`;
  let kafka: Kafka;
  let hs: HubSpotServer;
  let app: TestApp;
  const others: RunningApp[] = [];
  let env: Record<string, string>;
  let contact: HsObject;
  let company: HsObject;

  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  const tickets = (itemId?: string) => hs.store.list('tickets').filter((t) => (itemId ? t.properties.earshot_item_id === itemId : t.properties.earshot_item_id));
  const instance = async (over: Record<string, string> = {}) => {
    const config = loadConfig({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', DATABASE_URL: app.database.url, ...env, ...over });
    const r = await startApp(config, createLogger(process.env.TEST_LOG_LEVEL ?? 'error'));
    others.push(r);
    return r;
  };
  const ingest = async (url: string, message: Record<string, unknown>) => {
    const res = await fetch(`${url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: JSON.stringify(message) });
    expect(res.status).toBe(200);
  };
  const itemOf = async (externalId: string) =>
    (await q<{ id: string; department: string; escalation_state: string | null; escalation_system: string | null; escalation_case_id: string | null; escalation_case_url: string | null }>(
      `SELECT li.id, d.name AS department, li.escalation_state, li.escalation_system, li.escalation_case_id, li.escalation_case_url
         FROM listening_item li JOIN interaction i ON i.id = li.interaction_id JOIN department d ON d.id = li.department_id WHERE i.external_id = $1`,
      [externalId],
    ))[0];
  const gapEvents = async (n: number, itemId: string) =>
    waitFor(`${n} listening-gap event(s)`, async () => {
      const got = (await readTopic(kafka, gapTopic, 5_000).catch(() => [])).filter((e) => e.key?.toString() === itemId);
      return got.length >= n ? got : null;
    }, 20_000);

  beforeAll(async () => {
    kafka = testKafka();
    hs = new HubSpotServer();
    const { url } = await hs.start();
    [company] = hs.store.generateCompanies(1);
    [contact] = hs.store.generateContacts(1, { companyIds: [company!.id] });
    hs.store.update('contacts', contact!, { hubspot_owner_id: OWNERS[0]!.id });
    env = {
      ...kafkaEnv(names),
      EARSHOT_HUBSPOT_TOKEN: hs.options.privateAppTokens[0]!,
      EARSHOT_HUBSPOT_BASE_PATH: url,
      EARSHOT_HUBSPOT_PORTAL_ID: String(hs.store.portalId),
      EARSHOT_HUBSPOT_SEARCH_LAG_MS: '0',
      EARSHOT_CRM_RETRY_BASE_MS: '10',
      EARSHOT_CRM_SYNC_INTERVAL_MS: '3600000',
      EARSHOT_CRM_WRITEBACK: 'off',
      // billing complaints land in Finance; only Finance escalates, to HubSpot
      EARSHOT_GAP_ESCALATION_TARGETS: `Finance=hubspot:${FALLBACK_OWNER},*=none`,
      // manual runs in the first test; the scheduled job runs in the instances of the second
      EARSHOT_GAP_ESCALATION: 'off',
    };
    app = await startTestApp(env, 'gaphs');
    await app.services.crmSync.run('hubspot', 'incremental');
  }, 120_000);

  afterAll(async () => {
    for (const r of others) await r.stop().catch(() => undefined);
    await app?.close();
    await hs?.stop();
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin.disconnect();
  });

  it('the local server keeps HubSpot\'s ticket rules: required properties, and upsert only on a unique property', async () => {
    const client = new Client({ accessToken: hs.options.privateAppTokens[0], basePath: hs.url, numberOfApiCallRetries: 0 });
    const before = hs.store.list('tickets').length;
    const err = await client.crm.tickets.basicApi.create({ properties: { content: 'no subject, no pipeline' } } as never).catch((e: { code: number; body: unknown }) => e);
    expect(err).toMatchObject({ code: 400, body: { status: 'error', category: 'VALIDATION_ERROR' } });
    expect(JSON.stringify((err as { body: unknown }).body)).toMatch(/subject.*hs_pipeline.*hs_pipeline_stage/);
    const notUnique = await client.crm.tickets.batchApi.upsert({ inputs: [{ idProperty: 'subject', id: 'x', properties: { hs_pipeline: '0', hs_pipeline_stage: '1' } }] }).catch((e: { code: number; body: unknown }) => e);
    expect(notUnique).toMatchObject({ code: 400, body: { category: 'VALIDATION_ERROR' } });
    expect(hs.store.list('tickets')).toHaveLength(before);
  });

  it('escalates an ignored billing complaint once, from two instances at once: one ticket on the contact and its company, with its owner, one valid event', async () => {
    // An email 30 hours old: the email SLA (24 h) has passed.
    await ingest(app.url, {
      eventId: 'hs-esc-1', source: 'email', externalId: 'hs-mail-1', occurredAt: iso(Date.now() - 30 * HOUR), direction: 'inbound',
      author: { email: contact.properties.email, displayName: 'Jo Customer' }, text: 'I was charged twice for my order this month and nobody answers. Not happy.',
    });
    const item = (await itemOf('hs-mail-1'))!;
    expect(item.department).toBe('Finance');

    const second = await instance({ EARSHOT_ROLES: 'api' });
    const reports = await Promise.all([app.services.escalation.runOnce(), second.services.escalation.runOnce(), app.services.escalation.runOnce()]);
    expect(reports.reduce((n, r) => n + r.escalated, 0)).toBe(1);
    // and once more, after the race: nothing left to do
    expect((await second.services.escalation.runOnce()).escalated).toBe(0);

    const made = tickets(item.id);
    expect(made).toHaveLength(1);
    const ticket = made[0]!;
    expect(ticket.properties).toMatchObject({ hs_pipeline: '0', hs_pipeline_stage: '1', hs_ticket_priority: 'HIGH', source_type: 'EMAIL', hubspot_owner_id: OWNERS[0]!.id });
    expect(ticket.properties.subject).toContain('Finance');
    expect(ticket.properties.content).toContain('charged twice');
    expect(hs.store.linked('tickets', ticket.id, 'contacts')).toEqual([contact.id]);
    expect(hs.store.linked('tickets', ticket.id, 'companies')).toEqual([company.id]);
    expect(hs.store.properties.tickets.get('earshot_item_id')).toMatchObject({ hasUniqueValue: true, groupName: 'earshot' });
    const url = `https://app.hubspot.com/contacts/${hs.store.portalId}/record/0-5/${ticket.id}`;
    expect(await itemOf('hs-mail-1')).toMatchObject({ escalation_state: 'done', escalation_system: 'hubspot', escalation_case_id: ticket.id, escalation_case_url: url });

    const events = await gapEvents(1, item.id);
    expect(events).toHaveLength(1);
    const ajv = new Ajv2020({ allErrors: true });
    addFormats(ajv);
    const valid = ajv.compile(escalationSchema);
    const payload = JSON.parse(events[0]!.value!.toString('utf8'));
    expect(valid(payload), JSON.stringify(valid.errors)).toBe(true);
    expect(events[0]!.key).toBe(item.id);
    expect(payload).toMatchObject({ itemId: item.id, department: 'Finance', channel: 'email', case: { system: 'hubspot', id: ticket.id, url } });
  });

  it('after a crash between the HubSpot call and the commit, the scheduled jobs of two instances find the same ticket (upsert on the item id)', async () => {
    // On chat (SLA 1 h) and 30 minutes old: not due until the test moves its due time.
    await ingest(app.url, {
      eventId: 'hs-esc-2', source: 'chat', externalId: 'hs-chat-2', occurredAt: iso(Date.now() - 0.5 * HOUR), direction: 'inbound',
      author: { email: contact.properties.email, displayName: 'Jo Customer' }, text: 'You refunded the wrong amount to my card and the invoice is still unpaid. Awful billing.',
    });
    const item = (await itemOf('hs-chat-2'))!;
    expect(item.department).toBe('Finance');
    // What an instance that died right after the HubSpot call leaves behind: a lapsed claim and a ticket.
    await q(`UPDATE listening_item SET escalation_state = 'pending', escalation_claim = gen_random_uuid(), escalation_lease_until = now() - interval '1 second' WHERE id = $1`, [item.id]);
    const first = await app.services.crmSync.client('hubspot')!.createCase({
      idempotencyKey: item.id, subject: 'Unanswered complaint on chat (Finance)', description: 'left by a crashed instance', origin: 'chat', priority: 'medium',
      contactId: contact.id, accountId: null, ownerId: null,
    });
    expect(first.created).toBe(true);
    expect(tickets(item.id)).toHaveLength(1);

    const sync = { EARSHOT_ROLES: 'sync', EARSHOT_GAP_ESCALATION: 'on', EARSHOT_GAP_ESCALATION_INTERVAL_MS: '100' };
    const pair = await Promise.all([instance(sync), instance(sync)]);
    try {
      await q(`UPDATE listening_item SET due_at = now() - interval '1 minute' WHERE id = $1`, [item.id]);
      await waitFor('escalated', async () => (await itemOf('hs-chat-2'))?.escalation_state === 'done', 15_000);
      // a few more rounds of both jobs
      await Promise.all(pair.map((p) => p.services.escalation.task.waitForRuns(p.services.escalation.task.runsDone + 3)));
    } finally {
      // their jobs must not reach the items of other tests
      await Promise.all(pair.map((p) => p.stop()));
    }

    const made = tickets(item.id);
    expect(made).toHaveLength(1);
    expect(made[0]!.id).toBe(first.externalId);
    // the retry rewrote the ticket with the job's own values, owner and source included
    expect(made[0]!.properties).toMatchObject({ source_type: 'CHAT', hubspot_owner_id: OWNERS[0]!.id });
    expect(hs.store.linked('tickets', made[0]!.id, 'contacts')).toEqual([contact.id]);
    expect(hs.store.linked('tickets', made[0]!.id, 'companies')).toEqual([company.id]);
    expect((await itemOf('hs-chat-2'))!.escalation_case_id).toBe(first.externalId);
    expect(await q(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'listening-gap.v1' AND message_key = $1`, [item.id])).toEqual([{ n: 1 }]);
    const events = await gapEvents(1, item.id);
    expect(events.map((e) => e.key?.toString())).toEqual([item.id]);
  });
});

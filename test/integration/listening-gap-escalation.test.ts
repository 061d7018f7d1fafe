import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import escalationSchema from '../../schema/listening-gap.v1.schema.json';
import { startApp, type RunningApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/shared/logger';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { startTestApp, type TestApp } from '../support/app';
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
  const others: RunningApp[] = [];
  let env: Record<string, string>;
  let contact: { Id: string; Email: string; OwnerId: string; AccountId: string | null };

  // the first app stops in the restart test; the replicas share its database
  const ds = () => (app.db.ds.isInitialized ? app.db.ds : others[0]!.db.ds);
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await ds().query(sql, params)) as T[];
  const cases = (itemId?: string) => sf.store.list('Case', false).filter((c) => (itemId ? c.Earshot_Item_Id__c === itemId : c.Earshot_Item_Id__c));
  const replica = async () => {
    const config = loadConfig({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', DATABASE_URL: app.database.url, ...env, EARSHOT_ROLES: 'api,ingest,sync' });
    const r = await startApp(config, createLogger(process.env.TEST_LOG_LEVEL ?? 'error'));
    others.push(r);
    return r;
  };
  const itemOf = async (externalId: string) =>
    (await q<{ id: string; status: string; escalation_state: string | null; escalation_case_id: string | null; close_reason: string | null }>(
      `SELECT li.id, li.status, li.escalation_state, li.escalation_case_id, li.close_reason FROM listening_item li JOIN interaction i ON i.id = li.interaction_id WHERE i.external_id = $1`,
      [externalId],
    ))[0];

  beforeAll(async () => {
    kafka = testKafka();
    sf = new SalesforceServer();
    const { url } = await sf.start();
    const [account] = sf.store.generateAccounts(1);
    const [c] = sf.store.generateContacts(1, { accountIds: [account!.Id] });
    contact = c as never;
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
      // manual runs below; the background job is tested by the two-replica case
      EARSHOT_GAP_ESCALATION: 'off',
    };
    app = await startTestApp(env, 'gapesc');
    await app.services.crmSync.run('salesforce', 'incremental');
    await waitFor('consumer', async () => app.kafka?.health() === null);
  }, 120_000);

  afterAll(async () => {
    for (const r of others) await r.stop().catch(() => undefined);
    await app?.close();
    await sf?.stop();
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin.disconnect();
  });

  it('escalates an ignored email complaint once: one Case linked to the contact, account and owner, one valid event', async () => {
    // An email 30 hours old: the email SLA (24 h) has passed.
    const complaint = {
      eventId: 'esc-1', source: 'email', externalId: 'mail-1', occurredAt: iso(Date.now() - 30 * HOUR), direction: 'inbound',
      author: { email: contact.Email, displayName: 'Jo Customer' }, text: 'I was charged twice for my order this month and nobody answers. Not happy.',
    };
    await produce(kafka, names.topic, [{ key: contact.Email, value: JSON.stringify(complaint) }]);
    const item = await waitFor('item', () => itemOf('mail-1'));
    expect(item.status).toBe('open');

    const second = await replica();
    const reports = await Promise.all([app.services.escalation.runOnce(), second.services.escalation.runOnce(), app.services.escalation.runOnce()]);
    expect(reports.reduce((n, r) => n + r.escalated, 0)).toBe(1);
    // and once more, after the race: nothing left to do
    expect((await second.services.escalation.runOnce()).escalated).toBe(0);

    const made = cases(item.id);
    expect(made).toHaveLength(1);
    expect(made[0]).toMatchObject({ ContactId: contact.Id, AccountId: contact.AccountId, OwnerId: contact.OwnerId, Origin: 'email', Priority: 'High', Status: 'New', IsClosed: false });
    expect(String(made[0]!.Description)).toContain('charged twice');
    expect(await itemOf('mail-1')).toMatchObject({ escalation_state: 'done', escalation_case_id: made[0]!.Id });

    const events = await waitFor('listening-gap event', async () => {
      const got = await readTopic(kafka, gapTopic).catch(() => []);
      return got.length >= 1 ? got : null;
    });
    expect(events).toHaveLength(1);
    const ajv = new Ajv2020({ allErrors: true });
    addFormats(ajv);
    const valid = ajv.compile(escalationSchema);
    const payload = JSON.parse(events[0]!.value!.toString('utf8'));
    expect(valid(payload), JSON.stringify(valid.errors)).toBe(true);
    expect(events[0]!.key).toBe(item.id);
    expect(events[0]!.headers).toMatchObject({ 'schema-version': '1', 'event-id': payload.eventId });
    expect(payload).toMatchObject({ itemId: item.id, department: 'Finance', channel: 'email', case: { system: 'salesforce', id: made[0]!.Id } });

    // The overdue item shows as escalated in the care desk's queue.
    const open = await app.gql<{ openItems: { edges: { node: { overdue: boolean; escalation: { system: string; caseId: string } } }[] } }>(
      `{ openItems(overdueOnly: true) { edges { node { overdue escalation { system caseId caseUrl } } } } }`,
    );
    expect(open.data.openItems.edges[0]!.node).toMatchObject({ overdue: true, escalation: { system: 'SALESFORCE', caseId: made[0]!.Id } });
  });

  it('a restarted service and the background jobs of two replicas make no second case and no second event', async () => {
    await app.stop();
    const restarted = await replica();
    expect((await restarted.services.escalation.runOnce()).escalated).toBe(0);
    // both replicas with the scheduled job on, for a few rounds
    const a = await startApp(loadConfig({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', DATABASE_URL: app.database.url, ...env, EARSHOT_ROLES: 'sync', EARSHOT_GAP_ESCALATION: 'on', EARSHOT_GAP_ESCALATION_INTERVAL_MS: '100' }), createLogger('error'));
    const b = await startApp(loadConfig({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', DATABASE_URL: app.database.url, ...env, EARSHOT_ROLES: 'sync', EARSHOT_GAP_ESCALATION: 'on', EARSHOT_GAP_ESCALATION_INTERVAL_MS: '100' }), createLogger('error'));
    others.push(a, b);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(cases()).toHaveLength(1);
    expect(await q(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'listening-gap.v1'`)).toEqual([{ n: 1 }]);
    // the relay of the first app published before it stopped; nothing more arrives
    expect(await readTopic(kafka, gapTopic)).toHaveLength(1);
  });

  it('after a crash between the Salesforce call and the commit, the retry finds the same Case (upsert on the item id)', async () => {
    const runner = others[0]!;
    const complaint = {
      // on chat (SLA 1 h), not due yet: the replicas' jobs leave it alone until the test moves its due time
      eventId: 'esc-2', source: 'chat', externalId: 'mail-2', occurredAt: iso(Date.now() - 0.5 * HOUR), direction: 'inbound',
      author: { email: contact.Email, displayName: 'Jo Customer' }, text: 'My parcel is 5 days late and the courier tracking has not moved. Terrible delivery.',
    };
    const res = await fetch(`${runner.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: JSON.stringify(complaint) });
    expect(res.status).toBe(200);
    const item = (await itemOf('mail-2'))!;
    // What a replica that died right after the API call leaves behind: a claim with a lapsed lease and a Case in Salesforce.
    await q(`UPDATE listening_item SET escalation_state = 'pending', escalation_claim = gen_random_uuid(), escalation_lease_until = now() - interval '1 second' WHERE id = $1`, [item.id]);
    const client = runner.services.crmSync.client('salesforce')!;
    const first = await client.createCase({ idempotencyKey: item.id, subject: 'x', description: 'y', origin: 'email', priority: 'medium', contactId: contact.Id, accountId: null, ownerId: null });
    expect(first.created).toBe(true);
    await q(`UPDATE listening_item SET due_at = now() - interval '1 minute' WHERE id = $1`, [item.id]);
    // The scheduled jobs of the replicas pick it up.
    await waitFor('escalated', async () => (await itemOf('mail-2'))?.escalation_state === 'done');
    expect(cases(item.id)).toHaveLength(1);
    expect((await itemOf('mail-2'))!.escalation_case_id).toBe(first.externalId);
    expect(await q(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'listening-gap.v1'`)).toEqual([{ n: 2 }]);
  });

  it('closing the Case in Salesforce closes the item at the next sync', async () => {
    const item = (await itemOf('mail-1'))!;
    sf.store.update('Case', item.escalation_case_id!, { Status: 'Closed' });
    await others[0]!.services.crmSync.run('salesforce', 'incremental');
    expect(await itemOf('mail-1')).toMatchObject({ status: 'closed', close_reason: 'crm_case_closed' });
    const gap = await others[0]!.db.ds.query(`SELECT responded_by FROM listening_item WHERE id = $1`, [item.id]);
    expect(gap).toEqual([{ responded_by: 'crm' }]);
  });
});

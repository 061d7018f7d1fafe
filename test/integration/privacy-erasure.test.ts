import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import erasureSchema from '../../schema/customer-erasure.v1.schema.json';
import { startApp, type RunningApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/shared/logger';
import { HubSpotServer } from '../crm-servers/hubspot/server';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { crmEnv, syncUntilTaken } from '../support/crm-env';
import { startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, readTopic, testKafka, waitFor, type Received } from '../support/kafka-fixtures';
import { grepDatabase as grepPii, mentions } from '../support/pii-grep';

// Erasure end to end on PostgreSQL, the Kafka broker and the local Salesforce and HubSpot
// servers: a person with identities, interactions on two channels, CRM records in both CRMs with
// sentiment written back, an escalated Salesforce Case, events published and events still in the
// outbox. After eraseCustomer nothing Earshot holds, publishes from then on, or wrote into a CRM
// carries a value seeded for that person; what was already published is named by the erasure event.

const HOUR = 3_600_000;
const PERSON = {
  email: 'zelda.quintessa@example.org',
  phone: '+1 415 555 0199',
  handle: 'zquint_77',
  first: 'Zelda',
  last: 'Quintessa',
};
// every value seeded for the person, as stored (E.164 phone) and as sent
const SEEDED = [PERSON.email, '+14155550199', PERSON.phone, PERSON.handle, PERSON.first, PERSON.last, 'Zorblax', 'zqx-'];

function message(n: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    eventId: `zqx-evt-${n}`,
    source: 'x',
    externalId: `zqx-${n}`,
    url: `https://x.com/${PERSON.handle}/status/${1000 + n}`,
    occurredAt: new Date(Date.now() - (n + 1) * 60_000).toISOString(),
    direction: 'inbound',
    author: { handle: PERSON.handle, displayName: `${PERSON.first} ${PERSON.last}`, email: PERSON.email, phone: PERSON.phone },
    text: `My Zorblax order ${n} was charged twice and the parcel is late. Terrible service.`,
    metadata: { followers: 12, location: `${PERSON.last} Street` },
    ...over,
  };
}

describe('eraseCustomer', () => {
  const names = kafkaNames('erase');
  let kafka: Kafka;
  let sf: SalesforceServer;
  let hs: HubSpotServer;
  let app: TestApp;
  let env: Record<string, string>;
  let relay: RunningApp | null = null;

  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  /** an instance with only the ingest role: its outbox relay publishes what is pending */
  const publishPending = async () => {
    relay = await startApp(loadConfig({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', DATABASE_URL: app.database.url, ...env, EARSHOT_ROLES: 'ingest' }), createLogger('error'));
    try {
      await waitFor('outbox drained', async () => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`))[0]!.n === 0, 30_000);
    } finally {
      await relay.stop();
      relay = null;
    }
  };
  const grepDatabase = (values: string[]) => grepPii(q, values);

  beforeAll(async () => {
    kafka = testKafka();
    sf = new SalesforceServer();
    hs = new HubSpotServer();
    await Promise.all([sf.start(), hs.start()]);
    env = {
      ...kafkaEnv(names),
      ...crmEnv(sf, hs, { salesforce: 'Account,Contact,Case' }),
      EARSHOT_CRM_SYNC_INTERVAL_MS: '3600000',
      EARSHOT_CRM_WRITEBACK_POLL_MS: '3600000',
      EARSHOT_GAP_ESCALATION: 'off',
    };
    // api and sync: no relay, so outbox rows wait until publishPending()
    app = await startTestApp({ ...env, EARSHOT_ROLES: 'api,sync' }, 'erase');
    await app.services.crmSync.client('hubspot')!.setup();
  }, 120_000);

  afterAll(async () => {
    await relay?.stop().catch(() => undefined);
    await app?.close();
    await Promise.all([sf?.stop(), hs?.stop()]);
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin.disconnect();
  });

  it('removes the person from every table, every later event and every CRM field Earshot wrote; exports them before; is idempotent', async () => {
    // The person in both CRMs, and a bystander whose data must stay.
    const contact = sf.store.insert('Contact', { FirstName: PERSON.first, LastName: PERSON.last, Email: PERSON.email, Phone: PERSON.phone });
    const hsContact = hs.store.create('contacts', { email: PERSON.email, firstname: PERSON.first, lastname: PERSON.last });
    await syncUntilTaken(app, 'salesforce', String(contact.Id));
    await syncUntilTaken(app, 'hubspot', String(hsContact.id));
    const bystander = { eventId: 'by-1', source: 'email', externalId: 'by-1', occurredAt: new Date(Date.now() - HOUR).toISOString(), direction: 'inbound',
      author: { email: 'bystander@example.org', displayName: 'Plumbus Person' }, text: 'Plumbus delivery was fine, thanks.' };
    const first = await app.services.ingest.ingestObjects([
      ...[1, 2, 3].map((n) => message(n)),
      // an email complaint 30 hours old: overdue, escalated to a Salesforce Case with its text
      message(4, { source: 'email', url: null, occurredAt: new Date(Date.now() - 30 * HOUR).toISOString(), author: { email: PERSON.email, displayName: `${PERSON.first} ${PERSON.last}` } }),
      bystander,
    ], 'test');
    expect(first.rejected).toEqual([]);
    const [{ customer_id: customerId }] = await q<{ customer_id: string }>(`SELECT customer_id FROM customer_identity WHERE kind = 'email' AND value = $1`, [PERSON.email]);
    const gid = Buffer.from(`Customer:${customerId}`).toString('base64url');
    expect((await app.services.escalation.runOnce()).escalated).toBeGreaterThanOrEqual(1);
    const escalatedCase = sf.store.list('Case', false).find((c) => String(c.Description).includes('Zorblax'));
    expect(escalatedCase).toBeTruthy();
    // the sync role's own write-back task may already have written one of the two: what counts is
    // that both CRM records carry the sentiment fields before the erasure
    // (runNow joins a run in flight, whose claim may predate this customer's queue row: ask again
    // until both are written)
    await waitFor('both CRM records carry the sentiment fields', async () => {
      await app.services.crmWriteback.task.runNow();
      return Boolean(sf.store.find('Contact', contact.Id)!.Earshot_Sentiment_Label__c) && Boolean(hs.store.get('contacts', hsContact.id)!.properties.earshot_sentiment_label);
    }, 30_000);
    await publishPending();
    // more messages whose outbox rows are still unsent at the erasure
    await app.services.ingest.ingestObjects([message(5), message(6)], 'test');
    expect((await q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`))[0]!.n).toBeGreaterThan(0);

    // Access: the export holds every seeded value.
    const exported = await app.gql<{ customerDataExport: Record<string, unknown[]> }>(`query($id: ID!) { customerDataExport(id: $id) }`, { id: gid });
    expect(exported.errors).toBeUndefined();
    const dump = JSON.stringify(exported.data.customerDataExport);
    for (const v of SEEDED) expect(dump.toLowerCase()).toContain(v.toLowerCase());
    expect(exported.data.customerDataExport.interactions).toHaveLength(6);
    expect(exported.data.customerDataExport.crmRecords).toHaveLength(2);
    expect(dump).not.toContain('Plumbus');

    const before = await grepDatabase(SEEDED);
    expect(before.hits.length).toBeGreaterThan(10);

    const erased = await app.gql<{ eraseCustomer: Record<string, unknown> }>(
      `mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-1234") { id customerId customers interactions identities crmRecords listeningItemsClosed outboxRowsRemoved status erasedNow reason } }`,
      { id: gid },
    );
    expect(erased.errors).toBeUndefined();
    expect(erased.data.eraseCustomer).toMatchObject({ customerId: gid, customers: 1, interactions: 6, identities: 5, crmRecords: 2, erasedNow: true, reason: 'DSR-1234' });
    // Idempotent: the same erasure again, nothing new.
    const again = await app.gql<{ eraseCustomer: Record<string, unknown> }>(`mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-1234") { id erasedNow } }`, { id: gid });
    expect(again.data.eraseCustomer).toEqual({ id: erased.data.eraseCustomer.id, erasedNow: false });
    // The CRM clean-up runs on the sync role, kicked by the erasure.
    await waitFor('CRM clean-up', async () => {
      const r = await app.gql<{ erasure: { status: string } }>(`query($id: ID!) { erasure(customerId: $id) { status } }`, { id: gid });
      return r.data.erasure.status === 'DONE';
    }, 30_000);

    // No table holds a seeded value (the bystander's are still there: the search works).
    const after = await grepDatabase([...SEEDED]);
    expect(after.hits).toEqual([]);
    expect((await grepDatabase(['Plumbus', 'bystander@example.org'])).hits.length).toBeGreaterThan(0);
    // Counts and anonymous rollups stay.
    const [kept] = await q<{ n: number; scored: number }>(`SELECT count(*)::int AS n, count(*) FILTER (WHERE sentiment_score < 0)::int AS scored FROM interaction WHERE redacted_at IS NOT NULL`);
    expect(kept).toEqual({ n: 6, scored: 6 });
    expect((await q<{ n: number }>(`SELECT coalesce(sum(interaction_count), 0)::int AS n FROM department_sentiment_daily`))[0]!.n).toBeGreaterThan(0);
    // The audit row has no PII (covered by the grep) and says who and why.
    expect(await q(`SELECT reason, status FROM erasure_request`)).toEqual([{ reason: 'DSR-1234', status: 'done' }]);
    // The GraphQL API knows nothing of them.
    expect((await app.gql<{ customer: unknown }>(`query($id: ID!) { customer(id: $id) { id } }`, { id: gid })).data.customer).toBeNull();
    const gone = await app.gql(`query($id: ID!) { customerDataExport(id: $id) }`, { id: gid });
    expect(gone.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');

    // CRMs: the written-back fields are empty, the Case keeps no customer text.
    const sfc = sf.store.find('Contact', contact.Id)!;
    for (const f of ['Earshot_Sentiment_Score__c', 'Earshot_Sentiment_Label__c', 'Earshot_Sentiment_Trend__c', 'Earshot_Last_Interaction__c', 'Earshot_Url__c']) expect(sfc[f] ?? null).toBeNull();
    const hsp = hs.store.get('contacts', hsContact.id)!.properties;
    for (const p of ['earshot_sentiment_score', 'earshot_sentiment_label', 'earshot_url']) expect(hsp[p] ?? '').toBe('');
    for (const c of sf.store.list('Case', false)) expect(SEEDED.filter((v) => JSON.stringify(c).toLowerCase().includes(v.toLowerCase()))).toEqual([]);
    for (const t of hs.store.list('tickets')) expect(SEEDED.filter((v) => JSON.stringify(t).toLowerCase().includes(v.toLowerCase()))).toEqual([]);

    // Topics: publish what is pending now. Nothing published from here on names the person; the
    // events published before are exactly the ones the erasure event tells consumers to delete.
    const publishedBefore = new Map<string, number>();
    for (const t of names.all) publishedBefore.set(t, (await readTopic(kafka, t).catch(() => [])).length);
    await publishPending();
    const erasureEvents: Record<string, unknown>[] = [];
    const listed = new Set<string>();
    for (const t of names.all) {
      const all = await readTopic(kafka, t).catch(() => [] as Received[]);
      const later = all.slice(publishedBefore.get(t) ?? 0);
      for (const r of later) expect(mentions(r, SEEDED), `${t} after the erasure`).toEqual([]);
      if (t.endsWith('customer-erasure.v1')) for (const r of later) erasureEvents.push(JSON.parse(r.value!.toString('utf8')));
      if (t.endsWith('customer-sentiment.v1')) {
        const mine = all.filter((r) => r.key === customerId);
        expect(mine.at(-1)!.value).toBeNull();
      }
    }
    expect(erasureEvents).toHaveLength(1);
    const ajv = new Ajv2020({ allErrors: true });
    addFormats(ajv);
    const valid = ajv.compile(erasureSchema);
    expect(valid(erasureEvents[0]), JSON.stringify(valid.errors)).toBe(true);
    for (const id of erasureEvents[0]!.interactionIds as string[]) listed.add(id);
    expect(listed.size).toBe(6);
    for (const r of await readTopic(kafka, names.enriched)) {
      const payload = JSON.parse(r.value!.toString('utf8')) as { interactionId: string };
      // every enriched event that named the person is listed for deletion
      if (mentions(r, SEEDED).length > 0) expect(listed.has(payload.interactionId)).toBe(true);
    }
  });

  it('finds the person by email, phone or handle for `earshot erase`, and says NOT_FOUND for nobody', async () => {
    // none of the other test's seeded values: the tests run in any order
    await app.services.ingest.ingestObjects([{ source: 'x', externalId: 'lookup-20', occurredAt: new Date().toISOString(), direction: 'inbound',
      author: { handle: 'lookup_me', email: 'lookup@example.org', phone: '+1 415 555 0142' }, text: 'Where is my parcel?' }], 'test');
    const byEmail = await app.services.erasure.findCustomer({ email: 'Lookup@Example.org' });
    expect(await app.services.erasure.findCustomer({ phone: '(415) 555-0142' })).toBe(byEmail);
    expect(await app.services.erasure.findCustomer({ handle: 'x:lookup_me' })).toBe(byEmail);
    await expect(app.services.erasure.findCustomer({ email: 'nobody@example.org' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const forbidden = await app.gql(`mutation { eraseCustomer(id: "x", reason: "r") { id } }`, undefined, {});
    expect(forbidden.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type RunningApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { toGlobalId } from '../../src/graphql/relay';
import { createLogger } from '../../src/shared/logger';
import { HubSpotServer } from '../crm-servers/hubspot/server';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { ndjson } from '../support/app';
import { crmEnv, syncUntilTaken } from '../support/crm-env';
import { kafkaEnv, kafkaNames, produce, readTopic, testKafka, waitFor, type Received } from '../support/kafka-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

// An auditor's check of erasure: a person with an email, a phone, two social handles and CRM
// records in both CRMs, who wrote through every inbound channel (the Kafka topic, POST /ingest, the
// GraphQL mutation), whose texts carry their own address and number in several spellings, with a
// dead-lettered message, a listening item, a merge, a merge suggestion, a write-back queue row,
// audit rows and unsent outbox rows. After the erasure the WHOLE database (pg_dump --data-only:
// every table of every schema, the migrations' too) and the service's whole log are searched
// for every value of the person, as written, lower-cased and normalised (digits only for the
// phone, the address's local part); then what the output topics hold is checked.

const execFileP = promisify(execFile);
const P = {
  email: 'Qvx.Merrowind@Example.ORG',
  phone: '+44 20 7946 0958',
  x: 'qvxmerrow_x',
  ig: 'qvxmerrow.gram',
  first: 'Qvzelda',
  last: 'Merrowind',
};
const LOCAL = 'qvx.merrowind';
const PHONE_DIGITS = '2079460958';
/** what must be found nowhere, case-insensitively */
const TEXT_VALUES = [P.email.toLowerCase(), LOCAL, P.x, P.ig, P.first, P.last, 'qvxword', 'qvx-ext'];

/** Every PII value the text holds: as written (any case), and the phone with separators gone. */
function findPii(text: string): string[] {
  const lower = text.toLowerCase();
  const found = TEXT_VALUES.filter((v) => lower.includes(v.toLowerCase()));
  // digits only: separators, brackets, a leading + and a trunk (0) removed between the digits
  if (lower.replace(/[\s\-().+/\\]|%20|%2b/g, '').includes(PHONE_DIGITS)) found.push(`phone ${PHONE_DIGITS}`);
  // URL-encoded address (mailto:%20…%40…)
  if (lower.includes(`${LOCAL}%40`)) found.push('url-encoded email');
  return found;
}

/** Lines of `text` that hold a PII value, shortened, for a readable failure. */
function piiLines(text: string): string[] {
  return text.split('\n').filter((l) => findPii(l).length > 0).map((l) => `${findPii(l).join(',')} :: ${l.slice(0, 1500)}`);
}

describe('erasure, audited: a whole-database dump, the log and the topics', () => {
  const names = kafkaNames('erasedump');
  let kafka: Kafka;
  let sf: SalesforceServer;
  let hs: HubSpotServer;
  let database: TestDatabase;
  let env: Record<string, string>;
  let app: RunningApp;
  let ingestApp: RunningApp | null = null;
  const logs: string[] = [];
  const log = createLogger('debug', {}, { write: (s: string) => void logs.push(s) });

  const config = (roles: string) => loadConfig({ NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug', DATABASE_URL: database.url, ...env, EARSHOT_ROLES: roles });
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  const gql = async <T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>) => {
    const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
    return (await res.json()) as { data: T; errors?: { message: string; extensions?: { code?: string } }[] };
  };
  /** an instance with the ingest role (consumer and relay) until `done` holds */
  const withIngest = async (what: string, done: () => Promise<boolean>, first: (ingest: RunningApp) => Promise<void> = async () => undefined) => {
    ingestApp = await startApp(config('ingest'), log);
    try {
      await first(ingestApp);
      await waitFor(what, done, 60_000);
    } finally {
      await ingestApp.stop();
      ingestApp = null;
    }
  };
  const unsent = async () => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`))[0]!.n;
  const dump = async () => (await execFileP('pg_dump', ['--data-only', '--no-owner', '--dbname', database.url], { maxBuffer: 512 * 1024 * 1024 })).stdout;

  beforeAll(async () => {
    kafka = testKafka();
    sf = new SalesforceServer();
    hs = new HubSpotServer();
    await Promise.all([sf.start(), hs.start()]);
    database = await createTestDatabase('erasedump');
    env = {
      ...kafkaEnv(names),
      ...crmEnv(sf, hs, { salesforce: 'Contact' }),
      EARSHOT_CRM_SYNC_INTERVAL_MS: '3600000',
      EARSHOT_CRM_WRITEBACK_POLL_MS: '3600000',
      EARSHOT_GAP_ESCALATION: 'off',
      EARSHOT_DEFAULT_PHONE_REGION: 'GB',
    };
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: names.topic, numPartitions: 3 }] });
    await admin.disconnect();
    app = await startApp(config('api,sync'), log);
    await app.services.crmSync.client('hubspot')!.setup();
  }, 120_000);

  afterAll(async () => {
    await ingestApp?.stop().catch(() => undefined);
    await app?.stop().catch(() => undefined);
    await database?.drop();
    await Promise.all([sf?.stop(), hs?.stop()]);
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin.disconnect();
  });

  it('leaves no value of the person in any table, in the log, or in what the topics publish from then on', async () => {
    const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
    const msg = (n: number, over: Record<string, unknown>) => ({
      eventId: `qvx-evt-${n}`, source: 'x', externalId: `qvx-ext-${n}`, occurredAt: at(100 - n), direction: 'inbound',
      author: { handle: P.x, displayName: `${P.first} ${P.last}` }, text: `My qvxword parcel ${n} is late. Terrible service.`, ...over,
    });
    // CRM: the person in Salesforce (with a relative sharing the address: a merge suggestion) and HubSpot
    const contact = sf.store.insert('Contact', { FirstName: P.first, LastName: P.last, Email: P.email, Phone: P.phone });
    const hsContact = hs.store.create('contacts', { email: P.email, firstname: P.first, lastname: P.last, phone: '020-7946-0958' });
    await syncUntilTaken(app as never, 'salesforce', String(contact.Id));
    await syncUntilTaken(app as never, 'hubspot', String(hsContact.id));

    // Kafka: valid messages carrying the address and number in the text, and a malformed one
    await produce(kafka, names.topic, [
      { key: P.x, value: JSON.stringify(msg(1, { author: { handle: P.x, email: P.email, phone: P.phone, displayName: P.first }, text: `Terrible. Write to ${P.email.toUpperCase()} or ring +44 20 7946 0958, qvxword` })) },
      { key: P.x, value: JSON.stringify(msg(2, { text: `Still late! mailto:${P.email} / 020-7946-0958 / (020) 7946 0958 qvxword` })) },
      { key: P.x, value: `{"source":"x","externalId":"qvx-ext-bad","author":{"email":"${P.email}"},"text":"broken qvxword` },
    ]);
    await withIngest('the Kafka messages stored and dead-lettered, the outbox drained', async () => {
      const [{ n }] = await q<{ n: number }>(`SELECT count(*)::int AS n FROM interaction WHERE external_id LIKE 'qvx-ext-%'`);
      if (n < 2) return false;
      const dlq = await readTopic(kafka, names.dlq).catch(() => [] as Received[]);
      return n >= 7 && dlq.length >= 1 && (await unsent()) === 0;
    }, async (ingest) => {
      // POST /ingest (the ingest role's): an Instagram message, an email, and a refused line carrying the address
      const res = await fetch(`${ingest.url}/ingest`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body: ndjson([
          msg(3, { source: 'instagram', author: { handle: P.ig, displayName: `${P.first} M.` }, text: `qvxword: DM me, or email ${P.email}. Awful.`, url: `https://instagram.com/${P.ig}` }),
          msg(4, { source: 'email', author: { email: P.email, displayName: `${P.first} ${P.last}` }, text: `Call me on 02079460958 please, my qvxword order is broken. Terrible.`, metadata: { subject: `From ${P.first}` } }),
          { ...msg(5, {}), source: 'myspace', author: { email: P.email }, text: `refused qvxword ${P.phone}` },
          // company replies that name the person only as their addressee: no message, so no customer
          msg(8, { source: 'email', direction: 'outbound', author: { handle: 'care@brand.example' }, text: `Dear ${P.first}, your qvxword refund is on its way.`, metadata: { recipientHandle: P.email } }),
          msg(9, { source: 'x', direction: 'outbound', author: { handle: 'brandcare' }, text: `@${P.x} so sorry about the qvxword parcel, we are on it.` }),
          msg(10, { source: 'sms', direction: 'outbound', author: { handle: 'brand' }, text: `Hi ${P.first}, qvxword update: shipped.`, metadata: { recipientHandle: '020 7946 0958' } }),
        ]),
      });
      expect(res.status).toBeLessThan(300);
    });

    // GraphQL: a message with the number in another spelling, and an invalid one carrying the address
    const g = await gql<{ ingestInteractions: { accepted: number; rejected: unknown[] } }>(
      'mutation($input: [InteractionInput!]!) { ingestInteractions(input: $input) { accepted rejected { line error } } }',
      { input: [
        { ...msg(6, { source: 'sms', author: { phone: '020 7946 0958' }, text: `qvxword text back +44 (0)20 7946 0958 — terrible` }), direction: 'INBOUND' },
        { ...msg(7, { source: 'myspace', author: { email: P.email }, text: `refused qvxword` }), direction: 'INBOUND' },
      ] },
    );
    expect(g.errors).toBeUndefined();
    expect(g.data.ingestInteractions.accepted).toBe(1);

    const [{ customer_id: cid }] = await q<{ customer_id: string }>(`SELECT coalesce(c.merged_into_id, c.id) AS customer_id FROM customer_identity ci JOIN customer c ON c.id = ci.customer_id WHERE ci.kind = 'email' AND ci.value = $1`, [P.email.toLowerCase()]);
    // a merge of the Instagram customer into the person, by hand (audited)
    const [{ customer_id: igId }] = await q<{ customer_id: string }>(`SELECT coalesce(c.merged_into_id, c.id) AS customer_id FROM customer_identity ci JOIN customer c ON c.id = ci.customer_id WHERE ci.kind = 'handle' AND ci.value LIKE $1`, [`%${P.ig}%`]);
    if (igId !== cid) {
      const m = await gql(`mutation($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "same person, ticket 77") { customers { id } } }`, { s: toGlobalId('Customer', cid), m: toGlobalId('Customer', igId) });
      expect(m.errors).toBeUndefined();
    }
    // a relative's Salesforce contact with the same address: a suggestion, never a merge
    const relative = sf.store.insert('Contact', { FirstName: 'Otherperson', LastName: 'Merrowind', Email: P.email });
    await syncUntilTaken(app as never, 'salesforce', String(relative.Id));

    // requests that carry the address where a log might quote it: a variable of the wrong type, a GET query string
    const bad = await gql(`query($id: ID!) { customer(id: $id) { id } }`, { id: { email: P.email } });
    expect(bad.errors).toBeDefined();
    await fetch(`${app.url}/graphql?query=${encodeURIComponent(`{ customers(first: 1, search: "${P.email}") { totalCount } }`)}&email=${encodeURIComponent(P.email)}`);

    // what the erasure has to find
    const seeded = async (sql: string) => (await q<{ n: number }>(sql))[0]!.n;
    expect(await seeded(`SELECT count(*)::int AS n FROM merge_suggestion`)).toBeGreaterThan(0);
    expect(await seeded(`SELECT count(*)::int AS n FROM merge_audit`)).toBeGreaterThan(0);
    expect(await seeded(`SELECT count(*)::int AS n FROM crm_writeback`)).toBeGreaterThan(0);
    expect(await seeded(`SELECT count(*)::int AS n FROM listening_item`)).toBeGreaterThan(0);
    expect(await unsent()).toBeGreaterThan(0);
    const before = piiLines(await dump());
    expect(before.length).toBeGreaterThan(10);

    const erased = await gql<{ eraseCustomer: { erasedNow: boolean; interactions: number } }>(
      `mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-9001") { erasedNow interactions customers } }`, { id: toGlobalId('Customer', cid) });
    expect(erased.errors).toBeUndefined();
    expect(erased.data.eraseCustomer.erasedNow).toBe(true);
    await waitFor('the CRM clean-up', async () => (await q<{ status: string }>(`SELECT status FROM erasure_request WHERE customer_id = $1`, [cid]))[0]?.status === 'done', 30_000);

    // the whole database, every table of every schema
    const after = piiLines(await dump());
    // the relative's own contact keeps the shared address: that record is another person's
    const leaks = after.filter((l) => !l.includes('Otherperson'));

    // the output topics: publish what is pending, then read them
    // (by partition and offset: readTopic's order across partitions is not stable)
    const seen = new Set<string>();
    // what was published before the erasure keeps the values (README: a producer cannot rewrite
    // it): the enriched events that name the person, each listed in the erasure event below
    const enrichedNaming: string[] = [];
    for (const t of names.all) {
      for (const r of await readTopic(kafka, t).catch(() => [] as Received[])) {
        seen.add(`${t}/${r.partition}/${r.offset}`);
        if (t === names.enriched && findPii(`${r.key ?? ''} ${r.value!.toString('utf8')}`).length) enrichedNaming.push((JSON.parse(r.value!.toString('utf8')) as { interactionId: string }).interactionId);
      }
    }
    expect(enrichedNaming.length).toBeGreaterThanOrEqual(4);
    await withIngest('the outbox drained after the erasure', async () => (await unsent()) === 0);
    const later: string[] = [];
    let tombstone = false;
    let erasureEvent: { interactionIds: string[] } | null = null;
    for (const t of names.all.filter((x) => x.startsWith(names.prefix))) {
      const all = await readTopic(kafka, t).catch(() => [] as Received[]);
      for (const r of all.filter((x) => !seen.has(`${t}/${x.partition}/${x.offset}`))) {
        const text = `${r.key ?? ''} ${r.value?.toString('utf8') ?? ''}`;
        // the relative's own summary (a customer CRM intake made) names the relative, another person
        if (findPii(text).length && !text.includes('Otherperson')) later.push(`${t}: ${findPii(text).join(',')} :: ${r.partition}/${r.offset} ${text.slice(0, 400)}`);
        if (t.endsWith('customer-erasure.v1')) erasureEvent = JSON.parse(r.value!.toString('utf8'));
      }
      if (t.endsWith('customer-sentiment.v1')) tombstone = all.filter((r) => r.key === cid).at(-1)?.value === null;
    }

    const logHits = piiLines(logs.join(''));
    expect({ leaks, logHits, later }).toEqual({ leaks: [], logHits: [], later: [] });
    expect(tombstone).toBe(true);
    expect(erasureEvent!.interactionIds.length).toBe(erased.data.eraseCustomer.interactions);
    expect(enrichedNaming.filter((id) => !erasureEvent!.interactionIds.includes(id))).toEqual([]);
    // the search of the log searched something: the service logged at debug all along
    expect(logs.length).toBeGreaterThan(20);
  }, 180_000);

  it('after an unmerge, an escalation event carrying the split-off customer’s text follows them: into their export, not the old root’s, and out of the outbox at their erasure', async () => {
    // The escalation names the root of the family at that time; an unmerge then moves the item's
    // customer out of it. The event, keyed by item and naming the old root, carries the text.
    const word = 'qvyunmergeword';
    const iso = (h: number) => new Date(Date.now() - h * 3_600_000).toISOString();
    const out = await app.services.ingest.ingestObjects([
      { eventId: 'qvy-1', source: 'email', externalId: 'qvy-1', occurredAt: iso(30), direction: 'inbound', author: { email: 'qvy.mover@example.org' }, text: `I was charged twice for my ${word} order and nobody answers. Not happy.` },
      { eventId: 'qvy-2', source: 'x', externalId: 'qvy-2', occurredAt: iso(1), direction: 'inbound', author: { handle: 'qvy_root' }, text: 'Where is my parcel?' },
    ], 'test');
    expect(out.rejected).toEqual([]);
    const idOf = async (ext: string) => (await q<{ customer_id: string }>(`SELECT customer_id FROM interaction WHERE external_id = $1`, [ext]))[0]!.customer_id;
    const [mover, root] = [await idOf('qvy-1'), await idOf('qvy-2')];
    const m = await gql(`mutation($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "looked alike") { customers { id } } }`, { s: toGlobalId('Customer', root), m: toGlobalId('Customer', mover) });
    expect(m.errors).toBeUndefined();
    expect((await app.services.escalation.runOnce()).escalated).toBeGreaterThanOrEqual(1);
    const [{ n: held }] = await q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox_batch WHERE messages::text LIKE '%' || $1 || '%'`, [word]);
    expect(held).toBe(1);
    const u = await gql(`mutation($c: ID!) { unmergeCustomer(customerId: $c) { customers { id } } }`, { c: toGlobalId('Customer', mover) });
    expect(u.errors).toBeUndefined();
    expect(await idOf('qvy-1')).toBe(mover);
    // an access request: the root's export holds nothing of the customer unmerged from it, whose own export holds the event
    const exportOf = async (id: string) => {
      const r = await gql<{ customerDataExport: { pendingOutbox: unknown[] } }>(`query($id: ID!) { customerDataExport(id: $id) }`, { id: toGlobalId('Customer', id) });
      expect(r.errors).toBeUndefined();
      return r.data.customerDataExport;
    };
    expect(JSON.stringify(await exportOf(root))).not.toContain(word);
    expect(JSON.stringify((await exportOf(mover)).pendingOutbox)).toContain(word);

    const e = await gql(`mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-9002") { erasedNow } }`, { id: toGlobalId('Customer', mover) });
    expect(e.errors).toBeUndefined();
    const hits = (await dump()).split('\n').filter((l) => l.toLowerCase().includes(word) || l.includes('qvy.mover'));
    expect(hits.map((l) => l.slice(0, 300))).toEqual([]);
  }, 120_000);

  it('refuses a reason that holds an email address: the audit row outlives the person', async () => {
    const out = await app.services.ingest.ingestObjects([{ eventId: 'qvr-1', source: 'email', externalId: 'qvr-1', occurredAt: new Date().toISOString(), direction: 'inbound', author: { email: 'qvr.reason@example.org' }, text: 'Delete me please.' }], 'test');
    expect(out.rejected).toEqual([]);
    const [{ customer_id: id }] = await q<{ customer_id: string }>(`SELECT customer_id FROM interaction WHERE external_id = 'qvr-1'`);
    const erase = (reason: string) => gql<{ eraseCustomer: { erasedNow: boolean } }>(`mutation($id: ID!, $r: String!) { eraseCustomer(id: $id, reason: $r) { erasedNow } }`, { id: toGlobalId('Customer', id!), r: reason });
    for (const reason of ['DSR-12 as qvr.reason@example.org asked', 'mailto:QVR.REASON@EXAMPLE.ORG']) {
      const r = await erase(reason);
      expect(r.errors?.[0]?.extensions?.code, reason).toBe('BAD_USER_INPUT');
    }
    expect(await q(`SELECT count(*)::int AS n FROM erasure_request WHERE customer_id = $1`, [id])).toEqual([{ n: 0 }]);
    expect((await erase('DSR-12 (ticket 4471)')).data.eraseCustomer.erasedNow).toBe(true);
    expect((await dump()).toLowerCase()).not.toContain('qvr.reason');
  }, 60_000);
});

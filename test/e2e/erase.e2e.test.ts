import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HubSpotServer } from '../crm-servers/hubspot/server';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { crmEnv as crmSettings } from '../support/crm-env';
import { startTestApp } from '../support/app';
import { runEarshot } from '../support/earshot-process';
import { grepDatabase, recordMentions } from '../support/pii-grep';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

// `earshot erase` as an operator runs it: the compiled CLI against real PostgreSQL and the local
// Salesforce and HubSpot servers (it clears the sentiment fields Earshot wrote there). Each test
// seeds its own database and CRMs through the production pipeline (ingest, CRM sync, write-back),
// stops that service, then runs the command.

const PERSON = {
  email: 'ottilie.brandvold@example.org',
  phone: '+1 415 555 0188',
  handle: 'obrandvold_9',
  first: 'Ottilie',
  last: 'Brandvold',
};
// every value seeded for the person: as sent, as stored (E.164), a word only their texts carry, their external ids
const SEEDED = [PERSON.email, '+14155550188', PERSON.phone, PERSON.handle, PERSON.first, PERSON.last, 'Quaxifer', 'obx-'];
const BYSTANDER = ['bystander.cli@example.org', 'Gorptastic'];

const HOUR = 3_600_000;
const message = (n: number, over: Record<string, unknown> = {}) => ({
  eventId: `obx-evt-${n}`,
  source: 'x',
  externalId: `obx-${n}`,
  url: `https://x.com/${PERSON.handle}/status/${2000 + n}`,
  occurredAt: new Date(Date.now() - (n + 1) * HOUR).toISOString(),
  direction: 'inbound',
  author: { handle: PERSON.handle, displayName: `${PERSON.first} ${PERSON.last}`, email: PERSON.email, phone: PERSON.phone },
  text: `My Quaxifer order ${n} never arrived and nobody answers. Terrible.`,
  metadata: { location: `${PERSON.last} Road` },
  ...over,
});

/** One summary line: the audit record as JSON, plus erasedNow. */
interface Summary {
  erasedNow: boolean;
  id: string;
  customerId: string;
  erasedCustomerIds: string[];
  reason: string;
  requestedBy: string;
  interactions: number;
  identities: number;
  crmRecords: number;
  listeningItemsClosed: number;
  status: string;
  crmError: string | null;
}

function summaryOf(stdout: string): Summary {
  const lines = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const summaries = lines.filter((l) => 'erasedNow' in l);
  expect(summaries, stdout).toHaveLength(1);
  return summaries[0] as unknown as Summary;
}

describe('earshot erase (compiled CLI)', () => {
  let sf: SalesforceServer;
  let hs: HubSpotServer;
  let database: TestDatabase | null = null;
  let pg: Client | null = null;
  let crmEnv: Record<string, string>;

  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await pg!.query(sql, params)).rows as T[];
  const cli = (args: string[]) => runEarshot(['erase', ...args], { DATABASE_URL: database!.url, ...crmEnv });

  beforeEach(async () => {
    sf = new SalesforceServer();
    hs = new HubSpotServer();
    await Promise.all([sf.start(), hs.start()]);
    crmEnv = crmSettings(sf, hs);
  });

  afterEach(async () => {
    await pg?.end();
    pg = null;
    await database?.drop();
    database = null;
    await Promise.all([sf?.stop(), hs?.stop()]);
  });

  /**
   * The person (and a bystander) in both CRMs and in Earshot, with sentiment written back onto
   * both CRM records; the service is stopped afterwards, as for a maintenance command.
   */
  async function seed(): Promise<{ customerId: string; sfContactId: string; hsContactId: string }> {
    const contact = sf.store.insert('Contact', { FirstName: PERSON.first, LastName: PERSON.last, Email: PERSON.email, Phone: PERSON.phone });
    const hsContact = hs.store.create('contacts', { email: PERSON.email, firstname: PERSON.first, lastname: PERSON.last });
    sf.store.insert('Contact', { FirstName: 'Bystander', LastName: 'Gorptastic', Email: BYSTANDER[0] });
    const app = await startTestApp({ ...crmEnv, EARSHOT_ROLES: 'api', EARSHOT_GAP_ESCALATION: 'off' }, 'erasecli');
    database = app.database;
    try {
      await app.services.crmSync.client('hubspot')!.setup();
      await app.services.crmSync.run('salesforce');
      await app.services.crmSync.run('hubspot');
      const r = await app.services.ingest.ingestObjects(
        [
          message(1),
          message(2),
          message(3, { source: 'email', url: null, author: { email: PERSON.email, displayName: `${PERSON.first} ${PERSON.last}` } }),
          { source: 'email', externalId: 'by-1', occurredAt: new Date(Date.now() - HOUR).toISOString(), direction: 'inbound', author: { email: BYSTANDER[0], displayName: 'Bystander' }, text: 'The Gorptastic delivery was fine, thanks.' },
        ],
        'test',
      );
      expect(r.rejected).toEqual([]);
      await app.services.crmWriteback.runOnce();
      expect(sf.store.find('Contact', contact.Id)!.Earshot_Sentiment_Label__c).toBeTruthy();
      expect(hs.store.get('contacts', hsContact.id)!.properties.earshot_sentiment_label).toBeTruthy();
      const [{ customer_id }] = (await app.db.ds.query(`SELECT customer_id FROM customer_identity WHERE kind = 'email' AND value = $1`, [PERSON.email])) as { customer_id: string }[];
      return { customerId: customer_id!, sfContactId: contact.Id, hsContactId: hsContact.id };
    } finally {
      await app.stop();
      pg = new Client({ connectionString: database.url });
      await pg.connect();
    }
  }

  const selectors: [string, (customerId: string) => string[]][] = [
    ['--email (in another case)', () => ['--email', PERSON.email.toUpperCase()]],
    ['--phone (in another format)', () => ['--phone', '(415) 555-0188']],
    ['--handle network:handle', () => ['--handle', `x:${PERSON.handle}`]],
    // a UUID in upper case is the same id (.NET, a spreadsheet); the erasure compares ids as the database prints them
    ['--id (in upper case)', (id) => ['--id', id.toUpperCase()]],
  ];

  it.each(selectors)('erases the customer named by %s everywhere, prints the audit record, and a second run changes nothing', async (_, args) => {
    const { customerId, sfContactId, hsContactId } = await seed();
    const before = await grepDatabase(q, SEEDED);
    expect(before.hits.length).toBeGreaterThan(10);

    const first = await cli([...args(customerId), '--reason', 'DSR-77']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toBe('');
    const summary = summaryOf(first.stdout);
    expect(summary).toMatchObject({
      erasedNow: true,
      customerId,
      erasedCustomerIds: [customerId],
      reason: 'DSR-77',
      requestedBy: expect.stringMatching(/^cli:/),
      interactions: 3,
      crmRecords: 2,
      status: 'done',
      crmError: null,
    });
    expect(summary.identities).toBeGreaterThanOrEqual(4);
    // the printed record holds no personal data either
    expect(recordMentions(summary, SEEDED)).toEqual([]);

    // No table holds a seeded value; the bystander's values are still found (the search works).
    expect((await grepDatabase(q, SEEDED)).hits).toEqual([]);
    expect((await grepDatabase(q, BYSTANDER)).hits.length).toBeGreaterThan(0);
    // scores and counts stay; what must leave waits in the outbox
    expect(await q(`SELECT count(*)::int AS n FROM interaction WHERE redacted_at IS NOT NULL AND sentiment_label IS NOT NULL`)).toEqual([{ n: 3 }]);
    expect((await q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'customer-erasure.v1' AND sent_at IS NULL`))[0]!.n).toBe(1);
    // CRMs: the fields Earshot wrote are empty; the records themselves are the CRM owner's
    const sfc = sf.store.find('Contact', sfContactId)!;
    for (const f of ['Earshot_Sentiment_Score__c', 'Earshot_Sentiment_Label__c', 'Earshot_Sentiment_Trend__c', 'Earshot_Last_Interaction__c', 'Earshot_Url__c']) expect(sfc[f] ?? null, f).toBeNull();
    const hsp = hs.store.get('contacts', hsContactId)!.properties;
    for (const p of ['earshot_sentiment_score', 'earshot_sentiment_label', 'earshot_url']) expect(hsp[p] ?? '', p).toBe('');

    // Idempotent: the same command again finds nobody by that email, phone or handle (they are
    // gone), and by id returns the first audit record; either way nothing changes.
    const again = await cli([...args(customerId), '--reason', 'DSR-77']);
    if (args(customerId)[0] === '--id') {
      expect(again.code, again.stderr).toBe(0);
      expect(summaryOf(again.stdout)).toMatchObject({ erasedNow: false, id: summary.id, status: 'done' });
    } else {
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/^earshot: NOT_FOUND: customer with that (email|phone|handle) not found\n$/);
    }
    const byId = await cli(['--id', customerId, '--reason', 'DSR-77']);
    expect(byId.code, byId.stderr).toBe(0);
    expect(summaryOf(byId.stdout)).toMatchObject({ erasedNow: false, id: summary.id, interactions: 3, status: 'done' });
    expect(await q(`SELECT id, reason, status FROM erasure_request`)).toEqual([{ id: summary.id, reason: 'DSR-77', status: 'done' }]);
    expect((await grepDatabase(q, SEEDED)).hits).toEqual([]);
  }, 180_000);

  it('says NOT_FOUND (exit 1) for an unknown customer, and what is missing (exit 2) without a selector or a reason', async () => {
    database = await createTestDatabase('erasecli');
    pg = new Client({ connectionString: database.url });
    await pg.connect();
    for (const args of [['--email', 'nobody@example.org'], ['--phone', '+1 212 555 0100'], ['--handle', 'x:nobody_here'], ['--id', randomUUID()]]) {
      const r = await cli([...args, '--reason', 'DSR-78']);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(/^earshot: NOT_FOUND: customer [^\n]*\n$/);
      expect(r.stdout).not.toContain('erasedNow');
    }
    expect(await q(`SELECT count(*)::int AS n FROM erasure_request`)).toEqual([{ n: 0 }]);

    const usage = [
      [['--reason', 'DSR-78'], 'erase needs exactly one of --email, --phone, --handle, --id'],
      [['--email', 'a@example.org', '--phone', '+1 212 555 0100', '--reason', 'DSR-78'], 'erase needs exactly one of --email, --phone, --handle, --id'],
      [['--email', 'a@example.org'], 'erase needs --reason'],
      [['--handle', 'nobody_here', '--reason', 'DSR-78'], 'a handle is written network:handle'],
    ] as const;
    for (const [args, said] of usage) {
      const r = await cli([...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(said);
      expect(r.stderr).toContain('Run `earshot help`');
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  }, 120_000);
});

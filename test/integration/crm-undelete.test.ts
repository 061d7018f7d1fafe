import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CrmPerson } from '../../src/crm/crm.port';
import { toGlobalId } from '../../src/graphql/relay';
import { ManualClock } from '../../src/shared/clock';
import type { HubSpotServer } from '../crm-servers/hubspot/server';
import type { SalesforceServer } from '../crm-servers/salesforce/server';
import type { TestApp } from '../support/app';
import { startWithBothCrms, type WithBothCrms } from '../support/crm-app';

// A person record deleted in the CRM and then brought back: a Salesforce Contact or Lead undeleted
// from the recycle bin, a HubSpot contact restored (both keep their id and field values, and the
// CRM moves the record's modification time). Earshot learns of the deletion from getDeleted or the
// archived list, and of the return from the next incremental read. After each step the test reads
// what a user sees: the customer, its identities, its CRM records (deep links) and the values on
// the CRM record. One app and both local CRMs for the file; each test has its own people.

let sf: SalesforceServer;
let hs: HubSpotServer;
let app: TestApp;
let round = 0;

const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];

/** One inbound message from `email`, `minutesAgo` minutes ago; returns its external id. */
async function speak(email: string, tone: 'negative' | 'positive', minutesAgo: number): Promise<string> {
  const id = `undelete-${++round}`;
  const text = tone === 'negative' ? 'My parcel is late again and nobody answers. Terrible service, I want a refund.' : 'Thank you, the support team was great and fixed it fast!';
  const r = await app.services.ingest.ingestObjects(
    [{ eventId: id, source: 'email', externalId: id, occurredAt: new Date(Date.now() - minutesAgo * 60_000).toISOString(), direction: 'inbound', author: { displayName: email.split('@')[0], email }, text }],
    'test',
  );
  expect(r.rejected).toHaveLength(0);
  return id;
}

async function customerOf(interactionId: string): Promise<string> {
  const [r] = await q<{ id: string }>(`SELECT customer_id AS id FROM interaction WHERE external_id = $1`, [interactionId]);
  return r!.id;
}

async function record(system: string, externalId: string) {
  const rows = await q<{ customer_id: string; deleted_at: Date | null }>(`SELECT customer_id, deleted_at FROM crm_record WHERE system = $1 AND external_id = $2`, [system, externalId]);
  expect(rows).toHaveLength(1);
  return rows[0]!;
}

/** What the customer page shows: the root customer's CRM records and identities. */
async function page(customerId: string) {
  const res = await app.gql<{ customer: { id: string; crmRecords: { system: string; externalId: string }[]; identities: { kind: string; value: string | null }[] } | null }>(
    `query($id: ID!) { customer(id: $id) { id crmRecords { system externalId } identities { kind value } } }`,
    { id: toGlobalId('Customer', customerId) },
  );
  expect(res.errors).toBeUndefined();
  return res.data.customer!;
}

async function customers(): Promise<number> {
  return Number((await q<{ n: string }>(`SELECT count(*) AS n FROM customer WHERE merged_into_id IS NULL`))[0]!.n);
}

/** A second ago: getDeleted answers in whole seconds (the sync looks a minute back anyway). */
const justNow = () => Date.now() - 1_000;

let crms: WithBothCrms | undefined;
beforeAll(async () => {
  crms = await startWithBothCrms('crmundel', { clock: new ManualClock(), objects: { salesforce: 'Contact,Lead' } });
  ({ sf, hs, app } = crms);
}, 120_000);

afterAll(() => crms?.close());

describe('a CRM record deleted and then brought back', () => {
  it.each(['Contact', 'Lead'] as const)('Salesforce %s undeleted from the recycle bin: the same customer holds it again and it shows what changed meanwhile', async (objectType) => {
    const email = `undelete.${objectType.toLowerCase()}@example.com`;
    // created now, as Salesforce stamps it: past the cursor whichever test ran before (CI shuffles
    // the tests; one back-dated a day fell behind the cursor an earlier test had moved to now)
    const rec = sf.store.insert(objectType, { FirstName: 'Ines', LastName: `Undelete${objectType}`, Email: email, ...(objectType === 'Lead' ? { Company: 'Recycle Bin Ltd' } : {}) });
    const first = await speak(email, 'positive', 30);
    await app.services.crmSync.run('salesforce');
    const customer = await customerOf(first);
    expect(await record('salesforce', rec.Id)).toMatchObject({ customer_id: customer, deleted_at: null });
    await app.services.crmWriteback.runOnce();
    expect(sf.store.find(objectType, rec.Id)!.Earshot_Sentiment_Label__c).toBe('positive');
    const before = await customers();

    // deleted in Salesforce: gone from the customer's CRM records, nothing written to it
    sf.store.delete(objectType, rec.Id, justNow());
    await app.services.crmSync.run('salesforce');
    expect((await record('salesforce', rec.Id)).deleted_at).not.toBeNull();
    expect((await page(customer)).crmRecords).toEqual([]);

    // the person complains while the record is in the recycle bin
    const second = await speak(email, 'negative', 1);
    expect(await customerOf(second)).toBe(customer);
    await app.services.crmWriteback.runOnce();

    // undeleted: live again, on the same customer, no customer made for it
    sf.store.undelete(objectType, rec.Id);
    await app.services.crmSync.run('salesforce');
    expect(await record('salesforce', rec.Id)).toMatchObject({ customer_id: customer, deleted_at: null });
    expect(await customers()).toBe(before);
    const shown = await page(customer);
    expect(shown.crmRecords).toEqual([{ system: 'SALESFORCE', externalId: rec.Id }]);
    expect(shown.identities.filter((i) => i.kind === 'EMAIL').map((i) => i.value)).toEqual([email]);

    // and the record shows the customer as Earshot sees it now, not as it was when deleted
    await app.services.crmWriteback.runOnce();
    const [c] = await q<{ label: string; at: Date }>(`SELECT sentiment_label AS label, last_interaction_at AS at FROM customer WHERE id = $1`, [customer]);
    const back = sf.store.find(objectType, rec.Id)!;
    expect(back.Earshot_Last_Interaction__c).toBe(c!.at.getTime());
    expect(back.Earshot_Sentiment_Label__c).toBe(c!.label);
    expect(back.Earshot_Open_Complaints__c).toBe(1);
  });

  it('HubSpot contact restored from the recycle bin: the same customer holds it again and it shows what changed meanwhile', async () => {
    const email = 'restored.contact@example.com';
    // created now, as HubSpot stamps it: past the cursor whichever test ran before
    const obj = hs.store.create('contacts', { email, firstname: 'Rosa', lastname: 'Restored' });
    const first = await speak(email, 'positive', 30);
    await app.services.crmSync.run('hubspot');
    const customer = await customerOf(first);
    expect(await record('hubspot', obj.id)).toMatchObject({ customer_id: customer, deleted_at: null });
    await app.services.crmWriteback.runOnce();
    expect(hs.store.get('contacts', obj.id)!.properties.earshot_sentiment_label).toBe('positive');
    const before = await customers();

    hs.store.archive('contacts', obj);
    await app.services.crmSync.run('hubspot');
    expect((await record('hubspot', obj.id)).deleted_at).not.toBeNull();
    expect((await page(customer)).crmRecords).toEqual([]);

    const second = await speak(email, 'negative', 1);
    expect(await customerOf(second)).toBe(customer);
    await app.services.crmWriteback.runOnce();

    hs.store.restore('contacts', obj);
    await app.services.crmSync.run('hubspot');
    expect(await record('hubspot', obj.id)).toMatchObject({ customer_id: customer, deleted_at: null });
    expect(await customers()).toBe(before);
    expect((await page(customer)).crmRecords).toEqual([{ system: 'HUBSPOT', externalId: obj.id }]);

    await app.services.crmWriteback.runOnce();
    const [c] = await q<{ label: string; at: Date }>(`SELECT sentiment_label AS label, last_interaction_at AS at FROM customer WHERE id = $1`, [customer]);
    const props = hs.store.get('contacts', obj.id)!.properties;
    expect(props.earshot_sentiment_label).toBe(c!.label);
    expect(props.earshot_open_complaints).toBe('1');
    expect(Date.parse(props.earshot_last_interaction!)).toBe(c!.at.getTime());
  });

  it('the intake that brings a record back queues its customer in its own transaction: a sync ended right after it leaves nothing stale', async () => {
    const email = 'undelete.crash@example.com';
    // modified now: past the Contact cursor whichever test ran before
    const rec = sf.store.insert('Contact', { FirstName: 'Cara', LastName: 'Crash', Email: email });
    const first = await speak(email, 'positive', 30);
    await app.services.crmSync.run('salesforce');
    const customer = await customerOf(first);
    expect(await record('salesforce', rec.Id)).toMatchObject({ customer_id: customer, deleted_at: null });
    await app.services.crmWriteback.runOnce();
    sf.store.delete('Contact', rec.Id, justNow());
    await app.services.crmSync.run('salesforce');
    await speak(email, 'negative', 1);
    await app.services.crmWriteback.runOnce();
    expect(await q(`SELECT 1 FROM crm_writeback WHERE customer_id = $1`, [customer])).toEqual([]);

    // the undelete as the sync hands it to the intake, and then the process ends: no step after it runs
    sf.store.undelete('Contact', rec.Id);
    // the record as the sync read it before (payload and person as stored), live again
    const [stored] = await q<{ payload: Record<string, unknown>; person: CrmPerson }>(`SELECT payload, person FROM crm_record WHERE system = $1 AND external_id = $2`, ['salesforce', rec.Id]);
    const result = await app.services.identity.ingestCrmRecords('salesforce', 'Contact', [
      { externalId: rec.Id, modstamp: new Date(), payload: stored!.payload, person: stored!.person, identities: [{ kind: 'email', value: email }] },
    ]);
    expect(result.created).toBe(0);
    expect(await record('salesforce', rec.Id)).toMatchObject({ customer_id: customer, deleted_at: null });
    // before: queued only by the sync's next statement, so nothing was queued here
    expect(await q(`SELECT 1 FROM crm_writeback WHERE customer_id = $1`, [customer])).toHaveLength(1);
    await app.services.crmWriteback.runOnce();
    expect(sf.store.find('Contact', rec.Id)!.Earshot_Open_Complaints__c).toBe(1);
  });
});

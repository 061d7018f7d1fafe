import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toGlobalId } from '../../src/graphql/relay';
import { ManualClock } from '../../src/shared/clock';
import type { HubSpotServer } from '../crm-servers/hubspot/server';
import type { SalesforceServer } from '../crm-servers/salesforce/server';
import type { TestApp } from '../support/app';
import { startWithBothCrms, type WithBothCrms } from '../support/crm-app';

// Duplicates merged in the CRM by a sales admin (Salesforce: the loser deleted with MasterRecordId
// set; HubSpot: the secondary's id an alias of the primary, listed in its hs_merged_object_ids),
// against the local servers. Earshot held one customer per duplicate; after the next sync it holds
// one, audited as a CRM merge and undoable, and writes back onto the master only.

const DAY_MS = 86_400_000;
let sf: SalesforceServer;
let hs: HubSpotServer;
let app: TestApp;
let clock: ManualClock;
let round = 0;

const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];

/** One inbound message from `email`, `minutesAgo` minutes ago; returns its external id. */
async function speak(email: string, tone: 'negative' | 'positive', minutesAgo: number): Promise<string> {
  const id = `merge-${++round}`;
  const text = tone === 'negative' ? 'My parcel is late again and nobody answers. Terrible service, I want a refund.' : 'Thank you, the support team was great and fixed it fast!';
  const r = await app.services.ingest.ingestObjects(
    [{ eventId: id, source: 'email', externalId: id, occurredAt: new Date(Date.now() - minutesAgo * 60_000).toISOString(), direction: 'inbound', author: { displayName: email.split('@')[0], email }, text }],
    'test',
  );
  expect(r.rejected).toHaveLength(0);
  return id;
}

/** The (root) customer of each interaction. */
async function customersOf(interactionIds: string[]): Promise<string[]> {
  const rows = await q<{ id: string }>(`SELECT DISTINCT customer_id AS id FROM interaction WHERE external_id = ANY($1::text[])`, [interactionIds]);
  return rows.map((r) => r.id);
}

async function record(system: string, externalId: string) {
  const [r] = await q<{ customer_id: string; deleted_at: Date | null; written_at: Date | null; writeback_error: string | null; payload: Record<string, unknown> }>(
    `SELECT customer_id, deleted_at, written_at, writeback_error, payload FROM crm_record WHERE system = $1 AND external_id = $2`,
    [system, externalId],
  );
  return r!;
}

/** The record of a merged-away CRM id, checked to be deleted with the id it was merged into. */
async function mergedAway(system: string, externalId: string, into: string) {
  const r = await record(system, externalId);
  expect(r.deleted_at).not.toBeNull();
  expect(r.payload.mergedInto).toBe(into);
  return r;
}

async function lastInteraction(customerId: string): Promise<Date> {
  const [r] = await q<{ at: Date }>(`SELECT last_interaction_at AS at FROM customer WHERE id = $1`, [customerId]);
  return r!.at;
}

/**
 * When the admin merges: a second ago, as getDeleted answers in whole seconds (a deletion this very
 * second comes next run; the sync looks a minute back anyway).
 */
const mergedAt = () => Date.now() - 1_000;

let crms: WithBothCrms | undefined;
beforeEach(async () => {
  clock = new ManualClock();
  crms = await startWithBothCrms('crmmerge', { clock });
  ({ sf, hs, app } = crms);
}, 120_000);

afterEach(() => crms?.close());

describe('duplicates merged in the CRM', () => {
  it('Salesforce: the loser is marked merged, its customer joins the master’s, and only the master is written', async () => {
    const at = Date.now() - DAY_MS;
    const master = sf.store.insert('Contact', { FirstName: 'Pat', LastName: 'Lindqvist', Email: 'pat.lindqvist@example.com' }, at);
    const loser = sf.store.insert('Contact', { FirstName: 'Patricia', LastName: 'Lindqvist', Email: 'plindqvist@home.example.org' }, at + 1);
    const m1 = await speak('pat.lindqvist@example.com', 'positive', 60);
    const l1 = await speak('plindqvist@home.example.org', 'negative', 50);
    await app.services.crmSync.run('salesforce');
    const before = await customersOf([m1, l1]);
    expect(before).toHaveLength(2);
    await app.services.crmWriteback.runOnce();
    const loserWrittenAt = (await record('salesforce', loser.Id)).written_at;
    expect(loserWrittenAt).not.toBeNull();

    sf.store.merge('Contact', master.Id, [loser.Id], {}, mergedAt());
    await app.services.crmSync.run('salesforce');

    // one customer, holding both people's interactions, the master's record
    const masterCustomer = (await record('salesforce', master.Id)).customer_id;
    expect(await customersOf([m1, l1])).toEqual([masterCustomer]);
    await mergedAway('salesforce', loser.Id, master.Id);
    const [audit] = await q<{ id: string; actor: string; reason: string; survivor_id: string }>(`SELECT id, actor, reason, survivor_id FROM merge_audit WHERE action = 'merge' AND actor = 'rule:crm-merge'`);
    expect(audit?.survivor_id).toBe(masterCustomer);
    expect(audit?.reason).toContain(`merged Contact ${loser.Id} into ${master.Id}`);

    // the loser's address speaks again: the master shows it; nothing is aimed at the loser
    const l2 = await speak('plindqvist@home.example.org', 'negative', 1);
    expect(await customersOf([l2])).toEqual([masterCustomer]);
    const r = await app.services.crmWriteback.runOnce();
    expect(r.failed).toBe(0);
    const shown = sf.store.find('Contact', master.Id)!;
    expect(shown.Earshot_Last_Interaction__c).toBe((await lastInteraction(masterCustomer)).getTime());
    expect(shown.Earshot_Url__c).toBe(`http://localhost:4000/customers/${masterCustomer}`);
    const after = await record('salesforce', loser.Id);
    expect(after.writeback_error).toBeNull();
    expect(after.written_at).toEqual(loserWrittenAt);

    // undone like any merge: two customers again, and the next sync does not merge them back
    await app.services.identity.unmerge({ auditId: audit!.id }, 'test');
    expect(await customersOf([m1, l1])).toHaveLength(2);
    await app.services.crmSync.run('salesforce');
    expect(await customersOf([m1, l1])).toHaveLength(2);
  }, 60_000);

  it('HubSpot: the secondary becomes part of the primary’s customer and is never written again', async () => {
    const at = Date.now() - DAY_MS;
    const primary = hs.store.create('contacts', { email: 'sam.okafor@example.com', firstname: 'Sam', lastname: 'Okafor' }, at);
    const secondary = hs.store.create('contacts', { email: 'sokafor@home.example.org', firstname: 'Samuel', lastname: 'Okafor' }, at + 1);
    const p1 = await speak('sam.okafor@example.com', 'positive', 60);
    const s1 = await speak('sokafor@home.example.org', 'negative', 50);
    await app.services.crmSync.run('hubspot');
    expect(await customersOf([p1, s1])).toHaveLength(2);
    await app.services.crmWriteback.runOnce();

    hs.store.merge('contacts', primary.id, secondary.id);
    await app.services.crmSync.run('hubspot');

    const primaryCustomer = (await record('hubspot', primary.id)).customer_id;
    expect(await customersOf([p1, s1])).toEqual([primaryCustomer]);
    const gone = await mergedAway('hubspot', secondary.id, primary.id);
    const [audit] = await q<{ survivor_id: string }>(`SELECT survivor_id FROM merge_audit WHERE action = 'merge' AND actor = 'rule:crm-merge'`);
    expect(audit?.survivor_id).toBe(primaryCustomer);

    // the secondary's address speaks: a write aimed at its id would land on the primary with
    // another customer's values; the primary shows the merged customer
    const secondaryWrittenAt = gone.written_at;
    expect(secondaryWrittenAt).not.toBeNull();
    const s2 = await speak('sokafor@home.example.org', 'negative', 1);
    await app.services.crmWriteback.runOnce();
    const shown = hs.store.get('contacts', primary.id)!;
    expect(shown.properties.earshot_url).toBe(`http://localhost:4000/customers/${primaryCustomer}`);
    expect(shown.properties.earshot_last_interaction).toBe((await lastInteraction(primaryCustomer)).toISOString());
    expect(await customersOf([s2])).toEqual([primaryCustomer]);
    expect((await record('hubspot', secondary.id)).written_at).toEqual(secondaryWrittenAt);

    // a later change of the primary (hs_merged_object_ids still lists the secondary) changes nothing
    hs.store.update('contacts', hs.store.get('contacts', primary.id)!, { firstname: 'Sammy' });
    await app.services.crmSync.run('hubspot');
    expect(await q(`SELECT id FROM merge_audit WHERE actor = 'rule:crm-merge'`)).toHaveLength(1);
    expect(await customersOf([p1, s1, s2])).toEqual([primaryCustomer]);
  }, 60_000);

  it('records already of one customer: only the loser’s record changes', async () => {
    const at = Date.now() - DAY_MS;
    const master = sf.store.insert('Contact', { FirstName: 'Ana', LastName: 'Moreau', Email: 'ana.moreau@example.com' }, at);
    const loser = sf.store.insert('Contact', { FirstName: 'Ana', LastName: 'Moreau', Email: 'amoreau@home.example.org' }, at + 1);
    const a1 = await speak('ana.moreau@example.com', 'positive', 60);
    const a2 = await speak('amoreau@home.example.org', 'positive', 50);
    await app.services.crmSync.run('salesforce');
    const [x, y] = [(await record('salesforce', master.Id)).customer_id, (await record('salesforce', loser.Id)).customer_id];
    if (x !== y) await app.services.identity.merge(x, y, { actor: 'test', reason: 'one person' });
    const [one] = await customersOf([a1, a2]);
    const audits = (await q(`SELECT id FROM merge_audit`)).length;

    sf.store.merge('Contact', master.Id, [loser.Id], {}, mergedAt());
    await app.services.crmSync.run('salesforce');

    expect(await customersOf([a1, a2])).toEqual([one]);
    await mergedAway('salesforce', loser.Id, master.Id);
    expect(await q(`SELECT id FROM merge_audit`)).toHaveLength(audits);
  }, 60_000);
  it('HubSpot: a primary archived after the merge, before Earshot synced, still takes the secondary out of the live records', async () => {
    // The admin merges two duplicates and then deletes the merged contact (a deletion request):
    // HubSpot lists the primary as archived only, its hs_merged_object_ids naming the secondary,
    // whose id is an alias of an archived record. Before, the archived list's merges were not
    // read: the secondary stayed a live record of its own customer, written back to for ever.
    const at = Date.now() - DAY_MS;
    const primary = hs.store.create('contacts', { email: 'lee.varga@example.com', firstname: 'Lee', lastname: 'Varga' }, at);
    const secondary = hs.store.create('contacts', { email: 'lvarga@home.example.org', firstname: 'Lee', lastname: 'Varga' }, at + 1);
    const p1 = await speak('lee.varga@example.com', 'positive', 60);
    const s1 = await speak('lvarga@home.example.org', 'negative', 50);
    await app.services.crmSync.run('hubspot');
    expect(await customersOf([p1, s1])).toHaveLength(2);
    await app.services.crmWriteback.runOnce();
    const secondaryWrittenAt = (await record('hubspot', secondary.id)).written_at;
    expect(secondaryWrittenAt).not.toBeNull();

    hs.store.merge('contacts', primary.id, secondary.id);
    hs.store.archive('contacts', hs.store.get('contacts', primary.id)!);
    await app.services.crmSync.run('hubspot');

    expect((await record('hubspot', primary.id)).deleted_at).not.toBeNull();
    await mergedAway('hubspot', secondary.id, primary.id);
    // the CRM said they were one person: one customer, as when the primary lives on
    const primaryCustomer = (await record('hubspot', primary.id)).customer_id;
    expect(await customersOf([p1, s1])).toEqual([primaryCustomer]);
    // the secondary's address speaks: nothing is aimed at its id any more
    await speak('lvarga@home.example.org', 'negative', 1);
    const r = await app.services.crmWriteback.runOnce();
    expect(r.failed).toBe(0);
    const after = await record('hubspot', secondary.id);
    expect(after.written_at).toEqual(secondaryWrittenAt);
    expect(after.writeback_error).toBeNull();
  }, 60_000);

  it('HubSpot: a primary Earshot never saw, archived after the merge, still takes the secondary out of the live records', async () => {
    const at = Date.now() - DAY_MS;
    const secondary = hs.store.create('contacts', { email: 'rin.sato@home.example.org', firstname: 'Rin', lastname: 'Sato' }, at);
    const s1 = await speak('rin.sato@home.example.org', 'negative', 50);
    await app.services.crmSync.run('hubspot');
    const [customer] = await customersOf([s1]);
    expect((await record('hubspot', secondary.id)).customer_id).toBe(customer);

    // created, merged into and deleted between two syncs
    const primary = hs.store.create('contacts', { email: 'rin.sato@example.com', firstname: 'Rin', lastname: 'Sato' });
    hs.store.merge('contacts', primary.id, secondary.id);
    hs.store.archive('contacts', hs.store.get('contacts', primary.id)!);
    await app.services.crmSync.run('hubspot');

    await mergedAway('hubspot', secondary.id, primary.id);
    // nothing of the primary was ever stored, and the customer stays as it was
    expect(await q(`SELECT id FROM crm_record WHERE system = 'hubspot' AND external_id = $1`, [primary.id])).toHaveLength(0);
    expect(await customersOf([s1])).toEqual([customer]);
  }, 60_000);
  it('Salesforce: the merged person’s open complaints rank as the master’s customer’s, CRM record and all', async () => {
    // The queue's urgency counts the customer's value (interactions, a live CRM record). An item
    // keeps the customer it opened with; a merge moves that customer's CRM records and
    // interactions to the survivor. Before, the item of the merged-away customer was ranked by the
    // customer left behind (its record gone, its count stale): the master's complaint and the
    // loser's, of the same person, the same age and score, ranked apart.
    const at = Date.now() - DAY_MS;
    const master = sf.store.insert('Contact', { FirstName: 'Noor', LastName: 'Haddad', Email: 'noor.haddad@example.com' }, at);
    const loser = sf.store.insert('Contact', { FirstName: 'Noor', LastName: 'Haddad', Email: 'nhaddad@home.example.org' }, at + 1);
    const m1 = await speak('noor.haddad@example.com', 'negative', 50);
    const l1 = await speak('nhaddad@home.example.org', 'negative', 50);
    await app.services.crmSync.run('salesforce');
    const ranked = async () => {
      const page = await app.services.listeningGap.openItems({ first: 100 });
      const ids = await q<{ id: string; external_id: string }>(`SELECT id, external_id FROM interaction WHERE external_id = ANY($1::text[])`, [[m1, l1]]);
      const byExternal = new Map(ids.map((r) => [r.external_id, r.id]));
      const item = (ext: string) => page.edges.map((e) => e.node).find((n) => n.interactionUuid === byExternal.get(ext))!;
      return { master: item(m1), loser: item(l1) };
    };
    const before = await ranked();
    expect(before.master.urgency).toBeCloseTo(before.loser.urgency, 3);

    sf.store.merge('Contact', master.Id, [loser.Id], {}, mergedAt());
    await app.services.crmSync.run('salesforce');
    const [one] = await customersOf([m1, l1]);
    expect(await customersOf([m1, l1])).toEqual([one]);

    const after = await ranked();
    // one person with one live record and two interactions: both complaints weigh the same
    expect(after.loser.urgency).toBeCloseTo(after.master.urgency, 3);
    expect(after.master.urgency).toBeGreaterThan(before.master.urgency);
  }, 60_000);
  it('Salesforce: the merged person counts every open complaint of theirs in the customers’ OPEN_ITEMS order', async () => {
    // The order counted the open items whose customer is the listed (surviving) one; an item keeps
    // the customer it opened with, so the merged-away customer's complaints were counted by no one.
    const at = Date.now() - DAY_MS;
    const master = sf.store.insert('Contact', { FirstName: 'Ines', LastName: 'Duarte', Email: 'ines.duarte@example.com' }, at);
    const loser = sf.store.insert('Contact', { FirstName: 'Ines', LastName: 'Duarte', Email: 'iduarte@home.example.org' }, at + 1);
    const complain = async (email: string, source: string) => {
      const id = `merge-${++round}`;
      const r = await app.services.ingest.ingestObjects(
        [{ eventId: id, source, externalId: id, occurredAt: new Date(Date.now() - 30 * 60_000).toISOString(), direction: 'inbound', author: { displayName: email.split('@')[0], email }, text: 'My parcel is late again and nobody answers. Terrible service, I want a refund.' }],
        'test',
      );
      expect(r.rejected).toHaveLength(0);
      return id;
    };
    // the person: one complaint by the master's address, two (email, chat) by the loser's
    const m1 = await complain('ines.duarte@example.com', 'email');
    const l1 = await complain('iduarte@home.example.org', 'email');
    await complain('iduarte@home.example.org', 'chat');
    // a bystander with two
    const b1 = await complain('tomas.berg@example.net', 'email');
    await complain('tomas.berg@example.net', 'chat');
    await app.services.crmSync.run('salesforce');
    sf.store.merge('Contact', master.Id, [loser.Id], {}, mergedAt());
    await app.services.crmSync.run('salesforce');
    const [person] = await customersOf([m1, l1]);
    expect(await customersOf([m1, l1])).toEqual([person]);
    expect(await q(`SELECT id FROM listening_item WHERE status = 'open'`)).toHaveLength(5);

    const r = await app.gql<{ customers: { edges: { node: { id: string } }[] } }>('{ customers(first: 2, order: OPEN_ITEMS) { edges { node { id } } } }');
    expect(r.errors).toBeUndefined();
    // three open complaints against the bystander's two
    expect(r.data.customers.edges.map((e) => e.node.id)).toEqual([person!, ...(await customersOf([b1]))].map((id) => toGlobalId('Customer', id)));
  }, 60_000);
});

import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RERESOLUTION_RUNNER_LOCK } from '../../src/identity/reresolve.job';
import { toGlobalId } from '../../src/graphql/relay';
import { runJob } from '../support/identity';
import type { CrmRecordInput } from '../../src/crm/crm.port';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

type Sentiment = { score: number | null; interactionCount: number };
type Cust = { id: string; displayName: string | null; identities: { kind: string; network: string | null; value: string }[]; sentiment: Sentiment; interactions: { totalCount: number } };
type Audit = { id: string; action: string; survivorId: string | null; mergedId: string | null; score: number | null; actor: string; reason: string; undoneAt: string | null; evidence: { field: string; outcome: string; weight: number | null }[] };

const CUSTOMER = `query C($id: ID!) { customer(id: $id) {
  id displayName identities { kind network value } sentiment { score interactionCount } interactions(first: 0) { totalCount }
  mergeHistory { id action survivorId mergedId score actor reason undoneAt evidence { field outcome weight } }
} }`;
const SUGGESTIONS = `query S($first: Int, $after: String) { mergeSuggestions(first: $first, after: $after) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { id score reason status evidence { field outcome similarity weight } customerA { id displayName } customerB { id displayName } } }
} }`;

const cid = (uuid: string) => toGlobalId('Customer', uuid);

describe('identity resolution on real PostgreSQL', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({}, 'identity');
  });
  afterAll(async () => {
    await app?.close();
  });

  const ingest = async (lines: unknown[]) => {
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(res.status).toBe(200);
    return (await res.json()) as { accepted: number };
  };
  const customer = async (id: string): Promise<Cust & { mergeHistory: Audit[] }> => {
    const r = await app.gql<{ customer: Cust & { mergeHistory: Audit[] } }>(CUSTOMER, { id });
    expect(r.errors).toBeUndefined();
    return r.data.customer;
  };
  const customerOfIdentity = async (kind: string, value: string): Promise<string> => {
    const [row] = (await app.db.ds.query(`SELECT coalesce(c.merged_into_id, c.id) AS id FROM customer_identity ci JOIN customer c ON c.id = ci.customer_id WHERE kind = $1 AND value = $2`, [kind, value])) as { id: string }[];
    expect(row).toBeDefined();
    return row!.id;
  };
  const crm = (system: 'salesforce' | 'hubspot', objectType: string, records: CrmRecordInput[]) => app.services.identity.ingestCrmRecords(system, objectType, records);
  const pendingSuggestions = async () => {
    const r = await app.gql<{ mergeSuggestions: { totalCount: number; edges: { node: { id: string; score: number | null; reason: string; evidence: { field: string; outcome: string }[]; customerA: { id: string }; customerB: { id: string } } }[] } }>(SUGGESTIONS, { first: 100 });
    expect(r.errors).toBeUndefined();
    return r.data.mergeSuggestions;
  };

  it('merges a Salesforce contact and a HubSpot contact that share one email into one customer with both CRM ids', async () => {
    const sf = await crm('salesforce', 'Contact', [
      { externalId: '003000000000001AAA', person: { givenName: 'Ada', surname: 'Lovelace', city: 'London' }, identities: [{ kind: 'email', value: 'Ada.Lovelace@Example.com ' }] },
    ]);
    const hs = await crm('hubspot', 'contact', [
      {
        externalId: '501',
        person: { givenName: 'Ada', surname: 'Lovelace' },
        identities: [
          { kind: 'email', value: 'ada.lovelace@example.com' },
          { kind: 'handle', network: 'twitter', value: '@ada_l' },
        ],
      },
    ]);
    expect(hs.customerIds[0]).toBe(sf.customerIds[0]);
    const c = await customer(cid(sf.customerIds[0]!));
    expect(c.identities.filter((i) => i.kind === 'CRM').map((i) => i.value).sort()).toEqual(['hubspot:contact:501', 'salesforce:Contact:003000000000001AAA']);
    expect(c.identities).toContainEqual({ kind: 'HANDLE', network: 'x', value: 'x:ada_l' });
    const visible = await app.gql<{ customers: { totalCount: number } }>(`{ customers(filter: { search: "lovelace" }) { totalCount } }`);
    expect(visible.data.customers.totalCount).toBe(1);
    expect(c.mergeHistory[0]).toMatchObject({ action: 'LINK', actor: 'rule:deterministic:email', evidence: [{ field: 'email', outcome: 'agree' }] });
  });

  it('merges two existing customers when a CRM record carries keys of both, with an audit entry', async () => {
    const a = await crm('salesforce', 'Contact', [{ externalId: '003000000000002AAA', person: { givenName: 'Grace', surname: 'Hopper' }, identities: [{ kind: 'email', value: 'grace@navy.example' }] }]);
    await ingest([message(100, { author: { handle: 'amazing_grace', displayName: 'Grace H', phone: '+1 415 555 2671' } })]);
    const phoneOwner = await customerOfIdentity('phone', '+14155552671');
    expect(phoneOwner).not.toBe(a.customerIds[0]);
    const h = await crm('hubspot', 'contact', [
      { externalId: '502', person: { givenName: 'Grace', surname: 'Hopper' }, identities: [{ kind: 'email', value: 'grace@navy.example' }, { kind: 'phone', value: '(415) 555-2671' }] },
    ]);
    expect(h.merged).toBe(1);
    expect(await customerOfIdentity('phone', '+14155552671')).toBe(a.customerIds[0]);
    const c = await customer(cid(a.customerIds[0]!));
    expect(c.interactions.totalCount).toBe(1);
    expect(c.mergeHistory.find((m) => m.action === 'MERGE')).toMatchObject({ actor: 'rule:deterministic:phone', survivorId: cid(a.customerIds[0]!), mergedId: cid(phoneOwner) });
  });

  it('merges a social author known only by handle into the CRM contact whose email the author later reveals; unmerge restores interactions and rollups', async () => {
    // three messages from a handle nobody knows yet
    await ingest([
      message(200, { author: { handle: 'jdoe_writes', displayName: 'JD' }, text: 'Terrible service, my order is broken and late.' }),
      message(201, { author: { handle: 'jdoe_writes', displayName: 'JD' }, text: 'Still waiting. Awful.' }),
      message(202, { author: { handle: 'jdoe_writes', displayName: 'JD' }, text: 'Thanks, that fixed it, great help!' }),
    ]);
    const social = await customerOfIdentity('handle', 'x:jdoe_writes');
    const socialBefore = await customer(cid(social));
    expect(socialBefore.sentiment.interactionCount).toBe(3);

    const contact = await crm('salesforce', 'Contact', [{ externalId: '003000000000003AAA', person: { givenName: 'John', surname: 'Doe' }, identities: [{ kind: 'email', value: 'john.doe@corp.example' }] }]);
    const contactId = contact.customerIds[0]!;
    await ingest([message(203, { author: { handle: 'jdoe_writes', displayName: 'JD', email: 'John.Doe@corp.example' }, text: 'I love the new app.' })]);

    // the handle's customer is now the contact's: the old id resolves to the survivor
    expect(await customerOfIdentity('handle', 'x:jdoe_writes')).toBe(contactId);
    const merged = await customer(cid(social));
    expect(merged.id).toBe(cid(contactId));
    expect(merged.sentiment.interactionCount).toBe(4);
    expect(merged.interactions.totalCount).toBe(4);
    const audit = merged.mergeHistory.find((m) => m.action === 'MERGE')!;
    expect(audit).toMatchObject({ actor: 'rule:deterministic:email', survivorId: cid(contactId), mergedId: cid(social), undoneAt: null });
    expect(audit.reason).toContain('x/ext-203');
    expect(audit.evidence.map((e) => e.field)).toEqual(['email', 'handle']);
    const [tomb] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'customer-sentiment.v1' AND message_key = $1 AND payload IS NULL`, [social])) as { n: number }[];
    expect(tomb!.n).toBe(1);

    const undo = await app.gql<{ unmergeCustomer: { audit: Audit; customers: { id: string }[] } }>(
      `mutation U($id: ID!) { unmergeCustomer(mergeId: $id, reason: "not the same person") { audit { id action survivorId mergedId } customers { id } } }`,
      { id: audit.id },
    );
    expect(undo.errors).toBeUndefined();
    expect(undo.data.unmergeCustomer.audit).toMatchObject({ action: 'UNMERGE', survivorId: cid(contactId), mergedId: cid(social) });
    expect(undo.data.unmergeCustomer.customers.map((c) => c.id)).toEqual([cid(contactId), cid(social)]);

    // the handle, its three interactions and their rollups are back where they were
    const restored = await customer(cid(social));
    expect(restored.id).toBe(cid(social));
    expect(restored.sentiment.interactionCount).toBe(socialBefore.sentiment.interactionCount);
    expect(restored.sentiment.score).toBeCloseTo(socialBefore.sentiment.score!, 9);
    expect(restored.interactions.totalCount).toBe(3);
    expect(restored.identities).toEqual([{ kind: 'HANDLE', network: 'x', value: 'x:jdoe_writes' }]);
    const survivor = await customer(cid(contactId));
    expect(survivor.sentiment.interactionCount).toBe(1);
    expect(survivor.mergeHistory.find((m) => m.id === audit.id)!.undoneAt).not.toBeNull();
    const daily = (await app.db.ds.query(`SELECT customer_id, sum(interaction_count)::int AS n FROM customer_sentiment_daily WHERE customer_id = ANY($1::uuid[]) GROUP BY 1`, [[social, contactId]])) as { customer_id: string; n: number }[];
    expect(Object.fromEntries(daily.map((d) => [d.customer_id, d.n]))).toEqual({ [social]: 3, [contactId]: 1 });

    // a person said they differ: the same evidence does not merge them again
    await ingest([message(204, { author: { handle: 'jdoe_writes', email: 'john.doe@corp.example' }, text: 'Hello again' })]);
    expect(await customerOfIdentity('handle', 'x:jdoe_writes')).toBe(social);
    const again = await app.gql<{ unmergeCustomer: unknown }>(`mutation U($id: ID!) { unmergeCustomer(mergeId: $id) { audit { id } } }`, { id: audit.id });
    expect(again.errors?.[0]?.extensions?.code).toBe('CONFLICT');
  });

  it('merges two customers by hand and unmerges them with their scored interactions and summaries exactly restored', async () => {
    await ingest([
      message(300, { author: { handle: 'alpha_person' }, text: 'Great, I love it!' }),
      message(301, { author: { handle: 'alpha_person' }, text: 'Wonderful support team.' }),
      message(302, { author: { handle: 'beta_person' }, text: 'This is broken and terrible.' }),
      { ...message(303, { author: { handle: 'brand' }, text: 'Sorry to hear that, DM us.' }), direction: 'outbound', inReplyTo: 'ext-302' },
    ]);
    const a = await customerOfIdentity('handle', 'x:alpha_person');
    const b = await customerOfIdentity('handle', 'x:beta_person');
    const [before, beforeB] = [await customer(cid(a)), await customer(cid(b))];
    expect(beforeB.interactions.totalCount).toBe(2);

    const m = await app.gql<{ mergeCustomers: { audit: Audit; customers: Cust[] } }>(
      `mutation M($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "same person, confirmed by phone") { audit { id action actor } customers { id sentiment { interactionCount score } interactions(first: 0) { totalCount } } } }`,
      { s: cid(a), m: cid(b) },
    );
    expect(m.errors).toBeUndefined();
    expect(m.data.mergeCustomers.audit).toMatchObject({ action: 'MERGE', actor: 'admin:anonymous (auth not configured)' });
    expect(m.data.mergeCustomers.customers[0]).toMatchObject({ id: cid(a), sentiment: { interactionCount: 3 }, interactions: { totalCount: 4 } });
    expect(m.data.mergeCustomers.customers[0]!.sentiment.score).not.toBeCloseTo(before.sentiment.score!, 3);

    const u = await app.gql<{ unmergeCustomer: { customers: Cust[] } }>(
      `mutation U($c: ID!) { unmergeCustomer(customerId: $c) { customers { id sentiment { interactionCount score } interactions(first: 0) { totalCount } } } }`,
      { c: cid(b) },
    );
    expect(u.errors).toBeUndefined();
    const [afterA, afterB] = u.data.unmergeCustomer.customers;
    expect(afterA).toMatchObject({ id: cid(a), sentiment: { interactionCount: 2 }, interactions: { totalCount: 2 } });
    expect(afterA!.sentiment.score).toBeCloseTo(before.sentiment.score!, 9);
    // the brand's reply carries no identity of b: the snapshot brings it back with b
    expect(afterB).toMatchObject({ id: cid(b), sentiment: { interactionCount: 1 }, interactions: { totalCount: 2 } });
    expect(afterB!.sentiment.score).toBeCloseTo(beforeB.sentiment.score!, 9);
  });

  it('suggests, never merges, two Salesforce contacts that share an email; a rejected suggestion never comes back', async () => {
    const r = await crm('salesforce', 'Contact', [
      { externalId: '003000000000010AAA', person: { givenName: 'Maria', surname: 'Garcia', city: 'Madrid' }, identities: [{ kind: 'email', value: 'info@family-garcia.example' }] },
      { externalId: '003000000000011AAA', person: { givenName: 'Jose', surname: 'Garcia', city: 'Madrid' }, identities: [{ kind: 'email', value: 'info@family-garcia.example' }] },
    ]);
    expect(r.created).toBe(2);
    expect(r.merged).toBe(0);
    expect(r.customerIds[0]).not.toBe(r.customerIds[1]);
    const pending = await pendingSuggestions();
    const s = pending.edges.map((e) => e.node).find((n) => [n.customerA.id, n.customerB.id].sort().join() === [cid(r.customerIds[0]!), cid(r.customerIds[1]!)].sort().join());
    expect(s).toBeDefined();
    expect(s!.evidence).toContainEqual(expect.objectContaining({ field: 'email', outcome: 'agree' }));

    const rej = await app.gql<{ rejectMergeSuggestion: { status: string } }>(`mutation R($id: ID!) { rejectMergeSuggestion(id: $id) { status } }`, { id: s!.id });
    expect(rej.data.rejectMergeSuggestion.status).toBe('REJECTED');
    expect((await pendingSuggestions()).edges.find((e) => e.node.id === s!.id)).toBeUndefined();

    // a re-sync of both records, and a re-resolution with a low threshold, bring nothing back
    await crm('salesforce', 'Contact', [
      { externalId: '003000000000010AAA', person: { givenName: 'Maria', surname: 'Garcia', city: 'Madrid' }, identities: [{ kind: 'email', value: 'info@family-garcia.example' }] },
      { externalId: '003000000000011AAA', person: { givenName: 'Jose', surname: 'Garcia', city: 'Madrid' }, identities: [{ kind: 'email', value: 'info@family-garcia.example' }] },
    ]);
    const job = await runJob(app, { autoLinkBits: 5, reviewBits: 0 });
    expect(job.status).toBe('SUCCEEDED');
    const ids = [cid(r.customerIds[0]!), cid(r.customerIds[1]!)];
    expect((await pendingSuggestions()).edges.filter((e) => ids.includes(e.node.customerA.id) && ids.includes(e.node.customerB.id))).toEqual([]);
    expect((await customer(ids[0]!)).id).toBe(ids[0]);
    expect((await customer(ids[1]!)).id).toBe(ids[1]);
  });

  it('suggests a probable match in the review band and merges it when a person accepts', async () => {
    const a = await crm('salesforce', 'Lead', [
      { externalId: '00Q000000000001AAA', person: { givenName: 'Katherine', surname: 'Johnson', streetNumber: '12', address1: 'main street', city: 'hampton', postcode: '23666', state: 'va' } },
    ]);
    const b = await crm('hubspot', 'contact', [
      // names and a state only: strong on names, too little else to link without a person
      { externalId: '777', person: { givenName: 'Kathy', surname: 'Johnson', state: 'va' } },
    ]);
    expect(b.customerIds[0]).not.toBe(a.customerIds[0]);
    const s = (await pendingSuggestions()).edges.map((e) => e.node).find((n) => [n.customerA.id, n.customerB.id].includes(cid(a.customerIds[0]!)));
    expect(s).toBeDefined();
    expect(s!.score).toBeGreaterThanOrEqual(7);
    expect(s!.evidence.find((e) => e.field === 'surname')).toMatchObject({ outcome: 'agree' });

    const acc = await app.gql<{ acceptMergeSuggestion: { audit: Audit; customers: Cust[] } }>(
      `mutation A($id: ID!) { acceptMergeSuggestion(id: $id) { audit { action score reason evidence { field outcome weight } } customers { id identities { kind value } } } }`,
      { id: s!.id },
    );
    expect(acc.errors).toBeUndefined();
    expect(acc.data.acceptMergeSuggestion.audit.score).toBeCloseTo(s!.score!, 6);
    expect(acc.data.acceptMergeSuggestion.customers[0]!.identities.filter((i) => i.kind === 'CRM')).toHaveLength(2);
    const twice = await app.gql(`mutation A($id: ID!) { acceptMergeSuggestion(id: $id) { audit { id } } }`, { id: s!.id });
    expect(twice.errors?.[0]?.extensions?.code).toBe('CONFLICT');
  });

  it('auto-links a record above the threshold with score and evidence, and undoes the link', async () => {
    const a = await crm('salesforce', 'Lead', [
      { externalId: '00Q000000000002AAA', person: { givenName: 'Dorothy', surname: 'Vaughan', streetNumber: '4', address1: 'langley road', city: 'hampton', postcode: '23681', state: 'va' } },
    ]);
    const b = await crm('hubspot', 'contact', [{ externalId: '778', person: { givenName: 'Dorothy', surname: 'Vaughn', city: 'hampton', postcode: '23681' } }]);
    expect(b).toMatchObject({ linked: 1, created: 0 });
    expect(b.customerIds[0]).toBe(a.customerIds[0]);
    const c = await customer(cid(a.customerIds[0]!));
    const link = c.mergeHistory.find((m) => m.action === 'LINK')!;
    expect(link).toMatchObject({ actor: 'rule:fellegi-sunter', survivorId: cid(a.customerIds[0]!) });
    expect(link.score).toBeGreaterThanOrEqual(13);
    expect(link.evidence.find((e) => e.field === 'postcode')).toMatchObject({ outcome: 'agree' });
    expect(link.evidence.reduce((sum, e) => sum + (e.weight ?? 0), 0)).toBeCloseTo(link.score!, 1);

    const undo = await app.gql<{ unmergeCustomer: { customers: Cust[] } }>(
      `mutation U($id: ID!) { unmergeCustomer(mergeId: $id) { customers { id identities { kind value } } } }`,
      { id: link.id },
    );
    expect(undo.errors).toBeUndefined();
    const [kept, split] = undo.data.unmergeCustomer.customers;
    expect(kept!.identities).toEqual([{ kind: 'CRM', value: 'salesforce:Lead:00Q000000000002AAA' }]);
    expect(split!.identities).toEqual([{ kind: 'CRM', value: 'hubspot:contact:778' }]);
    // a re-sync leaves them apart: a person undid the link
    const again = await crm('hubspot', 'contact', [{ externalId: '778', person: { givenName: 'Dorothy', surname: 'Vaughn', city: 'hampton', postcode: '23681' } }]);
    expect(cid(again.customerIds[0]!)).toBe(split!.id);
  });

  it('links an identity by hand and unlinks it with the interactions it brought', async () => {
    const c = await crm('salesforce', 'Contact', [{ externalId: '003000000000020AAA', person: { givenName: 'Alan', surname: 'Turing' }, identities: [{ kind: 'email', value: 'alan@bletchley.example' }] }]);
    const id = cid(c.customerIds[0]!);
    const link = await app.gql<{ linkIdentity: { audit: Audit; customers: Cust[] } }>(
      `mutation L($id: ID!) { linkIdentity(customerId: $id, kind: HANDLE, network: "instagram", value: "@alan.t") { audit { action } customers { id identities { kind network value } } } }`,
      { id },
    );
    expect(link.errors).toBeUndefined();
    expect(link.data.linkIdentity.audit.action).toBe('LINK');
    expect(link.data.linkIdentity.customers[0]!.identities).toContainEqual({ kind: 'HANDLE', network: 'instagram', value: 'instagram:alan.t' });

    await ingest([message(400, { source: 'instagram', author: { handle: 'alan.t' }, text: 'Enigma is great' }), message(401, { source: 'instagram', author: { handle: 'alan.t' }, text: 'Bad day' })]);
    expect((await customer(id)).interactions.totalCount).toBe(2);

    const bad = await app.gql(`mutation L($id: ID!) { linkIdentity(customerId: $id, kind: EMAIL, value: "not an email") { audit { id } } }`, { id });
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    const un = await app.gql<{ unlinkIdentity: { audit: Audit; customers: Cust[] } }>(
      `mutation U($id: ID!) { unlinkIdentity(customerId: $id, kind: HANDLE, network: "instagram", value: "alan.t") { audit { action } customers { id interactions(first: 0) { totalCount } identities { kind value } } } }`,
      { id },
    );
    expect(un.errors).toBeUndefined();
    const [kept, split] = un.data.unlinkIdentity.customers;
    expect(kept).toMatchObject({ id, interactions: { totalCount: 0 } });
    expect(split!.identities).toEqual([{ kind: 'HANDLE', value: 'instagram:alan.t' }]);
    expect(split!.interactions.totalCount).toBe(2);

    const none = await app.gql(`mutation U($id: ID!) { unlinkIdentity(customerId: $id, kind: EMAIL, value: "nobody@nowhere.example") { audit { id } } }`, { id });
    expect(none.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('an unlink takes the brand\'s replies to the identity\'s messages along, replies to replies too, and an erasure then redacts them', async () => {
    // a contact id and an email of its own: the file's tests share one database and run in any
    // order. With grace@navy.example (the Grace Hopper merge test's address) the merge test, run
    // after this one (seed 2), found the address on this customer and merged into it instead;
    // 003000000000021AAA is the hand-link test's contact.
    const c = await crm('salesforce', 'Contact', [{ externalId: '003000000000022AAA', person: { givenName: 'Grace', surname: 'Hopper' }, identities: [{ kind: 'email', value: 'grace.unlink@navy.example' }] }]);
    expect(c.created).toBe(1);
    const id = cid(c.customerIds[0]!);
    const link = await app.gql(`mutation L($id: ID!) { linkIdentity(customerId: $id, kind: HANDLE, network: "instagram", value: "@grace.h") { audit { action } } }`, { id });
    expect(link.errors).toBeUndefined();
    const reply = (n: number, to: number, text: string) => ({ ...message(n, { source: 'instagram', author: { handle: 'brand' }, text }), direction: 'outbound', inReplyTo: `ext-${to}` });
    // the person's two messages and the brand's conversation with them (a reply, a reply to it)
    await ingest([
      message(410, { source: 'instagram', author: { handle: 'grace.h' }, text: 'The compiler crashed again' }),
      reply(411, 410, 'Sorry Grace, we are on it'),
      reply(412, 411, 'Grace, a fix is out'),
      message(413, { source: 'instagram', author: { handle: 'grace.h' }, text: 'Thanks' }),
    ]);
    expect((await customer(id)).interactions.totalCount).toBe(4);
    const un = await app.gql<{ unlinkIdentity: { customers: Cust[] } }>(
      `mutation U($id: ID!) { unlinkIdentity(customerId: $id, kind: HANDLE, network: "instagram", value: "grace.h") { customers { id interactions(first: 0) { totalCount } } } }`,
      { id },
    );
    expect(un.errors).toBeUndefined();
    const [kept, split] = un.data.unlinkIdentity.customers;
    // before: the two replies stayed on the contact's customer (kept 2, split 2)
    expect(kept).toMatchObject({ id, interactions: { totalCount: 0 } });
    expect(split!.interactions.totalCount).toBe(4);
    const erased = await app.gql(`mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-21") { erasedNow } }`, { id: split!.id });
    expect(erased.errors).toBeUndefined();
    // the person's words and the brand's replies naming them are gone (before: both replies kept)
    const left = (await app.db.ds.query(`SELECT text FROM interaction WHERE text LIKE '%Grace%' OR text LIKE '%compiler%' OR external_id IN ('ext-410', 'ext-411', 'ext-412', 'ext-413')`)) as { text: string }[];
    expect(left).toEqual([]);
  });

  it('an undone merge takes back the brand\'s replies that came after the merge to the merged customer\'s messages', async () => {
    await ingest([
      message(420, { author: { handle: 'gamma_person' }, text: 'Great, I love it!' }),
      message(421, { author: { handle: 'delta_person' }, text: 'This is broken and terrible.' }),
    ]);
    const a = await customerOfIdentity('handle', 'x:gamma_person');
    const b = await customerOfIdentity('handle', 'x:delta_person');
    const m = await app.gql(`mutation M($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "same person") { audit { id } } }`, { s: cid(a), m: cid(b) });
    expect(m.errors).toBeUndefined();
    // after the merge the brand answers delta's message, and answers again: both go to the survivor
    await ingest([
      { ...message(422, { author: { handle: 'brand' }, text: 'Sorry to hear that, DM us.' }), direction: 'outbound', inReplyTo: 'ext-421' },
      { ...message(423, { author: { handle: 'brand' }, text: 'Did the DM reach you?' }), direction: 'outbound', inReplyTo: 'ext-422' },
    ]);
    expect((await customer(cid(a))).interactions.totalCount).toBe(4);
    const u = await app.gql<{ unmergeCustomer: { customers: Cust[] } }>(
      `mutation U($c: ID!) { unmergeCustomer(customerId: $c) { customers { id interactions(first: 0) { totalCount } } } }`,
      { c: cid(b) },
    );
    expect(u.errors).toBeUndefined();
    const [afterA, afterB] = u.data.unmergeCustomer.customers;
    // before: the replies stayed with gamma (2 and 1)
    expect(afterA).toMatchObject({ id: cid(a), interactions: { totalCount: 1 } });
    expect(afterB).toMatchObject({ id: cid(b), interactions: { totalCount: 3 } });
  });

  it('undoing the link of an email or phone linked by hand leaves a customer not named after it', async () => {
    const c = await crm('salesforce', 'Contact', [{ externalId: '003000000000021AAA', person: { givenName: 'Grace', surname: 'Hopper' } }]);
    const id = cid(c.customerIds[0]!);
    for (const [kind, value] of [['EMAIL', 'grace.h@navy.example'], ['PHONE', '+1 415 555 0199']] as const) {
      const link = await app.gql<{ linkIdentity: { audit: Audit } }>(`mutation L($id: ID!, $v: String!) { linkIdentity(customerId: $id, kind: ${kind}, value: $v) { audit { id action } } }`, { id, v: value });
      expect(link.errors).toBeUndefined();
      const undo = await app.gql<{ unmergeCustomer: { customers: Cust[] } }>(`mutation U($m: ID!) { unmergeCustomer(mergeId: $m) { customers { id displayName } } }`, {
        m: link.data.linkIdentity.audit.id,
      });
      expect(undo.errors).toBeUndefined();
      const [kept, split] = undo.data.unmergeCustomer.customers;
      expect(kept!.id).toBe(id);
      // before: the detached customer was named "grace.h@navy.example" / "+1 415 555 0199"
      expect(split!.displayName, kind).toBeNull();
    }
  });

  it('pages pending suggestions with cursors, each exactly once', async () => {
    const recs: CrmRecordInput[] = [];
    for (let i = 0; i < 6; i++) recs.push({ externalId: `00300000000003${i}AAA`, person: { givenName: `Sam${i}`, surname: 'Shared' }, identities: [{ kind: 'phone', value: `+44 20 7946 09${10 + i}` }] });
    await crm('salesforce', 'Contact', recs);
    await crm('salesforce', 'Contact', recs.map((r, i) => ({ ...r, externalId: `00300000000004${i}AAA` })));
    const all = await pendingSuggestions();
    expect(all.totalCount).toBeGreaterThanOrEqual(6);
    const seen = new Set<string>();
    let after: string | null = null;
    for (;;) {
      const page: { data: { mergeSuggestions: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: { node: { id: string } }[] } } } = await app.gql(SUGGESTIONS, { first: 2, after });
      for (const e of page.data.mergeSuggestions.edges) seen.add(e.node.id);
      if (!page.data.mergeSuggestions.pageInfo.hasNextPage) break;
      after = page.data.mergeSuggestions.pageInfo.endCursor;
    }
    expect(seen.size).toBe(all.totalCount);
  });
  it('refuses a re-resolution while another replica\'s job is running, with CONFLICT, and starts one once it is done', async () => {
    // a database of its own: the job row below must not meet this file's other re-resolution
    const own = await startTestApp({}, 'reresolve-conflict');
    // the other replica's runner: alive while its session holds the runner lock
    const replica = new Client({ connectionString: own.database.url });
    await replica.connect();
    try {
      await replica.query('SELECT pg_advisory_lock($1)', [RERESOLUTION_RUNNER_LOCK]);
      await replica.query(`INSERT INTO reresolution_job (auto_link_bits, review_bits, requested_by, status, started_at) VALUES (20, 10, 'another replica', 'running', now())`);
      const refused = await own.gql(`mutation { startReresolution { id } }`);
      expect(refused.errors?.[0]?.extensions?.code).toBe('CONFLICT');
      expect(refused.errors?.[0]?.message).toMatch(/already running/);
      expect((await own.db.ds.query(`SELECT count(*)::int AS n FROM reresolution_job`))[0].n).toBe(1);
      await replica.query(`UPDATE reresolution_job SET status = 'succeeded', finished_at = now()`);
      await replica.query('SELECT pg_advisory_unlock($1)', [RERESOLUTION_RUNNER_LOCK]);
      expect((await runJob(own)).status).toBe('SUCCEEDED');
    } finally {
      await replica.end();
      await own.close();
    }
  });
});


import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

describe('identity resolution under concurrent arrivals', () => {
  // Each test on a database of its own: the first counts every customer there is.
  let app: TestApp;
  beforeEach(async () => {
    app = await startTestApp({ DATABASE_POOL_SIZE: '24' }, 'identityrace');
  });
  afterEach(async () => {
    await app?.close();
  });

  const post = (lines: unknown[]) =>
    fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) }).then(async (r) => {
      expect(r.status).toBe(200);
      return (await r.json()) as { accepted: number };
    });
  const rootsOf = async (pairs: [string, string][]): Promise<string[]> => {
    const rows = (await app.db.ds.query(
      `SELECT DISTINCT coalesce(c.merged_into_id, c.id) AS root FROM customer_identity ci JOIN customer c ON c.id = ci.customer_id
         JOIN unnest($1::text[], $2::text[]) AS k(kind, value) ON ci.kind = k.kind AND ci.value = k.value`,
      [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
    )) as { root: string }[];
    return rows.map((r) => r.root);
  };

  it('never creates two customers for one person arriving 20 times at once through ingest and CRM intake', async () => {
    for (let round = 0; round < 5; round++) {
      const email = `same.person.${round}@example.com`;
      const requests: Promise<unknown>[] = [];
      for (let i = 0; i < 17; i++) {
        requests.push(post([message(round * 100 + i, { author: { handle: `race${round}_${i}`, displayName: 'Same Person', email: email.toUpperCase() } })]));
      }
      const person = { givenName: 'Same', surname: `Person${round}` };
      requests.push(app.services.identity.ingestCrmRecords('salesforce', 'Contact', [{ externalId: `0030000000000${round}0AAA`, person, identities: [{ kind: 'email', value: email }] }]));
      requests.push(app.services.identity.ingestCrmRecords('salesforce', 'Lead', [{ externalId: `00Q0000000000${round}0AAA`, person, identities: [{ kind: 'email', value: email }] }]));
      requests.push(app.services.identity.ingestCrmRecords('hubspot', 'contact', [{ externalId: `90${round}`, person, identities: [{ kind: 'email', value: ` ${email} ` }] }]));
      await Promise.all(requests);

      const keys: [string, string][] = [['email', email]];
      for (let i = 0; i < 17; i++) keys.push(['handle', `x:race${round}_${i}`]);
      keys.push(['crm', `salesforce:Contact:0030000000000${round}0AAA`], ['crm', `salesforce:Lead:00Q0000000000${round}0AAA`], ['crm', `hubspot:contact:90${round}`]);
      const roots = await rootsOf(keys);
      expect(roots).toHaveLength(1);
      const [c] = (await app.db.ds.query(`SELECT interaction_count FROM customer WHERE id = $1`, [roots[0]])) as { interaction_count: number }[];
      expect(c!.interaction_count).toBe(17);
    }
    const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM customer WHERE merged_into_id IS NULL`)) as { n: number }[];
    expect(n).toBe(5);
  });

  it('merges ten handle-only customers into one contact when ten messages reveal its email at once', async () => {
    await post(Array.from({ length: 10 }, (_, i) => message(1000 + i, { author: { handle: `lonely${i}` }, text: 'Terrible, broken again.' })));
    const contact = await app.services.identity.ingestCrmRecords('hubspot', 'contact', [{ externalId: '4242', person: { givenName: 'Pat', surname: 'Many' }, identities: [{ kind: 'email', value: 'pat@many.example' }] }]);
    await Promise.all(Array.from({ length: 10 }, (_, i) => post([message(1100 + i, { author: { handle: `lonely${i}`, email: 'pat@many.example' }, text: 'Thanks!' })])));

    const roots = await rootsOf(Array.from({ length: 10 }, (_, i) => ['handle', `x:lonely${i}`] as [string, string]));
    expect(roots).toEqual([contact.customerIds[0]]);
    const audits = (await app.db.ds.query(`SELECT actor FROM merge_audit WHERE survivor_id = $1 AND action = 'merge'`, [contact.customerIds[0]])) as { actor: string }[];
    expect(audits).toHaveLength(10);
    expect(new Set(audits.map((a) => a.actor))).toEqual(new Set(['rule:deterministic:email']));
    const [c] = (await app.db.ds.query(`SELECT interaction_count FROM customer WHERE id = $1`, [contact.customerIds[0]])) as { interaction_count: number }[];
    expect(c!.interaction_count).toBe(20);
  });

  it('keeps one CRM record and one customer when the same record is taken in twice at once', async () => {
    const rec = { externalId: '0035000000000XYZAB', person: { givenName: 'Twice', surname: 'Synced' }, identities: [{ kind: 'phone' as const, value: '+1 415 555 2672' }] };
    const results = await Promise.all(Array.from({ length: 6 }, () => app.services.identity.ingestCrmRecords('salesforce', 'Contact', [rec])));
    expect(new Set(results.map((r) => r.customerIds[0])).size).toBe(1);
    const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM crm_record WHERE external_id = $1`, [rec.externalId])) as { n: number }[];
    expect(n).toBe(1);
  });
});

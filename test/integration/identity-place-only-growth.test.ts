import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_REVIEW_SUGGESTIONS_PER_RECORD } from '../../src/identity/crm-intake.service';
import { startTestApp, type TestApp } from '../support/app';

/**
 * Contacts that agree only on a place (no name, or a placeholder name, at one office) are all in
 * the review band with each other. Every such pair used to become a suggestion: 24 contacts made
 * 276 (every pair), 50 made 958, 500 made 7,952. A CRM export, or anyone who can write CRM
 * records, filled the review queue. Each record's intake now suggests at most a fixed number.
 */
describe('identity: suggestions per CRM record are bounded', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({}, 'idgrow');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('keeps the review queue linear in contacts that share only an office, and still auto-links a real pair there', async () => {
    const ids = app.services.identity;
    const tag = `pg${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;
    const office = { company: `Harbor Freight ${tag}`, city: 'Tacoma', state: 'WA', postcode: '98402', streetNumber: '1120', address1: 'Pacific Ave' };
    const n = 60;
    const contacts = Array.from({ length: n }, (_, i) => ({
      externalId: `${tag}${i}`,
      person: { ...(i % 2 ? { givenName: 'Guest' } : {}), ...office },
    }));
    const r = await ids.ingestCrmRecords('hubspot', 'contact', contacts);
    const [{ queued }] = (await app.db.ds.query(
      `SELECT count(*)::int AS queued FROM merge_suggestion WHERE status = 'pending' AND (customer_a_id = ANY($1::uuid[]) OR customer_b_id = ANY($1::uuid[]))`,
      [r.customerIds],
    )) as { queued: number }[];
    console.info(`[identity-place-only] ${n} contacts at one office: suggested ${r.suggested}, queued ${queued}, merged ${r.merged + r.linked}`);
    expect(r.merged + r.linked).toBe(0);
    expect(queued).toBeGreaterThan(0);
    expect(r.suggested).toBeLessThanOrEqual(MAX_REVIEW_SUGGESTIONS_PER_RECORD * n);
    expect(queued).toBeLessThanOrEqual(MAX_REVIEW_SUGGESTIONS_PER_RECORD * n);

    // one person in both CRMs, at the same office: the cap leaves the link alone
    const person = { givenName: 'Marguerite', surname: `Okonkwo${tag}`, dateOfBirth: '1979-03-14', ...office };
    const hs = await ids.ingestCrmRecords('hubspot', 'contact', [{ externalId: `${tag}m1`, person }]);
    const sf = await ids.ingestCrmRecords('salesforce', 'Contact', [{ externalId: `003${tag}m2`.slice(0, 15).padEnd(15, 'b'), person }]);
    expect(sf.linked).toBe(1);
    expect(sf.customerIds[0]).toBe(hs.customerIds[0]);
  }, 60_000);

  it('keeps a batch re-resolution over the same contacts linear too', async () => {
    // its own database: a re-resolution reads every CRM profile there is
    const own = await startTestApp({}, 'idgrow-batch');
    try {
      const tag = `pb${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;
      const office = { company: `Lakeside Dental ${tag}`, city: 'Duluth', state: 'MN', postcode: '55802', streetNumber: '301', address1: 'Superior St' };
      const n = 60;
      const contacts = Array.from({ length: n }, (_, i) => ({ externalId: `${tag}${i}`, person: { ...(i % 2 ? { givenName: 'Guest' } : {}), ...office } }));
      const r = await own.services.identity.ingestCrmRecords('hubspot', 'contact', contacts);
      const job = await own.services.reresolution.start('test');
      await own.services.reresolution.drain();
      const done = (await own.services.reresolution.get(job.id))!;
      const [{ queued }] = (await own.db.ds.query(
        `SELECT count(*)::int AS queued FROM merge_suggestion WHERE status = 'pending' AND (customer_a_id = ANY($1::uuid[]) OR customer_b_id = ANY($1::uuid[]))`,
        [r.customerIds],
      )) as { queued: number }[];
      // the most suggestions the job made for any one customer
      const [{ most }] = (await own.db.ds.query(
        `SELECT coalesce(max(k), 0)::int AS most FROM (SELECT c, count(*) AS k FROM merge_suggestion, unnest(ARRAY[customer_a_id, customer_b_id]) AS c
          WHERE reason LIKE 're-resolution:%' AND c = ANY($1::uuid[]) GROUP BY c) per`,
        [r.customerIds],
      )) as { most: number }[];
      console.info(`[identity-place-only] re-resolution over ${n} contacts: ${done.status}, suggested ${done.suggestions} more (at most ${most} a customer), queued ${queued}, merged ${done.merges}`);
      expect(done).toMatchObject({ status: 'succeeded', merges: 0 });
      expect(most).toBeLessThanOrEqual(MAX_REVIEW_SUGGESTIONS_PER_RECORD);
      // each suggestion takes one of the cap's places on both its sides
      expect(done.suggestions).toBeLessThanOrEqual((MAX_REVIEW_SUGGESTIONS_PER_RECORD * n) / 2);
      expect(queued).toBeLessThanOrEqual(r.suggested + (MAX_REVIEW_SUGGESTIONS_PER_RECORD * n) / 2);
    } finally {
      await own.close();
    }
  }, 120_000);
});

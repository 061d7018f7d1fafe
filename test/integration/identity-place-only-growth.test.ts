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
});

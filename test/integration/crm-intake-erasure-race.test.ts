import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';
import { waitForLockWait } from '../support/postgres';

// CRM intake compares a record no key places with similar profiles, reads their customers, then
// locks them. An erasure of one of those customers can commit in between (it takes the customer's
// row lock, not the identity keys): the batch then failed whole with `null value in column
// "customer_a_id" of relation "merge_suggestion"`, and the sync run with it, until the next run.
// Here the erasure's deletes commit while the intake waits for that row lock.

describe('CRM intake racing an erasure of a similar customer, or of one owning a record identity', () => {
  let app: TestApp;
  let eraser: Client;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api' }, 'crmintakeerase');
    eraser = new Client({ connectionString: app.database.url });
    await eraser.connect();
  }, 120_000);

  afterAll(async () => {
    await eraser?.end();
    await app?.close();
  });

  const q = async <R>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as R[];

  /**
   * Starts `intake` while the eraser holds `erased`'s row, waits until the intake waits for it,
   * then deletes the customer as an erasure does and commits; the intake's result.
   */
  async function eraseWhileIntakeWaits<T>(erased: string, intake: () => Promise<T>, waitingFor: string): Promise<T> {
    await eraser.query('BEGIN');
    await eraser.query('SELECT id FROM customer WHERE id = $1 FOR UPDATE', [erased]);
    const pending = intake();
    pending.catch(() => undefined); // its failure is seen by the await below
    try {
      await waitForLockWait(q, waitingFor, { exceptPid: eraser.processID });
      // as the erasure deletes a customer with a CRM record
      await eraser.query('DELETE FROM crm_record WHERE customer_id = $1', [erased]);
      await eraser.query('DELETE FROM customer_identity WHERE customer_id = $1', [erased]);
      await eraser.query('DELETE FROM customer WHERE id = $1', [erased]);
      await eraser.query('COMMIT');
    } catch (e) {
      await eraser.query('ROLLBACK');
      throw e;
    }
    return pending;
  }

  it.each([
    // strong on names, too little else: a suggestion for a person
    ['a record in the review band', { givenName: 'Kathy', surname: 'Johnson', state: 'va' }],
    // the same person and address: linked automatically
    ['a record over the auto-link threshold', { givenName: 'Katherine', surname: 'Johnson', streetNumber: '12', address1: 'main street', city: 'hampton', postcode: '23666', state: 'va' }],
  ])('%s is taken in as a customer of its own, and nothing names the erased customer', async (_what, person) => {
    const run = `r${Date.now()}${Math.floor(Math.random() * 1e6)}`;
    const first = await app.services.identity.ingestCrmRecords('salesforce', 'Lead', [
      { externalId: `00Q${run.slice(-12).padStart(12, '0')}AAA`, person: { givenName: 'Katherine', surname: 'Johnson', streetNumber: '12', address1: 'main street', city: 'hampton', postcode: '23666', state: 'va' } },
    ]);
    const erased = first.customerIds[0]!;
    const taken = await eraseWhileIntakeWaits(
      erased,
      () => app.services.identity.ingestCrmRecords('hubspot', 'contact', [{ externalId: run.replace(/\D/g, ''), person }]),
      'the intake waits for the similar customer',
    );
    expect(taken.customerIds).toHaveLength(1);
    const [customer] = await q<{ id: string }>('SELECT id FROM customer WHERE id = $1', [taken.customerIds[0]]);
    expect(customer?.id).toBe(taken.customerIds[0]);
    expect(taken.customerIds[0]).not.toBe(erased);
    expect(await q(`SELECT id FROM merge_suggestion WHERE $1 IN (customer_a_id, customer_b_id)`, [erased])).toEqual([]);
    expect(await q(`SELECT id FROM crm_record WHERE customer_id = $1`, [erased])).toEqual([]);
  });

  // The same for the customer owning a record's identity (its email, its phone): the record was
  // placed with the erased customer's id, and the chunk failed whole on the foreign key
  // ("violates foreign key constraint").
  it('the record is taken in as a customer of its own, and nothing names the erased customer', async () => {
    const run = `${Date.now()}${Math.floor(Math.random() * 1e6)}`;
    const email = `erased.${run}@example.com`;
    const first = await app.services.identity.ingestCrmRecords('salesforce', 'Contact', [
      { externalId: `003${run}`, person: { givenName: 'Nora', surname: 'Quill' }, identities: [{ kind: 'email', value: email }] },
    ]);
    const erased = first.customerIds[0]!;
    // another object (a HubSpot contact) with the erased person's email: placed by that key
    // before: "insert or update on table ... violates foreign key constraint"
    const taken = await eraseWhileIntakeWaits(
      erased,
      () => app.services.identity.ingestCrmRecords('hubspot', 'contact', [{ externalId: run, person: { givenName: 'Nora', surname: 'Quill' }, identities: [{ kind: 'email', value: email }] }]),
      'the intake waits for the customer owning the email',
    );
    expect(taken.customerIds).toHaveLength(1);
    expect(taken.customerIds[0]).not.toBe(erased);
    const [customer] = await q<{ id: string }>('SELECT id FROM customer WHERE id = $1', [taken.customerIds[0]]);
    expect(customer?.id).toBe(taken.customerIds[0]);
    // the record holds its email again, under its own customer
    expect(await q(`SELECT kind, customer_id FROM customer_identity WHERE kind = 'email' AND value = $1`, [email])).toEqual([{ kind: 'email', customer_id: taken.customerIds[0] }]);
    expect(await q(`SELECT customer_id FROM crm_record WHERE system = 'hubspot' AND external_id = $1`, [run])).toEqual([{ customer_id: taken.customerIds[0] }]);
    expect(await q(`SELECT id FROM merge_audit WHERE survivor_id = $1`, [erased])).toEqual([]);
  });
});

import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, startTestApp, type TestApp } from '../support/app';
import { waitForLockWait } from '../support/postgres';

// interaction.customer_id has no foreign key (migration InteractionCustomerCheckPerBatch): the
// ingest transaction itself makes sure every customer it attaches a message to exists, by
// locking it. Here an erasure (its locks and deletes, as the erasure service takes them) commits
// while an ingest batch waits for the customer's row lock, after the batch read the customer's
// identities: the message must not end up attached to the erased customer.

describe('author resolution racing an erasure', () => {
  let app: TestApp;
  let eraser: Client;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest' }, 'authorerase');
    eraser = new Client({ connectionString: app.database.url });
    await eraser.connect();
  }, 120_000);

  afterAll(async () => {
    await eraser?.end();
    await app?.stop();
    await app?.database.drop();
  });

  const q = async <R>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as R[];
  const orphans = async () =>
    (await q<{ n: number }>(`SELECT count(*)::int AS n FROM interaction i WHERE i.customer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM customer c WHERE c.id = i.customer_id)`))[0]!.n;

  /** Waits until the ingest batch waits for the customer's row lock (another backend than the eraser's). */
  const ingestWaitsForALock = () => waitForLockWait(q, 'the ingest batch waits for the customer lock', { exceptPid: eraser.processID });

  /**
   * Stores `first`, then erases its customer as an erasure does (lock the row, detach its
   * interactions, delete its identities and the row) while `second`'s batch waits for that row
   * lock; returns the erased customer's id once `second` is stored, every line accepted.
   */
  async function storeDuringAnErasure(first: Record<string, unknown>, second: Record<string, unknown>): Promise<string> {
    expect((await app.services.ingest.ingestObjects([first], 'test')).rejected).toEqual([]);
    const [{ customer_id: erased }] = await q<{ customer_id: string }>(`SELECT customer_id FROM interaction WHERE external_id = $1`, [first.externalId]);
    await eraser.query('BEGIN');
    await eraser.query('SELECT id FROM customer WHERE id = $1 FOR UPDATE', [erased]);
    const pending = app.services.ingest.ingestObjects([second], 'test');
    pending.catch(() => undefined); // its failure is seen by the await below
    try {
      await ingestWaitsForALock();
      await eraser.query(`UPDATE interaction SET customer_id = NULL, identity_id = NULL WHERE customer_id = $1`, [erased]);
      await eraser.query('DELETE FROM customer_identity WHERE customer_id = $1', [erased]);
      await eraser.query('DELETE FROM customer WHERE id = $1', [erased]);
      await eraser.query('COMMIT');
    } catch (e) {
      await eraser.query('ROLLBACK');
      throw e;
    }
    expect((await pending).rejected).toEqual([]);
    return erased!;
  }

  it('a known author whose customer is erased meanwhile gets a new customer, not the erased one', async () => {
    // the known handle with an email never seen: the batch takes the identity-key locks, reads
    // the handle's customer, then waits for its row lock, which the erasure holds
    const erased = await storeDuringAnErasure(
      message(1, { externalId: 'race-a1', author: { handle: 'vanishing', displayName: 'Vanishing' } }),
      message(2, { externalId: 'race-a2', author: { handle: 'vanishing', email: 'vanishing@example.org', displayName: 'Vanishing' } }),
    );

    const [row] = await q<{ customer_id: string | null }>(`SELECT customer_id FROM interaction WHERE external_id = 'race-a2'`);
    expect(row!.customer_id).not.toBeNull();
    expect(row!.customer_id).not.toBe(erased);
    // the new customer holds both of the author's identities
    const kinds = await q<{ kind: string }>(`SELECT kind FROM customer_identity WHERE customer_id = $1 ORDER BY kind`, [row!.customer_id]);
    expect(kinds.map((k) => k.kind)).toEqual(['email', 'handle']);
    expect(await orphans()).toBe(0);
  });

  it("a reply to an erased customer's message is stored as nobody's", async () => {
    // the brand's reply belongs to the customer it answers, whose row lock the erasure holds
    await storeDuringAnErasure(
      message(3, { externalId: 'race-q1', author: { handle: 'asker', displayName: 'Asker' } }),
      message(4, { externalId: 'race-r1', direction: 'outbound', inReplyTo: 'race-q1', author: { handle: 'brand', displayName: 'Brand' }, text: 'Sorry to hear that, we are on it.' }),
    );

    const [row] = await q<{ customer_id: string | null }>(`SELECT customer_id FROM interaction WHERE external_id = 'race-r1'`);
    expect(row!.customer_id).toBeNull();
    expect(await orphans()).toBe(0);
  });
});

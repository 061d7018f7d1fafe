import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeCustomersTx } from '../../src/identity/merge';
import { message, startTestApp, type TestApp } from '../support/app';
import { grepDatabase } from '../support/pii-grep';
import { waitForLockWait } from '../support/postgres';

// Identity resolution and privacy against hostile input and unlucky timing: merges racing
// erasures, a link undone before its person asks to be erased, an access request after an
// unmerge, identity values no address can have. Every test seeds its own people (unique names).

describe('identity and privacy: hostile values and unlucky timing', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api' }, 'idprivhostile');
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  const tag = () => randomBytes(4).toString('hex');
  /** Stores one message per author and returns each author's customer id. */
  const seed = async (authors: Record<string, unknown>[], text = 'My parcel is late and nobody answers. Terrible.'): Promise<string[]> => {
    const lines = authors.map((author) => message(0, { eventId: `e-${tag()}`, externalId: `x-${tag()}`, author, text }));
    const out = await app.services.ingest.ingestObjects(lines, 'test');
    expect(out.rejected).toEqual([]);
    const ids: string[] = [];
    for (const l of lines) {
      const [row] = await q<{ customer_id: string }>(`SELECT customer_id FROM interaction WHERE external_id = $1`, [l.externalId]);
      ids.push(row!.customer_id);
    }
    return ids;
  };
  const customerRow = async (id: string) => (await q<{ id: string; merged_into_id: string | null; display_name: string | null }>(`SELECT id, merged_into_id, display_name FROM customer WHERE id = $1`, [id]))[0];

  /**
   * Runs a merge of `merged` into `survivor` in a transaction held open until `during` has
   * started and waits for a lock, then commits it; returns what `during` returned.
   */
  async function mergeCommittedDuring<T>(survivor: string, merged: string, during: () => Promise<T>, waitingStatement: string): Promise<T> {
    const qr = app.db.ds.createQueryRunner();
    await qr.connect();
    try {
      await qr.startTransaction();
      await mergeCustomersTx(qr, survivor, merged, { reason: 'same person', actor: 'test', publicUrl: 'http://localhost' });
      const pending = during();
      pending.catch(() => undefined);
      await waitForLockWait(q, 'the erasure waits for the merge', { queryPrefix: waitingStatement });
      await qr.commitTransaction();
      return await pending;
    } catch (e) {
      if (qr.isTransactionActive) await qr.rollbackTransaction();
      throw e;
    } finally {
      await qr.release();
    }
  }

  it('an erasure of a customer merged away while it waited erases the survivor, not nothing', async () => {
    const t = tag();
    const [a, b] = await seed([
      { handle: `qv_${t}`, displayName: `Quorra Vantablack${t}` },
      { handle: `bs_${t}`, displayName: `Bystander Survivor${t}`, email: `bs-${t}@example.org` },
    ]);
    // the person asks for the erasure of the customer they know (a); a merge into b commits meanwhile
    const outcome = await mergeCommittedDuring(b!, a!, () => app.services.erasure.erase(a!, 'DSR-1', 'admin:test'), 'WITH root');
    expect(outcome.erasedNow).toBe(true);
    expect(outcome.request.erasedCustomerIds.sort()).toEqual([a!, b!].sort());
    expect((await grepDatabase(q, [`qv_${t}`, `Vantablack${t}`])).hits).toEqual([]);
    expect(await customerRow(a!)).toBeUndefined();
  });

  it('an erasure of a survivor that took a merge while it waited erases the merged customer too', async () => {
    const t = tag();
    const [a, b] = await seed([
      { handle: `mv_${t}`, displayName: `Merrow Vexhollow${t}` },
      { handle: `sv_${t}`, displayName: `Sorrel Vantquist${t}` },
    ]);
    const outcome = await mergeCommittedDuring(b!, a!, () => app.services.erasure.erase(b!, 'DSR-2', 'admin:test'), 'WITH root');
    expect(outcome.erasedNow).toBe(true);
    expect(outcome.request.erasedCustomerIds.sort()).toEqual([a!, b!].sort());
    // no customer row of either is left, so no name of theirs
    expect(await customerRow(a!)).toBeUndefined();
    expect((await grepDatabase(q, [`Vexhollow${t}`, `mv_${t}`, `Vantquist${t}`])).hits).toEqual([]);
  });

  it('a message of an erased person sent again (a replay of the topic, a re-sent /ingest body) is a duplicate: nothing of it comes back', async () => {
    const t = tag();
    const author = { handle: `gone_${t}`, displayName: `Replay Person${t}`, email: `replay-${t}@example.org` };
    const line = message(0, { eventId: `e-${t}`, externalId: `replayed-${t}`, author, text: `My order ${t} never came. Awful service.` });
    const first = await app.services.ingest.ingestObjects([line], 'test');
    expect(first).toMatchObject({ accepted: 1, duplicates: 0, rejected: [] });
    const customer = await app.services.erasure.findCustomer({ email: author.email });
    await app.services.erasure.erase(customer, 'DSR-replay', 'admin:test');
    const seeded = [author.handle, author.displayName, author.email, `replayed-${t}`, `order ${t}`];
    expect((await grepDatabase(q, seeded)).hits).toEqual([]);

    // Before: accepted again, with a new customer, identities and the text.
    const again = await app.services.ingest.ingestObjects([line], 'test');
    expect(again).toMatchObject({ accepted: 0, duplicates: 1, rejected: [] });
    expect((await grepDatabase(q, seeded)).hits).toEqual([]);
    // a new message of the same person is a new interaction, as before
    const next = await app.services.ingest.ingestObjects([{ ...line, eventId: `e2-${t}`, externalId: `new-${t}` }], 'test');
    expect(next).toMatchObject({ accepted: 1, duplicates: 0 });
  });

  it('the replayed message of an erased person is a duplicate whatever its key: 500 characters of emoji, combining marks, quotes, a backslash, a newline', async () => {
    const t = tag();
    const base = `${t}-😀é\u0301"'\\\n𝔘`;
    // 500 characters as the schema counts them (code points), no pair cut in two
    const key = base + '😀'.repeat(500 - [...base].length);
    const author = { handle: `odd_${t}`, displayName: `Odd Key${t}`, email: `odd-${t}@example.org` };
    const line = message(0, { eventId: `e-${t}`, externalId: key, author, text: `Parcel ${t} lost. Awful.` });
    expect(await app.services.ingest.ingestObjects([line], 'test')).toMatchObject({ accepted: 1, rejected: [] });
    await app.services.erasure.erase(await app.services.erasure.findCustomer({ email: author.email }), 'DSR-odd', 'admin:test');
    expect(await app.services.ingest.ingestObjects([line], 'test')).toMatchObject({ accepted: 0, duplicates: 1, rejected: [] });
    expect((await grepDatabase(q, [author.displayName, `Parcel ${t}`])).hits).toEqual([]);
  });

  it('an email linked by hand, unlinked by undoing the link, then erased, leaves no trace in the merge history', async () => {
    const t = tag();
    const email = `linked-${t}@example.org`;
    const [c] = await seed([{ handle: `lc_${t}`, displayName: `Link Keeper${t}` }]);
    const linked = await app.services.identity.linkIdentity(c!, 'email', null, email, 'agent:test');
    expect(linked.audit?.action).toBe('link');
    const undone = await app.services.identity.unmerge({ auditId: linked.audit!.id }, 'agent:test');
    const restored = undone.customerIds[1]!;
    expect(restored).not.toBe(c);
    const erased = await app.services.erasure.erase(await app.services.erasure.findCustomer({ email }), 'DSR-3', 'admin:test');
    expect(erased.request.erasedCustomerIds).toEqual([restored]);
    expect((await grepDatabase(q, [email])).hits).toEqual([]);
    // the customer it was linked to keeps its own history
    expect((await q(`SELECT 1 FROM merge_audit WHERE id = $1`, [linked.audit!.id])).length).toBe(1);
  });

  it('a CRM record taken into a customer by its email, split off again, then erased, leaves no name of its person behind', async () => {
    const t = tag();
    const email = `crm-link-${t}@example.org`;
    const [kept] = await seed([{ handle: `ck_${t}`, displayName: `Keeper Cormorant${t}`, email }]);
    const surname = `Thistlewaite${t}`;
    const taken = await app.services.identity.ingestCrmRecords('hubspot', 'contact', [
      { externalId: `8${parseInt(t, 16)}`, person: { givenName: 'Ottoline', surname }, identities: [{ kind: 'email', value: email }] },
    ]);
    expect(taken.customerIds).toEqual([kept]);
    const [link] = await q<{ id: string }>(`SELECT id FROM merge_audit WHERE survivor_id = $1 AND action = 'link'`, [kept]);
    const undone = await app.services.identity.unmerge({ auditId: link!.id }, 'agent:test');
    const split = undone.customerIds[1]!;
    // the customer the record goes out to is named after the record's person, as before
    expect((await customerRow(split))!.display_name).toBe(`Ottoline ${surname}`);
    await app.services.erasure.erase(split, 'DSR-6', 'admin:test');
    expect((await grepDatabase(q, [surname])).hits).toEqual([]);
    expect((await customerRow(kept!))!.display_name).toBe(`Keeper Cormorant${t}`);
  });

  it('undoing the link of a handle by hand still names the customer it makes after the handle', async () => {
    // letters only: a random hex tag of seven digits or more reads as a phone number, and is no name
    const t = tag().replace(/\d/g, (d) => 'ghijklmnop'[Number(d)]!);
    const [c] = await seed([{ handle: `hk_${t}`, displayName: `Handle Keeper${t}` }]);
    const linked = await app.services.identity.linkIdentity(c!, 'handle', 'instagram', `@ig.${t}`, 'agent:test');
    const undone = await app.services.identity.unmerge({ auditId: linked.audit!.id }, 'agent:test');
    expect((await customerRow(undone.customerIds[1]!))!.display_name).toBe(`@ig.${t}`);
  });

  it("an access request after an unmerge holds nothing of the customer merged in by mistake", async () => {
    const t = tag();
    const [a, b] = await seed([
      { handle: `mx_${t}`, displayName: `Mistaken Xanthippe${t}` },
      { handle: `rq_${t}`, displayName: `Requester Quillon${t}` },
    ]);
    const merged = await app.services.identity.merge(b!, a!, { reason: 'looked alike', actor: 'agent:test' });
    await app.services.identity.unmerge({ auditId: merged.audit!.id }, 'agent:test');
    const exported = JSON.stringify(await app.services.exports.export(b!));
    expect(exported).toContain(`Quillon${t}`);
    expect(exported).not.toContain(`Xanthippe${t}`);
    expect(exported).not.toContain(`mx_${t}`);
    // and the other way round
    const other = JSON.stringify(await app.services.exports.export(a!));
    expect(other).toContain(`Xanthippe${t}`);
    expect(other).not.toContain(`Quillon${t}`);
  });

  it('a CRM record whose email field holds 10 kB is taken in, without that value as an identity', async () => {
    const t = tag();
    const huge = `${randomBytes(5_000).toString('hex')}@example.org`;
    const out = await app.services.identity.ingestCrmRecords('hubspot', 'contact', [
      { externalId: `9${parseInt(t, 16)}`, person: { givenName: 'Long', surname: `Mail${t}` }, identities: [{ kind: 'email', value: huge }, { kind: 'email', value: `ok-${t}@example.org` }] },
    ]);
    expect(out.records).toBe(1);
    const ids = await q<{ kind: string; value: string }>(`SELECT kind, value FROM customer_identity WHERE customer_id = $1 ORDER BY kind, value`, [out.customerIds[0]]);
    expect(ids.map((i) => i.value)).toEqual([`ok-${t}@example.org`, expect.stringMatching(/^hubspot:contact:/)].sort());
  });
});

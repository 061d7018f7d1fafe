import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toGlobalId } from '../../src/graphql/relay';
import { message, startTestApp, type TestApp } from '../support/app';

// A named person merged into a customer without a name gives it their name. An unlink of their
// identity, or an undo of the merge, takes them out of that customer again; then they are erased.
// Their name must then be nowhere: not in GraphQL, not in the other customer's data export, not in
// any table (pg_dump --data-only of the whole database, as privacy-erasure-dump.test.ts does).
// Before, the merged-away customer row and the merge's audit snapshot kept it after an unlink,
// and the snapshot of a later merge of the survivor kept it after an undo.

const execFileP = promisify(execFile);

describe('an erased person split off a merge leaves their name nowhere', () => {
  let app: TestApp;
  let n = 7_100_000;

  const dump = async () => (await execFileP('pg_dump', ['--data-only', '--no-owner', '--dbname', app.database.url], { maxBuffer: 512 * 1024 * 1024 })).stdout;
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  const cid = (id: string) => toGlobalId('Customer', id);
  async function gql<T>(query: string, variables: Record<string, unknown>): Promise<T> {
    const r = await app.gql<T>(query, variables);
    expect(r.errors, query).toBeUndefined();
    return r.data;
  }
  /** the root customer holding an identity */
  const ownerOf = async (kind: string, value: string) =>
    (await q<{ id: string }>(`SELECT coalesce(c.merged_into_id, c.id) AS id FROM customer_identity ci JOIN customer c ON c.id = ci.customer_id WHERE ci.kind = $1 AND ci.value = $2`, [kind, value]))[0]!.id;
  /** a customer known only by an email address: no name */
  async function nameless(email: string): Promise<string> {
    await gql(`mutation($input: [InteractionInput!]!) { ingestInteractions(input: $input) { accepted } }`, {
      input: [{ ...message(n++, { source: 'email', author: { email }, text: 'Where is my invoice?' }), direction: 'INBOUND' }],
    });
    const id = await ownerOf('email', email);
    expect((await q<{ display_name: string | null }>(`SELECT display_name FROM customer WHERE id = $1`, [id]))[0]!.display_name).toBeNull();
    return id;
  }
  /** the named person (an X handle), merged by hand into `survivor`, which takes the name */
  async function mergedInto(survivor: string, handle: string, name: string): Promise<{ person: string; mergeId: string }> {
    await gql(`mutation($input: [InteractionInput!]!) { ingestInteractions(input: $input) { accepted } }`, {
      input: [{ ...message(n++, { author: { handle, displayName: name }, text: `My ${handle} parcel is late. Terrible.` }), direction: 'INBOUND' }],
    });
    const person = await ownerOf('handle', `x:${handle}`);
    const m = await gql<{ mergeCustomers: { audit: { id: string }; customers: { displayName: string | null }[] } }>(
      `mutation($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "same person, ticket 12") { audit { id } customers { displayName } } }`,
      { s: cid(survivor), m: cid(person) },
    );
    expect(m.mergeCustomers.customers[0]!.displayName).toBe(name);
    return { person, mergeId: m.mergeCustomers.audit.id };
  }
  const erase = (id: string) => gql<{ eraseCustomer: { erasedNow: boolean } }>(`mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-4242") { erasedNow } }`, { id: cid(id) });

  /** Where the name (or the handle) still is: GraphQL, the survivor's export, every table. */
  async function traces(survivors: string[], person: string, name: string, handle: string): Promise<string[]> {
    const found: string[] = [];
    const hit = (s: string) => s.toLowerCase().includes(name.toLowerCase()) || s.toLowerCase().includes(handle);
    for (const id of [...survivors, person]) {
      const c = await app.gql<{ customer: { displayName: string | null } | null }>(`query($id: ID!) { customer(id: $id) { displayName } }`, { id: cid(id) });
      if (hit(JSON.stringify(c.data))) found.push(`GraphQL customer(${id}): ${JSON.stringify(c.data)}`);
    }
    const search = await app.gql<{ customers: { edges: unknown[] } | null }>(`query($s: String!) { customers(first: 5, search: $s) { totalCount edges { node { id displayName } } } }`, { s: name });
    if (hit(JSON.stringify(search.data?.customers?.edges ?? []))) found.push(`GraphQL customers(search): ${JSON.stringify(search.data)}`);
    for (const id of survivors) {
      const e = await gql<{ customerDataExport: Record<string, unknown> }>(`query($id: ID!) { customerDataExport(id: $id) }`, { id: cid(id) });
      for (const [list, v] of Object.entries(e.customerDataExport)) if (hit(JSON.stringify(v))) found.push(`export of ${id}, ${list}: ${JSON.stringify(v).slice(0, 400)}`);
    }
    for (const line of (await dump()).split('\n')) if (hit(line)) found.push(`dump: ${line.slice(0, 400)}`);
    return found;
  }

  beforeAll(async () => {
    app = await startTestApp({}, 'erasesplitname');
  }, 60_000);

  afterAll(async () => {
    await app?.close();
  });

  it('after the named identity is unlinked (unlinkIdentity) and its customer erased', async () => {
    const name = 'Pia Leftover';
    const handle = 'pialeftover_x';
    const survivor = await nameless('quill.unlink@example.com');
    const { person } = await mergedInto(survivor, handle, name);
    await gql(`mutation($c: ID!) { unlinkIdentity(customerId: $c, kind: HANDLE, network: "x", value: "${handle}") { customers { id } } }`, { c: cid(survivor) });
    const split = await ownerOf('handle', `x:${handle}`);
    expect(split).not.toBe(survivor);
    // the name left the survivor with its owner; the merged-away row and the merge's snapshot hold it
    expect((await traces([survivor], person, name, handle)).filter((t) => t.startsWith('dump')).length).toBeGreaterThanOrEqual(2);

    expect((await erase(split)).eraseCustomer.erasedNow).toBe(true);
    expect(await traces([survivor], person, name, handle)).toEqual([]);
    // what the erasure keeps: the survivor, its own identity, and the merge record (ids, reason, no name)
    const [merge] = await q<{ snapshot: { displayName: string | null; identities: string[] }; reason: string }>(`SELECT snapshot, reason FROM merge_audit WHERE action = 'merge' AND merged_id = $1`, [person]);
    expect(merge!.snapshot.displayName).toBeNull();
    expect(merge!.reason).toBe('same person, ticket 12');
    expect(await ownerOf('email', 'quill.unlink@example.com')).toBe(survivor);
  }, 60_000);

  it('after the merge is undone (unmergeCustomer) and the restored customer erased', async () => {
    const name = 'Pia Undoneleft';
    const handle = 'piaundone_x';
    const survivor = await nameless('quill.undo@example.com');
    const { person, mergeId } = await mergedInto(survivor, handle, name);
    await gql(`mutation($id: ID!) { unmergeCustomer(mergeId: $id, reason: "two people") { customers { id } } }`, { id: mergeId });
    expect(await ownerOf('handle', `x:${handle}`)).toBe(person);

    expect((await erase(person)).eraseCustomer.erasedNow).toBe(true);
    expect(await traces([survivor], person, name, handle)).toEqual([]);
  }, 60_000);

  it('after the survivor was merged on into another nameless customer and the first merge is undone', async () => {
    const name = 'Pia Chainleft';
    const handle = 'piachain_x';
    const survivor = await nameless('quill.chain@example.com');
    const { person, mergeId } = await mergedInto(survivor, handle, name);
    // the survivor merges on into a third customer without a name, which takes the name too
    const third = await nameless('quill.chain2@example.com');
    const on = await gql<{ mergeCustomers: { customers: { displayName: string | null }[] } }>(
      `mutation($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "same person, ticket 13") { customers { displayName } } }`,
      { s: cid(third), m: cid(survivor) },
    );
    expect(on.mergeCustomers.customers[0]!.displayName).toBe(name);
    await gql(`mutation($id: ID!) { unmergeCustomer(mergeId: $id, reason: "two people") { customers { id } } }`, { id: mergeId });
    expect(await ownerOf('handle', `x:${handle}`)).toBe(person);

    expect((await erase(person)).eraseCustomer.erasedNow).toBe(true);
    expect(await traces([third, survivor], person, name, handle)).toEqual([]);
    // the later merge stays undoable: the survivor comes back, without the name
    const back = await gql<{ unmergeCustomer: { customers: { id: string; displayName: string | null }[] } }>(
      `mutation($c: ID!) { unmergeCustomer(customerId: $c, reason: "two people") { customers { id displayName } } }`,
      { c: cid(survivor) },
    );
    expect(back.unmergeCustomer.customers.map((c) => c.displayName)).toEqual([null, null]);
  }, 60_000);

  it('an unlink of one of two identities the merge brought, then its erasure, leaves the name with the other', async () => {
    // the person is still on the survivor through their email: the name is theirs to keep there
    const name = 'Pia Twoways';
    const handle = 'piatwo_x';
    const survivor = await nameless('quill.two@example.com');
    await gql(`mutation($input: [InteractionInput!]!) { ingestInteractions(input: $input) { accepted } }`, {
      input: [{ ...message(n++, { author: { handle, displayName: name, email: 'pia.two@example.com' }, text: 'Hello?' }), direction: 'INBOUND' }],
    });
    const person = await ownerOf('handle', `x:${handle}`);
    await gql(`mutation($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "same person") { customers { id } } }`, { s: cid(survivor), m: cid(person) });
    await gql(`mutation($c: ID!) { unlinkIdentity(customerId: $c, kind: HANDLE, network: "x", value: "${handle}") { customers { id } } }`, { c: cid(survivor) });
    await erase(await ownerOf('handle', `x:${handle}`));
    const c = await gql<{ customer: { displayName: string | null } }>(`query($id: ID!) { customer(id: $id) { displayName } }`, { id: cid(survivor) });
    expect(c.customer.displayName).toBe(name);
    const [merge] = await q<{ snapshot: { displayName: string | null } }>(`SELECT snapshot FROM merge_audit WHERE action = 'merge' AND merged_id = $1`, [person]);
    expect(merge!.snapshot.displayName).toBe(name);
  }, 60_000);
});

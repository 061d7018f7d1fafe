import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

/**
 * Identifiers many unrelated people share (placeholder emails, fake phones, a role address, one
 * email an attacker copies) must not collapse them into one customer.
 */
describe('identity hubs: shared placeholder identifiers', () => {
  let app: TestApp;
  let n = 0;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_IDENTITY_IGNORED: 'info@, @switchboard.example, x:acmebrand', EARSHOT_IDENTITY_HUB_CAP: '25' }, 'idhubs');
  });
  afterAll(async () => {
    await app?.close();
  });

  const post = async (lines: unknown[]) => {
    const r = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(r.status).toBe(200);
    return (await r.json()) as { accepted: number };
  };
  /** the distinct root customers the given handles belong to */
  const rootsOfHandles = async (handles: string[]): Promise<string[]> => {
    const rows = (await app.db.ds.query(
      `SELECT DISTINCT coalesce(c.merged_into_id, c.id) AS root FROM customer_identity ci JOIN customer c ON c.id = ci.customer_id
        WHERE ci.kind = 'handle' AND ci.value = ANY($1::text[])`,
      [handles.map((h) => `x:${h}`)],
    )) as { root: string }[];
    return rows.map((r) => r.root);
  };
  const identityCount = async (kind: string, value: string): Promise<number> => {
    const [{ c }] = (await app.db.ds.query(`SELECT count(*)::int AS c FROM customer_identity WHERE kind = $1 AND value = $2`, [kind, value])) as { c: number }[];
    return c;
  };
  const cappedTotal = async () => (await app.metrics.registry.getSingleMetric('earshot_identity_hub_capped_total')!.get()).values[0]?.value ?? 0;
  /** `count` distinct people (own handle and name) who all give `author` fields, in batches of 50 */
  const people = async (tag: string, count: number, author: Record<string, unknown>): Promise<string[]> => {
    const handles = Array.from({ length: count }, (_, i) => `${tag}${i}`);
    const lines = handles.map((h, i) => message(++n + 500_000, { externalId: `${tag}-${i}`, eventId: `${tag}-evt-${i}`, author: { handle: h, displayName: `Person ${tag} ${i}`, ...author } }));
    const t0 = performance.now();
    for (let i = 0; i < lines.length; i += 50) await post(lines.slice(i, i + 50));
    // measured figures for the report
    console.info(`[identity-hubs] ${count} people sharing ${JSON.stringify(author)}: ${(performance.now() - t0).toFixed(0)} ms`);
    return handles;
  };

  it('keeps 200 people who all give a placeholder email apart', async () => {
    for (const email of ['test@test.com', 'noreply@shop.example', 'None@None.com']) {
      const tag = `ph${email.slice(0, 4).toLowerCase()}`;
      const handles = await people(tag, 200, { email });
      const roots = await rootsOfHandles(handles);
      console.info(`[identity-hubs] ${email}: 200 people -> ${roots.length} customers`);
      expect(roots).toHaveLength(200);
      expect(await identityCount('email', email.toLowerCase())).toBe(0);
    }
  });

  it('keeps people who give a fake or repeated-digit phone apart (invalid ones were already refused)', async () => {
    for (const [i, phone] of ['+1 234 567 8900', '+44 7777 777777', '(212) 555-1212', '0000000000', '+1 555-555-5555', '1234567890'].entries()) {
      const handles = await people(`fp${i}_`, 40, { phone });
      const roots = await rootsOfHandles(handles);
      console.info(`[identity-hubs] ${phone}: 40 people -> ${roots.length} customers`);
      expect(roots).toHaveLength(40);
    }
  });

  it('never links on configured role addresses or a brand account (EARSHOT_IDENTITY_IGNORED)', async () => {
    const a = await people('role', 30, { email: 'INFO@acme-shop.example' });
    expect(await rootsOfHandles(a)).toHaveLength(30);
    const b = await people('desk', 30, { phone: '+1 415 555 2671', email: 'desk@switchboard.example' });
    // the phone is a real-looking number shared by 30: the hub cap (25) keeps the rest apart
    expect((await rootsOfHandles(b)).length).toBeGreaterThanOrEqual(6);
    // the brand's own account as the author of inbound mentions never becomes anybody's identity
    await post([message(++n + 600_000, { author: { handle: 'AcmeBrand', email: 'one.person@example.com' } }), message(++n + 600_000, { author: { handle: 'acmebrand', email: 'another.person@example.com' } })]);
    expect(await identityCount('handle', 'x:acmebrand')).toBe(0);
    const owners = (await app.db.ds.query(`SELECT DISTINCT customer_id FROM customer_identity WHERE kind = 'email' AND value IN ('one.person@example.com', 'another.person@example.com')`)) as unknown[];
    expect(owners).toHaveLength(2);
  });

  it('keeps CRM records that share a placeholder email apart, across objects and systems', async () => {
    const ids = app.services.identity;
    const t0 = performance.now();
    const hs = await ids.ingestCrmRecords('hubspot', 'contact', Array.from({ length: 40 }, (_, i) => ({ externalId: `77${i}00`, person: { givenName: `Hub${i}`, surname: `Spot${i}` }, identities: [{ kind: 'email' as const, value: 'na@na.com' }] })));
    const sf = await ids.ingestCrmRecords('salesforce', 'Lead', Array.from({ length: 40 }, (_, i) => ({ externalId: `00Q00000000${String(i).padStart(2, '0')}77AAA`, person: { givenName: `Sales${i}`, surname: `Force${i}` }, identities: [{ kind: 'email' as const, value: 'na@na.com' }, { kind: 'phone' as const, value: '+1 234 567 8900' }] })));
    console.info(`[identity-hubs] 80 CRM records sharing na@na.com: ${(performance.now() - t0).toFixed(0)} ms, merged ${hs.merged + sf.merged}, suggested ${hs.suggested + sf.suggested}, customers ${new Set([...hs.customerIds, ...sf.customerIds]).size}`);
    const all = [...hs.customerIds, ...sf.customerIds];
    expect(new Set(all).size).toBe(80);
    expect(hs.merged + sf.merged).toBe(0);
    // (the matcher may still suggest pairs on their look-alike names; never on the placeholder)
    const [{ onEmail }] = (await app.db.ds.query(
      `SELECT count(*)::int AS "onEmail" FROM merge_suggestion WHERE (customer_a_id = ANY($1::uuid[]) OR customer_b_id = ANY($1::uuid[])) AND evidence @> '[{"field": "email", "outcome": "agree"}]'`,
      [[...hs.customerIds, ...sf.customerIds]],
    )) as { onEmail: number }[];
    expect(onEmail).toBe(0);
    // a person who later writes with the placeholder joins none of them
    const handles = await people('crmph', 5, { email: 'na@na.com' });
    const roots = await rootsOfHandles(handles);
    expect(roots.filter((r) => all.includes(r))).toEqual([]);
  });

  it('caps how many authors one shared email pulls into one customer; the rest go to review', async () => {
    const ids = app.services.identity;
    const victim = await ids.ingestCrmRecords('hubspot', 'contact', [{ externalId: '880001', person: { givenName: 'Vic', surname: 'Tim' }, identities: [{ kind: 'email', value: 'vic.tim@example.com' }] }]);
    const victimId = victim.customerIds[0]!;
    const cappedBefore = await cappedTotal();
    // 100 distinct authors (an attacker's sock puppets, or a shared mailbox) all give the victim's email
    const handles = await people('sock', 100, { email: 'Vic.Tim@example.com' });
    const roots = await rootsOfHandles(handles);
    console.info(`[identity-hubs] 100 authors with a CRM contact's email -> ${roots.length} customers`);
    const [{ handles: onVictim }] = (await app.db.ds.query(`SELECT count(*)::int AS handles FROM customer_identity WHERE customer_id = $1 AND kind = 'handle'`, [victimId])) as { handles: number }[];
    expect(onVictim).toBeLessThanOrEqual(25);
    expect(roots.length).toBeGreaterThanOrEqual(75);
    const [{ pending }] = (await app.db.ds.query(`SELECT count(*)::int AS pending FROM merge_suggestion WHERE status = 'pending' AND $1 IN (customer_a_id, customer_b_id)`, [victimId])) as { pending: number }[];
    expect(pending).toBe(100 - onVictim);
    // logged and counted: earshot_identity_hub_capped_total
    expect((await cappedTotal()) - cappedBefore).toBe(100 - onVictim);
  });

  it('never merges two CRM customers because one author names an email of each; suggests them instead', async () => {
    const ids = app.services.identity;
    const a = (await ids.ingestCrmRecords('salesforce', 'Contact', [{ externalId: '003000000000077AAA', person: { givenName: 'Ada', surname: 'First' }, identities: [{ kind: 'email', value: 'ada.first@example.com' }] }])).customerIds[0]!;
    const b = (await ids.ingestCrmRecords('hubspot', 'contact', [{ externalId: '990077', person: { givenName: 'Bo', surname: 'Second' }, identities: [{ kind: 'email', value: 'bo.second@example.com' }] }])).customerIds[0]!;
    // one account writes first with Ada's email, then with Bo's: two unrelated CRM contacts
    await post([message(++n + 800_000, { author: { handle: 'bridger', email: 'ada.first@example.com' }, text: 'Terrible, never again.' })]);
    await post([message(++n + 800_000, { author: { handle: 'bridger', email: 'bo.second@example.com' }, text: 'Terrible, never again.' })]);
    const live = (await app.db.ds.query(`SELECT id FROM customer WHERE id = ANY($1::uuid[]) AND merged_into_id IS NULL`, [[a, b]])) as unknown[];
    expect(live).toHaveLength(2);
    const [{ c }] = (await app.db.ds.query(`SELECT count(*)::int AS c FROM merge_suggestion WHERE status = 'pending' AND ARRAY[customer_a_id, customer_b_id] @> ARRAY[$1::uuid, $2::uuid]`, [a, b])) as { c: number }[];
    expect(c).toBe(1);
  });

  it('still makes one customer of one person arriving 20 times at once', async () => {
    const email = 'same.hub.person@example.com';
    await Promise.all(Array.from({ length: 20 }, (_, i) => post([message(++n + 700_000, { author: { handle: `samehub${i}`, displayName: 'Same Person', email } })])));
    expect(await rootsOfHandles(Array.from({ length: 20 }, (_, i) => `samehub${i}`))).toHaveLength(1);
  });
});

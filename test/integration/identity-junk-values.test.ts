import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

/**
 * Real CRM exports and social feeds fill required fields with junk that many unrelated people
 * share: `no@email.com`, `a@a.com`, a company's toll-free line, a handle of `null`, a CRM id of
 * `0`, a name of `Guest`. None of it may make two people one customer: the second person's
 * complaints and sentiment would show on the first one's CRM record.
 */
describe('identity: junk values from real exports never merge people', () => {
  let app: TestApp;
  let n = 0;
  beforeAll(async () => {
    app = await startTestApp({}, 'idjunk');
  });
  afterAll(async () => {
    await app?.close();
  });

  const post = async (lines: unknown[]) => {
    const r = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { accepted: number }).accepted).toBe(lines.length);
  };
  /** the distinct root customers of these identity keys */
  const roots = async (kind: string, values: string[]): Promise<string[]> => {
    const rows = (await app.db.ds.query(
      `SELECT DISTINCT coalesce(c.merged_into_id, c.id) AS root FROM customer_identity ci JOIN customer c ON c.id = ci.customer_id
        WHERE ci.kind = $1 AND ci.value = ANY($2::text[])`,
      [kind, values],
    )) as { root: string }[];
    return rows.map((r) => r.root);
  };

  // junk seen in CRM exports and web forms; each goes to 10 of the 200 people below
  const junkEmails = ['no@email.com', 'customer@example.com', 'a@a.com', 'abc@abc.com', 'user@example.com', 'guest@guest.com', 'noname@noname.com', 'notprovided@gmail.com', 'no.email@gmail.com', 'name@domain.com', 'youremail@domain.com', 'dummy@dummy.com', 'a@b.com', '123@123.com', 'sample@sample.com', 'declined@declined.com'];
  const junkPhones = ['+1 800 555 0199', '1-888-555-0142', '(212) 555-5555', '+44 800 123 4567'];
  const junkNames = ['Unknown', 'Guest', 'Customer', 'Anonymous', 'N/A', 'Test', 'Valued Customer', '.'];

  it('keeps 200 people apart who each give one junk email or phone beside their own handle', async () => {
    const tag = `jk${Date.now().toString(36)}`;
    const junk: Record<string, unknown>[] = [...junkEmails.map((email) => ({ email })), ...junkPhones.map((phone) => ({ phone }))];
    const handles = Array.from({ length: 200 }, (_, i) => `${tag}_${i}`);
    const lines = handles.map((h, i) => message(++n + 900_000, { externalId: `${tag}-${i}`, eventId: `${tag}-e${i}`, author: { handle: h, displayName: junkNames[i % junkNames.length], ...junk[i % junk.length] } }));
    for (let i = 0; i < lines.length; i += 50) await post(lines.slice(i, i + 50));
    const customers = await roots('handle', handles.map((h) => `x:${h}`));
    console.info(`[identity-junk] 200 people, ${junk.length} junk values: ${customers.length} customers`);
    expect(customers).toHaveLength(200);
    const [{ stored }] = (await app.db.ds.query(`SELECT count(*)::int AS stored FROM customer_identity WHERE kind IN ('email', 'phone') AND customer_id = ANY($1::uuid[])`, [customers])) as { stored: number }[];
    expect(stored).toBe(0);
  });

  it('keeps people apart whose feed gave a junk handle or CRM id beside their own email', async () => {
    const tag = `jh${Date.now().toString(36)}`;
    // a feed's missing author (one handle for all), or an own handle beside a lost CRM id
    const junk: Array<(i: number) => Record<string, unknown>> = [
      () => ({ handle: 'null' }),
      () => ({ handle: 'undefined' }),
      () => ({ handle: 'Anonymous' }),
      () => ({ handle: 'unknown' }),
      (i) => ({ handle: `${tag}_${i}`, crmIds: [{ system: 'hubspot', objectType: 'contact', id: '0' }] }),
      (i) => ({ handle: `${tag}_${i}`, crmIds: [{ system: 'salesforce', objectType: 'Contact', id: '0' }] }),
      (i) => ({ handle: `${tag}_${i}`, crmIds: [{ system: 'hubspot', objectType: 'contact', id: 'null' }] }),
    ];
    const emails = Array.from({ length: 70 }, (_, i) => `${tag}.person${i}@example.org`);
    const lines = emails.map((email, i) => message(++n + 900_000, { externalId: `${tag}-${i}`, eventId: `${tag}-e${i}`, author: { ...junk[i % junk.length]!(i), email, displayName: 'Unknown' } }));
    for (let i = 0; i < lines.length; i += 35) await post(lines.slice(i, i + 35));
    const customers = await roots('email', emails);
    console.info(`[identity-junk] 70 people with junk handles or CRM ids: ${customers.length} customers`);
    expect(customers).toHaveLength(70);
  });

  it('keeps CRM records with junk names and junk emails apart, and suggests none on the junk', async () => {
    const ids = app.services.identity;
    const base = 10_000 + Math.floor(Math.random() * 80_000);
    // A B2B export: contacts entered without a real name, at one company and office, with junk
    // emails and the switchboard's toll-free number; half in HubSpot, half in Salesforce (two
    // records of one CRM object are only ever suggested, so the pair across systems is the test).
    const record = (i: number, externalId: string) => {
      const [given, surname] = junkNames[i % junkNames.length]!.split(' ');
      return {
        externalId,
        person: { givenName: given, surname: surname ?? null, company: 'Harbor Freight Lines', city: 'Tacoma', state: 'WA', postcode: '98402' },
        identities: [{ kind: 'email' as const, value: junkEmails[i % junkEmails.length]! }, { kind: 'phone' as const, value: junkPhones[i % junkPhones.length]! }],
      };
    };
    const hs = await ids.ingestCrmRecords('hubspot', 'contact', Array.from({ length: 12 }, (_, i) => record(i, `${base}${String(i).padStart(2, '0')}`)));
    const sf = await ids.ingestCrmRecords('salesforce', 'Contact', Array.from({ length: 12 }, (_, i) => record(i, `003J${base}${String(i).padStart(2, '0')}Aa`.padEnd(15, 'b'))));
    const all = [...hs.customerIds, ...sf.customerIds];
    const live = (await app.db.ds.query(`SELECT DISTINCT coalesce(merged_into_id, id) AS root FROM customer WHERE id = ANY($1::uuid[])`, [all])) as unknown[];
    console.info(`[identity-junk] 24 CRM contacts with junk names and emails at one office: ${live.length} customers, merged ${hs.merged + sf.merged}, suggested ${hs.suggested + sf.suggested}`);
    expect(live).toHaveLength(24);
    expect(hs.merged + sf.merged).toBe(0);
    // a person may still review them (one office), but never because of the junk
    const [{ onJunk }] = (await app.db.ds.query(
      `SELECT count(*)::int AS "onJunk" FROM merge_suggestion WHERE (customer_a_id = ANY($1::uuid[]) OR customer_b_id = ANY($1::uuid[]))
          AND (evidence @> '[{"field": "email", "outcome": "agree"}]' OR evidence @> '[{"field": "phone", "outcome": "agree"}]'
            OR evidence @> '[{"field": "given_name", "outcome": "agree"}]' OR evidence @> '[{"field": "surname", "outcome": "agree"}]')`,
      [all],
    )) as { onJunk: number }[];
    expect(onJunk).toBe(0);
  });

  it('still links what genuinely identifies one person: a real email, a mobile number, a handle', async () => {
    const tag = `jg${Date.now().toString(36)}`;
    const email = `${tag}.jane.roe@gmail.com`;
    await post([
      message(++n + 900_000, { externalId: `${tag}-1`, eventId: `${tag}-e1`, author: { handle: `${tag}_a`, email, displayName: 'Guest' } }),
      message(++n + 900_000, { externalId: `${tag}-2`, eventId: `${tag}-e2`, author: { handle: `${tag}_b`, email: email.toUpperCase(), phone: '+1 415 555 2671' } }),
      message(++n + 900_000, { externalId: `${tag}-3`, eventId: `${tag}-e3`, source: 'sms', author: { handle: '(415) 555-2671' } }),
      message(++n + 900_000, { externalId: `${tag}-4`, eventId: `${tag}-e4`, author: { handle: `${tag}_a`, displayName: 'Jane Roe' } }),
    ]);
    expect(await roots('handle', [`x:${tag}_a`, `x:${tag}_b`])).toHaveLength(1);
    const [{ n: onCustomer }] = (await app.db.ds.query(
      `SELECT count(*)::int AS n FROM interaction i JOIN customer c ON c.id = i.customer_id WHERE i.external_id LIKE $1 AND coalesce(c.merged_into_id, c.id) = $2`,
      [`${tag}-%`, (await roots('email', [email.toLowerCase()]))[0]],
    )) as { n: number }[];
    expect(onCustomer).toBe(4);
  });
});

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app';

// A company reply that names its addressee alone (no inReplyTo: an email whose
// metadata.recipientHandle is the person's address, a post opening with their @handle) carries no
// customer; it keeps whom it addresses (interaction.recipient_key), and an erasure redacts it with
// the person. The access request did not export it: "Dear …, your refund …" and the person's
// address in its metadata were personal data about them that their own export left out. The export
// now lists exactly the replies the erasure would redact (the same keys), paged like interactions.

const KEYS = {
  admin: 'admin-key-addressed-0123456789',
  analyst: 'analyst-key-addressed-0123456789',
  agent: 'agent-key-addressed-0123456789',
  sales: 'sales-key-addressed-0123456789',
  service: 'service-key-addressed-0123456789',
};
const ADMIN = { 'x-api-key': KEYS.admin };
const BASE = Date.UTC(2026, 10, 2, 9, 0, 0);

type Row = { id: string; text: string; source: string; direction: string; metadata: Record<string, unknown> | null; customer_id: string | null };
type Export = {
  interactionsTotal: number;
  interactions: Row[];
  interactionsNext: string | null;
  addressedRepliesTotal: number;
  addressedReplies: Row[];
  addressedRepliesNext: string | null;
  listeningItems: unknown[];
  identities: unknown[];
};

describe('the data export holds the company replies addressed to the person', () => {
  let app: TestApp;
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  const exportOf = (id: string, args = '', headers: Record<string, string> = ADMIN) =>
    app.gql<{ customerDataExport: Export }>(`query($id: ID!) { customerDataExport(id: $id${args ? `, ${args}` : ''}) }`, { id }, headers);

  /**
   * A person (their own tag) who writes by email and on X, the company's replies to them by
   * addressee alone (email with metadata.recipientHandle in another spelling, X with a leading
   * @Handle in another case), and replies to someone else on both channels.
   */
  async function seedPerson(tag: string) {
    const p = { email: `qv.${tag}@example.org`, handle: `qv_${tag}`, word: `qvword${tag}` };
    const other = { email: `other.${tag}@example.org`, handle: `other_${tag}` };
    const at = (min: number) => new Date(BASE + min * 60_000).toISOString();
    const msg = (n: number, over: Record<string, unknown>) => ({ eventId: `${tag}-evt-${n}`, externalId: `${tag}-${n}`, occurredAt: at(n), ...over });
    const res = await app.services.ingest.ingestObjects(
      [
        msg(1, { source: 'email', direction: 'inbound', author: { email: p.email, displayName: 'Qvinta Marsh' }, text: `My ${p.word} refund never came. Terrible.` }),
        msg(2, { source: 'x', direction: 'inbound', author: { handle: p.handle, email: p.email, displayName: 'Qvinta Marsh' }, text: `Still no ${p.word} refund, awful service.` }),
        msg(3, { source: 'email', direction: 'outbound', author: { handle: 'care@brand.example' }, text: `Dear Qvinta, your ${p.word} refund is on its way.`,
          metadata: { recipientHandle: `Qvinta Marsh <${p.email.toUpperCase()}>` } }),
        msg(4, { source: 'x', direction: 'outbound', author: { handle: 'brandcare' }, text: `@${p.handle.toUpperCase()} so sorry about the ${p.word} refund, on it.` }),
        // someone else, and the company's replies to them
        msg(5, { source: 'email', direction: 'inbound', author: { email: other.email }, text: 'Where is my parcel? Terrible.' }),
        msg(6, { source: 'email', direction: 'outbound', author: { handle: 'care@brand.example' }, text: 'Dear Other, your parcel ships today.', metadata: { recipientHandle: other.email } }),
        msg(7, { source: 'x', direction: 'outbound', author: { handle: 'brandcare' }, text: `@${other.handle} your parcel ships today.` }),
      ],
      'test',
    );
    expect(res.rejected).toEqual([]);
    const byExt = async (n: number) => (await q<{ id: string; customer_id: string | null }>(`SELECT id, customer_id FROM interaction WHERE external_id = $1`, [`${tag}-${n}`]))[0]!;
    const own = [(await byExt(1)), (await byExt(2))];
    expect(own[0]!.customer_id).toBeTruthy();
    expect(own[1]!.customer_id).toBe(own[0]!.customer_id);
    const customerId = own[0]!.customer_id!;
    return {
      p,
      customerId,
      gid: Buffer.from(`Customer:${customerId}`).toString('base64url'),
      own: own.map((o) => o.id),
      replies: [(await byExt(3)).id, (await byExt(4)).id],
      others: [(await byExt(6)).id, (await byExt(7)).id],
    };
  }

  beforeAll(async () => {
    app = await startTestApp(
      { EARSHOT_ROLES: 'api', EARSHOT_API_KEYS: Object.entries(KEYS).map(([role, key]) => `${key}:${role}`).join(','), EARSHOT_GAP_ESCALATION: 'off' },
      'exportaddressed',
    );
  }, 120_000);

  afterAll(async () => {
    await app?.close();
  });

  it('lists exactly the two replies addressed to the person, not the one to someone else, and the erasure redacts exactly those', async () => {
    const s = await seedPerson(randomUUID().slice(0, 8));
    const r = await exportOf(s.gid);
    expect(r.errors).toBeUndefined();
    const x = r.data.customerDataExport;
    // the existing fields as before: the person's own messages
    expect(x.interactionsTotal).toBe(2);
    expect(x.interactions.map((i) => i.id).sort()).toEqual([...s.own].sort());
    expect(x.interactionsNext).toBeNull();
    // the replies addressed to them, oldest first, as stored (text and metadata)
    expect(x.addressedRepliesTotal).toBe(2);
    expect(x.addressedReplies.map((i) => i.id)).toEqual(s.replies);
    expect(x.addressedRepliesNext).toBeNull();
    expect(x.addressedReplies.map((i) => [i.source, i.direction, i.customer_id])).toEqual([['email', 'outbound', null], ['x', 'outbound', null]]);
    expect(x.addressedReplies[0]!.text).toContain(s.p.word);
    expect(JSON.stringify(x.addressedReplies[0]!.metadata).toLowerCase()).toContain(s.p.email);
    expect(x.addressedReplies[1]!.text).toContain(`@${s.p.handle.toUpperCase()}`);
    for (const other of s.others) expect(JSON.stringify(x)).not.toContain(other);
    expect(JSON.stringify(x)).not.toContain('Dear Other');

    // consistent with the erasure: the replies it redacts besides the person's own are the exported ones
    const erased = await app.gql<{ eraseCustomer: { interactions: number } }>(
      'mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-addr") { interactions } }', { id: s.gid }, ADMIN);
    expect(erased.errors).toBeUndefined();
    expect(erased.data.eraseCustomer.interactions).toBe(4);
    const redacted = await q<{ id: string }>(`SELECT id FROM interaction WHERE id = ANY($1::uuid[]) AND redacted_at IS NOT NULL ORDER BY occurred_at`, [[...s.replies, ...s.others]]);
    expect(redacted.map((i) => i.id)).toEqual(x.addressedReplies.map((i) => i.id));
  }, 60_000);

  it('pages the replies on their own: addressedRepliesFirst / addressedRepliesAfter, a cursor that names nothing or a bad size is BAD_USER_INPUT', async () => {
    const s = await seedPerson(randomUUID().slice(0, 8));
    const first = await exportOf(s.gid, 'addressedRepliesFirst: 1');
    expect(first.errors).toBeUndefined();
    expect(first.data.customerDataExport.addressedRepliesTotal).toBe(2);
    expect(first.data.customerDataExport.addressedReplies.map((i) => i.id)).toEqual([s.replies[0]]);
    expect(first.data.customerDataExport.addressedRepliesNext).toBe(s.replies[0]);
    // the interactions are not paged by it
    expect(first.data.customerDataExport.interactions).toHaveLength(2);
    const second = await exportOf(s.gid, `addressedRepliesAfter: "${s.replies[0]}"`);
    expect(second.errors).toBeUndefined();
    expect(second.data.customerDataExport.addressedReplies.map((i) => i.id)).toEqual([s.replies[1]]);
    expect(second.data.customerDataExport.addressedRepliesNext).toBeNull();
    for (const args of ['addressedRepliesFirst: 0', 'addressedRepliesFirst: 5001', 'addressedRepliesAfter: "nope"', `addressedRepliesAfter: "${randomUUID()}"`]) {
      const bad = await exportOf(s.gid, args);
      expect(bad.errors?.[0]?.extensions?.code, args).toBe('BAD_USER_INPUT');
    }
  }, 60_000);

  it('refuses an unpaged export of more than 5,000 replies with how to page, and pages them', async () => {
    const s = await seedPerson(randomUUID().slice(0, 8));
    // 5,000 more copies of the email reply to the person, in one statement
    await q(
      `INSERT INTO interaction (event_id, source, external_id, text, occurred_at, direction, author_handle, metadata, recipient_key,
                sentiment_score, sentiment_label, sentiment_confidence, intent, intent_confidence, explanation)
       SELECT 'copy-' || g || '-' || t.external_id, t.source, 'copy-' || g || '-' || t.external_id, t.text, t.occurred_at + make_interval(secs => g), t.direction, t.author_handle, t.metadata, t.recipient_key,
              t.sentiment_score, t.sentiment_label, t.sentiment_confidence, t.intent, t.intent_confidence, t.explanation
         FROM generate_series(1, 5000) g, (SELECT * FROM interaction WHERE id = $1) t`,
      [s.replies[0]],
    );
    const whole = await exportOf(s.gid);
    expect(whole.data?.customerDataExport ?? null).toBeNull();
    expect(whole.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(whole.errors?.[0]?.message).toContain('has 5002 replies addressed to them');
    expect(whole.errors?.[0]?.message).toContain('addressedRepliesNext');
    const seen: string[] = [];
    let after: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof exportOf>> = await exportOf(s.gid, after ? `addressedRepliesAfter: "${after}"` : 'addressedRepliesFirst: 5000');
      expect(page.errors).toBeUndefined();
      expect(page.data.customerDataExport.addressedRepliesTotal).toBe(5002);
      expect(page.data.customerDataExport.addressedReplies.length).toBeLessThanOrEqual(5000);
      seen.push(...page.data.customerDataExport.addressedReplies.map((i) => i.id));
      after = page.data.customerDataExport.addressedRepliesNext;
    } while (after !== null);
    expect(seen).toHaveLength(5002);
    expect(new Set(seen).size).toBe(5002);
    expect(seen).toContain(s.replies[1]);
  }, 120_000);

  it('roles without the admin role get no export (FORBIDDEN), and nothing of the replies', async () => {
    const s = await seedPerson(randomUUID().slice(0, 8));
    for (const role of ['analyst', 'agent', 'sales', 'service'] as const) {
      const r = await exportOf(s.gid, '', { 'x-api-key': KEYS[role] });
      expect(r.errors?.[0]?.extensions?.code, role).toBe('FORBIDDEN');
      expect(r.data?.customerDataExport ?? null, role).toBeNull();
      const body = JSON.stringify(r).toLowerCase();
      expect(body, role).not.toContain(s.p.word);
      expect(body, role).not.toContain(s.p.email);
    }
  }, 60_000);
});

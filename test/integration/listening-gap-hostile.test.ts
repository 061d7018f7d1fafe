import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config';
import { redactOldInteractions } from '../../src/privacy/privacy.repository';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { startTestApp, type TestApp } from '../support/app';

// The listening gap against an unlucky operator and a hostile feed: replies that arrive before the
// message they answer, reply cycles, SLA settings at their bounds, a CRM that refuses every case.
// Each describe runs on its own database (and its own local Salesforce): rows counted are the test's own.

const MIN = 60_000;
const HOUR = 60 * MIN;
const iso = (ms: number) => new Date(ms).toISOString();
const COMPLAINT = 'My parcel is late and nobody answers. Terrible.';

const inbound = (source: string, externalId: string, at: number, handle: string, text: string, over: Record<string, unknown> = {}) => ({
  source, externalId, occurredAt: iso(at), direction: 'inbound', author: { handle, displayName: handle }, text, ...over,
});
const outbound = (source: string, externalId: string, at: number, text: string, over: Record<string, unknown> = {}) => ({
  source, externalId, occurredAt: iso(at), direction: 'outbound', author: { handle: 'brand', displayName: 'Brand Care' }, text, ...over,
});


/** An API-only app escalating to the local Salesforce server by hand (`escalation.runOnce()`), no write-back. */
function escalationEnv(sf: SalesforceServer): Record<string, string> {
  return {
    EARSHOT_ROLES: 'api',
    // manual runs only
    EARSHOT_GAP_ESCALATION: 'off',
    EARSHOT_SF_LOGIN_URL: sf.url,
    EARSHOT_SF_CLIENT_ID: sf.options.clientId,
    EARSHOT_SF_CLIENT_SECRET: sf.options.clientSecret,
    EARSHOT_SF_USERNAME: 'earshot@example.com',
    EARSHOT_SF_PASSWORD: 'password',
    EARSHOT_SF_OBJECTS: 'Contact',
    EARSHOT_CRM_WRITEBACK: 'off',
    EARSHOT_CRM_RETRY_BASE_MS: '10',
  };
}

describe('listening gap: threads in a hostile order', () => {
  let app: TestApp;
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  const ingest = async (msgs: Record<string, unknown>[]) => {
    const r = await app.services.ingest.ingestObjects(msgs, 'test');
    expect(r.rejected).toEqual([]);
    return r;
  };
  const itemOf = async (source: string, externalId: string) =>
    (
      await q<{ status: string; thread_key: string; first_response_seconds: number | null; responded_by: string | null; close_reason: string | null; closed_at: Date | null }>(
        `SELECT li.status, li.thread_key, li.first_response_seconds, li.responded_by, li.close_reason, li.closed_at
           FROM listening_item li JOIN interaction i ON i.id = li.interaction_id WHERE i.source = $1 AND i.external_id = $2`,
        [source, externalId],
      )
    )[0];

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api', EARSHOT_GAP_ESCALATION: 'off' }, 'gaphostile');
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  it('a company reply ingested before the complaint it answers answers the item the complaint opens', async () => {
    const t = Date.now() - 2 * HOUR;
    // the reply names a message not seen yet (another partition, a late feed) …
    await ingest([outbound('x', 'ooo-r1', t + 10 * MIN, 'Sorry Ana, your parcel ships today.', { inReplyTo: 'ooo-c1' })]);
    // … which arrives in a later batch
    await ingest([inbound('x', 'ooo-c1', t, 'ooo-ana', COMPLAINT)]);
    // before: open, and escalated two hours later although it had its answer
    expect(await itemOf('x', 'ooo-c1')).toMatchObject({ status: 'answered', first_response_seconds: 600, responded_by: 'reply', close_reason: 'reply', closed_at: new Date(t + 10 * MIN) });

    // a stored reply from before the complaint does not answer it
    await ingest([outbound('x', 'ooo-r2', t - 10 * MIN, 'Hello!', { inReplyTo: 'ooo-c2' })]);
    await ingest([inbound('x', 'ooo-c2', t, 'ooo-ben', COMPLAINT)]);
    expect(await itemOf('x', 'ooo-c2')).toMatchObject({ status: 'open', first_response_seconds: null });

    // the reply answered the first complaint; a second one of the same batch after it still waits
    await ingest([outbound('x', 'ooo-r3', t + 10 * MIN, 'Sorry Cleo, on it.', { inReplyTo: 'ooo-c3' })]);
    await ingest([inbound('x', 'ooo-c3', t, 'ooo-cleo', COMPLAINT), inbound('x', 'ooo-c4', t + 30 * MIN, 'ooo-cleo', 'Still nothing. Awful.', { inReplyTo: 'ooo-c3' })]);
    expect(await itemOf('x', 'ooo-c3')).toMatchObject({ status: 'open', first_response_seconds: 600, responded_by: 'reply' });
  });

  // minutes from complaint to reply -> the complaint's item; up to 5 minutes early is clock skew, not an older reply.
  // Before, -2 stayed open when the reply came first or in the same batch, and -10 answered at 0 s when it came second.
  it.each([
    [-10, 'reply first', { status: 'open', first_response_seconds: null }],
    [-10, 'complaint first', { status: 'open', first_response_seconds: null }],
    [-2, 'reply first', { status: 'answered', first_response_seconds: 0, responded_by: 'reply' }],
    [-2, 'complaint first', { status: 'answered', first_response_seconds: 0, responded_by: 'reply' }],
    [10, 'reply first', { status: 'answered', first_response_seconds: 600, responded_by: 'reply' }],
    [10, 'complaint first', { status: 'answered', first_response_seconds: 600, responded_by: 'reply' }],
    [-10, 'one batch', { status: 'open', first_response_seconds: null }],
    [-2, 'one batch', { status: 'answered', first_response_seconds: 0, responded_by: 'reply' }],
  ] as const)('a reply stamped %i min from the complaint it names, %s', async (offset, order, expected) => {
    const t = Date.now() - 2 * HOUR;
    const id = `skew${offset}-${order.replace(' ', '-')}`;
    const complaint = inbound('x', `${id}-c`, t, `${id}-ann`, COMPLAINT);
    const reply = outbound('x', `${id}-r`, t + offset * MIN, 'Sorry, on it.', { inReplyTo: `${id}-c` });
    if (order === 'one batch') await ingest([reply, complaint]);
    else for (const m of order === 'reply first' ? [reply, complaint] : [complaint, reply]) await ingest([m]);
    expect(await itemOf('x', `${id}-c`)).toMatchObject(expected);
  });

  // The same cases for a reply that names only whom it addresses (a leading @handle, or
  // metadata.recipientHandle), no message. Before, one stored first was not looked up: every
  // 'reply first' case stayed open, and -2 stayed open in every order.
  it.each([
    [-10, 'reply first', { status: 'open', first_response_seconds: null }],
    [-10, 'complaint first', { status: 'open', first_response_seconds: null }],
    [-10, 'one batch', { status: 'open', first_response_seconds: null }],
    [-2, 'reply first', { status: 'answered', first_response_seconds: 0, responded_by: 'reply' }],
    [-2, 'complaint first', { status: 'answered', first_response_seconds: 0, responded_by: 'reply' }],
    [-2, 'one batch', { status: 'answered', first_response_seconds: 0, responded_by: 'reply' }],
    [10, 'reply first', { status: 'answered', first_response_seconds: 600, responded_by: 'reply' }],
    [10, 'complaint first', { status: 'answered', first_response_seconds: 600, responded_by: 'reply' }],
    [10, 'one batch', { status: 'answered', first_response_seconds: 600, responded_by: 'reply' }],
  ] as const)('a reply addressed to the author, stamped %i min from the complaint, %s', async (offset, order, expected) => {
    const t = Date.now() - 2 * HOUR;
    const id = `to${offset}-${order.replace(' ', '-')}`;
    const complaint = inbound('x', `${id}-c`, t, `@${id}_Ann`, COMPLAINT);
    const reply = outbound('x', `${id}-r`, t + offset * MIN, `@${id}_ann sorry, on it.`);
    if (order === 'one batch') await ingest([reply, complaint]);
    else for (const m of order === 'reply first' ? [reply, complaint] : [complaint, reply]) await ingest([m]);
    expect(await itemOf('x', `${id}-c`)).toMatchObject(expected);
  });

  it('a reply addressed to an email sender, stored before the complaint, answers it however the address is written', async () => {
    const t = Date.now() - 2 * HOUR;
    const who = `rcpt${Date.now()}`;
    await ingest([outbound('email', `${who}-r`, t + 30 * MIN, 'Sorry, a refund is on its way.', { metadata: { recipientHandle: `${who}@example.org` } })]);
    await ingest([inbound('email', `${who}-c`, t, `Jane Roe <${who.toUpperCase()}@Example.org>`, COMPLAINT)]);
    expect(await itemOf('email', `${who}-c`)).toMatchObject({ status: 'answered', first_response_seconds: 1800, responded_by: 'reply' });
    // a reply after the reply window of the complaint (72 h) answers something else
    const old = Date.now() - 100 * HOUR;
    await ingest([outbound('email', `${who}-r2`, old + 80 * HOUR, 'Hello again', { metadata: { recipientHandle: `${who}2@example.org` } })]);
    await ingest([inbound('email', `${who}-c2`, old, `${who}2@example.org`, COMPLAINT)]);
    expect(await itemOf('email', `${who}-c2`)).toMatchObject({ status: 'open', first_response_seconds: null });
    // the reply's addressee is kept keyed as the item's author
    expect(await q(`SELECT recipient_key FROM interaction WHERE source = 'email' AND external_id = $1`, [`${who}-r`])).toEqual([{ recipient_key: `${who}@example.org` }]);
  });

  it('a reply addressed to someone no author can be (a recipient longer than any handle or address) is stored, with no key', async () => {
    // 7,000 characters of no pattern: as the key of a B-tree index entry it was refused
    // ("index row size 7024 exceeds btree version 4 maximum 2704"), and the valid reply with it
    let seed = 7;
    const noise = Array.from({ length: 7_000 }, () => 'abcdefghijklmnopqrstuvwxyz0123456789'[(seed = (seed * 1103515245 + 12345) % 2147483648) % 36]).join('');
    const t = Date.now() - 2 * HOUR;
    const who = `longrcpt${Date.now()}`;
    const res = await ingest([outbound('x', `${who}-r`, t, 'Sorry, on it.', { metadata: { recipientHandle: noise } }), outbound('email', `${who}-r2`, t, 'Sorry.', { metadata: { recipientHandle: `${noise}@example.org` } })]);
    expect(res.accepted).toBe(2);
    expect(await q(`SELECT recipient_key FROM interaction WHERE external_id LIKE $1`, [`${who}-%`])).toEqual([{ recipient_key: null }, { recipient_key: null }]);
  });

  it("retention takes a reply's addressee key with its metadata", async () => {
    // older than any other row of this database: the redaction below reaches only this reply
    const t = Date.now() - 400 * 24 * HOUR;
    const who = `ret${Date.now()}`;
    await ingest([outbound('email', `${who}-r`, t, 'Sorry, on it.', { metadata: { recipientHandle: `${who}@example.org` } })]);
    expect(await redactOldInteractions(app.db.ds, new Date(t + MIN), 10)).toHaveLength(1);
    expect(await q(`SELECT metadata, recipient_key FROM interaction WHERE source = 'email' AND external_id = $1`, [`${who}-r`])).toEqual([{ metadata: null, recipient_key: null }]);
  });

  it('reply cycles and self-replies end: one item per thread, every message stored', async () => {
    const t = Date.now() - 2 * HOUR;
    // a replies to b, b replies to a, s replies to itself: in one batch, then replies into the cycle later
    await ingest([
      inbound('forum', 'cyc-a', t, 'cyc-dan', COMPLAINT, { inReplyTo: 'cyc-b' }),
      inbound('forum', 'cyc-b', t + MIN, 'cyc-dan', 'Awful, still nothing!', { inReplyTo: 'cyc-a' }),
      inbound('forum', 'cyc-s', t + MIN, 'cyc-sue', 'Awful, still nothing!', { inReplyTo: 'cyc-s' }),
    ]);
    await ingest([inbound('forum', 'cyc-c', t + 2 * MIN, 'cyc-dan', 'Hello?? Awful.', { inReplyTo: 'cyc-a' }), outbound('forum', 'cyc-d', t + 3 * MIN, 'Sorry Dan!', { inReplyTo: 'cyc-b' })]);
    const items = await q<{ thread_key: string; status: string }>(`SELECT thread_key, status FROM listening_item WHERE source = 'forum' AND thread_key LIKE 'cyc-%' ORDER BY thread_key`);
    expect(items).toEqual([
      { thread_key: 'cyc-b', status: 'answered' },
      { thread_key: 'cyc-s', status: 'open' },
    ]);
    expect(await q(`SELECT count(*)::int AS n FROM interaction WHERE source = 'forum' AND external_id LIKE 'cyc-%'`)).toEqual([{ n: 5 }]);
  });
});

describe('listening gap: SLA settings at their bounds', () => {
  const base = { NODE_ENV: 'test', DATABASE_URL: 'postgres://127.0.0.1/none' };

  it('refuses an SLA a due time cannot hold, instead of refusing every complaint at ingest', () => {
    // before: accepted, then every complaint on x was refused ("value 2592000000 is out of range for type integer")
    expect(() => loadConfig({ ...base, EARSHOT_GAP_SLA: '*/x=30000d' })).toThrow(/EARSHOT_GAP_SLA: "\*\/x=30000d" is longer than 365d/);
    // before: accepted, then every complaint on x was refused (Invalid time value)
    expect(() => loadConfig({ ...base, EARSHOT_GAP_SLA: `*/x=${'9'.repeat(400)}s` })).toThrow(/EARSHOT_GAP_SLA/);
    // a year of business time in one minute a week ends after ten thousand years: refused at start
    expect(() => loadConfig({ ...base, EARSHOT_GAP_SLA: '*/x=365d', EARSHOT_GAP_BUSINESS_HOURS: 'Europe/London Mon 09:00-09:01' })).toThrow(/does not end within ten years/);
    // the bounds themselves are fine
    expect(loadConfig({ ...base, EARSHOT_GAP_SLA: '*/x=365d,*/forum=1s' }).listeningGap.slaSeconds.get('*/x')).toBe(365 * 86400);
    expect(loadConfig({ ...base, EARSHOT_GAP_SLA: '*/x=365d', EARSHOT_GAP_BUSINESS_HOURS: 'Europe/London Mon-Fri 09:00-17:00' }).listeningGap.businessHours).not.toBeNull();
    expect(() => loadConfig({ ...base, EARSHOT_GAP_SLA: '*/x=0s' })).toThrow(/EARSHOT_GAP_SLA/);
  });

  it('a year-long SLA and a one-second one: complaints are stored, due a year and a second after they happened', async () => {
    const app = await startTestApp({ EARSHOT_ROLES: 'api', EARSHOT_GAP_ESCALATION: 'off', EARSHOT_GAP_SLA: '*/x=365d,*/forum=1s' }, 'gapsla');
    try {
      const t = Date.now() - HOUR;
      const r = await app.services.ingest.ingestObjects([inbound('x', 'sla-1', t, 'sla-a', COMPLAINT), inbound('forum', 'sla-2', t, 'sla-b', COMPLAINT)], 'test');
      expect(r).toMatchObject({ accepted: 2, rejected: [] });
      const rows = (await app.db.ds.query(`SELECT source, sla_seconds, due_at FROM listening_item ORDER BY source`)) as { source: string; sla_seconds: number; due_at: Date }[];
      expect(rows).toEqual([
        { source: 'forum', sla_seconds: 1, due_at: new Date(t + 1000) },
        { source: 'x', sla_seconds: 365 * 86400, due_at: new Date(t + 365 * 86_400_000) },
      ]);
    } finally {
      await app.close();
    }
  });
});

describe('listening gap: business hours across a day whose midnight does not exist', () => {
  it('a complaint on the Friday before Santiago moves its clocks is stored, due on Wednesday', async () => {
    const app = await startTestApp({ EARSHOT_ROLES: 'api', EARSHOT_GAP_ESCALATION: 'off', EARSHOT_GAP_BUSINESS_HOURS: 'America/Santiago Mon-Fri 09:00-17:00' }, 'gapbh');
    try {
      // Friday 4 Sep 2026 15:00 in Santiago; clocks go from Sunday 00:00 to 01:00. Email: SLA 24 business hours.
      const r = await app.services.ingest.ingestObjects(
        [{ source: 'email', externalId: 'bh-1', occurredAt: '2026-09-04T19:00:00Z', direction: 'inbound', author: { email: 'bh1@example.com', displayName: 'Bea' }, text: COMPLAINT }],
        'test',
      );
      // before: rejected ("SLA too long for the business hours"), the complaint lost
      expect(r).toMatchObject({ accepted: 1, rejected: [] });
      expect(await app.db.ds.query(`SELECT due_at FROM listening_item`)).toEqual([{ due_at: new Date('2026-09-09T18:00:00Z') }]);
    } finally {
      await app.close();
    }
  });
});

describe('listening gap: escalation when the CRM refuses every case', () => {
  let sf: SalesforceServer;
  let app: TestApp;
  let caseCalls = 0;
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];

  beforeAll(async () => {
    sf = new SalesforceServer();
    await sf.start();
    // a validation rule in the org refuses every Case
    sf.faults.enqueue({
      match: (req) => {
        const hit = req.path.includes('/composite/sobjects/Case/');
        if (hit) caseCalls++;
        return hit;
      },
      status: 400,
      times: Number.MAX_SAFE_INTEGER,
      body: [{ errorCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', message: 'Cases need a product' }],
    });
    app = await startTestApp(
      escalationEnv(sf),
      'gapescrefused',
    );
  }, 120_000);
  afterAll(async () => {
    await app?.close();
    await sf?.stop();
  });

  it('tries each overdue item once per run, even when leases lapse during the run, and backs off between runs', async () => {
    // 60 ignored email complaints, 30 hours old (SLA 24 h): more than one claim batch (50)
    const msgs = Array.from({ length: 60 }, (_, n) => ({
      source: 'email', externalId: `refused-${n}`, occurredAt: iso(Date.now() - 30 * HOUR + n * 1000), direction: 'inbound',
      author: { email: `refused${n}@example.com`, displayName: 'Ref' }, text: 'I was charged twice for my order this month and nobody answers. Not happy.',
    }));
    expect((await app.services.ingest.ingestObjects(msgs, 'test')).accepted).toBe(60);
    const leases = () =>
      q<{ attempts: number; state: string; lease_s: number; error: string }>(
        `SELECT escalation_attempts AS attempts, escalation_state AS state, extract(epoch FROM escalation_lease_until - now())::float8 AS lease_s, escalation_error AS error FROM listening_item`,
      );

    caseCalls = 0;
    expect(await app.services.escalation.runOnce()).toEqual({ claimed: 60, escalated: 0, failed: 60, skipped: 0, ran: true });
    expect(caseCalls).toBe(60);
    for (const l of await leases()) {
      expect(l).toMatchObject({ attempts: 1, state: 'pending', error: expect.stringContaining('Cases need a product') });
      expect(l.lease_s).toBeGreaterThan(20);
      expect(l.lease_s).toBeLessThanOrEqual(30);
    }

    // The next attempt once the lease lapsed (moved, not waited for): the retry comes later each time.
    await q(`UPDATE listening_item SET escalation_lease_until = now() - interval '1 second'`);
    expect((await app.services.escalation.runOnce()).failed).toBe(60);
    for (const l of await leases()) {
      expect(l.attempts).toBe(2);
      // before: 30 s again, for ever: an API call per overdue item and minute from the org's allowance
      expect(l.lease_s).toBeGreaterThan(50);
      expect(l.lease_s).toBeLessThanOrEqual(60);
    }
    await q(`UPDATE listening_item SET escalation_lease_until = now() - interval '1 second', escalation_attempts = 30`);
    await app.services.escalation.runOnce();
    for (const l of await leases()) expect(l.lease_s).toBeLessThanOrEqual(6 * 3600);

    // A slow CRM: the run outlasts the failure leases (here every failed item's lease has lapsed by
    // the time the run claims again, as a database trigger sets it). Before, the run claimed the
    // same items again and again and never ended; the guard below stops it after 200 calls.
    await q(`CREATE FUNCTION test_lapse_at_once() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN IF NEW.escalation_error IS NOT NULL THEN NEW.escalation_lease_until := now() - interval '1 second'; END IF; RETURN NEW; END $$`);
    await q(`CREATE TRIGGER test_lapse_at_once BEFORE UPDATE ON listening_item FOR EACH ROW EXECUTE FUNCTION test_lapse_at_once()`);
    try {
      await q(`UPDATE listening_item SET escalation_lease_until = now() - interval '1 second'`);
      caseCalls = 0;
      const report = await app.services.escalation.runOnce(() => caseCalls >= 200);
      expect(report).toMatchObject({ claimed: 60, failed: 60 });
      expect(caseCalls).toBe(60);
    } finally {
      await q(`DROP TRIGGER test_lapse_at_once ON listening_item`);
      await q(`DROP FUNCTION test_lapse_at_once()`);
    }
  });
});

describe('listening gap: a customer erased while their case is being escalated', () => {
  let sf: SalesforceServer;
  let app: TestApp;
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];

  beforeAll(async () => {
    sf = new SalesforceServer();
    await sf.start();
    app = await startTestApp(
      escalationEnv(sf),
      'gapescerased',
    );
  }, 120_000);
  afterAll(async () => {
    await app?.close();
    await sf?.stop();
  });

  it('publishes no event with the erased text, and the case it made is queued for the erasure clean-up', async () => {
    const secret = 'Jo Erasedperson at 12 Hidden Lane was charged twice and nobody answers. Not happy.';
    const r = await app.services.ingest.ingestObjects(
      [{ source: 'email', externalId: 'erased-mid-1', occurredAt: iso(Date.now() - 30 * HOUR), direction: 'inbound', author: { email: 'erased-mid@example.com', displayName: 'Jo Erasedperson' }, text: secret }],
      'test',
    );
    expect(r.accepted).toBe(1);
    const [item] = await q<{ id: string; customer_id: string }>(`SELECT id, customer_id FROM listening_item`);
    // The erasure commits while Salesforce creates the case: after the claim read the text, before the escalation records it.
    let erasedDuringCall = false;
    sf.faults.enqueue({
      match: (req) => req.path.includes('/composite/sobjects/Case/'),
      rewrite: (async (reply: unknown) => {
        await app.services.erasure.erase(item!.customer_id, 'ticket 4711', 'test');
        erasedDuringCall = true;
        return reply;
      }) as never,
    });
    await app.services.escalation.runOnce();
    expect(erasedDuringCall).toBe(true);

    // before: one listening-gap.v1 event with the erased customer's text and id, published after the erasure
    expect(await q(`SELECT payload FROM outbox WHERE topic = 'listening-gap.v1' AND message_key = $1`, [item!.id])).toEqual([]);
    // before: the case kept the text in Salesforce (the erasure saw no case yet and queued none)
    expect(await q(`SELECT system, kind, object_type, external_id FROM crm_erasure`)).toEqual([{ system: 'salesforce', kind: 'case', object_type: 'Case', external_id: item!.id }]);
    expect(await q(`SELECT status FROM erasure_request`)).toEqual([{ status: 'crm_pending' }]);
    expect(await app.services.erasure.clearCrm()).toBeGreaterThanOrEqual(1);
    const cases = sf.store.list('Case', false).filter((c) => c.Earshot_Item_Id__c === item!.id);
    expect(cases).toHaveLength(1);
    expect(JSON.stringify(cases[0])).not.toContain('Erasedperson');
    expect(await q(`SELECT status FROM erasure_request`)).toEqual([{ status: 'done' }]);
  });
});

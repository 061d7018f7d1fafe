import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SystemClock } from '../../src/shared/clock';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { startTestApp, type TestApp } from '../support/app';
import { salesforceEnv } from '../support/crm-env';

// The escalation job on the injected clock, against unlucky timing: an item due exactly now, a
// clock that goes backwards between runs, and a reply that lands while the job works through its
// batch or while Salesforce creates the Case. Each describe runs on its own database and its own
// local Salesforce.

const MIN = 60_000;
const HOUR = 60 * MIN;
const iso = (ms: number) => new Date(ms).toISOString();
const COMPLAINT = 'My parcel is 5 days late and the courier tracking has not moved. Terrible delivery.';

/**
 * A clock the test sets, backwards too (ManualClock only moves forward); unset, the wall clock.
 * Its timers are the system clock's: the apps here start no background task that waits on them.
 */
class SetClock extends SystemClock {
  private at: number | null = null;
  override now(): number {
    return this.at ?? Date.now();
  }
  override date(): Date {
    return new Date(this.now());
  }
  set(ms: number | null): void {
    this.at = ms;
  }
}

/** An API-only app escalating to the local Salesforce server by hand (`escalation.runOnce()`). */
function escalationEnv(sf: SalesforceServer): Record<string, string> {
  return {
    EARSHOT_ROLES: 'api',
    EARSHOT_GAP_ESCALATION: 'off',
    EARSHOT_CRM_WRITEBACK: 'off',
    ...salesforceEnv(sf),
  };
}

const complaint = (externalId: string, at: number, who: string, text = COMPLAINT) => ({
  source: 'chat', externalId, occurredAt: iso(at), direction: 'inbound', author: { email: `${who}@example.com`, displayName: who }, text,
});
const reply = (externalId: string, at: number, inReplyTo: string) => ({
  source: 'chat', externalId, occurredAt: iso(at), direction: 'outbound', inReplyTo, author: { handle: 'brand', displayName: 'Brand Care' }, text: 'Sorry, your parcel ships today.',
});

function harness(label: string) {
  const h = {
    sf: undefined as unknown as SalesforceServer,
    app: undefined as unknown as TestApp,
    clock: new SetClock(),
    q: async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await h.app.db.ds.query(sql, params)) as T[],
    ingest: async (msgs: Record<string, unknown>[]) => {
      const r = await h.app.services.ingest.ingestObjects(msgs, 'test');
      expect(r.rejected).toEqual([]);
    },
    item: async (externalId: string) =>
      (
        await h.q<{ id: string; status: string; due_at: Date; escalation_state: string | null; escalation_case_id: string | null; escalated_at: Date | null; escalation_attempts: number }>(
          `SELECT li.id, li.status, li.due_at, li.escalation_state, li.escalation_case_id, li.escalated_at, li.escalation_attempts
             FROM listening_item li JOIN interaction i ON i.id = li.interaction_id WHERE i.source = 'chat' AND i.external_id = $1`,
          [externalId],
        )
      )[0]!,
    cases: (itemId: string) => h.sf.store.list('Case', false).filter((c) => c.Earshot_Item_Id__c === itemId),
    events: (itemId: string) => h.q<{ payload: Record<string, unknown> }>(`SELECT payload FROM outbox WHERE topic = 'listening-gap.v1' AND message_key = $1`, [itemId]),
  };
  beforeAll(async () => {
    h.sf = new SalesforceServer();
    await h.sf.start();
    h.app = await startTestApp(escalationEnv(h.sf), label, undefined, { clock: h.clock });
  }, 120_000);
  afterAll(async () => {
    await h.app?.close();
    await h.sf?.stop();
  });
  beforeEach(() => h.clock.set(null));
  return h;
}

describe('listening gap escalation: on the injected clock', () => {
  const h = harness('gapescclock');

  it('escalates when the clock passes the due time: not at the due time itself, and the case and event tell the clock\'s lateness', async () => {
    // a chat complaint (SLA 1 h) ten minutes old: due in 50 minutes on the wall clock
    const t = Date.now() - 10 * MIN;
    await h.ingest([complaint('clk-due', t, 'clk-due')]);
    const item = await h.item('clk-due');
    expect(item.due_at).toEqual(new Date(t + HOUR));

    // due exactly now: not overdue yet (as the queue's `overdue` and the gap figures count it)
    h.clock.set(t + HOUR);
    await h.app.services.escalation.runOnce();
    expect(await h.item('clk-due')).toMatchObject({ escalation_state: null });

    // five hours past due on the job's clock, not the wall clock: before, it waited for real time (or a back-dated row)
    h.clock.set(t + 6 * HOUR);
    const report = await h.app.services.escalation.runOnce();
    expect(report).toMatchObject({ escalated: 1, failed: 0 });
    expect(await h.item('clk-due')).toMatchObject({ escalation_state: 'done', escalated_at: new Date(t + 6 * HOUR) });
    const [made] = h.cases(item.id);
    expect(String(made!.Description)).toContain('5.0 h overdue');
    const [event] = await h.events(item.id);
    expect(event!.payload).toMatchObject({ escalatedAt: iso(t + 6 * HOUR), overdueSeconds: 5 * 3600 });
  });

  it('one millisecond past due is overdue', async () => {
    const t = Date.now() - 10 * MIN;
    await h.ingest([complaint('clk-ms', t, 'clk-ms')]);
    const item = await h.item('clk-ms');
    h.clock.set(t + HOUR + 1);
    await h.app.services.escalation.runOnce();
    expect(await h.item('clk-ms')).toMatchObject({ escalation_state: 'done' });
    expect(h.cases(item.id)).toHaveLength(1);
  });

  it('backs off a refused case on the job\'s clock, and a clock that goes backwards between runs makes no second case', async () => {
    const t = Date.now() - 10 * MIN;
    await h.ingest([complaint('clk-back', t, 'clk-back')]);
    const item = await h.item('clk-back');
    h.sf.faults.enqueue({ match: (req) => req.path.includes('/composite/sobjects/Case/'), status: 400, times: 1, body: [{ errorCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', message: 'Cases need a product' }] });

    const t1 = t + 2 * HOUR;
    h.clock.set(t1);
    expect((await h.app.services.escalation.runOnce()).failed).toBeGreaterThanOrEqual(1);
    expect(await h.item('clk-back')).toMatchObject({ escalation_state: 'pending', escalation_attempts: 1 });
    // the retry waits 30 s of the job's clock
    h.clock.set(t1 + 29_000);
    await h.app.services.escalation.runOnce();
    expect(await h.item('clk-back')).toMatchObject({ escalation_state: 'pending', escalation_attempts: 1 });

    // the clock steps back an hour (NTP, a replica behind): the item is not due on it and its lease holds
    h.clock.set(t1 - HOUR);
    await h.app.services.escalation.runOnce();
    expect(await h.item('clk-back')).toMatchObject({ escalation_state: 'pending', escalation_attempts: 1 });

    h.clock.set(t1 + 31_000);
    await h.app.services.escalation.runOnce();
    expect(await h.item('clk-back')).toMatchObject({ escalation_state: 'done', escalation_attempts: 2 });
    // and back again after the escalation: done is final
    h.clock.set(t1 - 2 * HOUR);
    await h.app.services.escalation.runOnce();
    h.clock.set(t1 + 3 * HOUR);
    await h.app.services.escalation.runOnce();
    expect(h.cases(item.id)).toHaveLength(1);
    expect(await h.events(item.id)).toHaveLength(1);
  });
});

describe('listening gap escalation: a reply that lands while the job escalates', () => {
  const h = harness('gapescreply');
  const onCaseCall = (itemId: string, fn: () => Promise<void>) => {
    let ran = false;
    h.sf.faults.enqueue({
      match: (req) => req.path.includes('/composite/sobjects/Case/') && req.rawBody.includes(itemId),
      rewrite: (async (r: unknown) => {
        await fn();
        ran = true;
        return r;
      }) as never,
    });
    return () => ran;
  };

  it('an item answered while the job escalates the items before it in its batch gets no case and no event', async () => {
    const t = Date.now() - 3 * HOUR;
    await h.ingest([complaint('rep-a', t, 'rep-a'), complaint('rep-b', t + MIN, 'rep-b')]);
    const [a, b] = [await h.item('rep-a'), await h.item('rep-b')];
    // both are claimed in one batch (due order: a, then b); the brand answers b while Salesforce makes a's case
    const ran = onCaseCall(a.id, () => h.ingest([reply('rep-b-re', Date.now(), 'rep-b')]));
    await h.app.services.escalation.runOnce();
    expect(ran()).toBe(true);
    expect(h.cases(a.id)).toHaveLength(1);
    expect(await h.item('rep-b')).toMatchObject({ status: 'answered' });
    // before: a Case for a complaint already answered, and an item.escalated event for it
    expect(h.cases(b.id)).toEqual([]);
    expect(await h.events(b.id)).toEqual([]);
    expect(await h.item('rep-b')).toMatchObject({ escalation_state: null, escalation_case_id: null, escalation_attempts: 0 });
  });

  it('an item answered during its own Case call: the case made is recorded on the item (so an erasure finds it)', async () => {
    const t = Date.now() - 3 * HOUR;
    await h.ingest([complaint('rep-c', t, 'rep-c')]);
    const c = await h.item('rep-c');
    const ran = onCaseCall(c.id, () => h.ingest([reply('rep-c-re', Date.now(), 'rep-c')]));
    await h.app.services.escalation.runOnce();
    expect(ran()).toBe(true);
    const made = h.cases(c.id);
    expect(made).toHaveLength(1);
    expect(await h.item('rep-c')).toMatchObject({ status: 'answered', escalation_state: 'done', escalation_case_id: made[0]!.Id });
  });

  it('a retry after a crash that may have made the case goes on to find it, though the item was answered meanwhile', async () => {
    const t = Date.now() - 3 * HOUR;
    await h.ingest([complaint('rep-d', t, 'rep-d'), complaint('rep-e', t + MIN, 'rep-e')]);
    const [d, e] = [await h.item('rep-d'), await h.item('rep-e')];
    // a runner made e's case and died before its commit: a claim whose lease lapsed
    const client = h.app.services.crmSync.client('salesforce')!;
    const first = await client.createCase({ idempotencyKey: e.id, subject: 'x', description: 'y', origin: 'chat', priority: 'medium', contactId: null, accountId: null, ownerId: null });
    await h.q(`UPDATE listening_item SET escalation_state = 'pending', escalation_claim = gen_random_uuid(), escalation_lease_until = now() - interval '1 minute', escalation_attempts = 1 WHERE id = $1`, [e.id]);
    const ran = onCaseCall(d.id, () => h.ingest([reply('rep-e-re', Date.now(), 'rep-e')]));
    await h.app.services.escalation.runOnce();
    expect(ran()).toBe(true);
    expect(h.cases(e.id)).toHaveLength(1);
    expect(await h.item('rep-e')).toMatchObject({ status: 'answered', escalation_state: 'done', escalation_case_id: first.externalId });
  });
});

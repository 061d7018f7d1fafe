import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InteractionMessage } from '../../src/interactions/interaction-message';
import { startTestApp, type TestApp } from '../support/app';

// A complaint and the company reply that answers it, stored at the same moment by two transactions
// (two Kafka partitions, two POST /ingest requests): neither sees the other's row before it commits.
// The test holds one batch's transaction open (in the hook the Kafka consumer writes its progress
// with, inside the batch's transaction, after everything else of the batch) while the other batch
// is stored and committed, then lets it commit. Before, the item stayed open whichever committed
// second, and the escalation made a case and a listening-gap.v1 event although the customer had
// their answer.

const MIN = 60_000;
const HOUR = 60 * MIN;
const iso = (ms: number) => new Date(ms).toISOString();
const COMPLAINT = 'My parcel is late and nobody answers. Terrible.';
const uid = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

const inbound = (externalId: string, at: number, handle: string, over: Partial<InteractionMessage> = {}): InteractionMessage => ({
  source: 'x', externalId, occurredAt: iso(at), direction: 'inbound', author: { handle, displayName: handle }, text: COMPLAINT, ...over,
});
const outbound = (externalId: string, at: number, text: string, over: Partial<InteractionMessage> = {}): InteractionMessage => ({
  source: 'x', externalId, occurredAt: iso(at), direction: 'outbound', author: { handle: `brand_${uid}`, displayName: 'Brand Care' }, text, ...over,
});

describe('listening gap: a reply and its complaint committed by two transactions at the same moment', () => {
  let app: TestApp;
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  const itemOf = async (externalId: string) =>
    (
      await q<{ id: string; status: string; first_response_at: Date | null; first_response_seconds: number | null; responded_by: string | null; closed_at: Date | null; escalation_state: string | null }>(
        `SELECT li.id, li.status, li.first_response_at, li.first_response_seconds, li.responded_by, li.closed_at, li.escalation_state
           FROM listening_item li JOIN interaction i ON i.id = li.interaction_id WHERE i.source = 'x' AND i.external_id = $1`,
        [externalId],
      )
    )[0];
  const escalationEvents = (itemId: string) => q(`SELECT payload FROM outbox WHERE topic = 'listening-gap.v1' AND message_key = $1`, [itemId]);

  /**
   * Stores `held` in a transaction that stays open (before its commit) until `meanwhile` has been
   * stored and committed by another one; then lets it commit. `whileHeld` runs between the two.
   */
  async function race(held: InteractionMessage, meanwhile: InteractionMessage, whileHeld: () => Promise<void> = async () => {}) {
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = app.services.recorder.record([held], async () => {
      entered();
      await gate;
    });
    try {
      await inside;
      const r = await app.services.ingest.ingestObjects([meanwhile as unknown as Record<string, unknown>], 'test');
      expect(r).toMatchObject({ accepted: 1, rejected: [] });
      await whileHeld();
    } finally {
      release();
    }
    expect((await slow).accepted).toBe(1);
  }

  beforeAll(async () => {
    // no CRM: an escalation is the listening-gap.v1 event alone; runs by hand
    app = await startTestApp({ EARSHOT_ROLES: 'api', EARSHOT_GAP_ESCALATION: 'off' }, 'gapconcurrent');
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  // x: SLA 4 h; the complaint 10 h ago is overdue, within the escalation horizon (72 h)
  it.each([
    ['names the complaint (inReplyTo)', 'the reply commits second'],
    ['names the complaint (inReplyTo)', 'the complaint commits second'],
    ['is addressed to its author (@handle)', 'the reply commits second'],
    ['is addressed to its author (@handle)', 'the complaint commits second'],
  ] as const)('a reply that %s, stored while the complaint is: %s; the item ends answered at the reply and is never escalated', async (kind, order) => {
    const t = Date.now() - 10 * HOUR;
    const id = `${uid}-${kind.includes('@') ? 'to' : 'in'}-${order.includes('reply commits') ? 'r2' : 'c2'}`;
    const handle = `${id.replaceAll('-', '_')}_ann`;
    const complaint = inbound(`${id}-c`, t, handle);
    const reply = kind.includes('@') ? outbound(`${id}-r`, t + 10 * MIN, `@${handle} sorry, your parcel ships today.`) : outbound(`${id}-r`, t + 10 * MIN, 'Sorry, your parcel ships today.', { inReplyTo: `${id}-c` });
    if (order === 'the reply commits second') {
      await race(reply, complaint, async () => {
        // the complaint is committed, the reply not yet: the item is open
        expect(await itemOf(`${id}-c`)).toMatchObject({ status: 'open', first_response_at: null });
      });
    } else {
      await race(complaint, reply);
    }
    // before: open, with no first response (both orders, both kinds of reply)
    expect(await itemOf(`${id}-c`)).toMatchObject({ status: 'answered', first_response_at: new Date(t + 10 * MIN), first_response_seconds: 600, responded_by: 'reply', closed_at: new Date(t + 10 * MIN) });

    await app.services.escalation.runOnce();
    const item = await itemOf(`${id}-c`);
    expect(item).toMatchObject({ status: 'answered', escalation_state: null });
    expect(await escalationEvents(item!.id)).toEqual([]);
  });

  // A company reply to a follow-up message of a thread (not its first one), stored at the same
  // moment as that follow-up: the reply's transaction cannot see the follow-up, so it does not know
  // the thread the follow-up belongs to and keeps the follow-up's own id as its thread. The check
  // after each commit looked for an item of that thread only, and the follow-up's check for replies
  // in the item's thread only: the item stayed open whichever committed second, although ingesting
  // the two one after the other answers it.
  const itemOfThread = async (rootExternalId: string) =>
    (
      await q<{ id: string; status: string; first_response_at: Date | null; first_response_seconds: number | null; responded_by: string | null }>(
        `SELECT li.id, li.status, li.first_response_at, li.first_response_seconds, li.responded_by FROM listening_item li WHERE li.source = 'x' AND li.thread_key = $1`,
        [rootExternalId],
      )
    )[0];

  it.each([
    ['the thread has an open item already', 'the reply commits second'],
    ['the thread has an open item already', 'the follow-up commits second'],
    ['the follow-up opens the item', 'the reply commits second'],
    ['the follow-up opens the item', 'the follow-up commits second'],
  ] as const)('%s, %s: the item ends answered at the reply, as one after the other', async (kind, order) => {
    const t = Date.now() - 10 * HOUR;
    const id = `${uid}-${kind.includes('opens') ? 'new' : 'old'}-${order.includes('reply commits') ? 'r2' : 'f2'}`;
    const handle = `${id.replaceAll('-', '_')}_ann`;
    // the thread's first message: a complaint (an item, open) or a question that opens none
    const first = kind.includes('opens') ? inbound(`${id}-1`, t, handle, { text: 'Hello there, nice weather today.' }) : inbound(`${id}-1`, t, handle);
    await app.services.recorder.record([first]);
    expect(await itemOfThread(`${id}-1`)).toEqual(kind.includes('opens') ? undefined : expect.objectContaining({ status: 'open' }));
    const followUp = inbound(`${id}-2`, t + 5 * MIN, handle, { inReplyTo: `${id}-1` });
    const reply = outbound(`${id}-r`, t + 15 * MIN, 'Sorry, your parcel ships today.', { inReplyTo: `${id}-2` });
    if (order === 'the reply commits second') await race(reply, followUp);
    else await race(followUp, reply);
    // sequential ingest (follow-up, then reply): answered at the reply
    const openedAt = kind.includes('opens') ? t + 5 * MIN : t;
    // before: open, with no first response
    expect(await itemOfThread(`${id}-1`)).toMatchObject({ status: 'answered', first_response_at: new Date(t + 15 * MIN), first_response_seconds: (t + 15 * MIN - openedAt) / 1000, responded_by: 'reply' });
  });

  it('ingested one after the other, the same messages give the same item (the reference)', async () => {
    const t = Date.now() - 10 * HOUR;
    const id = `${uid}-seq`;
    const handle = `${id.replaceAll('-', '_')}_ann`;
    await app.services.recorder.record([inbound(`${id}-1`, t, handle)]);
    await app.services.recorder.record([inbound(`${id}-2`, t + 5 * MIN, handle, { inReplyTo: `${id}-1` })]);
    await app.services.recorder.record([outbound(`${id}-r`, t + 15 * MIN, 'Sorry, your parcel ships today.', { inReplyTo: `${id}-2` })]);
    expect(await itemOfThread(`${id}-1`)).toMatchObject({ status: 'answered', first_response_at: new Date(t + 15 * MIN), first_response_seconds: 900, responded_by: 'reply' });
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InteractionMessage } from '../../src/interactions/interaction-message';
import { startTestApp, type TestApp } from '../support/app';

// A company reply to a follow-up message of a thread (not its first one), stored at the same
// moment as that follow-up by another transaction: the reply's transaction cannot see the
// follow-up, so it does not know the thread the follow-up belongs to and keeps the follow-up's
// own id as its thread. The check after each commit (ListeningGapTracker.settle) looked for an
// item of that thread only, and the complaint's check for replies in the item's thread only: the
// item stayed open whichever committed second, although ingesting the two one after another
// answers it. The test holds one batch's transaction open (as listening-gap-concurrent-reply does)
// while the other is stored and committed.

const MIN = 60_000;
const HOUR = 60 * MIN;
const iso = (ms: number) => new Date(ms).toISOString();
const COMPLAINT = 'My parcel is late and nobody answers. Terrible.';
const uid = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

const inbound = (externalId: string, at: number, handle: string, over: Partial<InteractionMessage> = {}): InteractionMessage => ({
  source: 'x', externalId, occurredAt: iso(at), direction: 'inbound', author: { handle, displayName: handle }, text: COMPLAINT, ...over,
});
const outbound = (externalId: string, at: number, inReplyTo: string): InteractionMessage => ({
  source: 'x', externalId, occurredAt: iso(at), direction: 'outbound', author: { handle: `brand_${uid}`, displayName: 'Brand Care' }, text: 'Sorry, your parcel ships today.', inReplyTo,
});

describe('listening gap: a reply to a follow-up message committed at the same moment as the follow-up', () => {
  let app: TestApp;
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  const itemOf = async (rootExternalId: string) =>
    (
      await q<{ id: string; status: string; first_response_at: Date | null; first_response_seconds: number | null; responded_by: string | null; escalation_state: string | null }>(
        `SELECT li.id, li.status, li.first_response_at, li.first_response_seconds, li.responded_by, li.escalation_state
           FROM listening_item li WHERE li.source = 'x' AND li.thread_key = $1`,
        [rootExternalId],
      )
    )[0];

  /** Stores `held` in a transaction kept open until `meanwhile` is stored and committed; then lets it commit. */
  async function race(held: InteractionMessage, meanwhile: InteractionMessage) {
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
    } finally {
      release();
    }
    expect((await slow).accepted).toBe(1);
  }

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api', EARSHOT_GAP_ESCALATION: 'off' }, 'gapconcthread');
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

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
    expect(await itemOf(`${id}-1`)).toEqual(kind.includes('opens') ? undefined : expect.objectContaining({ status: 'open' }));
    const followUp = inbound(`${id}-2`, t + 5 * MIN, handle, { inReplyTo: `${id}-1` });
    const reply = outbound(`${id}-r`, t + 15 * MIN, `${id}-2`);
    if (order === 'the reply commits second') await race(reply, followUp);
    else await race(followUp, reply);
    // sequential ingest (follow-up, then reply): answered at the reply
    const openedAt = kind.includes('opens') ? t + 5 * MIN : t;
    // before: open, with no first response
    expect(await itemOf(`${id}-1`)).toMatchObject({ status: 'answered', first_response_at: new Date(t + 15 * MIN), first_response_seconds: (t + 15 * MIN - openedAt) / 1000, responded_by: 'reply' });
  });

  it('a complaint under a brand post left open by a process that stopped before its check: the escalation job answers it, not escalates it', async () => {
    const t = Date.now() - 10 * HOUR;
    const id = `${uid}-stopped`;
    const handle = `${id.replaceAll('-', '_')}_bo`;
    // the check after the commit does not run (as when the process stops right after the commit)
    const gap = (app.services.recorder as unknown as { gap: { settle?: unknown } }).gap;
    const settle = Object.getOwnPropertyDescriptor(gap, 'settle');
    gap.settle = async () => 0;
    try {
      // the complaint answers a brand post (its thread, never ingested); the reply names the complaint
      await race(outbound(`${id}-r`, t + 20 * MIN, `${id}-c`), inbound(`${id}-c`, t, handle, { inReplyTo: `${id}-post` }));
    } finally {
      if (settle) Object.defineProperty(gap, 'settle', settle);
      else delete gap.settle;
    }
    expect(await itemOf(`${id}-post`)).toMatchObject({ status: 'open', first_response_at: null });
    await app.services.escalation.runOnce();
    // before: escalated (the job looked for replies in the post's thread only)
    expect(await itemOf(`${id}-post`)).toMatchObject({ status: 'answered', first_response_at: new Date(t + 20 * MIN), first_response_seconds: 1200, responded_by: 'reply', escalation_state: null });
  });

  it('ingested one after the other, the same messages give the same item (the reference)', async () => {
    const t = Date.now() - 10 * HOUR;
    const id = `${uid}-seq`;
    const handle = `${id.replaceAll('-', '_')}_ann`;
    await app.services.recorder.record([inbound(`${id}-1`, t, handle)]);
    await app.services.recorder.record([inbound(`${id}-2`, t + 5 * MIN, handle, { inReplyTo: `${id}-1` })]);
    await app.services.recorder.record([outbound(`${id}-r`, t + 15 * MIN, `${id}-2`)]);
    expect(await itemOf(`${id}-1`)).toMatchObject({ status: 'answered', first_response_at: new Date(t + 15 * MIN), first_response_seconds: 900, responded_by: 'reply' });
  });
});

import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InteractionMessage } from '../../src/interactions/interaction-message';
import { startTestApp, type TestApp } from '../support/app';

// The check after a batch's commit (ListeningGapTracker.settle) locks the items a stored reply
// answers, and with them the latest item of the authors of the batch's new items. Another
// transaction holding one of those rows (a re-score page, an operator's statement) kept it waiting
// as long as it held it, with no limit: the batch, committed, was not acknowledged meanwhile (the
// Kafka consumer's partition stood still), where the batch's own transaction gives up after
// EARSHOT_INGEST_LOCK_TIMEOUT_MS. Now the check gives up after as long, and only logs; the
// escalation job checks the item again before it escalates it.

const MIN = 60_000;
const HOUR = 60 * MIN;
const iso = (ms: number) => new Date(ms).toISOString();
const COMPLAINT = 'My parcel is late and nobody answers. Terrible.';
const uid = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

describe('listening gap: the check after the commit waits for a lock no longer than the batch would', () => {
  let app: TestApp;
  let holder: Client;
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api', EARSHOT_GAP_ESCALATION: 'off', EARSHOT_INGEST_LOCK_TIMEOUT_MS: '300' }, 'gapsettlelock');
    holder = new Client({ connectionString: app.database.url });
    await holder.connect();
  }, 120_000);
  afterAll(async () => {
    await holder?.end();
    await app?.close();
  });

  it('a batch whose check waits for an item another transaction holds is acknowledged all the same', async () => {
    const t = Date.now() - 10 * HOUR;
    const handle = `${uid}_ann`;
    const inbound = (externalId: string, at: number, over: Partial<InteractionMessage> = {}): InteractionMessage => ({
      source: 'x', externalId, occurredAt: iso(at), direction: 'inbound', author: { handle, displayName: handle }, text: COMPLAINT, ...over,
    });
    // the author's latest item, held by another transaction from here on
    await app.services.recorder.record([inbound(`${uid}-latest`, t + HOUR)]);
    const [latest] = await q<{ id: string }>(`SELECT li.id FROM listening_item li JOIN interaction i ON i.id = li.interaction_id WHERE i.external_id = $1`, [`${uid}-latest`]);
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM listening_item WHERE id = $1 FOR UPDATE', [latest!.id]);
    try {
      // a complaint under a brand post (an item of its own) and the reply to it, stored at the same
      // moment: the complaint's batch commits second, and its check finds the reply
      let entered!: () => void;
      const inside = new Promise<void>((resolve) => (entered = resolve));
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const complaint = app.services.recorder.record([inbound(`${uid}-c`, t, { inReplyTo: `${uid}-post` })], async () => {
        entered();
        await gate;
      });
      try {
        await inside;
        const reply: InteractionMessage = { source: 'x', externalId: `${uid}-r`, occurredAt: iso(t + 10 * MIN), direction: 'outbound', author: { handle: `brand_${uid}`, displayName: 'Brand' }, text: 'Sorry, it ships today.', inReplyTo: `${uid}-c` };
        expect(await app.services.recorder.record([reply])).toMatchObject({ accepted: 1 });
      } finally {
        release();
      }
      // before: it waited here until the holder let go (never, in this test)
      expect((await complaint).accepted).toBe(1);
    } finally {
      await holder.query('ROLLBACK');
    }
    // the check gave up and only logged: the item waits for the escalation job's check, which answers
    // it (overdue: 10 h old, 4 h on x) instead of escalating it
    // (as for a process that stopped between its commit and its check). The item's thread is the
    // brand post, and the reply names the complaint: the job looks under the complaint's id too
    const itemOf = async () =>
      (await q<{ id: string; status: string; first_response_seconds: number | null; escalation_state: string | null }>(
        `SELECT li.id, li.status, li.first_response_seconds, li.escalation_state FROM listening_item li JOIN interaction i ON i.id = li.interaction_id WHERE i.external_id = $1`,
        [`${uid}-c`],
      ))[0];
    const open = await itemOf();
    expect(open).toMatchObject({ status: 'open', first_response_seconds: null });
    await app.services.escalation.runOnce();
    // before: escalated (a listening-gap.v1 event with the customer's text, a case where a CRM is configured)
    expect(await itemOf()).toMatchObject({ status: 'answered', first_response_seconds: 600, escalation_state: null });
    expect(await q(`SELECT 1 FROM outbox WHERE topic = 'listening-gap.v1' AND message_key = $1`, [open!.id])).toEqual([]);
    // its history says a reply answered it
    expect(await q(`SELECT kind, actor, at FROM listening_item_event WHERE item_id = $1`, [open!.id])).toEqual([{ kind: 'replied', actor: 'reply', at: new Date(t + 10 * MIN) }]);
  });
});

import { describe, expect, it } from 'vitest';
import { toGlobalId } from '../../src/graphql/relay';
import { BACKLOG_CUSTOMERS_PER_ROW, BACKLOG_INTERACTIONS_PER_ROW, addOutboxBacklog, customerWith, unsentOutboxEvents, withApiOnlyApp as withApp } from '../support/outbox-backlog';

// An erasure takes the customer's events out of the outbox, sent or not. When the relay is behind
// (a broker outage), the outbox holds many unsent rows of other customers' events: the erasure must
// take out exactly the customer's events, and cost about the same whatever the backlog (it used to
// render every event of the outbox through the `outbox` view: 41–46 s behind by a million events).

const ENRICHED = 'interactions.enriched.v1';

interface ViewEvent {
  batch_id: string;
  part: number;
  topic: string;
  message_key: string | null;
  payload: string | null;
  headers: string;
}

describe('erasure with an outbox backlog', () => {
  it('takes exactly the erased customer’s events out of unsent and sent rows, deletes rows left empty, and reports the count', async () => {
    await withApp('eraseoutbox', async (app, q) => {
      const root = await customerWith(q, 'erased-root', 4);
      const member = await customerWith(q, 'erased-member', 2, root.id);
      const o1 = await customerWith(q, 'other-one', 5);
      const o2 = await customerWith(q, 'other-two', 3);
      const [anon] = await q<{ id: string }>(
        `INSERT INTO interaction (source, external_id, text, occurred_at, direction, sentiment_score, sentiment_label, sentiment_confidence, intent)
         VALUES ('trustpilot', 'anon-1', 'No customer', now(), 'inbound', 0, 'neutral', 0.5, 'other') RETURNING id`,
      );
      const [r1, r2, r3, r4] = root.iids as [string, string, string, string];
      const [m1, m2] = member.iids as [string, string];
      const R = root.id;
      const M = member.id;
      const msg = (topic: string, key: string | null, payload: unknown) => ({ topic, key, payload, headers: { 'schema-version': '1', 'event-id': `e-${topic}-${key}` } });
      const rows: { name: string; interactions: string[]; customers: string[]; messages: unknown[]; sent?: boolean }[] = [
        // mixed: the root's interaction twice, the member's, others'; the root's summary (the merged member's renders nothing); events stored as given naming the root by key and by customerId
        { name: 'mixed', interactions: [o1.iids[0]!, r1, o1.iids[1]!, r1, m1], customers: [o1.id, R, M], messages: [msg('customer-sentiment.v1', o2.id, null), msg('listening-gap.v1', R, { itemId: 'i-1' }), msg('listening-gap.v1', 'item-7', { customerId: R, text: 'x' }), msg('listening-gap.v1', 'item-8', { customerId: o1.id })] },
        // only the family: left empty, deleted
        { name: 'theirs', interactions: [r2, m2], customers: [R], messages: [msg(ENRICHED, 'x:erased-root-3', { interactionId: r3 })] },
        // only others
        { name: 'others', interactions: [o1.iids[2]!, o2.iids[0]!, anon!.id], customers: [o2.id, o1.id], messages: [msg('listening-gap.v1', 'item-9', { customerId: o1.id })] },
        // sent already: the root's events go too
        { name: 'sent', interactions: [r4, o1.iids[3]!], customers: [R, o1.id], messages: [], sent: true },
        // a tombstone of the root only: deleted
        { name: 'tombstone', interactions: [], customers: [], messages: [msg('customer-sentiment.v1', R, null)] },
        // the merged member's summary only (renders nothing): its id goes, the row is deleted
        { name: 'member', interactions: [], customers: [M], messages: [] },
        // an event of another topic that names an erased interaction by id: not an enriched event, kept (as before)
        { name: 'other-topic', interactions: [o2.iids[1]!], customers: [], messages: [msg('listening-gap.v1', 'item-10', { interactionId: r1 })] },
      ];
      const batch = new Map<string, string>();
      for (const r of rows) {
        const [{ id }] = await q<{ id: string }>(
          `INSERT INTO outbox_batch (interaction_ids, customer_ids, public_url, messages, sent_at) VALUES ($1::uuid[], $2::uuid[], 'https://earshot.test', $3::jsonb, $4) RETURNING id`,
          [r.interactions, r.customers, JSON.stringify(r.messages), r.sent ? new Date() : null],
        );
        batch.set(r.name, id);
      }
      const lastBefore = Math.max(...[...batch.values()].map(Number));
      const ids = [R, M];
      const familyIids = [...root.iids, ...member.iids];
      const events = () =>
        q<ViewEvent>(
          `SELECT batch_id::text, part, topic, message_key, payload::text AS payload, headers::text AS headers,
                  (message_key = ANY($2::text[]) OR payload->>'customerId' = ANY($2::text[]) OR (topic = $4 AND payload->>'interactionId' = ANY($3::text[]))) AS about
             FROM outbox WHERE batch_id <= $1 ORDER BY batch_id, part, seq`,
          [lastBefore, ids, familyIids, ENRICHED],
        );
      const before = (await events()) as (ViewEvent & { about: boolean })[];
      const about = before.filter((e) => e.about);
      // 6 in 'mixed', 4 in 'theirs', 2 in 'sent', 1 in 'tombstone'
      expect(about).toHaveLength(13);
      const othersBefore = before.filter((e) => !e.about).map(({ about: _, ...e }) => e);
      expect(othersBefore).toHaveLength(15);
      const storedBefore = await q<{ id: string; row: string }>(`SELECT id::text, row_to_json(b)::text AS row FROM outbox_batch b WHERE id <= $1 ORDER BY id`, [lastBefore]);

      const res = await app.gql<{ eraseCustomer: { outboxRowsRemoved: number; interactions: number; customers: string[] } }>(
        `mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-77") { outboxRowsRemoved interactions customers } }`,
        { id: toGlobalId('Customer', M) },
      );
      expect(res.errors).toBeUndefined();
      expect(res.data.eraseCustomer.outboxRowsRemoved).toBe(13);
      expect(res.data.eraseCustomer.interactions).toBe(6);
      const [audit] = await q<{ n: number }>(`SELECT outbox_rows_removed::int AS n FROM erasure_request WHERE customer_id = $1`, [M]);
      expect(audit!.n).toBe(13);

      // every other event still there, byte for byte and in order; none of the family's
      const after = ((await events()) as (ViewEvent & { about: boolean })[]).map(({ about: _, ...e }) => e);
      expect(after).toEqual(othersBefore);

      // rows left empty deleted, the others untouched or only emptied of the family's ids and events (order kept)
      const left = await q<{ id: string; interaction_ids: string[]; customer_ids: string[]; messages: unknown[]; row: string }>(
        `SELECT id::text, interaction_ids::text[], customer_ids::text[], messages, row_to_json(b)::text AS row FROM outbox_batch b WHERE id <= $1 ORDER BY id`,
        [lastBefore],
      );
      expect(left.map((r) => r.id)).toEqual(['mixed', 'others', 'sent', 'other-topic'].map((n) => batch.get(n)));
      const byName = (n: string) => left.find((r) => r.id === batch.get(n))!;
      expect(byName('mixed').interaction_ids).toEqual([o1.iids[0], o1.iids[1]]);
      expect(byName('mixed').customer_ids).toEqual([o1.id]);
      expect(byName('mixed').messages).toEqual([rows[0]!.messages[0], rows[0]!.messages[3]]);
      expect(byName('sent').interaction_ids).toEqual([o1.iids[3]]);
      expect(byName('sent').customer_ids).toEqual([o1.id]);
      for (const n of ['others', 'other-topic']) expect(byName(n).row).toBe(storedBefore.find((r) => r.id === batch.get(n))!.row);

      // the erasure's own events follow in a row of their own
      const [mine] = await q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE batch_id > $1 AND topic = 'customer-erasure.v1'`, [lastBefore]);
      expect(mine!.n).toBe(1);
    });
  });

  it('costs about the same with a large unsent backlog as with a small one', async () => {
    const SMALL_ROWS = 4;
    const LARGE_ROWS = 200;
    await withApp('eraseoutboxcost', async (app, q) => {
      // customers to erase, alike: 5 interactions each, in an unsent row of their own
      const probes: string[] = [];
      for (let k = 0; k < 7; k++) {
        const p = await customerWith(q, `probe-${k}`, 5);
        await q(`INSERT INTO outbox_batch (interaction_ids, customer_ids, public_url) VALUES ($1::uuid[], $2::uuid[], 'https://earshot.test')`, [p.iids, [p.id]]);
        probes.push(p.id);
      }
      const erase = async (id: string) => {
        const t = process.hrtime.bigint();
        const out = await app.services.erasure.erase(id, 'DSR-cost', 'test');
        const ms = Number(process.hrtime.bigint() - t) / 1e6;
        expect(out.request.outboxRowsRemoved).toBe(6);
        return ms;
      };

      await addOutboxBacklog(q, 0, SMALL_ROWS);
      await erase(probes[0]!); // warm-up
      const small = Math.min(await erase(probes[1]!), await erase(probes[2]!), await erase(probes[3]!));
      await addOutboxBacklog(q, SMALL_ROWS, LARGE_ROWS);
      expect(await unsentOutboxEvents(q)).toBeGreaterThanOrEqual(LARGE_ROWS * (BACKLOG_INTERACTIONS_PER_ROW + BACKLOG_CUSTOMERS_PER_ROW));
      const large = Math.min(await erase(probes[4]!), await erase(probes[5]!), await erase(probes[6]!));
      // 50 times the backlog: rendering it all through the view took 40 times as long (86 ms, then 3.4 s);
      // scanning the stored arrays about twice (10 ms, then 20 ms)
      expect(large / small, `erasure ${small.toFixed(1)} ms with ${SMALL_ROWS} unsent rows, ${large.toFixed(1)} ms with ${LARGE_ROWS}`).toBeLessThan(8);
    });
  }, 180_000);
});

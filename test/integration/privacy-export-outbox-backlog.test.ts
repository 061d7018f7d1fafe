import { describe, expect, it } from 'vitest';
import { addOutboxBacklog, customerWith, unsentOutboxEvents, withApiOnlyApp, type Query } from '../support/outbox-backlog';

// A data export lists the customer's outbox events not yet sent. When the relay is behind (a broker
// outage), the outbox holds many unsent rows of other customers' events: the export must list
// exactly the customer's, and cost about the same whatever the backlog. It used to filter the
// rendered `outbox` view, which rendered every unsent event of every customer first.

/** The unsent events about the customers as the `outbox` view renders them: what the export must list, in order. */
async function unsentAbout(q: Query, ids: string[]): Promise<{ id: string; topic: string; message_key: string | null; payload: unknown }[]> {
  return q(
    `SELECT batch_id::text AS id, topic, message_key, payload::jsonb AS payload FROM outbox
      WHERE sent_at IS NULL AND (message_key = ANY($1::text[]) OR payload->>'customerId' = ANY($1::text[]))
      ORDER BY batch_id, part, seq`,
    [ids],
  );
}

describe('data export with an outbox backlog', () => {
  it("lists exactly the customer's unsent events, merged-away members' included, and no sent ones", async () => {
    await withApiOnlyApp('exportoutbox', async (app, q) => {
      const root = await customerWith(q, 'export-root', 3);
      const member = await customerWith(q, 'export-member', 2, root.id);
      const other = await customerWith(q, 'export-other', 4);
      const [r1, r2, r3] = root.iids as [string, string, string];
      const [m1, m2] = member.iids as [string, string];
      const [o1, o2, o3, o4] = other.iids as [string, string, string, string];
      const R = root.id;
      const msg = (topic: string, key: string | null, payload: unknown) => ({ topic, key, payload, headers: { 'schema-version': '1' } });
      const rows: { interactions: string[]; customers: string[]; messages: unknown[]; sent?: boolean }[] = [
        // mixed: the root's and the member's interactions among another's; both summaries (the member's renders nothing); events stored as given naming the root by key and by customerId
        { interactions: [o1, r1, o2, m1], customers: [other.id, R, member.id], messages: [msg('listening-gap.v1', R, { itemId: 'i-1' }), msg('listening-gap.v1', 'item-7', { customerId: R }), msg('listening-gap.v1', 'item-8', { customerId: other.id })] },
        // only another customer's
        { interactions: [o3], customers: [other.id], messages: [msg('customer-sentiment.v1', other.id, null)] },
        // sent already: not listed
        { interactions: [r2, o4], customers: [R], messages: [msg('listening-gap.v1', R, { itemId: 'i-2' })], sent: true },
        // only the family's, one as a tombstone stored as given
        { interactions: [m2, r3], customers: [], messages: [msg('customer-sentiment.v1', R, null)] },
      ];
      for (const r of rows) {
        await q(`INSERT INTO outbox_batch (interaction_ids, customer_ids, public_url, messages, sent_at) VALUES ($1::uuid[], $2::uuid[], 'https://earshot.test', $3::jsonb, $4)`, [
          r.interactions,
          r.customers,
          JSON.stringify(r.messages),
          r.sent ? new Date() : null,
        ]);
      }
      const expected = await unsentAbout(q, [R, member.id]);
      // mixed: r1, m1, R's summary, two stored as given; the family's row: m2, r3, the tombstone
      expect(expected.map((e) => [e.topic, e.message_key])).toEqual([
        ['interactions.enriched.v1', R],
        ['interactions.enriched.v1', member.id],
        ['customer-sentiment.v1', R],
        ['listening-gap.v1', R],
        ['listening-gap.v1', 'item-7'],
        ['interactions.enriched.v1', member.id],
        ['interactions.enriched.v1', R],
        ['customer-sentiment.v1', R],
      ]);

      const out = await app.services.exports.export(R);
      const listed = (out.pendingOutbox as { id: string; topic: string; message_key: string | null; payload: unknown }[]).map((e) => ({
        id: String(e.id),
        topic: e.topic,
        message_key: e.message_key,
        payload: e.payload,
      }));
      expect(listed).toEqual(expected);
      expect(listed.filter((e) => e.topic === 'interactions.enriched.v1').map((e) => (e.payload as { interactionId: string }).interactionId)).toEqual([r1, m1, m2, r3]);
    });
  });

  it('costs about the same with a large unsent backlog as with a small one', async () => {
    const SMALL_ROWS = 4;
    const LARGE_ROWS = 200;
    await withApiOnlyApp('exportoutboxcost', async (app, q) => {
      // customers to export, alike: 5 interactions each, in an unsent row of their own
      const probe = await customerWith(q, 'probe', 5);
      await q(`INSERT INTO outbox_batch (interaction_ids, customer_ids, public_url) VALUES ($1::uuid[], $2::uuid[], 'https://earshot.test')`, [probe.iids, [probe.id]]);
      const exportOnce = async () => {
        const t = process.hrtime.bigint();
        const out = await app.services.exports.export(probe.id);
        const ms = Number(process.hrtime.bigint() - t) / 1e6;
        expect((out.pendingOutbox as unknown[]).length).toBe(6);
        return ms;
      };

      await addOutboxBacklog(q, 0, SMALL_ROWS);
      await exportOnce(); // warm-up
      const small = Math.min(await exportOnce(), await exportOnce(), await exportOnce());
      await addOutboxBacklog(q, SMALL_ROWS, LARGE_ROWS);
      expect(await unsentOutboxEvents(q)).toBeGreaterThanOrEqual(LARGE_ROWS * 550);
      const large = Math.min(await exportOnce(), await exportOnce(), await exportOnce());
      expect(large / small, `export ${small.toFixed(1)} ms with ${SMALL_ROWS} unsent rows, ${large.toFixed(1)} ms with ${LARGE_ROWS}`).toBeLessThan(8);
    });
  }, 180_000);
});

import fc from 'fast-check';
import { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outboxEvents } from '../../src/outbox/outbox-render';
import { outboxEventsRendered, type OutboxEventRow } from '../../src/outbox/outbox.repository';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// The relay writes each event's JSON itself from the columns the `outbox` view reads
// (src/outbox/outbox-render.ts). The view stays the definition: here every event of generated
// outbox rows, whole and in slices, is compared with what the view renders for it.

/** Text a message may carry: JSON's escapes, quotes, control characters, other scripts, emoji. */
const text = fc
  .oneof(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }),
    fc.array(fc.constantFrom('"', '\\', '\u0001', '\u001f', '\t', '\n', '\u2028', 'é', '😀', '</script>', 'refund', 'late parcel', 'app crashes', 'password', ' '), { minLength: 1, maxLength: 12 }).map((a) => a.join('')),
  )
  .filter((s) => !s.includes('\u0000') && s.trim().length > 0);

const line = fc.record({
  text,
  handle: fc.stringMatching(/^[a-z][a-z0-9_]{0,7}$/),
  displayName: fc.option(text, { nil: null }),
  url: fc.option(fc.webUrl(), { nil: null }),
  rating: fc.option(fc.oneof(fc.integer({ min: 1, max: 5 }), fc.double({ min: 0, max: 10, noNaN: true })), { nil: null }),
  lang: fc.option(fc.constantFrom('en', 'de', 'fr-CA'), { nil: null }),
  reply: fc.boolean(),
});

const ALL = [true, true, true] as const;

function compare(mine: OutboxEventRow[], view: OutboxEventRow[]): void {
  expect(mine.map((e) => [e.batch_id, e.part, e.topic, e.message_key])).toEqual(view.map((e) => [e.batch_id, e.part, e.topic, e.message_key]));
  for (const [i, e] of mine.entries()) {
    const v = view[i]!;
    expect(e.headers).toEqual(v.headers);
    expect([e.author_source, e.author_handle, e.display_name]).toEqual([v.author_source, v.author_handle, v.display_name]);
    expect(e.payload === null ? null : JSON.parse(e.payload)).toEqual(v.payload === null ? null : JSON.parse(v.payload));
  }
}

describe('outbox events written by the relay', () => {
  let app: TestApp;
  let pool: Pool;
  beforeAll(async () => {
    // no Kafka: the relay does not run, and the outbox rows stay for the comparison
    app = await startTestApp({}, 'outboxrender');
    pool = new Pool({ connectionString: app.database.url, max: 2 });
  });
  afterAll(async () => {
    await pool?.end();
    await app?.close();
  });

  it('are the events the outbox view renders, field for field, for whole rows and for slices', async () => {
    const samples = fc.sample(fc.array(line, { minLength: 30, maxLength: 30 }), { numRuns: 4, seed: 20261201 });
    let n = 0;
    for (const batch of samples) {
      const lines = batch.map((s, i) => {
        n++;
        return message(70_000 + n, {
          // one text of 100 kB full of what JSON escapes, beside the generated ones
          text: n === 1 ? '"\\\u0001\u001f\t\né😀\u2028</script>'.repeat(6_000).slice(0, 100_000) : s.text,
          url: s.url,
          rating: s.rating,
          lang: s.lang,
          // a few authors write several times, so a row has fewer customers than interactions
          author: { handle: `${s.handle}${i % 7}`, displayName: s.displayName },
          ...(s.reply && n > 1 ? { inReplyTo: `ext-${70_000 + n - 1}` } : {}),
        });
      });
      const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { accepted: number }).accepted).toBe(30);
    }
    const q = (sql: string) => app.db.ds.query(sql);
    // what ingest does not produce, set by hand: trace headers on a row, an explanation longer
    // than the 20 items published, a rating that is not a number, a customer merged away,
    // a summary with no trend, and a row of events stored as given (a tombstone among them)
    const [first, second] = (await q(`SELECT id FROM outbox_batch ORDER BY id LIMIT 2`)) as { id: string }[];
    await q(`UPDATE outbox_batch SET trace_headers = '{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}' WHERE id = ${first!.id}`);
    await q(`UPDATE interaction SET explanation = (SELECT json_agg(json_build_object('token', 't' || g, 'weight', g / 7.0)) FROM generate_series(1, 25) g)
              WHERE id = (SELECT id FROM interaction ORDER BY external_id LIMIT 1)`);
    // an explanation of 22 items written by hand: spacing and line breaks, and strings holding the
    // commas, brackets, quotes and escapes that the relay's count of items must step over
    const tricky = Array.from({ length: 22 }, (_, k) => `{ "token" : "t${k}, ]}{\\\\\\"" ,\n "weight": ${k - 10.5} }`);
    await q(`UPDATE interaction SET explanation = '[ ${tricky.join(' ,\n ')} ]' WHERE id = (SELECT id FROM interaction ORDER BY external_id OFFSET 3 LIMIT 1)`);
    await q(`UPDATE interaction SET rating = 'NaN' WHERE id = (SELECT id FROM interaction ORDER BY external_id OFFSET 1 LIMIT 1)`);
    await q(`UPDATE customer SET merged_into_id = (SELECT id FROM customer ORDER BY id LIMIT 1) WHERE id = (SELECT id FROM customer ORDER BY id OFFSET 1 LIMIT 1)`);
    await q(`UPDATE customer SET sentiment_trend = NULL WHERE id = (SELECT id FROM customer ORDER BY id OFFSET 2 LIMIT 1)`);
    await q(`INSERT INTO outbox_batch (interaction_ids, customer_ids, messages)
             VALUES ('{}', '{}', '[{"topic":"listening-gap.v1","key":"k1","payload":{"a":"\\"x\\""},"headers":{"schema-version":"1","event-id":"e1"}},
                                 {"topic":"customer-sentiment.v1","key":"k2","payload":null,"headers":{"schema-version":"1","event-id":"e2"}}]')`);
    await q(`UPDATE outbox_batch SET messages = '[{"topic":"listening-gap.v1","key":"k3","payload":{"b":1},"headers":{"event-id":"e3"}}]' WHERE id = ${second!.id}`);

    const ids = ((await q(`SELECT id FROM outbox_batch ORDER BY id`)) as { id: string }[]).map((r) => r.id);
    expect(ids).toHaveLength(5);
    const view = await outboxEventsRendered(pool, { ids });
    expect(view.length).toBeGreaterThan(150);
    expect(new Set(view.map((e) => e.part))).toEqual(new Set([0, 1, 2]));
    // what the comparison must cover: topics of more than one department, and explanations cut to 20
    const enriched = view.filter((e) => e.part === 0).map((e) => JSON.parse(e.payload!) as { topics: unknown[]; departments: unknown[]; sentiment: { explanation: { token: string }[] } });
    expect(enriched.some((e) => e.departments.length >= 2)).toBe(true);
    expect(enriched.filter((e) => e.sentiment.explanation.length === 20).map((e) => e.sentiment.explanation[19]!.token).sort()).toEqual(['t19, ]}{\\"', 't20']);
    compare(await outboxEvents(pool, { ids }, ALL), view);
    // rows in any order and any grouping give the same, in row order
    compare(await outboxEvents(pool, { ids: [...ids].reverse().slice(0, 3) }, ALL), await outboxEventsRendered(pool, { ids: ids.slice(-3) }));
    // slices of seven events of each part of each row
    for (const id of ids) {
      const [{ n0, n1, n2 }] = (await q(`SELECT cardinality(interaction_ids) AS n0, cardinality(customer_ids) AS n1, jsonb_array_length(messages) AS n2 FROM outbox_batch WHERE id = ${id}`)) as { n0: number; n1: number; n2: number }[];
      for (const [part, count] of [n0, n1, n2].entries()) {
        for (let lo = 1; lo <= count; lo += 7) {
          const slice = { id, part, lo, hi: lo + 6 };
          compare(await outboxEvents(pool, { slice }, ALL), await outboxEventsRendered(pool, { slice }));
        }
      }
    }
  });
});

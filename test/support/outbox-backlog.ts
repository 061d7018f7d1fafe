import { startTestApp, type TestApp } from './app';

/** A query on the test app's database. */
export type Query = <T = Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<T[]>;

/** An app with the api role only: no outbox relay, so every outbox row stays unsent. */
export async function withApiOnlyApp(label: string, fn: (app: TestApp, q: Query) => Promise<void>): Promise<void> {
  const app = await startTestApp({ EARSHOT_ROLES: 'api' }, label);
  try {
    await fn(app, async <T,>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[]);
  } finally {
    await app.close();
  }
}

/** A customer named `name` with `n` interactions (external ids `<name>-<k>`): its id, and its interactions' ids in order. */
export async function customerWith(q: Query, name: string, n: number, mergedInto?: string): Promise<{ id: string; iids: string[] }> {
  const [c] = await q<{ id: string }>(
    `INSERT INTO customer (display_name, merged_into_id, sentiment_score, sentiment_label, interaction_count) VALUES ($1, $2, 0.2, 'positive', $3) RETURNING id`,
    [name, mergedInto ?? null, n],
  );
  const iids = await q<{ id: string }>(
    `INSERT INTO interaction (source, external_id, text, occurred_at, direction, author_handle, author_display_name, sentiment_score, sentiment_label, sentiment_confidence, intent, customer_id)
     SELECT 'x', $1 || '-' || g, 'Message ' || g || ' from ' || $1, timestamptz '2026-11-01' + g * interval '1 minute', 'inbound', $1, $1, 0.1, 'neutral', 0.5, 'other', $2::uuid
       FROM generate_series(1, $3::int) g ORDER BY g RETURNING id`,
    [name, c!.id, n],
  );
  return { id: c!.id, iids: iids.map((r) => r.id) };
}

export const BACKLOG_INTERACTIONS_PER_ROW = 500;
export const BACKLOG_CUSTOMERS_PER_ROW = 50;

/**
 * Unsent outbox rows `from` (inclusive) to `to` (exclusive) of other customers' events, as ingest
 * writes them: 500 interactions and 50 customers each, all stored. Analyzes the database after.
 */
export async function addOutboxBacklog(q: Query, from: number, to: number): Promise<void> {
  const per = BACKLOG_INTERACTIONS_PER_ROW;
  const customers = BACKLOG_CUSTOMERS_PER_ROW;
  await q(
    `INSERT INTO customer (display_name, sentiment_score, sentiment_label, interaction_count) SELECT 'Bulk ' || g, 0.1, 'neutral', 10 FROM generate_series($1::int * ${customers}, $2::int * ${customers} - 1) g`,
    [from, to],
  );
  await q(
    `INSERT INTO interaction (source, external_id, text, occurred_at, direction, author_handle, author_display_name, sentiment_score, sentiment_label, sentiment_confidence, intent, customer_id)
     SELECT 'x', 'bulk-' || g, 'The parcel is late again and nobody answers the phone', timestamptz '2026-10-01' + g * interval '1 second', 'inbound',
            'bulk' || (g / 10), 'Bulk ' || (g / 10), -0.4, 'negative', 0.8, 'complaint', c.id
       FROM generate_series($1::int * ${per}, $2::int * ${per} - 1) g
       JOIN customer c ON c.display_name = 'Bulk ' || (g / 10)`,
    [from, to],
  );
  await q(
    `INSERT INTO outbox_batch (interaction_ids, customer_ids, public_url)
     SELECT i.ids, c.ids, 'https://earshot.test'
       FROM (SELECT substr(external_id, 6)::int / ${per} AS r, array_agg(id ORDER BY substr(external_id, 6)::int) AS ids
               FROM interaction WHERE external_id LIKE 'bulk-%' GROUP BY 1) i
       JOIN (SELECT substr(display_name, 6)::int / ${customers} AS r, array_agg(id ORDER BY substr(display_name, 6)::int) AS ids
               FROM customer WHERE display_name LIKE 'Bulk %' GROUP BY 1) c USING (r)
      WHERE r >= $1 AND r < $2 ORDER BY r`,
    [from, to],
  );
  await q('ANALYZE');
}

/** How many events the unsent outbox rows hold (each interaction and customer id renders at most one). */
export async function unsentOutboxEvents(q: Query): Promise<number> {
  const [row] = await q<{ events: number }>(`SELECT coalesce(sum(cardinality(interaction_ids) + cardinality(customer_ids)), 0)::int AS events FROM outbox_batch WHERE sent_at IS NULL`);
  return row!.events;
}

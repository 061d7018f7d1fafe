import { exec, firstRow, modify, rows, type Db } from '../db/sql';
import type { InteractionRow } from '../interactions/interaction.repository';
import type { Analysis } from './analyzer';

/**
 * Every SQL statement of the re-score job (its job rows, the keyset read of stored scores, the
 * page's score update and what follows it), each returning a declared row type. The rollups and
 * customer summaries it moves are written by ./rollups.ts and ./rollups.repository.ts.
 */

export interface RescoreJobRow {
  id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  phase: 'interactions' | 'rollups' | 'done';
  requested_by: string;
  open_items_since: Date | null;
  total: number;
  done: number;
  changed: number;
  items_opened: number;
  customers_updated: number;
  last_id: string | null;
  models: Record<string, number>;
  error: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

/** A stored interaction as the re-score reads it: its stored analysis, as the API's row has it, and what the tracker needs. */
export interface StoredRow extends Pick<InteractionRow,
  'id' | 'text' | 'lang' | 'rating' | 'source' | 'external_id' | 'occurred_at' | 'author_handle' | 'customer_id'
  | 'sentiment_score' | 'sentiment_label' | 'sentiment_confidence' | 'intent' | 'intent_confidence' | 'explanation'
  | 'sentiment_model' | 'complaint' | 'complaint_probability' | 'unhappy'> {
  rating_scale: number | null;
  thread_key: string | null;
  direction: 'inbound' | 'outbound';
  /**
   * without an author handle: the e-mail or phone of the identity that attached the interaction
   * (`identity_id`), the address ingest kept its listening item under (`authorKeyOf`: the handle,
   * else the e-mail, else the phone); null otherwise
   */
  author_address: string | null;
  /** erased or past retention: no text left to score */
  redacted: boolean;
}

// ---- the job rows ------------------------------------------------------------------------------

/** Queues a job, or null while another is queued or running (a unique index allows one active job). */
export async function insertRescoreJob(db: Db, actor: string, openItemsSince: string | null): Promise<RescoreJobRow | null> {
  const row = await firstRow<RescoreJobRow>(
    db,
    `INSERT INTO rescore_job (requested_by, open_items_since) VALUES ($1, $2)
     ON CONFLICT ((true)) WHERE status IN ('queued', 'running') DO NOTHING RETURNING *`,
    [actor, openItemsSince],
  );
  return row ?? null;
}

/** The id of the job queued or running, if any. */
export async function activeRescoreJobId(db: Db): Promise<string | null> {
  const active = await firstRow<{ id: string }>(db, `SELECT id FROM rescore_job WHERE status IN ('queued', 'running')`);
  return active?.id ?? null;
}

/** Whether a job is queued or running. */
export async function hasActiveRescoreJob(db: Db): Promise<boolean> {
  return (await firstRow(db, `SELECT 1 FROM rescore_job WHERE status IN ('queued', 'running') LIMIT 1`)) !== undefined;
}

export function rescoreJobById(db: Db, id: string): Promise<RescoreJobRow | undefined> {
  return firstRow(db, `SELECT * FROM rescore_job WHERE id = $1`, [id]);
}

/** The oldest job not finished, if any. */
export function nextRescoreJob(db: Db): Promise<RescoreJobRow | undefined> {
  return firstRow(db, `SELECT * FROM rescore_job WHERE status IN ('queued', 'running') ORDER BY created_at LIMIT 1`);
}

export async function markRescoreRunning(db: Db, id: string, total: number): Promise<void> {
  await exec(db, `UPDATE rescore_job SET status = 'running', started_at = now(), updated_at = now(), total = $2 WHERE id = $1`, [id, total]);
}

export async function markRescoreRollupsPhase(db: Db, id: string): Promise<void> {
  await exec(db, `UPDATE rescore_job SET phase = 'rollups', updated_at = now() WHERE id = $1`, [id]);
}

export async function markRescoreSucceeded(db: Db, id: string): Promise<void> {
  await exec(db, `UPDATE rescore_job SET status = 'succeeded', phase = 'done', finished_at = now(), updated_at = now() WHERE id = $1`, [id]);
}

export async function markRescoreFailed(db: Db, id: string, error: string): Promise<void> {
  await exec(db, `UPDATE rescore_job SET status = 'failed', error = $2, finished_at = now(), updated_at = now() WHERE id = $1`, [id, error]);
}

/** A finished job's counters. */
export function rescoreJobTotals(
  db: Db,
  id: string,
): Promise<Pick<RescoreJobRow, 'done' | 'changed' | 'items_opened' | 'customers_updated' | 'models'> | undefined> {
  return firstRow(db, `SELECT done, changed, items_opened, customers_updated, models FROM rescore_job WHERE id = $1`, [id]);
}

/**
 * A committed page: the counters add up, the models' counts merge, the cursor moves from `after`
 * (where the page began; null for the first) to `lastId`. False, and nothing written, when the
 * cursor is no longer at `after` or the job is no longer running: another runner took the job over
 * (this one's lock session ended) and did the page; the caller rolls its page back.
 */
export async function addRescoreProgress(
  db: Db,
  id: string,
  after: string | null,
  p: { done: number; changed: number; itemsOpened: number; customersUpdated: number; lastId: string; models: Record<string, number> },
): Promise<boolean> {
  const { count } = await modify(
    db,
    `UPDATE rescore_job SET done = done + $2, changed = changed + $3, items_opened = items_opened + $4,
              customers_updated = customers_updated + $5, last_id = $6, updated_at = now(),
              models = (SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM (
                SELECT k, sum(v::int) AS v FROM (
                  SELECT key AS k, value AS v FROM jsonb_each_text(rescore_job.models)
                  UNION ALL SELECT key, value FROM jsonb_each_text($7::jsonb)) m GROUP BY k) s)
        WHERE id = $1 AND status = 'running' AND phase = 'interactions' AND last_id IS NOT DISTINCT FROM $8::uuid`,
    [id, p.done, p.changed, p.itemsOpened, p.customersUpdated, p.lastId, JSON.stringify(p.models), after],
  );
  return count === 1;
}

// ---- the interactions --------------------------------------------------------------------------

/** Up to `limit` stored interactions after `after` by id. */
export function storedPage(db: Db, after: string, limit: number): Promise<StoredRow[]> {
  return rows(
    db,
    `SELECT id, text, lang, rating, CASE WHEN jsonb_typeof(metadata->'ratingScale') = 'number' THEN (metadata->>'ratingScale')::float8 END AS rating_scale,
                  source, external_id, thread_key, direction, occurred_at, author_handle, customer_id, sentiment_score, sentiment_label,
                  sentiment_confidence, intent, intent_confidence, explanation, sentiment_model, complaint, complaint_probability, unhappy,
                  redacted_at IS NOT NULL AS redacted,
                  CASE WHEN author_handle IS NULL AND identity_id IS NOT NULL THEN
                    (SELECT ci.value FROM customer_identity ci WHERE ci.id = interaction.identity_id AND ci.kind IN ('email', 'phone')) END AS author_address
             FROM interaction WHERE id > $1 ORDER BY id LIMIT $2`,
    [after, limit],
  );
}

/**
 * Locks the interactions of `ids` that are not redacted (erased, or past retention) and returns
 * their ids: a row erased after the page was read keeps what the erasure left, and none can be
 * erased until the page commits.
 */
export async function lockUnredacted(db: Db, ids: readonly string[]): Promise<Set<string>> {
  const found = await rows<{ id: string }>(db, `SELECT id FROM interaction WHERE id = ANY($1::uuid[]) AND redacted_at IS NULL ORDER BY id FOR NO KEY UPDATE`, [ids]);
  return new Set(found.map((r) => r.id));
}

/**
 * Writes the new analyses of interactions, with the language they were read in (a declared `en`
 * on Japanese text, stored as `en` before the script overruled it, becomes `ja`); their owner and
 * direction as they are now.
 */
export async function updateScores(
  db: Db,
  changed: readonly { row: { id: string }; a: Analysis }[],
): Promise<{ id: string; customer_id: string | null; direction: string }[]> {
  const { rows: updated } = await modify<{ id: string; customer_id: string | null; direction: string }>(
    db,
    `UPDATE interaction i SET sentiment_score = x.score, sentiment_label = x.label, sentiment_confidence = x.confidence,
                intent = x.intent, intent_confidence = x.intent_confidence, explanation = x.explanation, sentiment_model = x.model,
                complaint = x.complaint, complaint_probability = x.complaint_probability, unhappy = x.unhappy, lang = x.lang
           FROM unnest($1::uuid[], $2::float8[], $3::text[], $4::float8[], $5::text[], $6::float8[], $7::json[], $8::text[],
                       $9::boolean[], $10::float8[], $11::boolean[], $12::text[])
             AS x(id, score, label, confidence, intent, intent_confidence, explanation, model, complaint, complaint_probability, unhappy, lang)
          WHERE i.id = x.id
          RETURNING i.id, i.customer_id, i.direction`,
    [
      changed.map((c) => c.row.id),
      changed.map((c) => c.a.score),
      changed.map((c) => c.a.label),
      changed.map((c) => c.a.confidence),
      changed.map((c) => c.a.intent),
      changed.map((c) => c.a.intentConfidence),
      changed.map((c) => JSON.stringify(c.a.explanation)),
      changed.map((c) => c.a.model),
      changed.map((c) => c.a.complaint),
      changed.map((c) => c.a.complaintProbability),
      changed.map((c) => c.a.unhappy),
      changed.map((c) => c.a.lang),
    ],
  );
  return updated;
}

export interface SummaryRow {
  id: string;
  sentiment_score: number | null;
  sentiment_label: string | null;
  sentiment_trend: number | null;
  interaction_count: number;
}

/** The stored summaries of customers. */
export function customerSummaries(db: Db, customerIds: readonly string[]): Promise<SummaryRow[]> {
  return rows(db, `SELECT id, sentiment_score, sentiment_label, sentiment_trend, interaction_count FROM customer WHERE id = ANY($1::uuid[])`, [customerIds]);
}

/** Queues the CRM write-back of the customers (survivors with interactions and a live CRM record). */
export async function enqueueCrmWriteback(db: Db, customerIds: readonly string[]): Promise<void> {
  await exec(
    db,
    `SELECT crm_writeback_enqueue(c.id) FROM customer c
            WHERE c.id = ANY($1::uuid[]) AND c.merged_into_id IS NULL AND c.last_interaction_at IS NOT NULL
              AND EXISTS (SELECT 1 FROM crm_record r WHERE r.customer_id = c.id AND r.deleted_at IS NULL)`,
    [customerIds],
  );
}

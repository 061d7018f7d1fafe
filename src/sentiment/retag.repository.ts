import { exec, firstRow, modify, rows, type Db } from '../db/sql';

/**
 * Every SQL statement of the re-tag job (its job rows, the chunked read of stored tags and their
 * replacement), each returning a declared row type. The rollups the job moves are written by
 * ./rollups.ts and ./rollups.repository.ts.
 */

export interface RetagJobRow {
  id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  reason: string;
  requested_by: string;
  total: number;
  done: number;
  changed: number;
  error: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

// ---- the job rows ------------------------------------------------------------------------------

export async function insertRetagJob(db: Db, reason: string, actor: string): Promise<RetagJobRow> {
  return (await firstRow<RetagJobRow>(db, `INSERT INTO retag_job (reason, requested_by) VALUES ($1, $2) RETURNING *`, [reason, actor]))!;
}

export function retagJobById(db: Db, id: string): Promise<RetagJobRow | undefined> {
  return firstRow(db, `SELECT * FROM retag_job WHERE id = $1`, [id]);
}

/** The oldest job not finished, if any. */
export function nextRetagJob(db: Db): Promise<RetagJobRow | undefined> {
  return firstRow(db, `SELECT * FROM retag_job WHERE status IN ('queued', 'running') ORDER BY created_at LIMIT 1`);
}

/** Whether a job is queued or running. */
export async function hasActiveRetagJob(db: Db): Promise<boolean> {
  return (await firstRow(db, `SELECT 1 FROM retag_job WHERE status IN ('queued', 'running') LIMIT 1`)) !== undefined;
}

/** The session-level advisory lock of the one re-tag runner; whether it was free (release: `advisoryUnlock`). */
export async function tryRunnerLock(db: Db, key: number): Promise<boolean> {
  const [{ locked }] = await rows<{ locked: boolean }>(db, 'SELECT pg_try_advisory_lock($1) AS locked', [key]);
  return locked;
}

export async function countInteractions(db: Db): Promise<number> {
  const [{ n }] = await rows<{ n: number }>(db, 'SELECT count(*)::int AS n FROM interaction');
  return n;
}

/** A pass over the job begins; its token (the start time in microseconds), which its chunks and its finish must present. */
export async function markRetagRunning(db: Db, id: string, total: number): Promise<string> {
  const { rows: [row] } = await modify<{ token: string }>(
    db,
    `UPDATE retag_job SET status = 'running', started_at = now(), total = $2, done = 0, changed = 0 WHERE id = $1
      RETURNING (extract(epoch FROM started_at) * 1000000)::bigint::text AS token`,
    [id, total],
  );
  return row!.token;
}

const TOKEN_IS = `status = 'running' AND (extract(epoch FROM started_at) * 1000000)::bigint::text = $2`;

/**
 * A chunk's progress, first in its transaction (it locks the job row until the chunk commits):
 * false, and nothing written, when the pass of `token` is no longer the job's (another runner
 * began a pass since: this one's lock session ended); the caller then rolls the chunk back.
 */
export async function addRetagProgress(db: Db, id: string, token: string, done: number, changed: number): Promise<boolean> {
  const { count } = await modify(db, `UPDATE retag_job SET done = done + $3, changed = changed + $4 WHERE id = $1 AND ${TOKEN_IS}`, [id, token, done, changed]);
  return count === 1;
}

/** Whether the pass of `token` finished the job (false: another runner's pass has it). */
export async function markRetagSucceeded(db: Db, id: string, token: string): Promise<boolean> {
  const { count } = await modify(db, `UPDATE retag_job SET status = 'succeeded', finished_at = now() WHERE id = $1 AND ${TOKEN_IS}`, [id, token]);
  return count === 1;
}

/** The database's clock now (not the transaction's start). */
export async function databaseNow(db: Db): Promise<Date> {
  const [{ now }] = await rows<{ now: Date }>(db, 'SELECT clock_timestamp() AS now');
  return now;
}

/**
 * Marks the queued jobs created before `before` finished like the job `id` (which loaded the
 * taxonomy after `before`, so with their edits); the ids of those it marked.
 */
export async function markCoveredRetagJobs(db: Db, id: string, before: Date): Promise<string[]> {
  const { rows: marked } = await modify<{ id: string }>(
    db,
    `UPDATE retag_job c SET status = j.status, started_at = j.started_at, finished_at = j.finished_at, total = j.total, done = j.done, changed = j.changed
       FROM retag_job j
      WHERE j.id = $1 AND j.status = 'succeeded' AND c.status = 'queued' AND c.created_at < $2 AND c.id <> j.id
      RETURNING c.id`,
    [id, before],
  );
  return marked.map((r) => r.id);
}

export async function markRetagFailed(db: Db, id: string, error: string): Promise<void> {
  await exec(db, `UPDATE retag_job SET status = 'failed', error = $2, finished_at = now() WHERE id = $1`, [id, error]);
}

// ---- the tags ----------------------------------------------------------------------------------

/**
 * Up to `limit` interactions after `after` by id, with their topic ids sorted and the first
 * `maxChars` characters of their text (all that topic matching reads), and no more of them than
 * keeps those texts within `budgetChars` in all (always at least one): 2,000 texts of 256 KiB
 * were half a gigabyte in one read.
 */
export function taggedChunk(
  db: Db,
  after: string,
  limit: number,
  maxChars: number,
  budgetChars: number,
): Promise<{ id: string; text: string; topics: number[]; redacted: boolean }[]> {
  return rows(
    db,
    `SELECT i.id, i.text, i.redacted, coalesce(array_agg(it.topic_id ORDER BY it.topic_id) FILTER (WHERE it.topic_id IS NOT NULL), '{}') AS topics
             FROM (SELECT id, text, redacted FROM (
                     SELECT id, left(text, $3) AS text, redacted_at IS NOT NULL AS redacted,
                            sum(least(length(text), $3)) OVER (ORDER BY id) AS upto, least(length(text), $3) AS len
                       FROM interaction WHERE id > $1 ORDER BY id LIMIT $2) c
                    WHERE c.upto - c.len < $4) i
             LEFT JOIN interaction_topic it ON it.interaction_id = i.id
            GROUP BY i.id, i.text, i.redacted ORDER BY i.id`,
    [after, limit, maxChars, budgetChars],
  );
}

/**
 * Of the interactions `ids`, those not redacted (erased, or past retention), share-locked until
 * the chunk commits: an erasure that came after the chunk was read waits, or was first and its
 * rows are left out.
 */
export async function lockUnredactedForTags(db: Db, ids: readonly string[]): Promise<Set<string>> {
  const found = await rows<{ id: string }>(db, `SELECT id FROM interaction WHERE id = ANY($1::uuid[]) AND redacted_at IS NULL ORDER BY id FOR SHARE`, [ids]);
  return new Set(found.map((r) => r.id));
}

/** Replaces the tags of the interactions `ids` by `tags` ([interaction id, topic id, matched words as JSON]). */
export async function replaceTags(db: Db, ids: readonly string[], tags: readonly (readonly [string, number, string])[]): Promise<void> {
  await exec(db, 'DELETE FROM interaction_topic WHERE interaction_id = ANY($1::uuid[])', [ids]);
  if (tags.length > 0) {
    await exec(
      db,
      `INSERT INTO interaction_topic (interaction_id, topic_id, matched)
                 SELECT i, t, ARRAY(SELECT jsonb_array_elements_text(m)) FROM unnest($1::uuid[], $2::int[], $3::jsonb[]) AS x(i, t, m)`,
      [tags.map((r) => r[0]), tags.map((r) => r[1]), tags.map((r) => r[2])],
    );
  }
}

import { exec, firstRow, modify, rows, type Db } from '../db/sql';
import { customerTrendOn } from '../sentiment/rollups.repository';
import type { CrmCaseRow, CrmSystem, SyncMode, WriteBackValues } from './crm.port';

/**
 * Every SQL statement of the CRM feature (sync state and cursors, the org row with its API
 * budget, cases, records as the API shows them, the write-back queue), each returning a
 * declared row type. CRM records as identity resolution writes them are in
 * identity/identity.repository.ts.
 */

// ---- sync state --------------------------------------------------------------------------------

export interface SyncStateRecord {
  system: CrmSystem;
  object_type: string;
  status: 'never_run' | 'running' | 'ok' | 'error' | 'budget_exhausted';
  mode: SyncMode | null;
  cursor_modstamp: Date | null;
  cursor_id: string | null;
  deleted_checked_until: Date | null;
  last_run_started_at: Date | null;
  last_run_finished_at: Date | null;
  last_success_at: Date | null;
  records_last_run: number | string;
  deleted_last_run: number | string;
  api_calls_last_run: number | string;
  total_records: number | string;
  last_error: string | null;
}

/** Stored sync state per system and object (every one, or those matching). */
export function syncStates(db: Db, system: CrmSystem | null, objectType: string | null): Promise<SyncStateRecord[]> {
  return rows(
    db,
    `SELECT system, object_type, status, mode, cursor_modstamp, cursor_id, deleted_checked_until, last_run_started_at, last_run_finished_at,
            last_success_at, records_last_run, deleted_last_run, api_calls_last_run, total_records, last_error
       FROM crm_sync_state WHERE ($1::text IS NULL OR system = $1) AND ($2::text IS NULL OR object_type = $2) ORDER BY system, object_type`,
    [system, objectType],
  );
}

/** An object's run begins: status running, the run's counters back to zero. */
export async function syncStarted(db: Db, system: CrmSystem, objectType: string, mode: SyncMode): Promise<void> {
  await exec(
    db,
    `INSERT INTO crm_sync_state (system, object_type, status, mode, last_run_started_at, records_last_run, deleted_last_run, updated_at)
     VALUES ($1, $2, 'running', $3, now(), 0, 0, now())
     ON CONFLICT (system, object_type) DO UPDATE SET status = 'running', mode = $3, last_run_started_at = now(), records_last_run = 0, deleted_last_run = 0, updated_at = now()`,
    [system, objectType, mode],
  );
}

/** A committed batch moves the cursor (when it has one) and the counters. */
export async function syncBatchStored(
  db: Db,
  system: CrmSystem,
  objectType: string,
  b: { cursor: { modstamp: string; id: string } | null; records: number; deleted: number; apiCalls: number },
): Promise<void> {
  await exec(
    db,
    `UPDATE crm_sync_state SET
       cursor_modstamp = coalesce($3::timestamptz, cursor_modstamp), cursor_id = CASE WHEN $3::timestamptz IS NULL THEN cursor_id ELSE $4 END,
       records_last_run = records_last_run + $5, deleted_last_run = deleted_last_run + $6, total_records = total_records + $5,
       api_calls_last_run = $7, updated_at = now()
     WHERE system = $1 AND object_type = $2`,
    [system, objectType, b.cursor?.modstamp ?? null, b.cursor?.id ?? null, b.records, b.deleted, b.apiCalls],
  );
}

export async function syncSucceeded(db: Db, system: CrmSystem, objectType: string, deletedCheckedUntil: Date | string | null, apiCalls: number): Promise<void> {
  await exec(
    db,
    `UPDATE crm_sync_state SET status = 'ok', last_error = NULL, last_run_finished_at = now(), last_success_at = now(),
       deleted_checked_until = coalesce($3, deleted_checked_until), api_calls_last_run = $4, updated_at = now()
     WHERE system = $1 AND object_type = $2`,
    [system, objectType, deletedCheckedUntil, apiCalls],
  );
}

export async function syncFailed(db: Db, system: CrmSystem, objectType: string, outcome: 'error' | 'budget_exhausted', error: string | null, apiCalls: number): Promise<void> {
  await exec(
    db,
    `UPDATE crm_sync_state SET status = $3, last_error = $4, last_run_finished_at = now(), api_calls_last_run = $5, updated_at = now()
     WHERE system = $1 AND object_type = $2`,
    [system, objectType, outcome, error, apiCalls],
  );
}

/** An object not reached because the budget ran out waits for the next window. */
export async function syncBudgetExhausted(db: Db, system: CrmSystem, objectType: string, error: string | null): Promise<void> {
  await exec(
    db,
    `INSERT INTO crm_sync_state (system, object_type, status, last_error, updated_at) VALUES ($1, $2, 'budget_exhausted', $3, now())
     ON CONFLICT (system, object_type) DO UPDATE SET status = 'budget_exhausted', last_error = $3, updated_at = now()`,
    [system, objectType, error],
  );
}

// ---- records and cases -------------------------------------------------------------------------

/** Live records of one object by external id, as stored (for deletions the vendor reports by id only). */
export function liveRecordsByExternalId(
  db: Db,
  system: CrmSystem,
  objectType: string,
  externalIds: readonly string[],
): Promise<{ external_id: string; owner_id: string | null; payload: Record<string, unknown>; modstamp: Date | null; person: Record<string, unknown> | null }[]> {
  return rows(
    db,
    `SELECT external_id, owner_id, payload, modstamp, person FROM crm_record
      WHERE system = $1 AND object_type = $2 AND external_id = ANY($3::text[]) AND deleted_at IS NULL`,
    [system, objectType, externalIds],
  );
}

/** Whether each of these records is stored, stored as deleted, and with which modification time. */
export function storedStates(db: Db, system: CrmSystem, objectType: string, externalIds: readonly string[]): Promise<{ external_id: string; deleted: boolean; modstamp: Date | null }[]> {
  return rows(
    db,
    `SELECT external_id, deleted_at IS NOT NULL AS deleted, modstamp FROM crm_record WHERE system = $1 AND object_type = $2 AND external_id = ANY($3::text[])`,
    [system, objectType, externalIds],
  );
}

/** Inserts or updates cases; a deletion keeps the last known status and its first deletion time. */
export async function upsertCases(db: Db, system: CrmSystem, cases: readonly CrmCaseRow[]): Promise<void> {
  await exec(
    db,
    `INSERT INTO crm_case (system, external_id, status, is_closed, contact_id, account_id, modstamp, deleted_at)
     SELECT $1, x.id, x.status, x.closed, x.contact, x.account, x.modstamp, CASE WHEN x.deleted THEN now() END
       FROM unnest($2::text[], $3::text[], $4::boolean[], $5::text[], $6::text[], $7::timestamptz[], $8::boolean[])
         AS x(id, status, closed, contact, account, modstamp, deleted)
     ON CONFLICT (system, external_id) DO UPDATE SET
       status = CASE WHEN EXCLUDED.deleted_at IS NULL THEN EXCLUDED.status ELSE crm_case.status END,
       is_closed = CASE WHEN EXCLUDED.deleted_at IS NULL THEN EXCLUDED.is_closed ELSE crm_case.is_closed END,
       contact_id = coalesce(EXCLUDED.contact_id, crm_case.contact_id), account_id = coalesce(EXCLUDED.account_id, crm_case.account_id),
       modstamp = coalesce(EXCLUDED.modstamp, crm_case.modstamp),
       deleted_at = CASE WHEN EXCLUDED.deleted_at IS NULL THEN NULL ELSE coalesce(crm_case.deleted_at, EXCLUDED.deleted_at) END,
       updated_at = now()`,
    [
      system,
      cases.map((c) => c.externalId),
      cases.map((c) => c.status),
      cases.map((c) => c.isClosed),
      cases.map((c) => c.contactId),
      cases.map((c) => c.accountId),
      cases.map((c) => c.modstamp),
      cases.map((c) => c.deleted),
    ],
  );
}

/** Live records of many customers, Salesforce first, then by object and id. */
export function liveRecordsOfCustomers(
  db: Db,
  customerIds: readonly string[],
): Promise<{ customer_id: string; system: string; object_type: string; external_id: string; owner_id: string | null; modstamp: Date | null }[]> {
  return rows(
    db,
    `SELECT customer_id, system, object_type, external_id, owner_id, modstamp FROM crm_record
      WHERE customer_id = ANY($1::uuid[]) AND deleted_at IS NULL ORDER BY system DESC, object_type, external_id`,
    [customerIds],
  );
}

// ---- the org row: deep links and the API budget ------------------------------------------------

export function orgLinks(db: Db): Promise<{ system: string; instance_url: string | null; portal_id: string | null }[]> {
  return rows(db, 'SELECT system, instance_url, portal_id FROM crm_org');
}

/** The stored budget day (YYYY-MM-DD) and what was used on it, for this org. */
export function storedBudget(db: Db, system: CrmSystem, orgKey: string): Promise<{ budget_day: string | null; budget_used: number } | undefined> {
  return firstRow(db, `SELECT to_char(budget_day, 'YYYY-MM-DD') AS budget_day, budget_used FROM crm_org WHERE system = $1 AND org_key = $2`, [system, orgKey]);
}

/** Stores today's API usage (never less than another replica stored for the same day) and the deep-link facts. */
export async function saveOrg(
  db: Db,
  o: { system: CrmSystem; orgKey: string; instanceUrl: string | null; portalId: string | null; day: string; usedToday: number; exhaustedUntil: Date | null },
): Promise<void> {
  await exec(
    db,
    `INSERT INTO crm_org (system, org_key, instance_url, portal_id, budget_day, budget_used, exhausted_until, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, now())
     ON CONFLICT (system) DO UPDATE SET org_key = $2, instance_url = coalesce($3, crm_org.instance_url), portal_id = coalesce($4, crm_org.portal_id),
       budget_day = $5, budget_used = CASE WHEN crm_org.budget_day = $5::date AND crm_org.org_key = $2 THEN greatest(crm_org.budget_used, $6) ELSE $6 END,
       exhausted_until = $7, updated_at = now()`,
    [o.system, o.orgKey, o.instanceUrl, o.portalId, o.day, o.usedToday, o.exhaustedUntil],
  );
}

// ---- the write-back queue ----------------------------------------------------------------------

export async function writebackQueueLength(db: Db): Promise<number> {
  return Number((await firstRow<{ n: string }>(db, 'SELECT count(*) AS n FROM crm_writeback'))?.n ?? 0);
}

/** A claimed queue row; enqueued_at as text keeps the microseconds the release compares. */
export interface WritebackClaim {
  customer_id: string;
  enqueued_at: string;
  attempts: number;
}

/** Leases up to `limit` due customers, oldest first, skipping rows another replica holds. */
export async function claimWriteback(db: Db, limit: number, leaseMs: number, now: Date): Promise<WritebackClaim[]> {
  const r = await modify<WritebackClaim>(
    db,
    `UPDATE crm_writeback w SET leased_until = $3::timestamptz + make_interval(secs => $2::double precision / 1000)
      WHERE w.customer_id IN (
        SELECT customer_id FROM crm_writeback
         WHERE next_attempt_at <= $3::timestamptz AND (leased_until IS NULL OR leased_until < $3::timestamptz)
         ORDER BY enqueued_at LIMIT $1 FOR UPDATE SKIP LOCKED)
      RETURNING w.customer_id, w.enqueued_at::text AS enqueued_at, w.attempts`,
    [limit, leaseMs, now],
  );
  return r.rows;
}

/** What one live CRM record of a root customer should show, and what it last got. */
export interface DesiredRow {
  record_id: string;
  customer_id: string;
  system: CrmSystem;
  object_type: string;
  external_id: string;
  written_values: Partial<WriteBackValues> | null;
  sentiment_score: number | null;
  sentiment_label: string | null;
  sentiment_trend: number | null;
  last_interaction_at: Date | null;
  open_complaints: number;
}

/** Live records of root customers that have interactions, with the values they should show on UTC day `today` (`utcDay`). */
export function desiredRows(db: Db, customerIds: readonly string[], today: number): Promise<DesiredRow[]> {
  return rows(
    db,
    `SELECT r.id AS record_id, c.id AS customer_id, r.system, r.object_type, r.external_id, r.written_values,
            c.sentiment_score, c.sentiment_label, ${customerTrendOn('$2')} AS sentiment_trend, c.last_interaction_at,
            (SELECT count(*)::int FROM interaction i
              WHERE i.customer_id = c.id AND i.direction = 'inbound' AND i.intent = 'complaint'
                AND NOT EXISTS (SELECT 1 FROM interaction o WHERE o.source = i.source AND o.in_reply_to = i.external_id AND o.direction = 'outbound')
            ) AS open_complaints
       FROM customer c JOIN crm_record r ON r.customer_id = c.id
      WHERE c.id = ANY($1::uuid[]) AND c.merged_into_id IS NULL AND c.last_interaction_at IS NOT NULL AND r.deleted_at IS NULL`,
    [customerIds, today],
  );
}

/** A live record that was written, with the trend it got and its customer's trend on a given day. */
export interface TrendRow {
  record_id: string;
  customer_id: string;
  system: CrmSystem;
  object_type: string;
  /** the trend last written, as stored (null: none, or a null trend; anything else is stale) */
  written_trend: unknown;
  trend: number | null;
}

/** Below every record id: where a walk by id starts. */
export const FIRST_RECORD_ID = '00000000-0000-0000-0000-000000000000';

/**
 * The next `limit` live records after record id `after` (FIRST_RECORD_ID: from the start) that were written
 * and belong to a root customer who has spoken, by id (the primary key's order), with the trend
 * each record last got and the customer's trend on UTC day `today`.
 */
export function trendPage(db: Db, today: number, after: string, limit: number): Promise<TrendRow[]> {
  return rows(
    db,
    `SELECT r.id AS record_id, c.id AS customer_id, r.system, r.object_type, r.written_values->'trend' AS written_trend, ${customerTrendOn('$3')} AS trend
       FROM crm_record r JOIN customer c ON c.id = r.customer_id
      WHERE r.id > $1::uuid AND r.deleted_at IS NULL AND r.written_values IS NOT NULL
        AND c.merged_into_id IS NULL AND c.last_interaction_at IS NOT NULL
      ORDER BY r.id LIMIT $2`,
    [after, limit, today],
  );
}

/** Queues these customers for write-back, as the database triggers do. */
export async function enqueueWriteback(db: Db, customerIds: readonly string[]): Promise<void> {
  await exec(db, `SELECT crm_writeback_enqueue(id) FROM unnest($1::uuid[]) AS id`, [customerIds]);
}

export async function recordsWritten(db: Db, done: readonly { id: string; values: Partial<WriteBackValues> }[]): Promise<void> {
  await exec(
    db,
    `UPDATE crm_record r SET written_values = x.v, written_at = now(), writeback_error = NULL
       FROM unnest($1::uuid[], $2::jsonb[]) AS x(id, v) WHERE r.id = x.id`,
    [done.map((d) => d.id), done.map((d) => JSON.stringify(d.values))],
  );
}

export async function recordsFailed(db: Db, failed: readonly { id: string; error: string }[]): Promise<void> {
  await exec(db, `UPDATE crm_record r SET writeback_error = x.e FROM unnest($1::uuid[], $2::text[]) AS x(id, e) WHERE r.id = x.id`, [failed.map((f) => f.id), failed.map((f) => f.error)]);
}

/** Removes finished queue rows, unless enqueued again since the claim (or being re-enqueued: locked). */
export async function releaseWriteback(db: Db, finished: readonly WritebackClaim[]): Promise<void> {
  await exec(
    db,
    `DELETE FROM crm_writeback WHERE customer_id IN (
       SELECT w.customer_id FROM crm_writeback w JOIN unnest($1::uuid[], $2::timestamptz[]) AS x(id, at) ON w.customer_id = x.id AND w.enqueued_at = x.at
       FOR UPDATE OF w SKIP LOCKED)`,
    [finished.map((c) => c.customer_id), finished.map((c) => c.enqueued_at)],
  );
}

/**
 * Queue rows to try again: at their `until` (a spent budget, a Retry-After: not counted as an
 * attempt) or with exponential backoff from `now`.
 */
export async function retryWriteback(db: Db, again: readonly { customerId: string; error: string; until: Date | null }[], now: Date): Promise<void> {
  await exec(
    db,
    `UPDATE crm_writeback w SET leased_until = NULL, attempts = w.attempts + CASE WHEN x.until IS NULL THEN 1 ELSE 0 END, last_error = x.err,
       next_attempt_at = coalesce(x.until, $4::timestamptz + make_interval(secs => least(3600, 2 ^ least(w.attempts, 12))))
       FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS x(id, err, until) WHERE w.customer_id = x.id`,
    [again.map((c) => c.customerId), again.map((c) => c.error), again.map((c) => c.until), now],
  );
}

/** Given-up rows enqueued again since the claim (a newer change): their attempts start again from 0. */
export async function restartWritebackAttempts(db: Db, givenUp: readonly WritebackClaim[]): Promise<void> {
  await exec(
    db,
    `UPDATE crm_writeback w SET attempts = 0, leased_until = NULL
       FROM unnest($1::uuid[], $2::timestamptz[]) AS x(id, at) WHERE w.customer_id = x.id AND w.enqueued_at <> x.at`,
    [givenUp.map((c) => c.customer_id), givenUp.map((c) => c.enqueued_at)],
  );
}

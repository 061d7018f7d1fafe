import { keyset, type SortKey, type Window } from '../graphql/keyset';
import type { Page } from '../graphql/relay';
import { batchIds, exec, firstRow, modify, rows, type Db } from '../db/sql';
import type { PersonRecord } from './matcher';
import type { AuditAction, AuditRow, EvidenceItem, MergeSnapshot, ReresolutionJobRow, SuggestionRow, SuggestionStatus } from './identity.model';

/**
 * Every SQL statement of identity resolution (customers, identities, CRM-record placement,
 * merges and their undo, the review queue, the audit, the re-resolution job, author resolution at
 * ingest), each returning a declared row type. The services, the transactional building blocks in
 * ./merge.ts and ./author-resolution.ts compose them; none of them writes SQL. Functions take the caller's `Db`, so they run inside its
 * transaction when given a query runner.
 */

// ---- locks -------------------------------------------------------------------------------------

/** Transaction-scoped advisory locks, taken in the given (sorted) order. */
export async function advisoryXactLocks(db: Db, locks: readonly bigint[]): Promise<void> {
  await exec(db, `SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k ORDER BY k`, [locks.map(String)]);
}

/** Row-locks customers (sorted by id) and returns what each was merged into. */
export function lockCustomerRows(db: Db, ids: readonly string[]): Promise<{ id: string; merged_into_id: string | null }[]> {
  return rows(db, `SELECT id, merged_into_id FROM customer WHERE id = ANY (${batchIds(1)}) ORDER BY id FOR NO KEY UPDATE`, [ids]);
}

// ---- customers ---------------------------------------------------------------------------------

export async function insertCustomer(db: Db, id: string, displayName: string | null): Promise<void> {
  await exec(db, `INSERT INTO customer (id, display_name) VALUES ($1, $2)`, [id, displayName]);
}

/** The customer a customer id stands for now (itself, or its survivor); null when unknown. */
export async function rootOf(db: Db, customerId: string): Promise<string | null> {
  const row = await firstRow<{ root: string }>(db, `SELECT coalesce(merged_into_id, id) AS root FROM customer WHERE id = $1`, [customerId]);
  return row?.root ?? null;
}

/** The oldest of some customers (ties by id): the one a merge keeps. */
export async function oldestCustomer(db: Db, ids: readonly string[]): Promise<string | null> {
  const row = await firstRow<{ id: string }>(db, `SELECT id FROM customer WHERE id = ANY($1::uuid[]) ORDER BY created_at, id LIMIT 1`, [ids]);
  return row?.id ?? null;
}

// ---- merge and its undo ------------------------------------------------------------------------

/** Moves every identity of `from` to `to`; the ids moved. */
export async function moveAllIdentities(db: Db, to: string, from: string): Promise<string[]> {
  return ids(await rows(db, `WITH u AS (UPDATE customer_identity SET customer_id = $1 WHERE customer_id = $2 RETURNING id) SELECT id FROM u`, [to, from]));
}

export async function moveAllCrmRecords(db: Db, to: string, from: string): Promise<string[]> {
  return ids(await rows(db, `WITH u AS (UPDATE crm_record SET customer_id = $1, updated_at = now() WHERE customer_id = $2 RETURNING id) SELECT id FROM u`, [to, from]));
}

/** Moves every interaction of `from` to `to`; `follows` tells whether one of `identityIds` attached it. */
export function moveAllInteractions(db: Db, to: string, from: string, identityIds: readonly string[]): Promise<{ id: string; follows: boolean }[]> {
  return rows(
    db,
    `WITH u AS (UPDATE interaction SET customer_id = $1 WHERE customer_id = $2 RETURNING id, identity_id)
     SELECT u.id, coalesce(u.identity_id = ANY($3::uuid[]), false) AS follows FROM u`,
    [to, from, identityIds],
  );
}

/** Customers merged into `from` point at `to` instead; their ids. */
export async function repointMergedInto(db: Db, to: string, from: string): Promise<string[]> {
  return ids(await rows(db, `WITH u AS (UPDATE customer SET merged_into_id = $1 WHERE merged_into_id = $2 RETURNING id) SELECT id FROM u`, [to, from]));
}

/** Marks `mergedId` as merged into `survivorId`; its display name, if it was found. */
export function markMerged(db: Db, survivorId: string, mergedId: string): Promise<{ display_name: string | null } | undefined> {
  return firstRow(db, `WITH u AS (UPDATE customer SET merged_into_id = $1, updated_at = now() WHERE id = $2 RETURNING display_name) SELECT display_name FROM u`, [survivorId, mergedId]);
}

/** Gives a customer without a name this one; whether it did. */
export async function fillDisplayName(db: Db, customerId: string, name: string | null): Promise<boolean> {
  if (name === null) return false;
  const row = await firstRow<{ id: string }>(db, `UPDATE customer SET display_name = $2 WHERE id = $1 AND display_name IS NULL RETURNING id`, [customerId, name]);
  return row !== undefined;
}

/**
 * Takes back a name that merges handed on: the survivor of merge `auditId` when that merge gave it
 * its name (`snapshot.filledName`), and each customer that got the name from one of those by a
 * later merge still in place, as long as each still bears it. Their names become null again (what
 * they were before those merges). Returns the ids cleared.
 */
export async function clearNameFilledBy(db: Db, auditId: string, name: string): Promise<string[]> {
  return ids(
    await rows(
      db,
      `WITH RECURSIVE filled(id) AS (
         SELECT survivor_id FROM merge_audit WHERE id = $1 AND action = 'merge' AND coalesce((snapshot->>'filledName')::boolean, false)
         UNION
         SELECT a.survivor_id FROM merge_audit a JOIN filled f ON a.merged_id = f.id
          WHERE a.action = 'merge' AND a.undone_at IS NULL AND coalesce((a.snapshot->>'filledName')::boolean, false) AND a.snapshot->>'displayName' = $2::text)
       UPDATE customer c SET display_name = NULL, updated_at = now() FROM filled f WHERE c.id = f.id AND c.display_name = $2::text RETURNING c.id`,
      [auditId, name],
    ),
  );
}

/**
 * The merges still in place that brought `identityId` into a customer and gave their survivor a
 * name, when none of the other identities that merge brought is still on `customerId`: the
 * person that name belongs to leaves with this identity. Their audit ids and names.
 */
export function namingMergesLeavingWith(db: Db, identityId: string, customerId: string): Promise<{ id: string; name: string }[]> {
  return rows(
    db,
    `SELECT a.id, a.snapshot->>'displayName' AS name FROM merge_audit a
      WHERE a.action = 'merge' AND a.undone_at IS NULL AND coalesce((a.snapshot->>'filledName')::boolean, false) AND a.snapshot->>'displayName' IS NOT NULL
        AND a.snapshot->'identities' ? $1::text
        AND NOT EXISTS (SELECT 1 FROM customer_identity ci
                         WHERE ci.customer_id = $2 AND ci.id::text <> $1::text AND a.snapshot->'identities' ? ci.id::text)`,
    [identityId, customerId],
  );
}

/** Identities among `identityIds` still on `from` go back to `to`; the ids that moved. */
export async function moveIdentitiesBack(db: Db, to: string, identityIds: readonly string[], from: string): Promise<string[]> {
  return ids(
    await rows(db, `WITH u AS (UPDATE customer_identity SET customer_id = $1 WHERE id = ANY($2::uuid[]) AND customer_id = $3 RETURNING id) SELECT id FROM u`, [to, identityIds, from]),
  );
}

/**
 * The recursive part of a move of interactions (`moved`: id, source, external_id) on customer
 * `$from`: the brand's replies to them still there, and the replies to those replies. A reply
 * carries no identity and belongs to the customer of the message it answers (attachReplies), so it
 * goes where that message goes. Before, an undone merge or an unlink left the replies that came
 * after the merge (or the link) on the other customer: a conversation split in two, and an
 * erasure of the person left the brand's words to them (which may name them) unredacted.
 */
const AND_THEIR_REPLIES = (from: string) => `
  UNION
  SELECT r.id, r.source, r.external_id FROM moved m
    JOIN interaction r ON r.source = m.source AND r.in_reply_to = m.external_id AND r.in_reply_to IS NOT NULL
   WHERE r.customer_id = ${from} AND r.direction = 'outbound' AND r.identity_id IS NULL`;

/** Interactions on `from` listed by id or attached by one of `identityIds`, and the brand's replies to them, go to `to`; the ids that moved. */
export async function moveInteractionsBack(db: Db, to: string, identityIds: readonly string[], from: string, interactionIds: readonly string[]): Promise<string[]> {
  return ids(
    await rows(
      db,
      `WITH RECURSIVE moved(id, source, external_id) AS (
         SELECT i.id, i.source, i.external_id FROM interaction i
          WHERE i.customer_id = $3
            AND (i.id = ANY($4::uuid[]) OR i.identity_id = ANY($2::uuid[]))${AND_THEIR_REPLIES('$3')}),
       u AS (UPDATE interaction i SET customer_id = $1 FROM (SELECT DISTINCT id FROM moved) m
              WHERE i.id = m.id AND i.customer_id = $3
             RETURNING i.id)
       SELECT id FROM u`,
      [to, identityIds, from, interactionIds],
    ),
  );
}

export async function moveCrmRecordsBack(db: Db, to: string, recordIds: readonly string[], from: string): Promise<void> {
  await exec(db, `UPDATE crm_record SET customer_id = $1, updated_at = now() WHERE id = ANY($2::uuid[]) AND customer_id = $3`, [to, recordIds, from]);
}

export async function repointBack(db: Db, to: string, customerIds: readonly string[], from: string): Promise<void> {
  await exec(db, `UPDATE customer SET merged_into_id = $1 WHERE id = ANY($2::uuid[]) AND merged_into_id = $3`, [to, customerIds, from]);
}

/** Makes a merged customer a root again, with its old name when it had one. */
export async function restoreCustomer(db: Db, customerId: string, displayName: string | null): Promise<void> {
  await exec(db, `UPDATE customer SET merged_into_id = NULL, display_name = coalesce($2, display_name), updated_at = now() WHERE id = $1`, [customerId, displayName]);
}

// ---- identities --------------------------------------------------------------------------------

export function identityByKey(db: Db, kind: string, value: string): Promise<{ id: string; customer_id: string } | undefined> {
  return firstRow(db, `SELECT id, customer_id FROM customer_identity WHERE kind = $1 AND value = $2`, [kind, value]);
}

/** A customer's identities, oldest first. */
export function identitiesOfCustomer(db: Db, customerId: string): Promise<{ id: string; kind: string; network: string | null; raw_value: string | null }[]> {
  return rows(db, `SELECT id, kind, network, raw_value FROM customer_identity WHERE customer_id = $1 ORDER BY created_at, id`, [customerId]);
}

export function identityOfCustomer(db: Db, kind: string, value: string, customerId: string): Promise<{ id: string; raw_value: string | null } | undefined> {
  return firstRow(db, `SELECT id, raw_value FROM customer_identity WHERE kind = $1 AND value = $2 AND customer_id = $3`, [kind, value, customerId]);
}

/**
 * One identity by the (kind, value) of the row `k` it is joined LATERAL to. Batches of keys are
 * looked up one key at a time on `customer_identity_kind_value_key`: `OFFSET 0` keeps the planner
 * from turning the lookup into one hash join over the whole table, which it prefers while the table
 * is a few thousand rows to a few tens of thousands (and which then costs more than the probes:
 * 7–11 ms against 3–5 ms for 350 keys over 13,000 identities). Every batch-of-keys lookup of the
 * ingest path has this form (ingest-explain.test.ts).
 */
const IDENTITY_BY_KEY = `SELECT ci.id, ci.kind, ci.value, ci.customer_id FROM customer_identity ci WHERE ci.kind = k.kind AND ci.value = k.value OFFSET 0`;

/** Identities held under the given (kind, value) keys, with their (possibly merged-away) customer. */
export function identitiesByKeys(db: Db, keys: readonly { kind: string; value: string }[]): Promise<{ id: string; kind: string; value: string; customer_id: string }[]> {
  return rows(
    db,
    `SELECT ci.id, ci.kind, ci.value, ci.customer_id FROM unnest($1::text[], $2::text[]) AS k(kind, value)
       CROSS JOIN LATERAL (${IDENTITY_BY_KEY}) ci`,
    [keys.map((k) => k.kind), keys.map((k) => k.value)],
  );
}

export async function identityCount(db: Db, customerId: string): Promise<number> {
  return (await firstRow<{ n: number }>(db, `SELECT count(*)::int AS n FROM customer_identity WHERE customer_id = $1`, [customerId]))!.n;
}

/** The identity that stands for a customer in a suggestion: its CRM id if it has one, else its oldest. */
export async function anchorOf(db: Db, customerId: string): Promise<string | null> {
  const row = await firstRow<{ id: string }>(db, `SELECT id FROM customer_identity WHERE customer_id = $1 ORDER BY (kind = 'crm') DESC, created_at, id LIMIT 1`, [customerId]);
  return row?.id ?? null;
}

/** An identity linked by a person; its id. */
export async function insertManualIdentity(db: Db, i: { customerId: string; kind: string; network: string | null; value: string; raw: string }): Promise<string> {
  const row = await firstRow<{ id: string }>(
    db,
    `INSERT INTO customer_identity (customer_id, kind, network, value, raw_value, source, linked_by)
     VALUES ($1, $2, $3, $4, $5, 'manual', 'manual') RETURNING id`,
    [i.customerId, i.kind, i.network, i.value, i.raw],
  );
  return row!.id;
}

/** Moves one identity to another customer as a person's decision (its rule link is forgotten). */
export async function moveIdentityByHand(db: Db, identityId: string, to: string): Promise<void> {
  await exec(db, `UPDATE customer_identity SET customer_id = $1, linked_by = 'manual', link_score = NULL, link_evidence = NULL WHERE id = $2`, [to, identityId]);
}

/** Interactions of `from` that `identityId` attached, and the brand's replies to them, move to `to`; their ids. */
export async function moveInteractionsOfIdentity(db: Db, to: string, from: string, identityId: string): Promise<string[]> {
  return ids(
    await rows(
      db,
      `WITH RECURSIVE moved(id, source, external_id) AS (
         SELECT i.id, i.source, i.external_id FROM interaction i WHERE i.customer_id = $2 AND i.identity_id = $3${AND_THEIR_REPLIES('$2')}),
       u AS (UPDATE interaction i SET customer_id = $1 FROM (SELECT DISTINCT id FROM moved) m
              WHERE i.id = m.id AND i.customer_id = $2
             RETURNING i.id)
       SELECT id FROM u`,
      [to, from, identityId],
    ),
  );
}

// ---- CRM records (as identity resolution sees them) --------------------------------------------

export interface CrmRecordUpsert {
  system: string;
  objectType: string;
  externalId: string;
  ownerId: string | null;
  payload: Record<string, unknown>;
  modstamp: string | null;
  person: Omit<PersonRecord, 'id'>;
  deleted: boolean;
}

/** Inserts or updates a CRM record (a deletion keeps its first deletion time); its id and customer. */
export async function upsertCrmRecord(db: Db, r: CrmRecordUpsert): Promise<{ id: string; customer_id: string | null }> {
  const row = await firstRow<{ id: string; customer_id: string | null }>(
    db,
    `INSERT INTO crm_record (system, object_type, external_id, owner_id, payload, modstamp, person, deleted_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8::boolean THEN now() END)
     ON CONFLICT (system, object_type, external_id) DO UPDATE SET
       owner_id = EXCLUDED.owner_id, payload = EXCLUDED.payload, modstamp = EXCLUDED.modstamp, person = EXCLUDED.person,
       deleted_at = CASE WHEN $8::boolean THEN coalesce(crm_record.deleted_at, now()) END, updated_at = now()
     RETURNING id, customer_id`,
    [r.system, r.objectType, r.externalId, r.ownerId, JSON.stringify(r.payload), r.modstamp, JSON.stringify(r.person), r.deleted],
  );
  return row!;
}

/**
 * The records of one CRM object a chunk of intake brings that are not stored yet, inserted in one
 * statement before the chunk is placed (its identity keys locked first): with no customer yet,
 * no placement of an earlier record of the chunk reads them (every such read goes by customer or
 * by a record the match index holds). Records already stored, and a second occurrence of one
 * external id, are left out (ON CONFLICT DO NOTHING): upsertCrmRecord takes them in their turn.
 * Their ids, by external id.
 */
export function insertNewCrmRecords(
  db: Db,
  system: string,
  objectType: string,
  records: readonly Omit<CrmRecordUpsert, 'system' | 'objectType'>[],
): Promise<{ id: string; external_id: string }[]> {
  return rows(
    db,
    `INSERT INTO crm_record (system, object_type, external_id, owner_id, payload, modstamp, person, deleted_at)
     SELECT $1, $2, x.e, x.o, x.p::jsonb, x.m::timestamptz, x.pe::jsonb, CASE WHEN x.d THEN now() END
       FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[]) WITH ORDINALITY AS x(e, o, p, m, pe, d, n)
      ORDER BY x.n
     ON CONFLICT (system, object_type, external_id) DO NOTHING
     RETURNING id, external_id`,
    [
      system,
      objectType,
      records.map((r) => r.externalId),
      records.map((r) => r.ownerId),
      records.map((r) => JSON.stringify(r.payload)),
      records.map((r) => r.modstamp),
      records.map((r) => JSON.stringify(r.person)),
      records.map((r) => r.deleted),
    ],
  );
}

/**
 * A CRM record's place, in one statement: the customer it belongs to (made here when `create`),
 * the identities the record brings that no one holds (linked to it by a rule or deterministically)
 * and the record's customer. The identities inserted.
 */
export function placeCrmRecord(
  db: Db,
  p: {
    recordId: string;
    customerId: string;
    create: { displayName: string | null } | null;
    system: string;
    claims: readonly { kind: string; network: string | null; value: string; raw: string }[];
    link: { linkedBy: 'rule' | 'deterministic'; score: number | null; evidence: EvidenceItem[] | null };
  },
): Promise<{ id: string; kind: string }[]> {
  return rows(
    db,
    `WITH c AS (INSERT INTO customer (id, display_name) SELECT $1, $2 WHERE $3::boolean),
          r AS (UPDATE crm_record SET customer_id = $1 WHERE id = $4 AND customer_id IS DISTINCT FROM $1),
          i AS (INSERT INTO customer_identity (customer_id, kind, network, value, raw_value, source, linked_by, link_score, link_evidence)
                SELECT $1, k, n, v, r, $5, $10, $11, $12 FROM unnest($6::text[], $7::text[], $8::text[], $9::text[]) AS x(k, n, v, r)
                RETURNING id, kind)
     SELECT id, kind FROM i`,
    [
      p.customerId,
      p.create?.displayName ?? null,
      p.create !== null,
      p.recordId,
      p.system,
      p.claims.map((k) => k.kind),
      p.claims.map((k) => k.network),
      p.claims.map((k) => k.value),
      p.claims.map((k) => k.raw),
      p.link.linkedBy,
      p.link.score,
      p.link.evidence ? JSON.stringify(p.link.evidence) : null,
    ],
  );
}

/** Moves one CRM record to another customer. */
export async function moveCrmRecord(db: Db, recordId: string, to: string): Promise<void> {
  await exec(db, `UPDATE crm_record SET customer_id = $1, updated_at = now() WHERE id = $2`, [to, recordId]);
}

/** The person data of a customer's live CRM records, oldest first. */
export function crmPersonsOfCustomer(db: Db, customerId: string): Promise<{ givenName?: string | null; surname?: string | null; company?: string | null }[]> {
  return rows<{ person: { givenName?: string | null; surname?: string | null; company?: string | null } }>(
    db,
    `SELECT person FROM crm_record WHERE customer_id = $1 AND deleted_at IS NULL AND person IS NOT NULL ORDER BY created_at, id`,
    [customerId],
  ).then((r) => r.map((x) => x.person));
}

/** A customer's CRM record whose first CRM id is `crmKey`. */
export function crmRecordByCrmId(db: Db, customerId: string, crmKey: string): Promise<{ id: string; person: { givenName?: string; surname?: string; company?: string } | null } | undefined> {
  return firstRow(db, `SELECT r.id, r.person FROM crm_record r WHERE r.customer_id = $1 AND r.person->'crmIds'->>0 = $2`, [customerId, crmKey]);
}

/** Whether the customer holds a live record of this CRM object other than `externalId`. */
export async function holdsOtherCrmRecord(db: Db, customerId: string, system: string, objectType: string, externalId: string): Promise<boolean> {
  const found = await rows<{ one: number }>(
    db,
    `SELECT 1 AS one FROM crm_record WHERE customer_id = $1 AND system = $2 AND object_type = $3 AND external_id <> $4 AND deleted_at IS NULL LIMIT 1`,
    [customerId, system, objectType, externalId],
  );
  return found.length > 0;
}

/** Two customers holding different records of one CRM object. */
export async function crmConflict(db: Db, a: string, b: string): Promise<boolean> {
  const found = await rows<{ one: number }>(
    db,
    `SELECT 1 AS one FROM crm_record x JOIN crm_record y
         ON y.system = x.system AND y.object_type = x.object_type AND y.external_id <> x.external_id
      WHERE x.customer_id = $1 AND y.customer_id = $2 AND x.deleted_at IS NULL AND y.deleted_at IS NULL
      LIMIT 1`,
    [a, b],
  );
  return found.length > 0;
}

/** Whether both customers hold a live CRM record (of any system or object). */
export async function bothHoldCrmRecords(db: Db, a: string, b: string): Promise<boolean> {
  const found = await rows<{ one: number }>(
    db,
    `SELECT 1 AS one WHERE EXISTS (SELECT 1 FROM crm_record WHERE customer_id = $1 AND deleted_at IS NULL)
                       AND EXISTS (SELECT 1 FROM crm_record WHERE customer_id = $2 AND deleted_at IS NULL)`,
    [a, b],
  );
  return found.length > 0;
}

/**
 * Live CRM records with the customer and CRM identity (anchor) they belong to, a label, and what
 * that customer was merged into, its row locked: the first round of lockCustomers in the same
 * statement (sorted by id, as lockCustomerRows). A customer deleted (erased)
 * while the statement waited for its lock leaves its records out.
 */
export function lockCrmRecordCustomers(db: Db, recordIds: readonly string[]): Promise<{ id: string; customer_id: string; merged_into_id: string | null; anchor: string; label: string }[]> {
  return rows(
    db,
    `SELECT r.id, c.id AS customer_id, c.merged_into_id, ci.id AS anchor, r.system || ' ' || r.object_type || ' ' || r.external_id AS label
       FROM crm_record r
       JOIN customer_identity ci ON ci.kind = 'crm' AND ci.value = r.person->'crmIds'->>0
       JOIN customer c ON c.id = ci.customer_id
      WHERE r.id = ANY($1::uuid[]) AND r.deleted_at IS NULL
      ORDER BY c.id
        FOR NO KEY UPDATE OF c`,
    [recordIds],
  );
}

/** CRM records (deleted ones too) with the customer and CRM identity (anchor) they belong to. */
export function crmRecordSides(db: Db, recordIds: readonly string[]): Promise<{ id: string; customer_id: string; anchor: string }[]> {
  return rows(
    db,
    `SELECT r.id, ci.customer_id, ci.id AS anchor FROM crm_record r
       JOIN customer_identity ci ON ci.kind = 'crm' AND ci.value = r.person->'crmIds'->>0
      WHERE r.id = ANY($1::uuid[])`,
    [recordIds],
  );
}

/** Person profiles changed after `since` (deleted ones flagged), for the in-memory match index. */
export function crmProfilesChangedSince(db: Db, since: Date): Promise<{ id: string; person: Omit<PersonRecord, 'id'> | null; deleted: boolean; updated_at: Date }[]> {
  return rows(db, `SELECT id, person, deleted_at IS NOT NULL AS deleted, updated_at FROM crm_record WHERE updated_at > $1 AND person IS NOT NULL`, [since.toISOString()]);
}

/** Erasures that deleted CRM records, so far: the profiles they deleted left no row for `crmProfilesChangedSince` to see. */
export async function crmErasureCount(db: Db): Promise<number> {
  return (await firstRow<{ n: number }>(db, `SELECT count(*)::int AS n FROM erasure_request WHERE crm_records > 0`))!.n;
}

/** Every live person profile that belongs to a customer, by id. */
export function liveCrmProfiles(db: Db): Promise<{ id: string; person: Omit<PersonRecord, 'id'> }[]> {
  return rows(db, `SELECT id, person FROM crm_record WHERE person IS NOT NULL AND deleted_at IS NULL AND customer_id IS NOT NULL ORDER BY id`);
}

/** Every CRM record with its customer's root and its object ("system:objectType"). */
export function crmRecordRoots(db: Db): Promise<{ id: string; root: string; obj: string; deleted: boolean }[]> {
  return rows(
    db,
    `SELECT r.id, coalesce(c.merged_into_id, c.id) AS root, r.system || ':' || r.object_type AS obj, r.deleted_at IS NOT NULL AS deleted
       FROM crm_record r JOIN customer c ON c.id = r.customer_id`,
  );
}

// ---- audit -------------------------------------------------------------------------------------

export interface AuditInsert {
  action: AuditAction;
  survivorId: string;
  mergedId?: string | null;
  score?: number | null;
  /** stored as given; absent is NULL */
  evidence?: readonly unknown[] | null;
  reason: string;
  actor: string;
  snapshot: unknown;
}

/** Appends an audit entry (created at the clock time, so entries of one transaction keep their order); its id. */
export async function insertAudit(db: Db, a: AuditInsert): Promise<string> {
  const row = await firstRow<{ id: string }>(
    db,
    `INSERT INTO merge_audit (created_at, action, survivor_id, merged_id, score, evidence, reason, actor, snapshot)
     VALUES (clock_timestamp(), $1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
    [a.action, a.survivorId, a.mergedId ?? null, a.score ?? null, a.evidence == null ? null : JSON.stringify(a.evidence), a.reason, a.actor, JSON.stringify(a.snapshot)],
  );
  return row!.id;
}

/** A merge or link to undo, locked. */
export function lockAuditEntry(
  db: Db,
  id: string,
): Promise<{ action: AuditAction; survivor_id: string; merged_id: string; snapshot: Partial<MergeSnapshot> | null; undone_at: Date | null } | undefined> {
  return firstRow(db, `SELECT action, survivor_id, merged_id, snapshot, undone_at FROM merge_audit WHERE id = $1 FOR UPDATE`, [id]);
}

export async function markAuditUndone(db: Db, id: string): Promise<void> {
  await exec(db, `UPDATE merge_audit SET undone_at = now() WHERE id = $1`, [id]);
}

/** The most recent merge of a customer (as the merged side) not undone yet. */
export async function latestMergeOf(db: Db, customerId: string): Promise<string | null> {
  const row = await firstRow<{ id: string }>(
    db,
    `SELECT id FROM merge_audit WHERE merged_id = $1 AND action = 'merge' AND undone_at IS NULL ORDER BY created_at DESC LIMIT 1`,
    [customerId],
  );
  return row?.id ?? null;
}

export async function auditById(db: Db, id: string): Promise<AuditRow | null> {
  const row = await firstRow<RawAudit>(db, `SELECT * FROM merge_audit WHERE id = $1`, [id]);
  return row ? toAudit(row) : null;
}

/** Audit entries of many customers (either side), newest first, at most `perCustomer` each, in input order. */
export async function auditHistory(db: Db, customerIds: readonly string[], perCustomer = 100): Promise<AuditRow[][]> {
  const found = await rows<RawAudit & { customer: string }>(
    db,
    `SELECT k.customer, a.* FROM unnest($1::uuid[]) AS k(customer)
       CROSS JOIN LATERAL (
         SELECT * FROM merge_audit a WHERE a.survivor_id = k.customer OR a.merged_id = k.customer
          ORDER BY a.created_at DESC, a.id DESC LIMIT $2) a`,
    [customerIds, perCustomer],
  );
  const grouped = new Map<string, AuditRow[]>();
  for (const r of found) grouped.set(r.customer, [...(grouped.get(r.customer) ?? []), toAudit(r)]);
  return customerIds.map((id) => grouped.get(id) ?? []);
}

// ---- suggestions (the review queue) ------------------------------------------------------------

/** Whether a person has said these two customers are different (a rejected pair, or an undone merge). */
export async function rejectedBetween(db: Db, a: string, b: string): Promise<boolean> {
  const found = await rows<{ one: number }>(
    db,
    `SELECT 1 AS one FROM merge_suggestion s
       JOIN customer_identity ia ON ia.id = s.identity_a_id
       JOIN customer_identity ib ON ib.id = s.identity_b_id
      WHERE s.status = 'rejected'
        AND ((ia.customer_id = $1 AND ib.customer_id = $2) OR (ia.customer_id = $2 AND ib.customer_id = $1))
      LIMIT 1`,
    [a, b],
  );
  return found.length > 0;
}

export interface SuggestionInsert {
  /** the side with the smaller identity id */
  x: { customerId: string; identityId: string };
  y: { customerId: string; identityId: string };
  score: number | null;
  evidence: EvidenceItem[];
  reason: string;
  status: 'pending' | 'rejected';
  decidedBy: string | null;
}

/**
 * Records a pending suggestion unless one already joins the two customers or the pair is known;
 * a rejection is always recorded (over a known pair too). Whether a row was written.
 */
export async function insertSuggestion(db: Db, s: SuggestionInsert): Promise<boolean> {
  const written = await rows<{ id: string }>(
    db,
    `INSERT INTO merge_suggestion (customer_a_id, customer_b_id, identity_a_id, identity_b_id, pair_key, score, evidence, reason, status, decided_at, decided_by)
     SELECT $1::uuid, $2::uuid, $3::uuid, $4::uuid, $3::text || ':' || $4::text, $5::float8, $6::jsonb, $7::text, $8::text,
            CASE WHEN $8::text = 'rejected' THEN now() END, $9::text
      WHERE $8::text = 'rejected' OR NOT EXISTS (
        SELECT 1 FROM merge_suggestion s
          JOIN customer_identity ia ON ia.id = s.identity_a_id
          JOIN customer_identity ib ON ib.id = s.identity_b_id
         WHERE s.status = 'pending'
           AND ((ia.customer_id = $1::uuid AND ib.customer_id = $2::uuid) OR (ia.customer_id = $2::uuid AND ib.customer_id = $1::uuid)))
     ON CONFLICT (pair_key) DO ${s.status === 'rejected' ? `UPDATE SET status = 'rejected', decided_at = now(), decided_by = EXCLUDED.decided_by` : 'NOTHING'}
     RETURNING id`,
    [s.x.customerId, s.y.customerId, s.x.identityId, s.y.identityId, s.score, JSON.stringify(s.evidence), s.reason, s.status, s.decidedBy],
  );
  return written.length > 0;
}

/**
 * Pending suggestions between one customer (`self`) and others, in one statement: each is
 * written unless a pending or rejected suggestion already joins its two customers (what
 * rejectedBetween and insertSuggestion check, pair by pair) or its pair is known. The suggestions
 * joining `self` are found from its own identities (customer_identity_customer_idx, then
 * merge_suggestion_identity_a_idx and _b_idx: `OFFSET 0` keeps each look-up a probe by key), so
 * the cost follows what `self` holds, never the size of merge_suggestion; rejectedBetween's
 * form scanned every pending or rejected suggestion on a table with no statistics. The pairs
 * must join `self` to others, each other customer once. How many were written.
 */
export async function insertPendingSuggestions(db: Db, self: string, s: readonly Omit<SuggestionInsert, 'status' | 'decidedBy'>[]): Promise<number> {
  if (s.length === 0) return 0;
  const written = await rows<{ id: string }>(
    db,
    `WITH joined AS MATERIALIZED (
       SELECT j.customer_id
         FROM customer_identity t
         CROSS JOIN LATERAL (
           SELECT o.customer_id FROM merge_suggestion s JOIN customer_identity o ON o.id = s.identity_b_id
            WHERE s.identity_a_id = t.id AND s.status IN ('pending', 'rejected')
           UNION ALL
           SELECT o.customer_id FROM merge_suggestion s JOIN customer_identity o ON o.id = s.identity_a_id
            WHERE s.identity_b_id = t.id AND s.status IN ('pending', 'rejected')
           OFFSET 0) j
        WHERE t.customer_id = $1::uuid)
     INSERT INTO merge_suggestion (customer_a_id, customer_b_id, identity_a_id, identity_b_id, pair_key, score, evidence, reason, status)
     SELECT x.ca, x.cb, x.ia, x.ib, x.ia::text || ':' || x.ib::text, x.score, x.evidence::jsonb, x.reason, 'pending'
       FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::float8[], $7::text[], $8::text[]) WITH ORDINALITY AS x(ca, cb, ia, ib, score, evidence, reason, n)
      WHERE NOT EXISTS (SELECT 1 FROM joined WHERE joined.customer_id = CASE WHEN x.ca = $1::uuid THEN x.cb ELSE x.ca END)
      ORDER BY x.n
     ON CONFLICT (pair_key) DO NOTHING
     RETURNING id`,
    [
      self,
      s.map((r) => r.x.customerId),
      s.map((r) => r.y.customerId),
      s.map((r) => r.x.identityId),
      s.map((r) => r.y.identityId),
      s.map((r) => r.score),
      s.map((r) => JSON.stringify(r.evidence)),
      s.map((r) => r.reason),
    ],
  );
  return written.length;
}

/** A suggestion as stored, with the current customers of its two identities. */
export interface StoredSuggestion {
  id: string;
  cur_a: string;
  cur_b: string;
  score: number | null;
  evidence: EvidenceItem[];
  reason: string;
  status: SuggestionStatus;
  created_at: Date;
  decided_at: Date | null;
  decided_by: string | null;
}

const SUGGESTION_JOIN = `FROM merge_suggestion s
   JOIN customer_identity ia ON ia.id = s.identity_a_id
   JOIN customer_identity ib ON ib.id = s.identity_b_id`;
const SUGGESTION_COLUMNS = `s.id, ia.customer_id AS cur_a, ib.customer_id AS cur_b, s.score, s.evidence, s.reason, s.status, s.created_at, s.decided_at, s.decided_by`;
// created_at as text keeps the microseconds rows of one transaction share
const SUGGESTION_ORDER: SortKey = { name: 'mergeSuggestions:oldest', expr: 's.created_at', type: 'timestamptz', desc: false };

/** Pending suggestions, oldest first, keyset-paged; pairs already in one customer are left out. */
export async function pendingSuggestionPage(db: Db, w: Window): Promise<Page<SuggestionRow>> {
  const base = `${SUGGESTION_JOIN} WHERE s.status = 'pending' AND ia.customer_id <> ib.customer_id`;
  const params: unknown[] = [];
  const k = keyset(SUGGESTION_ORDER, 's.id', w, params);
  params.push(k.limit);
  const page = await rows<StoredSuggestion & { sort_key: string }>(
    db,
    `SELECT ${SUGGESTION_COLUMNS}, s.created_at::text AS sort_key
     ${base}${k.conditions.map((c) => ` AND ${c}`).join('')} ORDER BY ${k.orderBy} LIMIT $${params.length}`,
    params,
  );
  return k.page(page, toSuggestion, (r) => [r.sort_key, r.id], async () => (await firstRow<{ total: number }>(db, `SELECT count(*)::int AS total ${base}`))!.total);
}

export async function suggestionById(db: Db, id: string): Promise<SuggestionRow | null> {
  const row = await firstRow<StoredSuggestion>(db, `SELECT ${SUGGESTION_COLUMNS} ${SUGGESTION_JOIN} WHERE s.id = $1`, [id]);
  return row ? toSuggestion(row) : null;
}

/** A suggestion, row-locked for a decision. */
export function lockSuggestionRow(db: Db, id: string): Promise<StoredSuggestion | undefined> {
  return firstRow(db, `SELECT ${SUGGESTION_COLUMNS} ${SUGGESTION_JOIN} WHERE s.id = $1 FOR UPDATE OF s`, [id]);
}

export async function decideSuggestion(db: Db, id: string, status: 'accepted' | 'rejected', actor: string): Promise<void> {
  await exec(db, `UPDATE merge_suggestion SET status = $3, decided_at = now(), decided_by = $2 WHERE id = $1`, [id, actor, status]);
}

/** Decided and pending pairs of customers (pending or rejected, not yet one customer). */
export function openOrRejectedPairs(db: Db): Promise<{ a: string; b: string; status: 'pending' | 'rejected' }[]> {
  return rows(
    db,
    `SELECT ia.customer_id AS a, ib.customer_id AS b, s.status ${SUGGESTION_JOIN}
      WHERE s.status IN ('pending', 'rejected') AND ia.customer_id <> ib.customer_id`,
  );
}

/** Rejected suggestions as pairs of CRM records: every record of one side against every record of the other. */
export function rejectedRecordPairs(db: Db): Promise<{ a: string; b: string }[]> {
  return rows(
    db,
    `SELECT ra.id AS a, rb.id AS b ${SUGGESTION_JOIN}
       JOIN crm_record ra ON ra.customer_id = ia.customer_id AND ra.person IS NOT NULL
       JOIN crm_record rb ON rb.customer_id = ib.customer_id AND rb.person IS NOT NULL
      WHERE s.status = 'rejected' AND ia.customer_id <> ib.customer_id`,
  );
}

// ---- the re-resolution job ---------------------------------------------------------------------

/**
 * Fails the jobs still queued or running when no runner is alive: the caller holds the runner's
 * advisory lock, so whoever wrote them (a process killed, a node lost) is gone. Their merges and
 * suggestions stay (each committed with its count); a new job skips what they made.
 */
export async function failOrphanReresolutionJobs(db: Db): Promise<string[]> {
  const { rows: failed } = await modify<{ id: string }>(
    db,
    `UPDATE reresolution_job SET status = 'failed', error = 'interrupted: its runner stopped (process ended)', finished_at = now(), updated_at = now()
      WHERE status IN ('queued', 'running') RETURNING id`,
  );
  return failed.map((r) => r.id);
}

/** The job queued or running, if any. */
export async function activeReresolutionJobId(db: Db): Promise<string | null> {
  return (await firstRow<{ id: string }>(db, `SELECT id FROM reresolution_job WHERE status IN ('queued', 'running') LIMIT 1`))?.id ?? null;
}

/** A queued job, or null while another is queued or running (a unique index allows one active job). */
export async function insertReresolutionJob(db: Db, autoLinkBits: number, reviewBits: number, actor: string): Promise<ReresolutionJobRow | null> {
  const row = await firstRow<RawJob>(
    db,
    `INSERT INTO reresolution_job (auto_link_bits, review_bits, requested_by) VALUES ($1, $2, $3)
     ON CONFLICT ((true)) WHERE status IN ('queued', 'running') DO NOTHING RETURNING *`,
    [autoLinkBits, reviewBits, actor],
  );
  return row ? toJob(row) : null;
}

export async function reresolutionJobById(db: Db, id: string): Promise<ReresolutionJobRow | null> {
  const row = await firstRow<RawJob>(db, `SELECT * FROM reresolution_job WHERE id = $1`, [id]);
  return row ? toJob(row) : null;
}

/** The queued job begins; false when it is no longer queued (failed as an orphan meanwhile). */
export async function startReresolutionJob(db: Db, id: string, total: number): Promise<boolean> {
  const { count } = await modify(
    db,
    `UPDATE reresolution_job SET status = 'running', started_at = now(), updated_at = now(), total = $2 WHERE id = $1 AND status = 'queued'`,
    [id, total],
  );
  return count > 0;
}

/**
 * Counts one applied link or suggestion in the transaction that applied it (so a count is never
 * lost to a crash nor made twice), and locks the job row; false when the job is no longer running
 * (another runner replaced it): the caller rolls its transaction back.
 */
export async function countReresolutionWork(db: Db, id: string, w: { merges: number; suggestions: number }): Promise<boolean> {
  const { count } = await modify(
    db,
    `UPDATE reresolution_job SET merges = merges + $2, suggestions = suggestions + $3, updated_at = now() WHERE id = $1 AND status = 'running'`,
    [id, w.merges, w.suggestions],
  );
  return count > 0;
}

/** Profiles done (never moves back); with `finished`, the job succeeds. False when the job is no longer running. */
export async function reresolutionProgress(db: Db, id: string, done: number, finished = false): Promise<boolean> {
  const { count } = await modify(
    db,
    finished
      ? `UPDATE reresolution_job SET status = 'succeeded', done = $2, finished_at = now(), updated_at = now() WHERE id = $1 AND status = 'running'`
      : `UPDATE reresolution_job SET done = greatest(done, $2), updated_at = now() WHERE id = $1 AND status = 'running'`,
    [id, done],
  );
  return count > 0;
}

/** Fails a job still active (a job another runner replaced is left as it is). */
export async function failReresolutionJob(db: Db, id: string, error: string): Promise<void> {
  await exec(
    db,
    `UPDATE reresolution_job SET status = 'failed', error = $2, finished_at = now(), updated_at = now() WHERE id = $1 AND status IN ('queued', 'running')`,
    [id, error],
  );
}

// ---- row mapping -------------------------------------------------------------------------------

interface RawAudit {
  id: string;
  action: AuditAction;
  survivor_id: string | null;
  merged_id: string | null;
  score: number | null;
  evidence: EvidenceItem[] | null;
  reason: string;
  actor: string;
  created_at: Date;
  undone_at: Date | null;
}

function toAudit(r: RawAudit): AuditRow {
  return {
    id: r.id,
    action: r.action,
    survivorId: r.survivor_id,
    mergedId: r.merged_id,
    score: r.score,
    evidence: r.evidence ?? [],
    reason: r.reason,
    actor: r.actor,
    createdAt: r.created_at,
    undoneAt: r.undone_at,
  };
}

function toSuggestion(r: StoredSuggestion): SuggestionRow {
  return {
    id: r.id,
    customerA: r.cur_a,
    customerB: r.cur_b,
    score: r.score,
    evidence: r.evidence ?? [],
    reason: r.reason,
    status: r.status,
    createdAt: r.created_at,
    decidedAt: r.decided_at,
    decidedBy: r.decided_by,
  };
}

interface RawJob {
  id: string;
  status: ReresolutionJobRow['status'];
  total: number;
  done: number;
  merges: number;
  suggestions: number;
  auto_link_bits: number;
  review_bits: number;
  error: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

function toJob(r: RawJob): ReresolutionJobRow {
  return {
    id: r.id,
    status: r.status,
    total: r.total,
    done: r.done,
    merges: r.merges,
    suggestions: r.suggestions,
    autoLinkBits: r.auto_link_bits,
    reviewBits: r.review_bits,
    error: r.error,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

function ids(found: { id: string }[]): string[] {
  return found.map((r) => r.id);
}

// ---- author resolution at ingest (./author-resolution.ts), inside the pipeline's transaction ----

/** Inserts new customers. */
export async function insertCustomers(db: Db, customers: readonly { id: string; displayName: string | null }[]): Promise<void> {
  await exec(db, `INSERT INTO customer (id, display_name) SELECT * FROM unnest($1::uuid[], $2::text[])`, [
    customers.map((c) => c.id),
    customers.map((c) => c.displayName),
  ]);
}

/** Inserts identities found at ingest (no ON CONFLICT: the caller holds the keys' advisory locks). */
export async function insertIngestIdentities(
  db: Db,
  identities: readonly { id: string; customerId: string; claim: { kind: string; network: string | null; value: string; raw: string } }[],
): Promise<void> {
  await exec(
    db,
    `INSERT INTO customer_identity (id, customer_id, kind, network, value, raw_value, source)
       SELECT i, c, k, n, v, r, 'ingest' FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[]) AS x(i, c, k, n, v, r)`,
    [
      identities.map((i) => i.id),
      identities.map((i) => i.customerId),
      identities.map((i) => i.claim.kind),
      identities.map((i) => i.claim.network),
      identities.map((i) => i.claim.value),
      identities.map((i) => i.claim.raw),
    ],
  );
}

/** The customer of stored interactions by (source, external id), where they have one. */
export function ownersOf(db: Db, sources: readonly string[], externalIds: readonly string[]): Promise<{ source: string; external_id: string; customer_id: string }[]> {
  return rows(
    db,
    `SELECT i.source, i.external_id, i.customer_id FROM unnest($1::text[], $2::text[]) AS k(source, external_id)
       CROSS JOIN LATERAL (
         SELECT i.source, i.external_id, i.customer_id FROM interaction i
          WHERE i.source = k.source AND i.external_id = k.external_id AND i.customer_id IS NOT NULL OFFSET 0) i`,
    [sources, externalIds],
  );
}

/** Where identities are now by (kind, value) (one statement, no lock). */
export function identitiesAt(db: Db, kinds: readonly string[], values: readonly string[]): Promise<{ id: string; kind: string; value: string; customer_id: string }[]> {
  return rows(
    db,
    `SELECT ci.id, ci.kind, ci.value, ci.customer_id FROM unnest($1::text[], $2::text[]) AS k(kind, value)
       CROSS JOIN LATERAL (${IDENTITY_BY_KEY}) ci`,
    [kinds, values],
  );
}

/**
 * How many handles (and profile URLs) each of `customerIds` holds, counted up to `upTo` (the hub
 * cap of ingest, author-resolution.ts: whether a customer is at the cap, read by index, however
 * many handles a customer has).
 */
export async function handleCounts(db: Db, customerIds: readonly string[], upTo: number): Promise<Map<string, number>> {
  const found = await rows<{ customer_id: string; n: number }>(
    db,
    `SELECT c.id AS customer_id,
            (SELECT count(*)::int FROM (SELECT 1 FROM customer_identity h
               WHERE h.customer_id = c.id AND h.kind IN ('handle', 'profile_url') LIMIT $2) x) AS n
       FROM unnest($1::uuid[]) AS c(id)`,
    [customerIds, upTo],
  );
  return new Map(found.map((r) => [r.customer_id, r.n]));
}

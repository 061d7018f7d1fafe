import { randomUUID } from 'node:crypto';
import type { DataSource, QueryRunner } from 'typeorm';
import type { CrmClient, CrmSystem, WriteBackValues } from '../crm/crm.port';
import { CrmBudgetExhausted } from '../crm/crm-budget';
import { inTransaction } from '../db/transaction';
import { identityKey, type IdentityKeyOptions } from '../identity/normalize';
import { enqueueOutbox } from '../outbox/outbox';
import { OUTBOX_TOPICS, sentimentTombstone, type OutboxRow } from '../outbox/outbox-events';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import { TaskRunner, type TaskDeps } from '../shared/task-runner';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** interaction ids per customer-erasure.v1 event (about 80 kB), well under Kafka's 1 MB default */
export const ERASURE_EVENT_IDS = 2_000;
const CRM_BATCH = 200;

export interface ErasureRequestRow {
  id: string;
  customerId: string;
  erasedCustomerIds: string[];
  reason: string;
  requestedBy: string;
  interactions: number;
  identities: number;
  crmRecords: number;
  listeningItemsClosed: number;
  outboxRowsRemoved: number;
  status: 'crm_pending' | 'done';
  crmError: string | null;
  createdAt: Date;
  completedAt: Date | null;
}

export interface ErasureOutcome {
  request: ErasureRequestRow;
  /** false: the customer had been erased already and this call changed nothing */
  erasedNow: boolean;
}

/** How `earshot erase` names the person. */
export interface PersonLookup {
  id?: string;
  email?: string;
  phone?: string;
  /** `network:handle`, e.g. `x:jane` */
  handle?: string;
}

/**
 * Erases a customer everywhere Earshot keeps or sent them.
 *
 * Must stay true:
 * - one transaction removes or replaces every personal value: identities, display name, the text,
 *   handle, display name, URL, ids and metadata of their interactions (scores, intent, topics and
 *   the department/topic daily rollups stay), CRM links (crm_record rows), merge suggestions and
 *   merge audit rows, the customer rows (their per-customer rollups go with them), the author
 *   handle of their listening items (open ones are closed), and outbox rows about them (unsent
 *   ones never leave);
 * - the same transaction writes what must reach the outside: a tombstone per customer id on
 *   customer-sentiment.v1 and customer-erasure.v1 events listing the interaction ids (outbox),
 *   and a crm_erasure row per CRM record with written-back fields and per escalation case, which
 *   the CRM task clears and deletes (retried with backoff: a crash loses nothing);
 * - the audit row (erasure_request) holds ids, counts, the actor and the reason, no PII;
 * - idempotent: a second request for an erased customer returns the first request unchanged.
 */
export class ErasureService {
  private readonly clients = new Map<CrmSystem, CrmClient>();
  /** clears erased customers' values in the CRMs (sync role, and right after an erasure) */
  readonly crmTask: TaskRunner<number>;

  constructor(
    private readonly ds: DataSource,
    clients: CrmClient[],
    private readonly keyOptions: IdentityKeyOptions,
    private readonly log: Logger,
    deps: TaskDeps & { crmIntervalMs?: number } = {},
  ) {
    for (const c of clients) this.clients.set(c.system, c);
    this.crmTask = new TaskRunner({ name: 'crm-erasure', intervalMs: deps.crmIntervalMs ?? 30_000, ...deps, log, run: () => this.clearCrm() });
  }

  /** Finds the customer an email, phone, handle or id names; NOT_FOUND when none. */
  async findCustomer(who: PersonLookup): Promise<string> {
    if (who.id) {
      if (!UUID.test(who.id)) throw AppError.badInput(`invalid customer id: ${JSON.stringify(who.id)}`);
      return who.id;
    }
    let key: string | null = null;
    let kind: 'email' | 'phone' | 'handle';
    if (who.email) [kind, key] = ['email', identityKey('email', null, who.email, this.keyOptions)];
    else if (who.phone) [kind, key] = ['phone', identityKey('phone', null, who.phone, this.keyOptions)];
    else if (who.handle) {
      const i = who.handle.indexOf(':');
      if (i <= 0) throw AppError.badInput('a handle is written network:handle, e.g. x:jane');
      [kind, key] = ['handle', identityKey('handle', who.handle.slice(0, i), who.handle.slice(i + 1), this.keyOptions)];
    } else throw AppError.badInput('name the person by id, email, phone or handle');
    if (!key) throw AppError.badInput(`not a valid ${kind}`);
    const rows: { customer_id: string }[] = await this.ds.query(
      `SELECT coalesce(c.merged_into_id, c.id) AS customer_id FROM customer_identity ci JOIN customer c ON c.id = ci.customer_id WHERE ci.kind = $1 AND ci.value = $2`,
      [kind, key],
    );
    if (!rows[0]) throw AppError.notFound(`customer with that ${kind}`);
    return rows[0].customer_id;
  }

  /** Erases the customer (and customers merged into it); see the class comment for what stays true. */
  async erase(customerId: string, reason: string, actor: string): Promise<ErasureOutcome> {
    if (!UUID.test(customerId)) throw AppError.badInput(`invalid customer id: ${JSON.stringify(customerId)}`);
    if (!reason.trim()) throw AppError.badInput('an erasure needs a reason (a ticket number, not personal data)');
    const outcome = await inTransaction(this.ds, (qr) => this.eraseTx(qr, customerId, reason.trim().slice(0, 500), actor));
    if (outcome.erasedNow) {
      this.log.info({ erasure: outcome.request.id, interactions: outcome.request.interactions, crmRecords: outcome.request.crmRecords }, 'customer erased');
      if (outcome.request.status === 'crm_pending') this.crmTask.trigger();
    }
    return outcome;
  }

  private async eraseTx(qr: QueryRunner, customerId: string, reason: string, actor: string): Promise<ErasureOutcome> {
    const prior = await this.requestFor(customerId, qr);
    if (prior) return { request: prior, erasedNow: false };
    const customers: { id: string }[] = await qr.query(
      `WITH root AS (SELECT coalesce(merged_into_id, id) AS id FROM customer WHERE id = $1)
       SELECT c.id FROM customer c, root WHERE c.id = root.id OR c.merged_into_id = root.id ORDER BY c.id FOR UPDATE OF c`,
      [customerId],
    );
    if (customers.length === 0) throw AppError.notFound(`customer ${customerId}`);
    const ids = customers.map((c) => c.id);

    // Interactions: personal values replaced, scores and topics kept (the rollups are anonymous).
    const redacted: { id: string }[] = await qr.query(
      `WITH r AS (
         UPDATE interaction SET text = '', url = NULL, author_handle = NULL, author_display_name = NULL, metadata = NULL,
                explanation = '[]', event_id = NULL, in_reply_to = NULL, thread_key = NULL,
                external_id = 'erased:' || id::text, customer_id = NULL, identity_id = NULL, redacted_at = now()
          WHERE customer_id = ANY($1::uuid[]) RETURNING id)
       SELECT id FROM r`,
      [ids],
    );
    const iids = redacted.map((r) => r.id);
    await qr.query(`UPDATE interaction_topic SET matched = '{}' WHERE interaction_id = ANY($1::uuid[]) AND matched <> '{}'`, [iids]);

    // Listening items: no author left; open ones closed; escalation cases queued for redaction.
    const items: { id: string; was: string; escalation_system: CrmSystem | null; escalation_case_id: string | null; source: string }[] = await qr.query(
      `WITH old AS (
         SELECT id, status FROM listening_item WHERE customer_id = ANY($1::uuid[]) OR interaction_id = ANY($2::uuid[]) FOR UPDATE),
       u AS (
         UPDATE listening_item li SET author_handle = NULL, customer_id = NULL, escalation_error = NULL, updated_at = now(),
                thread_key = 'erased:' || li.id::text,
                status = CASE WHEN old.status = 'open' THEN 'closed' ELSE li.status END,
                closed_at = CASE WHEN old.status = 'open' THEN now() ELSE li.closed_at END,
                close_reason = CASE WHEN old.status = 'open' THEN 'erased' ELSE li.close_reason END
           FROM old WHERE li.id = old.id
         RETURNING li.id, old.status AS was, li.escalation_system, li.escalation_case_id, li.source)
       SELECT * FROM u`,
      [ids, iids],
    );

    const records: { system: CrmSystem; object_type: string; external_id: string; written: boolean }[] = await qr.query(
      `WITH d AS (DELETE FROM crm_record WHERE customer_id = ANY($1::uuid[]) RETURNING system, object_type, external_id, written_values IS NOT NULL AS written)
       SELECT * FROM d`,
      [ids],
    );
    await qr.query(`DELETE FROM merge_suggestion WHERE customer_a_id = ANY($1::uuid[]) OR customer_b_id = ANY($1::uuid[])`, [ids]);
    await qr.query(`DELETE FROM merge_audit WHERE survivor_id = ANY($1::uuid[]) OR merged_id = ANY($1::uuid[])`, [ids]);
    const [{ n: identities }] = await qr.query(`WITH d AS (DELETE FROM customer_identity WHERE customer_id = ANY($1::uuid[]) RETURNING 1) SELECT count(*)::int AS n FROM d`, [ids]);
    // Outbox events about them, sent or not: unsent ones never leave, sent ones keep no copy.
    // An `outbox_batch` row may carry other customers' events too: only theirs are taken out
    // (counted through the `outbox` view while the customer rows still exist), empty rows go.
    const [{ n: outboxRows }] = await qr.query(
      `SELECT count(*)::int AS n FROM outbox
        WHERE message_key = ANY($1::text[]) OR payload->>'customerId' = ANY($1::text[])
           OR (topic = $3 AND payload->>'interactionId' = ANY($2::text[]))`,
      [ids, iids, OUTBOX_TOPICS.enriched.name],
    );
    if (outboxRows > 0) {
      await qr.query(
        `WITH hit AS (
           SELECT b.id FROM outbox_batch b
            WHERE b.interaction_ids && $2::uuid[] OR b.customer_ids && $1::uuid[]
               OR EXISTS (SELECT 1 FROM jsonb_array_elements(b.messages) m
                           WHERE m->>'key' = ANY($1::text[]) OR m->'payload'->>'customerId' = ANY($1::text[])
                              OR (m->>'topic' = $3 AND m->'payload'->>'interactionId' = ANY($2::text[]))))
         UPDATE outbox_batch b SET
           interaction_ids = ARRAY(SELECT x FROM unnest(b.interaction_ids) WITH ORDINALITY u(x, n) WHERE x <> ALL($2::uuid[]) ORDER BY n),
           customer_ids = ARRAY(SELECT x FROM unnest(b.customer_ids) WITH ORDINALITY u(x, n) WHERE x <> ALL($1::uuid[]) ORDER BY n),
           messages = coalesce((SELECT jsonb_agg(m ORDER BY n) FROM jsonb_array_elements(b.messages) WITH ORDINALITY e(m, n)
                                 WHERE NOT (coalesce(m->>'key' = ANY($1::text[]), false) OR coalesce(m->'payload'->>'customerId' = ANY($1::text[]), false)
                                            OR coalesce(m->>'topic' = $3 AND m->'payload'->>'interactionId' = ANY($2::text[]), false))), '[]'::jsonb)
          FROM hit WHERE b.id = hit.id`,
        [ids, iids, OUTBOX_TOPICS.enriched.name],
      );
      await qr.query(
        `DELETE FROM outbox_batch WHERE cardinality(interaction_ids) = 0 AND cardinality(customer_ids) = 0 AND messages = '[]'::jsonb`,
      );
    }
    await qr.query(`DELETE FROM customer WHERE id = ANY($1::uuid[])`, [ids]);

    const crmRows = [
      ...records.filter((r) => r.written && this.clients.has(r.system)).map((r) => ({ system: r.system, kind: 'record', object_type: r.object_type, external_id: r.external_id, origin: null })),
      ...items
        .filter((i) => i.escalation_system && i.escalation_case_id && this.clients.has(i.escalation_system))
        .map((i) => ({ system: i.escalation_system!, kind: 'case', object_type: i.escalation_system === 'salesforce' ? 'Case' : 'tickets', external_id: i.id, origin: i.source })),
    ];
    const erasureId = randomUUID();
    const [row] = await qr.query(
      `INSERT INTO erasure_request (id, customer_id, erased_customer_ids, reason, requested_by, interactions, identities, crm_records, listening_items_closed, outbox_rows_removed, status, completed_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, CASE WHEN $11 = 'done' THEN now() END) RETURNING *`,
      [erasureId, customerId, ids, reason, actor, iids.length, identities, records.length, items.filter((i) => i.was === 'open').length, outboxRows, crmRows.length ? 'crm_pending' : 'done'],
    );
    if (crmRows.length) {
      await qr.query(
        `INSERT INTO crm_erasure (erasure_id, system, kind, object_type, external_id, origin)
         SELECT $1, x.system, x.kind, x.object_type, x.external_id, x.origin FROM jsonb_to_recordset($2::jsonb) AS x(system text, kind text, object_type text, external_id text, origin text)`,
        [erasureId, JSON.stringify(crmRows)],
      );
    }
    const erasedAt = new Date().toISOString();
    const parts = Math.max(1, Math.ceil(iids.length / ERASURE_EVENT_IDS));
    const events: OutboxRow[] = ids.map((id) => sentimentTombstone(id));
    for (let p = 0; p < parts; p++) {
      const eventId = randomUUID();
      events.push({
        topic: OUTBOX_TOPICS.erasure.name,
        key: customerId,
        headers: { 'schema-version': OUTBOX_TOPICS.erasure.version, 'event-id': eventId, 'content-type': 'application/json' },
        payload: {
          schemaVersion: 1,
          eventId,
          type: 'customer.erased',
          erasureId,
          customerId,
          customerIds: ids,
          interactionIds: iids.slice(p * ERASURE_EVENT_IDS, (p + 1) * ERASURE_EVENT_IDS),
          part: p + 1,
          parts,
          erasedAt,
        },
      });
    }
    await enqueueOutbox(qr, events);
    return { request: toRequest(row), erasedNow: true };
  }

  async requestFor(customerId: string, q: { query(sql: string, params?: unknown[]): Promise<unknown> } = this.ds): Promise<ErasureRequestRow | null> {
    const [row] = (await q.query(`SELECT * FROM erasure_request WHERE erased_customer_ids @> ARRAY[$1::uuid] ORDER BY created_at LIMIT 1`, [customerId])) as Record<string, unknown>[];
    return row ? toRequest(row) : null;
  }

  /**
   * One pass over the CRM clean-up queue: written-back fields set to empty, escalation cases
   * rewritten (upsert on their item id) with no customer text and no contact. A row leaves the
   * queue only when its CRM call succeeded; then its request is done once no row of it is left.
   */
  async clearCrm(): Promise<number> {
    const due: { id: string; erasure_id: string; system: CrmSystem; kind: 'record' | 'case'; object_type: string; external_id: string; origin: string | null }[] = await this.ds.query(
      `SELECT id, erasure_id, system, kind, object_type, external_id, origin FROM crm_erasure WHERE next_attempt_at <= now() ORDER BY id LIMIT 1000`,
    );
    if (due.length === 0) return 0;
    const ok: string[] = [];
    const failed = new Map<string, string>();
    const empty = { score: null, label: null, trend: null, openComplaints: null, lastInteraction: null, url: null } as unknown as WriteBackValues;
    const groups = new Map<string, typeof due>();
    for (const r of due) {
      const k = `${r.system}\u0000${r.kind}\u0000${r.object_type}`;
      groups.set(k, [...(groups.get(k) ?? []), r]);
    }
    for (const rows of groups.values()) {
      const client = this.clients.get(rows[0]!.system);
      if (!client) {
        for (const r of rows) failed.set(r.id, `${r.system} is not configured`);
        continue;
      }
      try {
        if (rows[0]!.kind === 'record') {
          for (let i = 0; i < rows.length; i += CRM_BATCH) {
            const chunk = rows.slice(i, i + CRM_BATCH);
            const outcomes = await client.writeBack(rows[0]!.object_type, chunk.map((r) => ({ externalId: r.external_id, values: empty })));
            outcomes.forEach((o, k) => {
              // a record deleted in the CRM meanwhile holds nothing to clear
              if (o.ok || o.retriable === false) ok.push(chunk[k]!.id);
              else failed.set(chunk[k]!.id, o.error ?? 'failed');
            });
          }
        } else {
          for (const r of rows) {
            try {
              await client.createCase({
                idempotencyKey: r.external_id,
                subject: 'Erased at the customer\'s request',
                description: 'The customer\'s message and details were erased from Earshot at their request.',
                origin: r.origin ?? 'other',
                priority: 'medium',
                contactId: null,
                accountId: null,
                ownerId: null,
              });
              ok.push(r.id);
            } catch (e) {
              if (e instanceof CrmBudgetExhausted) throw e;
              failed.set(r.id, (e as Error).message);
            }
          }
        }
      } catch (e) {
        for (const r of rows) if (!ok.includes(r.id)) failed.set(r.id, (e as Error).message);
      }
    }
    await this.ds.transaction(async (em) => {
      if (ok.length) await em.query(`DELETE FROM crm_erasure WHERE id = ANY($1::bigint[])`, [ok]);
      if (failed.size) {
        await em.query(
          `UPDATE crm_erasure c SET attempts = c.attempts + 1, last_error = left(x.err, 1000),
                  next_attempt_at = now() + make_interval(secs => least(3600, 2 ^ least(c.attempts, 12)))
             FROM unnest($1::bigint[], $2::text[]) AS x(id, err) WHERE c.id = x.id`,
          [[...failed.keys()], [...failed.values()]],
        );
      }
      await em.query(
        `UPDATE erasure_request e SET status = CASE WHEN NOT EXISTS (SELECT 1 FROM crm_erasure c WHERE c.erasure_id = e.id) THEN 'done' ELSE 'crm_pending' END,
                completed_at = CASE WHEN NOT EXISTS (SELECT 1 FROM crm_erasure c WHERE c.erasure_id = e.id) THEN now() END,
                crm_error = (SELECT max(last_error) FROM crm_erasure c WHERE c.erasure_id = e.id)
          WHERE e.id = ANY($1::uuid[])`,
        [[...new Set(due.map((d) => d.erasure_id))]],
      );
    });
    if (failed.size) this.log.warn({ cleared: ok.length, failed: failed.size }, 'CRM erasure pass: some records wait for a retry');
    return ok.length;
  }
}

function toRequest(r: Record<string, unknown>): ErasureRequestRow {
  return {
    id: r.id as string,
    customerId: r.customer_id as string,
    erasedCustomerIds: r.erased_customer_ids as string[],
    reason: r.reason as string,
    requestedBy: r.requested_by as string,
    interactions: Number(r.interactions),
    identities: Number(r.identities),
    crmRecords: Number(r.crm_records),
    listeningItemsClosed: Number(r.listening_items_closed),
    outboxRowsRemoved: Number(r.outbox_rows_removed),
    status: r.status as ErasureRequestRow['status'],
    crmError: (r.crm_error as string | null) ?? null,
    createdAt: r.created_at as Date,
    completedAt: (r.completed_at as Date | null) ?? null,
  };
}

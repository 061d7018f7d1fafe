import { randomUUID } from 'node:crypto';
import type { DataSource, QueryRunner } from 'typeorm';
import type { CrmClient, CrmSystem, WriteBackValues } from '../crm/crm.port';
import { CrmBudgetExhausted } from '../crm/crm-budget';
import type { Db } from '../db/sql';
import { inTransactionRetrying } from '../db/lock-conflict-retry';
import { identityKey, type IdentityKeyOptions } from '../identity/normalize';
import { enqueueOutbox } from '../outbox/outbox';
import { OUTBOX_TOPICS, sentimentTombstone, type OutboxRow } from '../outbox/outbox-events';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import { TaskRunner, type TaskDeps } from '../shared/task-runner';
import { addressedKeys } from './addressed-keys';
import * as repo from './privacy.repository';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** interaction ids per customer-erasure.v1 event (about 80 kB), well under Kafka's 1 MB default */
export const ERASURE_EVENT_IDS = 2_000;
const CRM_BATCH = 200;
/** something@domain.tld anywhere, also as mailto: or in brackets */
const EMAIL_IN_TEXT = /[^\s@<>()"',;:]+@[^\s@<>()"',;:]+\.[a-z]{2,}/i;

export interface ErasureRequestRow extends Omit<repo.NewErasureRequest, 'erasedCustomerIds'> {
  erasedCustomerIds: string[];
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
 *   ones never leave); their name also where it outlived an unlink or unmerge that took them out
 *   of a family: the merged-away customer row, the merge snapshots and the other customers'
 *   outbox events stored with it (`scrubNamesCarriedAway`);
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
      // the form the database prints, which the erasure compares ids in
      return who.id.toLowerCase();
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
    const found = await repo.customerByIdentity(this.ds, kind, key);
    if (!found) throw AppError.notFound(`customer with that ${kind}`);
    return found;
  }

  /** Erases the customer (and customers merged into it); see the class comment for what stays true. */
  async erase(customerId: string, reason: string, actor: string): Promise<ErasureOutcome> {
    if (!UUID.test(customerId)) throw AppError.badInput(`invalid customer id: ${JSON.stringify(customerId)}`);
    if (!reason.trim()) throw AppError.badInput('an erasure needs a reason (a ticket number, not personal data)');
    // the audit row outlives the person: an address typed into the reason ("as jane@… asked") stayed in it for good
    if (EMAIL_IN_TEXT.test(reason)) throw AppError.badInput('the reason holds an email address; give a ticket reference, never personal data (the reason is kept in the audit row)');
    const outcome = await inTransactionRetrying(this.ds, (qr) => this.eraseTx(qr, customerId, reason.trim().slice(0, 500), actor));
    if (outcome.erasedNow) {
      this.log.info({ erasure: outcome.request.id, interactions: outcome.request.interactions, crmRecords: outcome.request.crmRecords }, 'customer erased');
      if (outcome.request.status === 'crm_pending') this.crmTask.trigger();
    }
    return outcome;
  }

  private async eraseTx(qr: QueryRunner, customerId: string, reason: string, actor: string): Promise<ErasureOutcome> {
    const prior = await this.requestFor(customerId, qr);
    if (prior) return { request: prior, erasedNow: false };
    const ids = await this.lockFamily(qr, customerId);
    if (ids.length === 0) throw AppError.notFound(`customer ${customerId}`);

    // Interactions: personal values replaced, scores and topics kept (the rollups are anonymous);
    // so are company replies addressed to them by name or address alone (they carry no customer)
    const addressed = await addressedKeys(qr, ids, this.keyOptions);
    const iids = [...(await repo.redactCustomerInteractions(qr, ids)), ...(await repo.redactRepliesAddressedTo(qr, addressed))];
    await repo.clearTopicMatches(qr, iids);

    // Listening items: no author left; open ones closed; escalation cases queued for redaction.
    const items = await repo.eraseListeningItems(qr, ids, iids);

    const records = await repo.deleteCrmRecords(qr, ids);
    // Their name where an unlink or an unmerge left it behind: the customer row they were merged
    // away as, merge snapshots (theirs, and the ones of customers their name passed on to) and
    // those customers' events stored in the outbox with it.
    await repo.scrubNamesCarriedAway(qr, ids);
    const identities = await repo.deleteIdentityTraces(qr, ids);
    // Outbox events about them, sent or not: unsent ones never leave, sent ones keep no copy.
    // An `outbox_batch` row may carry other customers' events too: only theirs are taken out
    // (counted as the `outbox` view shows them, while the customer rows still exist), empty rows go.
    const outboxRows = await repo.removeOutboxEventsAbout(qr, ids, iids, OUTBOX_TOPICS.enriched.name);
    await repo.deleteCustomers(qr, ids);

    const crmRows = [
      ...records.filter((r) => r.written && this.clients.has(r.system)).map((r) => ({ system: r.system, kind: 'record', object_type: r.object_type, external_id: r.external_id, origin: null })),
      ...items
        .filter((i) => i.escalation_system && i.escalation_case_id && this.clients.has(i.escalation_system))
        .map((i) => ({ system: i.escalation_system!, kind: 'case', object_type: i.escalation_system === 'salesforce' ? 'Case' : 'tickets', external_id: i.id, origin: i.source })),
    ];
    const erasureId = randomUUID();
    const row = await repo.insertErasureRequest(qr, {
      id: erasureId,
      customerId,
      erasedCustomerIds: ids,
      reason,
      requestedBy: actor,
      interactions: iids.length,
      identities,
      crmRecords: records.length,
      listeningItemsClosed: items.filter((i) => i.was === 'open').length,
      outboxRowsRemoved: outboxRows,
      status: crmRows.length ? 'crm_pending' : 'done',
    });
    if (crmRows.length) {
      await repo.queueCrmErasure(qr, erasureId, crmRows);
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

  /**
   * Locks the customer's family (its root and every customer merged into it) as it is once the
   * locks are held. A merge that commits while the first locking read waits moves the family
   * (the customer merged away, or another one merged in), and that read still returns the rows it
   * found before; so it is read and locked again until two reads agree. Whatever changes a family
   * holds the row lock of its root, which the second read takes, so the agreed family stays.
   */
  private async lockFamily(qr: QueryRunner, customerId: string): Promise<string[]> {
    let ids = await repo.customerFamily(qr, customerId, true);
    for (let round = 0; ids.length > 0; round++) {
      const now = await repo.customerFamily(qr, customerId, true);
      if (now.length === ids.length && now.every((id, i) => id === ids[i])) break;
      if (round >= 8) throw new AppError('CONFLICT', `customer ${customerId} keeps being merged while it is erased; try again`);
      ids = now;
    }
    return ids;
  }

  async requestFor(customerId: string, db: Db = this.ds): Promise<ErasureRequestRow | null> {
    const row = await repo.erasureRequestFor(db, customerId);
    return row ? toRequest(row) : null;
  }

  /**
   * One pass over the CRM clean-up queue: written-back fields set to empty, escalation cases
   * rewritten (upsert on their item id) with no customer text and no contact. A row leaves the
   * queue only when its CRM call succeeded; then its request is done once no row of it is left.
   */
  async clearCrm(): Promise<number> {
    const due = await repo.dueCrmErasures(this.ds, 1000);
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
      if (ok.length) await repo.crmErasuresDone(em, ok);
      if (failed.size) {
        await repo.crmErasuresFailed(em, failed);
      }
      await repo.settleErasureRequests(em, [...new Set(due.map((d) => d.erasure_id))]);
    });
    if (failed.size) this.log.warn({ cleared: ok.length, failed: failed.size }, 'CRM erasure pass: some records wait for a retry');
    return ok.length;
  }
}

function toRequest(r: repo.ErasureRequestRecord): ErasureRequestRow {
  return {
    id: r.id,
    customerId: r.customer_id,
    erasedCustomerIds: r.erased_customer_ids,
    reason: r.reason,
    requestedBy: r.requested_by,
    interactions: Number(r.interactions),
    identities: Number(r.identities),
    crmRecords: Number(r.crm_records),
    listeningItemsClosed: Number(r.listening_items_closed),
    outboxRowsRemoved: Number(r.outbox_rows_removed),
    status: r.status,
    crmError: r.crm_error ?? null,
    createdAt: r.created_at,
    completedAt: r.completed_at ?? null,
  };
}

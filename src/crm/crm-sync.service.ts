import type { DataSource } from 'typeorm';
import { advisoryUnlock, tryAdvisoryLock } from '../db/sql';
import type { IdentityService } from '../identity/identity.service';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import { outsideRequest } from '../shared/request-context';
import { TaskRunner, type TaskDeps } from '../shared/task-runner';
import type { CrmConfig } from './crm.config';
import { CrmBudgetExhausted, type BudgetSnapshot } from './crm-budget';
import { withoutCustomerData } from './crm-error-text';
import { guardCrmCases, guardCrmRecords, storableTime } from './crm-record-guard';
import * as repo from './crm.repository';
import type { CrmCaseRow, CrmClient, CrmPerson, CrmRecordInput, CrmSystem, PulledBatch, SyncMode } from './crm.port';

export interface SyncStateRow {
  system: CrmSystem;
  objectType: string;
  status: 'never_run' | 'running' | 'ok' | 'error' | 'budget_exhausted';
  mode: SyncMode | null;
  cursorModstamp: Date | null;
  cursorId: string | null;
  deletedCheckedUntil: Date | null;
  lastRunStartedAt: Date | null;
  lastRunFinishedAt: Date | null;
  lastSuccessAt: Date | null;
  recordsLastRun: number;
  deletedLastRun: number;
  apiCallsLastRun: number;
  totalRecords: number;
  lastError: string | null;
}

export interface ObjectRunReport {
  objectType: string;
  records: number;
  deleted: number;
  apiCalls: number;
  ms: number;
  via: string[];
  outcome: 'ok' | 'error' | 'budget_exhausted';
  error?: string;
}

export interface SyncRunReport {
  system: CrmSystem;
  mode: SyncMode;
  objects: ObjectRunReport[];
  /** false when the daily budget ran out: the next window resumes from the cursors */
  complete: boolean;
}

const INTAKE_BATCH = 2_000;
const PERSON_KEYS: (keyof CrmPerson)[] = ['givenName', 'surname', 'company', 'streetNumber', 'address1', 'address2', 'city', 'postcode', 'state', 'dateOfBirth'];

/**
 * Pulls Salesforce and HubSpot records into Earshot: per system and object, from the stored
 * cursor, through the identity intake (IdentityService.ingestCrmRecords), persisting the cursor
 * after every batch; Cases go to crm_case for the listening gap. One run per system at a time
 * across replicas (a PostgreSQL advisory lock). The `sync` role calls `start()`.
 *
 * Must stay true: the cursor is stored only after its batch is committed, so a crash, an outage or
 * a spent budget never skips a record; a spent daily budget stops the run cleanly with status
 * `budget_exhausted` and the next run resumes from the cursor.
 */
export class CrmSyncService {
  private readonly clients = new Map<CrmSystem, CrmClient>();
  private readonly running = new Map<CrmSystem, Promise<SyncRunReport>>();
  /** the scheduled incremental syncs of every configured system */
  readonly task: TaskRunner<void>;

  constructor(
    private readonly ds: DataSource,
    private readonly identity: IdentityService,
    clients: CrmClient[],
    config: Pick<CrmConfig, 'syncIntervalMs'>,
    private readonly log: Logger,
    deps: TaskDeps = {},
  ) {
    for (const c of clients) this.clients.set(c.system, c);
    this.task = new TaskRunner({
      name: 'crm-sync',
      intervalMs: config.syncIntervalMs,
      ...deps,
      log,
      run: async ({ stopping }) => {
        for (const system of this.clients.keys()) {
          if (stopping()) return;
          // one system's failure does not keep the others from syncing
          await this.run(system, 'incremental').catch((e: Error) => this.log.error({ err: e.message, system }, 'CRM sync run failed'));
        }
      },
    });
  }

  get systems(): CrmSystem[] {
    return [...this.clients.keys()];
  }

  client(system: CrmSystem): CrmClient | undefined {
    return this.clients.get(system);
  }

  /** Runs incremental syncs every interval until stop(); logs once and idles when no CRM is configured. */
  start(): void {
    if (this.clients.size === 0) {
      this.log.info('CRM sync is off: no Salesforce or HubSpot credentials configured');
      return;
    }
    this.task.start();
  }

  async stop(): Promise<void> {
    await this.task.stop();
    await Promise.allSettled([...this.running.values()]);
  }

  /** Resolves when no run of the system is going in this process (after triggerCrmSync). */
  async idle(system: CrmSystem): Promise<void> {
    await this.running.get(system)?.catch(() => undefined);
  }

  /** Starts a run in the background unless one is going; returns at once. */
  trigger(system: CrmSystem, mode: SyncMode): { started: boolean } {
    if (!this.clients.has(system)) throw AppError.badInput(`${system} is not configured`);
    if (this.running.has(system)) return { started: false };
    void outsideRequest(() => this.run(system, mode)).catch((e: Error) => this.log.error({ err: e.message, system }, 'CRM sync run failed'));
    return { started: true };
  }

  isRunning(system: CrmSystem): boolean {
    return this.running.has(system);
  }

  /** One run over every object of the system; joins a run already going in this process. */
  run(system: CrmSystem, mode: SyncMode = 'incremental'): Promise<SyncRunReport> {
    const going = this.running.get(system);
    if (going) return going;
    const client = this.clients.get(system);
    if (!client) return Promise.reject(AppError.badInput(`${system} is not configured`));
    const p = this.runLocked(client, mode).finally(() => this.running.delete(system));
    this.running.set(system, p);
    return p;
  }

  private async runLocked(client: CrmClient, mode: SyncMode): Promise<SyncRunReport> {
    const qr = this.ds.createQueryRunner();
    await qr.connect();
    const lockKey = client.system === 'salesforce' ? 7_301_001 : 7_301_002;
    try {
      const got = await tryAdvisoryLock(qr, lockKey);
      if (!got) {
        this.log.info({ system: client.system }, 'another replica is syncing this CRM; skipping this run');
        return { system: client.system, mode, objects: [], complete: false };
      }
      try {
        return await this.runSystem(client, mode);
      } finally {
        await advisoryUnlock(qr, lockKey);
      }
    } finally {
      await qr.release();
    }
  }

  private async runSystem(client: CrmClient, mode: SyncMode): Promise<SyncRunReport> {
    const report: SyncRunReport = { system: client.system, mode, objects: [], complete: true };
    await this.restoreBudget(client);
    for (const objectType of client.objectTypes) {
      const r = await this.runObject(client, objectType, mode);
      report.objects.push(r);
      await this.saveOrg(client);
      if (r.outcome === 'budget_exhausted') {
        report.complete = false;
        // The rest waits for the next window too; say so on each object.
        for (const rest of client.objectTypes.slice(client.objectTypes.indexOf(objectType) + 1)) {
          await repo.syncBudgetExhausted(this.ds, client.system, rest, r.error ?? null);
        }
        this.log.warn({ system: client.system, objectType, error: r.error }, 'CRM sync stopped: daily API budget spent; it resumes from the cursor in the next window');
        break;
      }
    }
    return report;
  }

  private async runObject(client: CrmClient, objectType: string, mode: SyncMode): Promise<ObjectRunReport> {
    const system = client.system;
    const t0 = Date.now();
    const used0 = client.budget.snapshot().usedToday;
    const state = await this.state(system, objectType);
    await repo.syncStarted(this.ds, system, objectType, mode);
    const r: ObjectRunReport = { objectType, records: 0, deleted: 0, apiCalls: 0, ms: 0, via: [], outcome: 'ok' };
    const persist = async (raw: PulledBatch) => {
      const guarded = this.guard(system, objectType, raw);
      const { b, back } = guarded.via === 'deleted' || guarded.via === 'archived' ? { b: guarded, back: [] } : await this.againstStore(system, objectType, guarded, mode);
      const n = b.records.length + b.cases.length;
      const deleted = b.via === 'deleted' || b.via === 'archived' ? n : 0;
      if (b.records.length) await this.identity.ingestCrmRecords(system, objectType, b.records);
      // The intake makes them live on their customer again, and queues that customer for write-back
      // in the same transaction (trigger crm_writeback_record_revived): the record showed the values
      // of the day it was deleted.
      if (back.length) this.log.info({ system, objectType, count: back.length, records: back.slice(0, 20) }, 'CRM records deleted before are live again (undeleted or restored in the CRM)');
      if (b.cases.length) await this.upsertCases(system, b.cases);
      if (!r.via.includes(b.via)) r.via.push(b.via);
      r.records += n - deleted;
      r.deleted += deleted;
      await repo.syncBatchStored(this.ds, system, objectType, {
        cursor: b.cursor ?? null,
        records: n - deleted,
        deleted,
        apiCalls: client.budget.snapshot().usedToday - used0,
      });
      await this.saveOrg(client);
    };
    // Pages are handed to the identity intake in batches of about INTAKE_BATCH records: fewer,
    // larger intake calls; the cursor still moves only after its batch is committed.
    let buffer: PulledBatch[] = [];
    const flush = async () => {
      if (buffer.length === 0) return;
      const parts = buffer;
      buffer = [];
      for (const via of [...new Set(parts.map((p) => p.via))]) {
        const same = parts.filter((p) => p.via === via);
        const cursor = [...same].reverse().find((p) => p.cursor)?.cursor ?? null;
        await persist({ objectType, records: same.flatMap((p) => p.records), cases: same.flatMap((p) => p.cases), cursor, via });
      }
    };
    const sink = async (b: PulledBatch) => {
      if (buffer.length && buffer[0]!.via !== b.via) await flush();
      buffer.push(b);
      if (buffer.reduce((n, p) => n + p.records.length + p.cases.length, 0) >= INTAKE_BATCH) await flush();
    };
    try {
      const res = await client.pull(objectType, {
        cursor: state?.cursorModstamp ? { modstamp: state.cursorModstamp.toISOString(), id: state.cursorId ?? '' } : null,
        mode,
        deletedSince: state?.deletedCheckedUntil ?? null,
        known: (ids) => this.known(system, objectType, ids),
        sink,
      });
      await flush();
      r.apiCalls = client.budget.snapshot().usedToday - used0;
      await repo.syncSucceeded(this.ds, system, objectType, res.deletedCheckedUntil, r.apiCalls);
    } catch (e) {
      // What was fetched before the failure is kept, and the cursor moves past it.
      await flush().catch((f: Error) => this.log.error({ system, objectType, err: withoutCustomerData(f).message }, 'could not store the records fetched before a failure'));
      r.apiCalls = client.budget.snapshot().usedToday - used0;
      r.outcome = e instanceof CrmBudgetExhausted ? 'budget_exhausted' : 'error';
      // shown to analysts (crmSyncStatus.lastError) and logged: never a value the CRM quoted
      r.error = withoutCustomerData(e as Error).message;
      if (r.outcome === 'error') this.log.error({ system, objectType, err: r.error }, 'CRM sync of an object failed; its cursor stays where the last batch left it');
      await repo.syncFailed(this.ds, system, objectType, r.outcome, r.error, r.apiCalls);
    }
    r.ms = Date.now() - t0;
    this.log.info({ system, ...r }, 'CRM object synced');
    return r;
  }

  /**
   * The batch made storable (crm-record-guard.ts): one record with a NUL, a lone surrogate, a
   * 1 MB name or no id no longer fails the batch, and with it every later run. What was set apart
   * or cut is logged by record id and field name, never by value.
   */
  private guard(system: CrmSystem, objectType: string, b: PulledBatch): PulledBatch {
    const r = guardCrmRecords(b.records);
    const c = guardCrmCases(b.cases);
    const skipped = [...r.skipped, ...c.skipped];
    if (skipped.length) {
      this.log.warn({ system, objectType, via: b.via, count: skipped.length, records: skipped.slice(0, 20) }, 'CRM records without a usable id skipped');
    }
    if (r.cleaned.length) {
      this.log.warn({ system, objectType, via: b.via, count: r.cleaned.length, records: r.cleaned.slice(0, 20) }, 'CRM record values not storable as sent: cleaned or cut');
    }
    return { ...b, records: r.records, cases: c.cases };
  }

  /**
   * A batch of live records against what the store holds, in one statement:
   * - `b`, the batch less (incremental runs) the records stored live with the same modification
   *   time: read again with nothing changed (a Salesforce run reads what lies within its cursor
   *   lag again, a HubSpot window starts on the last run's last record). The intake would do
   *   nothing with them, at a cost, and the run's count would say they changed;
   * - `back`, the records stored as deleted that the CRM hands over live again: undeleted from the
   *   Salesforce recycle bin, restored in HubSpot (same id, same values, a new modification time).
   */
  private async againstStore(system: CrmSystem, objectType: string, b: PulledBatch, mode: SyncMode): Promise<{ b: PulledBatch; back: string[] }> {
    const live = b.records.filter((r) => !r.deleted && !r.mergedInto);
    if (live.length === 0) return { b, back: [] };
    const stored = new Map((await repo.storedStates(this.ds, system, objectType, live.map((r) => r.externalId))).map((s) => [s.external_id, s]));
    const unchanged = (r: CrmRecordInput): boolean => {
      const s = stored.get(r.externalId);
      const at = storableTime(r.modstamp);
      return mode === 'incremental' && s !== undefined && !s.deleted && at !== null && s.modstamp?.getTime() === at;
    };
    const records = b.records.filter((r) => r.deleted || r.mergedInto || !unchanged(r));
    const back = live.filter((r) => stored.get(r.externalId)?.deleted).map((r) => r.externalId);
    return { b: records.length === b.records.length ? b : { ...b, records }, back };
  }

  /** What the store holds for records the vendor reports deleted (it sends ids only). */
  private async known(system: CrmSystem, objectType: string, ids: string[]): Promise<Map<string, CrmRecordInput>> {
    const rows = await repo.liveRecordsByExternalId(this.ds, system, objectType, ids);
    return new Map(
      rows.map((r) => {
        const person: CrmPerson = {};
        for (const k of PERSON_KEYS) if (r.person?.[k] !== undefined) (person as Record<string, unknown>)[k] = r.person[k];
        return [r.external_id, { externalId: r.external_id, ownerId: r.owner_id, payload: r.payload, modstamp: r.modstamp, person }];
      }),
    );
  }

  private async upsertCases(system: CrmSystem, cases: CrmCaseRow[]): Promise<void> {
    await repo.upsertCases(this.ds, system, cases);
  }

  private async restoreBudget(client: CrmClient): Promise<void> {
    const row = await repo.storedBudget(this.ds, client.system, client.budget.key);
    if (row?.budget_day) client.budget.restore(row.budget_day, row.budget_used);
  }

  /** Persists today's API usage and what deep links need (instance URL, portal id). */
  private async saveOrg(client: CrmClient): Promise<void> {
    const b = client.budget.snapshot();
    const c = client as CrmClient & { instanceUrl?: string | null; portal?: string | null };
    await repo.saveOrg(this.ds, {
      system: client.system,
      orgKey: b.key,
      instanceUrl: c.instanceUrl ?? null,
      portalId: c.portal ?? null,
      day: b.day,
      usedToday: b.usedToday,
      exhaustedUntil: b.exhaustedUntil,
    });
  }

  async state(system: CrmSystem, objectType: string): Promise<SyncStateRow | null> {
    return (await this.states(system, objectType))[0] ?? null;
  }

  /** Stored sync state per system and object (every object, or one). */
  async states(system?: CrmSystem, objectType?: string): Promise<SyncStateRow[]> {
    const rows = await repo.syncStates(this.ds, system ?? null, objectType ?? null);
    return rows.map((r) => ({
      system: r.system,
      objectType: r.object_type,
      status: r.status,
      mode: r.mode ?? null,
      cursorModstamp: r.cursor_modstamp ?? null,
      cursorId: r.cursor_id || null,
      deletedCheckedUntil: r.deleted_checked_until ?? null,
      lastRunStartedAt: r.last_run_started_at ?? null,
      lastRunFinishedAt: r.last_run_finished_at ?? null,
      lastSuccessAt: r.last_success_at ?? null,
      recordsLastRun: Number(r.records_last_run),
      deletedLastRun: Number(r.deleted_last_run),
      apiCallsLastRun: Number(r.api_calls_last_run),
      totalRecords: Number(r.total_records),
      lastError: r.last_error ?? null,
    }));
  }

  budgets(): (BudgetSnapshot & { system: CrmSystem })[] {
    return [...this.clients.values()].map((c) => ({ ...c.budget.snapshot(), system: c.system }));
  }
}

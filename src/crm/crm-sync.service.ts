import type { DataSource } from 'typeorm';
import type { IdentityService } from '../identity/identity.service';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import { TaskRunner, type TaskDeps } from '../shared/task-runner';
import type { CrmConfig } from './crm.config';
import { CrmBudgetExhausted, type BudgetSnapshot } from './crm-budget';
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
    void this.run(system, mode).catch((e: Error) => this.log.error({ err: e.message, system }, 'CRM sync run failed'));
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
      const [got] = (await qr.query('SELECT pg_try_advisory_lock($1) AS ok', [lockKey])) as { ok: boolean }[];
      if (!got?.ok) {
        this.log.info({ system: client.system }, 'another replica is syncing this CRM; skipping this run');
        return { system: client.system, mode, objects: [], complete: false };
      }
      try {
        return await this.runSystem(client, mode);
      } finally {
        await qr.query('SELECT pg_advisory_unlock($1)', [lockKey]);
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
          await this.ds.query(
            `INSERT INTO crm_sync_state (system, object_type, status, last_error, updated_at) VALUES ($1, $2, 'budget_exhausted', $3, now())
             ON CONFLICT (system, object_type) DO UPDATE SET status = 'budget_exhausted', last_error = $3, updated_at = now()`,
            [client.system, rest, r.error ?? null],
          );
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
    await this.ds.query(
      `INSERT INTO crm_sync_state (system, object_type, status, mode, last_run_started_at, records_last_run, deleted_last_run, updated_at)
       VALUES ($1, $2, 'running', $3, now(), 0, 0, now())
       ON CONFLICT (system, object_type) DO UPDATE SET status = 'running', mode = $3, last_run_started_at = now(), records_last_run = 0, deleted_last_run = 0, updated_at = now()`,
      [system, objectType, mode],
    );
    const r: ObjectRunReport = { objectType, records: 0, deleted: 0, apiCalls: 0, ms: 0, via: [], outcome: 'ok' };
    const persist = async (b: PulledBatch) => {
      const n = b.records.length + b.cases.length;
      const deleted = b.via === 'deleted' || b.via === 'archived' ? n : 0;
      if (b.records.length) await this.identity.ingestCrmRecords(system, objectType, b.records);
      if (b.cases.length) await this.upsertCases(system, b.cases);
      if (!r.via.includes(b.via)) r.via.push(b.via);
      r.records += n - deleted;
      r.deleted += deleted;
      await this.ds.query(
        `UPDATE crm_sync_state SET
           cursor_modstamp = coalesce($3::timestamptz, cursor_modstamp), cursor_id = CASE WHEN $3::timestamptz IS NULL THEN cursor_id ELSE $4 END,
           records_last_run = records_last_run + $5, deleted_last_run = deleted_last_run + $6, total_records = total_records + $5,
           api_calls_last_run = $7, updated_at = now()
         WHERE system = $1 AND object_type = $2`,
        [system, objectType, b.cursor?.modstamp ?? null, b.cursor?.id ?? null, n - deleted, deleted, client.budget.snapshot().usedToday - used0],
      );
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
      await this.ds.query(
        `UPDATE crm_sync_state SET status = 'ok', last_error = NULL, last_run_finished_at = now(), last_success_at = now(),
           deleted_checked_until = coalesce($3, deleted_checked_until), api_calls_last_run = $4, updated_at = now()
         WHERE system = $1 AND object_type = $2`,
        [system, objectType, res.deletedCheckedUntil, r.apiCalls],
      );
    } catch (e) {
      // What was fetched before the failure is kept, and the cursor moves past it.
      await flush().catch((f: Error) => this.log.error({ system, objectType, err: f.message }, 'could not store the records fetched before a failure'));
      r.apiCalls = client.budget.snapshot().usedToday - used0;
      r.outcome = e instanceof CrmBudgetExhausted ? 'budget_exhausted' : 'error';
      r.error = (e as Error).message;
      if (r.outcome === 'error') this.log.error({ system, objectType, err: r.error }, 'CRM sync of an object failed; its cursor stays where the last batch left it');
      await this.ds.query(
        `UPDATE crm_sync_state SET status = $3, last_error = $4, last_run_finished_at = now(), api_calls_last_run = $5, updated_at = now()
         WHERE system = $1 AND object_type = $2`,
        [system, objectType, r.outcome, r.error, r.apiCalls],
      );
    }
    r.ms = Date.now() - t0;
    this.log.info({ system, ...r }, 'CRM object synced');
    return r;
  }

  /** What the store holds for records the vendor reports deleted (it sends ids only). */
  private async known(system: CrmSystem, objectType: string, ids: string[]): Promise<Map<string, CrmRecordInput>> {
    const rows: { external_id: string; owner_id: string | null; payload: Record<string, unknown>; modstamp: Date | null; person: Record<string, unknown> | null }[] = await this.ds.query(
      `SELECT external_id, owner_id, payload, modstamp, person FROM crm_record
        WHERE system = $1 AND object_type = $2 AND external_id = ANY($3::text[]) AND deleted_at IS NULL`,
      [system, objectType, ids],
    );
    return new Map(
      rows.map((r) => {
        const person: CrmPerson = {};
        for (const k of PERSON_KEYS) if (r.person?.[k] !== undefined) (person as Record<string, unknown>)[k] = r.person[k];
        return [r.external_id, { externalId: r.external_id, ownerId: r.owner_id, payload: r.payload, modstamp: r.modstamp, person }];
      }),
    );
  }

  private async upsertCases(system: CrmSystem, cases: CrmCaseRow[]): Promise<void> {
    await this.ds.query(
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

  private async restoreBudget(client: CrmClient): Promise<void> {
    const [row]: { budget_day: string | null; budget_used: number }[] = await this.ds.query(
      `SELECT to_char(budget_day, 'YYYY-MM-DD') AS budget_day, budget_used FROM crm_org WHERE system = $1 AND org_key = $2`,
      [client.system, client.budget.key],
    );
    if (row?.budget_day) client.budget.restore(row.budget_day, row.budget_used);
  }

  /** Persists today's API usage and what deep links need (instance URL, portal id). */
  private async saveOrg(client: CrmClient): Promise<void> {
    const b = client.budget.snapshot();
    const c = client as CrmClient & { instanceUrl?: string | null; portal?: string | null };
    await this.ds.query(
      `INSERT INTO crm_org (system, org_key, instance_url, portal_id, budget_day, budget_used, exhausted_until, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, now())
       ON CONFLICT (system) DO UPDATE SET org_key = $2, instance_url = coalesce($3, crm_org.instance_url), portal_id = coalesce($4, crm_org.portal_id),
         budget_day = $5, budget_used = CASE WHEN crm_org.budget_day = $5::date AND crm_org.org_key = $2 THEN greatest(crm_org.budget_used, $6) ELSE $6 END,
         exhausted_until = $7, updated_at = now()`,
      [client.system, b.key, c.instanceUrl ?? null, c.portal ?? null, b.day, b.usedToday, b.exhaustedUntil],
    );
  }

  async state(system: CrmSystem, objectType: string): Promise<SyncStateRow | null> {
    return (await this.states(system, objectType))[0] ?? null;
  }

  /** Stored sync state per system and object (every object, or one). */
  async states(system?: CrmSystem, objectType?: string): Promise<SyncStateRow[]> {
    const rows: Record<string, unknown>[] = await this.ds.query(
      `SELECT * FROM crm_sync_state WHERE ($1::text IS NULL OR system = $1) AND ($2::text IS NULL OR object_type = $2) ORDER BY system, object_type`,
      [system ?? null, objectType ?? null],
    );
    return rows.map((r) => ({
      system: r.system as CrmSystem,
      objectType: r.object_type as string,
      status: r.status as SyncStateRow['status'],
      mode: (r.mode as SyncMode | null) ?? null,
      cursorModstamp: (r.cursor_modstamp as Date | null) ?? null,
      cursorId: (r.cursor_id as string | null) || null,
      deletedCheckedUntil: (r.deleted_checked_until as Date | null) ?? null,
      lastRunStartedAt: (r.last_run_started_at as Date | null) ?? null,
      lastRunFinishedAt: (r.last_run_finished_at as Date | null) ?? null,
      lastSuccessAt: (r.last_success_at as Date | null) ?? null,
      recordsLastRun: Number(r.records_last_run),
      deletedLastRun: Number(r.deleted_last_run),
      apiCallsLastRun: Number(r.api_calls_last_run),
      totalRecords: Number(r.total_records),
      lastError: (r.last_error as string | null) ?? null,
    }));
  }

  budgets(): (BudgetSnapshot & { system: CrmSystem })[] {
    return [...this.clients.values()].map((c) => ({ ...c.budget.snapshot(), system: c.system }));
  }
}

import { parse as parseCsv } from 'csv-parse/sync';
import { importPKCS8, SignJWT } from 'jose';
import { Connection } from 'jsforce';
import type { HttpRequest } from 'jsforce/lib/types';
import type { CrmRecordInput } from '../crm.port';
import type { Logger } from '../../shared/logger';
import type { CrmConfig, SalesforceConfig } from '../crm.config';
import { budgetFor, CrmBudgetExhausted, CrmCallFailed, sleep, type CrmBudget } from '../crm-budget';
import { crmErrorText, withoutCustomerData } from '../crm-error-text';
import { crmRecordUrl } from '../crm-links';
import { storableTime, usableExternalId } from '../crm-record-guard';
import { outcomesBeforeStop, type CaseInput, type CaseRef, type CrmCaseRow, type CrmClient, type PullOptions, type PullResult, type SetupReport, type SyncCursor, type WriteBackOutcome, type WriteBackUpdate } from '../crm.port';
import { BudgetedTransport } from './salesforce-transport';
import { field, mapSalesforceCase, mapSalesforceRecord, salesforceCase, salesforceWriteBack, SF_CASE_KEY_FIELD, selectFields, sfDateTime, soqlDateTime, soqlString, type SfRow } from './salesforce.mapper';

const COLLECTION_MAX = 200;
const BULK_PAGE = 10_000;
// Per-record errors a retry cannot fix: the record is gone or the field mapping is wrong.
const PERMANENT = new Set(['ENTITY_IS_DELETED', 'INVALID_CROSS_REFERENCE_KEY', 'INVALID_FIELD', 'INVALID_FIELD_FOR_INSERT_UPDATE', 'MALFORMED_ID', 'INVALID_ID_FIELD', 'INVALID_TYPE']);
const DAY = 86_400_000;

interface QueryPage {
  records: SfRow[];
  done: boolean;
  nextRecordsUrl?: string;
  totalSize: number;
}

/**
 * The Salesforce adapter (jsforce 3): JWT bearer, refresh-token or username-password auth with a
 * new session on INVALID_SESSION_ID; incremental pulls on the tie-safe cursor (SystemModstamp, Id)
 * through query/queryMore, or through Bulk API 2.0 query jobs above the bulk threshold (result pages
 * fetched and parsed here: jsforce's own reader mis-parses multi-page results); deletions through
 * getDeleted (queryAll beyond its 30-day reach); write-back through sObject Collections.
 */
export class SalesforceCrmClient implements CrmClient {
  readonly system = 'salesforce' as const;
  readonly objectTypes: readonly string[];
  readonly writeBackObjects: readonly string[];
  readonly budget: CrmBudget;
  readonly transport: BudgetedTransport;
  private conn: Connection | null = null;
  private connecting: Promise<Connection> | null = null;

  constructor(
    private readonly sf: SalesforceConfig,
    private readonly crm: Pick<CrmConfig, 'bulkThreshold' | 'maxRetries' | 'retryBaseMs' | 'maxRetryWaitMs'> & Partial<Pick<CrmConfig, 'requestTimeoutMs' | 'maxResponseBytes'>>,
    private readonly log: Logger,
    opts: { now?: () => number; bulkPollMs?: number } = {},
  ) {
    // Organisations first, so a Contact's Account is known when the Contact arrives.
    const order = ['Account', 'Contact', 'Lead', 'Case'];
    this.objectTypes = [...sf.objects].sort((a, b) => order.indexOf(a) - order.indexOf(b));
    this.writeBackObjects = sf.writeBackObjects.filter((o) => sf.objects.includes(o));
    this.budget = budgetFor(`salesforce:${sf.loginUrl}:${sf.username ?? sf.jwtSubject ?? sf.clientId}`, sf.budget, opts.now);
    this.transport = new BudgetedTransport(this.budget, { maxRetries: crm.maxRetries, baseMs: crm.retryBaseMs, maxWaitMs: crm.maxRetryWaitMs }, log, crm.requestTimeoutMs, sf.proxy, opts.now, crm.maxResponseBytes);
    this.bulkPollMs = opts.bulkPollMs ?? 250;
  }

  private readonly bulkPollMs: number;

  /** The instance URL once authenticated (for deep links). */
  get instanceUrl(): string | null {
    return this.conn?.instanceUrl ?? this.sf.instanceUrl;
  }

  recordUrl(objectType: string, externalId: string): string | null {
    return crmRecordUrl('salesforce', objectType, externalId, { instanceUrl: this.instanceUrl });
  }

  /** An authenticated connection; one login shared by every concurrent caller. */
  async connection(): Promise<Connection> {
    if (this.conn) return this.conn;
    this.connecting ??= this.connect().finally(() => (this.connecting = null));
    this.conn = await this.connecting;
    return this.conn;
  }

  private async connect(): Promise<Connection> {
    const sf = this.sf;
    const oauth2 = sf.clientId ? { loginUrl: sf.loginUrl, clientId: sf.clientId, clientSecret: sf.clientSecret ?? undefined } : undefined;
    const conn = new Connection({
      loginUrl: sf.loginUrl,
      instanceUrl: sf.instanceUrl ?? undefined,
      version: sf.apiVersion,
      oauth2,
      refreshToken: sf.refreshToken ?? undefined,
      // JWT has no refresh token: a new assertion is the new session.
      refreshFn: sf.auth === 'jwt' ? (c, cb) => void this.jwtSession(c).then((t) => cb(undefined, t), (e: Error) => cb(e)) : undefined,
    });
    conn._transport = this.transport;
    conn.oauth2._transport = this.transport;
    try {
      if (sf.auth === 'password') {
        // jsforce renews a password session by logging in again on INVALID_SESSION_ID.
        await conn.login(sf.username!, sf.password!);
      } else if (sf.auth === 'jwt') {
        await this.jwtSession(conn);
      } else {
        await conn._refreshDelegate!.refresh(Date.now());
      }
    } catch (e) {
      if (e instanceof CrmBudgetExhausted) throw e;
      // jsforce reports only the OAuth error description ("invalid assertion"): operators reading
      // crmSyncStatus.lastError need to see that the login failed, with which flow and OAuth code.
      const err = e as Error;
      const code = err.name && err.name !== 'Error' ? `${err.name}: ` : '';
      throw new CrmCallFailed(crmErrorText(`Salesforce login (${sf.auth}) failed: ${code}${err.message}`), null);
    }
    this.log.info({ instanceUrl: conn.instanceUrl, auth: sf.auth }, 'salesforce session established');
    return conn;
  }

  private async jwtSession(conn: Connection): Promise<string> {
    const sf = this.sf;
    const key = await importPKCS8(sf.jwtPrivateKey!, 'RS256');
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256' })
      .setIssuer(sf.clientId!)
      .setSubject(sf.jwtSubject!)
      .setAudience(sf.jwtAudience)
      .setExpirationTime('3m')
      .sign(key);
    const res = await conn.oauth2.requestToken({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion });
    conn._establish({ instanceUrl: res.instance_url, accessToken: res.access_token });
    return res.access_token;
  }

  async close(): Promise<void> {
    this.conn = null;
  }

  // ---- pull -----------------------------------------------------------------------------------

  async pull(objectType: string, opts: PullOptions): Promise<PullResult> {
    // jsforce's errors carry Salesforce's error text, which may quote records
    return this.pullObject(objectType, opts).catch((e: unknown) => Promise.reject(withoutCustomerData(e)));
  }

  private async pullObject(objectType: string, opts: PullOptions): Promise<PullResult> {
    const conn = await this.connection();
    const fields = selectFields(objectType, this.sf.identityFields);
    const cursor = opts.mode === 'full' ? null : opts.cursor;
    // Deletions are asked up to the moment the change query starts: later ones come next run.
    const startedAt = new Date(Date.now());
    const where = cursor
      ? ` WHERE SystemModstamp > ${soqlDateTime(cursor.modstamp)} OR (SystemModstamp = ${soqlDateTime(cursor.modstamp)} AND Id > ${soqlString(cursor.id)})`
      : '';
    const soql = `SELECT ${fields.join(', ')} FROM ${objectType}${where} ORDER BY SystemModstamp ASC, Id ASC`;
    const count = (await conn.query(`SELECT COUNT() FROM ${objectType}${where}`)).totalSize;
    if (typeof count !== 'number') throw new CrmCallFailed(`Salesforce answered the COUNT() query on ${objectType} with something that is not a query result`, null);
    // The cursor stays EARSHOT_SF_CURSOR_LAG_MS behind this run's start. SystemModstamp is the time
    // a record was saved, not the time its transaction committed: a record of a transaction still
    // open while this query runs (batch Apex, a long data load) shows up later with a time before
    // records read now, and a cursor past them skipped it for good (Salesforce's getUpdated says
    // as much: latestDateCovered is "the start time of that long-running transaction"). Records
    // newer than that are read now and again next run; the sync hands unchanged ones to no one.
    // A SystemModstamp in the future (a broken or lying org: "2099") never becomes the cursor
    // either: it would skip every real change until that date; such records come again each run.
    const upper = startedAt.getTime() - this.sf.cursorLagMs;
    if (count > this.crm.bulkThreshold) await this.pullBulk(conn, objectType, soql, opts, 'query', upper);
    else if (count > 0) await this.pullRest(conn, objectType, soql, opts, upper);
    const deletedCheckedUntil = opts.deletedSince ? await this.pullDeleted(conn, objectType, opts, startedAt) : startedAt;
    return { deletedCheckedUntil };
  }

  private async emit(objectType: string, rows: SfRow[], via: 'rest' | 'bulk', opts: PullOptions, upper: number): Promise<void> {
    if (rows.length === 0) return;
    // The last row (in cursor order) with a usable id and a modstamp no later than `upper` (the
    // run's start less the cursor lag).
    let cursor: SyncCursor | null = null;
    for (let i = rows.length - 1; i >= 0 && !cursor; i--) {
      const modstamp = sfDateTime(rows[i]!.SystemModstamp);
      const id = usableExternalId(field(rows[i]!, 'Id'));
      const at = storableTime(modstamp);
      if (modstamp && id && at !== null && at <= upper) cursor = { modstamp, id };
    }
    if (objectType === 'Case') await opts.sink({ objectType, records: [], cases: rows.map((r) => mapSalesforceCase(r)), cursor, via });
    else await opts.sink({ objectType, records: rows.map((r) => mapSalesforceRecord(objectType, r, this.sf.identityFields)), cases: [], cursor, via });
  }

  private async pullRest(conn: Connection, objectType: string, soql: string, opts: PullOptions, upper: number): Promise<void> {
    const headers = { 'Sforce-Query-Options': `batchSize=${this.sf.queryBatchSize}` };
    let page = queryPage(await conn.query<SfRow>(soql, { autoFetch: false, headers } as never), objectType);
    const seen = new Set<string>();
    for (;;) {
      await this.emit(objectType, page.records.map(stripAttributes), 'rest', opts, upper);
      if (page.done || !page.nextRecordsUrl) return;
      page = queryPage(await conn.queryMore<SfRow>(nextPage(page.nextRecordsUrl, seen, objectType), { headers } as never), objectType);
    }
  }

  /** Bulk API 2.0 query job; result pages fetched here with Sforce-Locator paging. */
  private async pullBulk(conn: Connection, objectType: string, soql: string, opts: PullOptions, operation: 'query' | 'queryAll', upper: number): Promise<void> {
    const base = `/services/data/v${this.sf.apiVersion}/jobs/query`;
    const job = await conn.request<{ id: string; state: string }>({
      method: 'POST',
      url: base,
      body: JSON.stringify({ operation, query: soql, contentType: 'CSV', columnDelimiter: 'COMMA', lineEnding: 'LF' }),
      headers: { 'Content-Type': 'application/json' },
    });
    let state = job.state;
    for (let wait = this.bulkPollMs; state !== 'JobComplete'; wait = Math.min(wait * 2, 10_000)) {
      if (state === 'Failed' || state === 'Aborted') throw new CrmCallFailed(`Bulk API 2.0 job ${job.id} ended ${state}`, null);
      const info = await conn.request<{ state: string; errorMessage?: string }>({ method: 'GET', url: `${base}/${job.id}` });
      state = info.state;
      if (state !== 'JobComplete' && state !== 'Failed' && state !== 'Aborted') await sleep(wait);
    }
    let locator: string | null = null;
    const seenLocators = new Set<string>();
    do {
      const qs = new URLSearchParams({ maxRecords: String(BULK_PAGE), ...(locator ? { locator } : {}) });
      const res = await this.rawGet(conn, `${base}/${job.id}/results?${qs}`);
      const rows = parseCsv(res.body, { columns: true, skip_empty_lines: true }) as SfRow[];
      await this.emit(objectType, rows, 'bulk', opts, upper);
      const next = res.headers['sforce-locator'];
      locator = next && next !== 'null' ? next : null;
      if (locator && seenLocators.has(locator)) throw new CrmCallFailed(`Salesforce Bulk API 2.0 job ${job.id} sent the result locator ${JSON.stringify(locator.slice(0, 40))} twice; stopping instead of reading the same pages forever`, null);
      if (locator) seenLocators.add(locator);
    } while (locator);
    await conn.request({ method: 'DELETE', url: `${base}/${job.id}` }).catch((e: Error) => this.log.warn({ err: e.message, job: job.id }, 'could not delete a finished bulk job'));
  }

  /**
   * A GET whose headers matter (CSV pages): through the budgeted transport, renewing the session on
   * 401 once. One request object for both tries, as jsforce resends: the transport's limit of one
   * renewal per request sees them as one request.
   */
  private async rawGet(conn: Connection, path: string): Promise<{ body: string; headers: Record<string, string> }> {
    const req: HttpRequest = { method: 'GET', url: `${conn.instanceUrl}${path}` };
    for (let renewed = false; ; renewed = true) {
      const sentAt = Date.now();
      req.headers = { Authorization: `Bearer ${conn.accessToken}`, Accept: 'text/csv' };
      const res = await this.transport.httpRequest(req);
      if (res.statusCode === 401 && !renewed && conn._refreshDelegate) {
        await conn._refreshDelegate.refresh(sentAt);
        continue;
      }
      if (res.statusCode >= 400) throw new CrmCallFailed(`Salesforce GET ${path} failed with ${res.statusCode}`, res.statusCode, res.body);
      return { body: res.body, headers: res.headers };
    }
  }

  /** getDeleted for the last 30 days (whole minutes, as Salesforce answers); queryAll beyond that. */
  private async pullDeleted(conn: Connection, objectType: string, opts: PullOptions, until: Date): Promise<Date> {
    const since = opts.deletedSince!;
    let ids: string[];
    let covered = until;
    /** loser → master of the deleted records a merge removed; null: not read yet (getDeleted gives no MasterRecordId) */
    let masters: Map<string, string> | null = null;
    if (until.getTime() - since.getTime() < 29 * DAY) {
      // A minute of overlap: getDeleted covers whole minutes, and repeats are idempotent.
      const start = new Date(since.getTime() - 60_000);
      const end = new Date(Math.max(until.getTime(), start.getTime() + 60_000));
      const res = await conn.sobject(objectType).deleted(start, end);
      ids = (res.deletedRecords ?? []).map((d) => d.id);
      covered = new Date(Math.min(until.getTime(), Date.parse(sfDateTime(res.latestDateCovered) ?? until.toISOString())));
      if (covered.getTime() < since.getTime()) covered = since;
    } else {
      const merges = objectType !== 'Case';
      const rows = await this.queryAllRows(conn, objectType, `SELECT Id${merges ? ', MasterRecordId' : ''} FROM ${objectType} WHERE IsDeleted = true AND SystemModstamp >= ${soqlDateTime(since.toISOString())}`);
      ids = rows.map((r) => String(r.Id));
      if (merges) masters = mastersOf(rows);
    }
    // Ids go into a SQL parameter: one with a NUL would fail every run's deletion check.
    ids = ids.filter((id) => usableExternalId(id) !== null);
    for (let i = 0; i < ids.length; i += 1000) {
      const chunk = ids.slice(i, i + 1000);
      if (objectType === 'Case') {
        const cases: CrmCaseRow[] = chunk.map((id) => ({ externalId: id, status: null, isClosed: true, contactId: null, accountId: null, modstamp: null, deleted: true }));
        await opts.sink({ objectType, records: [], cases, cursor: null, via: 'deleted' });
        continue;
      }
      const known = await opts.known(chunk);
      // A merge deletes its losers: which master each known one went into (queryAll), so the
      // intake joins their customers instead of leaving the person split in two.
      const found = masters ?? (known.size ? await this.mastersOf(conn, objectType, [...known.keys()]) : new Map<string, string>());
      const records: CrmRecordInput[] = [...known.values()].map((r) => ({ ...r, deleted: true, ...(found.has(r.externalId) ? { mergedInto: found.get(r.externalId)! } : {}) }));
      if (records.length) await opts.sink({ objectType, records, cases: [], cursor: null, via: 'deleted' });
    }
    return covered;
  }

  /** Every row of a queryAll (deleted records included), page after page. */
  private async queryAllRows(conn: Connection, objectType: string, soql: string): Promise<SfRow[]> {
    let page = queryPage(await conn.query<SfRow>(soql, { scanAll: true } as never), objectType);
    const rows = [...page.records];
    const seen = new Set<string>();
    while (!page.done && page.nextRecordsUrl) {
      page = queryPage(await conn.queryMore<SfRow>(nextPage(page.nextRecordsUrl, seen, objectType)), objectType);
      rows.push(...page.records);
    }
    return rows;
  }

  /** Loser → master of deleted records a merge removed (queryAll on MasterRecordId), 200 ids a query. */
  private async mastersOf(conn: Connection, objectType: string, ids: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (let i = 0; i < ids.length; i += 200) {
      const list = ids.slice(i, i + 200).map(soqlString).join(', ');
      for (const [loser, master] of mastersOf(await this.queryAllRows(conn, objectType, `SELECT Id, MasterRecordId FROM ${objectType} WHERE IsDeleted = true AND Id IN (${list})`))) out.set(loser, master);
    }
    return out;
  }

  // ---- write-back -------------------------------------------------------------------------------

  async writeBack(objectType: string, updates: WriteBackUpdate[]): Promise<WriteBackOutcome[]> {
    const conn = await this.connection();
    const out: WriteBackOutcome[] = [];
    // Chunked here rather than with allowRecursive: one failed call then fails only its own 200.
    for (let i = 0; i < updates.length; i += COLLECTION_MAX) {
      const chunk = updates.slice(i, i + COLLECTION_MAX);
      const records = chunk.map((u) => salesforceWriteBack(objectType, u.externalId, u.values, this.sf.writeBackFields));
      try {
        const res = (await conn.sobject(objectType).update(records as never, { allOrNone: false })) as unknown as { id?: string; success: boolean; errors: { statusCode?: string; errorCode?: string; message: string }[] }[];
        res.forEach((r, k) => {
          const err = r.errors?.[0];
          const code = err?.statusCode ?? err?.errorCode ?? '';
          // the message may quote the record (an Apex trigger's addError, "invalid email address: …")
          out.push(r.success ? { externalId: chunk[k]!.externalId, ok: true } : { externalId: chunk[k]!.externalId, ok: false, error: crmErrorText(`${code}: ${err?.message ?? 'failed'}`), retriable: !PERMANENT.has(code), scope: 'record' });
        });
      } catch (e) {
        if (e instanceof CrmBudgetExhausted) {
          // The collections before this one went through: their outcomes go with the error.
          outcomesBeforeStop.set(e, out);
          throw e;
        }
        const error = withoutCustomerData(e as Error).message;
        for (const u of chunk) out.push({ externalId: u.externalId, ok: false, error, retriable: true, scope: 'call' });
      }
    }
    return out;
  }

  /** An upsert on the Case external-id field through sObject Collections: a retry finds its Case. */
  async createCase(input: CaseInput): Promise<CaseRef> {
    // jsforce's errors carry Salesforce's error text, which may quote the Case (the customer's words)
    return this.upsertCase(input).catch((e: unknown) => Promise.reject(withoutCustomerData(e)));
  }

  private async upsertCase(input: CaseInput): Promise<CaseRef> {
    const conn = await this.connection();
    const res = await conn.request<{ id?: string; success: boolean; created?: boolean; errors: { statusCode?: string; message: string }[] }[]>({
      method: 'PATCH',
      url: `/services/data/v${this.sf.apiVersion}/composite/sobjects/Case/${SF_CASE_KEY_FIELD}`,
      body: JSON.stringify({ allOrNone: true, records: [salesforceCase(input)] }),
      headers: { 'Content-Type': 'application/json' },
    });
    const r = res[0];
    if (!r?.success || !r.id) {
      const err = r?.errors?.[0];
      throw new CrmCallFailed(crmErrorText(`Salesforce Case upsert failed: ${err?.statusCode ?? ''} ${err?.message ?? 'no result'}`.trim()), 400, r);
    }
    return { externalId: r.id, url: this.recordUrl('Case', r.id), created: r.created !== false };
  }

  async setup(): Promise<SetupReport> {
    const conn = await this.connection();
    const report: SetupReport = { created: [], existing: [], manual: [] };
    for (const obj of this.writeBackObjects) {
      const d = await conn.sobject(obj).describe();
      const names = new Set(d.fields.map((f) => f.name));
      for (const api of Object.values(this.sf.writeBackFields)) {
        if (names.has(api)) report.existing.push(`${obj}.${api}`);
        else report.manual.push(`${obj}.${api}: deploy docker/salesforce (sf project deploy start --source-dir docker/salesforce/force-app)`);
      }
    }
    return report;
  }
}

/** Loser → master of the rows that carry a usable MasterRecordId (a merge's losers). */
function mastersOf(rows: SfRow[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of rows) {
    const id = usableExternalId(field(r, 'Id'));
    const master = usableExternalId(field(r, 'MasterRecordId'));
    if (id && master && master !== id) out.set(id, master);
  }
  return out;
}

function stripAttributes(r: SfRow): SfRow {
  const { attributes: _a, ...rest } = r;
  return rest;
}

/** A query or queryMore answer checked for shape: an HTML page answered with 200 is not "no records". */
function queryPage(res: unknown, objectType: string): QueryPage {
  const page = res as Partial<QueryPage> | null;
  if (!page || typeof page !== 'object' || !Array.isArray(page.records)) {
    throw new CrmCallFailed(`Salesforce answered a query on ${objectType} with something that is not a query result`, null);
  }
  return { ...(page as QueryPage), records: page.records.filter((r) => r !== null && typeof r === 'object') };
}

/** The next page's URL, unless the org sent it before in this walk (a paging loop would never end). */
function nextPage(url: string, seen: Set<string>, objectType: string): string {
  if (seen.has(url)) throw new CrmCallFailed(`Salesforce sent the query page ${JSON.stringify(url.slice(0, 120))} of ${objectType} twice; stopping instead of reading the same pages forever`, null);
  seen.add(url);
  return url;
}

import type http from 'node:http';
import { Client } from '@hubspot/api-client';
import type { Logger } from '../../shared/logger';
import type { CrmConfig, HubSpotConfig } from '../crm.config';
import { budgetFor, CrmBudgetExhausted, CrmCallFailed, retryAfterMs, retryDelay, sleep, waitsInPlace, type CrmBudget, type RetryPolicy } from '../crm-budget';
import { crmErrorText, withoutCustomerData } from '../crm-error-text';
import { crmRecordUrl } from '../crm-links';
import { NO_PROXY, proxiedNodeAgent, type ProxySettings } from '../crm-proxy';
import { capNodeReply, DEFAULT_CRM_MAX_RESPONSE_BYTES, responseTooLarge } from '../crm-response-cap';
import { usableExternalId } from '../crm-record-guard';
import { outcomesBeforeStop, type CaseInput, type CaseRef, type CrmClient, type CrmRecordInput, type PullOptions, type PullResult, type SetupReport, type SyncCursor, type WriteBackOutcome, type WriteBackUpdate } from '../crm.port';
import { HS_TICKET_KEY_PROPERTY, hubspotMergedIds, hubspotModstamp, hubspotPropertyDefinitions, hubspotTicket, hubspotTicketKeyDefinition, hubspotWriteBack, LAST_MODIFIED, mapHubSpotObject, properties, type HsObjectJson, type HsObjectType } from './hubspot.mapper';

const SEARCH_PAGE = 200;
const SEARCH_CAP = 10_000;
const BATCH_MAX = 100;
const LIST_PAGE = 100;

interface HsError {
  code: number;
  body: unknown;
  headers: Record<string, string>;
}

function asHsError(e: unknown): HsError | null {
  const x = e as Partial<HsError> & { response?: unknown };
  if (typeof x?.code !== 'number') return null;
  let body = x.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      // keep the text
    }
  }
  return { code: x.code, body, headers: x.headers ?? {} };
}

/**
 * The HubSpot adapter (@hubspot/api-client 14): private-app token or OAuth with refresh (also when
 * a token expires mid-sync); contacts and companies pulled through the search API on their
 * last-modified property in windows that restart below the 10,000-result cap (and, when more
 * than 10,000 records share one timestamp, by object id within it); archived records through the
 * list API; contact→company associations through the v4 batch API; write-back through batch update.
 *
 * The client's own 429 retry only fires for some bodies and is process-wide, so it stays off
 * (numberOfApiCallRetries 0) and every call goes through `call()`, which owns the policy.
 */
export class HubSpotCrmClient implements CrmClient {
  readonly system = 'hubspot' as const;
  readonly objectTypes: readonly HsObjectType[];
  readonly writeBackObjects: readonly string[];
  readonly budget: CrmBudget;
  readonly client: Client;
  private readonly policy: RetryPolicy;
  private tokenExpiresAt = 0;
  private refreshing: Promise<void> | null = null;
  private portalId: string | null;
  private ticketKey: Promise<void> | null = null;
  /** calls sent (OAuth token calls included), for reports */
  calls = 0;

  constructor(
    private readonly hs: HubSpotConfig,
    crm: Pick<CrmConfig, 'maxRetries' | 'retryBaseMs' | 'maxRetryWaitMs'> & Partial<Pick<CrmConfig, 'requestTimeoutMs' | 'maxResponseBytes'>>,
    private readonly log: Logger,
    private readonly opts: { now?: () => number; searchLagMs?: number } = {},
  ) {
    const order: HsObjectType[] = ['companies', 'contacts'];
    this.objectTypes = [...hs.objects].sort((a, b) => order.indexOf(a) - order.indexOf(b));
    this.writeBackObjects = this.objectTypes;
    this.budget = budgetFor(`hubspot:${hs.basePath}:${hs.portalId ?? hs.clientId ?? hs.accessToken?.slice(-8)}`, hs.budget, opts.now);
    this.policy = { maxRetries: crm.maxRetries, baseMs: crm.retryBaseMs, maxWaitMs: crm.maxRetryWaitMs };
    // Through an agent: every call has a deadline on its whole reply and a cap on its body, no
    // redirect is followed, and every call (token calls included: all go to basePath) takes the
    // configured proxy or goes direct.
    this.client = new Client({ accessToken: hs.accessToken ?? undefined, basePath: hs.basePath, numberOfApiCallRetries: 0, httpAgent: deadlineAgent(hs.basePath, crm.requestTimeoutMs ?? 120_000, crm.maxResponseBytes ?? DEFAULT_CRM_MAX_RESPONSE_BYTES, hs.proxy ?? NO_PROXY) });
    this.portalId = hs.portalId;
  }

  recordUrl(objectType: string, externalId: string): string | null {
    return crmRecordUrl('hubspot', objectType, externalId, { portalId: this.portalId, appUrl: this.hs.appUrl });
  }

  get portal(): string | null {
    return this.portalId;
  }

  async close(): Promise<void> {}

  private async ensureToken(force = false): Promise<void> {
    if (this.hs.auth !== 'oauth') return;
    if (!force && Date.now() < this.tokenExpiresAt - 60_000) return;
    this.refreshing ??= (async () => {
      const t = await this.client.oauth.tokensApi.create('refresh_token', undefined, undefined, this.hs.clientId!, this.hs.clientSecret!, this.hs.refreshToken!);
      this.calls++;
      this.client.setAccessToken(t.accessToken);
      this.tokenExpiresAt = Date.now() + t.expiresIn * 1000;
      if (!this.portalId) {
        const info = await this.client.oauth.accessTokensApi.get(t.accessToken).catch(() => null);
        if (info?.hubId) this.portalId = String(info.hubId);
      }
      this.log.info({ expiresIn: t.expiresIn }, 'hubspot access token refreshed');
    })().finally(() => (this.refreshing = null));
    await this.refreshing;
  }

  /**
   * One API call under the budget and the retry policy: 429 waits for Retry-After (or backs
   * off) and pauses every caller of the portal; a DAILY 429 marks the budget spent; 401 renews
   * an OAuth token once; 5xx and network errors back off.
   */
  async call<T>(what: string, fn: () => Promise<T>, opts: { search?: boolean } = {}): Promise<T> {
    let renewed = false;
    for (let attempt = 0; ; attempt++) {
      await this.ensureToken();
      await this.budget.acquire(opts);
      this.calls++;
      try {
        return await fn();
      } catch (e) {
        const err = asHsError(e);
        const status = err?.code ?? null;
        const body = (err?.body ?? {}) as { policyName?: string; category?: string; message?: string };
        if (status === 401 && this.hs.auth === 'oauth' && !renewed) {
          renewed = true;
          attempt--;
          await this.ensureToken(true);
          continue;
        }
        if (status === 429 && body.policyName === 'DAILY') throw this.budget.markExhausted();
        const transient = status === 429 || (status !== null && status >= 500) || (status === null && isNetworkError(e));
        if (!transient) {
          // HubSpot's message may quote the record ("Property values were not valid: [{…jane@…}]")
          if (status !== null) throw new CrmCallFailed(`HubSpot ${what} failed with ${status}: ${crmErrorText(String(body.message ?? ''))}`.trim(), status, err?.body);
          throw withoutCustomerData(e);
        }
        const retryAfter = err?.headers?.['retry-after'] ?? err?.headers?.['Retry-After'];
        const now = this.opts.now?.() ?? Date.now();
        const asked = retryAfterMs(retryAfter, now);
        // A Retry-After of the limit a run waits in place or longer, or one that would outlive the
        // write-back's lease: no call to the portal (from any caller) before it passes; the caller
        // stops and comes back then (before, the call failed and the write-back's queue sent it
        // again a second later, and the sync called on; one of exactly the limit was slept through).
        if (asked !== null && !waitsInPlace(asked, this.policy.maxWaitMs, now)) {
          const deferred = this.budget.defer(asked, `HubSpot answered ${what} with ${status} and Retry-After ${Math.round(asked / 1000)} s`);
          this.log.warn({ status, what, retryAfterS: Math.round(asked / 1000), until: deferred.until.toISOString() }, 'HubSpot asked to wait (Retry-After): no call to this portal until then');
          throw deferred;
        }
        // a network error is named by its own message ("no complete reply within 120000 ms")
        if (attempt >= this.policy.maxRetries) throw new CrmCallFailed(`HubSpot ${what} failed with ${status ?? `a network error (${(e as Error).message})`} after ${attempt + 1} attempts`, status, err?.body);
        let wait = retryDelay(this.policy, attempt, retryAfter);
        // The 10 s window: without Retry-After, waiting for its end is the shortest safe wait.
        if (!retryAfter && status === 429 && body.policyName === 'TEN_SECONDLY_ROLLING') wait = Math.max(wait, Math.min(10_000, this.policy.baseMs * 4));
        if (!waitsInPlace(wait, this.policy.maxWaitMs, now)) throw new CrmCallFailed(`HubSpot backoff of ${Math.round(wait / 1000)} s is longer than this run waits`, status, err?.body);
        // A Retry-After holds back every caller of the portal, whatever the status (a 503 too).
        if (status === 429 || asked !== null) this.budget.pause(wait);
        this.log.debug({ status, wait, attempt, what }, 'hubspot call throttled or failed; retrying');
        await sleep(wait);
      }
    }
  }

  private api(type: HsObjectType) {
    return type === 'contacts' ? this.client.crm.contacts : this.client.crm.companies;
  }

  // ---- pull -----------------------------------------------------------------------------------

  async pull(objectType: string, opts: PullOptions): Promise<PullResult> {
    // errors of the client library (a body it could not read) or of the sink may quote records
    return this.pullObject(objectType as HsObjectType, opts).catch((e: unknown) => Promise.reject(withoutCustomerData(e)));
  }

  private async pullObject(type: HsObjectType, opts: PullOptions): Promise<PullResult> {
    const startedAt = new Date(Date.now());
    await this.pullChanges(type, opts, startedAt.getTime() - (this.opts.searchLagMs ?? 0));
    const deletedCheckedUntil = opts.deletedSince ? await this.pullArchived(type, opts, startedAt) : startedAt;
    return { deletedCheckedUntil };
  }

  private async search(type: HsObjectType, body: Record<string, unknown>) {
    const res = (await this.call(`search ${type}`, () => this.api(type).searchApi.doSearch(body as never), { search: true })) as { total: number; results: HsObjectJson[]; paging?: { next?: { after: string } } };
    if (!res || !Array.isArray(res.results)) throw new CrmCallFailed(`HubSpot answered a search on ${type} with something that is not a search result`, null);
    // an entry that is no object, or has no properties, is a record with none (not a crash of the batch)
    res.results = res.results.filter((o) => o && typeof o === 'object').map((o) => (o.properties && typeof o.properties === 'object' ? o : { ...o, properties: {} }));
    return res;
  }

  /**
   * Search windows on the last-modified property, [cursor, upper], sorted ascending. A window stops
   * before the 10,000-result cap and the next one starts at the last timestamp seen (records on it
   * come again: the intake is idempotent). When a whole window is one timestamp, that timestamp is
   * walked by object id instead. The cursor means "everything modified before it is synced".
   *
   * HubSpot's `after` is an offset into a result set searched anew for every page, and records only
   * ever leave a window during its walk (one modified, restored or merged into gets a time past its
   * end; one archived or merged away is gone): each that left before the offset moved every later
   * record up one place, and as many records at the start of the next page were never read, the
   * cursor passing them for good. So when a page's `total` is smaller than the one before, that page
   * is asked again from as many places back (records read twice are harmless), before its records
   * reach the sink and move the cursor.
   */
  private async pullChanges(type: HsObjectType, opts: PullOptions, upper: number): Promise<void> {
    const prop = LAST_MODIFIED[type];
    const props = properties(type, this.hs.identityFields);
    let from = opts.mode === 'full' || !opts.cursor ? 0 : Date.parse(opts.cursor.modstamp);
    if (from > upper) return;
    for (;;) {
      let after: string | undefined;
      let fetched = 0;
      let pages = 0;
      let lastTs = from;
      let allOnFrom = true;
      /** the result set's size when the page before was read */
      let total: number | undefined;
      const seen = new Set<string>();
      for (;;) {
        const res = await this.search(type, {
          filterGroups: [{ filters: [{ propertyName: prop, operator: 'GTE', value: String(from) }, { propertyName: prop, operator: 'LTE', value: String(upper) }] }],
          sorts: [{ propertyName: prop, direction: 'ASCENDING' }],
          properties: props,
          limit: SEARCH_PAGE,
          ...(after ? { after } : {}),
        });
        pages++;
        if (after && total !== undefined && typeof res.total === 'number' && res.total < total && /^\d+$/.test(after)) {
          // records left the window since the page before: ask again from as many places back
          after = String(Math.max(0, Number(after) - (total - res.total)));
          total = res.total;
          // a token may come again after the step back; the cap on a window's pages bounds the walk
          seen.clear();
          if (pages * SEARCH_PAGE + SEARCH_PAGE > SEARCH_CAP) break;
          continue;
        }
        if (typeof res.total === 'number') total = res.total;
        fetched += res.results.length;
        if (res.results.length) {
          // The latest timestamp of the page that is a time within the window: a record without
          // one (or with one past the window, which a correct search never returns) must not
          // become the cursor ("Invalid time value" failed every run; a future one skipped
          // every change until that date).
          let last = Number.NaN;
          for (const o of res.results) {
            const t = Date.parse(hubspotModstamp(type, o) ?? '');
            if (t >= from && t <= upper && !(t <= last)) last = t;
          }
          if (!Number.isNaN(last)) {
            lastTs = Math.max(lastTs, last);
            if (last !== from) allOnFrom = false;
          }
          await this.emitObjects(type, res.results, { modstamp: new Date(lastTs).toISOString(), id: '' }, opts);
        }
        after = res.paging?.next?.after;
        if (!after) return;
        if (seen.has(after)) throw new CrmCallFailed(`HubSpot search on ${type} sent the paging token ${JSON.stringify(String(after).slice(0, 40))} twice; stopping instead of reading the same pages forever`, null);
        seen.add(after);
        if (pages * SEARCH_PAGE + SEARCH_PAGE > SEARCH_CAP) break;
      }
      // The window hit the cap: restart from its last timestamp, or walk that one timestamp by id.
      if (allOnFrom && fetched >= SEARCH_CAP - SEARCH_PAGE) {
        await this.pullTie(type, from, props, opts);
        from += 1;
      } else if (lastTs > from) from = lastTs;
      else throw new CrmCallFailed(`HubSpot search on ${type} filled a window without moving past ${new Date(from).toISOString()}; stopping instead of asking for it forever`, null);
    }
  }

  /** Every record modified at exactly `ts`, by ascending object id (keyset, so no cap applies). */
  private async pullTie(type: HsObjectType, ts: number, props: string[], opts: PullOptions): Promise<void> {
    const prop = LAST_MODIFIED[type];
    let lastId = '0';
    for (;;) {
      const res = await this.search(type, {
        filterGroups: [{ filters: [{ propertyName: prop, operator: 'EQ', value: String(ts) }, { propertyName: 'hs_object_id', operator: 'GT', value: lastId }] }],
        sorts: [{ propertyName: 'hs_object_id', direction: 'ASCENDING' }],
        properties: props,
        limit: SEARCH_PAGE,
      });
      if (!res.results.length) return;
      const next = res.results[res.results.length - 1]!.id;
      // ids ascend (hs_object_id GT lastId): one that does not would walk the same page forever
      if (!/^\d+$/.test(String(next)) || BigInt(next) <= BigInt(lastId)) throw new CrmCallFailed(`HubSpot search on ${type} by id did not move past id ${lastId}; stopping`, null);
      lastId = String(next);
      await this.emitObjects(type, res.results, { modstamp: new Date(ts).toISOString(), id: lastId }, opts);
      if (res.results.length < SEARCH_PAGE) return;
    }
  }

  /** `mergedFrom`: the objects whose hs_merged_object_ids are followed (the emitted ones by default). */
  private async emitObjects(type: HsObjectType, objects: HsObjectJson[], cursor: SyncCursor | null, opts: PullOptions, via: 'search' | 'archived' = 'search', mergedFrom = objects): Promise<void> {
    const companies = type === 'contacts' ? await this.companiesOf(objects.map((o) => o.id)) : new Map<string, string[]>();
    const records = objects.map((o) => mapHubSpotObject(type, o, this.hs.identityFields, companies.get(o.id) ?? []));
    records.push(...(await this.mergedAway(mergedFrom, opts)));
    if (via === 'search' || records.length) await opts.sink({ objectType: type, records, cases: [], cursor, via });
  }

  /**
   * The stored records a merge made aliases of these objects: HubSpot neither archives nor lists
   * a merge's secondary, it names it in the primary's hs_merged_object_ids. Each goes to the intake
   * merged into its primary, after it in the same batch (so the cursor moves only past both); one
   * already marked is not live any more, so a later change of the primary sends nothing again.
   */
  private async mergedAway(objects: HsObjectJson[], opts: PullOptions): Promise<CrmRecordInput[]> {
    const primaryOf = new Map<string, string>();
    for (const o of objects) for (const id of hubspotMergedIds(o)) if (usableExternalId(String(o.id)) !== null) primaryOf.set(id, String(o.id));
    if (primaryOf.size === 0) return [];
    const known = await opts.known([...primaryOf.keys()]);
    return [...known.values()].map((r) => ({ ...r, deleted: true, mergedInto: primaryOf.get(r.externalId)! }));
  }

  /** contact id → associated company ids (v4 batch read, 1,000 ids a call). */
  private async companiesOf(contactIds: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (let i = 0; i < contactIds.length; i += 1000) {
      const inputs = contactIds.slice(i, i + 1000).map((id) => ({ id }));
      const res = await this.call('read associations', () => this.client.crm.associations.v4.batchApi.getPage('contacts', 'companies', { inputs }));
      for (const r of res.results) out.set(String(r._from.id), r.to.map((t) => String(t.toObjectId)));
    }
    return out;
  }

  /** Archived records (HubSpot's deletions) archived since `deletedSince`, through the list API. */
  private async pullArchived(type: HsObjectType, opts: PullOptions, until: Date): Promise<Date> {
    const since = opts.deletedSince!.getTime() - 60_000;
    const props = properties(type, this.hs.identityFields);
    let after: string | undefined;
    const seen = new Set<string>();
    do {
      const page = await this.call(`list archived ${type}`, () => this.api(type).basicApi.getPage(LIST_PAGE, after, props, undefined, undefined, true));
      if (!page || !Array.isArray(page.results)) throw new CrmCallFailed(`HubSpot answered the archived ${type} list with something that is not a list`, null);
      // Ids go into a SQL parameter: one with a NUL would fail every run's deletion check.
      const recent = (page.results as HsObjectJson[]).filter((o) => o.archivedAt && new Date(o.archivedAt).getTime() >= since && usableExternalId(String(o.id)) !== null);
      if (recent.length) {
        const known = await opts.known(recent.map((o) => o.id));
        // Archived before Earshot ever saw them: nothing to take back.
        const seen = recent.filter((o) => known.has(o.id)).map((o) => ({ ...o, archived: true }));
        // But the records merged into any of them, seen or not: a primary merged into and archived
        // between two runs is never searched, and its secondaries are listed nowhere else (their ids
        // answer the archived primary). They stayed live records, written back to for ever.
        await this.emitObjects(type, seen, null, opts, 'archived', recent);
      }
      after = page.paging?.next?.after;
      if (after && seen.has(after)) throw new CrmCallFailed(`HubSpot archived ${type} list sent the paging token ${JSON.stringify(String(after).slice(0, 40))} twice; stopping instead of reading the same pages forever`, null);
      if (after) seen.add(after);
    } while (after);
    return until;
  }

  // ---- write-back -------------------------------------------------------------------------------

  async writeBack(objectType: string, updates: WriteBackUpdate[]): Promise<WriteBackOutcome[]> {
    const type = objectType as HsObjectType;
    const byId = new Map<string, WriteBackOutcome>();
    for (let i = 0; i < updates.length; i += BATCH_MAX) {
      let chunk = updates.slice(i, i + BATCH_MAX);
      // A batch naming a record deleted or merged away in HubSpot is answered per record (207) or
      // refused whole (OBJECT_NOT_FOUND with the ids in context.ids): then the named ids failed for
      // good and the rest go again, so one deleted contact neither blocks nor re-sends the others.
      while (chunk.length) {
        const inputs = chunk.map((u) => hubspotWriteBack(u.externalId, u.values, this.hs.writeBackFields));
        try {
          const res = (await this.call(`batch update ${type}`, () => this.api(type).batchApi.update({ inputs }))) as { errors?: { category: string; message: string; context?: { ids?: string[] } }[] };
          const failed = new Map<string, { category: string; message: string }>();
          for (const e of res.errors ?? []) for (const id of e.context?.ids ?? []) failed.set(String(id), e);
          for (const u of chunk) {
            const f = failed.get(u.externalId);
            byId.set(u.externalId, f ? { externalId: u.externalId, ok: false, error: crmErrorText(`${f.category}: ${f.message}`), retriable: f.category !== 'OBJECT_NOT_FOUND', scope: 'record' } : { externalId: u.externalId, ok: true });
          }
          chunk = [];
        } catch (e) {
          if (e instanceof CrmBudgetExhausted) {
            // The calls before this one went through: their outcomes go with the error, so the
            // caller records them and does not send those records again.
            outcomesBeforeStop.set(e, updates.filter((u) => byId.has(u.externalId)).map((u) => byId.get(u.externalId)!));
            throw e;
          }
          const body = (e instanceof CrmCallFailed ? e.body : null) as { category?: string; message?: string; context?: { ids?: unknown } } | null;
          const named = new Set(body?.category === 'OBJECT_NOT_FOUND' && Array.isArray(body.context?.ids) ? body.context.ids.map(String) : []);
          const gone = chunk.filter((u) => named.has(u.externalId));
          if (gone.length) {
            for (const u of gone) byId.set(u.externalId, { externalId: u.externalId, ok: false, error: crmErrorText(`OBJECT_NOT_FOUND: ${body?.message ?? 'not found'}`), retriable: false, scope: 'record' });
            chunk = chunk.filter((u) => !named.has(u.externalId));
            continue;
          }
          const error = withoutCustomerData(e as Error).message;
          for (const u of chunk) byId.set(u.externalId, { externalId: u.externalId, ok: false, error, retriable: true, scope: 'call' });
          chunk = [];
        }
      }
    }
    return updates.map((u) => byId.get(u.externalId)!);
  }

  /**
   * Batch upsert of one ticket on the unique `earshot_item_id` property (a retry finds its ticket),
   * then the default ticket→contact and ticket→company associations.
   */
  async createCase(input: CaseInput): Promise<CaseRef> {
    await this.ensureTicketKey();
    const res = (await this.call('upsert ticket', () => this.client.crm.tickets.batchApi.upsert({ inputs: [hubspotTicket(input)] as never }))) as {
      results: { id: string; _new?: boolean }[];
    };
    const t = res.results[0];
    if (!t) throw new CrmCallFailed('HubSpot ticket upsert returned no result', null);
    if (input.contactId) await this.call('associate ticket', () => this.client.crm.associations.v4.basicApi.createDefault('tickets', t.id, 'contacts', input.contactId!));
    if (input.accountId) await this.call('associate ticket', () => this.client.crm.associations.v4.basicApi.createDefault('tickets', t.id, 'companies', input.accountId!));
    const url = this.portalId ? `${this.hs.appUrl.replace(/\/$/, '')}/contacts/${this.portalId}/record/0-5/${encodeURIComponent(t.id)}` : null;
    return { externalId: t.id, url, created: t._new !== false };
  }

  /**
   * Once per process: the unique ticket property the upsert keys on. HubSpot refuses an upsert on
   * a property that does not exist or is not `hasUniqueValue`, and `setup-crm` does not create it.
   */
  private ensureTicketKey(): Promise<void> {
    this.ticketKey ??= (async () => {
      const status = (e: unknown) => (e instanceof CrmCallFailed ? e.status : null);
      const found = await this.call('read ticket property', () => this.client.crm.properties.coreApi.getByName('tickets', HS_TICKET_KEY_PROPERTY)).catch((e: unknown) => {
        if (status(e) === 404) return null;
        throw e;
      });
      if (found) {
        if (!found.hasUniqueValue) throw new CrmCallFailed(`HubSpot ticket property ${HS_TICKET_KEY_PROPERTY} exists but is not unique (hasUniqueValue); escalation cannot upsert on it`, null);
        return;
      }
      const group = this.hs.propertyGroup;
      await this.call('create property group tickets', () => this.client.crm.properties.groupsApi.create('tickets', { name: group, label: 'Earshot', displayOrder: -1 })).catch((e: unknown) => {
        if (status(e) !== 409) throw e;
      });
      await this.call(`create property tickets.${HS_TICKET_KEY_PROPERTY}`, () => this.client.crm.properties.coreApi.create('tickets', hubspotTicketKeyDefinition(group) as never)).catch((e: unknown) => {
        if (status(e) !== 409) throw e;
      });
    })().catch((e: unknown) => {
      // not cached: the next escalation tries again
      this.ticketKey = null;
      throw e;
    });
    return this.ticketKey;
  }

  /** The Earshot property group and properties on contacts and companies; 409 means already there. */
  async setup(): Promise<SetupReport> {
    const report: SetupReport = { created: [], existing: [], manual: [] };
    const group = this.hs.propertyGroup;
    const exists = (e: unknown) => (e as CrmCallFailed).status === 409;
    for (const type of this.objectTypes) {
      try {
        await this.call(`create property group ${type}`, () => this.client.crm.properties.groupsApi.create(type, { name: group, label: 'Earshot', displayOrder: -1 }));
        report.created.push(`${type} group ${group}`);
      } catch (e) {
        if (!exists(e)) throw e;
        report.existing.push(`${type} group ${group}`);
      }
      for (const def of hubspotPropertyDefinitions(this.hs.writeBackFields, group)) {
        try {
          await this.call(`create property ${type}.${def.name}`, () => this.client.crm.properties.coreApi.create(type, { ...def } as never));
          report.created.push(`${type}.${def.name}`);
        } catch (e) {
          if (!exists(e)) throw e;
          report.existing.push(`${type}.${def.name}`);
        }
      }
    }
    return report;
  }
}

/**
 * A keep-alive agent that ends any request whose reply is not complete within `ms` (connect to
 * last byte), or whose body is larger than `maxBytes` (the client buffers the whole body: a 1 GB
 * reply held about 2 GB before failing, an endless one grew until the deadline). Without it the
 * client's fetch had no deadline: a reply that sent its headers and then dripped a byte now and
 * then held the sync (and shutdown) forever. Requests through an
 * agent are plain http(s) requests, which follow no redirect. The agent goes through the proxy
 * the proxy settings pick for basePath (the same decision Salesforce's calls get), or direct;
 * without it the client went direct whatever HTTP_PROXY, HTTPS_PROXY and NO_PROXY said.
 */
function deadlineAgent(basePath: string, ms: number, maxBytes: number, proxy: ProxySettings): http.Agent {
  const agent = proxiedNodeAgent(new URL(basePath), proxy);
  const addRequest = (Object.getPrototypeOf(agent) as { addRequest(req: http.ClientRequest, options: unknown): void }).addRequest;
  (agent as unknown as { addRequest(req: http.ClientRequest, options: unknown): void }).addRequest = function (req, options) {
    const timer = setTimeout(() => req.destroy(Object.assign(new Error(`HubSpot ${req.method} ${req.path.split('?')[0]}: no complete reply within ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
    timer.unref();
    req.once('close', () => clearTimeout(timer));
    capNodeReply(req, maxBytes, (declared) => responseTooLarge('HubSpot', req.method, req.path.split('?')[0]!, maxBytes, declared));
    addRequest.call(this, req, options);
  };
  return agent;
}

function isNetworkError(e: unknown): boolean {
  const code = (e as { code?: unknown; cause?: { code?: string } }).cause?.code ?? (e as { code?: unknown }).code;
  return typeof code === 'string' && /^(ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|UND_ERR_SOCKET|ENETUNREACH)$/.test(code);
}

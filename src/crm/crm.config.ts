import { readFileSync } from 'node:fs';
import { parseProxySettings, type ProxySettings } from './crm-proxy';
import { DEFAULT_CRM_MAX_RESPONSE_BYTES } from './crm-response-cap';

export type { ProxySettings } from './crm-proxy';

/** A CRM field or property that becomes an identity of the customer. */
export interface IdentityFieldSpec {
  /** object the field lives on (Salesforce sObject name, HubSpot `contacts`/`companies`) */
  readonly object: string;
  readonly field: string;
  readonly kind: 'email' | 'phone' | 'handle' | 'profile_url';
  readonly network: string | null;
}

/** API names of the write-back fields (Salesforce) or properties (HubSpot). */
export interface WriteBackFieldNames {
  readonly score: string;
  readonly label: string;
  readonly trend: string;
  readonly openComplaints: string;
  readonly lastInteraction: string;
  readonly url: string;
}

export interface BudgetConfig {
  /** API calls per day (UTC) this service may spend in the org or portal */
  readonly daily: number;
  /** API calls per rolling 10 seconds */
  readonly per10s: number;
}

export interface SalesforceConfig {
  readonly loginUrl: string;
  /** set with a refresh token: the org's instance URL */
  readonly instanceUrl: string | null;
  readonly clientId: string | null;
  readonly clientSecret: string | null;
  readonly username: string | null;
  readonly password: string | null;
  /** PEM of the connected app's private key: JWT bearer flow */
  readonly jwtPrivateKey: string | null;
  readonly jwtSubject: string | null;
  readonly jwtAudience: string;
  readonly refreshToken: string | null;
  readonly apiVersion: string;
  /** records per query/queryMore page (Sforce-Query-Options batchSize, 200–2000) */
  readonly queryBatchSize: number;
  /**
   * How far behind a run's start the cursor stays. A record saved in a transaction that began
   * before the run and committed after the run read past its SystemModstamp (batch Apex, a long
   * data load) is read by the next run, not skipped for good; records within it are read again
   * (unchanged ones are not handed to the intake again).
   */
  readonly cursorLagMs: number;
  readonly auth: 'jwt' | 'refresh_token' | 'password';
  /** synced objects: people (Contact, Lead, Account) and Case for the listening gap */
  readonly objects: readonly string[];
  readonly identityFields: readonly IdentityFieldSpec[];
  readonly writeBackFields: WriteBackFieldNames;
  /** objects whose records get the write-back fields */
  readonly writeBackObjects: readonly string[];
  readonly budget: BudgetConfig;
  /** HTTP_PROXY, HTTPS_PROXY, NO_PROXY (or lower case): every Salesforce call, token calls included, follows them */
  readonly proxy: ProxySettings;
}

export interface HubSpotConfig {
  readonly basePath: string;
  readonly accessToken: string | null;
  readonly clientId: string | null;
  readonly clientSecret: string | null;
  readonly refreshToken: string | null;
  readonly auth: 'private_app' | 'oauth';
  /** for deep links; null → read from the token info (OAuth) or left out */
  readonly portalId: string | null;
  readonly appUrl: string;
  readonly objects: readonly ('contacts' | 'companies')[];
  readonly identityFields: readonly IdentityFieldSpec[];
  readonly writeBackFields: WriteBackFieldNames;
  readonly propertyGroup: string;
  /** search results lag writes by a few seconds: changes younger than this wait for the next run */
  readonly searchLagMs: number;
  readonly budget: BudgetConfig & { readonly searchPerSecond: number };
  /** HTTP_PROXY, HTTPS_PROXY, NO_PROXY (or lower case): every HubSpot call, token calls included, follows them */
  readonly proxy: ProxySettings;
}

export interface CrmConfig {
  /** null when Salesforce is not configured */
  readonly salesforce: SalesforceConfig | null;
  readonly hubspot: HubSpotConfig | null;
  readonly syncIntervalMs: number;
  /** more changed records than this go through Bulk API 2.0 */
  readonly bulkThreshold: number;
  readonly writeBack: boolean;
  readonly writeBackPollMs: number;
  /** how long a claimed write-back batch stays with one worker before another may take it */
  readonly writeBackLeaseMs: number;
  readonly maxRetries: number;
  /** first backoff when a 429/5xx carries no Retry-After; doubles per attempt */
  readonly retryBaseMs: number;
  /** a Retry-After of this or longer is not waited for in place: no call to the CRM until it passes (the run stops and resumes then); a backoff this long fails the call */
  readonly maxRetryWaitMs: number;
  /**
   * one HTTP call to a CRM, connect to last byte: a reply slower than this (a body that never
   * ends) fails the call and is retried as a network error
   */
  readonly requestTimeoutMs: number;
  /**
   * the largest body one CRM reply may have, in bytes: a larger one (declared or as it arrives)
   * is cut off there and fails that call (not retried in place); the sync keeps its cursor and
   * write-back keeps the records queued. Bounds the memory a huge or endless reply can take.
   */
  readonly maxResponseBytes: number;
}

type Str = (n: string) => string | null;

type Int = (n: string, d: number, min: number, max: number) => number;

const DEFAULT_SF_FIELDS: WriteBackFieldNames = {
  score: 'Earshot_Sentiment_Score__c',
  label: 'Earshot_Sentiment_Label__c',
  trend: 'Earshot_Sentiment_Trend__c',
  openComplaints: 'Earshot_Open_Complaints__c',
  lastInteraction: 'Earshot_Last_Interaction__c',
  url: 'Earshot_Url__c',
};
const DEFAULT_HS_FIELDS: WriteBackFieldNames = {
  score: 'earshot_sentiment_score',
  label: 'earshot_sentiment_label',
  trend: 'earshot_sentiment_trend',
  openComplaints: 'earshot_open_complaints',
  lastInteraction: 'earshot_last_interaction',
  url: 'earshot_url',
};
const SF_IDENTITY_DEFAULT = 'Contact.Email:email,Contact.Phone:phone,Contact.MobilePhone:phone,Contact.Twitter_Handle__c:handle:x,Lead.Email:email,Lead.Phone:phone,Lead.MobilePhone:phone,Account.Phone:phone';
const HS_IDENTITY_DEFAULT = 'contacts.email:email,contacts.phone:phone,contacts.mobilephone:phone,contacts.twitterhandle:handle:x,companies.phone:phone';

function parseIdentityFields(name: string, raw: string, problems: string[]): IdentityFieldSpec[] {
  const out: IdentityFieldSpec[] = [];
  for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9_]+)\.([A-Za-z0-9_]+):(email|phone|handle|profile_url)(?::([a-z0-9_]+))?$/.exec(entry);
    if (!m) {
      problems.push(`${name}: ${JSON.stringify(entry)} is not Object.Field:kind[:network] (kind email, phone, handle, profile_url)`);
      continue;
    }
    if (m[3] === 'handle' && !m[4]) problems.push(`${name}: ${JSON.stringify(entry)} is a handle and needs a network (…:handle:x)`);
    out.push({ object: m[1]!, field: m[2]!, kind: m[3] as IdentityFieldSpec['kind'], network: m[4] ?? null });
  }
  return out;
}

function parseFieldNames(name: string, raw: string | null, defaults: WriteBackFieldNames, problems: string[]): WriteBackFieldNames {
  if (raw === null) return defaults;
  const out: Record<string, string> = { ...defaults };
  const given = new Set<string>();
  for (const entry of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [key, api] = entry.split('=').map((s) => s.trim());
    // Object.hasOwn: `in` took `constructor=X`, `toString=X` and `__proto__=X` as keys, silently
    if (!key || !api || !Object.hasOwn(defaults, key) || !/^[A-Za-z][A-Za-z0-9_]*$/.test(api)) {
      problems.push(`${name}: ${JSON.stringify(entry)} is not key=ApiName with key one of ${Object.keys(defaults).join(', ')}`);
      continue;
    }
    // the last of two names won in silence, and the sentiment went to one field only
    if (given.has(key) && out[key] !== api) problems.push(`${name}: ${key} is given twice, with two names; give it once`);
    given.add(key);
    out[key] = api;
  }
  return out as unknown as WriteBackFieldNames;
}

/**
 * The `crm` section of the config. A vendor is on when its credentials are set; with neither,
 * the sync role logs once that it is off. Every problem is reported, none thrown here.
 */
export function parseCrmConfig(str: Str, int: Int, problems: string[]): CrmConfig {
  /** Entries without blanks and repeats; a list set to commas only is refused (it read as "none"). */
  const list = (n: string, def: string): string[] => {
    const raw = str(n);
    const parts = [...new Set((raw ?? def).split(',').map((s) => s.trim()).filter(Boolean))];
    if (raw !== null && parts.length === 0) problems.push(`${n}=${JSON.stringify(raw)}: expected a comma-separated list, got no entry`);
    return parts;
  };
  const bool = (n: string, def: boolean): boolean => {
    const raw = str(n);
    if (raw === null) return def;
    if (!['true', 'false', 'on', 'off', '1', '0'].includes(raw)) problems.push(`${n}=${JSON.stringify(raw)}: expected true or false (or on/off, 1/0)`);
    return ['true', 'on', '1'].includes(raw);
  };
  const httpUrl = (n: string, def: string | null): string | null => {
    const raw = str(n) ?? def;
    if (raw === null) return null;
    try {
      const u = new URL(raw);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error();
      return raw.replace(/\/$/, '');
    } catch {
      problems.push(`${n}: expected an http(s) URL`);
      return null;
    }
  };

  // Read (and checked) only when a CRM is configured: one reading for both vendors.
  let proxySettings: ProxySettings | null = null;
  const proxy = (): ProxySettings => (proxySettings ??= parseProxySettings(str, problems));

  let salesforce: SalesforceConfig | null = null;
  let jwtPrivateKey = str('EARSHOT_SF_JWT_KEY')?.replace(/\\n/g, '\n') ?? null;
  const keyFile = str('EARSHOT_SF_JWT_KEY_FILE');
  if (keyFile !== null) {
    try {
      jwtPrivateKey = readFileSync(keyFile, 'utf8');
    } catch (e) {
      problems.push(`EARSHOT_SF_JWT_KEY_FILE: cannot read ${keyFile} (${(e as Error).message})`);
    }
  }
  const sfUser = str('EARSHOT_SF_USERNAME');
  const sfRefresh = str('EARSHOT_SF_REFRESH_TOKEN');
  const sfPassword = str('EARSHOT_SF_PASSWORD');
  const sfCredential = jwtPrivateKey !== null || sfRefresh !== null || sfPassword !== null;
  // Settings for a Salesforce without a credential were ignored, and the sync ran without it.
  const sfSet = ['EARSHOT_SF_USERNAME', 'EARSHOT_SF_CLIENT_ID', 'EARSHOT_SF_CLIENT_SECRET', 'EARSHOT_SF_INSTANCE_URL', 'EARSHOT_SF_JWT_SUBJECT'].filter((n) => str(n) !== null);
  if (!sfCredential && sfSet.length > 0) problems.push(`${sfSet.join(', ')} set, but no Salesforce credential: set EARSHOT_SF_PASSWORD, EARSHOT_SF_REFRESH_TOKEN or EARSHOT_SF_JWT_KEY(_FILE), or unset them`);
  if (sfCredential) {
    const loginUrl = httpUrl('EARSHOT_SF_LOGIN_URL', 'https://login.salesforce.com')!;
    const clientId = str('EARSHOT_SF_CLIENT_ID');
    const auth: SalesforceConfig['auth'] = jwtPrivateKey !== null ? 'jwt' : sfRefresh !== null ? 'refresh_token' : 'password';
    if (auth === 'jwt' && (!clientId || !(str('EARSHOT_SF_JWT_SUBJECT') ?? sfUser))) problems.push('EARSHOT_SF_JWT_KEY needs EARSHOT_SF_CLIENT_ID and EARSHOT_SF_JWT_SUBJECT (or EARSHOT_SF_USERNAME)');
    if (auth === 'refresh_token' && (!clientId || !str('EARSHOT_SF_INSTANCE_URL'))) problems.push('EARSHOT_SF_REFRESH_TOKEN needs EARSHOT_SF_CLIENT_ID and EARSHOT_SF_INSTANCE_URL');
    if (auth === 'password' && !sfUser) problems.push('EARSHOT_SF_PASSWORD needs EARSHOT_SF_USERNAME');
    const apiVersion = str('EARSHOT_SF_API_VERSION') ?? '62.0';
    if (!/^\d{2}\.0$/.test(apiVersion)) problems.push('EARSHOT_SF_API_VERSION: expected NN.0, e.g. 62.0');
    const objects = list('EARSHOT_SF_OBJECTS', 'Account,Contact,Lead,Case');
    for (const o of objects) if (!['Account', 'Contact', 'Lead', 'Case'].includes(o)) problems.push(`EARSHOT_SF_OBJECTS: ${JSON.stringify(o)} is not one of Account, Contact, Lead, Case`);
    const writeBackObjects = list('EARSHOT_SF_WRITEBACK_OBJECTS', 'Contact,Lead,Account');
    // An object named here but not synced (or misspelt) was dropped from write-back without a word.
    if (str('EARSHOT_SF_WRITEBACK_OBJECTS') !== null) {
      for (const o of writeBackObjects) {
        if (!['Account', 'Contact', 'Lead'].includes(o)) problems.push(`EARSHOT_SF_WRITEBACK_OBJECTS: ${JSON.stringify(o)} is not one of Account, Contact, Lead`);
        else if (!objects.includes(o)) problems.push(`EARSHOT_SF_WRITEBACK_OBJECTS: ${o} is not synced (EARSHOT_SF_OBJECTS=${objects.join(',')}), so nothing would be written to it`);
      }
    }
    salesforce = {
      loginUrl,
      instanceUrl: httpUrl('EARSHOT_SF_INSTANCE_URL', null),
      clientId,
      clientSecret: str('EARSHOT_SF_CLIENT_SECRET'),
      username: sfUser,
      password: sfPassword,
      jwtPrivateKey,
      jwtSubject: str('EARSHOT_SF_JWT_SUBJECT') ?? sfUser,
      jwtAudience: str('EARSHOT_SF_JWT_AUDIENCE') ?? loginUrl,
      refreshToken: sfRefresh,
      apiVersion,
      queryBatchSize: int('EARSHOT_SF_QUERY_BATCH_SIZE', 2000, 200, 2000),
      cursorLagMs: int('EARSHOT_SF_CURSOR_LAG_MS', 300_000, 0, 86_400_000),
      auth,
      objects,
      identityFields: parseIdentityFields('EARSHOT_SF_IDENTITY_FIELDS', str('EARSHOT_SF_IDENTITY_FIELDS') ?? SF_IDENTITY_DEFAULT, problems),
      writeBackFields: parseFieldNames('EARSHOT_SF_WRITEBACK_FIELDS', str('EARSHOT_SF_WRITEBACK_FIELDS'), DEFAULT_SF_FIELDS, problems),
      writeBackObjects,
      // Enterprise Edition: 100,000 a day plus per-licence extras; no burst limit, so a polite 10 s cap
      budget: { daily: int('EARSHOT_SF_DAILY_BUDGET', 100_000, 1, 100_000_000), per10s: int('EARSHOT_SF_BUDGET_PER_10S', 250, 1, 100_000) },
      proxy: proxy(),
    };
  }

  let hubspot: HubSpotConfig | null = null;
  const hsToken = str('EARSHOT_HUBSPOT_TOKEN');
  const hsRefresh = str('EARSHOT_HUBSPOT_REFRESH_TOKEN');
  const hsSet = ['EARSHOT_HUBSPOT_CLIENT_ID', 'EARSHOT_HUBSPOT_CLIENT_SECRET', 'EARSHOT_HUBSPOT_PORTAL_ID'].filter((n) => str(n) !== null);
  if (hsToken === null && hsRefresh === null && hsSet.length > 0) problems.push(`${hsSet.join(', ')} set, but no HubSpot credential: set EARSHOT_HUBSPOT_TOKEN or EARSHOT_HUBSPOT_REFRESH_TOKEN, or unset them`);
  // "Bearer pat-…" went out as "Bearer Bearer pat-…": every call 401
  if (hsToken !== null && /\s/.test(hsToken)) problems.push(`EARSHOT_HUBSPOT_TOKEN: has white space inside; give the token alone${/^bearer\s/i.test(hsToken) ? ', without "Bearer " (Earshot sends it)' : ''}`);
  if (hsToken !== null && hsRefresh !== null) problems.push('EARSHOT_HUBSPOT_TOKEN and EARSHOT_HUBSPOT_REFRESH_TOKEN are both set: give one (a private app token, or OAuth)');
  if (hsToken !== null || hsRefresh !== null) {
    const auth: HubSpotConfig['auth'] = hsToken !== null ? 'private_app' : 'oauth';
    if (auth === 'oauth' && (!str('EARSHOT_HUBSPOT_CLIENT_ID') || !str('EARSHOT_HUBSPOT_CLIENT_SECRET'))) {
      problems.push('EARSHOT_HUBSPOT_REFRESH_TOKEN needs EARSHOT_HUBSPOT_CLIENT_ID and EARSHOT_HUBSPOT_CLIENT_SECRET');
    }
    const portalId = str('EARSHOT_HUBSPOT_PORTAL_ID');
    if (portalId !== null && !/^\d+$/.test(portalId)) problems.push('EARSHOT_HUBSPOT_PORTAL_ID: expected digits');
    const objects = list('EARSHOT_HUBSPOT_OBJECTS', 'companies,contacts');
    for (const o of objects) if (!['contacts', 'companies'].includes(o)) problems.push(`EARSHOT_HUBSPOT_OBJECTS: ${JSON.stringify(o)} is not contacts or companies`);
    hubspot = {
      basePath: httpUrl('EARSHOT_HUBSPOT_BASE_PATH', 'https://api.hubapi.com')!,
      accessToken: hsToken,
      clientId: str('EARSHOT_HUBSPOT_CLIENT_ID'),
      clientSecret: str('EARSHOT_HUBSPOT_CLIENT_SECRET'),
      refreshToken: hsRefresh,
      auth,
      portalId,
      appUrl: httpUrl('EARSHOT_HUBSPOT_APP_URL', 'https://app.hubspot.com')!,
      objects: objects as ('contacts' | 'companies')[],
      identityFields: parseIdentityFields('EARSHOT_HUBSPOT_IDENTITY_FIELDS', str('EARSHOT_HUBSPOT_IDENTITY_FIELDS') ?? HS_IDENTITY_DEFAULT, problems),
      writeBackFields: parseFieldNames('EARSHOT_HUBSPOT_WRITEBACK_PROPERTIES', str('EARSHOT_HUBSPOT_WRITEBACK_PROPERTIES'), DEFAULT_HS_FIELDS, problems),
      propertyGroup: str('EARSHOT_HUBSPOT_PROPERTY_GROUP') ?? 'earshot',
      searchLagMs: int('EARSHOT_HUBSPOT_SEARCH_LAG_MS', 10_000, 0, 3_600_000),
      // Professional/Enterprise private apps: 190 per 10 s, 650,000 a day; search: 5 a second
      budget: {
        daily: int('EARSHOT_HUBSPOT_DAILY_BUDGET', 650_000, 1, 100_000_000),
        per10s: int('EARSHOT_HUBSPOT_BUDGET_PER_10S', 190, 1, 100_000),
        searchPerSecond: int('EARSHOT_HUBSPOT_SEARCH_PER_SECOND', 5, 1, 1_000),
      },
      proxy: proxy(),
    };
  }

  const maxRetries = int('EARSHOT_CRM_MAX_RETRIES', 8, 0, 100);
  const retryBaseMs = int('EARSHOT_CRM_RETRY_BASE_MS', 500, 1, 600_000);
  const maxRetryWaitMs = int('EARSHOT_CRM_MAX_RETRY_WAIT_MS', 120_000, 1, 3_600_000);
  // a backoff as long as the longest wait in place fails the call: no call was ever retried
  if (maxRetries > 0 && retryBaseMs >= maxRetryWaitMs) {
    problems.push(`EARSHOT_CRM_RETRY_BASE_MS=${retryBaseMs} must be under EARSHOT_CRM_MAX_RETRY_WAIT_MS (${maxRetryWaitMs}), or no call is retried (EARSHOT_CRM_MAX_RETRIES=0 says so)`);
  }
  return {
    salesforce,
    hubspot,
    syncIntervalMs: int('EARSHOT_CRM_SYNC_INTERVAL_MS', 300_000, 1_000, 86_400_000),
    bulkThreshold: int('EARSHOT_CRM_BULK_THRESHOLD', 10_000, 1, 100_000_000),
    writeBack: bool('EARSHOT_CRM_WRITEBACK', true),
    writeBackPollMs: int('EARSHOT_CRM_WRITEBACK_POLL_MS', 2_000, 10, 3_600_000),
    writeBackLeaseMs: int('EARSHOT_CRM_WRITEBACK_LEASE_MS', 120_000, 100, 3_600_000),
    maxRetries,
    retryBaseMs,
    maxRetryWaitMs,
    requestTimeoutMs: int('EARSHOT_CRM_REQUEST_TIMEOUT_MS', 120_000, 100, 3_600_000),
    // at most 512 MiB, about the longest string V8 makes (a larger body could never be read anyway)
    maxResponseBytes: int('EARSHOT_CRM_MAX_RESPONSE_BYTES', DEFAULT_CRM_MAX_RESPONSE_BYTES, 64 * 1024, 512 * 1024 * 1024),
  };
}

import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type RunningApp } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { toGlobalId } from '../../src/graphql/relay';
import { ManualClock } from '../../src/shared/clock';
import { createLogger } from '../../src/shared/logger';
import { HubSpotServer } from '../crm-servers/hubspot/server';
import { SalesforceServer } from '../crm-servers/salesforce/server';
import { crmEnv } from '../support/crm-env';
import { grepDatabase } from '../support/pii-grep';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

// CRM error text that quotes the record. Salesforce and HubSpot write field values into their error
// messages (Salesforce: an Apex trigger's addError, "invalid email address: …", a SOQL error quoting
// its filter; HubSpot: "Property values were not valid: [{…}]"). Earshot kept that text as written:
// in every log line about the failure, in the write-back's stored errors, in crmSyncStatus.lastError
// (which analysts read, who may not see addresses), and in an erasure's CRM error after the person
// was erased. The local servers answer in the vendors' documented error formats. One app (every log
// line captured, at debug level) and both CRMs for the file; each test has its own person.

const ADMIN = { 'x-api-key': 'crm-error-pii-admin-key-0123456789' };
const ANALYST = { 'x-api-key': 'crm-error-pii-analyst-key-0123456789' };

let sf: SalesforceServer;
let hs: HubSpotServer;
let app: RunningApp;
let database: TestDatabase;
const logLines: string[] = [];
let round = 0;

const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];

interface Person {
  email: string;
  phone: string;
}

/** The ways a person's address and number can be written: as given, lower case, the local part, E.164, national digits. */
function forms(p: Person): string[] {
  const digits = p.phone.replace(/\D/g, '');
  return [p.email, p.email.toLowerCase(), p.email.split('@')[0]!.toLowerCase(), p.phone, `+${digits}`, digits.slice(1)];
}

/** The forms of the person that `text` holds (case-insensitive). */
function leaked(text: string, p: Person): string[] {
  const t = text.toLowerCase();
  return forms(p).filter((f) => t.includes(f.toLowerCase()));
}

async function gql<T>(query: string, headers: Record<string, string>, variables?: Record<string, unknown>): Promise<{ data: T; errors?: unknown[] }> {
  const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query, variables }) });
  return (await res.json()) as { data: T; errors?: unknown[] };
}

/** One complaint by the person's email; returns its customer. */
async function speak(p: Person): Promise<string> {
  const id = `crm-error-pii-${++round}`;
  const r = await app.services.ingest.ingestObjects(
    [{ eventId: id, source: 'email', externalId: id, occurredAt: new Date(Date.now() - 60_000).toISOString(), direction: 'inbound', author: { displayName: 'Customer', email: p.email }, text: 'My parcel is late again and nobody answers. Terrible service, I want a refund.' }],
    'test',
  );
  expect(r.rejected).toHaveLength(0);
  const [row] = await q<{ id: string }>(`SELECT customer_id AS id FROM interaction WHERE external_id = $1`, [id]);
  return row!.id;
}

/** Runs `fn` and returns the log lines written meanwhile. */
async function logged(fn: () => Promise<unknown>): Promise<string[]> {
  const from = logLines.length;
  await fn();
  return logLines.slice(from);
}

beforeAll(async () => {
  sf = new SalesforceServer();
  hs = new HubSpotServer();
  await Promise.all([sf.start(), hs.start()]);
  database = await createTestDatabase('crmerrpii');
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: database.url,
    EARSHOT_ROLES: 'api',
    EARSHOT_PUBLIC_URL: 'http://localhost:4000',
    EARSHOT_API_KEYS: `${ADMIN['x-api-key']}:admin,${ANALYST['x-api-key']}:analyst`,
    ...crmEnv(sf, hs),
    EARSHOT_CRM_MAX_RETRIES: '0',
  });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  app = await startApp(config, createLogger('debug', {}, sink), undefined, { clock: new ManualClock() });
  await app.services.crmSync.client('hubspot')!.setup();
}, 120_000);

afterAll(async () => {
  await app?.stop();
  await database?.drop();
  await Promise.all([sf?.stop(), hs?.stop()]);
});

describe('CRM error text that quotes the record', () => {
  it('Salesforce write-back refused by a trigger quoting the contact: the error is kept and logged without the address and number', async () => {
    const p = { email: 'Ines.Quinteiro@example.com', phone: '+1 415 555 0142' };
    const c = sf.store.insert('Contact', { FirstName: 'Ines', LastName: 'Quinteiro', Email: p.email, Phone: p.phone });
    await speak(p);
    await app.services.crmSync.run('salesforce');
    // an Apex trigger's addError, as Salesforce returns it per record in the collection's answer
    sf.failRecord(c.Id, 'FIELD_CUSTOM_VALIDATION_EXCEPTION', `Contact ${p.email} (${p.phone}) is on the do-not-contact list; integrations may not update it`, 1);
    let failed = 0;
    const lines = await logged(async () => ({ failed } = await app.services.crmWriteback.runOnce()));
    expect(failed).toBeGreaterThanOrEqual(1);

    const [rec] = await q<{ writeback_error: string }>(`SELECT writeback_error FROM crm_record WHERE system = 'salesforce' AND external_id = $1`, [c.Id]);
    // still says what happened, without the values
    expect(rec!.writeback_error).toBe('FIELD_CUSTOM_VALIDATION_EXCEPTION: Contact [email] ([phone]) is on the do-not-contact list; integrations may not update it');
    const [queued] = await q<{ last_error: string }>(`SELECT last_error FROM crm_writeback`);
    expect(leaked(queued!.last_error, p)).toEqual([]);
    expect(lines.some((l) => l.includes('FIELD_CUSTOM_VALIDATION_EXCEPTION'))).toBe(true);
    expect(leaked(lines.join('\n'), p)).toEqual([]);
  });

  it('HubSpot batch update refused with a validation error quoting values: the error is kept and logged without them', async () => {
    const p = { email: 'Rosa.Marques@example.org', phone: '+1 212 555 0198' };
    const obj = hs.store.create('contacts', { email: p.email, firstname: 'Rosa', lastname: 'Marques', phone: p.phone });
    await speak(p);
    await app.services.crmSync.run('hubspot');
    // HubSpot's documented error body for a batch it refuses whole
    const detail = JSON.stringify([{ isValid: false, message: `${p.email} is not a valid email address`, error: 'INVALID_EMAIL', name: 'email' }, { isValid: false, message: `${p.phone} is not a valid phone number`, error: 'INVALID_PHONE_NUMBER', name: 'phone' }]);
    hs.failCall('/crm/v3/objects/contacts/batch/update', 400, 'VALIDATION_ERROR', `Property values were not valid: ${detail}`);
    const lines = await logged(() => app.services.crmWriteback.runOnce());

    const [rec] = await q<{ writeback_error: string }>(`SELECT writeback_error FROM crm_record WHERE system = 'hubspot' AND external_id = $1`, [obj.id]);
    expect(rec!.writeback_error).toMatch(/^HubSpot batch update contacts failed with 400: Property values were not valid: .*\[email\] is not a valid email address.*INVALID_PHONE_NUMBER/);
    const queued = await q<{ last_error: string | null }>(`SELECT last_error FROM crm_writeback`);
    for (const r of queued) expect(leaked(r.last_error ?? '', p)).toEqual([]);
    expect(lines.some((l) => l.includes('Property values were not valid'))).toBe(true);
    expect(leaked(lines.join('\n'), p)).toEqual([]);
  });

  it('a sync refused with an error quoting a record: crmSyncStatus.lastError and the log say why, without the address and number', async () => {
    const sfP = { email: 'Jonas.Wirth@example.net', phone: '+1 312 555 0117' };
    const hsP = { email: 'Maya.Okafor@example.net', phone: '+1 617 555 0166' };
    // a SOQL error quotes its statement; HubSpot's validation error quotes the value it refused
    sf.failCall('/services/data/v62.0/query', 400, 'INVALID_QUERY_FILTER_OPERATOR', `\nWHERE Email = '${sfP.email}' OR Phone = '${sfP.phone}'\n      ^\nERROR at Row:1:Column:42\ninvalid operator on field Email`);
    hs.failCall('/crm/v3/objects/contacts/search', 400, 'VALIDATION_ERROR', `Invalid input: ${hsP.email} / ${hsP.phone} is not a valid value for a filter`);
    const lines = await logged(async () => {
      await app.services.crmSync.run('salesforce');
      await app.services.crmSync.run('hubspot');
    });

    type Status = { crmSyncStatus: { objects: { system: string; objectType: string; status: string; lastError: string | null }[] } };
    for (const who of [ANALYST, ADMIN]) {
      const s = await gql<Status>(`{ crmSyncStatus { objects { system objectType status lastError } } }`, who);
      expect(s.errors).toBeUndefined();
      const sfContact = s.data.crmSyncStatus.objects.find((o) => o.system === 'SALESFORCE' && o.objectType === 'Contact')!;
      const hsContacts = s.data.crmSyncStatus.objects.find((o) => o.system === 'HUBSPOT' && o.objectType === 'contacts')!;
      expect(sfContact).toMatchObject({ status: 'ERROR', lastError: expect.stringContaining("WHERE Email = '[email]' OR Phone = '[phone]'") });
      expect(hsContacts).toMatchObject({ status: 'ERROR', lastError: expect.stringContaining('Invalid input: [email] / [phone] is not a valid value') });
      expect(leaked(JSON.stringify(s.data), sfP)).toEqual([]);
      expect(leaked(JSON.stringify(s.data), hsP)).toEqual([]);
    }
    const [stored] = await q<{ errors: string }>(`SELECT string_agg(coalesce(last_error, ''), ' ') AS errors FROM crm_sync_state`);
    expect([...leaked(stored!.errors, sfP), ...leaked(stored!.errors, hsP)]).toEqual([]);
    expect(lines.filter((l) => l.includes('CRM sync of an object failed'))).toHaveLength(2);
    expect([...leaked(lines.join('\n'), sfP), ...leaked(lines.join('\n'), hsP)]).toEqual([]);
    // the next run, with nothing refused, clears the errors
    await app.services.crmSync.run('salesforce');
    await app.services.crmSync.run('hubspot');
  });

  it("an escalation Case or ticket refused with an error quoting the customer's words: the error names no address or number", async () => {
    const p = { email: 'Omar.Haddad@example.com', phone: '+1 646 555 0131' };
    const input = {
      idempotencyKey: '5b0c8f0e-7d7e-4c1e-9f5a-2f8d1b6c0a11',
      subject: 'Complaint not answered',
      description: `Call me at ${p.phone} or write to ${p.email}, nobody answers`,
      origin: 'email',
      priority: 'high' as const,
      contactId: null,
      accountId: null,
      ownerId: null,
    };
    // Salesforce quotes the value it refused ("data value too large: …"); HubSpot the property's
    sf.failCall('/services/data/v62.0/composite/sobjects/Case', 400, 'STRING_TOO_LONG', `Description: data value too large: ${input.description} (max length=32000)`);
    hs.failCall('/crm/v3/objects/tickets/batch/upsert', 400, 'VALIDATION_ERROR', `Property values were not valid: [{"isValid":false,"message":"${input.description} is too long","error":"INVALID_LENGTH","name":"content"}]`);
    for (const system of ['salesforce', 'hubspot'] as const) {
      const e = (await app.services.crmSync.client(system)!.createCase(input).then(() => null, (err: unknown) => err)) as Error & Record<string, unknown>;
      expect(e, system).toBeInstanceOf(Error);
      expect(e.message).toMatch(system === 'salesforce' ? /data value too large: Call me at \[phone\] or write to \[email\]/ : /Property values were not valid: .*Call me at \[phone\] or write to \[email\]/);
      // nor its stack, nor what a logger serializing the error writes
      expect(leaked(`${e.stack} ${JSON.stringify({ ...e })}`, p), system).toEqual([]);
    }
  });

  it('an erasure whose CRM clean-up is refused with an error quoting the person keeps none of their data', async () => {
    const p = { email: 'Lena.Vasquez@example.com', phone: '+1 503 555 0173' };
    const c = sf.store.insert('Contact', { FirstName: 'Lena', LastName: 'Vasquez', Email: p.email, Phone: p.phone });
    const customerId = await speak(p);
    await app.services.crmSync.run('salesforce');
    await app.services.crmWriteback.runOnce();
    expect(sf.store.find('Contact', c.Id)!.Earshot_Url__c).toBe(`http://localhost:4000/customers/${customerId}`);

    // refused on every try while the hold lasts
    sf.failRecord(c.Id, 'FIELD_CUSTOM_VALIDATION_EXCEPTION', `Contact ${p.email} / ${p.phone} is under legal hold and cannot be changed`, 100);
    const lines = await logged(async () => {
      await app.services.erasure.erase(customerId, 'DSR-7781', 'admin:test');
      await app.services.erasure.clearCrm();
    });
    const erasure = await gql<{ erasure: { status: string } }>(`query($id: ID!) { erasure(customerId: $id) { status } }`, ADMIN, { id: toGlobalId('Customer', customerId) });
    // the clean-up waits for a retry, with the CRM's reason on the audit row (the erase CLI prints it)
    expect(erasure.data.erasure.status).not.toBe('DONE');
    const [audit] = await q<{ crm_error: string }>(`SELECT crm_error FROM erasure_request WHERE customer_id = $1`, [customerId]);
    expect(audit!.crm_error).toMatch(/^FIELD_CUSTOM_VALIDATION_EXCEPTION: Contact \[email\] \/ \[phone\] is under legal hold/);
    // nothing Earshot holds names the erased person, the CRM's error included
    expect((await grepDatabase(q, forms(p))).hits).toEqual([]);
    expect(leaked(lines.join('\n'), p)).toEqual([]);
  });
});

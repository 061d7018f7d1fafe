import type { HubSpotServer } from '../crm-servers/hubspot/server';
import type { SalesforceServer } from '../crm-servers/salesforce/server';

// The servers' own generators draw from 20 first and 20 last names, so 25,000 contacts share 400
// names and the identity matcher compares each with hundreds of namesakes. Real CRMs hold far
// more distinct names: these seeds make them from syllables (about 64,000 surnames).
const SYL = ['ka', 'lo', 'mi', 'ran', 'tes', 'vo', 'bri', 'del', 'fen', 'gor', 'hul', 'jin', 'kor', 'lum', 'nad', 'pra', 'qui', 'ros', 'sal', 'tur', 'ul', 'vin', 'wes', 'yan', 'zor', 'ber', 'cas', 'dun', 'eri', 'fal', 'gan', 'hol', 'ist', 'jor', 'kel', 'lar', 'mor', 'nel', 'orn', 'pel'];
const GIVEN = ['Ava', 'Ben', 'Chloe', 'Dev', 'Elena', 'Farid', 'Grace', 'Hiro', 'Ines', 'Jonas', 'Kemi', 'Liam', 'Maya', 'Noah', 'Olga', 'Priya', 'Quinn', 'Rosa', 'Sami', 'Tess', 'Uma', 'Viktor', 'Wen', 'Xena', 'Yusuf', 'Zoe'];

/** A deterministic, mostly unique person for index `k`. */
export function person(k: number): { first: string; last: string } {
  let x = (k * 2654435761) >>> 0;
  const pick = (arr: string[]) => {
    const v = arr[x % arr.length]!;
    x = Math.floor(x / arr.length) ^ (k * 40503);
    x >>>= 0;
    return v;
  };
  const first = pick(GIVEN);
  const last = pick(SYL) + pick(SYL) + pick(SYL);
  return { first, last: last.charAt(0).toUpperCase() + last.slice(1) };
}

/** Salesforce contacts with distinct names; modstamps from `start`, `stepMs` apart (0: all equal). */
export function seedSalesforceContacts(sf: SalesforceServer, n: number, opts: { start: string; stepMs?: number; from?: number; fields?: Record<string, string | number | null> }): string[] {
  const base = opts.from ?? sf.store.count('Contact') + 1_000_000;
  const t0 = Date.parse(opts.start);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = base + i;
    const { first, last } = person(k);
    const rec = sf.store.insert(
      'Contact',
      {
        FirstName: first,
        LastName: last,
        Email: `${first}.${last}.${k}@example.com`.toLowerCase(),
        Phone: `+1 415 ${String(200 + (k % 700)).padStart(3, '0')} ${String(k % 10_000).padStart(4, '0')}`,
        Twitter_Handle__c: k % 2 === 0 ? `@${first}${last}${k}`.toLowerCase() : null,
        ...opts.fields,
      },
      t0 + i * (opts.stepMs ?? 1000),
    );
    ids.push(rec.Id);
  }
  return ids;
}

/** HubSpot contacts with distinct names; last-modified from `start`, `stepMs` apart (0: all equal). */
export function seedHubSpotContacts(hs: HubSpotServer, n: number, opts: { start: string; stepMs?: number; from?: number; companyIds?: string[] }): string[] {
  const base = opts.from ?? hs.store.objects.contacts.size + 2_000_000;
  const t0 = Date.parse(opts.start);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = base + i;
    const { first, last } = person(k);
    const c = hs.store.create('contacts', { email: `${first}.${last}.${k}@example.net`.toLowerCase(), firstname: first, lastname: last, twitterhandle: `${first}_${last}_${k}`.toLowerCase() }, t0 + i * (opts.stepMs ?? 1000));
    if (opts.companyIds?.length) hs.store.associate(c.id, opts.companyIds[k % opts.companyIds.length]!);
    ids.push(c.id);
  }
  return ids;
}

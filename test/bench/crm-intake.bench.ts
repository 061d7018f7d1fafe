// CRM intake scaling: successive chunks of CRM contacts through IdentityService.ingestCrmRecords
// on a fresh database, records/s per chunk, with a realistic name distribution (a few very
// common surnames and given names, as a real CRM holds many Smiths and Nguyens) mixed with the
// distinct names of the CRM seeds. Also the in-memory matcher alone, with its candidate counts.
// Run: npm run build --silent && node dist/test/bench/crm-intake.bench.js [chunks] [chunkSize] [matcher|db] [analyze]
// `analyze` runs ANALYZE after each chunk, as autovacuum would on a server that has it on. Intake's
// suggestion look-up starts from the record's customer's identities whatever the statistics; before,
// without statistics the planner took the growing suggestion table for empty and scanned it per
// suggestion (4 records/s by the fifth chunk of 1,000).
import { performance } from 'node:perf_hooks';
import { IncrementalIndex, Matcher, type PersonRecord } from '../../src/identity/matcher';
import type { CrmRecordInput } from '../../src/crm/crm.port';
import { person } from '../fixtures/crm/seed';
import { startTestApp } from '../support/app';

const SURNAMES = ['Smith', 'Nguyen', 'Garcia', 'Johnson', 'Williams', 'Brown', 'Jones', 'Miller', 'Davis', 'Martinez', 'Lee', 'Wilson'];
const GIVEN = ['James', 'Mary', 'John', 'Linda', 'Michael', 'Jennifer', 'David', 'Maria', 'Robert', 'Anh', 'Jose', 'Sarah'];
const CITIES = ['springfield', 'riverside', 'franklin', 'greenville', 'bristol', 'clinton', 'fairview', 'salem', 'madison', 'georgetown', 'arlington', 'ashland', 'dover', 'oxford', 'jackson', 'burlington'];

/** Person k: 60% from the common lists, skewed (Zipf-like) towards the first names, 40% from the seeds. */
export function crmPerson(k: number): { givenName: string; surname: string; city: string; postcode: string; company: string } {
  let x = (k * 2654435761) >>> 0;
  const skew = (arr: string[]) => {
    const r = (x % 1000) / 1000;
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return arr[Math.floor(arr.length * r * r)]!;
  };
  const common = x % 10 < 6;
  x = (Math.imul(x, 1103515245) + 12345) >>> 0;
  const seeded = person(k);
  const givenName = common ? skew(GIVEN) : seeded.first;
  const surname = common ? skew(SURNAMES) : seeded.last;
  const city = skew(CITIES);
  return { givenName, surname, city, postcode: String(10000 + (x % 5000)), company: `Acme ${x % 50}` };
}

function record(k: number): CrmRecordInput {
  const p = crmPerson(k);
  return {
    externalId: `003${String(k).padStart(12, '0')}`,
    person: p,
    identities: [
      { kind: 'email', value: `${p.givenName}.${p.surname}.${k}@example.com`.toLowerCase() },
      { kind: 'phone', value: `+1 415 ${String(200 + (k % 700)).padStart(3, '0')} ${String(k % 10_000).padStart(4, '0')}` },
    ],
  } as CrmRecordInput;
}

function matcherOnly(n: number, chunk: number): string[] {
  const out = ['| records in index | matcher records/s | candidates per record |', '| ---: | ---: | ---: |'];
  const index = new IncrementalIndex(new Matcher());
  for (let start = 0; start < n; start += chunk) {
    const before = index.comparisons ?? 0;
    const t0 = performance.now();
    for (let k = start; k < start + chunk; k++) {
      const r = record(k);
      const rec: PersonRecord = { id: `r${k}`, ...r.person, emails: [`e${k}@example.com`], crmIds: [`salesforce:Contact:${r.externalId}`] };
      index.match(rec);
      index.add(rec);
    }
    const s = (performance.now() - t0) / 1000;
    const per = ((index.comparisons ?? 0) - before) / chunk;
    out.push(`| ${start}–${start + chunk} | ${Math.round(chunk / s)} | ${per.toFixed(1)} |`);
  }
  return out;
}

async function main(): Promise<void> {
  const chunks = Number(process.argv[2] ?? 3);
  const size = Number(process.argv[3] ?? 2000);
  const only = process.argv[4];
  if (only !== 'db') console.log(matcherOnly(chunks * size * 5, size * 5).join('\n'), '\n');
  if (only === 'matcher') return;
  const app = await startTestApp({ EARSHOT_ROLES: 'api' }, 'crmintakebench');
  try {
    console.log('| records before | intake records/s | seconds |\n| ---: | ---: | ---: |');
    for (let c = 0; c < chunks; c++) {
      const recs = Array.from({ length: size }, (_, i) => record(c * size + i));
      const t0 = performance.now();
      await app.services.identity.ingestCrmRecords('salesforce', 'Contact', recs);
      const s = (performance.now() - t0) / 1000;
      console.log(`| ${c * size} | ${Math.round(size / s)} | ${s.toFixed(1)} |`);
      if (process.argv[5] === 'analyze') await app.db.ds.query('ANALYZE');
    }
  } finally {
    await app.close();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}

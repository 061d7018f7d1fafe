import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  candidatePairs,
  DEFAULT_AUTO_LINK_THRESHOLD,
  DEFAULT_REVIEW_THRESHOLD,
  estimateParameters,
  IncrementalIndex,
  resolveBatch,
  scorePair,
  type PersonRecord,
} from './matcher';
import { readPersonCsv } from './resolve.command';

const jane: PersonRecord = {
  id: 'a',
  givenName: 'Jane',
  surname: 'Harrington',
  streetNumber: '38',
  address1: 'maltby circuit',
  address2: 'coaling',
  city: 'coolaroo',
  postcode: '3465',
  state: 'nsw',
  dateOfBirth: '19150612',
};

describe('scorePair', () => {
  it('explains a score field by field, and the weights add up to it', () => {
    const typo: PersonRecord = { ...jane, id: 'b', surname: 'Harringotn', postcode: '3456', streetNumber: undefined };
    const { score, evidence } = scorePair(jane, typo);
    const byField = Object.fromEntries(evidence.map((e) => [e.field, e]));
    expect(byField.given_name).toMatchObject({ outcome: 'agree', similarity: 1 });
    expect(byField.surname!.outcome).toBe('partial');
    expect(byField.surname!.similarity).toBeGreaterThan(0.92);
    expect(byField.postcode).toMatchObject({ outcome: 'partial', level: 'one_edit' });
    expect(byField.street_number).toMatchObject({ outcome: 'missing', weight: 0 });
    expect(byField.date_of_birth!.weight).toBeGreaterThan(5);
    const sum = evidence.reduce((s, e) => s + e.weight, 0);
    expect(Math.abs(sum - score)).toBeLessThan(0.01);
    expect(score).toBeGreaterThanOrEqual(DEFAULT_AUTO_LINK_THRESHOLD);
  });

  it('is symmetric and scores two different people far below the review band', () => {
    const other: PersonRecord = { id: 'c', givenName: 'Lucy', surname: 'Crouch', streetNumber: '202', address1: 'goulburn street', city: 'cromer', postcode: '2096', state: 'vic', dateOfBirth: '19400305' };
    expect(scorePair(jane, other).score).toBe(scorePair(other, jane).score);
    expect(scorePair(jane, other).score).toBeLessThan(0);
  });

  it('notices given name and surname written the wrong way round', () => {
    const swapped: PersonRecord = { ...jane, id: 'd', givenName: 'Harrington', surname: 'Jane' };
    const { score, evidence } = scorePair(jane, swapped);
    expect(evidence.find((e) => e.field === 'surname')).toMatchObject({ outcome: 'agree', detail: 'given name and surname transposed' });
    expect(score).toBeGreaterThanOrEqual(DEFAULT_AUTO_LINK_THRESHOLD);
  });

  it('counts nicknames as partial agreement of the given name', () => {
    const bob = scorePair({ id: '1', givenName: 'Robert', surname: 'Mason' }, { id: '2', givenName: 'Bob', surname: 'Mason' });
    expect(bob.evidence.find((e) => e.field === 'given_name')).toMatchObject({ outcome: 'partial', detail: 'nickname' });
  });

  it('compares a social handle with a name', () => {
    const author: PersonRecord = { id: 'x1', handles: [{ network: 'instagram', handle: '@jane.harrington84' }] };
    const ev = scorePair(author, jane).evidence.find((e) => e.field === 'handle_name');
    expect(ev).toMatchObject({ outcome: 'agree' });
    const initial = scorePair({ id: 'x3', handles: [{ network: 'x', handle: 'jharrington' }] }, jane).evidence.find((e) => e.field === 'handle_name');
    expect(initial).toMatchObject({ outcome: 'partial' });
    const stranger = scorePair({ id: 'x2', handles: [{ network: 'x', handle: 'skaterboy99' }] }, jane).evidence.find((e) => e.field === 'handle_name');
    expect(stranger!.outcome).toBe('disagree');
  });
});

describe('blocking', () => {
  it('grows near-linearly with the number of records (Febrl dataset 3: 1,000 vs 5,000 records)', async () => {
    const records = await readPersonCsv(path.resolve(process.cwd(), '../shared/data/identity/dataset3.csv'));
    const small = candidatePairs(records.slice(0, 1000)).length;
    const large = candidatePairs(records).length;
    // All pairs would grow 25-fold; true duplicates alone grow about 25-fold too in a random
    // sample of clusters, so the honest bound is between the record ratio and that.
    const perRecordSmall = small / 1000;
    const perRecordLarge = large / 5000;
    expect(large).toBeLessThan(((5000 * 4999) / 2) * 0.01);
    expect(perRecordLarge / perRecordSmall).toBeLessThan(6);
  });
});

describe('estimateParameters', () => {
  it('learns from unlabelled records that agreement on date of birth means more than agreement on state', async () => {
    const records = await readPersonCsv(path.resolve(process.cwd(), '../shared/data/identity/dataset1.csv'));
    const p = estimateParameters(records);
    const w = (field: string, level: number): number => Math.log2(p.comparisons[field]!.m[level]! / p.comparisons[field]!.u[level]!);
    expect(w('date_of_birth', 0)).toBeGreaterThan(7);
    expect(w('state', 0)).toBeLessThan(3);
    expect(w('surname', 3)).toBeLessThan(-2);
    expect(p.source).toBe('estimated');
  });
});

describe('resolveBatch', () => {
  const sfJane: PersonRecord = { id: 'sf-1', givenName: 'Jane', surname: 'Doe', emails: ['Jane.Doe@Example.com'], crmIds: ['salesforce:Contact:003000000000001AAA'] };
  const hsJane: PersonRecord = { id: 'hs-1', givenName: 'Jane', surname: 'Doe', emails: ['jane.doe@example.com '], crmIds: ['hubspot:contact:51'] };
  const hsJanet: PersonRecord = { id: 'hs-2', givenName: 'Janet', surname: 'Doe', city: 'Springfield', crmIds: ['hubspot:contact:52'] };
  const sfJohn: PersonRecord = { id: 'sf-2', givenName: 'John', surname: 'Smith', emails: ['john@smith.example'], crmIds: ['salesforce:Contact:003000000000002AAA'] };

  it('merges a Salesforce and a HubSpot contact that share an email, and keeps others apart', () => {
    const r = resolveBatch([sfJane, hsJane, hsJanet, sfJohn]);
    expect(r.clusters).toEqual([['hs-1', 'sf-1'], ['hs-2'], ['sf-2']]);
    const link = r.links.find((l) => [l.a, l.b].sort().join() === 'hs-1,sf-1')!;
    expect(link.score).toBeGreaterThanOrEqual(DEFAULT_AUTO_LINK_THRESHOLD);
    expect(link.evidence.find((e) => e.field === 'email')).toMatchObject({ outcome: 'agree' });
  });

  it('never auto-merges two records of one CRM object the CRM keeps apart: it suggests them', () => {
    const dupContact: PersonRecord = { ...sfJane, id: 'sf-3', crmIds: ['salesforce:Contact:003000000000003AAA'] };
    const r = resolveBatch([sfJane, dupContact]);
    expect(r.clusters).toEqual([['sf-1'], ['sf-3']]);
    expect(r.suggestions).toHaveLength(1);
    expect(r.suggestions[0]!.evidence.find((e) => e.field === 'crm_id')).toMatchObject({ outcome: 'disagree' });
  });

  it('does not chain two different people together through a record that shares a key with each', () => {
    const ann: PersonRecord = { id: 'p1', givenName: 'Ann', surname: 'Lee', dateOfBirth: '19800101', postcode: '2000', emails: ['ann@lee.example'] };
    const shared: PersonRecord = { id: 'p2', emails: ['ann@lee.example'], phones: ['+14155552671'] };
    const bruno: PersonRecord = { id: 'p3', givenName: 'Bruno', surname: 'Martinez', dateOfBirth: '19551230', postcode: '3999', phones: ['+1 415 555 2671'] };
    const r = resolveBatch([ann, shared, bruno]);
    expect(r.clusters.some((c) => c.includes('p1') && c.includes('p3'))).toBe(false);
    expect(r.stats.refusedMerges).toBe(1);
    expect(r.suggestions.map((s) => [s.a, s.b].sort().join())).toContain('p2,p3');
  });

  it('never suggests again, nor merges, a pair a person rejected', () => {
    const dupContact: PersonRecord = { ...sfJane, id: 'sf-3', crmIds: ['salesforce:Contact:003000000000003AAA'] };
    expect(resolveBatch([sfJane, dupContact]).suggestions).toHaveLength(1);
    const again = resolveBatch([sfJane, dupContact], { rejectedPairs: [['sf-3', 'sf-1']] });
    expect(again.suggestions).toHaveLength(0);
    expect(again.clusters).toEqual([['sf-1'], ['sf-3']]);
    // Not through a third record either: hs-1 shares the email with both.
    const viaThird = resolveBatch([sfJane, dupContact, hsJane], { rejectedPairs: [['sf-1', 'sf-3']] });
    expect(viaThird.clusters.some((c) => c.includes('sf-1') && c.includes('sf-3'))).toBe(false);
    expect(viaThird.suggestions.some((s) => [s.a, s.b].includes('sf-1') && [s.a, s.b].includes('sf-3'))).toBe(false);
  });

  it('takes a name made only of placeholder words ("Guest", "Valued Customer", "N/A") for no name', () => {
    const office = { company: 'Harbor Freight Lines', postcode: '98402' };
    for (const [given, surname] of [['Guest', null], ['Valued', 'Customer'], ['N/A', 'N/A'], ['Unknown', 'Customer'], ['Test', 'Test'], ['.', null]]) {
      const a = scorePair({ id: 'a', givenName: given, surname, ...office }, { id: 'b', givenName: given, surname, ...office });
      expect(a.evidence.filter((e) => (e.field === 'given_name' || e.field === 'surname') && e.outcome !== 'missing'), `${given} ${surname}`).toEqual([]);
    }
    // a real name that holds such a word is still a name
    const guest = scorePair({ id: 'a', givenName: 'Christopher', surname: 'Guest' }, { id: 'b', givenName: 'Christopher', surname: 'Guest' });
    expect(guest.evidence.find((e) => e.field === 'surname')).toMatchObject({ outcome: 'agree' });
  });

  it('never auto-links records that agree on a place or an employer but on nothing of the person', () => {
    const office = { company: 'Harbor Freight Lines', address1: '1 Dock St', streetNumber: '1', city: 'Tacoma', state: 'WA', postcode: '98402' };
    const a: PersonRecord = { id: 'hs-9', givenName: 'Guest', ...office, crmIds: ['hubspot:contact:9'] };
    const b: PersonRecord = { id: 'sf-9', givenName: 'Valued', surname: 'Customer', ...office, crmIds: ['salesforce:Contact:003000000000009AAA'] };
    expect(scorePair(a, b).score).toBeGreaterThanOrEqual(DEFAULT_AUTO_LINK_THRESHOLD);
    const r = resolveBatch([a, b]);
    expect(r.clusters).toEqual([['hs-9'], ['sf-9']]);
    expect(r.suggestions).toHaveLength(1);
    // the same office with a name, a birth date or an email of the person's own still links
    for (const own of [{ givenName: 'Maria', surname: 'Lopez' }, { dateOfBirth: '1980-02-03' }, { emails: ['m.lopez@harborfreight.example'] }]) {
      expect(resolveBatch([{ ...a, ...own }, { ...b, ...own }]).clusters, JSON.stringify(own)).toEqual([['hs-9', 'sf-9']]);
    }
  });

  it('puts every record in exactly one cluster and suggests nothing already merged', () => {
    const r = resolveBatch([sfJane, hsJane, hsJanet, sfJohn, { ...hsJanet, id: 'hs-3', crmIds: [] }]);
    const all = r.clusters.flat().sort();
    expect(all).toEqual(['hs-1', 'hs-2', 'hs-3', 'sf-1', 'sf-2']);
    for (const s of r.suggestions) expect(r.clusters.some((c) => c.includes(s.a) && c.includes(s.b))).toBe(false);
  });
});

describe('IncrementalIndex', () => {
  it('links a social author known by handle once the author reveals an email', () => {
    const index = new IncrementalIndex();
    index.add({ id: 'crm', givenName: 'Jane', surname: 'Harrington', emails: ['jane@harrington.example'], city: 'coolaroo' });
    const byHandle: PersonRecord = { id: 'author', handles: [{ network: 'x', handle: 'janeharrington' }] };
    const first = index.match(byHandle, { minScore: -Infinity });
    expect(first.map((c) => c.id)).toEqual(['crm']);
    expect(first[0]!.decision).not.toBe('link');
    index.add(byHandle);

    const revealed: PersonRecord = { ...byHandle, emails: ['JANE@harrington.example'] };
    const second = index.match(revealed);
    expect(second[0]).toMatchObject({ id: 'crm', decision: 'link' });
    expect(second[0]!.evidence.find((e) => e.field === 'email')).toMatchObject({ outcome: 'agree' });
  });

  it('returns candidates best first, never the record itself, and forgets removed records', () => {
    const index = new IncrementalIndex();
    index.add(jane);
    index.add({ ...jane, id: 'b', postcode: '3456' });
    index.add({ ...jane, id: 'c', givenName: 'Janet', dateOfBirth: '19150621', streetNumber: '83' });
    const found = index.match(jane, { minScore: DEFAULT_REVIEW_THRESHOLD });
    expect(found.map((c) => c.id)).toEqual(['b', 'c']);
    expect(found[0]!.score).toBeGreaterThan(found[1]!.score);
    expect(index.remove('b')).toBe(true);
    expect(index.match(jane).map((c) => c.id)).toEqual(['c']);
    expect(index.size).toBe(2);
  });

  // A real CRM holds thousands of Smiths. Each record matched used to copy and sort every member
  // of its oversized blocks (the surname's, the city's…), so the work per record grew with the
  // number of namesakes already held: a CRM sync slowed down chunk after chunk.
  it('reads a bounded number of records per match, however many namesakes it holds', () => {
    const given = ['James', 'Mary', 'John', 'Linda', 'Michael', 'Jennifer', 'David', 'Maria'];
    const smith = (k: number): PersonRecord => ({
      id: `smith-${k}`,
      givenName: given[k % given.length],
      surname: 'Smith',
      city: 'springfield',
      postcode: String(10000 + ((k * 7919) % 5000)),
      streetNumber: String(1 + (k % 97)),
      address1: `${['oak', 'elm', 'main', 'pine'][k % 4]} street`,
      emails: [`smith.${k}@example.com`],
      crmIds: [`salesforce:Contact:003${k}`],
    });
    const index = new IncrementalIndex();
    const perMatch = (from: number, to: number): { examined: number; compared: number } => {
      const e0 = index.examined;
      const c0 = index.comparisons;
      for (let k = from; k < to; k++) {
        index.match(smith(k));
        index.add(smith(k));
      }
      return { examined: (index.examined - e0) / (to - from), compared: (index.comparisons - c0) / (to - from) };
    };
    perMatch(0, 500);
    const early = perMatch(500, 700);
    perMatch(700, 3000);
    const late = perMatch(3000, 3200);
    expect(index.size).toBe(3200);
    // a few keys, each read up to the block cap or a window around the record's place in name order
    // (small blocks still fill up to the cap of 40, so the counts may grow a little, never with the Smiths)
    expect(late.examined).toBeLessThan(600);
    expect(late.examined).toBeLessThan(early.examined * 3);
    expect(late.compared).toBeLessThan(150);

    // the window still finds a namesake at the same address among 3,200 Smiths
    const twin: PersonRecord = { ...smith(1234), id: 'twin', emails: [], crmIds: [] };
    expect(index.match(twin)[0]).toMatchObject({ id: 'smith-1234', decision: 'link' });
    // and the candidates do not depend on the order the records came in
    const reversed = new IncrementalIndex();
    for (let k = 3199; k >= 0; k--) reversed.add(smith(k));
    expect(reversed.match(twin).map((c) => [c.id, c.score])).toEqual(index.match(twin).map((c) => [c.id, c.score]));
    // removing a record takes it out of its sorted blocks
    expect(index.remove('smith-1234')).toBe(true);
    expect(index.match(twin).map((c) => c.id)).not.toContain('smith-1234');
  });
});

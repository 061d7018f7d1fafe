import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowToPerson, runResolveCommand } from './resolve.command';

class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString('utf8');
    done();
  }
  lines(): Array<{ id: string; cluster: string; suggestedWith: string[] }> {
    return this.text.trim().split('\n').map((l) => JSON.parse(l));
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'earshot-resolve-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('runResolveCommand', () => {
  it('reads Febrl columns as they are, ignores soc_sec_id, and writes one line per record in input order', async () => {
    const file = path.join(dir, 'febrl.csv');
    await writeFile(
      file,
      [
        'rec_id, given_name, surname, street_number, address_1, address_2, suburb, postcode, state, date_of_birth, soc_sec_id',
        'rec-10-dup-0, kayla, harringotn, , maltby circuit, coaling, coolaroo, 3465, nsw, 19150612, 1111111',
        'rec-11-org, aloysius, pegg, 4, meldrum street, forster specialist medical centre, woodend, 5037, sa, 19530306, 5615832',
        'rec-10-org, kayla, harrington, 38, maltby circuit, coaling, coolaroo, 3465, nsw, 19150612, 9004242',
        // Same number as rec-10-org: a CRM has no such number, so it must not join them.
        'rec-12-org, lucy, crouch, 202, goulburn street, sattwa park, cromer, 2096, vic, 19400305, 9004242',
        'rec-11-dup-0, aloysius, pegg, 4, forster specialis t medical centre, meldrum street, woodend, 5037, sa, 19530306, 9175450',
      ].join('\n') + '\n',
    );
    const out = new Collect();
    const summary = await runResolveCommand({ input: file, output: out });
    expect(summary).toEqual({ records: 5, clusters: 3 });
    expect(out.lines()).toEqual([
      { id: 'rec-10-dup-0', cluster: 'rec-10-dup-0', suggestedWith: [] },
      { id: 'rec-11-org', cluster: 'rec-11-dup-0', suggestedWith: [] },
      { id: 'rec-10-org', cluster: 'rec-10-dup-0', suggestedWith: [] },
      { id: 'rec-12-org', cluster: 'rec-12-org', suggestedWith: [] },
      { id: 'rec-11-dup-0', cluster: 'rec-11-dup-0', suggestedWith: [] },
    ]);
  });

  it('reads CRM column names and lists review-band pairs in suggestedWith', async () => {
    const file = path.join(dir, 'crm.csv');
    await writeFile(
      file,
      [
        'Id,FirstName,LastName,Email,Phone,MailingStreet,MailingCity,MailingPostalCode,MailingState,Birthdate,Account.Name',
        '003A1,Jane,Doe,jane.doe@example.com,(415) 555-2671,"12 Market Street\nSuite 4",San Francisco,94105,CA,1984-03-07,Acme Inc',
        '003A2,JANE,DOE,Jane.Doe@Example.com ,,,,,,,',
        '003A3,Janet,Doe,,,,,,CA,,',
        '003A4,Paul,Stone,paul@stone.example,+1 212 555 0101,1 Broadway,New York,10004,NY,1970-01-01,Stone LLC',
      ].join('\n') + '\n',
    );
    const out = new Collect();
    const summary = await runResolveCommand({ input: file, output: out });
    const lines = out.lines();
    expect(lines.map((l) => l.id)).toEqual(['003A1', '003A2', '003A3', '003A4']);
    expect(lines[0]!.cluster).toBe('003A1');
    expect(lines[1]!.cluster).toBe('003A1');
    expect(lines[3]).toEqual({ id: '003A4', cluster: '003A4', suggestedWith: [] });
    // Janet Doe, nothing known but the state: a name alone is never enough to merge.
    expect(lines[2]!.cluster).toBe('003A3');
    expect(lines[2]!.suggestedWith).toHaveLength(1);
    expect(summary).toEqual({ records: 4, clusters: 3 });
  });
});

describe('rowToPerson', () => {
  it('splits MailingStreet into number and lines, and drops soc_sec_id', () => {
    const r = rowToPerson({ Id: '1', MailingStreet: '12 Market Street\nSuite 4', soc_sec_id: '123', twitterhandle: '@JaneDoe' }, 1);
    expect(r).toMatchObject({ id: '1', streetNumber: '12', address1: 'Market Street', address2: 'Suite 4', handles: [{ network: 'x', handle: '@JaneDoe' }] });
    expect(JSON.stringify(r)).not.toContain('123');
    expect(rowToPerson({ FirstName: 'x' }, 7).id).toBe('row-7');
  });
});

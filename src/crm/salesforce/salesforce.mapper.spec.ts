import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config';
import { mapSalesforceCase, mapSalesforceRecord, salesforceWriteBack, selectFields, sfDateTime, soqlString } from './salesforce.mapper';

const fixture = (name: string) => readFileSync(path.join(__dirname, '../fixtures', name), 'utf8');
const sf = loadConfig({ EARSHOT_SF_USERNAME: 'u@example.com', EARSHOT_SF_PASSWORD: 'p' }).crm.salesforce!;

describe('Salesforce mapper', () => {
  it('maps a REST query Contact: person, identities from the configured fields, flattened payload', () => {
    const body = JSON.parse(fixture('salesforce-query-contacts.json')) as { records: Record<string, unknown>[] };
    const [rosa, okafor] = body.records.map((r) => mapSalesforceRecord('Contact', r, sf.identityFields));
    expect(rosa).toEqual({
      externalId: '0035g00000A1b2CAAR',
      ownerId: '0055g00000Ab1CdAAJ',
      modstamp: '2026-03-01T12:00:00.000Z',
      person: { givenName: 'Rosa', surname: 'Diaz', company: 'Globex 12' },
      identities: [
        { kind: 'email', network: null, value: 'Rosa.Diaz@Example.com' },
        { kind: 'phone', network: null, value: '(415) 555-0132' },
        { kind: 'handle', network: 'x', value: '@rosadiaz' },
      ],
      payload: expect.objectContaining({ Id: '0035g00000A1b2CAAR', 'Account.Name': 'Globex 12', Email: 'Rosa.Diaz@Example.com' }),
    });
    expect(rosa!.payload).not.toHaveProperty('attributes');
    expect(okafor).toMatchObject({ person: { givenName: null, surname: 'Okafor', company: null }, identities: [{ kind: 'phone', value: '+44 7700 900123' }] });
  });

  it('maps Bulk API 2.0 CSV rows the same way, empty cells as nulls', () => {
    const rows = parse(fixture('salesforce-bulk2-contacts.csv'), { columns: true }) as Record<string, unknown>[];
    const [rosa, okafor] = rows.map((r) => mapSalesforceRecord('Contact', r, sf.identityFields));
    expect(rosa!.person).toEqual({ givenName: 'Rosa', surname: 'Diaz', company: 'Globex 12' });
    expect(rosa!.identities).toHaveLength(3);
    expect(okafor!.identities).toEqual([{ kind: 'phone', network: null, value: '+44 7700 900123' }]);
    expect(okafor!.payload!.Email).toBeNull();
    expect(okafor!.deleted).toBeUndefined();
  });

  it('marks queryAll rows with IsDeleted as deleted and maps Cases', () => {
    expect(mapSalesforceRecord('Lead', { Id: '00Q5g0000000001AAA', IsDeleted: true, LastName: 'X', Company: 'Y', SystemModstamp: '2026-01-01T00:00:00.000+0000' }, sf.identityFields)).toMatchObject({ deleted: true, person: { company: 'Y' } });
    expect(mapSalesforceCase({ Id: '5005g0000000001AAA', Status: 'Closed', IsClosed: 'true', ContactId: '0035g00000A1b2CAAR', AccountId: '', SystemModstamp: '2026-01-01T00:00:00.000+0000' })).toEqual({
      externalId: '5005g0000000001AAA', status: 'Closed', isClosed: true, contactId: '0035g00000A1b2CAAR', accountId: null, modstamp: '2026-01-01T00:00:00.000Z', deleted: false,
    });
  });

  it('builds the SELECT list, SOQL literals and the sObject Collections record', () => {
    expect(selectFields('Contact', sf.identityFields)).toContain('Twitter_Handle__c');
    expect(selectFields('Account', sf.identityFields)).not.toContain('Email');
    expect(sfDateTime('2026-03-01T12:00:00.000+0000')).toBe('2026-03-01T12:00:00.000Z');
    expect(sfDateTime('')).toBeNull();
    expect(soqlString("O'Brien\\")).toBe("'O\\'Brien\\\\'");
    expect(salesforceWriteBack('Lead', '00Q5g0000000001AAA', { score: -0.42, label: null }, sf.writeBackFields)).toEqual({
      attributes: { type: 'Lead' }, Id: '00Q5g0000000001AAA', Earshot_Sentiment_Score__c: -0.42, Earshot_Sentiment_Label__c: null,
    });
  });
});

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config';
import { hubspotModstamp, hubspotPropertyDefinitions, hubspotWriteBack, mapHubSpotObject, properties, type HsObjectJson } from './hubspot.mapper';

const fixture = (name: string) => JSON.parse(readFileSync(path.join(__dirname, '../fixtures', name), 'utf8')) as { results: HsObjectJson[] };
const hs = loadConfig({ EARSHOT_HUBSPOT_TOKEN: 'pat-na1-x' }).crm.hubspot!;

describe('HubSpot mapper', () => {
  it('maps a search result contact with its companies; empty values make no identity', () => {
    const [kemi, liam] = fixture('hubspot-search-contacts.json').results;
    expect(mapHubSpotObject('contacts', kemi!, hs.identityFields, ['9001'])).toEqual({
      externalId: '151',
      ownerId: null,
      modstamp: '2026-03-02T08:15:00.123Z',
      person: { givenName: 'Kemi', surname: 'Okafor', company: 'Initech', city: 'Lagos' },
      identities: [
        { kind: 'email', network: null, value: 'kemi.okafor@example.net' },
        { kind: 'phone', network: null, value: '+1 212 555 0151' },
        { kind: 'handle', network: 'x', value: 'kemi_okafor' },
      ],
      payload: expect.objectContaining({ email: 'kemi.okafor@example.net', associatedCompanyIds: ['9001'] }),
    });
    expect(mapHubSpotObject('contacts', liam!, hs.identityFields).identities).toEqual([]);
  });

  it('maps an archived company as deleted, its time from hs_lastmodifieddate', () => {
    const [acme] = fixture('hubspot-archived-companies.json').results;
    expect(mapHubSpotObject('companies', acme!, hs.identityFields)).toMatchObject({ externalId: '9001', deleted: true, person: { company: 'Acme 1' }, identities: [{ kind: 'phone', value: '+1 415 555 1000' }] });
    expect(hubspotModstamp('companies', acme!)).toBe('2026-03-03T10:00:00.000Z');
    expect(hubspotModstamp('contacts', { id: '1', properties: {}, updatedAt: '2026-01-01T00:00:00Z' })).toBe('2026-01-01T00:00:00.000Z');
  });

  it('asks for the identity properties and writes every value as a string', () => {
    expect(properties('contacts', hs.identityFields)).toEqual(expect.arrayContaining(['twitterhandle', 'lastmodifieddate', 'email']));
    expect(hubspotWriteBack('151', { score: 0.5, openComplaints: 2, lastInteraction: null }, hs.writeBackFields)).toEqual({
      id: '151', properties: { earshot_sentiment_score: '0.5', earshot_open_complaints: '2', earshot_last_interaction: '' },
    });
    expect(hubspotPropertyDefinitions(hs.writeBackFields, 'earshot').map((d) => [d.name, d.type])).toEqual([
      ['earshot_sentiment_score', 'number'], ['earshot_sentiment_label', 'string'], ['earshot_sentiment_trend', 'number'],
      ['earshot_open_complaints', 'number'], ['earshot_last_interaction', 'datetime'], ['earshot_url', 'string'],
    ]);
  });
});

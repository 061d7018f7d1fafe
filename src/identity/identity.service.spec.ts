import { describe, expect, it } from 'vitest';
import { prepareCrmRecord } from './crm-intake.service';

const opts = { email: { plusAddressing: 'strip' as const }, defaultRegion: 'US' };

describe('prepareCrmRecord', () => {
  it('puts the CRM id first and normalizes emails, phones and handles held in CRM fields', () => {
    const r = prepareCrmRecord(
      'hubspot',
      'contact',
      {
        externalId: '51',
        person: { givenName: 'Jane', surname: 'Doe' },
        identities: [
          { kind: 'email', value: ' Jane.Doe+news@Example.COM ' },
          { kind: 'phone', value: '(415) 555-2671' },
          { kind: 'handle', network: 'twitter', value: '@JaneDoe' },
          { kind: 'email', value: 'jane.doe@example.com' },
        ],
      },
      opts,
    );
    expect(r.claims.map((c) => [c.kind, c.network, c.value])).toEqual([
      ['crm', 'hubspot', 'hubspot:contact:51'],
      ['email', null, 'jane.doe@example.com'],
      ['phone', null, '+14155552671'],
      ['handle', 'x', 'x:janedoe'],
    ]);
    expect(r.person).toMatchObject({ givenName: 'Jane', emails: ['jane.doe@example.com'], phones: ['+14155552671'], handles: [{ network: 'x', handle: 'janedoe' }], crmIds: ['hubspot:contact:51'] });
    expect(r.displayName).toBe('Jane Doe');
  });

  it('turns 15-character Salesforce ids into the 18-character form, so both name one record', () => {
    const a = prepareCrmRecord('salesforce', 'contact', { externalId: '003D000000QV9nS' }, opts);
    const b = prepareCrmRecord('salesforce', 'Contact', { externalId: '003D000000QV9nSIAT' }, opts);
    expect(a.claims[0]!.value).toBe(b.claims[0]!.value);
  });

  it('drops values that are no identity of their kind and refuses an invalid record id', () => {
    const r = prepareCrmRecord('salesforce', 'Lead', { externalId: '00Q000000000001AAA', identities: [{ kind: 'email', value: 'not an email' }, { kind: 'phone', value: '12' }] }, opts);
    expect(r.claims).toHaveLength(1);
    expect(r.displayName).toBeNull();
    expect(() => prepareCrmRecord('salesforce', 'Lead', { externalId: 'a b' }, opts)).toThrow(/invalid CRM record id/);
  });
});

import { describe, expect, it } from 'vitest';
import { guardCrmCases, guardCrmRecords, IDENTITY_VALUE_MAX, PAYLOAD_TEXT_MAX, PERSON_FIELD_MAX, storableText } from './crm-record-guard';

describe('storableText', () => {
  it('removes NUL and replaces lone surrogates, keeping pairs', () => {
    expect(storableText('a\u0000b')).toBe('ab');
    expect(storableText('x\ud800y\udc00z')).toBe('x\ufffdy\ufffdz');
    expect(storableText('emoji \ud83d\ude00')).toBe('emoji \ud83d\ude00');
    expect(storableText('end\ud83d')).toBe('end\ufffd');
  });
});

describe('guardCrmRecords', () => {
  it('sets apart records without a usable id and reports what it cleaned by id and field name, never by value', () => {
    const secret = 'Jane\u0000Secret';
    const out = guardCrmRecords([
      { externalId: '', person: { givenName: 'A' } },
      { externalId: 'null\u0000', person: { givenName: 'B' } },
      { externalId: 'x'.repeat(300) },
      { externalId: undefined as unknown as string },
      { externalId: '003 5g.1' },
      {
        externalId: '0035g0000000001AAA',
        person: { givenName: secret, surname: 'S'.repeat(1_000_000) },
        identities: [
          { kind: 'email', value: `${'<'.repeat(IDENTITY_VALUE_MAX)}@x.com` },
          { kind: 'email', value: 'jane\u0000@example.com' },
          { kind: 'phone', value: '\u0000' },
        ],
        payload: { Title: 't\ud800', ['k\u0000']: 'v', Notes: 'n'.repeat(PAYLOAD_TEXT_MAX + 5), nested: { a: ['\u0000'] } },
        modstamp: 'not a time',
        ownerId: 'owner\u0000',
      },
    ]);
    expect(out.skipped.map((s) => s.reason)).toEqual(Array(5).fill('no usable record id'));
    expect(out.skipped[2]!.externalId.length).toBeLessThan(50);
    expect(out.records).toHaveLength(1);
    const r = out.records[0]!;
    expect(r.person).toEqual({ givenName: 'JaneSecret', surname: 'S'.repeat(PERSON_FIELD_MAX) });
    expect(r.identities).toEqual([{ kind: 'email', value: 'jane@example.com' }]);
    expect(r.payload).toEqual({ Title: 't\ufffd', k: 'v', Notes: 'n'.repeat(PAYLOAD_TEXT_MAX), nested: { a: [''] } });
    expect(r.modstamp).toBeNull();
    expect(r.ownerId).toBeNull();
    expect(out.cleaned).toEqual([
      { externalId: '0035g0000000001AAA', fields: ['person.givenName', 'person.surname', 'identity.email', 'identity.email', 'identity.phone', 'ownerId', 'payload', 'modstamp'] },
    ]);
    // what is logged holds no value of the record
    expect(JSON.stringify(out.skipped) + JSON.stringify(out.cleaned)).not.toMatch(/Jane|Secret|example\.com/);
  });

  it('drops a modification time PostgreSQL cannot hold (years 0 and 10000), keeps the first and last it can', () => {
    const at = (modstamp: string) => ({ externalId: '0035g0000000009AAA', modstamp });
    const out = guardCrmRecords([at('0000-06-01T00:00:00.000Z'), at('+010000-01-01T00:00:00.000Z'), at('0001-01-01T00:00:00.000Z'), at('9999-12-31T23:59:59.999Z')]);
    expect(out.records.map((r) => r.modstamp)).toEqual([null, null, '0001-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z']);
    expect(out.cleaned.map((c) => c.fields)).toEqual([['modstamp'], ['modstamp']]);
  });

  it('passes a clean record through unchanged and reports nothing', () => {
    const rec = { externalId: '123', ownerId: '9', modstamp: '2026-01-01T00:00:00.000Z', person: { givenName: 'Ann', surname: null }, identities: [{ kind: 'email' as const, value: 'ann@example.com' }], payload: { a: '1', b: null } };
    const out = guardCrmRecords([rec]);
    expect(out.records).toEqual([rec]);
    expect(out.cleaned).toEqual([]);
    expect(out.skipped).toEqual([]);
  });
});

describe('guardCrmCases', () => {
  it('sets apart cases without a usable id and drops unusable references', () => {
    const out = guardCrmCases([
      { externalId: '', status: 'New', isClosed: false, contactId: null, accountId: null, modstamp: null, deleted: false },
      { externalId: '5005g0000000001AAA', status: 'Cl\u0000osed', isClosed: true, contactId: 'c\u0000', accountId: '0015g0000000001AAA', modstamp: 'nope', deleted: false },
    ]);
    expect(out.skipped).toHaveLength(1);
    expect(out.cases).toEqual([{ externalId: '5005g0000000001AAA', status: 'Closed', isClosed: true, contactId: null, accountId: '0015g0000000001AAA', modstamp: null, deleted: false }]);
  });
});

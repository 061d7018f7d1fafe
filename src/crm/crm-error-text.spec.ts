import { describe, expect, it } from 'vitest';
import { looksLikePii } from '../auth/pii.policy';
import { CrmCallFailed } from './crm-budget';
import { crmErrorText, withoutCustomerData } from './crm-error-text';

describe('crmErrorText', () => {
  it.each([
    ['Email: invalid email address: jane.doe@example..com', 'Email: invalid email address: [email]'],
    ['FIELD_CUSTOM_VALIDATION_EXCEPTION: Contact Jane.Doe@Example.com (+1 415 555 0142) is on hold', 'FIELD_CUSTOM_VALIDATION_EXCEPTION: Contact [email] ([phone]) is on hold'],
    ['Property values were not valid: [{"isValid":false,"message":"jane@example.org is not a valid email","name":"email"}]', 'Property values were not valid: [{"isValid":false,"message":"[email] is not a valid email","name":"email"}]'],
    // the number from its first digit, as the policy reads it
    ["WHERE Email = 'jane@example.org' OR Phone = '(415) 555-0142'", "WHERE Email = '[email]' OR Phone = '([phone]'"],
    ['mailto:jane@example.org;bob@example.net', 'mailto:[email];[email]'],
  ])('%s', (text, kept) => {
    expect(crmErrorText(text)).toBe(kept);
    expect(looksLikePii(crmErrorText(text))).toBe(false);
  });

  it('keeps codes, field names and short numbers', () => {
    for (const t of ['UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record or 1 records', 'STRING_TOO_LONG: Earshot_Url__c: data value too large (max length=255)', 'HubSpot batch update contacts failed with 400: Property "earshot_url" does not exist']) {
      expect(crmErrorText(t)).toBe(t);
    }
  });

  it('drops the whole text when an address is written in a way the patterns do not take apart', () => {
    for (const t of ['refused: ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ', 'refused: ٤١٥٥٥٥٠١٤٢']) {
      expect(crmErrorText(t)).toBe('[CRM error text not kept: it quoted customer data]');
    }
  });
});

describe('withoutCustomerData', () => {
  it("rewrites a library error's message and stack and hides the body it keeps", () => {
    // what jsforce throws for an error answer: the message from the body, the body in `data`
    const e = Object.assign(new Error('Contact jane@example.org is locked'), { errorCode: 'UNABLE_TO_LOCK_ROW', data: [{ message: 'Contact jane@example.org is locked' }] });
    expect(withoutCustomerData(e)).toBe(e);
    expect(e.message).toBe('Contact [email] is locked');
    expect(e.stack).not.toContain('jane@');
    expect(JSON.stringify({ ...e })).not.toContain('jane@');
    expect(e.data).toEqual([{ message: 'Contact jane@example.org is locked' }]);
  });

  it("leaves Earshot's own errors as they are, their body not enumerable", () => {
    const e = new CrmCallFailed('Salesforce GET /services/data/v62.0/query failed with 503 after 3 attempts', 503, [{ message: 'jane@example.org' }]);
    expect(withoutCustomerData(e).message).toBe('Salesforce GET /services/data/v62.0/query failed with 503 after 3 attempts');
    expect(e.body).toEqual([{ message: 'jane@example.org' }]);
    expect(JSON.stringify({ ...e })).not.toContain('jane@');
  });

  it('keeps a bounded head of a huge text, cut at a space (the email pattern backtracks on runs without "@")', () => {
    // before: all 100,000 characters were read by the email pattern from every start (16.5 s)
    const out = crmErrorText(`${'a'.repeat(100_000)} jane.doe@example.com`);
    expect(out).toBe('[…100021 characters not kept]');
    const words = crmErrorText(`${'word '.repeat(1_000)}jane.doe@example.com`);
    expect(words.length).toBeLessThan(2_100);
    expect(words).toMatch(/characters not kept\]$/);
    expect(words).not.toContain('jane');
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { identityKey, normalizeEmail, normalizeHandle, normalizePhone, parsePhone, parseProfileUrl, PHONE_MEMO_MAX, phoneMemoSize, salesforceId18 } from './normalize';

describe('normalizeEmail', () => {
  it('trims, lower-cases and unwraps', () => {
    expect(normalizeEmail('  Jane.Doe@Example.COM ')).toBe('jane.doe@example.com');
    expect(normalizeEmail('mailto:jane@example.com')).toBe('jane@example.com');
    expect(normalizeEmail('Jane Doe <Jane@Example.com>')).toBe('jane@example.com');
  });

  it('keeps or strips plus-addressing as configured', () => {
    expect(normalizeEmail('jane+news@example.com', { plusAddressing: 'keep' })).toBe('jane+news@example.com');
    expect(normalizeEmail('jane+news@example.com', { plusAddressing: 'strip' })).toBe('jane@example.com');
  });

  it('removes Gmail dots only when asked and only for Gmail', () => {
    expect(normalizeEmail('jane.doe@gmail.com')).toBe('jane.doe@gmail.com');
    expect(normalizeEmail('jane.doe@googlemail.com', { plusAddressing: 'keep', gmailDots: 'strip' })).toBe('janedoe@gmail.com');
    expect(normalizeEmail('jane.doe@example.com', { plusAddressing: 'keep', gmailDots: 'strip' })).toBe('jane.doe@example.com');
  });

  it('refuses what is not an address', () => {
    expect(normalizeEmail('jane')).toBeNull();
    expect(normalizeEmail('jane@localhost')).toBeNull();
    expect(normalizeEmail('')).toBeNull();
    expect(normalizeEmail(null)).toBeNull();
  });

  it('refuses control and invisible characters, and look-alikes that lower-case into another address', () => {
    // a right-to-left override displays as another address; a zero-width space or a bell hides in one
    for (const bad of ['ann\u202Emoc.live@example.com', 'bob\u0007@example.com', 'c\u200Bd@example.com', 'dan@exa\u00ADmple.com', 'eve@example.c\uFEFFom']) {
      expect(normalizeEmail(bad)).toBeNull();
    }
    // the Kelvin sign lower-cases to an ASCII k: it would take kate@example.com's identity
    expect(normalizeEmail('\u212Aate@example.com')).toBeNull();
    expect(normalizeEmail('Kate@example.com')).toBe('kate@example.com');
    // letters of other scripts stay as they are (internationalised addresses)
    expect(normalizeEmail('JÖRG@Example.de')).toBe('jörg@example.de');
    expect(normalizeEmail('пример@пример.рф')).toBe('пример@пример.рф');
  });

  it('refuses what is longer than any address (RFC 5321: 254), which the unique index could not hold', () => {
    const local = 'a'.repeat(64);
    const at254 = `${local}@${'b'.repeat(254 - 64 - 1 - 4)}.com`;
    expect(at254).toHaveLength(254);
    expect(normalizeEmail(at254)).toBe(at254);
    expect(normalizeEmail(`x${at254}`)).toBeNull();
    expect(normalizeEmail(`${'c'.repeat(10_000)}@example.org`)).toBeNull();
    expect(normalizeEmail(`Jane <${'c'.repeat(10_000)}@example.org>`)).toBeNull();
  });

  it('reads a long run of angle brackets in linear time', () => {
    const t0 = performance.now();
    expect(normalizeEmail('<'.repeat(200_000))).toBeNull();
    expect(normalizeEmail(`Jane ${'<a'.repeat(100_000)}`)).toBeNull();
    expect(normalizeEmail(`${'<'.repeat(200_000)}Jane@Example.org>`)).toBe('jane@example.org');
    // quadratic before: 1.2 s for 50,000 `<` alone, so about 19 s for the first of these; a few
    // milliseconds now, so the bound cannot be reached on a loaded machine
    expect(performance.now() - t0).toBeLessThan(3_000);
  });
});

describe('normalizePhone', () => {
  it('writes numbers in E.164 whatever the input format', () => {
    expect(normalizePhone('+1 (415) 555-2671')).toBe('+14155552671');
    expect(normalizePhone('(415) 555-2671', 'US')).toBe('+14155552671');
    expect(normalizePhone('415.555.2671', 'US')).toBe('+14155552671');
    expect(normalizePhone('tel:+14155552671')).toBe('+14155552671');
    expect(normalizePhone('0044 20 7946 0958', 'US')).toBe('+442079460958');
  });

  it('reads national numbers in the default region', () => {
    expect(normalizePhone('020 7946 0958', 'GB')).toBe('+442079460958');
    expect(normalizePhone('0412 345 678', 'AU')).toBe('+61412345678');
    expect(normalizePhone('(02) 9876 5432', 'au')).toBe('+61298765432');
    expect(normalizePhone('030 901820', 'DE')).toBe('+4930901820');
  });

  it('returns null for numbers that are not valid where they are read', () => {
    expect(normalizePhone('555-1234', 'US')).toBeNull();
    expect(normalizePhone('12', 'US')).toBeNull();
    expect(normalizePhone('not a phone', 'US')).toBeNull();
  });

  it('answers from its memo exactly what it parses, per region', () => {
    const phoneish = fc.stringMatching(/^[ +0-9().\-x]{0,20}$/);
    fc.assert(
      fc.property(phoneish, fc.constantFrom('US', 'GB', 'au', 'DE'), (raw, region) => {
        const parsed = parsePhone(raw, region);
        expect(normalizePhone(raw, region)).toBe(parsed);
        expect(normalizePhone(raw, region)).toBe(parsed); // the second from the memo
      }),
      { numRuns: 2_000 },
    );
  });

  it('keeps at most PHONE_MEMO_MAX answers and no long inputs', () => {
    expect(phoneMemoSize(true)).toBe(0);
    expect(normalizePhone(`+1 415 555 2671${' '.repeat(100)}`, 'US')).toBe('+14155552671');
    expect(phoneMemoSize()).toBe(0);
    expect(normalizePhone('+1 415 555 2671', 'US')).toBe('+14155552671');
    expect(phoneMemoSize()).toBe(1);
    for (let i = 0; i < PHONE_MEMO_MAX + 500; i++) normalizePhone(`+1415${String(i).padStart(7, '0')}`, 'US');
    expect(phoneMemoSize()).toBe(PHONE_MEMO_MAX);
  });
});

describe('normalizeHandle', () => {
  it('strips @ and case, per network', () => {
    expect(normalizeHandle('x', '@Jane_Doe')).toBe('jane_doe');
    expect(normalizeHandle('twitter', 'Jane_Doe')).toBe('jane_doe');
    expect(normalizeHandle('instagram', '@jane.doe')).toBe('jane.doe');
    expect(normalizeHandle('tiktok', '@Jane.Doe')).toBe('jane.doe');
    expect(normalizeHandle('reddit', 'u/JaneDoe')).toBe('janedoe');
    expect(normalizeHandle('linkedin', 'in/jane-doe-123')).toBe('jane-doe-123');
  });

  it('ignores Facebook dots, keeps YouTube channel ids as they are', () => {
    expect(normalizeHandle('facebook', 'Jane.Doe')).toBe('janedoe');
    expect(normalizeHandle('youtube', '@JaneDoe')).toBe('janedoe');
    expect(normalizeHandle('youtube', 'UCabcdefghijklmnopqrstuv')).toBe('channel:UCabcdefghijklmnopqrstuv');
  });

  it('refuses what the network could not hold', () => {
    expect(normalizeHandle('x', 'this_handle_is_far_too_long')).toBeNull();
    expect(normalizeHandle('x', 'jane doe')).toBeNull();
    expect(normalizeHandle('myspace', 'jane')).toBeNull();
    expect(normalizeHandle('x', '  ')).toBeNull();
  });
});

describe('parseProfileUrl', () => {
  it('reads the account from profile URLs of each network', () => {
    expect(parseProfileUrl('https://x.com/Jane_Doe')).toEqual({ network: 'x', handle: 'jane_doe' });
    expect(parseProfileUrl('https://twitter.com/jane_doe/')).toEqual({ network: 'x', handle: 'jane_doe' });
    expect(parseProfileUrl('www.instagram.com/jane.doe/')).toEqual({ network: 'instagram', handle: 'jane.doe' });
    expect(parseProfileUrl('https://www.facebook.com/Jane.Doe')).toEqual({ network: 'facebook', handle: 'janedoe' });
    expect(parseProfileUrl('https://www.facebook.com/profile.php?id=100012345')).toEqual({ network: 'facebook', handle: 'id:100012345' });
    expect(parseProfileUrl('https://www.linkedin.com/in/jane-doe-123/')).toEqual({ network: 'linkedin', handle: 'jane-doe-123' });
    expect(parseProfileUrl('https://uk.linkedin.com/in/jane-doe')).toEqual({ network: 'linkedin', handle: 'jane-doe' });
    expect(parseProfileUrl('https://www.reddit.com/u/JaneDoe')).toEqual({ network: 'reddit', handle: 'janedoe' });
    expect(parseProfileUrl('https://old.reddit.com/user/JaneDoe/comments')).toEqual({ network: 'reddit', handle: 'janedoe' });
    expect(parseProfileUrl('https://www.youtube.com/@JaneDoe')).toEqual({ network: 'youtube', handle: 'janedoe' });
    expect(parseProfileUrl('https://www.youtube.com/c/JaneDoeVlogs')).toEqual({ network: 'youtube', handle: 'c:janedoevlogs' });
    expect(parseProfileUrl('https://www.youtube.com/channel/UCabcdefghijklmnopqrstuv')).toEqual({ network: 'youtube', handle: 'channel:UCabcdefghijklmnopqrstuv' });
    expect(parseProfileUrl('https://www.tiktok.com/@jane.doe')).toEqual({ network: 'tiktok', handle: 'jane.doe' });
  });

  it('returns null for pages that are not one account', () => {
    expect(parseProfileUrl('https://x.com/jane_doe/status/123')).toBeNull();
    expect(parseProfileUrl('https://x.com/search?q=earshot')).toBeNull();
    expect(parseProfileUrl('https://www.instagram.com/p/Cabc123/')).toBeNull();
    expect(parseProfileUrl('https://www.linkedin.com/company/earshot')).toBeNull();
    expect(parseProfileUrl('https://example.com/jane')).toBeNull();
    expect(parseProfileUrl('ftp://x.com/jane')).toBeNull();
    expect(parseProfileUrl('not a url at all')).toBeNull();
  });
});

describe('identityKey', () => {
  it('gives one value per identity, whatever form it arrives in', () => {
    expect(identityKey('email', null, ' Jane+shop@Example.com', { email: { plusAddressing: 'strip' } })).toBe('jane@example.com');
    expect(identityKey('phone', null, '(02) 9876 5432', { defaultRegion: 'AU' })).toBe('+61298765432');
    expect(identityKey('handle', 'twitter', '@Jane_Doe')).toBe('x:jane_doe');
    expect(identityKey('profile_url', null, 'https://x.com/Jane_Doe')).toBe('x:jane_doe');
    expect(identityKey('crm', 'hubspot', 'contact:51')).toBe('hubspot:contact:51');
  });

  it('stores Salesforce ids in their 18-character form', () => {
    expect(salesforceId18('001A0000006Vm9r')).toBe('001A0000006Vm9rIAC');
    expect(identityKey('crm', 'salesforce', 'Contact:001A0000006Vm9r')).toBe('salesforce:Contact:001A0000006Vm9rIAC');
    expect(identityKey('crm', 'Salesforce', 'contact:001A0000006Vm9rIAC')).toBe('salesforce:Contact:001A0000006Vm9rIAC');
  });

  it('returns null rather than a half-normalized value', () => {
    expect(identityKey('handle', null, 'jane')).toBeNull();
    expect(identityKey('crm', 'pipedrive', 'person:1')).toBeNull();
    expect(identityKey('crm', 'salesforce', '003xx')).toBeNull();
    expect(identityKey('email', null, 'nope')).toBeNull();
  });
});

import { describe, expect, it } from 'vitest';
import { fastest } from '../../test/support/fastest';
import { identityKey, normalizeEmail, normalizeHandle } from './normalize';

describe('normalizeHandle on hostile input', () => {
  it('cuts the trailing slashes of a LinkedIn handle in time linear in its length', () => {
    const slashes = (n: number) => `in/${'/'.repeat(n)}x`;
    normalizeHandle('linkedin', slashes(1_000));
    const small = fastest(() => normalizeHandle('linkedin', slashes(8_000)));
    // 4 times longer: about 4 times the work; before, `/\/+$/` made it 16 times (25 ms, then 420 ms)
    expect(fastest(() => normalizeHandle('linkedin', slashes(32_000)))).toBeLessThan(8 * small + 2);
  });

  it('reads LinkedIn handles as before', () => {
    expect(normalizeHandle('linkedin', 'in/jane-doe///')).toBe('jane-doe');
    expect(normalizeHandle('linkedin', '/in/Jane-Doe/')).toBe('jane-doe');
    expect(normalizeHandle('linkedin', '////')).toBeNull();
    expect(normalizeHandle('linkedin', 'jane/doe/')).toBeNull();
    expect(identityKey('profile_url', null, 'https://www.linkedin.com/in/jane-doe/')).toBe('linkedin:jane-doe');
  });
});

describe('normalizeEmail on hostile input', () => {
  it('refuses a field far longer than any address before reading its characters one by one', () => {
    // the look-alike check reads character by character: on a 1 MB CRM field that is not ASCII it
    // cost three times the plain refusal, before the length check moved ahead of it
    const ascii = 'a'.repeat(1_000_000);
    const accented = 'é'.repeat(1_000_000);
    expect(normalizeEmail(accented)).toBeNull();
    const plain = fastest(() => normalizeEmail(ascii));
    expect(fastest(() => normalizeEmail(accented))).toBeLessThan(2 * plain + 2);
  });

  it('still finds a look-alike inside a long display name', () => {
    expect(normalizeEmail(`${'J'.repeat(3_000)} <\u212Aate@example.com>`)).toBeNull();
    expect(normalizeEmail(`${'J'.repeat(3_000)} <Kate@example.com>`)).toBe('kate@example.com');
  });
});

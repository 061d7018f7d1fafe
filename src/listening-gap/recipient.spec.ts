import { describe, expect, it } from 'vitest';
import { authorIdentities } from '../identity/author-identities';
import { authorKeyOf, participantKey, recipientOf } from './recipient';

describe('the key an author and the addressee of a reply meet on', () => {
  it('normalizes addresses on the address channels and handles elsewhere', () => {
    expect(participantKey('email', 'Jane Roe <Jane.Roe@Example.org>')).toBe('jane.roe@example.org');
    expect(participantKey('sms', '(415) 555-0199')).toBe('+14155550199');
    expect(participantKey('whatsapp', '+44 20 7946 0958')).toBe('+442079460958');
    expect(participantKey('sms', '020 7946 0958', { defaultRegion: 'GB' })).toBe('+442079460958');
    // a chat visitor id is no address: kept as written, in lower case
    expect(participantKey('chat', 'Visitor-5521')).toBe('visitor-5521');
    // a number is an address only where one texts or calls from it
    expect(participantKey('email', '(415) 555-0199')).toBe('(415) 555-0199');
    expect(participantKey('x', '@JaneDoe')).toBe('janedoe');
    expect(participantKey('x', '  ')).toBeNull();
    expect(participantKey('x', '@')).toBeNull();
  });

  it('an author and the reply addressed to them give one key', () => {
    expect(authorKeyOf({ source: 'x', author: { handle: '@JaneDoe' } })).toBe(recipientOf({ source: 'x', text: '@janedoe thanks!' }));
    expect(authorKeyOf({ source: 'email', author: { handle: 'Jane <JANE@example.org>' } })).toBe(recipientOf({ source: 'email', text: 'Hi', metadata: { recipientHandle: 'jane@example.org' } }));
    expect(authorKeyOf({ source: 'sms', author: { phone: '415-555-0199' } })).toBe(recipientOf({ source: 'sms', text: 'Hi', metadata: { recipientHandle: '+1 415 555 0199' } }));
    expect(recipientOf({ source: 'x', text: 'no addressee' })).toBeNull();
  });

  it('keys a handle on an address channel as identity resolution keys the author (one rule: addressesOf)', () => {
    const opts = { defaultRegion: 'GB', email: { plusAddressing: 'strip' as const } };
    const cases = [
      ['email', 'Jane <Jane+Orders@Example.org>'],
      ['sms', '020 7946 0958'],
      ['whatsapp', 'whatsapp:+14155550199'],
      ['chat', 'jane@example.org'],
      ['ticket', '4155550199'],
      ['x', 'jane@example.org'],
    ] as const;
    for (const [source, handle] of cases) {
      const claims = authorIdentities({ source, externalId: '1', direction: 'inbound', occurredAt: '2026-11-01T00:00:00Z', text: 'hi', author: { handle } } as never, opts);
      const address = claims.find((c) => c.kind === 'email' || c.kind === 'phone');
      expect(participantKey(source, handle, opts), `${source} ${handle}`).toBe(address?.value ?? handle.toLowerCase());
    }
  });
});

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

  it('an addressee written otherwise than the author still gives their key: composed or decomposed accents, a blank after the @, a sentence that ends after the @handle', () => {
    // before: 'jose\u0301' against 'josé', ' lee' against 'lee', 'max.' against 'max': the reply answered nothing
    expect(recipientOf({ source: 'trustpilot', text: 'Hi', metadata: { recipientHandle: 'Jose\u0301' } })).toBe(authorKeyOf({ source: 'trustpilot', author: { handle: 'Jos\u00e9' } }));
    expect(recipientOf({ source: 'x', text: 'Hi', metadata: { recipientHandle: '@ lee' } })).toBe(authorKeyOf({ source: 'x', author: { handle: 'lee' } }));
    expect(recipientOf({ source: 'x', text: '@max. Sorry about that, refunded.' })).toBe(authorKeyOf({ source: 'x', author: { handle: 'max' } }));
    expect(recipientOf({ source: 'instagram', text: '@ann.lee... we are on it' })).toBe('ann.lee');
    expect(recipientOf({ source: 'x', text: '@. hello' })).toBeNull();
    // invisible characters a tool leaves in (a zero-width space, a direction mark) are none of it
    expect(recipientOf({ source: 'x', text: 'Hi', metadata: { recipientHandle: '\u200b@Jane\u200e' } })).toBe(authorKeyOf({ source: 'x', author: { handle: 'jane' } }));
    expect(recipientOf({ source: 'email', text: 'Hi', metadata: { recipientHandle: 'jane@\u2060example.org' } })).toBe(authorKeyOf({ source: 'email', author: { email: 'jane@example.org' } }));
  });

  it('a placeholder address or handle (identity resolution ignores it: thousands share it) names nobody; an author falls back to the next of handle, e-mail, phone', () => {
    // before: every sender of a web form (noreply@…) was one author, their complaints joined one
    // item, a reply to one answered another's, and erasing one redacted the replies to all
    expect(participantKey('ticket', 'noreply@forms.example')).toBeNull();
    expect(participantKey('email', 'Guest <guest@shop.example>')).toBeNull();
    expect(participantKey('sms', '+1 415 555 1212')).toBeNull();
    expect(participantKey('x', '@Anonymous')).toBeNull();
    expect(participantKey('ticket', 'desk@acme.example', { ignored: ['desk@acme.example'] })).toBeNull();
    expect(participantKey('ticket', 'ops@acme.example', { ignored: ['@acme.example'] })).toBeNull();
    expect(recipientOf({ source: 'ticket', text: 'Hello Bob', metadata: { recipientHandle: 'noreply@forms.example' } })).toBeNull();
    expect(authorKeyOf({ source: 'ticket', author: { email: 'noreply@forms.example', phone: '+1 415 555 0142' } })).toBe('+1 415 555 0142');
    expect(authorKeyOf({ source: 'sms', author: { handle: 'unknown', phone: '415 555 0142' } })).toBe('+14155550142');
    expect(authorKeyOf({ source: 'ticket', author: { email: 'noreply@forms.example' } })).toBeNull();
    // a person's own address stays theirs
    expect(participantKey('ticket', 'me@jane.example')).toBe('me@jane.example');
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

  it('reads a phone number sent as a JSON number on the phone channels, and nowhere else', () => {
    expect(recipientOf({ source: 'sms', text: 'Hi', metadata: { recipientHandle: 4155550199 } })).toBe(authorKeyOf({ source: 'sms', author: { phone: '(415) 555-0199' } }));
    expect(recipientOf({ source: 'x', text: 'Hi', metadata: { recipientHandle: 4155550199 } })).toBeNull();
    expect(recipientOf({ source: 'sms', text: 'Hi', metadata: { recipientHandle: 1e300 } })).toBeNull();
  });
});

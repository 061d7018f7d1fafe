import { describe, expect, it } from 'vitest';
import { authorIdentities } from './author-identities';

const claimsOf = (source: string, author: Record<string, unknown>) =>
  authorIdentities({ source, externalId: '1', direction: 'inbound', occurredAt: '2026-11-01T00:00:00Z', text: 'hi', author } as never, { defaultRegion: 'US' }).map((c) => `${c.kind}:${c.value}`);

describe('authorIdentities: the handle on an address channel is the address', () => {
  it("an email's sender, however written, is the author's email", () => {
    for (const handle of ['jane@example.com', 'Jane Doe <Jane@Example.com>', 'mailto:jane@example.com', ' JANE@example.com ']) {
      expect(claimsOf('email', { handle }), handle).toEqual(['email:jane@example.com']);
    }
    // a ticket or chat whose requester is an address
    expect(claimsOf('ticket', { handle: 'jane@example.com' })).toEqual(['email:jane@example.com']);
    expect(claimsOf('chat', { handle: 'jane@example.com' })).toEqual(['email:jane@example.com']);
  });

  it("a caller's or texter's number is the author's phone", () => {
    for (const source of ['sms', 'call', 'whatsapp']) {
      for (const handle of ['+1 415 555 2671', '(415) 555-2671', 'tel:+14155552671', 'whatsapp:+14155552671']) expect(claimsOf(source, { handle }), `${source} ${handle}`).toEqual(['phone:+14155552671']);
    }
    // a number on a ticket or chat may be an account or visitor id: not a phone
    expect(claimsOf('ticket', { handle: '4155552671' })).toEqual([]);
    expect(claimsOf('chat', { handle: 'visitor-8812' })).toEqual([]);
  });

  it('an email or phone the message names itself wins: the handle adds no second one', () => {
    expect(claimsOf('email', { handle: 'forwarder@relay.example', email: 'jane@example.com' })).toEqual(['email:jane@example.com']);
    expect(claimsOf('sms', { handle: '+1 415 555 2671', phone: '+1 212 555 0100' })).toEqual(['phone:+12125550100']);
    // a phone named with an email handle: both
    expect(claimsOf('email', { handle: 'jane@example.com', phone: '+1 415 555 2671' })).toEqual(['email:jane@example.com', 'phone:+14155552671']);
  });

  it('placeholders stay out, and handles elsewhere are what they were', () => {
    expect(claimsOf('email', { handle: 'test@test.com' })).toEqual([]);
    expect(claimsOf('sms', { handle: '+1 234 567 8900' })).toEqual([]);
    expect(claimsOf('x', { handle: 'jane@example.com' })).toEqual([]);
    expect(claimsOf('x', { handle: '@Jane' })).toEqual(['handle:x:jane']);
    expect(claimsOf('trustpilot', { handle: 'jane@example.com' })).toEqual([]);
  });
});

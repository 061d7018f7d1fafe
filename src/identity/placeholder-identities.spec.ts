import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/config';
import { authorIdentities } from './author-identities';
import { identityKey, isPlaceholderIdentity } from './normalize';

const key = (kind: 'email' | 'phone', raw: string) => identityKey(kind, null, raw, { defaultRegion: 'US' })!;

describe('isPlaceholderIdentity', () => {
  it('knows the placeholder emails people type when a form demands one', () => {
    for (const e of ['test@test.com', 'noreply@shop.example', 'no-reply@bank.example', 'None@None.com', 'na@na.com', 'someone@noemail.com', 'x@company.example', 'jane@mail.invalid']) {
      expect(isPlaceholderIdentity('email', key('email', e)), e).toBe(true);
    }
    for (const e of ['jane@example.com', 'info@family-garcia.example', 'tester@gmail.com', 'nobody.special@example.org']) {
      expect(isPlaceholderIdentity('email', key('email', e)), e).toBe(false);
    }
  });

  it('knows fake phones that are still valid numbers; invalid ones never get this far', () => {
    for (const p of ['+1 234 567 8900', '+44 7777 777777', '+33 6 66 66 66 66', '(212) 555-1212', '+1 876 543 2100']) {
      const v = key('phone', p);
      expect(v, p).not.toBeNull();
      expect(isPlaceholderIdentity('phone', v), p).toBe(true);
    }
    for (const p of ['0000000000', '+1 555-555-5555', '1234567890', '9999999999']) expect(key('phone', p), p).toBeNull();
    for (const p of ['+1 415 555 2671', '+1 212 555 0100', '+61 412 345 678', '+49 30 1234567']) expect(isPlaceholderIdentity('phone', key('phone', p)), p).toBe(false);
  });

  it('knows the junk of real CRM exports and forms, and leaves real addresses alone', () => {
    for (const e of ['no@email.com', 'customer@example.com', 'user@example.com', 'a@a.com', 'abc@abc.com', 'na@na.na', '123@123.com', 'a@b.com', 'notprovided@gmail.com', 'No.Email@gmail.com', 'declined@declined.com', 'name@domain.com', 'youremail@domain.com', 'guest@guest.com', 'dummy@dummy.com', 'sample@sample.com', 'undefined@undefined.com']) {
      expect(isPlaceholderIdentity('email', key('email', e)), e).toBe(true);
    }
    // a vanity domain repeats a longer word; `me@` is a person's own; real providers stay
    for (const e of ['jane@jane.dev', 'me@janedoe.example', 'ann@lee.example', 'jo@jo-smith.com', 'noah@gmail.com', 'nora@email.com', 'customer.care.fan@gmail.com', 'al@bo.com']) {
      expect(isPlaceholderIdentity('email', key('email', e)), e).toBe(false);
    }
  });

  it('knows business lines (toll-free, premium rate, shared cost) and NXX-555-5555', () => {
    for (const p of ['+1 800 555 0199', '1-888-555-0142', '(877) 555-0100', '+1 900 555 0100', '+44 800 123 4567', '+44 345 600 0000', '(212) 555-5555']) {
      const v = key('phone', p);
      expect(v, p).not.toBeNull();
      expect(isPlaceholderIdentity('phone', v), p).toBe(true);
    }
    for (const p of ['+1 415 555 2671', '+1 201 555 0123', '+44 20 7946 0000', '+44 7911 123456', '+33 6 12 34 56 78']) expect(isPlaceholderIdentity('phone', key('phone', p)), p).toBe(false);
  });

  it('knows handles a feed writes for a missing author, and CRM ids no CRM gives', () => {
    for (const h of ['null', 'undefined', 'None', 'Anonymous', 'unknown', 'deleted']) expect(isPlaceholderIdentity('handle', identityKey('handle', 'x', h)!), h).toBe(true);
    for (const h of ['user', 'admin', 'jane_doe', 'nullpointer']) expect(isPlaceholderIdentity('handle', identityKey('handle', 'x', h)!), h).toBe(false);
    for (const [system, ref] of [['hubspot', 'contact:0'], ['hubspot', 'contact:000'], ['salesforce', 'Contact:0'], ['salesforce', 'Contact:000000000000000'], ['hubspot', 'contact:null'], ['salesforce', 'Lead:undefined']]) {
      expect(isPlaceholderIdentity('crm', identityKey('crm', system, ref)!), ref).toBe(true);
    }
    for (const [system, ref] of [['hubspot', 'contact:51'], ['hubspot', 'contact:100'], ['salesforce', 'Contact:003000000000001']]) expect(isPlaceholderIdentity('crm', identityKey('crm', system, ref)!), ref).toBe(false);
  });

  it('takes configured entries: a local part, a domain, an address, a phone, a handle', () => {
    const c = loadConfig({ EARSHOT_IDENTITY_IGNORED: 'Info@, @Switchboard.example, Desk@Acme.example, (415) 555-2671, twitter:@AcmeBrand' });
    expect(c.identity.ignored).toEqual(['info@', '@switchboard.example', 'desk@acme.example', '+14155552671', 'x:acmebrand']);
    const ign = c.identity.ignored;
    expect(isPlaceholderIdentity('email', 'info@acme.example', ign)).toBe(true);
    expect(isPlaceholderIdentity('email', 'jane@switchboard.example', ign)).toBe(true);
    expect(isPlaceholderIdentity('email', 'desk@acme.example', ign)).toBe(true);
    expect(isPlaceholderIdentity('email', 'jane@acme.example', ign)).toBe(false);
    expect(isPlaceholderIdentity('phone', '+14155552671', ign)).toBe(true);
    expect(isPlaceholderIdentity('handle', 'x:acmebrand', ign)).toBe(true);
    expect(() => loadConfig({ EARSHOT_IDENTITY_IGNORED: 'not a thing' })).toThrow(/EARSHOT_IDENTITY_IGNORED/);
    expect(c.identity.hubCap).toBe(20);
  });

  it('leaves placeholders out of an author\'s claims, keeping the rest', () => {
    const claims = authorIdentities(
      { source: 'x', externalId: '1', direction: 'inbound', occurredAt: '2026-11-01T00:00:00Z', text: 'hi', author: { handle: 'jane', email: 'test@test.com', phone: '+1 234 567 8900' } } as never,
      { defaultRegion: 'US' },
    );
    expect(claims.map((c) => `${c.kind}:${c.value}`)).toEqual(['handle:x:jane']);
  });
});

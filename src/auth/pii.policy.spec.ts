import { describe, expect, it } from 'vitest';
import { authorHandleFor, customerDisplayName, displayNameFor, identityValueFor, looksLikePii, PUBLIC_VIEWER, safeDisplayName, searchScopeFor } from './pii.policy';

const analyst = { roles: ['analyst' as const] };
const agentAnalyst = { roles: ['agent' as const, 'analyst' as const] };

describe('PII policy', () => {
  it('recognizes emails and phone numbers as written, not names, handles or dates of one number', () => {
    for (const v of ['jane@example.com', 'Mail me: j.doe+x@mail.co.uk', '+1 (415) 555-0142', '415.555.0187', '+44 20 7946 0321', '07700900123'])
      expect(looksLikePii(v), v).toBe(true);
    for (const v of ['Jane Doe', 'jane_doe', 'user12345678', 'Acme Ltd.', '@jane', 'Order 12345', null]) expect(looksLikePii(v), String(v)).toBe(false);
  });

  it('reads other scripts\' digits, full-width signs and no-break spaces as the phone normalizer does', () => {
    for (const v of ['+１ ４１５ ５５５ ０１４２', '０９０－１２３４－５６７８', '٤١٥٥٥٥٠١٤٢', '۰۹۱۲۳۴۵۶۷۸۹', '+33\u00a06\u00a012\u00a034\u00a056\u00a078', 'ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ', 'jane﹫example﹒com'])
      expect(looksLikePii(v), v).toBe(true);
    for (const v of ['Zoë Ångström', '山田 太郎', '١٢٣٤٥٦', 'محمد']) expect(looksLikePii(v), v).toBe(false);
    expect(customerDisplayName('x', { handle: 'janedoe', displayName: '+１ ４１５ ５５５ ０１４２' })).toBe('janedoe');
  });

  it('names a new customer after a public name or social handle, never an address', () => {
    expect(customerDisplayName('sms', { handle: '+14155550142' })).toBeNull();
    expect(customerDisplayName('email', { handle: 'jane@example.com' })).toBeNull();
    expect(customerDisplayName('call', { handle: 'caller-77' })).toBeNull();
    expect(customerDisplayName('x', { handle: 'janedoe' })).toBe('janedoe');
    expect(customerDisplayName('x', { handle: 'janedoe', displayName: 'jane@example.com' })).toBe('janedoe');
    expect(customerDisplayName('email', { handle: 'jane@example.com', displayName: 'Jane Doe' })).toBe('Jane Doe');
    expect(safeDisplayName('  ', null, 'Acme')).toBe('Acme');
  });

  it('decides per viewer: several roles act together, topics read as a role without PII', () => {
    expect(displayNameFor(analyst, 'jane@example.com')).toBeNull();
    expect(displayNameFor(agentAnalyst, 'jane@example.com')).toBe('jane@example.com');
    expect(displayNameFor(PUBLIC_VIEWER, 'Jane')).toBe('Jane');
    expect(authorHandleFor(analyst, 'sms', 'caller-77')).toBeNull();
    expect(authorHandleFor(analyst, 'x', 'janedoe')).toBe('janedoe');
    expect(authorHandleFor(analyst, 'x', 'jane@example.com')).toBeNull();
    expect(authorHandleFor(agentAnalyst, 'sms', '+14155550142')).toBe('+14155550142');
    expect(identityValueFor(analyst, 'email', null, 'jane@example.com')).toBeNull();
    expect(identityValueFor(analyst, 'handle', 'whatsapp', 'whatsapp:+14155550142')).toBeNull();
    expect(identityValueFor(analyst, 'handle', 'x', 'x:janedoe')).toBe('x:janedoe');
    expect(searchScopeFor(analyst)).toBe('display-name-without-pii');
    expect(searchScopeFor(agentAnalyst)).toBe('display-name');
    expect(searchScopeFor(null)).toBe('display-name-without-pii');
  });
});

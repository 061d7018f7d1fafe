import { describe, expect, it } from 'vitest';
import { parseMessage } from './interaction-message';

const valid = {
  source: 'x',
  externalId: '1',
  occurredAt: '2026-11-20T10:00:00Z',
  direction: 'inbound',
  author: { handle: 'jane' },
  text: 'hello',
};
const parse = (v: unknown, max = 1000) => parseMessage(JSON.stringify(v), max);

describe('interactions.v1 validation', () => {
  it('accepts a minimal valid message', () => {
    expect(parse(valid)).toMatchObject({ ok: true });
  });

  it('names malformed JSON', () => {
    expect(parseMessage('{"source": ', 1000)).toMatchObject({ ok: false, error: expect.stringMatching(/^malformed JSON/) });
  });

  it('names missing and mistyped fields', () => {
    const r = parse({ ...valid, externalId: undefined, text: 5 });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toContain("missing required field 'externalId'");
      expect(r.error).toContain('text: must be string');
    }
  });

  it('rejects an unknown source, listing the allowed ones', () => {
    const r = parse({ ...valid, source: 'myspace' });
    expect(r).toMatchObject({ ok: false, error: expect.stringContaining('source: must be one of x, facebook') });
  });

  it('needs some way to identify the author', () => {
    expect(parse({ ...valid, author: { displayName: 'Jane' } })).toMatchObject({
      ok: false,
      error: 'author: needs at least one of handle, email, phone, crmIds',
    });
  });

  it('rejects a text over the byte limit', () => {
    expect(parse({ ...valid, text: 'é'.repeat(600) }, 1000)).toMatchObject({ ok: false, error: expect.stringContaining('longer than the limit of 1000 bytes') });
  });

  it('rejects bad dates and unknown fields', () => {
    expect(parse({ ...valid, occurredAt: 'yesterday' })).toMatchObject({ ok: false });
    expect(parse({ ...valid, colour: 'red' })).toMatchObject({ ok: false, error: "unknown field 'colour'" });
  });
});

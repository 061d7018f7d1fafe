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
  it('refuses a text whose JSON would not fit in its event (with Kafka output), counting escapes, not characters', () => {
    const limits = { maxTextBytes: 100_000, maxEventTextBytes: 1_000 };
    const text = (t: string) => parseMessage(JSON.stringify({ ...valid, text: t }), limits);
    // 200 control characters: 200 bytes of UTF-8, 1,202 as JSON
    expect(text('\u0001'.repeat(200))).toMatchObject({ ok: false, kind: 'too-large', error: expect.stringMatching(/^text: 1202 bytes as JSON \(escapes included\)/) });
    expect(text('"'.repeat(500))).toMatchObject({ ok: false, kind: 'too-large' });
    // as long or longer in UTF-8, but JSON writes it as it is
    for (const fits of ['a'.repeat(998), 'é'.repeat(499), '"'.repeat(498), '\u0001'.repeat(166)]) expect(text(fits)).toMatchObject({ ok: true });
    // without Kafka output there is no event: only the text limit counts
    expect(parseMessage(JSON.stringify({ ...valid, text: '\u0001'.repeat(200) }), { maxTextBytes: 100_000, maxEventTextBytes: null })).toMatchObject({ ok: true });
  });

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

describe('edge checks: what PostgreSQL would refuse is refused line by line', () => {
  const ok = (over: Record<string, unknown>) => parse({ ...valid, ...over });

  it('refuses NUL characters in any string and in metadata keys, naming the field', () => {
    expect(ok({ text: 'a\u0000b' })).toMatchObject({ ok: false, kind: 'invalid-value', error: expect.stringMatching(/^text: .*NUL/) });
    expect(ok({ author: { handle: 'j', displayName: '\u0000' } })).toMatchObject({ ok: false, error: expect.stringMatching(/^author\.displayName: .*NUL/) });
    expect(ok({ externalId: '1\u0000' })).toMatchObject({ ok: false, error: expect.stringMatching(/^externalId: .*NUL/) });
    expect(ok({ metadata: { 'a\u0000': 1 } })).toMatchObject({ ok: false, error: expect.stringMatching(/^metadata: the key .*NUL/) });
    expect(ok({ metadata: { a: [{ b: 'x\u0000' }] } })).toMatchObject({ ok: false, error: expect.stringMatching(/^metadata\.a\.0\.b: .*NUL/) });
  });

  it('refuses lone surrogates and keeps well-formed pairs', () => {
    expect(parseMessage('{"source":"x","externalId":"1","occurredAt":"2026-11-20T10:00:00Z","direction":"inbound","author":{"handle":"j"},"text":"\\ud800"}', 1000)).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^text: .*lone UTF-16 surrogate/),
    });
    expect(ok({ text: 'emoji 😀 fine' })).toMatchObject({ ok: true });
  });

  it('refuses timestamps PostgreSQL cannot store or no interaction has', () => {
    expect(ok({ occurredAt: '0000-01-01T00:00:00Z' })).toMatchObject({ ok: false, error: expect.stringMatching(/before 1970-01-01T00:00:00.000Z \(EARSHOT_INGEST_EARLIEST_OCCURRED_AT\)/) });
    expect(ok({ occurredAt: '9999-12-31T23:59:59-14:00' })).toMatchObject({ ok: false, error: expect.stringMatching(/in the future \(EARSHOT_INGEST_MAX_FUTURE_DAYS\)/) });
    const now = () => Date.UTC(2026, 10, 20);
    expect(parseMessage(JSON.stringify({ ...valid, occurredAt: '2026-11-22T00:00:00Z' }), { maxFutureMs: 86_400_000, now })).toMatchObject({ ok: false });
    expect(parseMessage(JSON.stringify({ ...valid, occurredAt: '2026-11-20T12:00:00Z' }), { maxFutureMs: 86_400_000, now })).toMatchObject({ ok: true });
  });

  it('takes occurredAt up to 24 hours past its clock by default, and names the limit when it refuses', () => {
    const now = () => Date.UTC(2026, 11, 4, 12);
    const at = (hours: number) => JSON.stringify({ ...valid, occurredAt: new Date(now() + hours * 3_600_000).toISOString() });
    expect(parseMessage(at(23.9), { now })).toMatchObject({ ok: true });
    expect(parseMessage(at(24.1), { now })).toMatchObject({ ok: false, kind: 'invalid-value', error: expect.stringMatching(/^occurredAt: 2026-12-05T12:06:00.000Z is more than 24 hours in the future \(EARSHOT_INGEST_MAX_FUTURE_DAYS\)$/) });
    expect(parseMessage(at(9 * 8760), { now })).toMatchObject({ ok: false, kind: 'invalid-value' });
    expect(parseMessage(at(9 * 8760), { now, maxFutureMs: 3650 * 86_400_000 })).toMatchObject({ ok: true });
    expect(parseMessage(at(3651 * 24), { now, maxFutureMs: 3650 * 86_400_000 })).toMatchObject({ ok: false, error: expect.stringMatching(/more than 3650 days in the future/) });
  });

  it('refuses metadata deeper or larger than the limits, without overflowing the stack', () => {
    const deep = `{"source":"x","externalId":"1","occurredAt":"2026-11-20T10:00:00Z","direction":"inbound","author":{"handle":"j"},"text":"t","metadata":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`;
    expect(parseMessage(deep, 1000)).toMatchObject({ ok: false, kind: 'invalid-value', error: 'metadata: nested deeper than 32 levels (EARSHOT_INGEST_MAX_METADATA_DEPTH)' });
    let m: unknown = 1;
    for (let i = 0; i < 31; i++) m = { a: m };
    // metadata itself is level 1: m under one more key makes 32, the limit; under two, 33
    expect(ok({ metadata: { a: m } })).toMatchObject({ ok: true });
    expect(ok({ metadata: { a: { b: m } } })).toMatchObject({ ok: false });
    expect(ok({ metadata: { blob: 'x'.repeat(2_000) } })).toMatchObject({ ok: true });
    expect(parseMessage(JSON.stringify({ ...valid, metadata: { blob: 'x'.repeat(2_000) } }), { maxMetadataBytes: 1_000 })).toMatchObject({ ok: false, kind: 'too-large' });
  });

  it('refuses bytes that are not UTF-8', () => {
    const bytes = Buffer.concat([Buffer.from(JSON.stringify(valid).slice(0, -2)), Buffer.from([0xff]), Buffer.from('"}')]);
    expect(parseMessage(bytes, 1000)).toEqual({ ok: false, kind: 'invalid-encoding', error: 'the message is not valid UTF-8' });
  });
});

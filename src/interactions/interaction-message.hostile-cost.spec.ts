import { describe, expect, it } from 'vitest';
import { fastest } from '../../test/support/fastest';
import { parseMessage } from './interaction-message';

// Cost of parsing hostile lines, compared with lines of ordinary content of the same size (no
// absolute milliseconds: the ratio is what grows on a defect). The longest line the edge reads is
// 6 × (text + metadata limits) + 64 KiB, about 2 MB with the defaults (ingest.service.ts).

const HEAD = '{"source":"x","externalId":"1","occurredAt":"2026-11-20T10:00:00Z","direction":"inbound","author":{"handle":"j"},"text":"t"';

describe('parseMessage on hostile nesting', () => {
  const levels = 1_000_000; // a 2 MB line
  const deepMetadata = `${HEAD},"metadata":{"a":${'['.repeat(levels)}${']'.repeat(levels)}}}`;
  const deepText = `${HEAD.replace('"text":"t"', `"text":${'{"a":'.repeat(levels / 3)}1${'}'.repeat(levels / 3)}`)}}`;
  // the same size of ordinary content: a long text
  const flat = `${HEAD.replace('"text":"t"', `"text":${JSON.stringify('every word counts here. '.repeat(deepMetadata.length / 24))}`)}}`;

  it('refuses nesting no valid message has unread, with the answer validation gives it', () => {
    expect(parseMessage(deepMetadata, {})).toEqual({ ok: false, kind: 'invalid-value', error: 'metadata: nested deeper than 32 levels (EARSHOT_INGEST_MAX_METADATA_DEPTH)' });
    expect(parseMessage(deepText, {})).toMatchObject({ ok: false, kind: 'schema-violation', error: expect.stringMatching(/^text: nested deeper than any valid message/) });
    expect(parseMessage(`${'['.repeat(levels)}${']'.repeat(levels)}`, {})).toMatchObject({ ok: false, kind: 'schema-violation', error: expect.stringMatching(/^message: nested/) });
    // metadata up to the limit still passes (metadata is level 1), and the limit is the configured one
    let m = '1';
    for (let i = 0; i < 31; i++) m = `{"a":${m}}`;
    expect(parseMessage(`${HEAD},"metadata":{"a":${m}}}`, {})).toMatchObject({ ok: true });
    expect(parseMessage(`${HEAD},"metadata":{"a":{"b":${m}}}}`, {})).toMatchObject({ ok: false, error: 'metadata: nested deeper than 32 levels (EARSHOT_INGEST_MAX_METADATA_DEPTH)' });
    expect(parseMessage(`${HEAD},"metadata":{"a":{"b":${m}}}}`, { maxMetadataDepth: 40 })).toMatchObject({ ok: true });
    // brackets inside strings are text
    expect(parseMessage(`${HEAD.replace('"text":"t"', `"text":${JSON.stringify('[{'.repeat(10_000) + '"\\')}`)}}`, {})).toMatchObject({ ok: true });
  });

  it('costs no more than a line of ordinary content of the same size', () => {
    expect(deepMetadata.length).toBeGreaterThan(2_000_000);
    expect(flat.length).toBeGreaterThanOrEqual(deepMetadata.length - 100);
    // a text limit the flat line is within, so that it is read through as a valid message
    const limits = { maxTextBytes: 4 * 1024 * 1024 };
    expect(parseMessage(flat, limits)).toMatchObject({ ok: true });
    parseMessage(deepMetadata, limits);
    parseMessage(deepText, limits);
    const ordinary = fastest(() => parseMessage(flat, limits));
    // before the depth check: 1.4-2.5 s for the deep line against 3-10 ms for the flat one
    expect(fastest(() => parseMessage(deepMetadata, limits))).toBeLessThan(4 * ordinary + 1);
    expect(fastest(() => parseMessage(deepText, limits))).toBeLessThan(4 * ordinary + 1);
  });
});

describe('parseMessage on lines of empty objects and arrays', () => {
  // 2 MB of `{},` in metadata: JSON.parse made a million objects (0.4 s) before the 64 KiB metadata limit refused them
  const count = 650_000;
  const dense = `${HEAD},"metadata":{"a":[${'{},'.repeat(count)}{}]}}`;
  const flat = `${HEAD},"metadata":{"a":${JSON.stringify('x'.repeat(dense.length - HEAD.length - 30))}}}`;

  it('refuses more objects and arrays than the metadata limit can hold unread', () => {
    expect(parseMessage(dense, {})).toEqual({ ok: false, kind: 'too-large', error: 'metadata: more objects and arrays than 65536 bytes of JSON hold (EARSHOT_INGEST_MAX_METADATA_BYTES); not parsed' });
    expect(parseMessage(flat, {})).toMatchObject({ ok: false, kind: 'too-large', error: expect.stringMatching(/^metadata: \d+ bytes as JSON, over the limit/) });
    // metadata of empty arrays up to the byte limit still passes: its compact JSON is 2 bytes an array at least
    const most = Math.floor((65_536 - '{"a":[]}'.length) / 3);
    const full = { a: Array.from({ length: most }, () => []) };
    expect(JSON.stringify(full).length).toBeLessThanOrEqual(65_536);
    expect(parseMessage(`${HEAD},"metadata":${JSON.stringify(full)}}`, {})).toMatchObject({ ok: true });
    expect(parseMessage(`${HEAD},"author":{"handle":[${'[],'.repeat(40_000)}[]]}}`, {})).toMatchObject({ ok: false, kind: 'schema-violation', error: expect.stringMatching(/^author: more objects and arrays than any valid message has/) });
  });

  it('costs no more than a line of ordinary content of the same size', () => {
    expect(Math.abs(dense.length - flat.length)).toBeLessThan(100);
    parseMessage(dense, {});
    const ordinary = fastest(() => parseMessage(flat, {}));
    expect(fastest(() => parseMessage(dense, {}))).toBeLessThan(4 * ordinary + 1);
  });
});

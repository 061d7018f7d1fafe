import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { createRecordsBatch, jsCRC32C, readRecordsBatch, Reader } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';

// patches/@platformatic+kafka+2.12.1.patch makes a record batch's many small buffers one before
// its CRC is computed, so the CRC and the request share one copy. The bytes must be what they
// were: a batch whose CRC covers its bytes, and reads back as the records written.

/** Record batch v2: baseOffset (8), length (4), partitionLeaderEpoch (4), magic (1), crc (4), then what the CRC covers. */
const CRC_AT = 17;

describe('record batches of the relay producer', () => {
  it('carry a CRC-32C of their bytes and read back as written', () => {
    const record = fc.record({
      key: fc.option(fc.string({ maxLength: 40 }), { nil: null }),
      value: fc.option(fc.string({ unit: 'grapheme', maxLength: 300 }), { nil: null }),
      headers: fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ maxLength: 40 }), { maxKeys: 4 }),
    });
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 60 }), (records) => {
        const messages = records.map((r) => ({
          topic: 't',
          partition: 0,
          key: r.key === null ? undefined : Buffer.from(r.key),
          value: r.value === null ? undefined : Buffer.from(r.value),
          headers: new Map(Object.entries(r.headers).map(([k, v]) => [Buffer.from(k), Buffer.from(v)])),
          timestamp: 1_764_000_000_000n,
        }));
        const bytes = createRecordsBatch(messages as never).buffer;
        expect(bytes.readUInt32BE(CRC_AT)).toBe(jsCRC32C(bytes.subarray(CRC_AT + 4)) >>> 0);
        const back = readRecordsBatch(Reader.from(bytes));
        const text = (b: Buffer | null | undefined) => (b == null ? null : b.toString());
        expect(back.records.map((r) => [text(r.key), text(r.value), r.headers.map(([k, v]) => [text(k), text(v)])])).toEqual(
          records.map((r) => [r.key, r.value, Object.entries(r.headers)]),
        );
      }),
      { numRuns: 200, seed: 20261201 },
    );
  });

  it('are built by the patched library (npm ci applies patches/ through patch-package)', () => {
    const file = require.resolve('@platformatic/kafka').replace(/index\.js$/, 'protocol/records.js');
    expect(readFileSync(file, 'utf8')).toContain("Earshot's patch");
  });
});

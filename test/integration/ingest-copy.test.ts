import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// Interactions go into PostgreSQL with COPY in its text format (src/db/copy-text.ts): every
// string a message may carry must come back from the database exactly as it was sent.

/** Strings a message may carry: any text but NUL (refused at the edge), with COPY's special characters often. */
const field = fc
  .oneof(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
    fc.array(fc.constantFrom('\\', '\\N', '\\.', '\t', '\n', '\r', '\r\n', '"', "'", 'N', 'é', '😀', '\u2028', '\u0001', ' '), { minLength: 1, maxLength: 20 }).map((a) => a.join('')),
  )
  .filter((s) => !s.includes('\u0000') && s.trim().length > 0);

describe('ingest stores every string as sent (COPY text format)', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({}, 'ingestcopy');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('reads back text, author, URL and metadata of 300 generated messages byte for byte', async () => {
    const samples = fc.sample(fc.record({ text: field, name: field, handle: field, note: field, key: field }), { numRuns: 300, seed: 20261201 });
    const lines = samples.map((s, i) =>
      message(90_000 + i, {
        text: s.text,
        url: `https://example.com/p?q=${encodeURIComponent(s.note)}`,
        author: { handle: `h${i}${s.handle}`, displayName: s.name },
        metadata: { note: s.note, [s.key]: [s.text, 1.5, null, true] },
      }),
    );
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: 300, duplicates: 0, rejected: [] });

    const stored = (await app.db.ds.query(
      `SELECT external_id, text, url, author_handle, author_display_name, metadata, explanation FROM interaction WHERE external_id = ANY($1::text[])`,
      [lines.map((l) => l.externalId)],
    )) as { external_id: string; text: string; url: string; author_handle: string; author_display_name: string; metadata: unknown; explanation: { token: string; weight: number }[] }[];
    expect(stored).toHaveLength(300);
    const byId = new Map(stored.map((r) => [r.external_id, r]));
    for (const l of lines) {
      const r = byId.get(l.externalId as string)!;
      const author = l.author as { handle: string; displayName: string };
      expect({ text: r.text, url: r.url, handle: r.author_handle, name: r.author_display_name, metadata: r.metadata }).toEqual({
        text: l.text,
        url: l.url,
        handle: author.handle,
        name: author.displayName,
        metadata: l.metadata,
      });
      expect(Array.isArray(r.explanation)).toBe(true);
    }
  });
});

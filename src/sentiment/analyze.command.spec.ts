import { PassThrough, Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runAnalyzeCommand } from './analyze.command';

/** A slow consumer with a tiny buffer, so write() returns false and the command must wait. */
function collector(): { stream: Writable; text: () => string; maxBuffered: () => number } {
  const chunks: string[] = [];
  let maxBuffered = 0;
  const stream = new Writable({
    highWaterMark: 1024,
    write(chunk, _enc, cb) {
      chunks.push(chunk.toString());
      maxBuffered = Math.max(maxBuffered, stream.writableLength);
      setImmediate(cb);
    },
  });
  return { stream, text: () => chunks.join(''), maxBuffered: () => maxBuffered };
}

function linesOf(s: string): Record<string, unknown>[] {
  return s
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('runAnalyzeCommand', () => {
  it('writes one JSON object per plain-text line, in order, with the documented fields', async () => {
    const out = collector();
    const input = Readable.from(['I love this airline!\n', '\n', 'My bag was lost and nobody helps 😡\r\n', 'Can I log in with my Google account?']);
    const { lines } = await runAnalyzeCommand({ jsonl: false, input, output: out.stream });
    expect(lines).toBe(4);
    const rows = linesOf(out.text());
    expect(rows).toHaveLength(4);
    expect(Object.keys(rows[0]).sort()).toEqual(
      ['complaint', 'complaintProbability', 'confidence', 'explanation', 'intent', 'intentConfidence', 'label', 'lang', 'logit', 'model', 'score', 'topics', 'unhappy'].sort(),
    );
    expect(rows[0].label).toBe('positive');
    expect(rows[1]).toMatchObject({ label: 'neutral', score: 0, explanation: [] });
    expect(rows[2].label).toBe('negative');
    expect(rows[3]).toMatchObject({ intent: 'question', topics: [{ name: 'account', department: 'Digital' }] });
  });

  it('reads text, lang and rating from JSON lines and reports bad lines without stopping', async () => {
    const out = collector();
    const input = Readable.from([
      JSON.stringify({ text: 'It arrived.', rating: 1 }) + '\n',
      '{not json\n',
      JSON.stringify({ body: 'no text field' }) + '\n',
      JSON.stringify({ text: 'Service client nul, remboursez-moi maintenant', lang: 'fr' }) + '\n',
      JSON.stringify({ text: 'Great, thanks!' }) + '\n',
    ]);
    const { lines } = await runAnalyzeCommand({ jsonl: true, input, output: out.stream });
    expect(lines).toBe(5);
    const rows = linesOf(out.text());
    expect(rows[0].label).toBe('negative');
    expect(rows[1].error).toMatch(/invalid JSON/);
    expect(rows[2].error).toMatch(/text/);
    expect(rows[3]).toMatchObject({ lang: 'fr', label: 'neutral' });
    expect(rows[3].confidence as number).toBeLessThanOrEqual(0.3);
    expect(rows[4].label).toBe('positive');
  });

  it('handles 100,000 lines in order with backpressure', async () => {
    const N = 100_000;
    const texts = ['I love it, thank you!', 'worst delivery ever, still waiting for my refund', '{"broken'];
    const input = new PassThrough();
    const out = collector();
    const run = runAnalyzeCommand({ jsonl: true, input, output: out.stream });
    // Feed the input respecting its own backpressure, as a pipe from a file would.
    for (let i = 0; i < N; i++) {
      const t = texts[i % 3];
      const line = i % 3 === 2 ? t : JSON.stringify({ text: `${t} #${i}` });
      if (!input.write(line + '\n')) await new Promise((r) => input.once('drain', r));
    }
    input.end();
    const { lines } = await run;
    expect(lines).toBe(N);
    const rows = out.text().split('\n');
    expect(rows[N]).toBe('');
    expect(rows).toHaveLength(N + 1);
    for (let i = 0; i < N; i++) {
      const r = JSON.parse(rows[i]) as { label?: string; error?: string };
      const expected = i % 3 === 0 ? 'positive' : i % 3 === 1 ? 'negative' : 'error';
      expect(r.error ? 'error' : r.label, `line ${i}`).toBe(expected);
    }
    // Output never piled up beyond one batch plus the consumer's buffer.
    expect(out.maxBuffered()).toBeLessThan(256 * 1024);
  }, 120_000);
});

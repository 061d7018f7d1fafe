// Identity engine benchmark: normalizer throughput, pair scoring, batch scaling with the number
// of records, and the incremental path (records arriving one at a time, as from ingest).
// Run: npm run build && node dist/test/bench/identity.bench.js   (a few seconds, one core)
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { IncrementalIndex, Matcher, resolveBatch, scorePair, type PersonRecord } from '../../src/identity/matcher';
import { normalizeEmail, normalizePhone, parseProfileUrl } from '../../src/identity/normalize';
import { readPersonCsv } from '../../src/identity/resolve.command';

function perOp(label: string, n: number, fn: (i: number) => unknown): string {
  for (let i = 0; i < Math.min(n, 1000); i++) fn(i);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  const us = ((performance.now() - t0) * 1000) / n;
  return `| ${label} | ${us.toFixed(2)} µs | ${Math.round(1e6 / us).toLocaleString('en')} /s |`;
}

function truthPairs(ids: readonly string[]): number {
  const count = new Map<string, number>();
  for (const id of ids) {
    const e = /^rec-(\d+)-/.exec(id)![1]!;
    count.set(e, (count.get(e) ?? 0) + 1);
  }
  let n = 0;
  for (const k of count.values()) n += (k * (k - 1)) / 2;
  return n;
}

function pairStats(clusters: Iterable<readonly string[]>): { predicted: number; tp: number } {
  let predicted = 0;
  let tp = 0;
  for (const c of clusters) {
    predicted += (c.length * (c.length - 1)) / 2;
    tp += truthPairs(c);
  }
  return { predicted, tp };
}

/** Runs the benchmark and returns its report as markdown. */
export async function runIdentityBench(): Promise<string> {
  const dataDir = path.resolve(process.cwd(), '../shared/data/identity');
  const d1 = await readPersonCsv(path.join(dataDir, 'dataset1.csv'));
  const d2 = await readPersonCsv(path.join(dataDir, 'dataset2.csv'));
  const d3 = await readPersonCsv(path.join(dataDir, 'dataset3.csv'));
  const out: string[] = [];

  const phones = ['+1 (415) 555-2671', '(02) 9876 5432', '0412 345 678', '415.555.2671', '+49 30 901820', '020 7946 0958'];
  const emails = [' Jane.Doe+news@Example.COM', 'bob@example.org', 'Jane Doe <jane@x.io>'];
  const urls = ['https://x.com/Jane_Doe', 'https://www.linkedin.com/in/jane-doe-123/', 'https://www.youtube.com/@JaneDoe'];
  out.push('| operation | time per op | throughput |', '| --- | ---: | ---: |');
  out.push(perOp('normalizePhone (libphonenumber-js/max, AU default)', 30_000, (i) => normalizePhone(phones[i % phones.length]!, 'AU')));
  out.push(perOp('normalizeEmail (strip plus)', 100_000, (i) => normalizeEmail(emails[i % emails.length]!, { plusAddressing: 'strip' })));
  out.push(perOp('parseProfileUrl', 50_000, (i) => parseProfileUrl(urls[i % urls.length]!)));
  out.push(perOp('scorePair with evidence (Febrl records)', 20_000, (i) => scorePair(d3[i % 4999]!, d3[(i * 7 + 1) % 4999]!)));

  out.push('', '| records | candidate pairs | pairs per record | resolveBatch seconds |', '| ---: | ---: | ---: | ---: |');
  // Datasets 2 and 3 together: 10,000 records (ids prefixed; the two files share rec numbers).
  const both: PersonRecord[] = [...d2.map((r) => ({ ...r, id: `a${r.id}` })), ...d3.map((r) => ({ ...r, id: `b${r.id}` }))];
  for (const set of [d1, d3.slice(0, 2500), d3, both]) {
    const t0 = performance.now();
    const r = resolveBatch(set);
    const s = (performance.now() - t0) / 1000;
    out.push(`| ${set.length} | ${r.stats.candidatePairs} | ${(r.stats.candidatePairs / set.length).toFixed(2)} | ${s.toFixed(2)} |`);
  }

  // Incremental: each dataset-3 record arrives, is matched against those before it with the
  // default (shipped) parameters and joins the cluster of its best auto-link match.
  const index = new IncrementalIndex(new Matcher());
  const clusterOf = new Map<string, string>();
  const latencies: number[] = [];
  let review = 0;
  for (const r of d3) {
    const t0 = performance.now();
    const found = index.match(r, { limit: 5 });
    index.add(r);
    latencies.push(performance.now() - t0);
    const best = found[0];
    if (best?.decision === 'link') clusterOf.set(r.id, clusterOf.get(best.id)!);
    else clusterOf.set(r.id, r.id);
    if (found.some((f) => f.decision === 'review')) review++;
  }
  const groups = new Map<string, string[]>();
  for (const [id, c] of clusterOf) groups.set(c, [...(groups.get(c) ?? []), id]);
  const { predicted, tp } = pairStats(groups.values());
  latencies.sort((a, b) => a - b);
  const mean = latencies.reduce((a, b) => a + b, 0) / latencies.length;
  out.push(
    '',
    `Incremental (dataset 3, 5,000 arrivals, default parameters, join best auto link): mean ${mean.toFixed(3)} ms, ` +
      `p99 ${latencies[Math.floor(latencies.length * 0.99)]!.toFixed(3)} ms per record; ` +
      `pairwise precision ${(tp / Math.max(predicted, 1)).toFixed(4)}, recall ${(tp / truthPairs(d3.map((r) => r.id))).toFixed(4)}; ` +
      `${review} arrivals had a review-band candidate.`,
  );
  return out.join('\n');
}

if (require.main === module) {
  runIdentityBench()
    .then((report) => console.log(report))
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    });
}

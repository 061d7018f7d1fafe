import fs from 'node:fs';
import path from 'node:path';
import { Piscina } from 'piscina';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import type { Analysis } from './analyzer';
import type { AnalyzeTask } from './analyze.worker';
import { defaultModelFile } from './model/linear-model';
import type { LoadedTaxonomy } from './taxonomy.service';

/**
 * analyzeText's scorer: small texts on the event loop (a worker round trip costs more than
 * scoring them), texts from `minBytes` on worker threads, so a request with a large text cannot
 * stall /healthz and every other request.
 * Must stay true: the same analysis whichever side scores it.
 */
export class AnalyzePool {
  private readonly pool: Piscina | null;
  private readonly keys = new WeakMap<LoadedTaxonomy, string>();

  constructor(opts: { threads: number; minBytes: number }, log: Logger) {
    this.minBytes = opts.minBytes;
    const filename = workerFile();
    if (opts.threads > 0 && filename === null) log.warn('the analyzeText worker is not built (npm run build): large texts are scored on the event loop');
    this.pool =
      opts.threads > 0 && filename !== null
        ? new Piscina({ filename, minThreads: 0, maxThreads: opts.threads, idleTimeout: 30_000, maxQueue: Math.max(16, opts.threads * 8) })
        : null;
  }

  private readonly minBytes: number;

  async analyze(text: string, lang: string | null | undefined, taxonomy: LoadedTaxonomy): Promise<Analysis> {
    if (this.pool === null || Buffer.byteLength(text) < this.minBytes) return taxonomy.analyzer.analyze(text, { lang });
    let key = this.keys.get(taxonomy);
    if (key === undefined) {
      key = JSON.stringify(taxonomy.topics.map((t) => [t.name, t.department, t.phrases]));
      this.keys.set(taxonomy, key);
    }
    const task: AnalyzeTask = { text, lang, taxonomyKey: key, taxonomy: taxonomy.topics.map(({ name, label, department, phrases }) => ({ name, label, department, phrases })), modelFile: defaultModelFile() };
    try {
      return (await this.pool.run(task)) as Analysis;
    } catch (e) {
      if (/queue/i.test((e as Error).message)) throw new AppError('SERVICE_UNAVAILABLE', 'the analyzer is busy with large texts: retry shortly');
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}

/** The compiled worker; under a TypeScript runner (tests) the build's copy, when there is one. */
function workerFile(): string | null {
  const own = path.join(__dirname, 'analyze.worker.js');
  if (fs.existsSync(own)) return own;
  const built = path.resolve(__dirname, '../../dist/src/sentiment/analyze.worker.js');
  return fs.existsSync(built) ? built : null;
}

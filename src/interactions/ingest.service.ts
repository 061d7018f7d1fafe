import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import { validateMessage, parseMessage, type InteractionMessage } from './interaction-message';
import type { RecordInteractionsService } from './record-interactions.service';

export interface IngestSummary {
  accepted: number;
  duplicates: number;
  rejected: { line: number; error: string }[];
}

const BATCH = 500;

/** Validates a request's messages and feeds the valid ones to the pipeline in batches. */
export class IngestService {
  constructor(
    private readonly recorder: RecordInteractionsService,
    private readonly maxTextBytes: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** NDJSON lines; blank lines are skipped, line numbers are 1-based. */
  async ingestLines(lines: string[], channel: string): Promise<IngestSummary> {
    const items: { line: number; raw: string }[] = [];
    lines.forEach((raw, i) => {
      if (raw.trim() !== '') items.push({ line: i + 1, raw });
    });
    return this.run(items.map(({ line, raw }) => ({ line, result: parseMessage(raw, this.maxTextBytes) })), channel);
  }

  async ingestObjects(values: unknown[], channel: string): Promise<IngestSummary> {
    return this.run(values.map((v, i) => ({ line: i + 1, result: validateMessage(v, this.maxTextBytes) })), channel);
  }

  private async run(items: { line: number; result: ReturnType<typeof validateMessage> }[], channel: string): Promise<IngestSummary> {
    const rejected: IngestSummary['rejected'] = [];
    const valid: InteractionMessage[] = [];
    for (const { line, result } of items) {
      if (result.ok) valid.push(result.message);
      else rejected.push({ line, error: result.error });
    }
    let accepted = 0;
    let duplicates = 0;
    // Duplicates within one request must count as duplicates even across batches.
    const seen = new Set<string>();
    const distinct: InteractionMessage[] = [];
    for (const m of valid) {
      const key = `${m.source}\u0000${m.externalId}`;
      if (seen.has(key)) duplicates++;
      else {
        seen.add(key);
        distinct.push(m);
      }
    }
    for (let i = 0; i < distinct.length; i += BATCH) {
      const end = this.metrics.ingestBatchDuration.startTimer();
      const out = await this.recorder.record(distinct.slice(i, i + BATCH));
      end();
      accepted += out.accepted;
      duplicates += out.duplicates;
    }
    this.metrics.ingested.inc({ channel, result: 'accepted' }, accepted);
    this.metrics.ingested.inc({ channel, result: 'duplicate' }, duplicates);
    this.metrics.ingested.inc({ channel, result: 'rejected' }, rejected.length);
    if (items.length > 0) this.log.info({ channel, accepted, duplicates, rejected: rejected.length }, 'ingested');
    return { accepted, duplicates, rejected };
  }
}

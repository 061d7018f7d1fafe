import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import { validateMessage, parseMessage, type InteractionMessage, type LimitsArg } from './interaction-message';
import { ingestLanes } from './ingest-lanes';
import { DEFAULT_INGEST_MAX_LINES } from './ingest-limits.config';
import { persistIsolating } from './isolate-lines';
import type { RecordInteractionsService } from './record-interactions.service';

export interface IngestSummary {
  accepted: number;
  duplicates: number;
  rejected: { line: number; error: string }[];
}

const BATCH = 500;

/**
 * Validates a request's messages and feeds the valid ones to the pipeline in batches.
 *
 * What must stay true: a line is rejected alone, with its line number and a reason — at
 * the edge (parseMessage) or, when the database still refuses it, by isolation around the
 * batch call — and every valid line of the same request is stored; only a retriable
 * failure (database unreachable, lock conflict) fails the request.
 */
export class IngestService {
  constructor(
    private readonly recorder: RecordInteractionsService,
    /** the edge limits; `maxLines` (EARSHOT_INGEST_MAX_LINES) bounds an NDJSON body */
    private readonly limits: LimitsArg & { maxLines?: number },
    private readonly metrics: Metrics,
    private readonly log: Logger,
    /** lanes a large request is stored in at once (EARSHOT_INGEST_LANES) */
    private readonly lanes = 1,
  ) {}

  /** NDJSON lines; blank lines are skipped, line numbers are 1-based. */
  async ingestLines(lines: string[], channel: string): Promise<IngestSummary> {
    const items: { line: number; raw: string }[] = [];
    lines.forEach((raw, i) => {
      if (raw.trim() !== '') items.push({ line: i + 1, raw });
    });
    return this.run(items.map(({ line, raw }) => ({ line, result: parseMessage(raw, this.limits) })), channel);
  }

  /**
   * An NDJSON body as bytes: each line is decoded on its own, so bytes that are not UTF-8
   * reject their line only (decoding the whole body first would silently replace them). A body
   * of more non-blank lines than `maxLines` is refused whole (413) before any line is parsed:
   * each line costs a parse and, refused, an entry in the answer, whatever its own size.
   */
  async ingestNdjson(body: Buffer, channel: string): Promise<IngestSummary> {
    const maxLines = (typeof this.limits === 'object' ? this.limits.maxLines : undefined) ?? DEFAULT_INGEST_MAX_LINES;
    // counted without keeping the lines: a body of 16 million empty lines must not become 16 million views of it
    let count = 0;
    eachLine(body, (raw) => {
      if (!isBlank(raw)) count++;
    });
    if (count > maxLines) {
      throw new AppError('PAYLOAD_TOO_LARGE', `the body has ${count} lines, more than ${maxLines} lines (EARSHOT_INGEST_MAX_LINES); nothing was stored: send it in smaller bodies`);
    }
    const items: { line: number; result: ReturnType<typeof parseMessage> }[] = [];
    eachLine(body, (raw, line) => {
      if (!isBlank(raw)) items.push({ line, result: parseMessage(raw, this.limits) });
    });
    return this.run(items, channel);
  }

  async ingestObjects(values: unknown[], channel: string): Promise<IngestSummary> {
    return this.run(values.map((v, i) => ({ line: i + 1, result: validateMessage(v, this.limits) })), channel);
  }

  private async run(items: { line: number; result: ReturnType<typeof validateMessage> }[], channel: string): Promise<IngestSummary> {
    const rejected: IngestSummary['rejected'] = [];
    let accepted = 0;
    let duplicates = 0;
    // Duplicates within one request must count as duplicates even across batches.
    const seen = new Set<string>();
    const distinct: Line[] = [];
    for (const { line, result } of items) {
      if (!result.ok) {
        rejected.push({ line, error: result.error });
        continue;
      }
      const m = result.message;
      const key = `${m.source}\u0000${m.externalId}`;
      if (seen.has(key)) duplicates++;
      else {
        seen.add(key);
        distinct.push({ line, message: m });
      }
    }
    // A large request is stored in lanes at once, as Kafka partitions are: one conversation per
    // lane, in line order (ingestLanes); within a lane, batches one after the other.
    const lanes = ingestLanes(distinct.map((d) => d.message), this.lanes, BATCH, this.recorder.identityOptions).map((lane) => lane.map((i) => distinct[i]!));
    let failure: unknown = null;
    await Promise.all(
      lanes.map(async (lane) => {
        try {
          await this.storeLane(lane, () => failure !== null, (out, batch) => {
            accepted += out.accepted;
            duplicates += out.duplicates;
            for (const r of out.rejected) rejected.push({ line: batch[r.index]!.line, error: r.error });
            if (out.rejected.length > 0) {
              this.log.warn({ channel, lines: out.rejected.map((r) => batch[r.index]!.line), sqlStates: out.rejected.map((r) => r.sqlState), attempts: out.attempts }, 'lines refused by the pipeline were isolated and rejected; the rest of the batch is stored');
            }
          });
        } catch (e) {
          // the other lanes stop before their next batch
          failure ??= e;
        }
      }),
    );
    if (failure !== null) {
      // only retriable failures get here; the batches stored before are kept and a retry dedupes them
      this.log.warn({ err: failure, channel, storedSoFar: accepted }, 'ingest batch failed transiently');
      throw new AppError('SERVICE_UNAVAILABLE', `the database is unavailable; ${accepted} lines were stored before it failed, send the body again (stored lines count as duplicates)`);
    }
    rejected.sort((a, b) => a.line - b.line);
    this.metrics.ingested.inc({ channel, result: 'accepted' }, accepted);
    this.metrics.ingested.inc({ channel, result: 'duplicate' }, duplicates);
    this.metrics.ingested.inc({ channel, result: 'rejected' }, rejected.length);
    if (items.length > 0) this.log.info({ channel, accepted, duplicates, rejected: rejected.length }, 'ingested');
    return { accepted, duplicates, rejected };
  }

  /**
   * One lane's batches, one after the other, in line order; the next batch is analyzed while the
   * one before is stored (analysis needs no transaction). Stops before a batch once `stop()`.
   */
  private async storeLane(lane: Line[], stop: () => boolean, done: (out: Awaited<ReturnType<typeof persistIsolating>>, batch: Line[]) => void): Promise<void> {
    const analyze = (from: number) => {
      const p = from < lane.length ? this.recorder.analyze(lane.slice(from, from + BATCH).map((b) => b.message)) : null;
      p?.catch(() => undefined); // seen when awaited
      return p;
    };
    let next = analyze(0);
    for (let i = 0; i < lane.length && !stop(); i += BATCH) {
      const batch = lane.slice(i, i + BATCH);
      const analyzed = next;
      next = analyze(i + BATCH);
      const end = this.metrics.ingestBatchDuration.startTimer();
      try {
        // the whole batch goes in analyzed; the parts of a batch split to isolate a bad line are analyzed again
        done(
          await persistIsolating(batch, async (part) =>
            part.length === batch.length && analyzed ? this.recorder.store(await analyzed) : this.recorder.record(part.map((b) => b.message)),
          ),
          batch,
        );
      } finally {
        end();
      }
    }
  }
}

type Line = { line: number; message: InteractionMessage };

/** Each line of an NDJSON body (without its \n) with its 1-based number; a last line without \n counts. */
function eachLine(body: Buffer, visit: (raw: Buffer, line: number) => void): void {
  let start = 0;
  for (let line = 1; start <= body.length; line++) {
    let end = body.indexOf(0x0a, start);
    if (end === -1) end = body.length;
    visit(body.subarray(start, end), line);
    start = end + 1;
  }
}

function isBlank(b: Buffer): boolean {
  for (const c of b) if (c !== 0x20 && c !== 0x09 && c !== 0x0d) return false;
  return true;
}

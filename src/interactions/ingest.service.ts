import { AppError } from '../shared/app-error';
import { isStatementTimeout, unavailableReason } from '../db/failures';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import { DEFAULT_MESSAGE_LIMITS, validateMessage, parseMessage, type InteractionMessage, type LimitsArg, type ValidationResult } from './interaction-message';
import { ingestLanes } from './ingest-lanes';
import { DEFAULT_INGEST_MAX_LINES } from './ingest-limits.config';
import { persistIsolating } from './isolate-lines';
import { loopTurns } from '../shared/loop-turns';
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
    await eachLine(body, () => {
      count++;
    });
    if (count > maxLines) {
      throw new AppError('PAYLOAD_TOO_LARGE', `the body has ${count} lines, more than ${maxLines} lines (EARSHOT_INGEST_MAX_LINES); nothing was stored: send it in smaller bodies`);
    }
    const items: { line: number; result: ReturnType<typeof parseMessage> }[] = [];
    const longest = maxLineBytes(this.limits);
    await eachLine(body, (raw, line) => {
      items.push({ line, result: raw.length > longest ? lineTooLong(raw.length, longest) : parseMessage(raw, this.limits) });
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
    // Duplicates within one request must count as duplicates even across batches. A repeat is
    // held back, not dropped: when the line before it is refused by the database (isolated below),
    // the first repeat the database takes is stored, as on Kafka, where repeats reach the pipeline.
    const seen = new Set<string>();
    const distinct: Line[] = [];
    const repeats = new Map<string, Line[]>();
    let held = 0;
    for (const { line, result } of items) {
      if (!result.ok) {
        rejected.push({ line, error: result.error });
        continue;
      }
      const m = result.message;
      const key = keyOf(m);
      if (seen.has(key)) {
        const list = repeats.get(key);
        if (list) list.push({ line, message: m });
        else repeats.set(key, [{ line, message: m }]);
        held++;
      } else {
        seen.add(key);
        distinct.push({ line, message: m });
      }
    }
    const refused = new Set<string>();
    const storeAll = async (lines: Line[]): Promise<void> => {
      // A large request is stored in lanes at once, as Kafka partitions are: one conversation per
      // lane, in line order (ingestLanes); within a lane, batches one after the other.
      const lanes = ingestLanes(lines.map((d) => d.message), this.lanes, BATCH, this.recorder.identityOptions).map((lane) => lane.map((i) => lines[i]!));
      let failure: unknown = null;
      await Promise.all(
        lanes.map(async (lane) => {
          try {
            await this.storeLane(lane, () => failure !== null, (out, batch) => {
              accepted += out.accepted;
              duplicates += out.duplicates;
              for (const r of out.rejected) {
                rejected.push({ line: batch[r.index]!.line, error: r.error });
                refused.add(keyOf(batch[r.index]!.message));
              }
              if (out.timeoutSplits > 0) {
                this.log.warn({ channel, lines: batch.length, splits: out.timeoutSplits, attempts: out.attempts }, "a batch ran past the database's statement_timeout and was stored in smaller parts");
              }
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
        const why = isStatementTimeout(failure) ? "a line's statements run past the database's statement_timeout" : unavailableReason(failure);
        throw new AppError('SERVICE_UNAVAILABLE', `${why}; ${accepted} lines were stored before it failed, send the body again (stored lines count as duplicates)`);
      }
    };
    await storeAll(distinct);
    // the repeats of refused lines, in line order: the pipeline dedupes them among themselves and
    // isolates the refused ones, so the first one the database takes is stored, the rest are duplicates
    const again = [...refused].flatMap((k) => repeats.get(k) ?? []).sort((a, b) => a.line - b.line);
    duplicates += held - again.length;
    if (again.length > 0) await storeAll(again);
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

const keyOf = (m: InteractionMessage) => `${m.source}\u0000${m.externalId}`;

/**
 * The longest line a message within the limits can be: its text and metadata with every byte
 * written as a six-byte JSON escape (\u0001), and 64 KiB for the other fields, which the schema
 * bounds. A longer line is refused unread: JSON.parse of one 32 MiB line (an array of 16 million
 * numbers in metadata) blocked the event loop for 2.2 s before the metadata limit refused it.
 */
function maxLineBytes(limits: LimitsArg): number {
  const text = typeof limits === 'number' ? limits : (limits.maxTextBytes ?? DEFAULT_MESSAGE_LIMITS.maxTextBytes);
  const metadata = typeof limits === 'number' ? DEFAULT_MESSAGE_LIMITS.maxMetadataBytes : (limits.maxMetadataBytes ?? DEFAULT_MESSAGE_LIMITS.maxMetadataBytes);
  return 6 * (text + metadata) + 64 * 1024;
}

function lineTooLong(bytes: number, longest: number): ValidationResult {
  return {
    ok: false,
    kind: 'too-large',
    error: `the line is ${bytes} bytes, longer than any message within the limits can be (${longest} bytes, from EARSHOT_INGEST_MAX_TEXT_BYTES and EARSHOT_INGEST_MAX_METADATA_BYTES); it was not parsed`,
  };
}

/** Bytes, and non-blank lines, a body is read in before other work gets a turn of the event loop. */
const SLICE_BYTES = 1024 * 1024;
const SLICE_LINES = 1_000;

/**
 * Each non-blank line of an NDJSON body (without its \n) with its 1-based number; a last line
 * without \n counts. The body is read in slices, each followed by a turn of the event loop
 * (loopTurns): read at once, a body blocked every other request for as long as it took, measured
 * 0.75–1.3 s for 100,000 lines of messages, 3.2 s for 250,000 lines of malformed JSON and 3.4 s
 * for 32 MiB of empty lines (a view of each). Blank lines are skipped byte by byte, without a
 * view or a search each.
 */
async function eachLine(body: Buffer, visit: (raw: Buffer, line: number) => void): Promise<void> {
  const length = body.length;
  let line = 1;
  // where the line starts, and how far it has been read
  let start = 0;
  let at = 0;
  let sliceFrom = 0;
  let sliceLines = 0;
  for (;;) {
    if (at - sliceFrom >= SLICE_BYTES || sliceLines >= SLICE_LINES) {
      await loopTurns.take();
      sliceFrom = at;
      sliceLines = 0;
    }
    const stop = Math.min(length, sliceFrom + SLICE_BYTES);
    while (at < stop && isBlankByte(body[at]!)) at++;
    if (at === length) return;
    if (at === stop) continue;
    if (body[at] === 0x0a) {
      at++;
      start = at;
      line++;
      continue;
    }
    let end = body.indexOf(0x0a, at);
    if (end === -1) end = length;
    visit(body.subarray(start, end), line);
    sliceLines++;
    at = start = end + 1;
    line++;
    if (at > length) return;
  }
}

function isBlankByte(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0d;
}

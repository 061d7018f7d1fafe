import { DEFAULT_MESSAGE_LIMITS, type MessageLimits } from './interaction-message';

/**
 * The edge limits of every ingest channel (HTTP, GraphQL, Kafka), from the environment, and the
 * lines one `POST /ingest` body may hold (`maxLines`, EARSHOT_INGEST_MAX_LINES; HTTP only).
 */
export type IngestLimitsConfig = Readonly<Omit<MessageLimits, 'now'> & { maxLines: number }>;

/**
 * Non-blank lines in one `POST /ingest` body. Each line costs a parse, a validation and, when
 * refused, an entry of up to ~250 bytes in the answer, whatever its own size: 2 MiB of `{}`
 * lines made an answer of 162 MB and blocked the event loop for 4.2 s (measured), so 32 MiB
 * (11 million lines) would ask for about 2.5 GB, past V8's longest string. 250,000 keeps the worst answer near 65 MB; a body of real messages
 * reaches the byte limit (32 MiB) first unless they average under 134 bytes (tweets in
 * bench:ingest average 289, so a full body of them is about 116,000 lines).
 */
export const DEFAULT_INGEST_MAX_LINES = 250_000;

/** Everything but the text limit, which config.ts parses once for its older `ingestMaxTextBytes` too. */

export function parseIngestLimits(
  str: (n: string) => string | null,
  int: (n: string, d: number, min: number, max: number) => number,
  problems: string[],
): Omit<IngestLimitsConfig, 'maxTextBytes'> {
  const earliestRaw = str('EARSHOT_INGEST_EARLIEST_OCCURRED_AT');
  let earliestOccurredAt = DEFAULT_MESSAGE_LIMITS.earliestOccurredAt;
  if (earliestRaw !== null) {
    const t = Date.parse(earliestRaw);
    // PostgreSQL's timestamptz starts in 4713 BC; JavaScript's ISO output stops being ISO-8601 before year 0.
    if (Number.isNaN(t) || t < Date.UTC(1, 0, 1)) problems.push(`EARSHOT_INGEST_EARLIEST_OCCURRED_AT=${JSON.stringify(earliestRaw)}: expected an ISO-8601 date-time after year 0`);
    else earliestOccurredAt = t;
  }
  return {
    maxMetadataDepth: int('EARSHOT_INGEST_MAX_METADATA_DEPTH', DEFAULT_MESSAGE_LIMITS.maxMetadataDepth, 1, 1_000),
    maxMetadataBytes: int('EARSHOT_INGEST_MAX_METADATA_BYTES', DEFAULT_MESSAGE_LIMITS.maxMetadataBytes, 256, 16 * 1024 * 1024),
    earliestOccurredAt,
    // 1,000 years keeps every accepted date inside what toISOString and PostgreSQL both write as a 4-digit year.
    maxFutureMs: int('EARSHOT_INGEST_MAX_FUTURE_DAYS', DEFAULT_MESSAGE_LIMITS.maxFutureMs / 86_400_000, 0, 365_000) * 86_400_000,
    maxLines: int('EARSHOT_INGEST_MAX_LINES', DEFAULT_INGEST_MAX_LINES, 1, 10_000_000),
  };
}

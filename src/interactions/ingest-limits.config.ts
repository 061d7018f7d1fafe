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

/** YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS[.fff]] followed by Z or ±HH:MM. */
const ISO_DATE_OR_INSTANT = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/** The earliest `EARSHOT_INGEST_EARLIEST_OCCURRED_AT` taken. */
const EARLIEST_ALLOWED = Date.UTC(1901, 0, 1);

/**
 * The day of `YYYY-MM-DD…` exists: Date.parse rolls an impossible one over, so 2020-02-31 was
 * read as 2020-03-02 and 2021-02-29 as 2021-03-01.
 */
function isCalendarDate(raw: string): boolean {
  const [y, m, d] = raw.slice(0, 10).split('-').map(Number) as [number, number, number];
  const day = new Date(Date.UTC(y, m - 1, d));
  return day.getUTCMonth() === m - 1 && day.getUTCDate() === d;
}

/** Everything but the text limit, which config.ts parses once for its older `ingestMaxTextBytes` too. */
export function parseIngestLimits(
  str: (n: string) => string | null,
  int: (n: string, d: number, min: number, max: number) => number,
  problems: string[],
): Omit<IngestLimitsConfig, 'maxTextBytes'> {
  const earliestRaw = str('EARSHOT_INGEST_EARLIEST_OCCURRED_AT');
  let earliestOccurredAt = DEFAULT_MESSAGE_LIMITS.earliestOccurredAt;
  if (earliestRaw !== null) {
    // A date (a UTC midnight) or a date-time with its offset: Date.parse reads a date-time without
    // one ("2020-01-01T00:00:00", "2020-01-01 00:00", "Jan 1 2020") in the host's time zone, so
    // the same value refused different messages on hosts in different zones.
    const t = ISO_DATE_OR_INSTANT.test(earliestRaw) && isCalendarDate(earliestRaw) ? Date.parse(earliestRaw) : NaN;
    // The earliest allowed is 1901-01-01 (the bound was written Date.UTC(1, 0, 1), which JavaScript
    // reads as 1901, while the message said "after year 0": 0001-01-01 was refused with a reason
    // it met). Kept at 1901: with wider windows a reply decades after its message overflows the
    // listening item's 32-bit first_response_seconds.
    if (Number.isNaN(t) || t < EARLIEST_ALLOWED) problems.push(`EARSHOT_INGEST_EARLIEST_OCCURRED_AT=${JSON.stringify(earliestRaw)}: expected an ISO-8601 date (a UTC day) or date-time with its offset (Z or ±HH:MM), on or after 1901-01-01`);
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

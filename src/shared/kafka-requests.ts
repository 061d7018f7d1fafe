/**
 * Produce requests Kafka will take: what Earshot sends (the outbox relay's events, the dead
 * letters) cut into requests of at most KAFKA_MAX_REQUEST_BYTES, and the broker's "too large"
 * refusal recognised in both Kafka clients' errors. A broker refuses a record batch over its
 * `message.max.bytes` (or the topic's `max.message.bytes`); a sender that retries such a request
 * retries it for ever, and everything after it waits.
 */

/**
 * What one record may add to a produce request beyond its key, value and headers' bytes: the
 * record's own framing (length, attributes, timestamp and offset deltas, varint lengths) with
 * room to spare. A record batch adds 61 bytes of its own, covered by the margin between
 * KAFKA_MAX_REQUEST_BYTES' default (1,000,000) and Kafka's default `message.max.bytes` (1,048,588).
 */
export const RECORD_OVERHEAD_BYTES = 64;

type Bytes = string | Buffer;

/** A record as either client takes it (kafkajs headers may hold arrays). */
export interface SizedRecord {
  key: Bytes | null;
  value: Bytes | null;
  headers?: Readonly<Record<string, Bytes | readonly Bytes[] | undefined>>;
}

const bytesOf = (v: Bytes): number => (typeof v === 'string' ? Buffer.byteLength(v) : v.length);

/** The bytes a record adds to a produce request, framing included (an upper bound). */
export function recordBytes(m: SizedRecord): number {
  let n = RECORD_OVERHEAD_BYTES + (m.key === null ? 0 : bytesOf(m.key)) + (m.value === null ? 0 : bytesOf(m.value));
  const headers = m.headers ?? {};
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? (v as readonly Bytes[]) : [v as Bytes]) n += 10 + Buffer.byteLength(k) + bytesOf(one);
  }
  return n;
}

/**
 * Records as produce requests of at most `maxBytes` each (Kafka's `max.request.size`):
 * consecutive runs in the order given, so the requests, sent one after the other, keep every
 * partition's order. A record larger than `maxBytes` on its own can never be sent as it is: it is
 * set aside in `oversized` (in order) and the rest still go out.
 */
export function splitIntoRequests<T extends SizedRecord>(records: readonly T[], maxBytes: number): { requests: T[][]; oversized: { record: T; bytes: number }[] } {
  const requests: T[][] = [];
  const oversized: { record: T; bytes: number }[] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const m of records) {
    const b = recordBytes(m);
    if (b > maxBytes) {
      oversized.push({ record: m, bytes: b });
      continue;
    }
    if (bytes + b > maxBytes && current.length > 0) {
      requests.push(current);
      current = [];
      bytes = 0;
    }
    current.push(m);
    bytes += b;
  }
  if (current.length > 0) requests.push(current);
  return { requests, oversized };
}

/** Kafka's answers to a record or a record batch over the broker's or the topic's limit. */
const TOO_LARGE = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);

/**
 * Whether a failed send was refused because a record or batch was too large for the broker,
 * anywhere in what the client threw: @platformatic/kafka nests the broker's answer (`apiId`)
 * in AggregateErrors (`errors`), kafkajs names it in `type` and may wrap it (`cause`, `originalError`).
 */
export function isTooLargeError(e: unknown, depth = 0): boolean {
  if (e === null || typeof e !== 'object' || depth > 8) return false;
  const x = e as { apiId?: unknown; type?: unknown; errors?: unknown; cause?: unknown; originalError?: unknown };
  if (TOO_LARGE.has(String(x.apiId)) || TOO_LARGE.has(String(x.type))) return true;
  if (Array.isArray(x.errors) && x.errors.some((c) => isTooLargeError(c, depth + 1))) return true;
  return isTooLargeError(x.cause, depth + 1) || isTooLargeError(x.originalError, depth + 1);
}

/**
 * Set by a send that failed after the broker wrote part of it (a produce request is written
 * partition by partition): the records it did not write, in their order. Absent: none written.
 */
export const UNSENT = Symbol('unsent records');

/** The records of `records` a failed send left unwritten (all of them unless the error says which). */
function unsentOf<T>(e: unknown, records: T[]): T[] {
  const unsent = e !== null && typeof e === 'object' ? (e as { [UNSENT]?: unknown })[UNSENT] : undefined;
  if (!Array.isArray(unsent)) return records;
  const given = new Set<unknown>(records);
  return unsent.every((r) => given.has(r)) ? (unsent as T[]) : records;
}

/**
 * Sends `records` with `send`, one request after the other; when the broker refuses a request as
 * too large anyway (a topic with a smaller `max.message.bytes`), sends its halves, down to single
 * records, so the order is kept. A single record refused on its own goes to `refused`, which may
 * send a smaller stand-in or give it up. Partitions of a refused request that the broker had
 * written are not sent again when the send says which it wrote (`UNSENT`: the relay's
 * @platformatic/kafka producer); otherwise they are (at least once). A kafkajs `send` must start
 * a new producer after a refusal (`IdempotentKafkajsProducer` does). Returns the number of refusals.
 */
export async function sendHalving<T>(records: T[], send: (records: T[]) => Promise<void>, refused: (record: T) => Promise<void>): Promise<number> {
  try {
    await send(records);
    return 0;
  } catch (e) {
    if (!isTooLargeError(e)) throw e;
    const rest = unsentOf(e, records);
    if (rest.length === 0) return 1;
    if (rest.length === 1) {
      await refused(rest[0]!);
      return 1;
    }
    const mid = rest.length >> 1;
    return 1 + (await sendHalving(rest.slice(0, mid), send, refused)) + (await sendHalving(rest.slice(mid), send, refused));
  }
}

/**
 * The topic a failed send found missing ('' when the client does not name it), or null
 * when the failure is another: @platformatic/kafka says "Unknown topic X." (alone, or among the
 * errors of "Producing messages failed."), kafkajs UNKNOWN_TOPIC_OR_PARTITION.
 */
export function missingTopicOf(e: unknown, depth = 0): string | null {
  if (e === null || typeof e !== 'object' || depth > 5) return null;
  const err = e as { message?: unknown; type?: unknown; errors?: unknown; cause?: unknown; originalError?: unknown };
  const named = typeof err.message === 'string' ? /^Unknown topic (.+)\.$/.exec(err.message) : null;
  if (named) return named[1]!;
  if (err.type === 'UNKNOWN_TOPIC_OR_PARTITION') return '';
  for (const inner of [...(Array.isArray(err.errors) ? err.errors : []), err.cause, err.originalError]) {
    const found = missingTopicOf(inner, depth + 1);
    if (found !== null) return found;
  }
  return null;
}

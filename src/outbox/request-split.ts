import type { RelayMessage } from './relay-producer';

/**
 * What one record may add to a produce request beyond its key, value and headers' bytes: the
 * record's own framing (length, attributes, timestamp and offset deltas, varint lengths) with
 * room to spare. A record batch adds 61 bytes of its own, covered by the margin between
 * EARSHOT_OUTBOX_MAX_REQUEST_BYTES' default (1,000,000) and Kafka's default `message.max.bytes`
 * (1,048,588).
 */
export const RECORD_OVERHEAD_BYTES = 64;

/** The bytes a message adds to a produce request, framing included (an upper bound). */
export function messageBytes(m: RelayMessage): number {
  let n = RECORD_OVERHEAD_BYTES + (m.key === null ? 0 : Buffer.byteLength(m.key)) + (m.value === null ? 0 : Buffer.byteLength(m.value));
  for (const k in m.headers) n += 10 + Buffer.byteLength(k) + Buffer.byteLength(m.headers[k]!);
  return n;
}

/**
 * A chunk's messages as produce requests of at most `maxBytes` each (Kafka's `max.request.size`):
 * consecutive runs in the order given, so the requests, sent one after the other, keep every
 * partition's order. A broker refuses a record batch over its `message.max.bytes` (or the topic's
 * `max.message.bytes`), and the relay would retry that request for ever while every event after it
 * waited: 500 reviews of 8 kB, spread over three partitions, made a 1.4 MB batch per partition.
 * A message larger than `maxBytes` on its own can never be sent: it is set aside in `oversized`
 * (in order) and the rest still go out.
 */
export function splitIntoRequests(messages: readonly RelayMessage[], maxBytes: number): { requests: RelayMessage[][]; oversized: { message: RelayMessage; bytes: number; refusedByBroker?: boolean }[] } {
  const requests: RelayMessage[][] = [];
  const oversized: { message: RelayMessage; bytes: number; refusedByBroker?: boolean }[] = [];
  let current: RelayMessage[] = [];
  let bytes = 0;
  for (const m of messages) {
    const b = messageBytes(m);
    if (b > maxBytes) {
      oversized.push({ message: m, bytes: b });
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


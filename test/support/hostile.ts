import { message as baseMessage } from './app';

/** Hostile inbound messages shared by the HTTP, GraphQL, Kafka and fuzz tests. */

/** message(n), with occurredAt kept within weeks of 2026-11-01 however large n is. */
export function message(n: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return baseMessage(n % 50_000, { eventId: `evt-${n}`, externalId: `ext-${n}`, author: { handle: `user${n}`, displayName: `User ${n}` }, ...over });
}

/** A message line whose metadata nests `depth` objects deep, written as text: JSON.stringify itself overflows the stack on it. */
export function deepMetadataLine(m: Record<string, unknown>, depth: number): string {
  return JSON.stringify({ ...m, metadata: '@@deep@@' }).replace('"@@deep@@"', `${'{"a":'.repeat(depth)}{"leaf":true}${'}'.repeat(depth)}`);
}

/** Each kind of line that reached PostgreSQL and failed the whole body before the edge checks. */
export const BAD_LINES: { kind: string; line: (n: number) => string; reason: RegExp }[] = [
  { kind: 'NUL in text', line: (n) => JSON.stringify(message(n, { text: 'nul \u0000 inside' })), reason: /text: .*NUL/ },
  { kind: 'NUL in displayName', line: (n) => JSON.stringify(message(n, { author: { handle: `h${n}`, displayName: 'Ja\u0000ne' } })), reason: /author\.displayName: .*NUL/ },
  { kind: 'NUL in externalId', line: (n) => JSON.stringify(message(n, { externalId: `ext-${n}\u0000` })), reason: /externalId: .*NUL/ },
  { kind: 'NUL in a metadata key', line: (n) => JSON.stringify(message(n, { metadata: { 'k\u0000': 1 } })), reason: /metadata: .*NUL/ },
  { kind: 'NUL in a metadata value', line: (n) => JSON.stringify(message(n, { metadata: { tags: ['ok', 'b\u0000d'] } })), reason: /metadata\.tags\.1: .*NUL/ },
  { kind: 'lone surrogate in text', line: (n) => JSON.stringify(message(n, { text: 'half an emoji \ud800 here' })), reason: /text: .*surrogate/ },
  { kind: 'lone surrogate in a metadata value', line: (n) => JSON.stringify(message(n, { metadata: { x: '\udfff' } })), reason: /metadata\.x: .*surrogate/ },
  { kind: 'year 0', line: (n) => JSON.stringify(message(n, { occurredAt: '0000-01-01T00:00:00Z' })), reason: /occurredAt: .*before 1970-01-01/ },
  { kind: '9999-12-31T23:59:59-14:00', line: (n) => JSON.stringify(message(n, { occurredAt: '9999-12-31T23:59:59-14:00' })), reason: /occurredAt: .*in the future/ },
  { kind: 'metadata nested 5,000 deep', line: (n) => deepMetadataLine(message(n), 5_000), reason: /metadata: nested deeper than 32/ },
];


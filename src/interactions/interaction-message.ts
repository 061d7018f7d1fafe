import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import messageSchema from '../../schema/interactions.v1.schema.json';
import { jsonBeyond } from '../shared/json-depth';

export type Source = (typeof messageSchema.properties.source.enum)[number];
export const SOURCES = messageSchema.properties.source.enum as readonly string[];

/** Networks whose handles identify a person; elsewhere a handle is only a local label. */
export const SOCIAL_SOURCES: ReadonlySet<string> = new Set([
  'x', 'facebook', 'instagram', 'linkedin', 'reddit', 'youtube', 'tiktok', 'trustpilot', 'google_reviews', 'app_store', 'play_store', 'forum',
]);

export interface CrmIdRef {
  system: 'salesforce' | 'hubspot';
  objectType: string;
  id: string;
}

/** The `interactions.v1` payload (schema/interactions.v1.schema.json). */
export interface InteractionMessage {
  eventId?: string;
  source: string;
  externalId: string;
  url?: string | null;
  occurredAt: string;
  direction: 'inbound' | 'outbound';
  inReplyTo?: string | null;
  author: {
    handle?: string;
    displayName?: string | null;
    email?: string | null;
    phone?: string | null;
    profileUrl?: string | null;
    crmIds?: CrmIdRef[];
  };
  text: string;
  lang?: string | null;
  rating?: number | null;
  metadata?: Record<string, unknown> | null;
}

const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);
const validate = ajv.compile<InteractionMessage>(messageSchema);

/** Why a message was refused, for the dead-letter `x-error-kind` header and the counters. */
export type RejectionKind = 'malformed-json' | 'invalid-encoding' | 'schema-violation' | 'too-large' | 'invalid-value';

export type ValidationResult = { ok: true; message: InteractionMessage } | { ok: false; error: string; kind: RejectionKind };

/**
 * What the edge accepts beyond the JSON Schema: everything PostgreSQL would refuse for its
 * content, or that no real interaction has, is refused here with a reason, line by line.
 */
export interface MessageLimits {
  /** EARSHOT_INGEST_MAX_TEXT_BYTES */
  maxTextBytes: number;
  /** EARSHOT_INGEST_MAX_METADATA_DEPTH: objects and arrays nested inside `metadata` (metadata itself is 1) */
  maxMetadataDepth: number;
  /** EARSHOT_INGEST_MAX_METADATA_BYTES: `metadata` as compact JSON in UTF-8 */
  maxMetadataBytes: number;
  /** EARSHOT_INGEST_EARLIEST_OCCURRED_AT, as epoch milliseconds */
  earliestOccurredAt: number;
  /**
   * EARSHOT_INGEST_MAX_FUTURE_DAYS, in milliseconds: how far past `now` occurredAt may be (clock
   * skew, a local time sent as UTC). One day by default: every later stage takes occurredAt as
   * the truth, so a date years ahead kept its text past retention, opened a listening item due
   * years later, and stood first in its customer's history and last-interaction time for years.
   */
  maxFutureMs: number;
  /**
   * Bytes the text may take as JSON, escapes included, in its interactions.enriched.v1 event:
   * KAFKA_MAX_REQUEST_BYTES less 64 KiB for the rest of the event; null without Kafka output.
   * JSON writes a control character in six bytes, so 256 KiB of `\u0001` is a 1.5 MB event that
   * no broker with the default limits takes: refused here, where the sender hears of it, rather
   * than left out by the relay.
   */
  maxEventTextBytes?: number | null;
  /** the clock the future limit is measured against; injectable for tests */
  now?: () => number;
}

/** What an interactions.enriched.v1 event holds besides its text, at most, for `maxEventTextBytes`. */
export const EVENT_ROOM_BESIDES_TEXT = 64 * 1024;

export const DEFAULT_MESSAGE_LIMITS: Readonly<MessageLimits> = Object.freeze({
  maxTextBytes: 256 * 1024,
  maxMetadataDepth: 32,
  maxMetadataBytes: 64 * 1024,
  earliestOccurredAt: Date.UTC(1970, 0, 1),
  maxFutureMs: 86_400_000,
});

/** A future limit as a sender reads it: `24 hours`, `3650 days`. */
export function describeFutureLimit(ms: number): string {
  return ms >= 2 * 86_400_000 && ms % 86_400_000 === 0 ? `${ms / 86_400_000} days` : `${Math.round(ms / 3_600_000)} hours`;
}

/** A bare number is the text limit alone (the older signature); the other limits keep their defaults. */
export type LimitsArg = number | Partial<MessageLimits>;

function limitsOf(arg: LimitsArg): MessageLimits {
  return typeof arg === 'number' ? { ...DEFAULT_MESSAGE_LIMITS, maxTextBytes: arg } : { ...DEFAULT_MESSAGE_LIMITS, ...arg };
}

/** the seconds field of an RFC 3339 date-time that is a leap second: what comes before it, and its offset */
const LEAP_SECOND = /^(.{17})60(?:\.\d+)?([zZ]|[+-]\d\d:\d\d)$/;

const fail = (kind: RejectionKind, error: string): ValidationResult => ({ ok: false, kind, error });

/** Problems reported per message at most: a producer fixes the first few, then sees the rest. */
const MAX_PROBLEMS = 5;

interface Node {
  v: unknown;
  parent: Node | null;
  key: string;
  /** levels inside metadata (metadata itself is 1); 0 outside it */
  metaDepth: number;
}

/** The dotted path of a node, built only when a problem is reported. */
function pathOf(n: Node | null): string {
  const parts: string[] = [];
  for (let c = n; c && c.parent; c = c.parent) parts.push(c.key);
  return parts.reverse().join('.');
}

function badString(s: string): 'NUL' | 'surrogate' | null {
  if (s.includes('\u0000')) return 'NUL';
  if (!(s as unknown as { isWellFormed(): boolean }).isWellFormed()) return 'surrogate';
  return null;
}

function describeBad(kind: 'NUL' | 'surrogate', where: string, what: string): string {
  return kind === 'NUL'
    ? `${where || 'message'}: ${what} contains a NUL character (\\u0000), which cannot be stored`
    : `${where || 'message'}: ${what} contains a lone UTF-16 surrogate (half of a pair), which cannot be stored`;
}

/**
 * Walks the whole decoded value without recursion (a 5,000-deep value must not overflow the
 * stack here or anywhere after), and names every string PostgreSQL cannot store — a NUL
 * character (text and jsonb refuse it) or a lone UTF-16 surrogate (jsonb refuses its escape) —
 * in values and in keys, and `metadata` nested deeper than the limit.
 */
function inspectStrings(value: unknown, limits: MessageLimits): { problems: string[]; metadataTooDeep: boolean } {
  const problems: string[] = [];
  let metadataTooDeep = false;
  const stack: Node[] = [{ v: value, parent: null, key: '', metaDepth: 0 }];
  while (stack.length > 0 && problems.length < MAX_PROBLEMS) {
    const node = stack.pop()!;
    const v = node.v;
    if (typeof v === 'string') {
      const bad = badString(v);
      if (bad) problems.push(describeBad(bad, pathOf(node), 'the value'));
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    const inMeta = node.metaDepth > 0 || (node.key === 'metadata' && node.parent !== null && node.parent.parent === null);
    const depth = inMeta ? node.metaDepth + 1 : 0;
    if (inMeta && depth > limits.maxMetadataDepth) {
      metadataTooDeep = true;
      continue;
    }
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], parent: node, key: String(i), metaDepth: depth });
    } else {
      const keys = Object.keys(v);
      for (let i = keys.length - 1; i >= 0; i--) {
        const k = keys[i]!;
        const bad = badString(k);
        if (bad && problems.length < MAX_PROBLEMS) problems.push(describeBad(bad, pathOf(node), `the key ${JSON.stringify(k.slice(0, 40))}`));
        stack.push({ v: (v as Record<string, unknown>)[k], parent: node, key: k, metaDepth: depth });
      }
    }
  }
  return { problems, metadataTooDeep };
}

/**
 * Checks one decoded message against interactions.v1 and the edge limits. The error names
 * every offending field so a producer can fix it in one go. Never throws.
 *
 * What must stay true: a message that passes is one PostgreSQL can store as it is (no NUL,
 * no lone surrogate, a timestamp it can represent, bounded metadata), so that one producer's
 * bad line never reaches, and never fails, a batch shared with valid lines.
 */
export function validateMessage(value: unknown, limitsArg: LimitsArg): ValidationResult {
  const limits = limitsOf(limitsArg);
  try {
    const { problems, metadataTooDeep } = inspectStrings(value, limits);
    if (metadataTooDeep) {
      problems.unshift(`metadata: nested deeper than ${limits.maxMetadataDepth} levels (EARSHOT_INGEST_MAX_METADATA_DEPTH)`);
    }
    if (problems.length > 0) return fail('invalid-value', problems.join('; '));
    if (!validate(value)) {
      const errors = (validate.errors ?? [])
        // the branches of anyOf fail one by one; their summary says it once
        .filter((e) => !e.schemaPath.includes('/anyOf/'))
        .map((e) => {
          const where = e.instancePath === '' ? '' : `${e.instancePath.slice(1).replace(/\//g, '.')}: `;
          if (e.keyword === 'required') return `${where}missing required field '${(e.params as { missingProperty: string }).missingProperty}'`;
          if (e.keyword === 'enum') return `${where}must be one of ${(e.params as { allowedValues: string[] }).allowedValues.join(', ')}`;
          if (e.keyword === 'additionalProperties') return `${where}unknown field '${(e.params as { additionalProperty: string }).additionalProperty}'`;
          if (e.keyword === 'anyOf') return 'author: needs at least one of handle, email, phone, crmIds';
          return `${where}${e.message}`;
        })
        .filter((m, i, all) => all.indexOf(m) === i);
      return fail('schema-violation', errors.join('; ') || 'invalid message');
    }
    const message = value;
    const textBytes = Buffer.byteLength(message.text, 'utf8');
    if (textBytes > limits.maxTextBytes) {
      return fail('too-large', `text: longer than the limit of ${limits.maxTextBytes} bytes`);
    }
    // JSON takes at most six bytes for one of UTF-8 (a control character as \u00XX), so only a long text is written out
    const eventText = limits.maxEventTextBytes ?? null;
    if (eventText !== null && 6 * textBytes + 2 > eventText) {
      const asJson = Buffer.byteLength(JSON.stringify(message.text), 'utf8');
      if (asJson > eventText) {
        return fail('too-large', `text: ${asJson} bytes as JSON (escapes included), more than its interactions.enriched.v1 event can carry (${eventText} bytes for the text: KAFKA_MAX_REQUEST_BYTES less ${EVENT_ROOM_BESIDES_TEXT})`);
      }
    }
    // RFC 3339 allows a leap second (23:59:60Z), which the schema takes and JavaScript's dates do
    // not: it is stored as the last millisecond of the second before, in order with its neighbours.
    // Before, such a message was refused as "not a valid date-time" although it was valid.
    const leap = LEAP_SECOND.exec(message.occurredAt);
    if (leap) message.occurredAt = `${leap[1]}59.999${leap[2]}`;
    const at = Date.parse(message.occurredAt);
    if (Number.isNaN(at)) return fail('schema-violation', 'occurredAt: not a valid date-time');
    if (at < limits.earliestOccurredAt) {
      return fail('invalid-value', `occurredAt: ${message.occurredAt} is before ${new Date(limits.earliestOccurredAt).toISOString()} (EARSHOT_INGEST_EARLIEST_OCCURRED_AT)`);
    }
    const latest = (limits.now ?? Date.now)() + limits.maxFutureMs;
    if (at > latest) {
      return fail('invalid-value', `occurredAt: ${message.occurredAt} is more than ${describeFutureLimit(limits.maxFutureMs)} in the future (EARSHOT_INGEST_MAX_FUTURE_DAYS)`);
    }
    if (message.metadata) {
      const bytes = Buffer.byteLength(JSON.stringify(message.metadata), 'utf8');
      if (bytes > limits.maxMetadataBytes) {
        return fail('too-large', `metadata: ${bytes} bytes as JSON, over the limit of ${limits.maxMetadataBytes} bytes (EARSHOT_INGEST_MAX_METADATA_BYTES)`);
      }
    }
    return { ok: true, message };
  } catch (e) {
    // Whatever slipped past the checks above (a stack overflow in a library) is still this message's fault alone.
    return fail('invalid-value', `the message could not be validated: ${(e as Error).message}`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Levels of objects and arrays outside metadata: the message, author, crmIds, a CRM id. */
const MESSAGE_DEPTH = 4;
/**
 * Objects and arrays outside metadata: the message, author, crmIds and its 20 items. Metadata
 * holds at most one per two bytes of its compact JSON (`[]`).
 */
const MESSAGE_CONTAINERS = 23;

/**
 * Parses one NDJSON line or Kafka value; never throws. Bytes must be valid UTF-8: a
 * decoder that replaced bad bytes would store text the producer never sent.
 */
export function parseMessage(raw: string | Uint8Array, limits: LimitsArg): ValidationResult {
  let text: string;
  if (typeof raw === 'string') text = raw;
  else {
    try {
      text = utf8.decode(raw);
    } catch {
      return fail('invalid-encoding', 'the message is not valid UTF-8');
    }
  }
  // Nesting, or a number of objects and arrays, no valid message has is refused unread: JSON.parse
  // of a 2 MB line of `[` took 1.4-2.5 s, of `{},` 0.4 s (../shared/json-depth.ts). Metadata
  // nested too deep gets the answer validation gives it.
  const lim = limitsOf(limits);
  const maxDepth = Math.max(MESSAGE_DEPTH, 1 + lim.maxMetadataDepth);
  const maxContainers = MESSAGE_CONTAINERS + Math.floor(lim.maxMetadataBytes / 2);
  const beyond = jsonBeyond(text, maxDepth, maxContainers);
  if (beyond !== null) {
    const where = beyond.member === null ? 'message' : beyond.member.slice(0, 40);
    if (beyond.bound === 'depth') {
      if (beyond.member === 'metadata') return fail('invalid-value', `metadata: nested deeper than ${lim.maxMetadataDepth} levels (EARSHOT_INGEST_MAX_METADATA_DEPTH)`);
      return fail('schema-violation', `${where}: nested deeper than any valid message (${maxDepth} levels of objects and arrays); not parsed`);
    }
    if (beyond.member === 'metadata') {
      return fail('too-large', `metadata: more objects and arrays than ${lim.maxMetadataBytes} bytes of JSON hold (EARSHOT_INGEST_MAX_METADATA_BYTES); not parsed`);
    }
    return fail('schema-violation', `${where}: more objects and arrays than any valid message has (${maxContainers}); not parsed`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    if (e instanceof SyntaxError) return fail('malformed-json', `malformed JSON: ${e.message}`);
    return fail('malformed-json', `malformed JSON: could not be parsed (${(e as Error).message})`);
  }
  return validateMessage(value, lim);
}

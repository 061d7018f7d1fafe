import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import messageSchema from '../../schema/interactions.v1.schema.json';

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

export type ValidationResult = { ok: true; message: InteractionMessage } | { ok: false; error: string };

/**
 * Checks one decoded message against interactions.v1 and the text size limit.
 * The error names every offending field so a producer can fix it in one go.
 */
export function validateMessage(value: unknown, maxTextBytes: number): ValidationResult {
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
    return { ok: false, error: errors.join('; ') || 'invalid message' };
  }
  const message = value;
  if (Buffer.byteLength(message.text, 'utf8') > maxTextBytes) {
    return { ok: false, error: `text: longer than the limit of ${maxTextBytes} bytes` };
  }
  if (Number.isNaN(Date.parse(message.occurredAt))) return { ok: false, error: 'occurredAt: not a valid date-time' };
  return { ok: true, message };
}

/** Parses one NDJSON line or Kafka value; never throws. */
export function parseMessage(raw: string | Buffer, maxTextBytes: number): ValidationResult {
  let value: unknown;
  try {
    value = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (e) {
    return { ok: false, error: `malformed JSON: ${(e as Error).message}` };
  }
  return validateMessage(value, maxTextBytes);
}

import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Fields of an error that carry the values of a statement: TypeORM's QueryFailedError keeps the
 * statement's `parameters`, and PostgreSQL's `detail` quotes the row ("Key (value)=(jane@…)
 * already exists."). pino's error serializer wrote them all (three copies of an email for one
 * failed insert), so any failed statement put customers' addresses, phones and texts in the log.
 */
const VALUE_FIELDS = ['parameters', 'detail'] as const;
const NESTED = ['driverError', 'cause', 'originalError'] as const;

/** pino's error serializer, without the values of statements, also in nested errors. */
export function serializeError(err: unknown): unknown {
  return withoutValues(err instanceof Error ? pino.stdSerializers.err(err) : err, 0);
}

/**
 * PostgreSQL quotes the value it could not read in the message itself ("invalid input syntax for
 * type uuid: \"jane@…\""), so in the stack too: the value goes, the type stays.
 */
const QUOTED_INPUT = /(invalid input (?:syntax|value) for (?:type|enum) [^:\n]+): "[^\n]*"/g;

function withoutValues(value: unknown, depth: number): unknown {
  if (!value || typeof value !== 'object' || depth > 5) return value;
  const out = { ...(value as Record<string, unknown>) };
  for (const f of VALUE_FIELDS) if (f in out) out[f] = '[not logged: may hold customer data]';
  for (const f of ['message', 'stack'] as const) if (typeof out[f] === 'string') out[f] = (out[f] as string).replace(QUOTED_INPUT, '$1: "[not logged]"');
  for (const n of NESTED) if (n in out) out[n] = withoutValues(out[n], depth + 1);
  return out;
}

/** JSON logs on stdout; one root logger, children per component and request. */
export function createLogger(level: string, base: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'earshot', ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    serializers: { err: serializeError },
  };
  return destination ? pino(options, destination) : pino(options);
}

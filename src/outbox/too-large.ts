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

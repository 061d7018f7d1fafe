import { Field, ID, InterfaceType, ObjectType, Int } from 'type-graphql';
import { AppError } from '../shared/app-error';

export const MAX_PAGE_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 20;

export type NodeKind = 'Customer' | 'Interaction' | 'MergeSuggestion' | 'ListeningItem';

/** Opaque Relay ids: base64url("Kind:uuid"). */
export function toGlobalId(kind: NodeKind, id: string): string {
  return Buffer.from(`${kind}:${id}`).toString('base64url');
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function fromGlobalId(globalId: string, expected?: NodeKind): { kind: NodeKind; id: string } {
  const decoded = Buffer.from(globalId, 'base64url').toString('utf8');
  const sep = decoded.indexOf(':');
  const kind = decoded.slice(0, sep) as NodeKind;
  const id = decoded.slice(sep + 1);
  if (sep < 1 || !UUID.test(id) || (expected && kind !== expected)) {
    throw AppError.badInput(`invalid ${expected ?? 'node'} id: ${JSON.stringify(globalId)}`);
  }
  return { kind, id };
}

/** Keyset cursor of a row ordered by (sort value, id). */
export interface Cursor {
  sort: string;
  id: string;
}

export function encodeCursor(sort: Date | string | number, id: string): string {
  const s = sort instanceof Date ? sort.toISOString() : String(sort);
  return Buffer.from(JSON.stringify([s, id])).toString('base64url');
}

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[ T]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]\d{2}(:?\d{2})?)?$/;

/** A timestamp PostgreSQL reads as timestamptz without complaint (the day exists, the year is sane). */
export function isTimestamp(s: string): boolean {
  const m = TIMESTAMP.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(y, mo - 1, d));
  return y >= 1 && date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d;
}

const SORT_CHECKS = {
  timestamp: isTimestamp,
  bigint: (s: string) => /^-?\d{1,18}$/.test(s),
  any: (_s: string) => true,
} as const;

/**
 * Decodes a cursor made by {@link encodeCursor}. `sort` says what its sort value must be, so
 * that a forged cursor is the caller's mistake (BAD_USER_INPUT) and never reaches SQL as a
 * value PostgreSQL refuses.
 */
export function decodeCursor(cursor: string | null | undefined, sort: keyof typeof SORT_CHECKS = 'any'): Cursor | null {
  if (cursor === null || cursor === undefined) return null;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(parsed) && parsed.length === 2 && typeof parsed[0] === 'string' && typeof parsed[1] === 'string' &&
      UUID.test(parsed[1]) && SORT_CHECKS[sort](parsed[0])
    ) {
      return { sort: parsed[0], id: parsed[1] };
    }
  } catch {
    // fall through
  }
  throw AppError.badInput(`invalid cursor: ${JSON.stringify(cursor.length > 200 ? `${cursor.slice(0, 200)}…` : cursor)}`);
}

/** Page size as asked, capped: over MAX_PAGE_SIZE is the caller's mistake, not silently trimmed. */
export function pageSize(first: number | null | undefined): number {
  if (first === null || first === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(first) || first < 0 || first > MAX_PAGE_SIZE) {
    throw AppError.badInput(`first must be between 0 and ${MAX_PAGE_SIZE}`, { first });
  }
  return first;
}

@InterfaceType({ description: 'An object with a globally unique, opaque id (Relay)' })
export abstract class Node {
  @Field(() => ID)
  id!: string;
}

@ObjectType()
export class PageInfo {
  @Field(() => Boolean)
  hasNextPage!: boolean;

  @Field(() => String, { nullable: true })
  endCursor!: string | null;
}

export interface Page<T> {
  totalCount: number;
  pageInfo: PageInfo;
  edges: { cursor: string; node: T }[];
}

/** Builds a page from rows fetched with LIMIT first + 1. */
export function toPage<T>(rows: T[], first: number, totalCount: number, cursorOf: (row: T) => string): Page<T> {
  const nodes = rows.slice(0, first);
  const edges = nodes.map((node) => ({ cursor: cursorOf(node), node }));
  return { totalCount, pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null }, edges };
}

export { Int };

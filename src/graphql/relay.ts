import { Field, ID, InterfaceType, Int, ObjectType, type ClassType } from 'type-graphql';
import { AppError } from '../shared/app-error';

export const MAX_PAGE_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 20;

export type NodeKind = 'Customer' | 'Interaction' | 'MergeSuggestion' | 'ListeningItem' | 'RetagJob' | 'ReresolutionJob';

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
    throw AppError.badInput(`invalid ${expected ?? 'node'} id: ${JSON.stringify(globalId)}`, { argument: 'id', rule: expected ? `a ${expected} id` : 'a node id' });
  }
  // one form: PostgreSQL reads a UUID in any case, but the loaders key what it returns by the
  // lower-case text, so an id written in upper case (.NET, a spreadsheet) answered null
  return { kind, id: id.toLowerCase() };
}

/** Keyset cursor of a row ordered by (sort value, id) under the named sort. */
export interface Cursor {
  sort: string;
  id: string;
}

/** The list's and sort's name is in the cursor, so a cursor from another list or order is refused rather than misread. */
/**
 * The longest cursor read. Ours are a few hundred characters at most (an order name, a sort value,
 * an id); a forged one is refused before it is decoded: `JSON.parse` of a cursor of a million
 * nested arrays cost about 1 s, for any authenticated caller.
 */
export const MAX_CURSOR_CHARS = 4_096;

/**
 * `sortName` names the list and its order (`customers:newest`); `owner`, the node whose list it is
 * when a field lists a node's own items (a customer's interactions): its cursor is refused on
 * another node's list.
 */
export function encodeCursor(sort: Date | string | number, id: string, sortName = 'default', owner?: string | null): string {
  const s = sort instanceof Date ? sort.toISOString() : String(sort);
  return Buffer.from(JSON.stringify(owner ? [sortName, s, id, owner] : [sortName, s, id])).toString('base64url');
}

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[ T]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-](\d{2})(?::?([0-5]\d))?)?$/;

/** PostgreSQL refuses a UTC offset beyond ±15:59 ("time zone displacement out of range"). */
const MAX_OFFSET_HOURS = 15;

/** A timestamp PostgreSQL reads as timestamptz without complaint (the day exists, the year is sane, the offset is in range). */
export function isTimestamp(s: string): boolean {
  const m = TIMESTAMP.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (m[7] !== undefined && Number(m[7]) > MAX_OFFSET_HOURS) return false;
  const date = new Date(Date.UTC(y, mo - 1, d));
  return y >= 1 && date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d;
}

const FLOAT = /^-?(\d+(\.\d+)?)(e[+-]?\d+)?$/i;

/** A number PostgreSQL reads as float8: not beyond its range either way (1e999 and 1e-999 are refused there). */
function isFloat8(s: string): boolean {
  if (/^-?Infinity$/i.test(s)) return true;
  const m = FLOAT.exec(s);
  if (!m) return false;
  const n = Number(s);
  // a non-zero mantissa that reads as 0 underflowed
  return Number.isFinite(n) && (n !== 0 || !/[1-9]/.test(m[1]!));
}

const SORT_CHECKS = {
  timestamp: isTimestamp,
  bigint: (s: string) => /^-?\d{1,18}$/.test(s),
  any: (_s: string) => true,
} as const;

/** What a sort value of each SQL type must look like before it is cast in SQL. */
const VALUE_CHECKS: Record<string, (s: string) => boolean> = {
  timestamptz: (s) => isTimestamp(s) || s === '-infinity' || s === 'infinity',
  float8: isFloat8,
  int8: SORT_CHECKS.bigint,
  text: SORT_CHECKS.any,
};

/**
 * Decodes a cursor made by {@link encodeCursor} for the order `sortName`. A cursor of another
 * order, a forged one, or one whose sort value is not of `type` is the caller's mistake
 * (BAD_USER_INPUT, naming the argument) and never reaches SQL as a value PostgreSQL refuses.
 */
export function decodeCursor(cursor: string | null | undefined, sortName = 'default', argument = 'after', type = 'text', owner?: string | null): Cursor | null {
  if (cursor === null || cursor === undefined) return null;
  try {
    if (cursor.length > MAX_CURSOR_CHARS) throw new Error('too long');
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(parsed) && parsed.length === (owner ? 4 : 3) && parsed[0] === sortName && typeof parsed[1] === 'string' && typeof parsed[2] === 'string' &&
      UUID.test(parsed[2]) && (VALUE_CHECKS[type] ?? SORT_CHECKS.any)(parsed[1]) && (!owner || parsed[3] === owner)
    ) {
      return { sort: parsed[1], id: parsed[2] };
    }
  } catch {
    // fall through
  }
  throw AppError.badInput(`invalid cursor: ${JSON.stringify(cursor.length > 200 ? `${cursor.slice(0, 200)}…` : cursor)} (a cursor is only valid for the list and order it came from)`, { argument, rule: 'a cursor from this list' });
}

/** Page size as asked, capped: over MAX_PAGE_SIZE is the caller's mistake, not silently trimmed. */
export function pageSize(first: number | null | undefined, argument = 'first'): number {
  if (first === null || first === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(first) || first < 0 || first > MAX_PAGE_SIZE) {
    throw AppError.badInput(`${argument} must be between 0 and ${MAX_PAGE_SIZE}`, { argument, rule: `0..${MAX_PAGE_SIZE}`, [argument]: first });
  }
  return first;
}

@InterfaceType({ description: 'An object with a globally unique, opaque id (Relay): node(id:) fetches it again' })
export abstract class Node {
  @Field(() => ID, { description: 'opaque global id; pass it to node(id:)' })
  id!: string;
}

@ObjectType({ simpleResolvers: true, description: 'Where a page sits in its list (Relay cursor connections)' })
export class PageInfo {
  @Field(() => Boolean, { description: 'more items follow endCursor (paging forward with first/after); with last/before: true when before was given' })
  hasNextPage!: boolean;

  @Field(() => Boolean, { description: 'more items precede startCursor (paging backward with last/before); with first/after: true when after was given' })
  hasPreviousPage!: boolean;

  @Field(() => String, { nullable: true, description: 'cursor of the first edge; null on an empty page' })
  startCursor!: string | null;

  @Field(() => String, { nullable: true, description: 'cursor of the last edge; null on an empty page' })
  endCursor!: string | null;
}

export interface Edge<T> {
  cursor: string;
  node: T;
}

/** A page as resolvers return it; `totalCount` is a getter, so its query runs only when asked for. */
export interface Page<T> {
  readonly totalCount: number | Promise<number>;
  pageInfo: PageInfo;
  edges: Edge<T>[];
}

const connectionTypes = new Map<Function, ClassType>();

/**
 * The one connection type of the API (type-graphql's generic-types pattern): the base of
 * `<Node>Connection`, with `<Node>Edge`, built once per node class.
 */
export function Connection<T extends object>(nodeClass: ClassType<T>, name = nodeClass.name): ClassType<Page<T>> {
  const known = connectionTypes.get(nodeClass);
  if (known) return known as ClassType<Page<T>>;

  @ObjectType(`${name}Edge`, { simpleResolvers: true, description: `One ${name} of a page, with its cursor` })
  class EdgeType {
    @Field(() => String, { description: 'opaque position of this node in the list: pass it as after or before' })
    cursor!: string;

    @Field(() => nodeClass, { description: `the ${name}` })
    node!: T;
  }

  // abstract: each feature declares `@ObjectType() class XConnection extends Connection(X) {}`
  // unnamed and unreferenced, so not in the schema itself
  @ObjectType({ simpleResolvers: true })
  abstract class ConnectionType {
    @Field(() => Int, { description: 'items in the whole list under the same filter (counted only when asked for)' })
    totalCount!: number | Promise<number>;

    @Field(() => PageInfo, { description: 'cursors and whether more pages exist' })
    pageInfo!: PageInfo;

    @Field(() => [EdgeType], { description: 'the items of this page, in list order' })
    edges!: Edge<T>[];
  }
  connectionTypes.set(nodeClass, ConnectionType as unknown as ClassType);
  return ConnectionType as unknown as ClassType<Page<T>>;
}

/** The same page with its nodes mapped; totalCount stays lazy (a spread would run its query). */
export function mapPage<A, B>(page: Page<A>, map: (node: A) => B): Page<B> {
  return new MappedPage(page, page.edges.map((e) => ({ cursor: e.cursor, node: map(e.node) })));
}

/** A class, not a literal with a getter closure: see KeysetPage in keyset.ts. */
class MappedPage<A, B> implements Page<B> {
  readonly pageInfo: PageInfo;
  constructor(
    private readonly page: Page<A>,
    readonly edges: Edge<B>[],
  ) {
    this.pageInfo = page.pageInfo;
  }

  get totalCount(): number | Promise<number> {
    return this.page.totalCount;
  }
}

import { AppError } from '../shared/app-error';
import { decodeCursor, DEFAULT_PAGE_SIZE, encodeCursor, MAX_CURSOR_CHARS, pageSize, type Page } from './relay';

/** One order of a list: an SQL expression (never null: coalesce in it) and its direction; ties broken by id. */
export interface SortKey {
  /**
   * written into cursors, `list:order` (`customers:newest`): a cursor of another list or order is
   * refused. Two lists may share a SortKey's expression, never its name.
   */
  name: string;
  expr: string;
  /** the SQL type the cursor's value is cast back to */
  type: 'timestamptz' | 'float8' | 'int8' | 'text';
  desc: boolean;
}

/** Relay's window arguments. */
export interface Window {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

export interface Keyset {
  /** conditions from after/before, with their values appended to the caller's params */
  conditions: string[];
  orderBy: string;
  /** LIMIT: page size + 1, to know whether more follow */
  limit: number;
  /** turns the rows as fetched (query order) into a page; `owner`: the node whose list it is, written into its cursors (keyset's by default) */
  page<R, T>(rows: R[], map: (row: R) => T, cursorOf: (row: R) => [sortValue: string, id: string], totalCount: () => Promise<number>, owner?: string | null): Page<T>;
}

/**
 * The one keyset pager: `WHERE (sort, id) < / > (cursor)` and `ORDER BY sort, id` in the list's
 * direction, or reversed for last/before (and the rows turned back). Every list uses it, one
 * query per page whatever its depth; totalCount is a separate query run only when asked for.
 *
 * What must stay true: a cursor is only accepted by the list and order that made it (and, given
 * `owner`, by that node's list: a customer's interactions are not another's); first and last
 * are never both applied; pages never overlap or skip rows under concurrent inserts elsewhere.
 */
export function keyset(sort: SortKey, idExpr: string, w: Window, params: unknown[], owner: string | null = null): Keyset {
  if (w.first != null && w.last != null) throw AppError.badInput('pass first or last, not both', { argument: 'last', rule: 'first and last are exclusive' });
  const backward = w.last != null || (w.first == null && w.before != null);
  const n = backward ? pageSize(w.last ?? DEFAULT_PAGE_SIZE, 'last') : pageSize(w.first, 'first');
  const after = decodeCursor(w.after, sort.name, 'after', sort.type, owner);
  const before = decodeCursor(w.before, sort.name, 'before', sort.type, owner);
  const conditions: string[] = [];
  const bound = (c: { sort: string; id: string }, later: boolean) => {
    params.push(c.sort, c.id);
    // "later in the list": smaller when the list is descending
    const op = later !== sort.desc ? '>' : '<';
    conditions.push(`(${sort.expr}, ${idExpr}) ${op} ($${params.length - 1}::${sort.type}, $${params.length}::uuid)`);
  };
  if (after) bound(after, true);
  if (before) bound(before, false);
  const dir = sort.desc !== backward ? 'DESC' : 'ASC';
  return {
    conditions,
    orderBy: `${sort.expr} ${dir}, ${idExpr} ${dir}`,
    limit: n + 1,
    page(rows, map, cursorOf, count, pageOwner = owner) {
      const more = rows.length > n;
      const kept = rows.slice(0, n);
      if (backward) kept.reverse();
      const edges = kept.map((r) => {
        const [s, id] = cursorOf(r);
        return new LazyEdge(map(r), s, id, sort.name, pageOwner);
      });
      return new KeysetPage(edges, count, backward ? before !== null : more, backward ? more : after !== null);
    },
  };
}

/**
 * A page whose totalCount is counted when read, and whose cursors are encoded when read. Classes,
 * not object literals with getters: V8 gives each literal with accessor closures a map of its
 * own, in the old generation, and those maps kept every page's rows alive through each young
 * collection (about 10 MB promoted a scavenge on the customer page, freed only by full ones).
 */
class KeysetPage<T> implements Page<T> {
  readonly pageInfo: KeysetPageInfo<T>;
  private total: Promise<number> | null = null;

  constructor(
    readonly edges: LazyEdge<T>[],
    private readonly count: () => Promise<number>,
    hasNextPage: boolean,
    hasPreviousPage: boolean,
  ) {
    this.pageInfo = new KeysetPageInfo(edges, hasNextPage, hasPreviousPage);
  }

  get totalCount(): Promise<number> {
    return (this.total ??= this.count());
  }
}

class KeysetPageInfo<T> {
  constructor(
    private readonly edges: LazyEdge<T>[],
    readonly hasNextPage: boolean,
    readonly hasPreviousPage: boolean,
  ) {}

  get startCursor(): string | null {
    return this.edges[0]?.cursor ?? null;
  }

  get endCursor(): string | null {
    return this.edges.at(-1)?.cursor ?? null;
  }
}

/** An edge whose cursor is encoded when read: most pages never select their edges' cursors. */
class LazyEdge<T> {
  private encoded: string | null = null;

  constructor(
    readonly node: T,
    private readonly sortValue: string,
    private readonly id: string,
    private readonly sortName: string,
    private readonly owner: string | null,
  ) {}

  get cursor(): string {
    return (this.encoded ??= encodeCursor(this.sortValue, this.id, this.sortName, this.owner));
  }
}

/** The order name written in a cursor, or null for none or an unreadable one (keyset() then refuses it). */
export function cursorOrderName(cursor: string | null | undefined): string | null {
  const parsed = peek(cursor);
  return parsed && typeof parsed[0] === 'string' ? parsed[0] : null;
}

/** The owner written in a cursor (see encodeCursor), or null for none or an unreadable one (keyset() then refuses it). */
export function cursorOwner(cursor: string | null | undefined): string | null {
  const parsed = peek(cursor);
  return parsed && typeof parsed[3] === 'string' ? parsed[3] : null;
}

function peek(cursor: string | null | undefined): unknown[] | null {
  if (!cursor || cursor.length > MAX_CURSOR_CHARS) return null;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    return Array.isArray(parsed) ? parsed : null;
  } catch {
    return null;
  }
}

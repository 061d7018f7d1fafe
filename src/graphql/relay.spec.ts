import { describe, expect, it } from 'vitest';
import { AppError } from '../shared/app-error';
import { keyset } from './keyset';
import { decodeCursor, encodeCursor, fromGlobalId, pageSize, toGlobalId } from './relay';

const ID = '3f1c2a4e-8b7d-4c1a-9e2f-0a1b2c3d4e5f';
const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return { code: (e as AppError).code, details: (e as AppError).details };
  }
  return null;
};

describe('relay helpers', () => {
  it('round-trips global ids and refuses ids of another kind', () => {
    const g = toGlobalId('Customer', ID);
    expect(fromGlobalId(g)).toEqual({ kind: 'Customer', id: ID });
    expect(() => fromGlobalId(g, 'Interaction')).toThrow(AppError);
    expect(() => fromGlobalId('garbage')).toThrow(/invalid node id/);
  });

  it('round-trips cursors and answers BAD_USER_INPUT, naming the argument, for forged ones or those of another order', () => {
    const c = encodeCursor(new Date('2026-01-02T03:04:05.000Z'), ID, 'newest');
    expect(decodeCursor(c, 'newest')).toEqual({ sort: '2026-01-02T03:04:05.000Z', id: ID });
    expect(decodeCursor(null)).toBeNull();
    expect(code(() => decodeCursor(c, 'oldest'))?.code).toBe('BAD_USER_INPUT');
    for (const bad of ['nope', Buffer.from('[1,2]').toString('base64url'), Buffer.from('["newest","x","not-a-uuid"]').toString('base64url')]) {
      expect(code(() => decodeCursor(bad, 'newest', 'before'))).toEqual({ code: 'BAD_USER_INPUT', details: { argument: 'before', rule: 'a cursor from this list' } });
    }
  });

  it('caps the page size at 100', () => {
    expect(pageSize(undefined)).toBe(20);
    expect(pageSize(100)).toBe(100);
    expect(() => pageSize(101)).toThrow(/between 0 and 100/);
    expect(() => pageSize(-1)).toThrow(AppError);
  });
});

describe('keyset', () => {
  const sort = { name: 'newest', expr: 't.at', type: 'timestamptz' as const, desc: true };
  const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ at: `2026-01-0${i + 1}`, id: ID.slice(0, -1) + String(i) }));

  it('pages forward: where after the cursor, in the list order, one more row to know about the next page', () => {
    const params: unknown[] = [];
    const after = encodeCursor('2026-01-05 00:00:00+00', ID, 'newest');
    const k = keyset(sort, 't.id', { first: 2, after }, params);
    expect(k.conditions).toEqual(['(t.at, t.id) < ($1::timestamptz, $2::uuid)']);
    expect(k.orderBy).toBe('t.at DESC, t.id DESC');
    expect(k.limit).toBe(3);
    const page = k.page(rows(3), (r) => r.id, (r) => [r.at, r.id], async () => 42);
    expect(page.edges.map((e) => e.node)).toEqual(rows(2).map((r) => r.id));
    expect(page.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: true });
    expect(decodeCursor(page.pageInfo.endCursor, 'newest')).toEqual({ sort: '2026-01-02', id: rows(2)[1]!.id });
  });

  it('pages backward with last/before: reversed order in SQL, rows turned back', () => {
    const params: unknown[] = [];
    const k = keyset(sort, 't.id', { last: 2, before: encodeCursor('2026-01-01 00:00:00+00', ID, 'newest') }, params);
    expect(k.conditions).toEqual(['(t.at, t.id) > ($1::timestamptz, $2::uuid)']);
    expect(k.orderBy).toBe('t.at ASC, t.id ASC');
    const page = k.page(rows(2), (r) => r.at, (r) => [r.at, r.id], async () => 0);
    expect(page.edges.map((e) => e.node)).toEqual(['2026-01-02', '2026-01-01']);
    expect(page.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
  });

  it('counts only when totalCount is read, once', async () => {
    let counted = 0;
    const page = keyset(sort, 't.id', {}, []).page(rows(1), (r) => r, (r) => [r.at, r.id], async () => ++counted);
    expect(counted).toBe(0);
    expect(await page.totalCount).toBe(1);
    expect(await page.totalCount).toBe(1);
    expect(counted).toBe(1);
  });

  it('refuses first with last, and sizes out of range, naming the argument', () => {
    expect(code(() => keyset(sort, 't.id', { first: 1, last: 1 }, []))?.details).toMatchObject({ argument: 'last' });
    expect(code(() => keyset(sort, 't.id', { last: 101 }, []))?.details).toMatchObject({ argument: 'last', rule: '0..100' });
  });
});

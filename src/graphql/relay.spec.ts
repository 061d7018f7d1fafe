import { describe, expect, it } from 'vitest';
import { AppError } from '../shared/app-error';
import { decodeCursor, encodeCursor, fromGlobalId, pageSize, toGlobalId } from './relay';

const ID = '3f1c2a4e-8b7d-4c1a-9e2f-0a1b2c3d4e5f';

describe('relay helpers', () => {
  it('round-trips global ids and refuses ids of another kind', () => {
    const g = toGlobalId('Customer', ID);
    expect(fromGlobalId(g)).toEqual({ kind: 'Customer', id: ID });
    expect(() => fromGlobalId(g, 'Interaction')).toThrow(AppError);
    expect(() => fromGlobalId('garbage')).toThrow(/invalid node id/);
  });

  it('round-trips cursors and answers BAD_USER_INPUT for forged ones', () => {
    const c = encodeCursor(new Date('2026-01-02T03:04:05.000Z'), ID);
    expect(decodeCursor(c)).toEqual({ sort: '2026-01-02T03:04:05.000Z', id: ID });
    expect(decodeCursor(null)).toBeNull();
    for (const bad of ['nope', Buffer.from('[1,2]').toString('base64url'), Buffer.from('["x","not-a-uuid"]').toString('base64url')]) {
      try {
        decodeCursor(bad);
        expect.unreachable();
      } catch (e) {
        expect((e as AppError).code).toBe('BAD_USER_INPUT');
      }
    }
  });

  it('caps the page size at 100', () => {
    expect(pageSize(undefined)).toBe(20);
    expect(pageSize(100)).toBe(100);
    expect(() => pageSize(101)).toThrow(/between 0 and 100/);
    expect(() => pageSize(-1)).toThrow(AppError);
  });
});

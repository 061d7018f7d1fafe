import { describe, expect, it } from 'vitest';
import { fastest } from '../../test/support/fastest';
import { AppError } from '../shared/app-error';
import { cursorOrderName } from './keyset';
import { decodeCursor, encodeCursor, MAX_CURSOR_CHARS } from './relay';

const ID = '0190a3c1-0000-7000-8000-000000000001';

describe('forged cursors', () => {
  // a million nested arrays: JSON.parse spent about a second on it
  const deep = Buffer.from('['.repeat(1_000_000)).toString('base64url');
  // an ordinary cursor that fails to decode, padded to the same length with base64 of spaces
  const flat = Buffer.from(`["newest","2026-01-02",${' '.repeat(1_000_000 - 40)}]`).toString('base64url');

  it('are refused unread when longer than any cursor Earshot makes, with the usual error', () => {
    const e = (() => {
      try {
        decodeCursor(deep, 'newest');
      } catch (err) {
        return err as AppError;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(AppError);
    expect(e!.code).toBe('BAD_USER_INPUT');
    expect(e!.message.length).toBeLessThan(400);
    expect(cursorOrderName(deep)).toBeNull();
    // decoding a refused deep cursor costs no more than refusing a flat one of its length
    expect(fastest(() => decodeCursor(deep, 'newest'))).toBeLessThan(4 * fastest(() => decodeCursor(flat, 'newest')) + 5);
    expect(fastest(() => cursorOrderName(deep))).toBeLessThan(4 * fastest(() => cursorOrderName(flat)) + 5);
  });

  it('leave real cursors alone, long sort values included', () => {
    const c = encodeCursor('x'.repeat(1_000), ID, 'name');
    expect(c.length).toBeLessThan(MAX_CURSOR_CHARS);
    expect(decodeCursor(c, 'name')).toEqual({ sort: 'x'.repeat(1_000), id: ID });
    expect(cursorOrderName(c)).toBe('name');
  });
});

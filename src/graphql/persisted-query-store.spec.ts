import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { PERSISTED_QUERY_ENTRY_BYTES, PersistedQueryStore, persistedQueryStoreBytes } from './persisted-query-store';

/** An APQ registration as Apollo hands it over: the key its prefixing cache makes, the query JSON.parse made. */
function registration(i: number): [string, string] {
  const query = JSON.parse(JSON.stringify(`{__typename}#${i.toString(36).padStart(4, '0')}`)) as string;
  return [`apq:${createHash('sha256').update(query).digest('hex')}`, query];
}

describe('PersistedQueryStore (Apollo’s APQ cache)', () => {
  it('counts each entry with its key, its text and its bookkeeping; text beyond Latin-1 counts two bytes a character', async () => {
    const store = new PersistedQueryStore(1024 * 1024);
    await store.set('apq:a', '{ a }');
    expect(store.size).toBe(PERSISTED_QUERY_ENTRY_BYTES + (16 + 5) + (16 + 5));
    await store.set('apq:a', '{ a } # é');
    expect(store.size).toBe(PERSISTED_QUERY_ENTRY_BYTES + (16 + 5) + (16 + 9));
    await store.set('apq:a', '{ a } # ü…');
    expect(store.size).toBe(PERSISTED_QUERY_ENTRY_BYTES + (16 + 5) + (16 + 2 * 10));
    expect(store.count).toBe(1);
  });

  it('keeps what fits, dropping the least recently used first; a query larger than the whole budget is not kept', async () => {
    const one = PERSISTED_QUERY_ENTRY_BYTES + (16 + 5) + (16 + 5);
    const store = new PersistedQueryStore(2 * one);
    await store.set('apq:a', '{ a }');
    await store.set('apq:b', '{ b }');
    expect(await store.get('apq:a')).toBe('{ a }'); // now the most recent
    await store.set('apq:c', '{ c }');
    expect(await store.get('apq:b')).toBeUndefined();
    expect(await store.get('apq:a')).toBe('{ a }');
    expect(await store.get('apq:c')).toBe('{ c }');
    expect(store.size).toBe(2 * one);
    expect(await store.delete('apq:a')).toBe(true);
    expect(await store.delete('apq:a')).toBe(false);
    expect(store.size).toBe(one);
    await store.set('apq:huge', `{ a }${' '.repeat(3 * one)}`);
    expect(await store.get('apq:huge')).toBeUndefined();
    expect(store.count).toBe(1);
  });

  it('follows the heap: a 64th of its limit, between 1 and 8 MiB', () => {
    expect(persistedQueryStoreBytes(4 * 1024 ** 3)).toBe(8 * 1024 ** 2);
    expect(persistedQueryStoreBytes(256 * 1024 ** 2)).toBe(4 * 1024 ** 2);
    expect(persistedQueryStoreBytes(32 * 1024 ** 2)).toBe(1024 ** 2);
  });

  it('holds about what it counts: filled three times over with small queries, the heap keeps about its budget', { timeout: 60_000 }, async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const heap = () => {
      for (let i = 0; i < 3; i++) gc();
      return process.memoryUsage().heapUsed;
    };
    const budget = 4 * 1024 * 1024;
    const [k0, q0] = registration(0);
    const room = Math.floor(budget / (PERSISTED_QUERY_ENTRY_BYTES + 16 + k0.length + 16 + q0.length));
    const store = new PersistedQueryStore(budget);
    const before = heap();
    for (let i = 0; i < 3 * room; i++) await store.set(...registration(i));
    const held = heap() - before;
    expect(store.count).toBe(room);
    expect(store.size).toBeLessThanOrEqual(budget);
    // measured: 0.85 of the budget here, up to 1.0 when the Map's table has just doubled; Apollo's
    // cache, counting the 17 characters of each query, held 14 times what it counted, and ran a
    // 256 MiB heap out of memory at about a million entries
    expect(held).toBeGreaterThan(0.6 * budget);
    expect(held).toBeLessThan(1.3 * budget);
    expect(await store.get(registration(3 * room - 1)[0])).toBe(registration(3 * room - 1)[1]);
    expect(await store.get(k0)).toBeUndefined();
  });
});

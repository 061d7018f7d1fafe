import { ByteBoundedCache } from './byte-bounded-cache';

/**
 * Bytes one stored query costs beyond its key's and its text's strings: the Map's slot (with the
 * slack of its table, which grows by doubling) and the entry object. Measured with entries of a
 * 17-character query under Apollo's 68-character keys, after full collections: 241 bytes each in
 * all with 200,000 of them, 283 with 17,700; counted as 277 with the two strings
 * (src/graphql/persisted-query-store.spec.ts checks the count against the heap).
 */
export const PERSISTED_QUERY_ENTRY_BYTES = 160;

/** The store's budget for a V8 heap limit: a 64th of it, at most 8 MiB (4 MiB of a 256 MiB heap). */
export function persistedQueryStoreBytes(heapLimit: number): number {
  return Math.max(1024 * 1024, Math.min(8 * 1024 * 1024, Math.floor(heapLimit / 64)));
}

/**
 * The automatic persisted queries (APQ) Apollo registers, by hash, least recently used first out,
 * counted by what each entry holds in the heap.
 *
 * Apollo's default keeps them in its server cache: 30 MiB counted as the queries' characters
 * alone, whatever the heap. The 68-character key of each (`apq:` and the hash) and the cache's own
 * bookkeeping were not counted, so small queries cost 14 times what they counted: 200,000
 * registrations of distinct 17-character queries, sent without a credential (a small anonymous
 * body reaches Apollo, and a valid document is registered before any field checks a key), held
 * 45 MB after full collections, and the cache had room for 1.8 million of them (about 450 MB:
 * alone, it ran a 256 MiB heap out of memory at a million). A client needs room for the
 * operations of its own code, a few hundred.
 */
export class PersistedQueryStore extends ByteBoundedCache<string> {
  constructor(maxBytes: number) {
    super(maxBytes, (key, query) => PERSISTED_QUERY_ENTRY_BYTES + stringBytes(key) + stringBytes(query));
  }
}

/** What V8 holds for a flat string: a header, and one byte per character, or two once any is beyond Latin-1. */
function stringBytes(s: string): number {
  return 16 + (/[^\u0000-\u00ff]/.test(s) ? 2 : 1) * s.length;
}

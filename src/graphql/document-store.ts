import type { DocumentNode } from 'graphql';
import { ByteBoundedCache } from './byte-bounded-cache';

/**
 * What one cached document is counted as, per byte of its syntax tree's JSON (what Apollo's own
 * store counts). Measured on the service with 12.6 kB-JSON documents, after full collections:
 * the parsed tree takes 3.5 times its JSON (44 kB) and graphql-jit's compiled code for it, made
 * from the document's second run and kept as long as the document is, about 10 times more
 * (168 kB in all, 13.4 times).
 */
export const DOCUMENT_HEAP_FACTOR = 16;

/** The store's budget, in counted bytes, for a V8 heap limit: a 32nd of it (128 MiB of 4 GiB, 8 MiB of 256 MiB). */
export function documentStoreBytes(heapLimit: number): number {
  return Math.max(1024 * 1024, Math.floor(heapLimit / 32));
}

/**
 * Apollo's cache of parsed and validated documents (its `documentStore`), least recently used
 * first out, bounded by what its documents really hold.
 *
 * Apollo's default store holds 30 MiB of documents counted as the JSON of their syntax trees.
 * That left out most of what a document keeps alive:
 * - its whole source text (`loc.source.body`, which error locations are computed from): spaces,
 *   commas and comments are no tokens, so `{ __typename }` followed by 1.9 MB of spaces counted
 *   as a few hundred bytes and kept 1.9 MB; 600 such requests, each a little different, took the
 *   service from 173 MB to 1.3 GB RSS and it stayed there;
 * - the parsed tree itself and graphql-jit's compiled code (src/graphql/jit.ts): 7,000 distinct
 *   small documents, each sent twice, held 420 MB of heap after full collections, and killed a
 *   service with `--max-old-space-size=256` in 40 s, sent without a credential (documents are
 *   parsed, validated and cached before any field checks one).
 * Here a document counts {@link DOCUMENT_HEAP_FACTOR} times its tree's JSON plus its source
 * text, against a budget that follows the heap ({@link documentStoreBytes}).
 */
export class DocumentStore extends ByteBoundedCache<DocumentNode> {
  constructor(maxBytes: number) {
    super(maxBytes, (_key, document) => documentSize(document));
  }
}

/** What a cached document is counted as: its tree (JSON × {@link DOCUMENT_HEAP_FACTOR}) and the source text it keeps. */
export function documentSize(document: DocumentNode): number {
  return DOCUMENT_HEAP_FACTOR * Buffer.byteLength(JSON.stringify(document), 'utf8') + (document.loc?.source.body.length ?? 0);
}

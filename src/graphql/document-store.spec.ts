import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { DOCUMENT_HEAP_FACTOR, DocumentStore, documentSize, documentStoreBytes } from './document-store';

describe('DocumentStore (Apollo’s parsed-document cache)', () => {
  it('counts a document’s source text beside its tree, so padding counts', () => {
    const plain = parse('{ __typename }');
    const padded = parse(`{ __typename }${' '.repeat(100_000)}`);
    expect(documentSize(plain)).toBe(DOCUMENT_HEAP_FACTOR * Buffer.byteLength(JSON.stringify(plain)) + '{ __typename }'.length);
    expect(documentSize(padded)).toBe(DOCUMENT_HEAP_FACTOR * Buffer.byteLength(JSON.stringify(padded)) + '{ __typename }'.length + 100_000);
    // the tree's JSON leaves the text out: Apollo's own store counted both alike
    expect(Math.abs(Buffer.byteLength(JSON.stringify(padded)) - Buffer.byteLength(JSON.stringify(plain)))).toBeLessThan(100);
  });

  it('keeps what fits, dropping the least recently used first; a document larger than the whole budget is not kept', async () => {
    const docs = ['{ a }', '{ b }', '{ c }'].map((q) => parse(q));
    const one = documentSize(docs[0]!);
    const store = new DocumentStore(2 * one);
    await store.set('a', docs[0]!);
    await store.set('b', docs[1]!);
    expect(await store.get('a')).toBe(docs[0]); // now the most recent
    await store.set('c', docs[2]!);
    expect(await store.get('b')).toBeUndefined();
    expect(await store.get('a')).toBe(docs[0]);
    expect(await store.get('c')).toBe(docs[2]);
    expect(store.size).toBe(2 * one);
    await store.set('c', docs[2]!); // again: counted once
    expect(store.size).toBe(2 * one);
    expect(await store.delete('a')).toBe(true);
    expect(store.size).toBe(one);
    await store.set('huge', parse(`{ a }${' '.repeat(3 * one)}`));
    expect(await store.get('huge')).toBeUndefined();
    expect(store.count).toBe(1);
  });

  it('follows the heap: a 32nd of its limit, at least 1 MiB', () => {
    expect(documentStoreBytes(4 * 1024 ** 3)).toBe(128 * 1024 ** 2);
    expect(documentStoreBytes(256 * 1024 ** 2)).toBe(8 * 1024 ** 2);
    expect(documentStoreBytes(16 * 1024 ** 2)).toBe(1024 ** 2);
  });
});

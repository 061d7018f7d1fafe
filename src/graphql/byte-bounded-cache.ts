/**
 * A cache for Apollo (its `KeyValueCache`: get, set, delete) that keeps entries up to a budget of
 * bytes, each counted by `sizeOf` as what it holds in the heap, least recently used first out. An
 * entry larger than the whole budget is not kept. Apollo's own caches count a value's characters
 * or JSON only, which an attacker can make a small part of what an entry keeps alive
 * (./document-store.ts, ./persisted-query-store.ts say by how much).
 */
export class ByteBoundedCache<V> {
  private readonly entries = new Map<string, { value: V; size: number }>();
  private used = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly sizeOf: (key: string, value: V) => number,
  ) {}

  /** bytes the entries are counted as */
  get size(): number {
    return this.used;
  }

  get count(): number {
    return this.entries.size;
  }

  async get(key: string): Promise<V | undefined> {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    // most recently used last
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Apollo's `options.ttl` is not kept: entries leave by age of use only. */
  async set(key: string, value: V): Promise<void> {
    await this.delete(key);
    const size = this.sizeOf(key, value);
    if (size > this.maxBytes) return;
    this.entries.set(key, { value, size });
    this.used += size;
    for (const [oldest, entry] of this.entries) {
      if (this.used <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.used -= entry.size;
    }
  }

  async delete(key: string): Promise<boolean> {
    const entry = this.entries.get(key);
    if (entry === undefined) return false;
    this.entries.delete(key);
    this.used -= entry.size;
    return true;
  }
}

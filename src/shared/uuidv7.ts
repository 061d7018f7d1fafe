import { randomFillSync } from 'node:crypto';

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
/** random bytes for 512 ids, refilled when spent (as `randomUUID` caches its entropy) */
const pool = Buffer.alloc(16 * 512);
let at = pool.length;
/** the latest time an id made at the process clock carried */
let lastDefault = 0;

/**
 * An RFC 9562 UUID, version 7: 48 bits of Unix time in milliseconds (`ms`, now by default), then the
 * version, 74 random bits and the variant. The ids of rows the ingest creates (interactions,
 * customers, identities, listening items): rows created together have neighbouring keys, so a
 * batch's primary-key entries land on a few B-tree pages at the right edge instead of one random
 * page each. Measured on 300,000 rows, 500 per batch, after a checkpoint: 767 bytes of WAL per row
 * against 1,210 with random (version 4) ids, inserts 25–30 % faster, and the relay's look-up of a
 * batch's rows by id 30–55 % faster (README, "Ingest write path and throughput").
 * The id tells when it was made, to the millisecond; the events already say so (`processedAt`).
 * Without `ms`, the time never runs back in one process, even when the host clock steps back.
 */
export function uuidv7(ms?: number): string {
  if (ms === undefined) {
    // The process clock, but never behind an id this process made before: when the host clock
    // steps back (NTP correcting a host that ran ahead, a VM restored from a snapshot) ids carry
    // the latest time made until the clock has caught up, so rows made after the step still sort
    // after those made before it (within one millisecond ids are unordered, as ever).
    const now = Date.now();
    if (now > lastDefault) lastDefault = now;
    ms = lastDefault;
  }
  if (at === pool.length) {
    randomFillSync(pool);
    at = 0;
  }
  const b = pool;
  const o = at;
  at += 16;
  const t = Number.isFinite(ms) ? Math.max(0, Math.min(Math.floor(ms), 0xffff_ffff_ffff)) : 0;
  const high = Math.floor(t / 0x1_0000); // the top 32 of the 48 bits
  b[o] = high >>> 24;
  b[o + 1] = (high >>> 16) & 0xff;
  b[o + 2] = (high >>> 8) & 0xff;
  b[o + 3] = high & 0xff;
  b[o + 4] = (t % 0x1_0000) >>> 8;
  b[o + 5] = t % 0x100;
  b[o + 6] = 0x70 | (b[o + 6]! & 0x0f);
  b[o + 8] = 0x80 | (b[o + 8]! & 0x3f);
  const h = (i: number) => HEX[b[o + i]!]!;
  return `${h(0)}${h(1)}${h(2)}${h(3)}-${h(4)}${h(5)}-${h(6)}${h(7)}-${h(8)}${h(9)}-${h(10)}${h(11)}${h(12)}${h(13)}${h(14)}${h(15)}`;
}

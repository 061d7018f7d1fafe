import buffer from 'node:buffer';
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import { CompressionCodecs, CompressionTypes } from 'kafkajs';
import type { Logger } from '../shared/logger';

export type CodecName = 'lz4' | 'snappy' | 'zstd';

/** Headers of the stand-in records that replace the records of a batch that cannot be decoded. */
export const UNDECODABLE_HEADER = 'earshot-undecodable';
export const UNDECODABLE_BATCH_HEADER = 'earshot-undecodable-batch';

interface Codec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

const zstdCompress = promisify(zlib.zstdCompress);
const zstdDecompress = promisify(zlib.zstdDecompress) as (buffer: Buffer, options: zlib.ZstdOptions) => Promise<Buffer>;
const unzip = promisify(zlib.unzip) as (buffer: Buffer, options: zlib.ZlibOptions) => Promise<Buffer>;

/**
 * How large one batch may inflate, as a multiple of KAFKA_MAX_MESSAGE_BYTES (64 MiB by default).
 * A zstd batch of 1.5 kB inflated to 50 MB (33,000 : 1), so a batch the broker takes (1 MB)
 * could ask for tens of GB: the process would be killed for its memory, again at every restart.
 * Every record of a batch past the limit is dead-lettered as `undecodable-batch`.
 */
export const MAX_INFLATED_BATCH_MESSAGES = 64;

/** The inflation limit registerCodecs was last given (the codec table is process-wide). */
let maxInflatedBytes = MAX_INFLATED_BATCH_MESSAGES * 1024 * 1024;

/**
 * The codecs producers use, each from a library that installs without compiling:
 * lz4 through @2l/kafkajs-lz4 (lz4-napi: prebuilt Node-API binaries from the npm registry,
 * frame format as the Java client writes it), snappy through kafkajs-snappy (pure JS, reads
 * the xerial framing of the Java client), zstd through Node's own zlib (built in since 22.15:
 * the kafkajs zstd codecs all compile native code at install).
 */
function load(name: CodecName): Codec {
  switch (name) {
    case 'lz4': {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const LZ4Codec = require('@2l/kafkajs-lz4') as new () => { codec: () => Codec };
      return new LZ4Codec().codec();
    }
    case 'snappy': {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return (require('kafkajs-snappy') as () => Codec)();
    }
    case 'zstd':
      return {
        compress: (encoder) => zstdCompress(encoder.buffer),
        // stops at the limit instead of allocating what the frame asks for
        decompress: (buffer) => zstdDecompress(buffer, { maxOutputLength: maxInflatedBytes }),
      };
  }
}

const TYPES: Record<CodecName, CompressionTypes> = { lz4: CompressionTypes.LZ4, snappy: CompressionTypes.Snappy, zstd: CompressionTypes.ZSTD };

/** kafkajs' own gzip codec, as it was before any of ours replaced it (registerCodecs runs once per consumer). */
const KAFKAJS_GZIP = (CompressionCodecs as Record<number, () => Codec>)[CompressionTypes.GZIP]!();

/**
 * Registers, process-wide (kafkajs keeps one codec table), a decoder for every compression
 * type: the real codec when it is enabled and loads, else one that cannot decode. Either way
 * a batch that fails to decompress (unknown to us, corrupt) is not thrown at kafkajs, which
 * would crash the consumer without restarting it and never move past the batch: it decodes
 * to one stand-in record per original record, at the original offsets, with no key or value
 * and a header naming the reason; the consumer dead-letters those and commits past them.
 *
 * Returns the codecs in use; logs the ones that did not load (a platform without a prebuilt
 * lz4 binary keeps consuming everything else).
 */
export function registerCodecs(enabled: readonly CodecName[], log: Logger, maxBatchBytes = MAX_INFLATED_BATCH_MESSAGES * 1024 * 1024): CodecName[] {
  maxInflatedBytes = Math.min(maxBatchBytes, buffer.constants.MAX_LENGTH);
  const active: CodecName[] = [];
  for (const name of ['lz4', 'snappy', 'zstd'] as const) {
    let codec: Codec | null = null;
    let why = `${name} is not enabled (KAFKA_COMPRESSION_CODECS)`;
    if (enabled.includes(name)) {
      try {
        codec = load(name);
        active.push(name);
      } catch (e) {
        why = `the ${name} codec could not be loaded: ${(e as Error).message}`;
        log.error({ err: e, codec: name }, `kafka ${name} codec unavailable: batches compressed with it will be dead-lettered`);
      }
    }
    const safe = guarded(name, codec, why);
    (CompressionCodecs as Record<number, () => Codec>)[TYPES[name]] = () => safe;
  }
  // gzip is built into kafkajs and always on, but a batch it cannot inflate (one the broker
  // stored: a second gzip member Java's reader skips and zlib refuses) crashed the consumer on
  // every fetch of it and the partition stalled; it is guarded like the others.
  const gzip = guarded('gzip', { compress: (e) => KAFKAJS_GZIP.compress(e), decompress: (b) => unzip(b, { maxOutputLength: maxInflatedBytes }) }, 'unreachable: gzip is always on');
  (CompressionCodecs as Record<number, () => Codec>)[CompressionTypes.GZIP] = () => gzip;
  return active;
}

function guarded(name: CodecName | 'gzip', codec: Codec | null, unavailable: string): Codec {
  return {
    compress: (encoder) => {
      if (!codec) throw new Error(unavailable);
      return codec.compress(encoder);
    },
    decompress: async (buffer) => {
      if (!codec) return standIns(buffer, `the batch is compressed with ${name}, which this consumer cannot decode: ${unavailable}`);
      let out: Buffer;
      try {
        out = await codec.decompress(buffer);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return standIns(buffer, tooLarge(name, buffer), e);
        return standIns(buffer, `the ${name}-compressed batch could not be decompressed (corrupt or truncated): ${(e as Error).message}`, e);
      }
      // lz4 and snappy inflate a bounded ratio (their formats bound it: about 255 : 1 for lz4, by its specification) and take no limit: checked after
      return out.length > maxInflatedBytes ? standIns(buffer, tooLarge(name, buffer)) : out;
    },
  };
}

function tooLarge(name: CodecName | 'gzip', buffer: Buffer): string {
  return `the ${name}-compressed batch of ${buffer.length} bytes inflates past ${maxInflatedBytes} bytes (${MAX_INFLATED_BATCH_MESSAGES} × KAFKA_MAX_MESSAGE_BYTES): its records are not read`;
}

/** Bytes from the batch header (KIP-98 RecordBatch v2) to the first compressed byte. */
const HEADER_TO_RECORDS = 61;

/**
 * The decompressed form of `count` stand-in records for the batch whose compressed records
 * are `records`. kafkajs hands a codec only the compressed bytes, as a view into the fetch
 * response (kafkajs 2.2.4, pinned), so the batch header sits just before them: the first
 * offset, the last offset delta and the record count are read from there, and checked
 * (magic 2, the length field ending exactly where the records end) before they are trusted.
 * Where the check fails, the original error is thrown: kafkajs then crashes the consumer,
 * which restarts itself (KafkaIngestConsumer) and /readyz reports it.
 */
function standIns(records: Buffer, reason: string, original?: unknown): Buffer {
  const start = records.byteOffset - HEADER_TO_RECORDS;
  if (start < 0) throw original ?? new Error(reason);
  const header = Buffer.from(records.buffer, start, HEADER_TO_RECORDS);
  const firstOffset = header.readBigInt64BE(0);
  const length = header.readInt32BE(8);
  const magic = header.readInt8(16);
  const lastOffsetDelta = header.readInt32BE(23);
  const count = header.readInt32BE(57);
  const consistent = magic === 2 && start + 12 + length === records.byteOffset + records.length && count > 0 && count <= lastOffsetDelta + 1;
  if (!consistent) throw original ?? new Error(reason);
  const range = `${firstOffset}-${firstOffset + BigInt(lastOffsetDelta)}`;
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const delta = i === count - 1 ? lastOffsetDelta : i;
    const body = Buffer.concat([
      Buffer.from([0]), // attributes
      varint(0), // timestamp delta
      varint(delta), // offset delta
      varint(-1), // key: null
      varint(-1), // value: null
      varint(2), // headers
      bytes(UNDECODABLE_HEADER),
      bytes(reason),
      bytes(UNDECODABLE_BATCH_HEADER),
      bytes(range),
    ]);
    parts.push(varint(body.length), body);
  }
  return Buffer.concat(parts);
}

function bytes(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([varint(b.length), b]);
}

/** Kafka's zig-zag varint. */
function varint(n: number): Buffer {
  let z = (n << 1) ^ (n >> 31);
  const out: number[] = [];
  z >>>= 0;
  while (z >= 0x80) {
    out.push((z & 0x7f) | 0x80);
    z >>>= 7;
  }
  out.push(z);
  return Buffer.from(out);
}

import fc from 'fast-check';
import { Partitioners, type PartitionerArgs } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { javaCompatiblePartitioner, keyHash, murmur2 } from './partitioner';

// kafkajs' own murmur2 (the Java port the relay's partitions came from until now)
// eslint-disable-next-line @typescript-eslint/no-require-imports
const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2') as (key: Buffer) => number;

describe('Java-compatible partitioner', () => {
  it('hashes as kafkajs (and the Java client) does, for any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        expect(murmur2(bytes)).toBe(kafkajsMurmur2(Buffer.from(bytes)));
      }),
      { seed: 12, numRuns: 2_000 },
    );
  });

  it('puts every key on the partition kafkajs DefaultPartitioner chose', () => {
    const kafkajs = Partitioners.DefaultPartitioner();
    fc.assert(
      fc.property(fc.oneof(fc.uuid(), fc.string({ unit: 'grapheme', maxLength: 40 })), fc.integer({ min: 1, max: 64 }), (key, partitions) => {
        const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({ partitionId: i, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1] }));
        const expected = kafkajs({ topic: 't', partitionMetadata, message: { key, value: null } } as PartitionerArgs);
        expect(keyHash(Buffer.from(key)) % partitions).toBe(expected);
      }),
      { seed: 12, numRuns: 2_000 },
    );
  });

  it('javaCompatiblePartitioner chooses as kafkajs DefaultPartitioner: a given partition, the key\'s, or round robin over partitions with a leader', () => {
    const ours = javaCompatiblePartitioner();
    const kafkajs = Partitioners.DefaultPartitioner();
    fc.assert(
      fc.property(
        fc.option(fc.oneof(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b))), { nil: null }),
        fc.option(fc.integer({ min: 0, max: 63 }), { nil: null }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 64 }),
        (key, partition, led) => {
          const partitionMetadata = led.map((l, i) => ({ partitionId: i, leader: l ? 1 : -1, partitionErrorCode: 0, replicas: [1], isr: [1] }));
          const message = { key, value: null, partition: partition === null ? undefined : partition % led.length };
          const got = ours({ topic: 't', partitionMetadata, message });
          if (key === null && message.partition === undefined) {
            // round robin: any partition with a leader (kafkajs starts at a random point too)
            expect(led.some((l) => l) ? led[got] : got < led.length).toBe(true);
          } else expect(got).toBe(kafkajs({ topic: 't', partitionMetadata, message } as PartitionerArgs));
        },
      ),
      { seed: 12, numRuns: 2_000 },
    );
    // a key of 1 MB: kafkajs' murmur2 took minutes; this one a few milliseconds
    expect(ours({ topic: 't', partitionMetadata: [{ partitionId: 0, leader: 1 }, { partitionId: 1, leader: 1 }], message: { key: 'x'.repeat(1_000_000) } })).toBe(
      keyHash(Buffer.from('x'.repeat(1_000_000))) % 2,
    );
  });

  it('matches the Java client on known keys', () => {
    // org.apache.kafka.common.utils.Utils.murmur2 (from the Java client's UtilsTest)
    expect(murmur2(Buffer.from('21'))).toBe(-973932308);
    expect(murmur2(Buffer.from('foobar'))).toBe(-790332482);
    expect(murmur2(Buffer.from('a-little-bit-long-string'))).toBe(-985981536);
    expect(murmur2(Buffer.from('a-little-bit-longer-string'))).toBe(-1486304829);
    expect(murmur2(Buffer.from('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8'))).toBe(-58897971);
    expect(murmur2(Buffer.from('abc'))).toBe(479470107);
  });
});

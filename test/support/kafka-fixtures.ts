import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Kafka, Partitioners, logLevel, type Admin, type IHeaders } from 'kafkajs';
import { OUTBOX_TOPICS } from '../../src/outbox/outbox-events';
import { REPO_ROOT } from './postgres';

/** Topic, group and output prefix of one test: nothing shared with any other test. */
export interface KafkaNames {
  topic: string;
  group: string;
  prefix: string;
  enriched: string;
  sentiment: string;
  dlq: string;
  /** every topic the test's Earshot creates, for clean-up */
  all: string[];
}

export function kafkaNames(label: string): KafkaNames {
  const id = randomUUID().slice(0, 8);
  const prefix = `test.${label}.${id}.`;
  const topic = `test.${label}.${id}.interactions.v1`;
  return {
    topic,
    group: `test.${label}.${id}`,
    prefix,
    enriched: `${prefix}interactions.enriched.v1`,
    sentiment: `${prefix}customer-sentiment.v1`,
    dlq: `${topic}.dlq`,
    all: [topic, `${topic}.dlq`, ...Object.values(OUTBOX_TOPICS).map((t) => `${prefix}${t.name}`)],
  };
}

export function testBrokers(): string {
  const brokers = process.env.EARSHOT_TEST_KAFKA_BROKERS;
  if (!brokers) throw new Error('EARSHOT_TEST_KAFKA_BROKERS is not set: run the tests through vitest with test/vitest.config.ts');
  return brokers;
}

/** The environment that points Earshot's ingest role at the test's own topics. */
export function kafkaEnv(names: KafkaNames, extra: Record<string, string> = {}): Record<string, string> {
  return {
    KAFKA_BROKERS: testBrokers(),
    KAFKA_TOPICS: names.topic,
    KAFKA_GROUP_ID: names.group,
    KAFKA_OUTPUT_TOPIC_PREFIX: names.prefix,
    KAFKA_TOPIC_PARTITIONS: '3',
    EARSHOT_OUTBOX_POLL_MS: '100',
    ...extra,
  };
}

export function testKafka(clientId = 'earshot-test'): Kafka {
  return new Kafka({ clientId, brokers: testBrokers().split(','), logLevel: logLevel.NOTHING });
}

export interface Outgoing {
  key: string | null;
  value: string | Buffer | null;
  headers?: IHeaders;
  /** the partition, instead of the key's (kafkajs' murmur2 blocks for seconds on keys of 100s of kB) */
  partition?: number;
}

/** A producer that keeps the messages' order: idempotent, one request in flight. */
export const orderedProducer = (kafka: Kafka) =>
  kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });

/** A Kafka test file's afterAll: stops its service, deletes its topics, disconnects its admin. */
export async function stopAndDropTopics(app: { close(): Promise<void> } | undefined, admin: Admin | undefined, names: KafkaNames): Promise<void> {
  await app?.close();
  await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
  await admin?.disconnect();
}

/**
 * Produces in order, in requests of `chunk`, acknowledged by all in-sync replicas; throws when a
 * message's explicit partition was not written to.
 */
export async function produce(kafka: Kafka, topic: string, messages: Outgoing[], chunk = 2_000): Promise<void> {
  const producer = orderedProducer(kafka);
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += chunk) {
      const part = messages.slice(i, i + chunk);
      const sent = await producer.send({ topic, acks: -1, messages: part });
      // kafkajs sends nothing to a partition its metadata does not list (one added a moment ago,
      // the broker still answering with the old count) and resolves all the same: a test would then
      // wait for messages never written
      const answered = new Set(sent.map((r) => r.partition));
      const missing = [...new Set(part.flatMap((m) => (m.partition === undefined ? [] : [m.partition])))].filter((p) => !answered.has(p));
      if (missing.length > 0) throw new Error(`kafkajs wrote nothing to partition(s) ${missing.join(', ')} of ${topic}: its metadata does not list them`);
    }
  } finally {
    await producer.disconnect();
  }
}

export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Per partition: high watermark minus the group's committed offset (a never-committed partition counts from 0). */
export async function groupLag(admin: Admin, group: string, topic: string): Promise<number> {
  const [ends, [committed]] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId: group, topics: [topic] })]);
  let lag = 0;
  for (const end of ends) {
    const c = committed?.partitions.find((p) => p.partition === end.partition)?.offset ?? '-1';
    lag += Number(end.high) - Math.max(0, Number(c));
  }
  return lag;
}

/** A customer-sentiment.v1 value, as schema/customer-sentiment.v1.schema.json has it. */
export interface CustomerSentimentV1 {
  schemaVersion: number;
  eventId: string;
  customerId: string;
  displayName: string | null;
  score: number | null;
  label: string | null;
  trend30d: number | null;
  interactionCount: number;
  lastInteractionAt: string | null;
  url: string;
  updatedAt: string;
}

export interface Received {
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/** Everything in `topic` up to its current end, read with a throwaway kafkajs consumer. */
export async function readTopic(kafka: Kafka, topic: string, timeoutMs = 30_000): Promise<Received[]> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const want = new Map(ends.map((e) => [e.partition, Number(e.high)]));
  const total = [...want.values()].reduce((a, b) => a + b, 0);
  const out: Received[] = [];
  if (total === 0) return out;
  const consumer = kafka.consumer({ groupId: `test.reader.${randomUUID()}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${out.length} of ${total} messages of ${topic}`)), timeoutMs);
      void consumer.run({
        eachMessage: async ({ partition, message }) => {
          if (Number(message.offset) >= (want.get(partition) ?? 0)) return;
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
          out.push({ partition, offset: message.offset, key: message.key?.toString('utf8') ?? null, value: message.value, headers });
          if (out.length >= total) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return out;
}

// A plain consumer that shares nothing with Earshot or kafkajs: Apache Kafka's own Java client
// (kafka-clients from the broker's jars), reading every partition from the beginning to its end.
const JAVA_DUMP = `
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import com.fasterxml.jackson.databind.ObjectMapper;

public class DumpTopic {
  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    p.put("bootstrap.servers", args[0]);
    p.put("enable.auto.commit", "false");
    p.put("key.deserializer", ByteArrayDeserializer.class.getName());
    p.put("value.deserializer", ByteArrayDeserializer.class.getName());
    ObjectMapper json = new ObjectMapper();
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
      List<TopicPartition> parts = new ArrayList<>();
      c.partitionsFor(args[1]).forEach(i -> parts.add(new TopicPartition(i.topic(), i.partition())));
      c.assign(parts);
      c.seekToBeginning(parts);
      Map<TopicPartition, Long> end = c.endOffsets(parts);
      long deadline = System.currentTimeMillis() + 60000;
      while (parts.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
        if (System.currentTimeMillis() > deadline) throw new RuntimeException("timed out");
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
          Map<String, Object> o = new LinkedHashMap<>();
          o.put("partition", r.partition());
          o.put("offset", r.offset());
          o.put("key", r.key() == null ? null : new String(r.key(), "UTF-8"));
          o.put("value", r.value() == null ? null : new String(r.value(), "UTF-8"));
          Map<String, String> h = new LinkedHashMap<>();
          for (Header x : r.headers()) h.put(x.key(), x.value() == null ? null : new String(x.value(), "UTF-8"));
          o.put("headers", h);
          System.out.println(json.writeValueAsString(o));
        }
      }
    }
  }
}
`;

export interface JavaRecord {
  partition: number;
  offset: number;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

/**
 * Reads a whole topic with the Apache Kafka Java client from the project's broker jars
 * (.kafka/libs, fetched by docker/kafka.sh), so the test does not read Earshot's output with
 * the same library that wrote it.
 */
export async function dumpTopicWithJavaClient(topic: string): Promise<JavaRecord[]> {
  const libs = path.join(process.env.KAFKA_DIR ?? path.join(REPO_ROOT, '.kafka'), 'libs');
  if (!fs.existsSync(path.join(libs, '.pom.sha256'))) throw new Error(`no Kafka jars in ${libs}: run \`bash docker/kafka.sh start\` once to fetch them`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-dump-'));
  const source = path.join(dir, 'DumpTopic.java');
  fs.writeFileSync(source, JAVA_DUMP);
  try {
    const { stdout } = await promisify(execFile)(
      process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java',
      ['-Xmx256m', '-XX:TieredStopAtLevel=1', `-Dlog4j.configuration=file:${path.join(REPO_ROOT, 'docker/kafka/log4j-tools.properties')}`, '-cp', `${libs}/*`, source, testBrokers(), topic],
      { maxBuffer: 256 * 1024 * 1024, timeout: 90_000 },
    );
    return stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as JavaRecord);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// Apache Kafka's own Java producer, so that compressed batches are written exactly as most
// producers in the field write them (lz4 frames, xerial-framed snappy, zstd), not by the
// library under test. Reads {"key","value"} JSON lines on stdin; values as base64.
const JAVA_PRODUCE = `
import java.io.*;
import java.util.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import com.fasterxml.jackson.databind.*;

public class ProduceTopic {
  public static void main(String[] args) throws Exception {
    Properties p = new Properties();
    p.put("bootstrap.servers", args[0]);
    p.put("compression.type", args[2]);
    p.put("acks", "all");
    // long: flush() below sends at once, and a starved JVM (a loaded CI machine) appending the
    // records over more than 200 ms split one test's batch in two
    p.put("linger.ms", "30000");
    p.put("batch.size", "1000000");
    p.put("key.serializer", ByteArraySerializer.class.getName());
    p.put("value.serializer", ByteArraySerializer.class.getName());
    ObjectMapper json = new ObjectMapper();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      List<java.util.concurrent.Future<RecordMetadata>> sent = new ArrayList<>();
      for (String line; (line = in.readLine()) != null; ) {
        if (line.isEmpty()) continue;
        JsonNode n = json.readTree(line);
        byte[] key = n.get("key").isNull() ? null : n.get("key").asText().getBytes("UTF-8");
        byte[] value = n.get("value").isNull() ? null : Base64.getDecoder().decode(n.get("value").asText());
        Integer partition = n.has("partition") ? n.get("partition").asInt() : null;
        sent.add(producer.send(new ProducerRecord<>(args[1], partition, key, value)));
      }
      producer.flush();
      for (java.util.concurrent.Future<RecordMetadata> f : sent) f.get();
    }
    System.out.println("produced");
  }
}
`;

/**
 * Produces with the Apache Kafka Java client from the broker's jars, compressed with
 * `compression` (none, gzip, snappy, lz4, zstd); all messages in as few batches as the
 * producer makes (one per partition up to 1 MB: flushed at the end, not after a linger).
 */
export async function produceWithJavaClient(topic: string, compression: string, messages: { key: string | null; value: string | Buffer | null; partition?: number }[]): Promise<void> {
  const libs = path.join(process.env.KAFKA_DIR ?? path.join(REPO_ROOT, '.kafka'), 'libs');
  if (!fs.existsSync(path.join(libs, '.pom.sha256'))) throw new Error(`no Kafka jars in ${libs}: run \`bash docker/kafka.sh start\` once to fetch them`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'earshot-produce-'));
  const source = path.join(dir, 'ProduceTopic.java');
  fs.writeFileSync(source, JAVA_PRODUCE);
  const input = messages
    .map((m) => JSON.stringify({ key: m.key, value: m.value === null ? null : Buffer.from(m.value).toString('base64'), ...(m.partition === undefined ? {} : { partition: m.partition }) }))
    .join('\n');
  try {
    await new Promise<void>((resolve, reject) => {
      const child = execFile(
        process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java',
        ['-Xmx256m', '-XX:TieredStopAtLevel=1', `-Dlog4j.configuration=file:${path.join(REPO_ROOT, 'docker/kafka/log4j-tools.properties')}`, '-cp', `${libs}/*`, source, testBrokers(), topic, compression],
        { maxBuffer: 16 * 1024 * 1024, timeout: 120_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`java producer failed: ${err.message}\n${stderr}`)) : stdout.includes('produced') ? resolve() : reject(new Error(`java producer: ${stdout}\n${stderr}`))),
      );
      child.stdin!.end(input);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

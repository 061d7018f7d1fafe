import { Kafka, logLevel, type Admin, type ITopicConfig, type KafkaConfig, type LogEntry, type SASLOptions } from 'kafkajs';
import type { Config } from '../config/config';
import { OUTBOX_TOPICS } from '../outbox/outbox-events';
import { KafkajsRelayProducer, PlatformaticRelayProducer, type RelayProducer } from '../outbox/relay-producer';
import type { Logger } from '../shared/logger';

export type KafkaSettings = Config['kafka'];

/** The dead-letter topic of an input topic. */
export function deadLetterTopic(topic: string): string {
  return `${topic}.dlq`;
}

/** The name a logical outbound topic (as stored in outbox.topic) has on the cluster. */
export function outputTopicName(settings: Pick<KafkaSettings, 'outputTopicPrefix'>, logical: string): string {
  return `${settings.outputTopicPrefix}${logical}`;
}

/**
 * A kafkajs client for the configured cluster, logging through pino.
 *
 * What must stay true: TLS and SASL settings from the environment apply to every client
 * (consumer, dead-letter producer, relay producer, admin) because they all come from here.
 */
export function createKafka(settings: KafkaSettings, log: Logger, clientSuffix: string, tap?: (entry: LogEntry) => void): Kafka {
  if (!settings.brokers || settings.brokers.length === 0) throw new Error('KAFKA_BROKERS is not set');
  const config: KafkaConfig = {
    clientId: `${settings.clientId}-${clientSuffix}`,
    brokers: [...settings.brokers],
    ssl: settings.ssl,
    connectionTimeout: 3_000,
    requestTimeout: 30_000,
    logLevel: logLevel.WARN,
    // `tap` sees every entry first: kafkajs tells of some events (an offset reset) only in its log.
    logCreator: () => (entry: LogEntry) => {
      tap?.(entry);
      logEntry(log, entry);
    },
    // kafkajs' own retries cover brief broker hiccups; the consumer and relay loops retry beyond that.
    retry: { initialRetryTime: 300, retries: 8, maxRetryTime: 10_000 },
  };
  if (settings.sasl) {
    config.sasl = { mechanism: settings.sasl.mechanism, username: settings.sasl.username, password: settings.sasl.password } as SASLOptions;
  }
  return new Kafka(config);
}

/**
 * The outbox relay's producer, on the same cluster, TLS and SASL settings as the clients above;
 * with KAFKA_CREATE_TOPICS (the default) it can create the output topics again when one is
 * deleted while Earshot runs, as a restart would.
 */
export function createRelayProducer(settings: KafkaSettings, log: Logger): RelayProducer {
  const producer: RelayProducer = settings.relayProducer === 'kafkajs' ? new KafkajsRelayProducer(createKafka(settings, log, 'relay')) : new PlatformaticRelayProducer(settings, 'relay');
  const outputs = new Set(Object.values(OUTBOX_TOPICS).map((t) => outputTopicName(settings, t.name)));
  producer.createMissingTopics = topicCreator(settings, log, (topic) => outputs.has(topic));
  return producer;
}

/**
 * Creates again, as a start would, those of Earshot's topics ({@link topicSpecs}) picked by
 * `wanted` that do not exist (one deleted while Earshot runs); returns their names. Undefined
 * when KAFKA_CREATE_TOPICS=false: nothing is created behind the operator's back.
 */
export function topicCreator(settings: KafkaSettings, log: Logger, wanted: (topic: string) => boolean): (() => Promise<string[]>) | undefined {
  if (!settings.createTopics) return undefined;
  return async () => {
    const admin = createKafka(settings, log, 'admin').admin();
    await admin.connect();
    try {
      return await createMissingTopics(admin, topicSpecs(settings).filter((s) => wanted(s.topic)), log);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  };
}

/** Creates those of `specs` that do not exist; returns their names (none when the cluster refuses: logged). */
async function createMissingTopics(admin: Admin, specs: ITopicConfig[], log: Logger): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !existing.has(s.topic));
  if (missing.length === 0) return [];
  try {
    await admin.createTopics({ topics: missing, waitForLeaders: true });
    log.info({ topics: missing.map((m) => m.topic) }, 'kafka topics created');
    return missing.map((m) => m.topic);
  } catch (e) {
    log.warn({ err: e, topics: missing.map((m) => m.topic) }, 'could not create kafka topics; create them by hand');
    return [];
  }
}

/**
 * What the broker answers a group member's Heartbeat, OffsetCommit or SyncGroup while the group
 * rebalances (a replica joined or left: every rolling deploy, every autoscaler step). kafkajs'
 * connection logs each such answer at error level, then its consumer rejoins and says so once at
 * warn ("The group is rebalancing, re-joining").
 */
const REBALANCE_ANSWERS = new Set(['The group is rebalancing, so a rejoin is needed', 'Specified group generation id is not valid']);

function logEntry(log: Logger, { namespace, level, log: entry }: LogEntry): void {
  const { message, timestamp: _t, logger: _l, ...rest } = entry as LogEntry['log'] & { logger?: string };
  const fields = { kafkajs: namespace, ...rest };
  // The relay resends unacknowledged rows itself and consumers dedupe on event-id, so bounded
  // producer retries are intended; kafkajs warns about them on every connect.
  if (message.startsWith('Limiting retries for the idempotent producer')) return log.debug(fields, message);
  // A rebalance is routine, not an error: an alert on error logs must not fire on every deploy.
  // (A member the group dropped, UNKNOWN_MEMBER_ID after a batch outlasted the session, stays an error.)
  if (namespace === 'Connection' && message.startsWith('Response ') && REBALANCE_ANSWERS.has(String((rest as { error?: unknown }).error))) return log.debug(fields, message);
  if (level === logLevel.ERROR) log.error(fields, message);
  else if (level === logLevel.WARN) log.warn(fields, message);
  else if (level === logLevel.INFO) log.info(fields, message);
  else log.debug(fields, message);
}

/**
 * The topics Earshot reads and writes, as the admin API wants them: the input topics and
 * their `.dlq`, the enriched, listening-gap, erasure and reassigned streams, and the compacted
 * customer-sentiment stream.
 */
export function topicSpecs(settings: KafkaSettings): ITopicConfig[] {
  const base = { numPartitions: settings.partitions, replicationFactor: settings.replicationFactor };
  return [
    ...settings.topics.flatMap((t) => [
      { topic: t, ...base },
      { topic: deadLetterTopic(t), ...base },
    ]),
    { topic: outputTopicName(settings, OUTBOX_TOPICS.enriched.name), ...base },
    { topic: outputTopicName(settings, OUTBOX_TOPICS.listeningGap.name), ...base },
    { topic: outputTopicName(settings, OUTBOX_TOPICS.erasure.name), ...base },
    { topic: outputTopicName(settings, OUTBOX_TOPICS.reassigned.name), ...base },
    {
      topic: outputTopicName(settings, OUTBOX_TOPICS.sentiment.name),
      ...base,
      // Only the latest summary per customer matters, and a tombstone must make the key disappear.
      configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
    },
  ];
}

/**
 * Creates the missing topics of {@link topicSpecs} when KAFKA_CREATE_TOPICS allows it, then
 * checks those that exist ({@link checkTopicConfigs}).
 *
 * What must stay true: never fails the start when the cluster refuses (ACLs, managed
 * clusters): it logs what is missing and carries on.
 */
export async function ensureTopics(kafka: Kafka, settings: KafkaSettings, log: Logger): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const specs = topicSpecs(settings);
    if (settings.createTopics) await createMissingTopics(admin, specs, log);
    await checkTopicConfigs(admin, settings, specs, log);
  } finally {
    await admin.disconnect();
  }
}

/**
 * One warning per existing topic whose settings go against what Earshot writes or reads there
 * (topics made by hand, by a script, or recreated by an operator; Earshot never alters them):
 * - the customer-sentiment topic not compacted: a tombstone does not remove an erased
 *   customer's summary; compacted and deleted by age (`compact,delete`): a customer whose summary
 *   has not changed within the topic's retention drops out of it;
 * - any other topic compacted: the broker keeps only the last message of each key, and on these
 *   every message counts (an author's unread interactions on an input topic, a customer's
 *   interactions on the enriched one, the parts of an erasure);
 * - an output topic taking records smaller than KAFKA_MAX_REQUEST_BYTES: events the edge took
 *   and the broker refuses are left out (earshot_outbox_events_oversized_total).
 */
async function checkTopicConfigs(admin: Admin, settings: KafkaSettings, specs: ITopicConfig[], log: Logger): Promise<void> {
  const sentiment = outputTopicName(settings, OUTBOX_TOPICS.sentiment.name);
  const outputs = new Set(Object.values(OUTBOX_TOPICS).map((t) => outputTopicName(settings, t.name)));
  try {
    const existing = new Set(await admin.listTopics());
    const resources = specs.filter((s) => existing.has(s.topic)).map((s) => ({ type: 2 /* TOPIC */, name: s.topic, configNames: ['cleanup.policy', 'max.message.bytes'] }));
    if (resources.length === 0) return;
    const described = await admin.describeConfigs({ resources, includeSynonyms: false });
    for (const r of described.resources) {
      const value = (name: string) => r.configEntries.find((c) => c.configName === name)?.configValue ?? '';
      const policy = value('cleanup.policy');
      const compacted = policy.split(',').includes('compact');
      const topic = r.resourceName;
      if (topic === sentiment) {
        if (!compacted) log.warn({ topic, policy }, 'the customer-sentiment topic is not compacted: erased customers stay readable; set cleanup.policy=compact');
        else if (policy.split(',').includes('delete')) log.warn({ topic, policy }, 'the customer-sentiment topic also deletes by age (cleanup.policy=compact,delete): a customer whose summary has not changed within its retention.ms drops out of it; set cleanup.policy=compact');
      } else if (compacted) {
        log.warn({ topic, policy }, `kafka topic ${topic} is compacted (cleanup.policy=${policy}): the broker keeps only the last message of each key, and every message of this topic counts; set cleanup.policy=delete`);
      }
      const maxBytes = Number(value('max.message.bytes'));
      if (outputs.has(topic) && maxBytes > 0 && maxBytes < settings.maxRequestBytes) {
        log.warn({ topic, maxMessageBytes: maxBytes, maxRequestBytes: settings.maxRequestBytes }, `kafka topic ${topic} takes records of at most ${maxBytes} bytes (max.message.bytes), under KAFKA_MAX_REQUEST_BYTES (${settings.maxRequestBytes}): a larger event is left out and counted in earshot_outbox_events_oversized_total`);
      }
    }
  } catch (e) {
    log.debug({ err: e }, "could not check the kafka topics' settings");
  }
}

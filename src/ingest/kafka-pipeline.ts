import type { DataSource } from 'typeorm';
import type { Config } from '../config/config';
import type { RecordInteractionsService } from '../interactions/record-interactions.service';
import type { LimitsArg } from '../interactions/interaction-message';
import { metricsSink, OutboxRelay, type OutboxRelayOptions, type RelayHandle } from '../outbox/outbox-relay';
import { relayWorkerFile, ThreadedRelay } from '../outbox/outbox-relay-thread';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import { createKafka, createRelayProducer, ensureTopics } from './kafka-client';
import { MAX_INFLATED_BATCH_MESSAGES, registerCodecs } from './kafka-codecs';
import { KafkaIngestConsumer, type KafkaConsumerOptions } from './kafka-consumer';
import { KafkaProgressStore } from './kafka-progress';

export interface KafkaPipeline {
  consumer: KafkaIngestConsumer;
  relay: RelayHandle;
  /** null when consuming and publishing work, else the reason (for /readyz) */
  health(): string | null;
  /** consumer first (its last chunk commits and writes outbox rows), then the relay drains */
  stop(): Promise<void>;
}

/**
 * Starts the `ingest` role's Kafka side: topics, outbox relay, consumer. Returns null, after
 * saying so once in the log, when KAFKA_BROKERS is unset, so the embedded default keeps
 * starting without any external service (outbox rows then wait in the table).
 *
 * What must stay true: fails the start when the cluster cannot be reached, so that an
 * orchestrator restarts the process instead of running an ingest replica that consumes nothing.
 */
export async function startKafkaPipeline(
  config: Config,
  ds: DataSource,
  recorder: RecordInteractionsService,
  metrics: Metrics,
  log: Logger,
  opts: { consumer?: KafkaConsumerOptions; relay?: OutboxRelayOptions; ingestLimits?: LimitsArg } = {},
): Promise<KafkaPipeline | null> {
  const settings = config.kafka;
  if (!settings.brokers) {
    log.info('KAFKA_BROKERS is not set: the Kafka consumer and the outbox relay are off; outbox rows wait in the database');
    return null;
  }
  const kafkaLog = log.child({ component: 'kafka' });
  const codecs = registerCodecs(settings.codecs, kafkaLog, MAX_INFLATED_BATCH_MESSAGES * settings.maxMessageBytes);
  kafkaLog.info({ codecs: ['gzip', ...codecs] }, 'kafka compression codecs registered');
  const reaching = Date.now();
  await ensureTopics(createKafka(settings, kafkaLog, 'admin'), settings, kafkaLog).catch((e: unknown) => {
    throw new KafkaStartError(settings.brokers!, e, Date.now() - reaching);
  });
  const dsOptions = ds.options as { url?: string; schema?: string };
  const db = { url: dsOptions.url!, schema: dsOptions.schema };
  // Compiled, the relay publishes from a worker thread; from TypeScript sources (tests), in process.
  const workerFile = settings.relayThread ? relayWorkerFile() : null;
  const relay: RelayHandle = workerFile
    ? new ThreadedRelay(workerFile, { settings, db, opts: opts.relay ?? {}, logLevel: log.level }, metricsSink(metrics), log.child({ component: 'outbox-relay' }))
    : new OutboxRelay(createRelayProducer(settings, kafkaLog), db, settings, metricsSink(metrics), log.child({ component: 'outbox-relay' }), opts.relay);
  // kafkajs tells of an offset reset only in its log: the consumer reads its client's entries.
  let logReader: KafkaIngestConsumer | undefined;
  const consumer = new KafkaIngestConsumer(
    createKafka(settings, kafkaLog, 'ingest', (entry) => logReader?.onClientLog(entry)),
    settings,
    recorder,
    new KafkaProgressStore(ds, settings.groupId),
    // the edge limits with the service's clock (the future limit is measured against it)
    opts.ingestLimits ?? config.ingestLimits,
    metrics,
    log.child({ component: 'kafka-consumer' }),
    opts.consumer,
  );
  logReader = consumer;
  await relay.start();
  try {
    await consumer.start();
  } catch (e) {
    await relay.stop(0);
    throw e;
  }
  return {
    consumer,
    relay,
    health: () => consumer.health() ?? relay.health(),
    async stop() {
      await consumer.stop();
      await relay.stop();
    },
  };
}

/**
 * The brokers could not be reached at start (after kafkajs' own retries, about 30 s): said in one
 * line naming KAFKA_BROKERS and the cause, where a KafkaJSNonRetriableError and its stack were
 * printed. A broker that hangs up at once ("Closed connection") is often no Kafka listener, or one
 * that wants TLS or SASL.
 */
export class KafkaStartError extends Error {
  constructor(brokers: readonly string[], cause: unknown, waitedMs: number) {
    let deepest = cause as { message?: unknown; cause?: unknown; originalError?: unknown } | null;
    for (let i = 0; i < 5 && deepest && (deepest.cause ?? deepest.originalError); i++) deepest = (deepest.cause ?? deepest.originalError) as typeof deepest;
    const reason = String(deepest?.message ?? cause).split('\n')[0];
    const hint = /closed connection/i.test(reason) ? ' (the other end hung up: is it a Kafka listener, and does it want KAFKA_SSL or KAFKA_SASL_MECHANISM?)' : '';
    super(`cannot reach the Kafka brokers ${brokers.join(',')} (KAFKA_BROKERS) in ${Math.round(waitedMs / 1000)} s: ${reason}${hint}`, { cause });
    this.name = 'KafkaStartError';
  }
}

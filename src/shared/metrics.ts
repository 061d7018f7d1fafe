import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Every Prometheus metric of the process, in one registry served at /metrics. */
export class Metrics {
  readonly registry = new Registry();

  readonly httpDuration = new Histogram({
    name: 'earshot_http_request_duration_seconds',
    help: 'HTTP request latency by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly graphqlDuration = new Histogram({
    name: 'earshot_graphql_operation_duration_seconds',
    help: 'GraphQL operation latency by operation type and name',
    labelNames: ['type', 'operation', 'outcome'] as const,
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly ingested = new Counter({
    name: 'earshot_ingest_interactions_total',
    help: 'Interactions offered to the ingest pipeline, by channel (http, graphql, kafka) and result',
    labelNames: ['channel', 'result'] as const,
    registers: [this.registry],
  });

  readonly ingestBatchDuration = new Histogram({
    name: 'earshot_ingest_batch_duration_seconds',
    help: 'Time to analyze and persist one ingest batch (one transaction)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  private readonly graphqlQueues: (() => number)[] = [];

  readonly graphqlWaiting: Gauge = new Gauge({
    name: 'earshot_graphql_operations_waiting',
    help: 'GraphQL operations waiting for a slot (EARSHOT_GRAPHQL_CONCURRENCY at once, EARSHOT_GRAPHQL_QUEUE_MAX in line)',
    registers: [this.registry],
    collect: (): void => this.graphqlWaiting.set(this.graphqlQueues.reduce((n, q) => n + q(), 0)),
  });

  /** Counts the operations `waiting()` reports in earshot_graphql_operations_waiting. */
  watchGraphqlQueue(waiting: () => number): void {
    this.graphqlQueues.push(waiting);
  }

  readonly outboxBacklog = new Gauge({
    name: 'earshot_outbox_backlog',
    help: 'Outbox rows not yet published',
    registers: [this.registry],
  });
  readonly outboxParkedRows = new Gauge({
    name: 'earshot_outbox_rows_parked',
    help: 'Outbox rows not yet published that failed on their own while the rows after them were published: left out of the queue and retried apart (see the log for why)',
    registers: [this.registry],
  });

  readonly kafkaMessages = new Counter({
    name: 'earshot_kafka_messages_total',
    help: 'Kafka messages consumed and committed, by topic and result (accepted, duplicate, dead_letter)',
    labelNames: ['topic', 'result'] as const,
    registers: [this.registry],
  });

  readonly kafkaConsumerLag = new Gauge({
    name: 'earshot_kafka_consumer_lag',
    help: 'High watermark minus the committed offset, per assigned partition; counts every fetched message while a batch is not yet committed',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });

  /** set by the Kafka consumer: its partitions with fetched, uncommitted messages, and for how long */
  kafkaStalledPartitions: () => { topic: string; partition: number; seconds: number }[] = () => [];

  readonly kafkaPartitionStalled = new Gauge({
    name: 'earshot_kafka_partition_stalled_seconds',
    help: 'Per assigned partition with fetched messages not yet committed: seconds since it last committed (0 series when caught up)',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
    collect: () => {
      this.kafkaPartitionStalled.reset();
      for (const p of this.kafkaStalledPartitions()) this.kafkaPartitionStalled.set({ topic: p.topic, partition: String(p.partition) }, Math.round(p.seconds * 10) / 10);
    },
  });

  readonly kafkaConsumerRestarts = new Counter({
    name: 'earshot_kafka_consumer_restarts_total',
    help: 'Times the consumer was started again after a crash kafkajs does not restart from itself',
    registers: [this.registry],
  });

  readonly kafkaDeadLetters = new Counter({
    name: 'earshot_kafka_dead_letters_total',
    help: 'Messages written to <topic>.dlq, by original topic and error kind',
    labelNames: ['topic', 'kind'] as const,
    registers: [this.registry],
  });

  readonly kafkaOffsetResets = new Counter({
    name: 'earshot_kafka_offset_resets_total',
    help: 'Times a partition resumed elsewhere than its committed offset because that offset was no longer in the log (KAFKA_OFFSET_RESET), by reason: before-log-start (records deleted under it), past-end (topic truncated or recreated), unknown',
    labelNames: ['topic', 'partition', 'reason'] as const,
    registers: [this.registry],
  });

  readonly kafkaOffsetsSkipped = new Counter({
    name: 'earshot_kafka_offsets_skipped_total',
    help: 'Offsets never read because a partition resumed past them after an offset reset (deleted before they were read, or skipped by KAFKA_OFFSET_RESET=latest)',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });

  readonly kafkaRetries = new Counter({
    name: 'earshot_kafka_retries_total',
    help: 'Transient failures (database or broker) after which a partition waited and retried the same messages',
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });

  readonly outboxOversized = new Counter({
    name: 'earshot_outbox_events_oversized_total',
    help: 'Outbox events larger than KAFKA_MAX_REQUEST_BYTES on their own, left unpublished (logged with their event id), by topic',
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });

  readonly outboxPublished = new Counter({
    name: 'earshot_outbox_published_total',
    help: 'Outbox rows published to Kafka and acknowledged by all in-sync replicas, by topic',
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });

  readonly outboxRelayCpu = new Counter({
    name: 'earshot_outbox_relay_cpu_seconds_total',
    help: 'CPU time (user + system) of the outbox relay thread: reading, rendering and publishing the outbox (only when the relay runs in its own thread)',
    registers: [this.registry],
  });

  readonly outboxPublishDelay = new Histogram({
    name: 'earshot_outbox_publish_delay_seconds',
    help: 'Time from an outbox row being written to its acknowledgement by Kafka',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly identityHubCapped = new Counter({
    name: 'earshot_identity_hub_capped_total',
    help: 'Authors not linked to the customer of an email or phone they named because it already holds EARSHOT_IDENTITY_HUB_CAP handles (each a pending merge suggestion)',
    registers: [this.registry],
  });

  readonly taskRuns = new Histogram({
    name: 'earshot_task_run_duration_seconds',
    help: 'Runs of background tasks (crm-sync, crm-writeback, crm-trend-refresh, escalation, retag, reresolution, retention), by outcome',
    labelNames: ['task', 'outcome'] as const,
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });

  readonly gapEscalationsSkipped = new Counter({
    name: 'earshot_gap_escalations_skipped_total',
    help: 'Overdue listening items not escalated, by reason (past_horizon: due longer ago than EARSHOT_GAP_ESCALATION_HORIZON_HOURS, e.g. backfilled)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly retentionRedacted = new Counter({
    name: 'earshot_retention_redacted_total',
    help: 'Interactions whose text and author details the retention job removed (EARSHOT_RETENTION_DAYS)',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'earshot_' });
  }
}

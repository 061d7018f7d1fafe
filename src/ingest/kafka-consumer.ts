import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, LogEntry, PartitionOffset } from 'kafkajs';
import type { QueryRunner } from 'typeorm';
import { failureSqlState, isRetriable, isStatementTimeout, isTransient, unavailableReason } from '../db/failures';
import { parseMessage, type InteractionMessage, type LimitsArg } from '../interactions/interaction-message';
import { persistIsolating } from '../interactions/isolate-lines';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { contextFromHeaders, inSpan, SpanKind, trace } from '../shared/tracing';
import type { RecordInteractionsService } from '../interactions/record-interactions.service';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import { DeadLetterPublisher, DeadLetterTopicMissing, type DeadLetter } from './dead-letter';
import { UNDECODABLE_BATCH_HEADER, UNDECODABLE_HEADER } from './kafka-codecs';
import { deadLetterTopic, topicCreator, type KafkaSettings } from './kafka-client';
import type { KafkaProgressStore } from './kafka-progress';
import { subscriptionAwareRoundRobin } from './subscription-assigner';

export interface KafkaConsumerOptions {
  /** first and longest wait between retries of a transient failure */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** readiness fails when the broker has not been heard from for this long */
  contactTimeoutMs?: number;
  /** readiness fails when a partition with waiting messages commits nothing for this long (default KAFKA_STALL_TIMEOUT_MS) */
  stallTimeoutMs?: number;
  /** first and longest wait before the consumer is started again after a crash kafkajs does not restart */
  restartInitialMs?: number;
  restartMaxMs?: number;
}

/** Progress of one assigned partition, for stall detection. */
interface PartitionProgress {
  topic: string;
  partition: number;
  /** since when (performance.now()) the partition has had fetched messages that are not committed yet; null when caught up */
  pendingSince: number | null;
  /** why the partition waits, in words for an operator (no error text, no hosts) */
  waitingOn: string | null;
}

interface Control {
  isRunning(): boolean;
  isStale(): boolean;
  heartbeat(): Promise<void>;
}

interface ChunkResult {
  accepted: number;
  duplicates: number;
  letters: DeadLetter[];
}

/** How long a stop waits for the broker to take the offset commit of the chunk it let finish, and then to leave the group. */
const STOP_COMMIT_GRACE_MS = 3_000;

/**
 * The metadata of every offset Earshot commits after storing a chunk. At a join, a committed
 * offset ahead of the database's progress (kafka_progress) with this mark means the database went
 * back in time (restored, failed over): read again. Without it another client moved the group
 * (kafka-consumer-groups --reset-offsets writes "", kafkajs' admin null): followed.
 */
export const COMMIT_MARK = 'earshot';

/** Thrown out of a retry loop when the consumer stops or loses the partition meanwhile. */
class Abandoned extends Error {}

/**
 * The `ingest` role's Kafka consumer: reads the configured topics in one consumer group and
 * feeds each chunk of a partition's batch to the same pipeline as POST /ingest.
 *
 * What must stay true:
 * - an offset is committed only after the chunk's database transaction has committed and its
 *   dead letters are acknowledged by the broker, so a crash at any point redelivers, never loses;
 * - redelivery never duplicates, because the pipeline ignores a known (source, externalId);
 * - a partition's messages are processed in offset order, one chunk at a time;
 * - only a retriable failure (connection lost, lock, serialization or deadlock conflict,
 *   broker error) makes the partition wait and retry the same chunk with exponential backoff:
 *   it never skips then;
 * - any other failure belongs to a message: it is found (edge checks, then bisection of the
 *   batch) and that message alone goes to `<topic>.dlq` with its reason, and the partition
 *   moves on — validation, out-of-range values, encoding, stack overflow, a batch in a codec
 *   this consumer cannot decode;
 * - a partition with waiting messages that commits nothing for `stallTimeoutMs` makes
 *   `health()` fail with the reason, and its lag gauge counts the messages it has not committed;
 * - a crash that kafkajs does not restart from is restarted here, with backoff, while running;
 * - `stop()` lets the chunk in flight finish and commit, then leaves the group; a broker out of
 *   reach delays it by at most STOP_COMMIT_GRACE_MS (the chunk is read again and ignored as known).
 */
export class KafkaIngestConsumer {
  private consumer: Consumer;
  private readonly dlq: DeadLetterPublisher;
  private readonly stallTimeoutMs: number;
  private readonly restartInitialMs: number;
  private readonly restartMaxMs: number;
  private readonly progress = new Map<string, PartitionProgress>();
  private restartDelay = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  /** messages per pipeline call, i.e. per database transaction and per offset commit (KAFKA_CHUNK_SIZE) */
  private readonly chunkSize: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private readonly contactTimeoutMs: number;
  private readonly stopSignal = new AbortController();
  private state: 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' = 'idle';
  private problem: string | null = 'not started';
  /**
   * when the broker last answered, on the monotonic clock (performance.now()): on the wall clock a
   * host clock stepped forward an hour made /readyz say "no answer from the broker for 3600 s",
   * and one stepped back hid a silent broker for the hour
   */
  private lastContact = 0;
  private joined = false;
  private joinWaiters: (() => void)[] = [];
  private batchesInFlight = 0;
  private idleWaiters: (() => void)[] = [];
  /**
   * Where the group resumes each partition (`topic/partition`), as far as this member knows: read
   * from the group before consuming and at each join, moved by each commit. What an offset reset
   * skipped is counted from it.
   */
  private readonly resumeAt = new Map<string, bigint>();
  /** the other members' topics last warned about (once per change) */
  private foreignTopicsSaid = '';
  /** this consumer object's group joins, so a placement of partitions overtaken by a newer join gives way */
  private joinSeq = 0;
  /** `topic/partition`s assigned at the last join */
  private assigned = new Set<string>();
  /**
   * With KAFKA_OFFSET_RESET=latest, the assigned partitions the group was seen to have a
   * committed offset for (see placeStarts), for the current consumer object; the others are
   * checked again at each join (a seek kafkajs could not commit is made again).
   */
  private placed = new Set<string>();
  /** the partitions already said to start elsewhere than kafkajs would (once each) */
  private readonly startsSaid = new Set<string>();
  /** the partitions whose database progress was already said to be past their end (once each) */
  private readonly pastEndSaid = new Set<string>();
  /**
   * The partitions whose committed offset, as last read, Earshot committed itself (its metadata is
   * {@link COMMIT_MARK}); another client's commit (kafka-consumer-groups --reset-offsets, an
   * older release) has none.
   */
  private readonly committedByUs = new Set<string>();

  constructor(
    private readonly kafka: Kafka,
    private readonly settings: KafkaSettings,
    private readonly recorder: RecordInteractionsService,
    /** how far the database holds each partition (kafka_progress), written with each chunk */
    private readonly stored: KafkaProgressStore,
    /** the edge limits (config.ingestLimits); a bare number is the text limit alone */
    private readonly limits: LimitsArg,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    opts: KafkaConsumerOptions = {},
  ) {
    this.chunkSize = settings.chunkSize;
    this.retryInitialMs = opts.retryInitialMs ?? 200;
    this.retryMaxMs = opts.retryMaxMs ?? 5_000;
    this.contactTimeoutMs = opts.contactTimeoutMs ?? 45_000;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? settings.stallTimeoutMs ?? 60_000;
    this.restartInitialMs = opts.restartInitialMs ?? 1_000;
    this.restartMaxMs = opts.restartMaxMs ?? 30_000;
    const inputDlqs = new Set(settings.topics.map(deadLetterTopic));
    this.dlq = new DeadLetterPublisher(kafka, metrics, settings.maxRequestBytes, topicCreator(settings, log, (t) => inputDlqs.has(t)), log);
    this.consumer = this.createConsumer();
    metrics.kafkaStalledPartitions = () => this.stalledPartitions();
  }

  private createConsumer(): Consumer {
    // a new consumer object resolves every partition's start again
    this.placed = new Set();
    this.assigned = new Set();
    const consumer = this.kafka.consumer({
      groupId: this.settings.groupId,
      sessionTimeout: this.settings.sessionTimeoutMs,
      heartbeatInterval: Math.min(3_000, Math.floor(this.settings.sessionTimeoutMs / 3)),
      // Consumption must resume after any crash: a stopped consumer would stall ingest silently.
      retry: { initialRetryTime: 300, retries: 10, maxRetryTime: 10_000, restartOnFailure: async () => this.state === 'running' },
      allowAutoTopicCreation: false,
      // Each member is given partitions of the topics it reads only, also when another deployment
      // shares the group with other topics (kafkajs' own assigner handed out the leader's topics).
      partitionAssigners: [subscriptionAwareRoundRobin((topics) => this.partitionsOf(topics), (foreign) => this.otherTopicsInGroup(foreign))],
      // A partition added to an input topic is consumed once the metadata is read again (kafkajs'
      // default: 5 minutes); it starts at its first offset (with KAFKA_OFFSET_RESET=latest too,
      // see placeStarts), so nothing written to it before is skipped.
      metadataMaxAge: this.settings.metadataMaxAgeMs,
      // The broker answers a fetch once it has fetchMinBytes for it, or after fetchMaxWaitMs (an
      // idle long-poll, which also delays stop() by up to this long).
      minBytes: this.settings.fetchMinBytes,
      maxWaitTimeInMs: this.settings.fetchMaxWaitMs,
    });
    this.watchEvents(consumer);
    return consumer;
  }

  /**
   * Connects, subscribes and starts consuming (the topics are created and checked before, by
   * `ensureTopics` in startKafkaPipeline). Resolves once consumption runs; joining the group
   * continues in the background.
   */
  async start(): Promise<void> {
    this.state = 'starting';
    this.problem = 'connecting to the broker';
    await this.dlq.connect();
    await this.runConsumer();
    this.log.info({ topics: this.settings.topics, groupId: this.settings.groupId, concurrency: this.settings.concurrency }, 'kafka consumer started');
  }

  private async runConsumer(): Promise<void> {
    await this.consumer.connect();
    // A new group starts at the beginning by default: messages produced before the first start count too.
    // KAFKA_OFFSET_RESET: where a partition without a committed offset starts, and where kafkajs
    // resumes one whose committed offset is no longer in the log (see onClientLog).
    await this.consumer.subscribe({ topics: [...this.settings.topics], fromBeginning: this.settings.offsetReset === 'earliest' });
    await this.readCommittedOffsets(null);
    this.problem = 'joining the consumer group';
    this.state = 'running';
    await this.consumer.run({
      // Offsets are resolved here only once their chunk has committed and its letters are
      // acknowledged, and committed right then (eachBatch). kafkajs itself resolves only a fetch
      // of nothing but transaction markers and aborted records, which never reaches eachBatch:
      // auto-commit with a threshold of 1 commits that one at once; without it the committed
      // offset stayed before an aborted transaction or a partition's last marker, and the
      // group's lag never read 0.
      autoCommit: true,
      autoCommitThreshold: 1,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.settings.concurrency,
      eachBatch: async (payload) => {
        this.batchesInFlight++;
        try {
          await this.eachBatch(payload);
        } finally {
          if (--this.batchesInFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
        }
      },
    });
  }

  /**
   * kafkajs gives up on a crash it deems non-retriable (restart: false) and leaves the
   * consumer stopped for good; a new consumer object joins the group again instead, after a
   * backoff that grows while crashes repeat, so the partitions are consumed again.
   */
  private scheduleRestart(): void {
    if (this.state !== 'running' || this.restartTimer) return;
    this.restartDelay = this.restartDelay === 0 ? this.restartInitialMs : Math.min(this.restartDelay * 2, this.restartMaxMs);
    this.metrics.kafkaConsumerRestarts.inc();
    this.log.warn({ inMs: this.restartDelay }, 'kafka consumer stopped after a crash kafkajs does not recover from; starting it again');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.state !== 'running') return;
      const old = this.consumer;
      this.consumer = this.createConsumer();
      void old
        .disconnect()
        .catch(() => undefined)
        .then(() => this.runConsumer())
        .catch((e: unknown) => {
          this.log.error({ err: e }, 'kafka consumer restart failed');
          this.scheduleRestart();
        });
    }, this.restartDelay);
    this.restartTimer.unref();
  }

  /** The partitions of topics other members of the group read (this member's kafkajs cluster knows its own only). */
  private async partitionsOf(topics: string[]): Promise<Map<string, number[]>> {
    const out = new Map<string, number[]>();
    const admin = this.kafka.admin({ retry: { retries: 1 } });
    try {
      await admin.connect();
      const existing = new Set(await admin.listTopics());
      const known = topics.filter((t) => existing.has(t));
      if (known.length > 0) for (const t of (await admin.fetchTopicMetadata({ topics: known })).topics) out.set(t.name, t.partitions.map((p) => p.partitionId).sort((a, b) => a - b));
    } catch (e) {
      this.log.warn({ err: e, topics }, "could not read the partitions of the group's other topics; they are not assigned this time");
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    return out;
  }

  private otherTopicsInGroup(foreign: string[]): void {
    const key = foreign.join(',');
    if (key === this.foreignTopicsSaid) return;
    this.foreignTopicsSaid = key;
    this.log.warn(
      { groupId: this.settings.groupId, topics: foreign },
      `other members of the consumer group ${this.settings.groupId} read other topics (${key}): another deployment shares KAFKA_GROUP_ID; each member is given partitions of its own topics only, but every start and stop of one rebalances the other: give each deployment its own KAFKA_GROUP_ID`,
    );
  }

  /**
   * Reads the group's committed offsets of `assigned` (all input topics when null) into
   * `resumeAt`. An offset this member committed meanwhile is newer and stays; so does what is
   * known when the group has none (kafkajs' own reset commits -1 or -2) or the read fails.
   * Returns every partition's committed offset of the topics read (-1: none), assigned to this
   * member or not; null when the read failed.
   */
  private async readCommittedOffsets(assigned: Record<string, number[]> | null): Promise<Map<string, Map<number, bigint>> | null> {
    const before = new Map(this.resumeAt);
    const admin = this.kafka.admin({ retry: { retries: 1 } });
    try {
      await admin.connect();
      const topics = assigned ? Object.keys(assigned) : [...this.settings.topics];
      const out = new Map<string, Map<number, bigint>>();
      for (const t of await admin.fetchOffsets({ groupId: this.settings.groupId, topics })) {
        const ofTopic = new Map<number, bigint>();
        out.set(t.topic, ofTopic);
        for (const p of t.partitions) {
          const key = `${t.topic}/${p.partition}`;
          const offset = BigInt(p.offset);
          ofTopic.set(p.partition, offset < 0n ? -1n : offset);
          if (p.metadata === COMMIT_MARK) this.committedByUs.add(key);
          else this.committedByUs.delete(key);
          if ((assigned && !assigned[t.topic]?.includes(p.partition)) || this.resumeAt.get(key) !== before.get(key)) continue;
          if (offset >= 0n) this.resumeAt.set(key, offset);
        }
      }
      return out;
    } catch (e) {
      this.log.debug({ err: e }, "could not read the group's committed offsets");
      return null;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  /**
   * Where each partition assigned at a join starts. Called on each join with `all` the assigned
   * partitions, paused by the caller before kafkajs' first fetch; resumes them once placed, unless
   * a newer join took over (which pauses and places them in turn).
   *
   * Every partition: the database's progress is compared with the group's committed offset
   * (rewindToDatabase), and one the database holds less of than Kafka says is read again.
   *
   * With KAFKA_OFFSET_RESET=latest, where each partition newly assigned to this consumer starts
   * when the group has no committed offset for it. kafkajs would start it at its end, and commit
   * nothing until a message arrives there; but `latest` means where a NEW group starts:
   * - when the group has committed offsets for other partitions of the topic, the partition is
   *   not new to the group (added to the topic, or one a member of an older release never
   *   committed: it had no message since the group started): it starts at its first offset,
   *   and that is logged once;
   * - otherwise (a new group on this topic) it starts at its end.
   * Either start is committed at once (a seek), so a restart or a rebalance resumes there and not
   * at a later end; `pending` are the partitions not placed yet by this consumer object. Two
   * replicas of a new group that join at once can disagree: one may see the other's start
   * committed and read a partition from its first offset.
   */
  private async placeStarts(
    consumer: Consumer,
    seq: number,
    assignment: Record<string, number[]>,
    all: { topic: string; partition: number }[],
    pending: { topic: string; partition: number }[],
  ): Promise<void> {
    const overtaken = () => consumer !== this.consumer || seq !== this.joinSeq || this.state !== 'running';
    const resume = () => {
      for (const [topic, partitions] of byTopic(all)) consumer.resume([{ topic, partitions }]);
    };
    const [committed, stored] = await Promise.all([this.readCommittedOffsets(assignment), this.readStoredProgress(all, overtaken)]);
    if (overtaken()) return;
    if (committed === null) {
      this.log.warn(
        { partitions: all.map((p) => `${p.topic}/${p.partition}`) },
        this.settings.offsetReset === 'latest'
          ? "kafka consumer: could not read the group's committed offsets; partitions without one start at their end (KAFKA_OFFSET_RESET=latest), also one added to a topic the group reads, and the database's progress is not compared with them"
          : "kafka consumer: could not read the group's committed offsets; the database's progress is not compared with them",
      );
      resume();
      return;
    }
    const unplaced = pending.filter((p) => (committed.get(p.topic)?.get(p.partition) ?? -1n) < 0n);
    const starts: { topic: string; partition: number; offset: bigint; added: boolean }[] = [];
    let placing = true;
    const admin = this.kafka.admin({ retry: { retries: 2 } });
    try {
      if (unplaced.length > 0) {
        await admin.connect();
        for (const [topic, partitions] of byTopic(unplaced)) {
          const groupReadsTopic = [...(committed.get(topic)?.values() ?? [])].some((o) => o >= 0n);
          const ends = await admin.fetchTopicOffsets(topic);
          for (const partition of partitions) {
            const end = ends.find((o) => o.partition === partition);
            if (!end) throw new Error(`no offsets for partition ${partition} of ${topic}`);
            starts.push({ topic, partition, offset: BigInt(groupReadsTopic ? end.low : end.high), added: groupReadsTopic });
          }
        }
      }
    } catch (e) {
      if (overtaken()) return;
      this.log.warn({ err: e, partitions: unplaced.map((p) => `${p.topic}/${p.partition}`) }, "kafka consumer: could not read the partitions' offsets; partitions without a committed offset start at their end (KAFKA_OFFSET_RESET=latest), also one added to a topic the group reads");
      // none is placed: each is tried again at the next join
      starts.length = 0;
      placing = false;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    if (overtaken()) return;
    // Applied (and committed) by kafkajs at its next fetch, before it fetches these partitions.
    for (const s of starts) {
      consumer.seek({ topic: s.topic, partition: s.partition, offset: s.offset.toString() });
      this.resumeAt.set(`${s.topic}/${s.partition}`, s.offset);
    }
    // and the database's progress with it: a start at the end that left an older progress behind
    // (the group's offsets expired) would be taken for a database gone back in time at the next join
    await Promise.all(starts.filter((s) => stored?.has(`${s.topic}/${s.partition}`)).map((s) => this.saveMove(s.topic, s.partition, s.offset)));
    if (placing) for (const p of pending) if (!unplaced.includes(p)) this.placed.add(`${p.topic}/${p.partition}`);
    if (stored !== null) await this.rewindToDatabase(consumer, all, committed, stored, overtaken);
    if (overtaken()) return;
    resume();
    for (const s of starts.filter((x) => x.added)) {
      const key = `${s.topic}/${s.partition}`;
      if (this.startsSaid.has(key)) continue;
      this.startsSaid.add(key);
      this.log.info(
        { topic: s.topic, partition: s.partition, startsAt: s.offset.toString(), offsetReset: this.settings.offsetReset },
        `kafka consumer: partition ${s.partition} of ${s.topic} has no committed offset while the group has some on the topic's other partitions (a partition added to the topic, or one the group never committed): it is read from its first offset ${s.offset}, not from its end, so nothing written to it before is skipped (KAFKA_OFFSET_RESET=latest is where a new group starts)`,
      );
    }
    const fresh = starts.filter((x) => !x.added && !this.startsSaid.has(`${x.topic}/${x.partition}`));
    for (const [topic, partitions] of byTopic(fresh)) {
      for (const partition of partitions) this.startsSaid.add(`${topic}/${partition}`);
      this.log.info({ topic, partitions, offsetReset: this.settings.offsetReset }, `kafka consumer: the group has no committed offsets on ${topic}: partitions ${partitions.join(', ')} start at their end (KAFKA_OFFSET_RESET=latest); what was written before is not read`);
    }
  }

  /**
   * The database's progress of these partitions (kafka_progress). While the database cannot be
   * reached, tried again with backoff: the partitions stay paused (they could store nothing
   * anyway), and a database back after a failover is compared before anything is read. null when
   * a newer join or a stop took over meanwhile.
   */
  private async readStoredProgress(partitions: { topic: string; partition: number }[], overtaken: () => boolean): Promise<Map<string, bigint> | null> {
    let delay = this.retryInitialMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.stored.read(partitions);
      } catch (e) {
        if (overtaken() || this.stopSignal.signal.aborted) return null;
        const log = attempt === 1 || attempt % 10 === 0 ? this.log.warn.bind(this.log) : this.log.debug.bind(this.log);
        log({ err: e, attempt }, "kafka consumer: could not read the database's progress of the assigned partitions; they wait and it is read again");
        await sleep(Math.round(delay * (0.75 + Math.random() * 0.5)), this.stopSignal.signal);
        if (overtaken() || this.stopSignal.signal.aborted) return null;
        delay = Math.min(delay * 2, this.retryMaxMs);
      }
    }
  }

  /**
   * Records in the database a move of the partition's offset that stored nothing (an offset reset,
   * a start placed, a fetch of transaction markers only). A failure is logged only: the next
   * assignment then reads the partition again from the older progress, with a warning.
   */
  private async saveMove(topic: string, partition: number, nextOffset: bigint): Promise<void> {
    await this.stored.save(topic, partition, nextOffset).catch((e: unknown) => this.log.warn({ err: e, topic, partition, offset: nextOffset.toString() }, "kafka consumer: could not record the partition's new offset in the database"));
  }

  /**
   * The group's committed offset is moved only after the database commits, so the database's
   * progress is at or past it, unless the database went back in time: restored from a backup, or
   * failed over to an asynchronous standby that had not received the last commits. The interactions
   * of the offsets between are gone from the database while Kafka would resume after them. Such a
   * partition is moved back to the database's progress (a seek, committed by kafkajs at its next
   * fetch) and read again: what the database still holds is ignored as known. Said at warning
   * level, with both offsets and how many are read again; when retention (or deleteRecords) has
   * removed some of them meanwhile, it resumes at the first offset left and says at error level
   * how many are lost for good (counted in earshot_kafka_offsets_skipped_total).
   *
   * Left as kafkajs places it: a partition the database has no progress for, or the group no
   * committed offset for (a new group, a recreated topic: nothing to compare); one whose committed
   * offset is past the log's end (kafkajs' offset reset handles it, see onClientLog); and one the
   * database has progress past the log's end for (the topic was recreated, or the database belongs
   * to another cluster or group): said once, ignored.
   */
  private async rewindToDatabase(
    consumer: Consumer,
    all: { topic: string; partition: number }[],
    committed: Map<string, Map<number, bigint>>,
    stored: Map<string, bigint>,
    overtaken: () => boolean,
  ): Promise<void> {
    const differ = all
      .map((p) => ({ ...p, key: `${p.topic}/${p.partition}`, db: stored.get(`${p.topic}/${p.partition}`), kafka: committed.get(p.topic)?.get(p.partition) ?? -1n }))
      .filter((p): p is typeof p & { db: bigint } => p.db !== undefined && p.kafka >= 0n && p.db !== p.kafka);
    if (differ.length === 0) return;
    const bounds = new Map<string, { low: bigint; high: bigint }>();
    const admin = this.kafka.admin({ retry: { retries: 2 } });
    try {
      await admin.connect();
      for (const topic of new Set(differ.map((p) => p.topic))) {
        for (const o of await admin.fetchTopicOffsets(topic)) bounds.set(`${topic}/${o.partition}`, { low: BigInt(o.low), high: BigInt(o.high) });
      }
    } catch (e) {
      // a partition behind is read again all the same; kafkajs resets one whose offset is gone (onClientLog)
      this.log.warn({ err: e, partitions: differ.map((p) => p.key) }, "kafka consumer: could not read the partitions' offsets to compare them with the database's progress");
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    // a newer join (or a stop) took over meanwhile: it compares and places the partitions itself
    if (overtaken()) return;
    for (const p of differ) {
      const b = bounds.get(p.key);
      if (p.db > p.kafka) {
        // at or before the end: stored, its offset commit not taken yet (a crash, a stop cut short): read again and ignored as known
        if (!b || p.db <= b.high || this.pastEndSaid.has(p.key)) continue;
        this.pastEndSaid.add(p.key);
        this.log.warn(
          { topic: p.topic, partition: p.partition, committedOffset: p.kafka.toString(), databaseOffset: p.db.toString(), logEndOffset: b.high.toString() },
          `kafka consumer: the database's progress on partition ${p.partition} of ${p.topic} (offset ${p.db}) is past the partition's end (${b.high}): the topic was deleted and recreated, or the database was used with another Kafka cluster or group; ignored, the partition resumes at the group's committed offset ${p.kafka}`,
        );
        continue;
      }
      if (b && p.kafka > b.high) continue;
      if (!this.committedByUs.has(p.key)) {
        // Not Earshot's commit: the group was moved forward on purpose (kafka-consumer-groups
        // --reset-offsets to skip a backlog) or by an older release, which kept no progress here.
        // Kafka is followed, and the database's progress with it.
        this.log.info(
          { topic: p.topic, partition: p.partition, committedOffset: p.kafka.toString(), databaseOffset: p.db.toString() },
          `kafka consumer: the group's offset on partition ${p.partition} of ${p.topic} (${p.kafka}) was committed by another client (kafka-consumer-groups --reset-offsets, or an older release), ahead of the database's progress (${p.db}): followed, the ${p.kafka - p.db} messages between are not read`,
        );
        await this.saveMove(p.topic, p.partition, p.kafka);
        continue;
      }
      const from = b && p.db < b.low ? b.low : p.db;
      const reRead = Number(p.kafka > from ? p.kafka - from : 0n);
      consumer.seek({ topic: p.topic, partition: p.partition, offset: from.toString() });
      this.resumeAt.set(p.key, from);
      const fields = { topic: p.topic, partition: p.partition, committedOffset: p.kafka.toString(), databaseOffset: p.db.toString(), reRead };
      const cause = 'the database was restored from a backup, or failed over to a standby that had not received the last commits';
      if (b && from > p.db) {
        const lost = Number(from - p.db);
        this.metrics.kafkaOffsetsSkipped.inc({ topic: p.topic, partition: String(p.partition) }, lost);
        this.log.error(
          { ...fields, logStartOffset: b.low.toString(), lost },
          `kafka consumer: the database holds partition ${p.partition} of ${p.topic} up to offset ${p.db} only, behind the group's committed offset ${p.kafka} (${cause}), and offsets ${p.db} to ${b.low - 1n} were deleted from the topic since (retention or deleteRecords): ${lost} messages are lost for good; the partition resumes at its first offset ${b.low}, ${reRead} messages are read again`,
        );
      } else {
        this.log.warn(
          fields,
          `kafka consumer: the database holds partition ${p.partition} of ${p.topic} up to offset ${p.db} only, behind the group's committed offset ${p.kafka}: ${cause}; the ${reRead} messages between are read again (those the database still holds are ignored as known)`,
        );
      }
    }
  }

  /**
   * kafkajs tells of one event only in its log: a fetch at the committed offset was refused as
   * out of range (retention or deleteRecords removed the records under it, or the topic was
   * truncated or recreated smaller), and it moves the partition to KAFKA_OFFSET_RESET, skipping
   * silently what lay between. Said here at error level with what was skipped, and counted.
   */
  onClientLog(entry: LogEntry): void {
    if (entry.log.message !== 'Offset out of range, resetting to default offset') return;
    const { topic, partition } = entry.log as unknown as { topic?: unknown; partition?: unknown };
    if (typeof topic !== 'string' || typeof partition !== 'number') return;
    void this.reportOffsetReset(topic, partition).catch((e: unknown) => this.log.error({ err: e, topic, partition }, 'kafka offset reset: could not report it'));
  }

  private async reportOffsetReset(topic: string, partition: number): Promise<void> {
    const key = `${topic}/${partition}`;
    const consumer = this.consumer;
    const committed = this.resumeAt.get(key) ?? null;
    this.resumeAt.delete(key);
    let low: bigint | null = null;
    let high: bigint | null = null;
    const admin = this.kafka.admin({ retry: { retries: 2 } });
    try {
      await admin.connect();
      const o = (await admin.fetchTopicOffsets(topic)).find((x) => x.partition === partition);
      if (o) {
        low = BigInt(o.low);
        high = BigInt(o.high);
      }
    } catch (e) {
      this.log.warn({ err: e, topic, partition }, 'kafka offset reset: could not read the partition\'s offsets');
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    const latest = this.settings.offsetReset === 'latest';
    const resumedAt = low === null || high === null ? null : latest ? high : low;
    let reason: 'before-log-start' | 'past-end' | 'unknown' = 'unknown';
    let skipped: bigint | null = null;
    if (committed !== null && low !== null && high !== null && resumedAt !== null) {
      if (committed < low) {
        reason = 'before-log-start';
        skipped = resumedAt - committed;
      } else if (committed > high) {
        // the log is shorter than the group's offset: offsets low..resumedAt are read again or, with latest, skipped
        reason = 'past-end';
        skipped = resumedAt - low;
      } else {
        skipped = resumedAt > committed ? resumedAt - committed : 0n;
      }
    }
    // kafkajs' reset to the end commits no offset (-1): a restart or rebalance before the next
    // message would take the partition for one without a committed offset (placeStarts) and read
    // what was just counted as skipped. Where it resumed is committed instead.
    if (latest && resumedAt !== null && consumer === this.consumer && this.assigned.has(key) && this.state === 'running') {
      consumer.seek({ topic, partition, offset: resumedAt.toString() });
      this.resumeAt.set(key, resumedAt);
    }
    // The database's progress moves with the reset: left behind, the next assignment would take
    // the skip for a database gone back in time and read again what was just counted as skipped.
    if (resumedAt !== null && consumer === this.consumer && this.assigned.has(key)) await this.saveMove(topic, partition, resumedAt);
    this.metrics.kafkaOffsetResets.inc({ topic, partition: String(partition), reason });
    if (skipped !== null && skipped > 0n) this.metrics.kafkaOffsetsSkipped.inc({ topic, partition: String(partition) }, Number(skipped));
    const what =
      reason === 'before-log-start'
        ? 'records under the committed offset were deleted (retention or deleteRecords) before they were read'
        : reason === 'past-end'
          ? 'the committed offset is past the end of the log (the topic was truncated, or deleted and recreated)'
          : 'the committed offset is out of range';
    this.log.error(
      {
        topic,
        partition,
        reason,
        committedOffset: committed?.toString() ?? null,
        logStartOffset: low?.toString() ?? null,
        logEndOffset: high?.toString() ?? null,
        resumedAt: resumedAt?.toString() ?? null,
        skipped: skipped === null ? null : Number(skipped),
        offsetReset: this.settings.offsetReset,
      },
      `kafka offset reset: ${what}; the partition resumes at its ${latest ? 'end' : 'first offset still there'} (KAFKA_OFFSET_RESET=${this.settings.offsetReset}), and ${skipped === null ? 'an unknown number of' : skipped} messages are never read`,
    );
  }

  private noBatchInFlight(): Promise<void> {
    if (this.batchesInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Resolves once this member has joined its group (after `start`). */
  whenJoined(): Promise<void> {
    if (this.joined) return Promise.resolve();
    return new Promise((resolve) => this.joinWaiters.push(resolve));
  }

  /** null when consuming normally, else why not (for /readyz). */
  health(): string | null {
    if (this.state !== 'running') return `kafka consumer is ${this.state}`;
    if (this.problem) return `kafka consumer: ${this.problem}`;
    const silent = performance.now() - this.lastContact;
    if (silent > this.contactTimeoutMs) return `kafka consumer: no answer from the broker for ${Math.round(silent / 1000)} s`;
    const stalled = this.stalledPartitions().filter((p) => p.seconds * 1000 >= this.stallTimeoutMs);
    if (stalled.length > 0) {
      // plain words only (letters, digits, dots, parentheses), so /readyz shows it as it is
      const p = stalled.sort((a, b) => b.seconds - a.seconds)[0]!;
      const more = stalled.length > 1 ? ` and ${stalled.length - 1} more` : '';
      return `kafka consumer: partition ${p.partition} of ${p.topic}${more} stalled for ${Math.round(p.seconds)} s (${p.waitingOn ?? 'processing a batch'})`;
    }
    return null;
  }

  /** Every partition with fetched messages not yet committed, and for how long. */
  stalledPartitions(): { topic: string; partition: number; seconds: number; waitingOn: string | null }[] {
    const now = performance.now();
    return [...this.progress.values()]
      .filter((p) => p.pendingSince !== null)
      .map((p) => ({ topic: p.topic, partition: p.partition, seconds: (now - p.pendingSince!) / 1000, waitingOn: p.waitingOn }));
  }

  /** Stops fetching, lets the chunk in flight finish and commit, leaves the group, disconnects. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    this.state = 'stopping';
    // Wakes a partition that waits between retries: its chunk was not committed and will be redelivered.
    this.stopSignal.abort();
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    let left = false;
    const grace = new AbortController();
    const disconnected = this.consumer
      .disconnect()
      .catch((e: unknown) => this.log.warn({ err: e }, 'kafka consumer disconnect failed'))
      .then(() => {
        left = true;
        grace.abort();
      });
    // Once no chunk is in flight, leaving the group gets STOP_COMMIT_GRACE_MS: against a broker
    // out of reach kafkajs retries its fetch for about 15 s before it lets the stop go on.
    await Promise.race([disconnected, this.noBatchInFlight().then(() => sleep(STOP_COMMIT_GRACE_MS, grace.signal))]);
    if (!left) this.log.warn('stopping: the broker did not answer in time; the group reassigns this member\'s partitions when its session expires');
    await this.dlq.disconnect().catch(() => undefined);
    this.state = 'stopped';
    this.metrics.kafkaConsumerLag.reset();
    this.progress.clear();
    this.log.info('kafka consumer stopped');
  }

  private watchEvents(consumer: Consumer): void {
    const { events } = consumer;
    // Events of a consumer replaced after a crash must not speak for the current one.
    const current = () => consumer === this.consumer;
    const touch = () => {
      if (current()) this.lastContact = performance.now();
    };
    consumer.on(events.HEARTBEAT, touch);
    consumer.on(events.FETCH, touch);
    consumer.on(events.COMMIT_OFFSETS, () => {
      touch();
      this.restartDelay = 0;
    });
    consumer.on(events.GROUP_JOIN, (e) => {
      if (!current()) return;
      touch();
      this.problem = null;
      // A partition that moved to another member must not keep reporting this member's lag.
      this.metrics.kafkaConsumerLag.reset();
      const assigned = new Set(Object.entries(e.payload.memberAssignment).flatMap(([t, ps]) => ps.map((p) => `${t}/${p}`)));
      for (const k of this.progress.keys()) if (!assigned.has(k)) this.progress.delete(k);
      this.assigned = assigned;
      const seq = ++this.joinSeq;
      this.log.info({ memberId: e.payload.memberId, assignment: e.payload.memberAssignment }, 'kafka consumer joined its group');
      const joined = () => {
        this.joined = true;
        for (const w of this.joinWaiters.splice(0)) w();
      };
      // A partition this member gave up is placed again if it comes back: others moved it meanwhile.
      for (const k of this.placed) if (!assigned.has(k)) this.placed.delete(k);
      const all = Object.entries(e.payload.memberAssignment).flatMap(([topic, ps]) => ps.map((partition) => ({ topic, partition })));
      const pending = this.settings.offsetReset === 'latest' ? all.filter((p) => !this.placed.has(`${p.topic}/${p.partition}`)) : [];
      // Paused right now, within the join: kafkajs fetches next, from the group's committed
      // offsets (and, with latest, a partition without one from its end), before the database's
      // progress is compared with them.
      for (const [topic, partitions] of byTopic(all)) consumer.pause([{ topic, partitions }]);
      void this.placeStarts(consumer, seq, e.payload.memberAssignment, all, pending)
        .catch((err: unknown) => {
          this.log.error({ err }, 'kafka consumer: could not place the partitions; they start where kafkajs puts them');
          if (consumer === this.consumer && seq === this.joinSeq && this.state === 'running') for (const [topic, partitions] of byTopic(all)) consumer.resume([{ topic, partitions }]);
        })
        .finally(() => {
          if (consumer === this.consumer && seq === this.joinSeq) joined();
        });
    });
    // A leader that assigns the topics it reads to every member (kafkajs' own assigner: an older
    // Earshot, or another kafkajs application sharing KAFKA_GROUP_ID): kafkajs drops the
    // partitions of topics this member does not read, so no one reads them, and the leader's
    // other members may be given none of this member's topics either. Said in the log only, not
    // in /readyz: a rolling deploy from an older release that takes a topic out of KAFKA_TOPICS
    // does this until the old leader is gone, and new replicas that never turn ready would halt it.
    consumer.on(events.RECEIVED_UNSUBSCRIBED_TOPICS, (e) => {
      if (!current()) return;
      const topics = (e.payload as { topicsNotSubscribed: string[] }).topicsNotSubscribed;
      this.log.error(
        { groupId: this.settings.groupId, topics },
        `the consumer group's leader assigned this replica partitions of topics it does not read (${topics.join(', ')}): its leader is a member that assigns by its own topics (another deployment sharing KAFKA_GROUP_ID ${this.settings.groupId}, or an older release during a deploy that changes KAFKA_TOPICS); those partitions, and possibly some of this deployment's, are read by no one meanwhile: give each deployment its own KAFKA_GROUP_ID`,
      );
    });
    consumer.on(events.CRASH, (e) => {
      if (!current()) return;
      // The reason for /readyz names the kind of failure only; the error itself goes to the log.
      // (no semicolon: /readyz shows only plain words and would hide the whole reason)
      this.problem = `crashed (${e.payload.error.name}), restarting`;
      this.log.error({ err: e.payload.error, restart: e.payload.restart }, 'kafka consumer crashed');
      if (causedBy(e.payload.error, 'UNKNOWN_TOPIC_OR_PARTITION')) void this.nameMissingTopics(consumer);
      if (!e.payload.restart) this.scheduleRestart();
    });
    // A fetch of only markers and aborted records is resolved and committed by kafkajs (see
    // runConsumer) without eachBatch: its lag is set here.
    consumer.on(events.END_BATCH_PROCESS, (e) => {
      if (current() && e.payload.batchSize === 0) {
        this.metrics.kafkaConsumerLag.set({ topic: e.payload.topic, partition: String(e.payload.partition) }, Math.max(0, Number(e.payload.offsetLag)));
        this.resumeAt.set(`${e.payload.topic}/${e.payload.partition}`, BigInt(e.payload.lastOffset) + 1n);
        // the database's progress follows, so that the next assignment does not read it again (rewindToDatabase)
        void this.saveMove(e.payload.topic, e.payload.partition, BigInt(e.payload.lastOffset) + 1n);
      }
    });
    consumer.on(events.DISCONNECT, () => {
      if (current() && this.state === 'running' && !this.restartTimer) this.problem = 'disconnected from the broker';
    });
  }

  /**
   * An input topic deleted while consuming makes kafkajs retry its fetch for about 30 s, then
   * crash and restart until the topic is back (the broker drops the group's offsets with the
   * topic, so a recreated topic is read from its start). /readyz names the missing topic.
   */
  private async nameMissingTopics(consumer: Consumer): Promise<void> {
    const admin = this.kafka.admin({ retry: { retries: 1 } });
    try {
      await admin.connect();
      const existing = new Set(await admin.listTopics());
      const missing = this.settings.topics.filter((t) => !existing.has(t));
      if (missing.length === 0 || consumer !== this.consumer || !this.problem?.startsWith('crashed')) return;
      this.problem = `input topic ${missing.join(', ')} does not exist (deleted), waiting for it`;
      this.log.error({ topics: missing }, 'kafka consumer: an input topic does not exist (deleted?); consuming resumes once it is created again');
    } catch (e) {
      this.log.debug({ err: e }, 'could not list the topics');
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  private partitionProgress(topic: string, partition: number): PartitionProgress {
    const key = `${topic}/${partition}`;
    let p = this.progress.get(key);
    if (!p) {
      p = { topic, partition, pendingSince: null, waitingOn: null };
      this.progress.set(key, p);
    }
    return p;
  }

  private async eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, commitOffsetsIfNecessary, heartbeat, isRunning, isStale } = payload;
    const { topic, partition } = batch;
    const control: Control = { isRunning, isStale, heartbeat };
    const highWatermark = BigInt(batch.highWatermark);
    const progress = this.partitionProgress(topic, partition);
    const lag = (next: bigint) => this.metrics.kafkaConsumerLag.set({ topic, partition: String(partition) }, Number(highWatermark > next ? highWatermark - next : 0n));
    if (batch.messages.length === 0) return;
    // Until the first chunk commits, every fetched message counts as lag: a partition stuck
    // on its first chunk must not show the 0 of its last good batch.
    lag(BigInt(batch.messages[0]!.offset));
    progress.pendingSince ??= performance.now();
    for (let i = 0; i < batch.messages.length; i += this.chunkSize) {
      if (!isRunning() || isStale()) return;
      const chunk = batch.messages.slice(i, i + this.chunkSize);
      // The last chunk covers what the fetch held after its last message too: a transaction's
      // commit or abort marker, aborted records (kafkajs leaves those out of batch.messages).
      const final = i + this.chunkSize >= batch.messages.length;
      const lastMessage = chunk[chunk.length - 1]!.offset;
      const last = final && BigInt(batch.lastOffset()) > BigInt(lastMessage) ? batch.lastOffset() : lastMessage;
      const next = BigInt(last) + 1n;
      let result: ChunkResult;
      try {
        result = await this.retrying(topic, partition, control, 'record', () => this.recordChunk(topic, partition, chunk, next));
        // Dead letters are acknowledged before the offset moves past them.
        await this.retrying(topic, partition, control, 'dead-letter', () => this.dlq.send(result.letters));
      } catch (e) {
        if (e instanceof Abandoned) return;
        throw e;
      }
      // Committed with Earshot's mark before kafkajs is told the offset is done (resolveOffset):
      // kafkajs commits every resolved offset not yet committed whenever any partition's batch
      // ends, without metadata, and such a commit landing after this one took the mark away (a
      // restore was then taken for an operator's move: rewindToDatabase). Resolved once committed,
      // it is already kafkajs' committed offset and never sent again.
      const committed = await this.unlessStopWaitsTooLong(commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition, offset: next.toString(), metadata: COMMIT_MARK } as PartitionOffset] }] }));
      this.count(topic, result);
      if (!committed) {
        this.log.warn({ topic, partition, offset: next.toString() }, 'stopping: the broker did not take the offset commit in time; the chunk is stored and will be read again and ignored as known');
        return;
      }
      resolveOffset(last);
      this.resumeAt.set(`${topic}/${partition}`, next);
      lag(next);
      progress.pendingSince = i + this.chunkSize < batch.messages.length ? performance.now() : null;
      progress.waitingOn = null;
      // Leaving anyway: a heartbeat to a broker out of reach would hold the stop for kafkajs' retries.
      if (this.stopSignal.signal.aborted) return;
      await heartbeat();
    }
  }

  /**
   * Awaits a request to the broker; once stop() is called, for at most STOP_COMMIT_GRACE_MS more.
   * Against a broker out of reach, kafkajs retries an offset commit for about 15 s (and the
   * heartbeat after it as long again), so a stop took 30 s, past EARSHOT_SHUTDOWN_TIMEOUT_MS.
   * False when given up: the chunk's transaction has committed, so its messages, read again by
   * the next owner, are ignored as known.
   */
  private async unlessStopWaitsTooLong(request: Promise<unknown>): Promise<boolean> {
    const signal = this.stopSignal.signal;
    let timer: NodeJS.Timeout | undefined;
    let arm: (() => void) | undefined;
    const givenUp = new Promise<false>((resolve) => {
      arm = () => {
        timer = setTimeout(() => resolve(false), STOP_COMMIT_GRACE_MS);
      };
      if (signal.aborted) arm();
      else signal.addEventListener('abort', arm, { once: true });
    });
    try {
      const done = await Promise.race([request.then(() => true as const), givenUp]);
      // kafkajs goes on retrying in the background: its failure is of no interest any more
      if (!done) request.catch(() => undefined);
      return done;
    } finally {
      if (timer) clearTimeout(timer);
      if (arm) signal.removeEventListener('abort', arm);
    }
  }

  private count(topic: string, r: ChunkResult): void {
    this.metrics.kafkaMessages.inc({ topic, result: 'accepted' }, r.accepted);
    this.metrics.kafkaMessages.inc({ topic, result: 'duplicate' }, r.duplicates);
    this.metrics.kafkaMessages.inc({ topic, result: 'dead_letter' }, r.letters.length);
    this.metrics.ingested.inc({ channel: 'kafka', result: 'accepted' }, r.accepted);
    this.metrics.ingested.inc({ channel: 'kafka', result: 'duplicate' }, r.duplicates);
    this.metrics.ingested.inc({ channel: 'kafka', result: 'rejected' }, r.letters.length);
  }

  /**
   * Validates a chunk and records its valid messages in one transaction, with `next` as the
   * partition's progress in the database (kafka_progress); throws only transient errors.
   */
  private async recordChunk(topic: string, partition: number, chunk: KafkaMessage[], next: bigint): Promise<ChunkResult> {
    const letters: DeadLetter[] = [];
    const valid: { message: KafkaMessage; parsed: InteractionMessage }[] = [];
    for (const message of chunk) {
      repairHeaders(message);
      const value = message.value;
      const undecodable = header(message, UNDECODABLE_HEADER);
      if (undecodable !== null) {
        letters.push({ topic, partition, message, kind: 'undecodable-batch', reason: `${undecodable} (batch offsets ${header(message, UNDECODABLE_BATCH_HEADER) ?? '?'})` });
      } else if (value === null || value.length === 0) {
        letters.push({ topic, partition, message, kind: 'empty', reason: 'the message has no value' });
      } else if (value.length > this.settings.maxMessageBytes) {
        letters.push({ topic, partition, message, kind: 'too-large', reason: `the message is ${value.length} bytes, over the limit of ${this.settings.maxMessageBytes} (KAFKA_MAX_MESSAGE_BYTES)` });
      } else {
        const r = parseMessage(value, this.limits);
        if (r.ok) valid.push({ message, parsed: r.message });
        else letters.push({ topic, partition, message, kind: r.kind, reason: r.error });
      }
    }
    const end = this.metrics.ingestBatchDuration.startTimer();
    const out = await this.recordIsolating(topic, partition, valid, letters, next);
    end();
    // Letters in offset order make the DLQ read like the input.
    letters.sort((a, b) => (BigInt(a.message.offset) < BigInt(b.message.offset) ? -1 : 1));
    return { ...out, letters };
  }

  /**
   * Records the items through the isolating wrapper: a message the pipeline refuses for its
   * content is found by bisection and dead-lettered alone; retriable failures are thrown.
   */
  private async recordIsolating(
    topic: string,
    partition: number,
    items: { message: KafkaMessage; parsed: InteractionMessage }[],
    letters: DeadLetter[],
    next: bigint,
  ): Promise<{ accepted: number; duplicates: number }> {
    // Dead letters move the progress too: a chunk of letters only, read again after a restart,
    // would be taken for what the database lost.
    if (items.length === 0) {
      await this.stored.save(topic, partition, next);
      return { accepted: 0, duplicates: 0 };
    }
    // The whole chunk in one transaction carries its progress; when it was split (a message
    // refused, a statement timeout), the progress is saved once every part has committed.
    let savedWithChunk = false;
    const saveProgress = (qr: QueryRunner) => this.stored.save(topic, partition, next, qr);
    const persist = (part: { message: KafkaMessage; parsed: InteractionMessage }[]) => {
      const whole = part.length === items.length;
      // The chunk continues the trace of its first traced message; the others are links.
      const contexts = part.map((i) => contextFromHeaders(i.message.headers as Record<string, unknown>)).filter((c) => trace.getSpanContext(c));
      return inSpan(
        `${topic} process`,
        {
          kind: SpanKind.CONSUMER,
          parent: contexts[0] ?? ROOT_CONTEXT,
          links: contexts.slice(1).map((c) => ({ context: trace.getSpanContext(c)! })),
          attributes: { 'messaging.system': 'kafka', 'messaging.operation.type': 'process', 'messaging.destination.name': topic, 'messaging.destination.partition.id': String(partition), 'messaging.batch.message_count': part.length },
        },
        () =>
          this.recorder.record(part.map((i) => i.parsed), whole ? saveProgress : undefined).then((r) => {
            if (whole) savedWithChunk = true;
            return r;
          }),
      );
    };
    const out = await persistIsolating(items, persist);
    if (!savedWithChunk) await this.stored.save(topic, partition, next);
    for (const r of out.rejected) {
      letters.push({ topic, partition, message: items[r.index]!.message, kind: r.sqlState ? 'rejected-by-database' : 'unprocessable', reason: r.error });
    }
    if (out.timeoutSplits > 0) {
      this.log.warn({ topic, partition, messages: items.length, splits: out.timeoutSplits, attempts: out.attempts }, "the chunk ran past the database's statement_timeout and was stored in smaller parts");
    }
    if (out.rejected.length > 0) {
      this.log.warn({ topic, partition, offsets: out.rejected.map((r) => items[r.index]!.message.offset), attempts: out.attempts }, 'messages refused by the pipeline were isolated and dead-lettered');
    }
    return { accepted: out.accepted, duplicates: out.duplicates };
  }

  /** Runs `fn` until it succeeds, waiting with exponential backoff and jitter between attempts. */
  private async retrying<T>(topic: string, partition: number, control: Control, what: string, fn: () => Promise<T>): Promise<T> {
    let delay = this.retryInitialMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const out = await fn();
        if (attempt > 1) {
          this.problem = null;
          this.log.info({ topic, partition, attempts: attempt }, `${what} succeeded after transient failures; partition resumes`);
        }
        return out;
      } catch (e) {
        if (!control.isRunning() || control.isStale() || this.stopSignal.signal.aborted) throw new Abandoned();
        this.metrics.kafkaRetries.inc({ topic });
        this.partitionProgress(topic, partition).waitingOn =
          what === 'dead-letter'
            ? e instanceof DeadLetterTopicMissing
              ? `dead-letter topic ${e.topic} does not exist, create it`
              : 'broker refuses dead letters, retrying'
            : isStatementTimeout(e)
              ? // short, and only the characters /readyz shows (publicReason in src/http/http-server.ts)
                'statement_timeout exceeded by one message, retrying'
              : failureSqlState(e) === '55P03'
                ? 'table locked by another session, retrying'
                : isTransient(e)
                  ? `${unavailableReason(e)}, retrying`
                  : isRetriable(e)
                  ? 'database unavailable or busy, retrying'
                  : 'unexpected error, retrying';
        const wait = Math.round(delay * (0.75 + Math.random() * 0.5));
        const log = attempt === 1 || attempt % 10 === 0 ? this.log.warn.bind(this.log) : this.log.debug.bind(this.log);
        log({ err: e, topic, partition, attempt, waitMs: wait }, `${what} failed transiently; partition pauses and retries`);
        await sleep(wait, this.stopSignal.signal);
        if (this.stopSignal.signal.aborted) throw new Abandoned();
        // Keeps group membership through a long outage; throws when a rebalance took the partition.
        await control.heartbeat();
        delay = Math.min(delay * 2, this.retryMaxMs);
      }
    }
  }
}

/**
 * kafkajs 2.2.4 builds a record's headers on a plain object and takes a key the object already
 * answers (`constructor`, `toString`, `__proto__` …) for a repeated header: its value arrives as
 * [Object, <bytes>]. The dead-letter producer could not encode that function, and the letter of
 * such a message was retried for ever while its partition stalled. Only the bytes are kept.
 */
function repairHeaders(message: KafkaMessage): void {
  const headers = message.headers;
  if (!headers) return;
  for (const k of Object.keys(headers)) {
    const v = headers[k];
    if (!Array.isArray(v)) continue;
    const bytes = v.filter((x) => Buffer.isBuffer(x) || typeof x === 'string');
    if (bytes.length < v.length) headers[k] = bytes.length === 1 ? bytes[0] : bytes;
  }
}

function byTopic(partitions: { topic: string; partition: number }[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const p of partitions) out.set(p.topic, [...(out.get(p.topic) ?? []), p.partition]);
  return out;
}

/** Whether `error` or one of its causes is a Kafka protocol error of this type. */
function causedBy(error: unknown, type: string): boolean {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { type?: unknown }).type === type) return true;
  }
  return false;
}

function header(message: KafkaMessage, name: string): string | null {
  const v = message.headers?.[name];
  if (v === undefined || v === null) return null;
  const one = Array.isArray(v) ? v[0] : v;
  return one === undefined ? null : Buffer.isBuffer(one) ? one.toString('utf8') : String(one);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

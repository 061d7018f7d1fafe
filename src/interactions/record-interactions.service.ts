import type { DataSource, QueryRunner } from 'typeorm';
import type { Config } from '../config/config';
import { sqlState } from '../db/failures';
import { inTransaction } from '../db/transaction';
import { authorIdentities, type IdentityClaim } from '../identity/author-identities';
import { configuredKeyOptions, type IdentityKeyOptions } from '../identity/normalize';
import { resolveAuthors, type HubCapped } from '../identity/author-resolution';
import { enqueueOutbox } from '../outbox/outbox';
import { refreshCustomerSummaries, sumRollups, writeRollups } from '../sentiment/rollups';
import type { Logger } from '../shared/logger';
import type { Analysis } from '../sentiment/analyzer';
import type { TaxonomyService } from '../sentiment/taxonomy.service';
import { SentimentScorer } from '../sentiment/sentiment.scorer';
import { type GapFollowUp, type ListeningGapTracker, type TrackedMessage } from '../listening-gap/listening-gap.tracker';
import { authorKeyOf, recipientOf } from '../listening-gap/recipient';
import type { InteractionMessage } from './interaction-message';
import { insertInteractions, insertTopicTags, isDeletedTopic, isStoredMeanwhile, limitLockWait, storedKeys, type NewInteractionRow } from './interaction.repository';
import { uuidv7 } from '../shared/uuidv7';

export type RecordStatus = 'accepted' | 'duplicate';

export interface RecordOutcome {
  accepted: number;
  duplicates: number;
  /** per input message, in input order */
  statuses: RecordStatus[];
  /** ids of the accepted interactions */
  interactionIds: string[];
}

interface Prepared {
  index: number;
  id: string;
  message: InteractionMessage;
  analysis: Analysis;
  claims: IdentityClaim[];
  customerId: string | null;
  identityId?: string | null;
}

/** A batch analyzed outside the transaction, ready for `store`. */
export interface AnalyzedBatch {
  size: number;
  statuses: readonly RecordStatus[];
  unique: readonly Prepared[];
  topicIds: Map<string, number>;
  departmentIds: Map<string, number>;
}

/**
 * The one write path of every ingest channel (HTTP, GraphQL, Kafka): dedupe, analyze,
 * attach to a customer, persist the interaction, its topics, the rollups and the outbox
 * rows in one transaction.
 *
 * Must stay true: a message whose (source, externalId) is already stored changes nothing;
 * two concurrent batches never create two customers for one identity; everything that
 * leaves the service is written to the outbox in the same transaction.
 */
export class RecordInteractionsService {
  constructor(
    private readonly ds: DataSource,
    private readonly taxonomy: TaxonomyService,
    private readonly config: Pick<Config, 'identity' | 'publicUrl'> & Partial<Pick<Config, 'ingestLockTimeoutMs'>>,
    private readonly log: Logger,
    /** opens, reopens and answers listening-gap items in the same transaction; off when absent */
    private readonly gap: ListeningGapTracker | null = null,
    /** built-in model, or the team's model server with the built-in as fallback */
    private readonly scorer: SentimentScorer = new SentimentScorer(taxonomy, null, log),
  ) {
    this.identityOptions = configuredKeyOptions(config.identity);
  }

  /** how author identities are normalized (EARSHOT_IDENTITY_*): what makes two authors one person */
  readonly identityOptions: IdentityKeyOptions;

  /** told how many authors the hub cap kept apart in a committed batch (a metric) */
  onHubCapped: ((authors: number) => void) | null = null;

  /** `alsoInTransaction`: the caller's own write (the Kafka consumer's progress), committed with the batch or not at all. */
  async record(messages: InteractionMessage[], alsoInTransaction?: (qr: QueryRunner) => Promise<void>): Promise<RecordOutcome> {
    return this.store(await this.analyze(messages), alsoInTransaction);
  }

  /**
   * The first half of `record`, outside any transaction: dedupe within the batch, analysis,
   * identity claims. A caller may analyze the next batch while the one before is stored
   * (`store`), which keeps batches stored in order.
   */
  async analyze(messages: InteractionMessage[]): Promise<AnalyzedBatch> {
    const statuses: RecordStatus[] = new Array(messages.length).fill('duplicate');
    const loaded = await this.taxonomy.current();

    const seen = new Set<string>();
    const firsts: { message: InteractionMessage; index: number }[] = [];
    messages.forEach((message, index) => {
      const key = `${message.source}\u0000${message.externalId}`;
      if (seen.has(key)) return;
      seen.add(key);
      firsts.push({ message, index });
    });
    if (firsts.length === 0) return { size: messages.length, statuses, unique: [], topicIds: loaded.topicIds, departmentIds: loaded.departmentIds };
    // One call per batch, before the transaction: a model server may take its time, a lock must not.
    const analyses = await this.scorer.analyzeBatch(
      firsts.map(({ message: m }) => ({
        text: m.text,
        lang: m.lang,
        rating: m.rating,
        ratingScale: typeof m.metadata?.ratingScale === 'number' ? m.metadata.ratingScale : undefined,
      })),
      loaded,
    );
    const unique: Prepared[] = firsts.map(({ message, index }, i) => ({
      index,
      id: uuidv7(),
      message,
      analysis: analyses[i]!,
      claims: authorIdentities(message, this.identityOptions),
      customerId: null,
    }));
    return { size: messages.length, statuses, unique, topicIds: loaded.topicIds, departmentIds: loaded.departmentIds };
  }

  /** The second half of `record`: one transaction that stores an analyzed batch. */
  async store(batch: AnalyzedBatch, alsoInTransaction?: (qr: QueryRunner) => Promise<void>): Promise<RecordOutcome> {
    const statuses = [...batch.statuses];
    if (batch.unique.length === 0) {
      if (alsoInTransaction) await inTransaction(this.ds, alsoInTransaction);
      return { accepted: 0, duplicates: batch.size, statuses, interactionIds: [] };
    }
    let accepted: Prepared[];
    let followUp: GapFollowUp | null = null;
    let { topicIds, departmentIds } = batch;
    const capped: HubCapped[] = [];
    for (let attempt = 1; ; attempt++) {
      // fresh Prepared objects: a retried batch must not see customer ids of a rolled-back try
      const unique = batch.unique.map((p) => ({ ...p, customerId: null, identityId: undefined }));
      capped.length = 0;
      try {
        ({ accepted, followUp } = await inTransaction(this.ds, async (qr) => {
          const out = await this.persist(qr, unique, topicIds, departmentIds, capped);
          // also when every message was stored before (a batch read again): its transaction is open anyway
          if (alsoInTransaction) await alsoInTransaction(qr);
          return out;
        }));
        break;
      } catch (e) {
        // a concurrent writer stored one of these meanwhile: the next try leaves it out as stored
        if (attempt < 5 && isStoredMeanwhile(e)) {
          this.log.info({ attempt }, 'another writer stored one of the batch meanwhile; storing the batch again without it');
          continue;
        }
        // chosen as a deadlock's victim (or a serialization failure): the other transaction goes
        // on, and this one, rolled back whole, can simply run again after a short, jittered wait
        if (attempt < 5 && isLockConflict(e)) {
          this.log.info({ attempt, sqlState: sqlState(e) }, 'the batch lost a lock conflict; storing it again');
          await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 20 * attempt));
          continue;
        }
        // another replica deleted a topic this process still had cached (for up to 10 s): the
        // next try tags with the taxonomy as it is now, and the matches of that topic go untagged
        if (attempt < 5 && isDeletedTopic(e)) {
          this.log.info({ attempt }, 'a topic of the cached taxonomy was deleted meanwhile; storing the batch again with the taxonomy reloaded');
          this.taxonomy.invalidate();
          ({ topicIds, departmentIds } = await this.taxonomy.current());
          continue;
        }
        throw e;
      }
    }
    for (const p of accepted) statuses[p.index] = 'accepted';
    // After the commit: a reply and a complaint stored at the same moment by another transaction
    // (another partition, another request) did not see each other (ListeningGapTracker.settle). Only
    // for a batch with new items still unanswered or with replies; the batch is stored whatever it
    // finds, and an item it leaves open is checked again before it is escalated.
    if (this.gap && followUp) {
      try {
        await this.gap.settle(this.ds, followUp, { lockTimeoutMs: this.config.ingestLockTimeoutMs });
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'the listening-gap check after the commit failed; the escalation job checks the items again');
      }
    }
    if (capped.length > 0) {
      // ids only (no address in the log); each pair is a pending merge suggestion
      this.log.warn({ authors: capped.length, hubCap: this.config.identity.hubCap, first: capped[0] }, 'authors naming an email or phone of a customer at the hub cap kept apart for review');
      this.onHubCapped?.(capped.length);
    }
    return {
      accepted: accepted.length,
      duplicates: batch.size - accepted.length,
      statuses,
      interactionIds: accepted.map((p) => p.id),
    };
  }

  private async persist(
    qr: QueryRunner,
    batch: Prepared[],
    topicIds: Map<string, number>,
    departmentIds: Map<string, number>,
    capped: HubCapped[],
  ): Promise<{ accepted: Prepared[]; followUp: GapFollowUp | null }> {
    // an operator's lock (VACUUM FULL, ALTER TABLE) fails the batch as retriable after this long
    if (this.config.ingestLockTimeoutMs) await limitLockWait(qr, this.config.ingestLockTimeoutMs);
    const existing = await storedKeys(qr, batch.map((p) => p.message.source), batch.map((p) => p.message.externalId));
    const stored = new Set(existing.map((r) => `${r.source}\u0000${r.external_id}`));
    const fresh = batch.filter((p) => !stored.has(`${p.message.source}\u0000${p.message.externalId}`));
    if (fresh.length === 0) return { accepted: [], followUp: null };

    capped.push(...(await resolveAuthors(qr, fresh, this.config)).hubCapped);
    const gapPlan = this.gap ? await this.gap.plan(qr, fresh.map((p) => tracked(p, this.identityOptions))) : null;

    const rows = fresh.map((p): NewInteractionRow => {
      const m = p.message;
      const a = p.analysis;
      return {
        id: p.id,
        event_id: m.eventId ?? null,
        source: m.source,
        external_id: m.externalId,
        url: m.url ?? null,
        text: m.text,
        occurred_at: new Date(m.occurredAt).toISOString(),
        direction: m.direction,
        in_reply_to: m.inReplyTo ?? null,
        author_handle: m.author.handle ?? null,
        author_display_name: m.author.displayName ?? null,
        lang: a.lang,
        rating: m.rating ?? null,
        metadata: m.metadata ?? null,
        sentiment_score: a.score,
        sentiment_label: a.label,
        sentiment_confidence: a.confidence,
        intent: a.intent,
        intent_confidence: a.intentConfidence,
        explanation: a.explanation,
        customer_id: p.customerId,
        thread_key: gapPlan?.threadKeys.get(p.id) ?? null,
        identity_id: p.identityId ?? null,
        sentiment_model: a.model,
        complaint: a.complaint,
        complaint_probability: a.complaintProbability,
        unhappy: a.unhappy,
        recipient_key: gapPlan?.recipientKeys.get(p.id) ?? null,
      };
    });
    // all of them or none (a unique violation: `store` runs the batch again)
    await insertInteractions(qr, rows);
    const accepted = fresh;

    const topicRows = accepted.flatMap((p) =>
      p.analysis.topics.filter((t) => topicIds.has(t.name)).map((t) => [p.id, topicIds.get(t.name)!, t.matched] as const),
    );
    if (topicRows.length > 0) {
      await insertTopicTags(qr, topicRows);
    }

    if (this.gap && gapPlan) await this.gap.write(qr, gapPlan, new Set(accepted.map((p) => p.id)));
    const rollups = sumRollups(
      accepted.map((p) => ({
        customerId: p.customerId,
        occurredAt: Date.parse(p.message.occurredAt),
        direction: p.message.direction,
        score: p.analysis.score,
        label: p.analysis.label,
        topicIds: p.analysis.topics.map((t) => topicIds.get(t.name)).filter((t) => t !== undefined),
        departmentIds: p.analysis.topics.filter((t) => topicIds.has(t.name)).map((t) => departmentIds.get(t.department)).filter((d) => d !== undefined),
      })),
    );
    const { lastSeen, added, days } = rollups;
    await refreshCustomerSummaries(qr, [...lastSeen.keys()], lastSeen, { returning: false, added, days });
    // near the end: the (department, day) and (topic, day) rows are shared by every batch of the
    // day, so their locks are held only for the outbox row and the commit (rollups.ts, sumRollups)
    await writeRollups(qr, rollups);
    // last: the row's id (the relay's order) and created_at (the publish delay's start) are taken
    // as close to the commit as the transaction can
    await enqueueOutbox(qr, { interactionIds: accepted.map((p) => p.id), customerIds: [...lastSeen.keys()], publicUrl: this.config.publicUrl });
    return { accepted, followUp: gapPlan?.followUp ?? null };
  }
}

function tracked(p: Prepared, identity: IdentityKeyOptions): TrackedMessage {
  const m = p.message;
  return {
    id: p.id,
    source: m.source,
    externalId: m.externalId,
    inReplyTo: m.inReplyTo ?? null,
    direction: m.direction,
    occurredAt: Date.parse(m.occurredAt),
    authorKey: authorKeyOf(m, identity),
    recipientKey: m.direction === 'outbound' ? recipientOf(m, identity) : null,
    intent: p.analysis.intent,
    score: p.analysis.score,
    unhappy: p.analysis.unhappy,
    customerId: p.customerId,
    departments: p.analysis.topics.map((t) => t.department),
  };
}

/** deadlock_detected, serialization_failure: the transaction was rolled back and may run again */
function isLockConflict(e: unknown): boolean {
  const code = sqlState(e);
  return code === '40P01' || code === '40001';
}

import type { DataSource, QueryRunner } from 'typeorm';
import type { Config } from '../config/config';
import { isTransient, PauseBudget, unavailableReason } from '../db/failures';
import { inTransaction } from '../db/transaction';
import { lockCustomers } from '../identity/merge';
import { configuredKeyOptions } from '../identity/normalize';
import type { ListeningGapTracker, RescoredMessage } from '../listening-gap/listening-gap.tracker';
import { participantKey } from '../listening-gap/recipient';
import { enqueueOutbox } from '../outbox/outbox';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import { outsideRequest } from '../shared/request-context';
import type { Analysis } from './analyzer';
import { advisoryUnlock, keepWhileIdle, restoreIdleTimeout } from '../db/sql';
import { JobTakenOver } from '../shared/job-taken-over';
import {
  activeRescoreJobId,
  addRescoreProgress,
  customerSummaries,
  enqueueCrmWriteback,
  hasActiveRescoreJob,
  insertRescoreJob,
  lockUnredacted,
  markRescoreFailed,
  markRescoreRollupsPhase,
  markRescoreRunning,
  markRescoreSucceeded,
  nextRescoreJob,
  rescoreJobById,
  rescoreJobTotals,
  storedPage,
  updateScores,
  type RescoreJobRow,
  type StoredRow,
} from './rescore.repository';
import { countInteractions, tryRunnerLock } from './retag.repository';
import { rebuildDepartmentRollups, rebuildTopicRollups } from './rollups.repository';
import { applyRollups, rebuildCustomerRollups, storedContributions } from './rollups';
import type { SentimentScorer } from './sentiment.scorer';
import type { TaxonomyService } from './taxonomy.service';

export type { RescoreJobRow } from './rescore.repository';

/** pg_try_advisory_lock key: one re-score runner across all replicas */
const RUNNER_LOCK = 7_041_977;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The job was marked failed: nothing to resume. */
class RescoreFailed extends Error {}

/**
 * Re-scores every stored interaction with the current model (built-in, or the model server of
 * EARSHOT_SENTIMENT_URL with the built-in as fallback), in keyset pages by id. Each page commits
 * in one transaction: the interactions' score, label, confidence, intent, explanation and model;
 * the customers' daily rollups and summaries (the CRM write-back triggers see the change, and
 * customer-sentiment.v1 gets an event per changed summary); listening items for messages that
 * became unhappy; and the job's cursor. Department and topic rollups are rebuilt when the pages
 * are done, as the re-tag job does.
 *
 * Must stay true: one job is active at a time (a unique index; a second start is CONFLICT) and one
 * replica runs it (an advisory lock; should its session end mid-job and another replica take the
 * job over, each page still commits once: a page commits only if the job's cursor is still where
 * the page began); a job cut short (crash, deploy) resumes after its last
 * committed page at the next start; a database failure that passes by itself (isTransient: a
 * lost connection, an operator's idle_session_timeout ending a pooled session as a statement takes
 * it up) pauses the job: it resumes after its last committed page `retryMs` later (failed after
 * 12 pauses in a row without a page done: one that does not pass, PauseBudget);
 * running it again with the same model changes nothing; an answered or closed listening item is
 * never reopened; an interaction erased or redacted by retention (before the job or while its
 * page is scored) keeps the analysis it had, and no summary is rebuilt without its customer's lock.
 */
export class RescoreJobRunner {
  private running: Promise<void> | null = null;
  /** database failures that pass by themselves, since the last page this runner committed */
  readonly pauses = new PauseBudget();
  private kickedWhileRunning = false;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly ds: DataSource,
    private readonly taxonomy: TaxonomyService,
    private readonly scorer: SentimentScorer,
    private readonly gap: ListeningGapTracker,
    private readonly config: Pick<Config, 'publicUrl' | 'identity'> & { sentiment: { rescoreBatchSize: number } },
    private readonly log: Logger,
    /** how soon a replica that found the runner lock taken looks again while a job is active */
    private readonly retryMs = 5_000,
  ) {}

  /** Queues a job and starts it in the background; CONFLICT while another is queued or running. */
  async start(actor: string, openItemsSince: Date | null = null): Promise<RescoreJobRow> {
    const job = await insertRescoreJob(this.ds, actor, openItemsSince?.toISOString() ?? null);
    // a new job, or an active one that may be an orphan of a dead replica: make sure someone works on it
    this.kick();
    if (!job) {
      const active = await activeRescoreJobId(this.ds);
      throw new AppError('CONFLICT', 'a re-score job is already active', active ? { jobId: active } : undefined);
    }
    return job;
  }

  async get(id: string): Promise<RescoreJobRow> {
    if (!UUID_RE.test(id)) throw AppError.badInput(`invalid job id: ${JSON.stringify(id)}`);
    const job = await rescoreJobById(this.ds, id);
    if (!job) throw AppError.notFound(`re-score job ${id}`);
    return job;
  }

  /** Starts working through the active job unless this process already is. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      // the drain under way may have looked for jobs before this one was committed
      this.kickedWhileRunning = true;
      return;
    }
    this.running = outsideRequest(() => this.drain())
      .catch((err: unknown) => {
        if (err instanceof RescoreFailed || !isTransient(err)) {
          this.log.error({ err }, 're-scoring stopped on an error');
          return;
        }
        // A lost connection (an operator's idle_session_timeout ending a pooled session as a
        // statement took it up, a restart), a read-only or busy database: the job is not failed
        // but resumes after its last committed page. Before, it was marked failed ("terminating
        // connection due to idle-session timeout") or, when it failed before its first page,
        // left queued with no runner.
        this.log.warn({ err, reason: unavailableReason(err), retryInMs: this.retryMs }, 're-scoring paused on a database failure; it resumes after its last committed page');
        this.retryLater();
      })
      .finally(() => {
        this.running = null;
        if (this.kickedWhileRunning) {
          this.kickedWhileRunning = false;
          this.kick();
        }
      });
  }

  /**
   * Resolves once this process has no re-score work in hand: the job it runs has ended (or paused
   * on a database failure, to resume on its timer). For tests, which wait for it instead of polling.
   */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Lets the current page finish; an unfinished job resumes at the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.running;
  }

  private retryLater(): void {
    if (this.stopped) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.kick(), this.retryMs);
    this.retry.unref();
  }

  private async drain(): Promise<void> {
    const qr = this.ds.createQueryRunner();
    await qr.connect();
    try {
      // The lock session sits idle for the whole job: an operator's idle_session_timeout must not
      // end it (and hand the job to another replica mid-page).
      await keepWhileIdle(qr);
      if (!(await tryRunnerLock(qr, RUNNER_LOCK))) {
        // Another replica runs it, or a crashed one whose session PostgreSQL has not ended yet:
        // look again later, so the job never waits for the next deploy.
        if (await hasActiveRescoreJob(qr)) this.retryLater();
        return;
      }
      try {
        for (;;) {
          if (this.stopped) return;
          const job = await nextRescoreJob(qr);
          if (!job) return;
          try {
            await this.run(job);
          } catch (err) {
            if (!(err instanceof JobTakenOver)) throw err;
            // Our lock session ended (an operator's reaper, a proxy) and another runner has the
            // job: leave it to that one, and look again later in case it dies too.
            this.log.warn({ job: job.id }, 're-score taken over by another runner; this one stops');
            this.retryLater();
            return;
          }
        }
      } finally {
        // A lock session that was lost took its lock with it (and its query runner is released):
        // an unlock there would only hide why the job stopped.
        if (!qr.isReleased) await advisoryUnlock(qr, RUNNER_LOCK);
      }
    } finally {
      await restoreIdleTimeout(qr).catch(() => undefined);
      await qr.release();
    }
  }

  private async run(job: RescoreJobRow): Promise<void> {
    const log = this.log.child({ job: job.id });
    try {
      if (job.status === 'queued') {
        const n = await countInteractions(this.ds);
        await markRescoreRunning(this.ds, job.id, n);
        log.info({ total: n, external: this.scorer.external }, 're-scoring stored interactions');
      } else {
        log.info({ done: job.done, total: job.total, after: job.last_id, phase: job.phase }, 're-score resumed');
      }
      const openSince = job.open_items_since ? new Date(job.open_items_since).getTime() : null;
      let cursor = job.last_id;
      while (job.phase === 'interactions') {
        if (this.stopped) return;
        const rows = await storedPage(this.ds, cursor ?? '00000000-0000-0000-0000-000000000000', this.config.sentiment.rescoreBatchSize);
        if (rows.length === 0) {
          await markRescoreRollupsPhase(this.ds, job.id);
          job.phase = 'rollups';
          break;
        }
        // Scored before the transaction: a model server may take its time, a lock must not.
        // A redacted row (erased, or past retention) has no text left: it keeps the analysis it
        // had, which its rollups and counts still hold.
        const loaded = await this.taxonomy.current();
        const scored = rows.filter((r) => !r.redacted);
        const results =
          scored.length === 0
            ? []
            : await this.scorer.analyzeBatch(
                scored.map((r) => ({ text: r.text, lang: r.lang === 'und' ? null : r.lang, rating: r.rating, ratingScale: r.rating_scale ?? undefined })),
                loaded,
              );
        const analysisOf = new Map(scored.map((r, i) => [r.id, results[i]!]));
        const analyses = rows.map((r) => analysisOf.get(r.id) ?? null);
        const from = cursor;
        await withRetry(() => inTransaction(this.ds, (qr) => this.applyPage(qr, job, from, rows, analyses, openSince, loaded.topics)));
        cursor = rows.at(-1)!.id;
        this.pauses.progressed();
      }
      if (job.phase === 'rollups') {
        await rebuildDepartmentRollups(this.ds);
        await rebuildTopicRollups(this.ds);
      }
      await markRescoreSucceeded(this.ds, job.id);
      this.pauses.progressed();
      const done = await rescoreJobTotals(this.ds, job.id);
      log.info({ ...done }, 're-score finished; rollups rebuilt');
    } catch (err) {
      // the job is another runner's now: its status is not ours to write; a database failure that
      // passes by itself pauses the job (drain's caller looks again later) instead of failing it
      if (err instanceof JobTakenOver) throw err;
      if (this.pauses.pauses(err)) throw err;
      // A failure that does not pass, or one that came back page after page (a page that always
      // runs past statement_timeout, a database read-only for good): failed, not paused forever.
      const message = this.pauses.failure(err);
      await markRescoreFailed(this.ds, job.id, message);
      throw new RescoreFailed(message, { cause: err });
    }
  }

  /** One page, in one transaction: rows, rollups, items, outbox and the cursor move together. */
  private async applyPage(
    qr: QueryRunner,
    job: RescoreJobRow,
    /** the job's cursor where this page begins (null: the first page) */
    from: string | null,
    rows: StoredRow[],
    /** each row's new analysis; null for a redacted row, which is left as it is */
    analyses: (Analysis | null)[],
    openSince: number | null,
    topics: { name: string; department: string }[],
  ): Promise<void> {
    // counted in a Map: a model server may name its model anything, and in a plain object
    // `constructor` counted on from Object's function (the job failed on the sum in SQL) and
    // `__proto__` was not counted at all
    const counts = new Map<string, number>();
    for (const a of analyses) if (a) counts.set(a.model, (counts.get(a.model) ?? 0) + 1);
    const models: Record<string, number> = Object.fromEntries(counts);
    let changed = rows.flatMap((r, i) => {
      const a = analyses[i];
      return a && differs(r, a) ? [{ row: r, a }] : [];
    });

    let itemsOpened = 0;
    let customersUpdated = 0;
    if (changed.length > 0) {
      // Customers first, in the order every writer takes them (ingest, merges), then their rows.
      const owners = [...new Set(changed.map((c) => c.row.customer_id).filter((id): id is string => id !== null))];
      if (owners.length > 0) await lockCustomers(qr, owners);
      // A row erased (or redacted by retention) since the page was read is left as the erasure
      // left it: its analysis came from the text it no longer has. Before, the page wrote the
      // person's words back as the explanation, and an item opened for their erased customer
      // failed the whole job on its foreign key.
      const live = await lockUnredacted(qr, changed.map((c) => c.row.id));
      changed = changed.filter((c) => live.has(c.row.id));
    }
    if (changed.length > 0) {
      // department and topic rollups follow the scores in this transaction (rollups.ts): the old
      // contributions out before the update, the new ones in after it
      const changedIds = changed.map((c) => c.row.id);
      await applyRollups(qr, await storedContributions(qr, changedIds), -1);
      const updated = await updateScores(qr, changed);
      await applyRollups(qr, await storedContributions(qr, changedIds), 1);
      // the owner now (a merge may have moved a row since it was read; lockCustomers took the survivor too)
      const ownerOf = new Map(updated.map((u) => [u.id, u.customer_id]));
      const customers = [...new Set(updated.filter((u) => u.direction === 'inbound' && u.customer_id).map((u) => u.customer_id!))];
      if (customers.length > 0) {
        // An undo or unlink may have moved a row to a customer not locked above. A rebuild that
        // waited for a batch holding that customer's row read its interactions as of before the
        // batch: its last_interaction_at went back to before the batch's newest message.
        await lockCustomers(qr, customers);
        const before = summaryKeys(await customerSummaries(qr, customers));
        const summaries = await rebuildCustomerRollups(qr, customers);
        const moved = summaries.filter((s) => before.get(s.id) !== summaryKey(s));
        customersUpdated = moved.length;
        await enqueueOutbox(qr, { customerIds: moved.map((s) => s.id), publicUrl: this.config.publicUrl });
      }

      const departmentsOf = new Map(topics.map((t) => [t.name, t.department]));
      const keyOptions = configuredKeyOptions(this.config.identity);
      const rescored: RescoredMessage[] = changed
        .filter((c) => c.row.direction === 'inbound')
        .map(({ row, a }) => ({
          id: row.id,
          source: row.source,
          externalId: row.external_id,
          threadKey: row.thread_key,
          direction: row.direction,
          occurredAt: new Date(row.occurred_at).getTime(),
          // keyed as ingest keys it (EARSHOT_EMAIL_PLUS_ADDRESSING, EARSHOT_DEFAULT_PHONE_REGION): with
          // the defaults, an item a re-score opened met no reply keyed the configured way. A sender
          // without a handle by the e-mail or phone that attached them (ingest: authorKeyOf); before,
          // their item had no author, and replies addressed to the address neither answered nor found it
          authorKey: participantKey(row.source, row.author_handle ?? row.author_address, keyOptions),
          customerId: ownerOf.get(row.id) ?? row.customer_id,
          intent: a.intent,
          score: a.score,
          departments: a.topics.map((t) => departmentsOf.get(t.name)).filter((d): d is string => d !== undefined),
        }));
      const gap = await this.gap.applyRescored(qr, rescored, openSince);
      itemsOpened = gap.opened;

      // The open-complaint count written to CRM records follows intents, not only the summary.
      const touched = [...new Set([...updated.map((u) => u.customer_id), ...gap.customers].filter((id): id is string => id !== null))].sort();
      if (touched.length > 0) {
        await enqueueCrmWriteback(qr, touched);
      }
    }
    const moved = await addRescoreProgress(qr, job.id, from, {
      done: rows.length,
      changed: changed.length,
      itemsOpened,
      customersUpdated,
      lastId: rows.at(-1)!.id,
      models,
    });
    // Another runner did this page (or more) since we read it: roll ours back. Before, both
    // committed it and the counters said 8 of 6 done.
    if (!moved) throw new JobTakenOver('re-score', job.id);
  }
}

/** Whether the stored scores differ from a new analysis (what the re-score writes). */
function differs(r: StoredRow, a: Analysis): boolean {
  return (
    r.sentiment_model !== a.model ||
    r.sentiment_score !== a.score ||
    r.sentiment_label !== a.label ||
    r.sentiment_confidence !== a.confidence ||
    r.intent !== a.intent ||
    r.intent_confidence !== a.intentConfidence ||
    r.complaint !== a.complaint ||
    r.complaint_probability !== a.complaintProbability ||
    r.unhappy !== a.unhappy ||
    r.lang !== a.lang ||
    JSON.stringify(r.explanation.map((e) => [e.token, e.weight])) !== JSON.stringify(a.explanation.map((e) => [e.token, e.weight]))
  );
}

type SummaryLike = { id: string; sentiment_score: number | null; sentiment_label: string | null; sentiment_trend: number | null; interaction_count: number };
const summaryKey = (s: SummaryLike) => JSON.stringify([s.sentiment_score, s.sentiment_label, s.sentiment_trend, s.interaction_count]);
const summaryKeys = (rows: SummaryLike[]) => new Map(rows.map((r) => [r.id, summaryKey(r)]));

/** A deadlock with a concurrent merge or ingest aborts one side; the page is simply done again. */
async function withRetry<T>(fn: () => Promise<T>, attempts = 4): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      const code = (e as { driverError?: { code?: string }; code?: string }).driverError?.code ?? (e as { code?: string }).code;
      if (i >= attempts || (code !== '40P01' && code !== '40001')) throw e;
    }
  }
}

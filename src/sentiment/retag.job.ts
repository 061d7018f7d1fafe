import type { DataSource } from 'typeorm';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import { TaskRunner, type TaskDeps } from '../shared/task-runner';
import { isTransient, PauseBudget, unavailableReason } from '../db/failures';
import { advisoryUnlock, keepWhileIdle, restoreIdleTimeout } from '../db/sql';
import { JobTakenOver } from '../shared/job-taken-over';
import {
  addRetagProgress,
  countInteractions,
  databaseNow,
  hasActiveRetagJob,
  insertRetagJob,
  lockUnredactedForTags,
  markCoveredRetagJobs,
  markRetagFailed,
  markRetagRunning,
  markRetagSucceeded,
  nextRetagJob,
  replaceTags,
  retagJobById,
  taggedChunk,
  tryRunnerLock,
  type RetagJobRow,
} from './retag.repository';
import { applyRollups, storedContributions } from './rollups';
import { MAX_SCORED_CHARS } from './sentiment.engine';
import type { TaxonomyService } from './taxonomy.service';
import { lockLiveTopics } from './taxonomy.repository';

export type { RetagJobRow } from './retag.repository';

const CHUNK = 2000;
/** characters of text one chunk holds at most (topic matching reads MAX_SCORED_CHARS of each) */
const CHUNK_CHARS = 8_000_000;
/** the matching of a chunk gives the event loop a turn after this long */
const SLICE_MS = 20;
/** pg_try_advisory_lock key: one re-tagging runner across all replicas */
const RUNNER_LOCK = 7_041_976;

/**
 * Re-tags every stored interaction with the current taxonomy after an edit; each chunk moves
 * the department and topic rollups of the interactions it re-tags in the same transaction. Progress is stored per job; a job cut short by
 * a restart is picked up again at the next start (re-tagging is idempotent). A pass also finishes
 * the jobs queued before it read the taxonomy (their edits are in it), so a burst of edits costs
 * at most two passes, not one each.
 * An interaction erased or redacted by retention (before the pass or while its chunk is matched)
 * keeps its tags: it has no text to match, and the words it matched must not come back.
 *
 * One replica runs the jobs (an advisory lock; a replica that finds it taken looks again while a job
 * is unfinished). Should the lock session end mid-job and another replica begin a pass, the first
 * one's chunks no longer commit: each chunk first moves the progress of its own pass, by its token.
 * A database failure that passes by itself (isTransient) pauses the job, which goes again
 * `retryMs` later; 12 before it finishes fail it (PauseBudget: a pass starts over, so chunks done
 * again are no progress, and a chunk that always fails would otherwise pause it for ever).
 */
export class RetagJobRunner {
  /** database failures that pass by themselves, since the last job this runner finished */
  readonly pauses = new PauseBudget();
  /** on demand only: kick() after an edit, once at start for a job cut short, and again while another replica holds the runner lock */
  readonly task: TaskRunner<void>;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly ds: DataSource,
    private readonly taxonomy: TaxonomyService,
    private readonly log: Logger,
    deps: TaskDeps = {},
    /** how soon a replica that found the runner lock taken looks again while a job is unfinished */
    private readonly retryMs = 5_000,
  ) {
    this.task = new TaskRunner({ name: 'retag', intervalMs: null, ...deps, log, run: () => this.drain() });
  }

  private get stopped(): boolean {
    return this.task.isStopped;
  }

  async enqueue(reason: string, actor: string): Promise<RetagJobRow> {
    const job = await insertRetagJob(this.ds, reason, actor);
    this.kick();
    return job;
  }

  /** The job, or null when there is none with this id. */
  async find(id: string): Promise<RetagJobRow | null> {
    return (await retagJobById(this.ds, id)) ?? null;
  }

  async get(id: string): Promise<RetagJobRow> {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) throw AppError.badInput(`invalid job id: ${JSON.stringify(id)}`);
    const job = await retagJobById(this.ds, id);
    if (!job) throw AppError.notFound(`retag job ${id}`);
    return job;
  }

  /** Works through unfinished jobs; while a pass runs, one more follows it (a job queued meanwhile is not missed). */
  kick(): void {
    this.task.trigger();
  }

  /** Lets the current chunk finish; an unfinished job resumes at the next start. */
  async stop(): Promise<void> {
    clearTimeout(this.retry);
    await this.task.stop();
  }

  private async drain(): Promise<void> {
    const qr = this.ds.createQueryRunner();
    await qr.connect();
    try {
      // The lock session sits idle for the whole job: an operator's idle_session_timeout must not
      // end it (and hand the job to another replica mid-page).
      await keepWhileIdle(qr);
      if (!(await tryRunnerLock(qr, RUNNER_LOCK))) {
        // Another replica runs the jobs, or one being stopped (a rolling deploy) or a crashed one
        // whose session PostgreSQL has not ended yet: look again later. Before, a job queued or
        // cut short while the lock was taken waited for the next edit or restart.
        if (!this.stopped && (await hasActiveRetagJob(qr))) this.retryLater();
        return;
      }
      try {
        for (;;) {
          if (this.stopped) return;
          const job = await nextRetagJob(qr);
          if (!job) return;
          try {
            await this.run(job);
          } catch (err) {
            if (!(err instanceof JobTakenOver || err instanceof RetagFailed) && isTransient(err)) {
              // A lost connection (an operator's idle_session_timeout ending a pooled session as a
              // statement took it up, a restart), a read-only or busy database: the job stays
              // running and goes again later. Before, it was marked failed, and the edit it carried
              // never reached the stored interactions until the next edit.
              this.log.warn({ job: job.id, err, reason: unavailableReason(err), retryInMs: this.retryMs }, 're-tagging paused on a database failure; it goes again later');
              this.retryLater();
              return;
            }
            if (!(err instanceof JobTakenOver)) throw err;
            // Our lock session ended (a lost connection) and another runner has the job: leave it
            // to that one, and look again later in case it dies too.
            this.log.warn({ job: job.id }, 're-tag taken over by another runner; this one stops');
            this.retryLater();
            return;
          }
        }
      } finally {
        // a lock session that was lost took its lock with it (and an unlock would hide why)
        if (!qr.isReleased) await advisoryUnlock(qr, RUNNER_LOCK);
      }
    } finally {
      await restoreIdleTimeout(qr).catch(() => undefined);
      await qr.release();
    }
  }

  private retryLater(): void {
    if (this.stopped) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.kick(), this.retryMs);
    this.retry.unref();
  }

  private async run(job: RetagJobRow): Promise<void> {
    const log = this.log.child({ job: job.id });
    try {
      // Every job queued before this moment came after its edit committed, and the taxonomy is
      // read after it: this pass re-tags with those edits too, so they need no pass of their own
      // (100 edits in a row made 100 passes over every stored interaction).
      const covers = await databaseNow(this.ds);
      this.taxonomy.invalidate();
      const { analyzer, topicIds } = await this.taxonomy.current();
      const n = await countInteractions(this.ds);
      const token = await markRetagRunning(this.ds, job.id, n);
      log.info({ total: n, reason: job.reason }, 're-tagging stored interactions');
      let last = '00000000-0000-0000-0000-000000000000';
      let done = 0;
      for (;;) {
        if (this.stopped) return;
        const rows = await taggedChunk(this.ds, last, CHUNK, MAX_SCORED_CHARS, CHUNK_CHARS);
        if (rows.length === 0) break;
        const ids: string[] = [];
        const topicRows: [string, number, string][] = [];
        let changed = 0;
        let slice = performance.now();
        for (const r of rows) {
          // 2,000 long texts are seconds of matching: other requests get turns in between
          if (performance.now() - slice > SLICE_MS) {
            await new Promise<void>((resolve) => setImmediate(resolve));
            slice = performance.now();
          }
          // a redacted row (erased, or past retention) keeps its topics: it has no text to match
          if (r.redacted) continue;
          const matches = analyzer.topicsOf(r.text).filter((t) => topicIds.has(t.name));
          const next = matches.map((t) => topicIds.get(t.name)!).sort((a, b) => a - b);
          if (next.join() === r.topics.join()) continue;
          changed++;
          ids.push(r.id);
          for (const t of matches) topicRows.push([r.id, topicIds.get(t.name)!, JSON.stringify(t.matched)]);
        }
        await this.ds.transaction(async (em) => {
          // First, so that two runners' chunks never interleave: a runner whose lock session ended
          // went on with its chunk while the one that took the job over did the same rows, and a
          // topic's rollup counted 24 of its 12 interactions.
          if (!(await addRetagProgress(em, job.id, token, rows.length, changed))) throw new JobTakenOver('re-tag', job.id);
          if (ids.length > 0) {
            // A topic deleted since the job loaded the taxonomy is left out, not a failed job.
            const live = topicRows.length > 0 ? await lockLiveTopics(em, [...new Set(topicRows.map((r) => r[1]))]) : new Set<number>();
            // An interaction erased (or redacted by retention) since the chunk was read keeps the
            // tags the erasure left: before, the words it had matched were written back.
            const kept = await lockUnredactedForTags(em, ids);
            const retagged = ids.filter((id) => kept.has(id));
            if (retagged.length > 0) {
              // The rollups follow the tags in the same transaction: out with the old, in with the new.
              await applyRollups(em, await storedContributions(em, retagged), -1);
              await replaceTags(em, retagged, topicRows.filter((r) => live.has(r[1]) && kept.has(r[0])));
              await applyRollups(em, await storedContributions(em, retagged), 1);
            }
          }
        });
        done += rows.length;
        last = rows.at(-1)!.id;
        if (done % 20_000 < CHUNK) log.info({ done, total: n }, 're-tagging progress');
      }
      if (!(await markRetagSucceeded(this.ds, job.id, token))) throw new JobTakenOver('re-tag', job.id);
      this.pauses.progressed();
      const covered = await markCoveredRetagJobs(this.ds, job.id, covers);
      log.info({ done, covered: covered.length }, 're-tagging finished');
    } catch (err) {
      // the job is another runner's now: its status is not ours to write; a database failure that
      // passes by itself pauses the job (12 before it finishes fail it)
      if (err instanceof JobTakenOver || this.pauses.pauses(err)) throw err;
      const message = this.pauses.failure(err);
      await markRetagFailed(this.ds, job.id, message);
      throw new RetagFailed(message, { cause: err });
    }
  }
}

/** The job was marked failed: nothing to go again on. */
class RetagFailed extends Error {}

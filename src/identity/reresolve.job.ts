import type { DataSource, QueryRunner } from 'typeorm';
import type { Config } from '../config/config';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import { TaskRunner, type TaskDeps } from '../shared/task-runner';
import type { IdentityService } from './identity.service';
import { resolveBatch, type PersonRecord, type ScoredPair } from './matcher';
import type { EvidenceItem, ReresolutionJobRow } from './identity.model';
import * as repo from './identity.repository';
import { autoMergeTx, lockCustomers, recordSuggestion } from './merge';
import { inTransaction } from '../db/transaction';
import { PauseBudget, unavailableReason } from '../db/failures';
import { advisoryUnlock, keepWhileIdle, restoreIdleTimeout, tryAdvisoryLock } from '../db/sql';
import { JobTakenOver } from '../shared/job-taken-over';

export type { ReresolutionJobRow } from './identity.model';

const PROGRESS_EVERY = 500;
/** pg_try_advisory_lock key: held by the session of the one live re-resolution runner, across replicas */
export const RERESOLUTION_RUNNER_LOCK = 7_041_979;

/**
 * Batch re-resolution: every CRM person profile through resolveBatch (weights refitted to the
 * data, the thresholds of config or of the request), then the auto links applied as merges and
 * the review band recorded as suggestions.
 *
 * Must stay true: it never splits a customer (merges a person made or accepted stay), never
 * merges or suggests a rejected pair, never merges two records of one CRM object (they become
 * suggestions), and one job runs at a time (a unique index on active jobs).
 *
 * Liveness: the runner holds a session advisory lock (RERESOLUTION_RUNNER_LOCK) on a dedicated,
 * otherwise idle connection from before its job row is inserted until the job ends. PostgreSQL
 * frees it when that session ends (the process killed, OOM, a node lost: the connection closes),
 * so a start that gets the lock knows no runner is alive: a job still queued or running is an
 * orphan, failed at once and replaced by the new one (a status query that gets the lock fails it
 * too, so a dead job is not reported running). A start that finds the lock held answers CONFLICT. Should the lock session end while its process goes on, the job is replaced all the
 * same; the old runner's next link transaction finds its job no longer running, rolls back and
 * stops. Each merge or suggestion is counted in the transaction that makes it, so no count is lost
 * to a crash or made twice; a replacing job skips the merges already made.
 *
 * A database failure that passes by itself (isTransient: a lock timeout, a lost connection, a
 * restart, a read-only database) in one step (a read before the links, one link's or suggestion's
 * transaction, a progress update) pauses the job: it stays running, and the same step goes again
 * `retryMs` later. Steps already committed are not done again, and a step's transaction is
 * all-or-nothing, so a step done again counts once. 13 such failures in a row without a step done
 * (PauseBudget) fail the job, naming the cause and the count; any other error fails it at once.
 */
export class ReresolutionJobService {
  /** on demand only: start() queues a job and triggers it */
  readonly task: TaskRunner<void>;
  /** the job this process has inserted and runs next, with the session holding the runner lock */
  private queued: { id: string; auto: number; review: number; session: QueryRunner } | null = null;
  /** database failures that pass by themselves, since the last step the running job committed */
  readonly pauses = new PauseBudget(12, 'step');

  constructor(
    private readonly ds: DataSource,
    private readonly identity: IdentityService,
    private readonly config: Pick<Config, 'identity' | 'publicUrl'>,
    private readonly log: Logger,
    deps: TaskDeps = {},
    /** how long a job paused on a database failure that passes by itself waits before it tries the same step again */
    private readonly retryMs = 5_000,
  ) {
    this.task = new TaskRunner({
      name: 'reresolution',
      intervalMs: null,
      ...deps,
      log,
      run: async () => {
        const job = this.queued;
        this.queued = null;
        if (!job) return;
        try {
          await this.run(job.id, job.auto, job.review);
        } finally {
          await releaseRunnerSession(job.session);
        }
      },
    });
  }

  /** Queues a job and starts it in the background; CONFLICT while another is active. */
  async start(actor: string, thresholds: { autoLinkBits?: number | null; reviewBits?: number | null } = {}): Promise<ReresolutionJobRow> {
    const auto = thresholds.autoLinkBits ?? this.config.identity.autoLinkBits;
    const review = thresholds.reviewBits ?? Math.min(this.config.identity.reviewBits, auto);
    if (review > auto) throw AppError.badInput('reviewBits must not exceed autoLinkBits', { autoLinkBits: auto, reviewBits: review });
    if (this.task.isStopped) throw new AppError('SERVICE_UNAVAILABLE', 'the service is shutting down');
    const session = this.ds.createQueryRunner();
    let handed = false;
    try {
      await session.connect();
      // idle for the whole job: an operator's idle_session_timeout must not end it (and the job with it)
      await keepWhileIdle(session);
      if (!(await tryAdvisoryLock(session, RERESOLUTION_RUNNER_LOCK))) {
        // a live runner, here or on another replica
        const active = await repo.activeReresolutionJobId(session);
        throw new AppError('CONFLICT', 'a re-resolution job is already running', active ? { jobId: active } : undefined);
      }
      // No runner is alive: a job still active was left by a process that ended.
      const orphans = await repo.failOrphanReresolutionJobs(session);
      if (orphans.length > 0) this.log.warn({ jobs: orphans }, 're-resolution jobs whose runner stopped marked failed; a new job replaces them');
      const job = await repo.insertReresolutionJob(session, auto, review, actor);
      if (!job) throw new AppError('CONFLICT', 'a re-resolution job is already running');
      this.queued = { id: job.id, auto, review, session };
      handed = true;
      this.task.trigger();
      return job;
    } finally {
      if (!handed) await releaseRunnerSession(session);
    }
  }

  /** A job; one still active whose runner is gone is reported (and marked) failed, not running forever. */
  async get(id: string): Promise<ReresolutionJobRow | null> {
    const job = await repo.reresolutionJobById(this.ds, id);
    if (!job || (job.status !== 'queued' && job.status !== 'running')) return job;
    const session = this.ds.createQueryRunner();
    try {
      await session.connect();
      if (!(await tryAdvisoryLock(session, RERESOLUTION_RUNNER_LOCK))) return job; // its runner lives
      const orphans = await repo.failOrphanReresolutionJobs(session);
      if (orphans.length > 0) this.log.warn({ jobs: orphans }, 're-resolution jobs whose runner stopped marked failed');
    } finally {
      await releaseRunnerSession(session);
    }
    return repo.reresolutionJobById(this.ds, id);
  }

  /** Waits for the job this process runs, if any (shutdown, tests). */
  async drain(): Promise<void> {
    await this.task.idle();
  }

  private async run(jobId: string, autoLinkBits: number, reviewBits: number): Promise<void> {
    const log = this.log.child({ job: jobId });
    const t0 = Date.now();
    this.pauses.progressed();
    /**
     * One step: again after a database failure that passes by itself, `retryMs` later, until the
     * budget runs out (then, like any other error, it fails the job in the catch below).
     */
    const step = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      for (;;) {
        try {
          const out = await fn();
          this.pauses.progressed();
          return out;
        } catch (err) {
          if (err instanceof JobTakenOver || !this.pauses.pauses(err)) throw err;
          // Before, the job was marked failed on the first one, and an operator started it again
          // by hand (the matcher over every profile, again).
          log.warn({ err, step: what, reason: unavailableReason(err), pauses: this.pauses.inARow, retryInMs: this.retryMs }, 're-resolution paused on a database failure; the same step goes again');
          await new Promise<void>((resolve) => setTimeout(resolve, this.retryMs));
        }
      }
    };
    try {
      const profiles = await step('read the profiles', () => repo.liveCrmProfiles(this.ds));
      await step('start', async () => {
        if (!(await repo.startReresolutionJob(this.ds, jobId, profiles.length))) throw new JobTakenOver('re-resolution', jobId);
      });
      log.info({ profiles: profiles.length, autoLinkBits, reviewBits }, 're-resolution started');
      const records: PersonRecord[] = profiles.map((p) => ({ ...p.person, id: p.id }));
      const rejected = await step('read the rejected pairs', () => this.rejectedRecordPairs());
      const result = resolveBatch(records, {
        autoLinkThreshold: autoLinkBits,
        reviewThreshold: reviewBits,
        rejectedPairs: rejected,
        email: this.identity.keyOptions.email,
        defaultRegion: this.identity.keyOptions.defaultRegion,
      });
      log.info({ ms: Date.now() - t0, clusters: result.clusters.length, links: result.links.length, suggestions: result.suggestions.length, parameters: result.parameters.source }, 'records resolved; applying');

      const clusterOf = new Map<string, number>();
      result.clusters.forEach((c, i) => c.forEach((id) => clusterOf.set(id, i)));
      const linksByCluster = new Map<number, ScoredPair[]>();
      for (const l of result.links) {
        const c = clusterOf.get(l.a)!;
        linksByCluster.set(c, [...(linksByCluster.get(c) ?? []), l]);
      }
      // Most links join records already in one customer: skip those without a transaction, on a
      // snapshot of the clusters kept current with the merges this job makes (rechecked under lock).
      const rootRows = await step('read the customers of the records', () => repo.crmRecordRoots(this.ds));
      const rootOf = new Map(rootRows.map((r) => [r.id, r.root]));
      // CRM records per customer and object, to see without a query that two customers may not merge
      const objects = new Map<string, Map<string, Set<string>>>();
      for (const r of rootRows) {
        if (r.deleted) continue;
        const m = objects.get(r.root) ?? new Map<string, Set<string>>();
        m.set(r.obj, (m.get(r.obj) ?? new Set()).add(r.id));
        objects.set(r.root, m);
      }
      const conflict = (ra: string, rb: string): boolean => {
        const a = objects.get(ra);
        const b = objects.get(rb);
        if (!a || !b) return false;
        for (const [obj, ids] of a) if (b.has(obj) && [...b.get(obj)!].some((id) => !ids.has(id))) return true;
        return false;
      };
      const parent = new Map<string, string>();
      const find = (x: string): string => {
        while (parent.has(x)) x = parent.get(x)!;
        return x;
      };
      const apart = (a: string, b: string): boolean => {
        const ra = rootOf.get(a);
        const rb = rootOf.get(b);
        return ra === undefined || rb === undefined || find(ra) !== find(rb);
      };
      const decided = await step('read the decided pairs', () => repo.openOrRejectedPairs(this.ds));
      const pairKey = (x: string, y: string) => (x < y ? `${x}|${y}` : `${y}|${x}`);
      const known = new Map(decided.map((d) => [pairKey(d.a, d.b), d.status]));
      const knownStatus = (a: string, b: string) => known.get(pairKey(find(rootOf.get(a)!), find(rootOf.get(b)!)));
      let applied = 0;
      let done = 0;
      let merges = 0;
      let suggestions = 0;
      let reported = 0;
      for (let c = 0; c < result.clusters.length; c++) {
        for (const link of linksByCluster.get(c) ?? []) {
          if (!apart(link.a, link.b)) continue;
          const status = knownStatus(link.a, link.b);
          // rejected: never merged; a CRM conflict already up for review: nothing new to record
          if (status === 'rejected' || (status === 'pending' && conflict(find(rootOf.get(link.a)!), find(rootOf.get(link.b)!)))) continue;
          applied++;
          const outcome = await step('apply a link', () =>
            this.transaction(async (qr) => {
              const o = await this.applyLink(qr, link, autoLinkBits);
              await this.count(qr, jobId, { merges: o === 'merged' ? 1 : 0, suggestions: o === 'suggested' ? 1 : 0 });
              return o;
            }),
          );
          if (outcome === 'merged') {
            merges++;
            const [ra, rb] = [find(rootOf.get(link.a)!), find(rootOf.get(link.b)!)];
            if (ra !== rb) {
              parent.set(ra, rb);
              const into = objects.get(rb) ?? new Map<string, Set<string>>();
              for (const [obj, ids] of objects.get(ra) ?? []) into.set(obj, new Set([...(into.get(obj) ?? []), ...ids]));
              objects.set(rb, into);
            }
          }
          if (outcome === 'suggested') suggestions++;
        }
        done += result.clusters[c]!.length;
        if (done - reported >= PROGRESS_EVERY) {
          reported = done;
          await step('report progress', async () => {
            if (!(await repo.reresolutionProgress(this.ds, jobId, done))) throw new JobTakenOver('re-resolution', jobId);
          });
          log.info({ done, total: profiles.length, merges, suggestions }, 're-resolution progress');
        }
      }
      for (const s of result.suggestions) {
        if (!apart(s.a, s.b) || knownStatus(s.a, s.b) !== undefined) continue;
        applied++;
        const made = await step('record a suggestion', () =>
          this.transaction(async (qr) => {
            const m = await this.applySuggestion(qr, s, reviewBits, autoLinkBits);
            await this.count(qr, jobId, { merges: 0, suggestions: m ? 1 : 0 });
            return m;
          }),
        );
        if (made) suggestions++;
      }
      await step('finish', async () => {
        if (!(await repo.reresolutionProgress(this.ds, jobId, done, true))) throw new JobTakenOver('re-resolution', jobId);
      });
      if (result.parameters.source === 'estimated') this.identity.useParameters(result.parameters);
      log.info({ ms: Date.now() - t0, done, merges, suggestions, applied }, 're-resolution finished');
    } catch (e) {
      if (e instanceof JobTakenOver) {
        // replaced by a job of another runner (this one's lock session had ended): not ours to mark
        log.warn('re-resolution replaced by another runner\'s job; this one stops');
        return;
      }
      // a failure that does not pass, or one that came back step after step (a lock held for good,
      // a database read-only for good): failed with the cause, and the count when it was that
      const message = this.pauses.failure(e);
      log.error({ err: e }, 're-resolution failed');
      await repo.failReresolutionJob(this.ds, jobId, message).catch(() => undefined);
    }
  }

  /** Counts a link's or suggestion's outcome in its own transaction; rolls it back when the job was replaced. */
  private async count(qr: QueryRunner, jobId: string, w: { merges: number; suggestions: number }): Promise<void> {
    if (!(await repo.countReresolutionWork(qr, jobId, w))) throw new JobTakenOver('re-resolution', jobId);
  }

  /** One auto link: merge the customers of its two records unless they are one already. */
  private async applyLink(qr: QueryRunner, link: ScoredPair, autoLinkBits: number): Promise<'merged' | 'suggested' | 'none'> {
    const sides = await this.sides(qr, link.a, link.b);
    if (!sides) return 'none';
    const [a, b] = sides;
    const r = await autoMergeTx(qr, a, b, {
      reason: `re-resolution: records match with ${link.score.toFixed(1)} bits (auto-link threshold ${autoLinkBits})`,
      actor: 'rule:fellegi-sunter:batch',
      score: link.score,
      evidence: link.evidence as EvidenceItem[],
      publicUrl: this.config.publicUrl,
    });
    return r.merged ? 'merged' : r.suggested ? 'suggested' : 'none';
  }

  private async applySuggestion(qr: QueryRunner, s: ScoredPair, reviewBits: number, autoLinkBits: number): Promise<boolean> {
    const sides = await this.sides(qr, s.a, s.b);
    if (!sides) return false;
    return recordSuggestion(qr, sides[0], sides[1], {
      score: s.score,
      evidence: s.evidence as EvidenceItem[],
      reason: `re-resolution: ${s.score.toFixed(1)} bits, in the review band ${reviewBits}–${autoLinkBits}`,
    });
  }

  /** The current (locked) customers of two records and their CRM identities; null when already one. */
  private async sides(qr: QueryRunner, recordA: string, recordB: string) {
    const rows = await repo.crmRecordSides(qr, [recordA, recordB]);
    const a = rows.find((r) => r.id === recordA);
    const b = rows.find((r) => r.id === recordB);
    if (!a || !b) return null;
    const roots = await lockCustomers(qr, [a.customer_id, b.customer_id]);
    const ra = roots.get(a.customer_id)!;
    const rb = roots.get(b.customer_id)!;
    if (ra === rb) return null;
    // the older customer survives, so ids people already use keep working
    const older = await repo.oldestCustomer(qr, [ra, rb]);
    const sa = { customerId: ra, identityId: a.anchor };
    const sb = { customerId: rb, identityId: b.anchor };
    return older === ra ? ([sa, sb] as const) : ([sb, sa] as const);
  }

  /**
   * Rejections as pairs of CRM records, for resolveBatch: each rejected suggestion's two sides,
   * every record of one customer against every record of the other, so that no cluster joins them.
   */
  private async rejectedRecordPairs(): Promise<[string, string][]> {
    const rows = await repo.rejectedRecordPairs(this.ds);
    return rows.map((r) => [r.a, r.b]);
  }

  private transaction<T>(fn: (qr: QueryRunner) => Promise<T>): Promise<T> {
    return inTransaction(this.ds, fn);
  }
}

/** Frees the runner lock and gives the session back to the pool with the operator's idle timeout. */
async function releaseRunnerSession(session: QueryRunner): Promise<void> {
  // a session that was ended holds no lock any more: nothing to undo
  await advisoryUnlock(session, RERESOLUTION_RUNNER_LOCK).catch(() => undefined);
  await restoreIdleTimeout(session).catch(() => undefined);
  await session.release().catch(() => undefined);
}

import type { DataSource } from 'typeorm';
import { AppError } from '../shared/app-error';
import type { Logger } from '../shared/logger';
import { TaskRunner, type TaskDeps } from '../shared/task-runner';
import { applyRollups, storedContributions } from './rollups';
import type { TaxonomyService } from './taxonomy.service';

export interface RetagJobRow {
  id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  reason: string;
  requested_by: string;
  total: number;
  done: number;
  changed: number;
  error: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

const CHUNK = 2000;
/** pg_try_advisory_lock key: one re-tagging runner across all replicas */
const RUNNER_LOCK = 7_041_976;

/**
 * Re-tags every stored interaction with the current taxonomy after an edit; each chunk moves
 * the department and topic rollups of the interactions it re-tags in the same transaction. Progress is stored per job; a job cut short by
 * a restart is picked up again at the next start (re-tagging is idempotent).
 */
export class RetagJobRunner {
  /** on demand only: kick() after an edit, and once at start for a job cut short */
  readonly task: TaskRunner<void>;

  constructor(
    private readonly ds: DataSource,
    private readonly taxonomy: TaxonomyService,
    private readonly log: Logger,
    deps: TaskDeps = {},
  ) {
    this.task = new TaskRunner({ name: 'retag', intervalMs: null, ...deps, log, run: () => this.drain() });
  }

  private get stopped(): boolean {
    return this.task.isStopped;
  }

  async enqueue(reason: string, actor: string): Promise<RetagJobRow> {
    const [job] = await this.ds.query(`INSERT INTO retag_job (reason, requested_by) VALUES ($1, $2) RETURNING *`, [reason, actor]);
    this.kick();
    return job;
  }

  /** The job, or null when there is none with this id. */
  async find(id: string): Promise<RetagJobRow | null> {
    const [job] = (await this.ds.query(`SELECT * FROM retag_job WHERE id = $1`, [id])) as RetagJobRow[];
    return job ?? null;
  }

  async get(id: string): Promise<RetagJobRow> {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) throw AppError.badInput(`invalid job id: ${JSON.stringify(id)}`);
    const [job] = await this.ds.query(`SELECT * FROM retag_job WHERE id = $1`, [id]);
    if (!job) throw AppError.notFound(`retag job ${id}`);
    return job;
  }

  /** Works through unfinished jobs; while a pass runs, one more follows it (a job queued meanwhile is not missed). */
  kick(): void {
    this.task.trigger();
  }

  /** Lets the current chunk finish; an unfinished job resumes at the next start. */
  async stop(): Promise<void> {
    await this.task.stop();
  }

  private async drain(): Promise<void> {
    const qr = this.ds.createQueryRunner();
    await qr.connect();
    try {
      const [{ locked }] = await qr.query('SELECT pg_try_advisory_lock($1) AS locked', [RUNNER_LOCK]);
      if (!locked) return; // another replica runs the jobs
      try {
        for (;;) {
          if (this.stopped) return;
          const [job]: RetagJobRow[] = await qr.query(
            `SELECT * FROM retag_job WHERE status IN ('queued', 'running') ORDER BY created_at LIMIT 1`,
          );
          if (!job) return;
          await this.run(job);
        }
      } finally {
        await qr.query('SELECT pg_advisory_unlock($1)', [RUNNER_LOCK]);
      }
    } finally {
      await qr.release();
    }
  }

  private async run(job: RetagJobRow): Promise<void> {
    const log = this.log.child({ job: job.id });
    try {
      this.taxonomy.invalidate();
      const { analyzer, topicIds } = await this.taxonomy.current();
      const [{ n }] = await this.ds.query('SELECT count(*)::int AS n FROM interaction');
      await this.ds.query(`UPDATE retag_job SET status = 'running', started_at = now(), total = $2, done = 0, changed = 0 WHERE id = $1`, [job.id, n]);
      log.info({ total: n, reason: job.reason }, 're-tagging stored interactions');
      let last = '00000000-0000-0000-0000-000000000000';
      let done = 0;
      for (;;) {
        if (this.stopped) return;
        const rows: { id: string; text: string; topics: number[] }[] = await this.ds.query(
          `SELECT i.id, i.text, coalesce(array_agg(it.topic_id ORDER BY it.topic_id) FILTER (WHERE it.topic_id IS NOT NULL), '{}') AS topics
             FROM (SELECT id, text FROM interaction WHERE id > $1 ORDER BY id LIMIT $2) i
             LEFT JOIN interaction_topic it ON it.interaction_id = i.id
            GROUP BY i.id, i.text ORDER BY i.id`,
          [last, CHUNK],
        );
        if (rows.length === 0) break;
        const ids: string[] = [];
        const topicRows: [string, number, string][] = [];
        let changed = 0;
        for (const r of rows) {
          const matches = analyzer.topicsOf(r.text).filter((t) => topicIds.has(t.name));
          const next = matches.map((t) => topicIds.get(t.name)!).sort((a, b) => a - b);
          if (next.join() === r.topics.join()) continue;
          changed++;
          ids.push(r.id);
          for (const t of matches) topicRows.push([r.id, topicIds.get(t.name)!, JSON.stringify(t.matched)]);
        }
        await this.ds.transaction(async (em) => {
          if (ids.length > 0) {
            // The rollups follow the tags in the same transaction: out with the old, in with the new.
            await applyRollups(em, await storedContributions(em, ids), -1);
            await em.query('DELETE FROM interaction_topic WHERE interaction_id = ANY($1::uuid[])', [ids]);
            if (topicRows.length > 0) {
              await em.query(
                `INSERT INTO interaction_topic (interaction_id, topic_id, matched)
                 SELECT i, t, ARRAY(SELECT jsonb_array_elements_text(m)) FROM unnest($1::uuid[], $2::int[], $3::jsonb[]) AS x(i, t, m)`,
                [topicRows.map((r) => r[0]), topicRows.map((r) => r[1]), topicRows.map((r) => r[2])],
              );
            }
            await applyRollups(em, await storedContributions(em, ids), 1);
          }
          await em.query('UPDATE retag_job SET done = done + $2, changed = changed + $3 WHERE id = $1', [job.id, rows.length, changed]);
        });
        done += rows.length;
        last = rows.at(-1)!.id;
        if (done % 20_000 < CHUNK) log.info({ done, total: n }, 're-tagging progress');
      }
      await this.ds.query(`UPDATE retag_job SET status = 'succeeded', finished_at = now() WHERE id = $1`, [job.id]);
      log.info({ done }, 're-tagging finished');
    } catch (err) {
      await this.ds.query(`UPDATE retag_job SET status = 'failed', error = $2, finished_at = now() WHERE id = $1`, [job.id, (err as Error).message]);
      throw err;
    }
  }
}

/** Department rollups from the stored tags: what they would be had every interaction arrived today. */
export async function rebuildDepartmentRollups(ds: DataSource): Promise<void> {
  await ds.transaction(async (em) => {
    await em.query('LOCK TABLE department_sentiment_daily IN EXCLUSIVE MODE');
    await em.query('DELETE FROM department_sentiment_daily');
    await em.query(`
      INSERT INTO department_sentiment_daily (department_id, day, interaction_count, score_sum, negative_count, positive_count)
      SELECT x.department_id, (i.occurred_at AT TIME ZONE 'UTC')::date, count(*), sum(i.sentiment_score),
             count(*) FILTER (WHERE i.sentiment_label = 'negative'), count(*) FILTER (WHERE i.sentiment_label = 'positive')
        FROM (SELECT DISTINCT it.interaction_id, t.department_id FROM interaction_topic it JOIN topic t ON t.id = it.topic_id) x
        JOIN interaction i ON i.id = x.interaction_id
       WHERE i.direction = 'inbound'
       GROUP BY 1, 2`);
  });
}

/**
 * Topic rollups from the stored tags and scores. Writers keep them in step through
 * `applyRollups` (rollups.ts); a change of every score (a re-score) rebuilds them instead.
 */
export async function rebuildTopicRollups(ds: DataSource): Promise<void> {
  await ds.transaction(async (em) => {
    await em.query('LOCK TABLE topic_sentiment_daily IN EXCLUSIVE MODE');
    await em.query('DELETE FROM topic_sentiment_daily');
    await em.query(`
      INSERT INTO topic_sentiment_daily (topic_id, day, interaction_count, score_sum, negative_count, positive_count)
      SELECT it.topic_id, (i.occurred_at AT TIME ZONE 'UTC')::date, count(*), sum(i.sentiment_score),
             count(*) FILTER (WHERE i.sentiment_label = 'negative'), count(*) FILTER (WHERE i.sentiment_label = 'positive')
        FROM interaction_topic it JOIN interaction i ON i.id = it.interaction_id
       WHERE i.direction = 'inbound'
       GROUP BY 1, 2`);
  });
}

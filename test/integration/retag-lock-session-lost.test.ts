import { Client } from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { waitFor } from '../support/kafka-fixtures';
import { waitForLockWait } from '../support/postgres';

// Two replicas; the one re-tagging loses the session holding the runner lock while a chunk is
// under way (held here at its first lock, on the topic rows, by this test). The other replica
// takes the job over. Whatever the interleaving, the tags and topic/department rollups must equal
// a recomputation from the stored interactions, and the job must end succeeded. Before, both
// committed the chunk: the job said 24 of 12 done and the topic's rollup counted 24 interactions
// for its 12 tagged ones, for good (a re-tag moves rollups by difference and never rebuilds them).

const ADMIN = 'admin-key-0123456789';
const KEYS = { EARSHOT_API_KEYS: `${ADMIN}:admin`, EARSHOT_ROLES: 'api,ingest' };
const as = { 'x-api-key': ADMIN };
const RUNNER_LOCK = 7_041_976;

describe('re-tagging when the runner loses its lock session', () => {
  let a: TestApp | null = null;
  let b: TestApp | null = null;
  let holder: Client | null = null;

  afterAll(async () => {
    await holder?.end().catch(() => undefined);
    await b?.stop().catch(() => undefined);
    await a?.close().catch(() => undefined);
  });

  it('leaves tags and rollups equal to a recomputation and the job succeeded', async () => {
    a = await startTestApp(KEYS, 'retaglocklost');
    const texts = Array.from({ length: 12 }, (_, i) => (i % 2 ? `The quokka plush number ${i} arrived torn` : `Terrible delay with quokka plush ${i}`));
    const res = await fetch(`${a.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', ...as },
      body: ndjson(texts.map((text, i) => message(i + 1, { externalId: `q-${i}`, eventId: `q-${i}`, text }))),
    });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(12);
    await a.services.retag.task.idle();
    b = await startTestApp(KEYS, 'retaglocklost', a.database);
    await b.services.retag.task.idle();
    const q = async <R>(sql: string, params: unknown[] = []) => (await b!.db.ds.query(sql, params)) as R[];

    const [{ id: topicId }] = await q<{ id: number }>(
      `WITH d AS (INSERT INTO department (name) VALUES ('Plush Desk') ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id)
       INSERT INTO topic (name, label, department_id, phrases) SELECT 'quokka_plush', 'Quokka plush', d.id, ARRAY['quokka plush'] FROM d RETURNING id`,
    );
    const [{ id: jobId }] = await q<{ id: string }>(`INSERT INTO retag_job (reason, requested_by) VALUES ('topic quokka_plush saved', 'test') RETURNING id`);

    holder = new Client({ connectionString: a.database.url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM topic WHERE id = $1 FOR UPDATE', [topicId]);
    a.services.retag.kick();
    await waitForLockWait(q, 'replica a waits in its chunk', { queryPrefix: 'SELECT' });
    // replica a's lock session ends; replica b is told to look (an edit of its own would do the same)
    const [{ ok }] = (await holder.query(`SELECT pg_terminate_backend(pid) AS ok FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, [RUNNER_LOCK])).rows;
    expect(ok).toBe(true);
    b.services.retag.kick();
    await waitFor('replica b holds the runner lock', async () => (await q(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, [RUNNER_LOCK])).length > 0, 30_000, 50);
    await waitFor('replica b waits in its chunk too', async () => {
      const [{ n }] = await q<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
      return n >= 2 ? true : null;
    }, 30_000, 50);
    await holder.query('COMMIT');
    await a.services.retag.task.idle();
    await b.services.retag.task.idle();
    await waitFor('the job finished', async () => {
      const [j] = await q<{ status: string }>(`SELECT status FROM retag_job WHERE id = $1`, [jobId]);
      return j!.status === 'succeeded' || j!.status === 'failed' ? j : null;
    }, 30_000, 100);

    const [job] = await q<{ status: string; done: number; total: number; error: string | null }>(`SELECT status, done, total, error FROM retag_job WHERE id = $1`, [jobId]);
    expect.soft(job).toMatchObject({ status: 'succeeded', error: null, total: 12, done: 12 });
    expect(await q(`SELECT count(*)::int AS n FROM interaction_topic WHERE topic_id = $1`, [topicId])).toEqual([{ n: 12 }]);
    const recompute = (table: string, col: string, src: string) =>
      q(`(SELECT ${col}, day, interaction_count, round(score_sum::numeric, 6) FROM ${table} WHERE interaction_count <> 0
          EXCEPT SELECT k, (occurred_at AT TIME ZONE 'UTC')::date, count(*)::int, round(sum(sentiment_score)::numeric, 6) FROM (${src}) s GROUP BY 1, 2)
         UNION ALL
         (SELECT k, (occurred_at AT TIME ZONE 'UTC')::date, count(*)::int, round(sum(sentiment_score)::numeric, 6) FROM (${src}) s GROUP BY 1, 2
          EXCEPT SELECT ${col}, day, interaction_count, round(score_sum::numeric, 6) FROM ${table})`);
    expect(
      await recompute('topic_sentiment_daily', 'topic_id', `SELECT it.topic_id AS k, i.occurred_at, i.sentiment_score FROM interaction_topic it JOIN interaction i ON i.id = it.interaction_id WHERE i.direction = 'inbound'`),
    ).toEqual([]);
    expect(
      await recompute(
        'department_sentiment_daily',
        'department_id',
        `SELECT DISTINCT ON (t.department_id, i.id) t.department_id AS k, i.occurred_at, i.sentiment_score FROM interaction_topic it JOIN topic t ON t.id = it.topic_id JOIN interaction i ON i.id = it.interaction_id WHERE i.direction = 'inbound'`,
      ),
    ).toEqual([]);
  }, 120_000);
});

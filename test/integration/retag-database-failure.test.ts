import { Client } from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { RetagJobRunner } from '../../src/sentiment/retag.job';
import { createLogger } from '../../src/shared/logger';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { waitFor } from '../support/kafka-fixtures';

// A re-tag (the job a taxonomy edit queues) meets a database failure that passes by itself: an
// operator's lock_timeout while a session holds the interactions (VACUUM FULL, ALTER TABLE), a
// pooled session ended under it, a restart. Before, the job was marked failed on the first one,
// and the edit never reached the stored interactions until the next edit. Now it pauses and goes
// again; the same failure 13 times in a row without a chunk done fails it, naming the cause.
// The runner is the service's own class on the app's pool, looking again 20 ms after a pause
// (5 s in the service), so that thirteen pauses take a moment.

const ADMIN = 'admin-key-0123456789';
const KEYS = { EARSHOT_API_KEYS: `${ADMIN}:admin` };
const as = { 'x-api-key': ADMIN };

let app: TestApp | null = null;
let pg: Client | null = null;
let runner: RetagJobRunner | null = null;

afterEach(async () => {
  await pg?.query('ROLLBACK').catch(() => undefined);
  await pg?.end().catch(() => undefined);
  await runner?.stop();
  await app?.close();
  pg = null;
  runner = null;
  app = null;
});

/**
 * Four stored interactions about a quokka plush; then an app on a database whose operator set
 * lock_timeout = 50 ms, a topic for them, its re-tag job queued, and a session (the test's) that
 * holds the interaction table in ACCESS EXCLUSIVE mode.
 */
async function lockedRetag(label: string) {
  const seed = await startTestApp(KEYS, label);
  const res = await fetch(`${seed.url}/ingest`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-ndjson', ...as },
    body: ndjson(Array.from({ length: 4 }, (_, i) => message(i + 1, { externalId: `qp-${i}`, eventId: `qp-${i}`, text: `The quokka plush number ${i} arrived torn` }))),
  });
  expect(((await res.json()) as { accepted: number }).accepted).toBe(4);
  const database = seed.database;
  await seed.stop();
  pg = new Client({ connectionString: database.url });
  await pg.connect();
  const [{ db }] = (await pg.query(`SELECT current_database() AS db`)).rows as { db: string }[];
  await pg.query(`ALTER DATABASE "${db.replace(/"/g, '""')}" SET lock_timeout = '50ms'`);
  // the api role; the app's own runner finds no job at its start and is not told of this one
  app = await startTestApp({ ...KEYS, EARSHOT_ROLES: 'api' }, label, database);
  const [{ id: topicId }] = (await pg.query(
    `WITH d AS (INSERT INTO department (name) VALUES ('Plush Desk') ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id)
     INSERT INTO topic (name, label, department_id, phrases) SELECT 'quokka_plush', 'Quokka plush', d.id, ARRAY['quokka plush'] FROM d RETURNING id`,
  )).rows as { id: number }[];
  const [{ id: jobId }] = (await pg.query(`INSERT INTO retag_job (reason, requested_by) VALUES ('topic quokka_plush saved', 'test') RETURNING id`)).rows as { id: string }[];
  runner = new RetagJobRunner(app.db.ds, app.services.taxonomy, createLogger('silent'), {}, 20);
  await pg.query('BEGIN');
  await pg.query('LOCK TABLE interaction IN ACCESS EXCLUSIVE MODE');
  const job = async () => (await pg!.query(`SELECT status, done, error FROM retag_job WHERE id = $1`, [jobId])).rows[0] as { status: string; done: number; error: string | null };
  const tagged = async () => (await pg!.query(`SELECT count(*)::int AS n FROM interaction_topic WHERE topic_id = $1`, [topicId])).rows[0].n as number;
  return { job, tagged, runner };
}

describe('a re-tag that meets a database failure that passes by itself', () => {
  it('pauses while the interactions are locked and re-tags them once they are free', async () => {
    const { job, tagged, runner } = await lockedRetag('retagpause');
    runner.kick();
    await waitFor('the re-tag paused twice', async () => runner.pauses.inARow >= 2 || null, 30_000, 20);
    // before: failed on the first lock timeout ("canceling statement due to lock timeout"); now
    // still waiting (queued: it fails at counting the interactions, before it marks itself running)
    expect(await job()).toMatchObject({ status: 'queued', error: null });
    await pg!.query('ROLLBACK');
    const ended = await waitFor('the re-tag ended', async () => {
      const j = await job();
      return j.status === 'queued' || j.status === 'running' ? null : j;
    }, 30_000, 20);
    expect(ended).toEqual({ status: 'succeeded', done: 4, error: null });
    expect(await tagged()).toBe(4);
  }, 120_000);

  it('fails, naming the cause, when the failure comes back 13 times without a chunk done', async () => {
    const { job, tagged, runner } = await lockedRetag('retagstuck');
    runner.kick();
    const ended = await waitFor('the re-tag ended', async () => {
      const j = await job();
      return j.status === 'queued' || j.status === 'running' ? null : j;
    }, 60_000, 20);
    expect(ended).toEqual({ status: 'failed', done: 0, error: `canceling statement due to lock timeout (${runner.pauses.max + 1} times without a page done)` });
    await pg!.query('ROLLBACK');
    expect(await tagged()).toBe(0);
  }, 120_000);
});

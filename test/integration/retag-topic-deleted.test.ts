import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { waitForLockWait } from '../support/postgres';

// A topic deleted while a re-tag job runs with the taxonomy it loaded before: the job locks the
// topics it tags with (lockLiveTopics, FOR KEY SHARE) and leaves out those gone meanwhile, so the
// job succeeds and no tag of the deleted topic is written. Here the job is held after it loaded
// the taxonomy (its first write, the job row's status, waits for a row lock this test holds),
// the topic is deleted and committed, and then the job goes on.

describe('re-tagging while a topic is deleted', () => {
  let app: TestApp;
  let holder: Client;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest' }, 'retagdeleted');
    holder = new Client({ connectionString: app.database.url });
    await holder.connect();
  }, 120_000);

  afterAll(async () => {
    await holder?.end();
    await app?.stop();
    await app?.database.drop();
  });

  const q = async <R>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as R[];

  it('leaves out a topic deleted after the job loaded the taxonomy, and the job succeeds', async () => {
    // lines that a topic created below (straight in the table, as another replica's edit) will match
    const texts = ['The quokka plush arrived torn', 'My quokka plush is adorable', 'Where is my quokka plush order?'];
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: ndjson(texts.map((text, i) => message(i, { externalId: `quokka-${i}`, eventId: `quokka-${i}`, text }))),
    });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(3);
    await app.services.retag.task.idle(); // the start-up pass has nothing left to do

    const [{ id: topicId }] = await q<{ id: number }>(
      `WITH d AS (INSERT INTO department (name) VALUES ('Plush Desk') ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id)
       INSERT INTO topic (name, label, department_id, phrases) SELECT 'quokka_plush', 'Quokka plush', d.id, ARRAY['quokka plush'] FROM d RETURNING id`,
    );
    const [{ id: jobId }] = await q<{ id: string }>(`INSERT INTO retag_job (reason, requested_by) VALUES ('topic quokka_plush saved', 'test') RETURNING id`);

    // hold the job row: the job loads the taxonomy (with the topic), then waits to mark itself running
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM retag_job WHERE id = $1 FOR UPDATE', [jobId]);
    try {
      app.services.retag.kick();
      await waitForLockWait(q, 'the re-tag job waits for its row', { queryPrefix: 'UPDATE retag_job' });
      // another replica deletes the topic while the job still has it
      await q(`DELETE FROM topic WHERE id = $1`, [topicId]);
      await holder.query('COMMIT');
    } catch (e) {
      await holder.query('ROLLBACK');
      throw e;
    }
    await app.services.retag.task.idle();

    const [job] = await q<{ status: string; error: string | null; done: number }>(`SELECT status, error, done FROM retag_job WHERE id = $1`, [jobId]);
    expect(job).toMatchObject({ status: 'succeeded', error: null });
    expect(job!.done).toBeGreaterThanOrEqual(3);
    expect((await q<{ n: number }>(`SELECT count(*)::int AS n FROM interaction_topic WHERE topic_id = $1`, [topicId]))[0]!.n).toBe(0);
    expect((await q<{ n: number }>(`SELECT count(*)::int AS n FROM topic_sentiment_daily WHERE topic_id = $1`, [topicId]))[0]!.n).toBe(0);
  });
});

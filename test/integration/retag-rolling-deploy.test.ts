import { Client } from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { waitFor } from '../support/kafka-fixtures';
import { waitForLockWait } from '../support/postgres';

// A rolling deploy while a re-tag job runs: the new replica starts (its start-up pass finds the
// runner lock taken by the old one) and takes a taxonomy edit (its pass finds the lock taken
// again); then the old replica is stopped mid-job and lets the lock go. Both jobs must still be
// done, by the new replica, without another edit or restart. Before, nobody looked again: the
// jobs stayed 'running' and 'queued', the edit's tags and topic rollups never came.

const ADMIN = 'admin-key-0123456789';
const KEYS = { EARSHOT_API_KEYS: `${ADMIN}:admin`, EARSHOT_ROLES: 'api,ingest' };
const as = { 'x-api-key': ADMIN };
const UPSERT = `mutation($input: TopicInput!) { upsertTopic(input: $input) { job { id status } } }`;
const JOB = `query($id: ID!) { retagJob(id: $id) { id status total done } }`;

describe('re-tagging across a rolling deploy', () => {
  let oldReplica: TestApp | null = null;
  let newReplica: TestApp | null = null;
  let holder: Client | null = null;

  afterAll(async () => {
    await holder?.end().catch(() => undefined);
    await oldReplica?.stop().catch(() => undefined);
    await newReplica?.close();
  });

  it('the replica still running finishes the jobs the stopped one held the runner lock for', async () => {
    oldReplica = await startTestApp(KEYS, 'retagdeploy');
    const texts = ['The quokka plush arrived torn', 'My quokka plush is adorable', 'Where is my quokka plush order?', 'Nothing to see here'];
    const res = await fetch(`${oldReplica.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', ...as },
      body: ndjson(texts.map((text, i) => message(i + 1, { externalId: `q-${i}`, eventId: `q-${i}`, text }))),
    });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(4);
    await oldReplica.services.retag.task.idle();
    const q = async <R>(sql: string, params: unknown[] = []) => (await newReplica!.db.ds.query(sql, params)) as R[];

    // The old replica works on a job (an edit made before the deploy); it is held after taking the
    // runner lock, at its first write, by a row lock this test holds.
    const [{ id: firstJob }] = (await oldReplica.db.ds.query(`INSERT INTO retag_job (reason, requested_by) VALUES ('before the deploy', 'test') RETURNING id`)) as { id: string }[];
    holder = new Client({ connectionString: oldReplica.database.url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM retag_job WHERE id = $1 FOR UPDATE', [firstJob]);
    oldReplica.services.retag.kick();
    await waitForLockWait((sql, p) => oldReplica!.db.ds.query(sql, p), 'the old replica holds the runner lock', { queryPrefix: 'UPDATE retag_job' });

    // The new replica comes up (its start-up pass finds the lock taken) and takes an edit.
    newReplica = await startTestApp(KEYS, 'retagdeploy', oldReplica.database);
    await newReplica.services.retag.task.idle();
    const edit = await newReplica.gql<{ upsertTopic: { job: { id: string } } }>(
      UPSERT,
      { input: { name: 'quokka_plush', label: 'Quokka plush', department: 'Plush Desk', phrases: ['quokka plush'] } },
      as,
    );
    expect(edit.errors).toBeUndefined();
    const secondJob = edit.data.upsertTopic.job.id;
    await newReplica.services.retag.task.idle();

    // The old replica is stopped: its pass ends after the job row is written, the lock goes.
    const stopping = oldReplica.stop();
    await holder.query('COMMIT');
    await stopping;
    oldReplica = null;

    // Nobody edits or restarts anything: the new replica finishes both jobs on its own.
    for (const id of [secondJob]) {
      const job = await waitFor(
        `re-tag job ${id} finished`,
        async () => {
          const r = await newReplica!.gql<{ retagJob: { status: string; total: number; done: number } }>(JOB, { id }, as);
          const j = r.data.retagJob;
          return j.status === 'SUCCEEDED' || j.status === 'FAILED' ? j : null;
        },
        30_000,
        100,
      );
      expect(job).toMatchObject({ status: 'SUCCEEDED' });
      expect(job.done).toBe(job.total);
    }
    const first = await waitFor(
      'the job the old replica left finished',
      async () => {
        const [j] = await q<{ status: string }>(`SELECT status FROM retag_job WHERE id = $1`, [firstJob]);
        return j!.status === 'succeeded' || j!.status === 'failed' ? j : null;
      },
      30_000,
      100,
    );
    expect(first.status).toBe('succeeded');
    expect(await q(`SELECT count(*)::int AS n FROM retag_job WHERE status IN ('queued', 'running')`)).toEqual([{ n: 0 }]);

    // The edit's tags are stored, and the topic rollups equal what the stored tags and scores say.
    const tagged = await q<{ external_id: string }>(
      `SELECT i.external_id FROM interaction_topic it JOIN topic t ON t.id = it.topic_id JOIN interaction i ON i.id = it.interaction_id
        WHERE t.name = 'quokka_plush' ORDER BY 1`,
    );
    expect(tagged.map((r) => r.external_id)).toEqual(['q-0', 'q-1', 'q-2']);
    const drift = await q(
      `(SELECT topic_id, day, interaction_count, round(score_sum::numeric, 6), negative_count, positive_count FROM topic_sentiment_daily WHERE interaction_count <> 0
        EXCEPT SELECT it.topic_id, (i.occurred_at AT TIME ZONE 'UTC')::date, count(*)::int, round(sum(i.sentiment_score)::numeric, 6),
          (count(*) FILTER (WHERE i.sentiment_label = 'negative'))::int, (count(*) FILTER (WHERE i.sentiment_label = 'positive'))::int
        FROM interaction_topic it JOIN interaction i ON i.id = it.interaction_id WHERE i.direction = 'inbound' GROUP BY 1, 2)
       UNION ALL
       (SELECT it.topic_id, (i.occurred_at AT TIME ZONE 'UTC')::date, count(*)::int, round(sum(i.sentiment_score)::numeric, 6),
          (count(*) FILTER (WHERE i.sentiment_label = 'negative'))::int, (count(*) FILTER (WHERE i.sentiment_label = 'positive'))::int
        FROM interaction_topic it JOIN interaction i ON i.id = it.interaction_id WHERE i.direction = 'inbound' GROUP BY 1, 2
        EXCEPT SELECT topic_id, day, interaction_count, round(score_sum::numeric, 6), negative_count, positive_count FROM topic_sentiment_daily)`,
    );
    expect(drift).toEqual([]);
  }, 120_000);
});

import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { spawnEarshot } from '../support/earshot-process';
import { ModelServer, type ModelRequestItem } from '../support/model-server';
import type { TestDatabase } from '../support/postgres';

const ADMIN = 'admin-key-0123456789';
const ANALYST = 'analyst-key-0123456789';
const KEYS = { EARSHOT_API_KEYS: `${ADMIN}:admin,${ANALYST}:analyst` };
const as = (key: string) => ({ 'x-api-key': key });
const NEW_MODEL = 'acme-care-v2';

/** The upgraded model: hears the unhappy messages the lexicon took for neutral, and the thanks. */
const acme = (it: ModelRequestItem) => {
  if (/cancel my next/.test(it.text)) return { score: -0.9, complaint: true, confidence: 0.93 };
  if (/get through/.test(it.text)) return { score: -0.7, label: 'negative', complaint: true };
  if (/Terrible/.test(it.text)) return { score: -0.95, complaint: true };
  if (/love this/.test(it.text)) return { score: 0.6 };
  if (/refund arrived/.test(it.text)) return { score: 0.7, complaint: false };
  return { score: 0 };
};

const OLD_MODEL = 'acme-care-v1';

/**
 * The model of day one: like a lexicon, it hears carol, takes frank's thanks for a refund
 * complaint and misses alice's churn threat and bob's plea (a fixed stand-in, so the story does
 * not depend on how good the built-in model is).
 */
const oldAcme = (it: ModelRequestItem) => {
  if (/Terrible/.test(it.text)) return { score: -0.8, complaint: true, intent: 'complaint' as const };
  if (/refund arrived/.test(it.text)) return { score: -0.4, complaint: true, intent: 'complaint' as const };
  if (/love this/.test(it.text)) return { score: 0.5, complaint: false, intent: 'praise' as const };
  return { score: 0, complaint: false, intent: 'other' as const };
};

const JOB = `query($id: ID!) { rescoreJob(id: $id) { id status phase total done changed itemsOpened customersUpdated progress models { model count } error } }`;
type Job = { id: string; status: string; phase: string; total: number; done: number; changed: number; itemsOpened: number; customersUpdated: number; progress: number; models: { model: string; count: number }[]; error: string | null };

const t0 = Date.now() - 2 * 86_400_000;
const at = (minutes: number) => new Date(t0 + minutes * 60_000).toISOString();
const inbound = (externalId: string, handle: string, text: string, minutes: number, extra: Record<string, unknown> = {}) => ({
  source: 'x', externalId, occurredAt: at(minutes), direction: 'inbound', author: { handle, displayName: handle }, text, ...extra,
});
const reply = (externalId: string, inReplyTo: string, text: string, minutes: number) => ({
  source: 'x', externalId, inReplyTo, occurredAt: at(minutes), direction: 'outbound', author: { handle: 'acme_air' }, text,
});

/** Polls the job over GraphQL until it is finished (or the deadline passes). */
async function finished(app: TestApp, id: string): Promise<Job> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await app.gql<{ rescoreJob: Job }>(JOB, { id }, as(ANALYST));
    expect(r.errors).toBeUndefined();
    if (r.data.rescoreJob.status === 'succeeded' || r.data.rescoreJob.status === 'failed') return r.data.rescoreJob;
    if (Date.now() > deadline) throw new Error(`re-score job still ${r.data.rescoreJob.status} at the deadline`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('re-scoring stored interactions after a model change', () => {
  let server: ModelServer;
  let oldServer: ModelServer;
  let database: TestDatabase;
  let app: TestApp | null = null;

  beforeAll(async () => {
    server = await new ModelServer(NEW_MODEL, acme).start();
    oldServer = await new ModelServer(OLD_MODEL, oldAcme).start();
  });
  afterAll(async () => {
    await app?.close();
    await server?.close();
    await oldServer?.close();
  });

  it('re-scores every interaction with the new model, resumes after a restart, opens items, rebuilds rollups and feeds the CRM write-back', async () => {
    // Day one: the old model scores what arrives.
    const first = await startTestApp({ ...KEYS, EARSHOT_SENTIMENT_URL: oldServer.url }, 'rescore');
    database = first.database;
    const res = await fetch(`${first.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', ...as(ADMIN) },
      body: ndjson([
        inbound('a1', 'alice', 'I will cancel my next four flights', 0),
        inbound('b1', 'bob', 'Been trying to get through for an hour, can someone call me', 5),
        reply('b2', 'b1', '@bob we are calling you now', 35),
        inbound('c1', 'carol', 'My parcel is late and nobody answers. Terrible.', 10),
        reply('c2', 'c1', '@carol so sorry, on it', 20),
        inbound('d1', 'dave', 'I love this, great service!', 15),
        inbound('e1', 'erin', 'Flight 22 boarded on time today', 25),
        inbound('f1', 'frank', 'Thanks, the refund arrived', 30, { author: { handle: 'frank', email: 'frank@example.com' } }),
      ]),
    });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(8);
    const ds = first.db.ds;
    // The decisions are stored with each row: the old model took frank's thanks for a complaint.
    const decided = async (d: typeof ds) =>
      new Map(
        ((await d.query(`SELECT external_id, complaint, complaint_probability, unhappy FROM interaction`)) as { external_id: string; complaint: boolean; complaint_probability: number; unhappy: boolean }[]).map(
          (r) => [r.external_id, { complaint: r.complaint, complaintProbability: r.complaint_probability, unhappy: r.unhappy }],
        ),
      );
    const dayOne = await decided(ds);
    expect(dayOne.get('f1')).toEqual({ complaint: true, complaintProbability: 1, unhappy: true });
    expect(dayOne.get('c1')).toEqual({ complaint: true, complaintProbability: 1, unhappy: true });
    expect(dayOne.get('d1')).toEqual({ complaint: false, complaintProbability: 0, unhappy: false });
    const customerOf = async (externalId: string): Promise<string> =>
      (await first.db.ds.query(`SELECT customer_id FROM interaction WHERE external_id = $1`, [externalId]))[0].customer_id;
    const ids = { alice: await customerOf('a1'), bob: await customerOf('b1'), carol: await customerOf('c1'), dave: await customerOf('d1'), frank: await customerOf('f1') };
    const before = await ds.query(`SELECT external_id, sentiment_model, intent FROM interaction ORDER BY external_id`);
    expect(before.every((r: { sentiment_model: string }) => r.sentiment_model === OLD_MODEL)).toBe(true);
    const itemsBefore: { thread_key: string; status: string }[] = await ds.query(`SELECT thread_key, status FROM listening_item ORDER BY thread_key`);
    // the old model heard carol (answered since) and took frank's thanks for a refund complaint
    expect(itemsBefore).toEqual([{ thread_key: 'c1', status: 'answered' }, { thread_key: 'f1', status: 'open' }]);
    // frank's customer has a Salesforce Contact (as the CRM sync would have linked it)
    await ds.query(`INSERT INTO crm_record (customer_id, system, object_type, external_id) VALUES ($1, 'salesforce', 'Contact', '003000000000001AAA')`, [ids.frank]);
    await ds.query(`DELETE FROM crm_writeback`);
    const outboxBefore: number = (await ds.query(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'customer-sentiment.v1'`))[0].n;
    await first.stop();

    // The team's model goes live; pages of two, and the second request is held so the process
    // can be stopped with one page committed and one in flight.
    const env = { ...KEYS, EARSHOT_SENTIMENT_URL: server.url, EARSHOT_RESCORE_BATCH_SIZE: '2' };
    const second = await startTestApp(env, 'rescore', database);
    const held = server.hold(server.requests.length + 2);
    const sentBefore = server.requests.length;

    const denied = await second.gql('mutation { startRescore { id } }', undefined, as(ANALYST));
    expect(denied.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const started = await second.gql<{ startRescore: Job }>('mutation { startRescore { id status total } }', undefined, as(ADMIN));
    expect(started.errors).toBeUndefined();
    const jobId = started.data.startRescore.id;
    await held.arrived;

    const again = await second.gql('mutation { startRescore { id } }', undefined, as(ADMIN));
    expect(again.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    const midway = (await second.gql<{ rescoreJob: Job }>(JOB, { id: jobId }, as(ANALYST))).data.rescoreJob;
    expect(midway).toMatchObject({ status: 'running', phase: 'interactions', total: 8, done: 2, progress: 0.25 });

    // Shutdown begins while page two waits on the model; the page still commits, then the job stops.
    const stopping = second.services.rescore.stop();
    held.release();
    await stopping;
    await second.stop();
    // What a crash at this point leaves: the job running, two pages committed with their cursor.
    const pg = new Client({ connectionString: database.url });
    await pg.connect();
    try {
      const cut = (await pg.query(`SELECT status, phase, done, last_id FROM rescore_job WHERE id = $1`, [jobId])).rows[0];
      expect(cut).toMatchObject({ status: 'running', phase: 'interactions', done: 4 });
      expect(cut.last_id).not.toBeNull();
      const scored = (await pg.query(`SELECT sentiment_model, count(*)::int AS n FROM interaction GROUP BY 1 ORDER BY 1`)).rows;
      expect(scored).toEqual([{ sentiment_model: OLD_MODEL, n: 4 }, { sentiment_model: NEW_MODEL, n: 4 }]);
    } finally {
      await pg.end();
    }

    // The next start picks the job up after its last committed page.
    app = await startTestApp(env, 'rescore', database);
    const job = await finished(app, jobId);
    expect(job).toMatchObject({ status: 'succeeded', phase: 'done', total: 8, done: 8, progress: 1, error: null });
    expect(job.models).toEqual([{ model: NEW_MODEL, count: 8 }]);
    // every text went to the model exactly once: nothing committed was done again after the restart
    const texts = server.requests.slice(sentBefore).flatMap((r) => r.items.map((i) => i.text));
    expect(texts).toHaveLength(8);
    expect(new Set(texts).size).toBe(8);
    expect(job.changed).toBe(8);
    expect(job.itemsOpened).toBe(2);
    // alice, bob, carol, dave and frank have new summaries; erin's neutral stays neutral
    expect(job.customersUpdated).toBe(5);

    const db = app.db.ds;
    const rows: { external_id: string; sentiment_model: string; sentiment_score: number; sentiment_label: string; intent: string }[] = await db.query(
      `SELECT external_id, sentiment_model, sentiment_score, sentiment_label, intent FROM interaction ORDER BY external_id`,
    );
    expect(rows.every((r) => r.sentiment_model === NEW_MODEL)).toBe(true);
    const byId = new Map(rows.map((r) => [r.external_id, r]));
    expect(byId.get('a1')).toMatchObject({ sentiment_score: -0.9, sentiment_label: 'negative', intent: 'complaint' });
    expect(byId.get('b1')).toMatchObject({ sentiment_score: -0.7, sentiment_label: 'negative', intent: 'complaint' });
    expect(byId.get('d1')).toMatchObject({ sentiment_score: 0.6, sentiment_label: 'positive' });
    expect(byId.get('f1')).toMatchObject({ sentiment_score: 0.7, sentiment_label: 'positive', intent: 'other' });
    // The re-score rewrites the stored decisions too.
    const after = await decided(db);
    expect(after.get('a1')).toEqual({ complaint: true, complaintProbability: 1, unhappy: true });
    expect(after.get('f1')).toEqual({ complaint: false, complaintProbability: 0, unhappy: false });
    expect(after.get('d1')).toMatchObject({ unhappy: false });
    const viaApi = await app.gql<{ interactions: { edges: { node: { externalId: string; sentiment: { model: string } } }[] } }>(
      '{ interactions(first: 20) { edges { node { externalId complaint complaintProbability unhappy sentiment { model } } } } }',
      undefined,
      as(ANALYST),
    );
    expect(viaApi.data.interactions.edges.map((e) => e.node.sentiment.model)).toEqual(Array(8).fill(NEW_MODEL));
    const a1 = (viaApi.data.interactions.edges as { node: { externalId: string; complaint?: boolean; complaintProbability?: number; unhappy?: boolean } }[]).find((e) => e.node.externalId === 'a1')!;
    expect(a1.node).toMatchObject({ complaint: true, complaintProbability: 1, unhappy: true });

    // Listening items: alice's message now opens one; bob's too, answered already by the reply in
    // its thread; carol's answered item is not reopened; frank's open item is left to a person.
    const items: { thread_key: string; status: string; reopened_count: number; first_response_seconds: number | null; responded_by: string | null; department: string; opened_at: Date }[] =
      await db.query(
        `SELECT li.thread_key, li.status, li.reopened_count, li.first_response_seconds, li.responded_by, d.name AS department, li.opened_at
           FROM listening_item li JOIN department d ON d.id = li.department_id ORDER BY li.thread_key`,
      );
    expect(items.map((i) => [i.thread_key, i.status, i.reopened_count])).toEqual([
      ['a1', 'open', 0],
      ['b1', 'answered', 0],
      ['c1', 'answered', 0],
      ['f1', 'open', 0],
    ]);
    expect(items[0]!.department).toBe('Operations');
    expect(new Date(items[0]!.opened_at).toISOString()).toBe(at(0));
    expect(items[1]).toMatchObject({ first_response_seconds: 1800, responded_by: 'reply' });

    // Rollups equal what the stored scores say, for customers, departments and topics.
    const customer = async (id: string) => (await db.query(`SELECT sentiment_score, sentiment_label FROM customer WHERE id = $1`, [id]))[0];
    expect(await customer(ids.dave)).toMatchObject({ sentiment_label: 'positive' });
    expect((await customer(ids.dave)).sentiment_score).toBeCloseTo(0.6, 6);
    expect(await customer(ids.alice)).toMatchObject({ sentiment_label: 'negative' });
    expect(await customer(ids.frank)).toMatchObject({ sentiment_label: 'positive' });
    const drift = async (sql: string) => (await db.query(sql)).length;
    expect(
      await drift(`(SELECT customer_id, day, interaction_count, round(score_sum::numeric, 6), negative_count, positive_count FROM customer_sentiment_daily
                   EXCEPT SELECT customer_id, (occurred_at AT TIME ZONE 'UTC')::date, count(*)::int, round(sum(sentiment_score)::numeric, 6),
                     (count(*) FILTER (WHERE sentiment_label = 'negative'))::int, (count(*) FILTER (WHERE sentiment_label = 'positive'))::int
                   FROM interaction WHERE direction = 'inbound' AND customer_id IS NOT NULL GROUP BY 1, 2)`),
    ).toBe(0);
    expect(
      await drift(`(SELECT department_id, day, interaction_count, round(score_sum::numeric, 6), negative_count, positive_count FROM department_sentiment_daily
                   EXCEPT SELECT x.department_id, (i.occurred_at AT TIME ZONE 'UTC')::date, count(*)::int, round(sum(i.sentiment_score)::numeric, 6),
                     (count(*) FILTER (WHERE i.sentiment_label = 'negative'))::int, (count(*) FILTER (WHERE i.sentiment_label = 'positive'))::int
                   FROM (SELECT DISTINCT it.interaction_id, t.department_id FROM interaction_topic it JOIN topic t ON t.id = it.topic_id) x
                   JOIN interaction i ON i.id = x.interaction_id WHERE i.direction = 'inbound' GROUP BY 1, 2)`),
    ).toBe(0);
    expect(
      await drift(`(SELECT topic_id, day, interaction_count, round(score_sum::numeric, 6), negative_count, positive_count FROM topic_sentiment_daily
                   EXCEPT SELECT it.topic_id, (i.occurred_at AT TIME ZONE 'UTC')::date, count(*)::int, round(sum(i.sentiment_score)::numeric, 6),
                     (count(*) FILTER (WHERE i.sentiment_label = 'negative'))::int, (count(*) FILTER (WHERE i.sentiment_label = 'positive'))::int
                   FROM interaction_topic it JOIN interaction i ON i.id = it.interaction_id WHERE i.direction = 'inbound' GROUP BY 1, 2)`),
    ).toBe(0);
    const operations = await db.query(
      `SELECT sum(r.negative_count)::int AS neg FROM department_sentiment_daily r JOIN department d ON d.id = r.department_id WHERE d.name = 'Operations'`,
    );
    expect(operations[0].neg).toBeGreaterThanOrEqual(1); // alice's flights, now negative

    // Data teams get the changed summaries; sales get frank's record rewritten (queued for write-back).
    const events: { key: string; score: number }[] = await db.query(
      `SELECT message_key AS key, (payload->>'score')::float8 AS score FROM outbox WHERE topic = 'customer-sentiment.v1' ORDER BY batch_id, part, seq OFFSET $1`,
      [outboxBefore],
    );
    expect(new Set(events.map((e) => e.key))).toEqual(new Set([ids.alice, ids.bob, ids.carol, ids.dave, ids.frank]));
    expect(events.find((e) => e.key === ids.dave)!.score).toBeCloseTo(0.6, 6);
    const queued: { customer_id: string }[] = await db.query(`SELECT customer_id FROM crm_writeback`);
    expect(queued.map((q) => q.customer_id)).toEqual([ids.frank]);

    // Idempotent: the same model again changes nothing and opens nothing.
    const rerun = await app.gql<{ startRescore: Job }>('mutation { startRescore { id } }', undefined, as(ADMIN));
    expect(rerun.errors).toBeUndefined();
    const second2 = await finished(app, rerun.data.startRescore.id);
    expect(second2).toMatchObject({ status: 'succeeded', done: 8, changed: 0, itemsOpened: 0, customersUpdated: 0 });
    expect((await db.query(`SELECT count(*)::int AS n FROM listening_item`))[0].n).toBe(4);
    expect((await db.query(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'customer-sentiment.v1'`))[0].n).toBe(outboxBefore + events.length);
  });

  it('resumes after the process is killed (SIGKILL) mid-job, redoing only the page that had not committed', async () => {
    const seed = await startTestApp(KEYS, 'rescorekill');
    const res = await fetch(`${seed.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', ...as(ADMIN) },
      body: ndjson(Array.from({ length: 6 }, (_, i) => message(i + 1, { text: `I will cancel my next ${i + 2} flights` }))),
    });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(6);
    const killedDb = seed.database;
    await seed.stop();

    const env = { ...KEYS, EARSHOT_SENTIMENT_URL: server.url, EARSHOT_RESCORE_BATCH_SIZE: '2' };
    const proc = spawnEarshot({ ...env, DATABASE_URL: killedDb.url, EARSHOT_ROLES: 'api' });
    const url = await proc.listening(60_000);
    const sentBefore = server.requests.length;
    const held = server.hold(sentBefore + 2);
    const started = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...as(ADMIN) },
      body: JSON.stringify({ query: 'mutation { startRescore { id } }' }),
    });
    const jobId = ((await started.json()) as { data: { startRescore: { id: string } } }).data.startRescore.id;
    await held.arrived;
    await proc.kill('SIGKILL');
    held.release();
    const firstPage = server.requests[sentBefore]!.items.map((i) => i.text);

    const resumed = await startTestApp(env, 'rescorekill', killedDb);
    try {
      const job = await finished(resumed, jobId);
      expect(job).toMatchObject({ status: 'succeeded', total: 6, done: 6, changed: 6 });
      // after the restart: the page that was waiting on the model and the one after it; never the committed first page
      const after = server.requests.slice(sentBefore + 2).flatMap((r) => r.items.map((i) => i.text));
      expect(after).toHaveLength(4);
      for (const t of firstPage) expect(after).not.toContain(t);
      const models = await resumed.db.ds.query(`SELECT sentiment_model, count(*)::int AS n FROM interaction GROUP BY 1`);
      expect(models).toEqual([{ sentiment_model: NEW_MODEL, n: 6 }]);
      const items = await resumed.db.ds.query(`SELECT count(*)::int AS n FROM listening_item WHERE status = 'open'`);
      expect(items[0].n).toBe(6);
    } finally {
      await resumed.close();
    }
  });
});

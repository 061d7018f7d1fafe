import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TAXONOMY_LIMITS } from '../../src/sentiment/topic.matcher';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// upsertTopic against hostile and unlucky admins: the taxonomy's size is bounded (each phrase,
// each topic, all topics, all phrases), so one edit cannot make every later analysis slow, the
// bounds hold under concurrent edits, and a burst of edits does not re-tag everything once each.

const ADMIN = 'admin-key-0123456789';
const as = { 'x-api-key': ADMIN };
const UPSERT = `mutation($input: TopicInput!) { upsertTopic(input: $input) { topic { name phrases } job { id status } } }`;
/** the re-tag runner's pg_try_advisory_lock key (src/sentiment/retag.job.ts) */
const RETAG_RUNNER_LOCK = 7_041_976;
/** the re-score runner's (src/sentiment/rescore.job.ts) */
const RESCORE_RUNNER_LOCK = 7_041_977;

type Gql = { status: number; data: { upsertTopic?: { topic: { name: string; phrases: string[] }; job: { id: string } } } | null; errors?: { message: string; extensions?: { code?: string } }[] };

const upsert = (app: TestApp, input: Record<string, unknown>) => app.gql(UPSERT, { input: { label: 'Probe', department: 'Probe Desk', ...input } }, as) as Promise<Gql>;
const badInput = (r: Gql, pattern: RegExp) => {
  expect(r.errors?.[0]?.extensions?.code, JSON.stringify(r.errors)).toBe('BAD_USER_INPUT');
  expect(r.errors?.[0]?.message).toMatch(pattern);
};

describe('upsertTopic bounds the taxonomy', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin` }, 'topicbounds');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('refuses over-long, wordless and too many phrases with BAD_USER_INPUT (2,000 phrases of 50 "a"s and a word were taken)', async () => {
    const L = TAXONOMY_LIMITS;
    badInput(await upsert(app, { name: 'hostile_many_a', phrases: Array.from({ length: 20 }, (_, i) => 'a '.repeat(50) + `w${i}`) }), /phrase 1 .* has 102 characters: at most 100/);
    badInput(await upsert(app, { name: 'hostile_words', phrases: ['refund', 'a '.repeat(L.wordsPerPhrase) + 'w'] }), /phrase 2 .* has 11 words: at most 10/);
    badInput(await upsert(app, { name: 'hostile_long', phrases: ['ok', 'x'.repeat(L.charsPerPhrase + 1)] }), /phrase 2 .* has 101 characters: at most 100/);
    badInput(await upsert(app, { name: 'hostile_wordless', phrases: ['refund', '!!! ...'] }), /phrase 2 .* has no word/);
    badInput(await upsert(app, { name: 'hostile_count', phrases: Array.from({ length: L.phrasesPerTopic + 1 }, (_, i) => `w${i}`) }), /500/);
    const names = (await app.db.ds.query(`SELECT name FROM topic WHERE name LIKE 'hostile_%'`)) as unknown[];
    expect(names).toEqual([]);

    // at the bounds it is taken, and matches
    const longest = Array.from({ length: L.wordsPerPhrase }, (_, i) => `word${i}`).join(' ');
    const edge = Array.from({ length: L.phrasesPerTopic }, (_, i) => (i === 0 ? longest : i === 1 ? 'y'.repeat(L.charsPerPhrase) : `edge${i}`));
    const ok = await upsert(app, { name: 'edge_topic', phrases: edge });
    expect(ok.errors).toBeUndefined();
    expect(ok.data?.upsertTopic?.topic.phrases).toHaveLength(L.phrasesPerTopic);
    const a = await app.gql<{ analyzeText: { topics: { name: string }[] } }>('query($t: String!) { analyzeText(text: $t) { topics { name } } }', { t: `so: ${longest}!` }, as);
    expect(a.data.analyzeText.topics).toContainEqual({ name: 'edge_topic' });
  });

  it('bounds the phrases of all topics together', async () => {
    const L = TAXONOMY_LIMITS;
    const [{ n }] = (await app.db.ds.query(`SELECT coalesce(sum(cardinality(phrases)), 0)::int AS n FROM topic WHERE name NOT LIKE 'bulk_%'`)) as { n: number }[];
    const fits = Math.floor((L.phrasesTotal - n) / L.phrasesPerTopic);
    for (let t = 0; t < fits; t++) {
      const r = await upsert(app, { name: `bulk_${t}`, phrases: Array.from({ length: L.phrasesPerTopic }, (_, i) => `bulk${t}w${i}`) });
      expect(r.errors, `topic ${t}`).toBeUndefined();
    }
    badInput(await upsert(app, { name: `bulk_${fits}`, phrases: Array.from({ length: L.phrasesPerTopic }, (_, i) => `bulkw${i}`) }), /at most 10000 phrases in all/);
    // replacing a topic counts its new phrases, not its old ones as well
    const again = await upsert(app, { name: 'bulk_0', phrases: Array.from({ length: L.phrasesPerTopic }, (_, i) => `again${i}`) });
    expect(again.errors).toBeUndefined();
    for (let t = 0; t < fits; t++) expect((await app.gql(`mutation { deleteTopic(name: "bulk_${t}") { job { id } } }`, undefined, as)).errors).toBeUndefined();
  });
});

describe('many topics at once', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin` }, 'topiccount');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('keeps to the topic bound when new topics are saved concurrently', async () => {
    const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM topic`)) as { n: number }[];
    const tries = TAXONOMY_LIMITS.topics - n + 10;
    const results = await Promise.all(Array.from({ length: tries }, (_, i) => upsert(app, { name: `conc_${i}`, phrases: [`conc${i}`] })));
    const refused = results.filter((r) => r.errors);
    expect(refused).toHaveLength(10);
    for (const r of refused) badInput(r, /at most 200 topics/);
    const [{ total }] = (await app.db.ds.query(`SELECT count(*)::int AS total FROM topic`)) as { total: number }[];
    expect(total).toBe(TAXONOMY_LIMITS.topics);
    // an existing topic can still be replaced at the bound
    expect((await upsert(app, { name: 'conc_0', phrases: ['conc zero'] })).errors).toBeUndefined();
    await app.services.retag.task.idle();
  });
});

describe('a burst of taxonomy edits', () => {
  let app: TestApp;
  let holder: Client;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin`, EARSHOT_ROLES: 'api,ingest' }, 'topicburst');
    holder = new Client({ connectionString: app.database.url });
    await holder.connect();
  });
  afterAll(async () => {
    await holder?.end();
    await app?.close();
  });

  it('re-tags every stored interaction once for edits queued together, not once per edit', async () => {
    const N = 20;
    const texts = Array.from({ length: 60 }, (_, i) => `burst item gizmo${i % N} stopped working`);
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', ...as },
      body: ndjson(texts.map((text, i) => message(i, { externalId: `burst-${i}`, eventId: `burst-${i}`, text }))),
    });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(texts.length);
    await app.services.retag.task.idle();

    // the runner is busy elsewhere (another replica holds its lock) while N edits come in
    await holder.query('SELECT pg_advisory_lock($1)', [RETAG_RUNNER_LOCK]);
    let jobs: string[];
    try {
      const edits = await Promise.all(Array.from({ length: N }, (_, i) => upsert(app, { name: `gizmo_${i}`, department: 'Gizmo Desk', phrases: [`gizmo${i}`] })));
      for (const e of edits) expect(e.errors).toBeUndefined();
      jobs = edits.map((e) => Buffer.from(e.data!.upsertTopic!.job.id, 'base64').toString().split(':')[1]!);
      await app.services.retag.task.idle();
    } finally {
      await holder.query('SELECT pg_advisory_unlock($1)', [RETAG_RUNNER_LOCK]);
    }
    app.services.retag.kick();
    await app.services.retag.task.idle();

    const rows = (await app.db.ds.query(`SELECT id, status, started_at, done FROM retag_job WHERE id = ANY($1::uuid[])`, [jobs])) as { status: string; started_at: Date; done: number }[];
    expect(rows).toHaveLength(N);
    for (const r of rows) expect(r).toMatchObject({ status: 'succeeded' });
    // one pass (each pass stamps its own start); before, one pass per edit
    expect(new Set(rows.map((r) => r.started_at.getTime())).size).toBe(1);
    expect(rows[0]!.done).toBeGreaterThanOrEqual(texts.length);
    // and every edit is in the tags
    const [{ n }] = (await app.db.ds.query(
      `SELECT count(*)::int AS n FROM interaction_topic it JOIN topic t ON t.id = it.topic_id JOIN interaction i ON i.id = it.interaction_id
        WHERE t.name LIKE 'gizmo\\_%' AND i.text LIKE 'burst item %'`,
    )) as { n: number }[];
    expect(n).toBe(texts.length);
  });

  it('gives the event loop turns while it re-tags long texts (500 texts of 110 kB held it 1.9 s in one chunk)', async () => {
    const texts = Array.from({ length: 500 }, (_, i) => `long item ${i}`);
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', ...as },
      body: ndjson(texts.map((text, i) => message(1_000 + i, { externalId: `long-${i}`, eventId: `long-${i}`, text }))),
    });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(texts.length);
    await app.services.retag.task.idle();
    // long stored texts (as a 256 KiB ingest limit allows), each with a phrase of the topic below
    await app.db.ds.query(`UPDATE interaction SET text = text || ' ' || repeat('my parcel was late and the driver was rude, ', 2500) || ' wombat saddle' WHERE text LIKE 'long item %'`);

    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    try {
      const edit = await upsert(app, { name: 'wombat_saddle', department: 'Saddlery', phrases: ['wombat saddle'] });
      expect(edit.errors).toBeUndefined();
      await app.services.retag.task.idle();
    } finally {
      delay.disable();
    }
    const [{ n }] = (await app.db.ds.query(
      `SELECT count(*)::int AS n FROM interaction_topic it JOIN topic t ON t.id = it.topic_id JOIN interaction i ON i.id = it.interaction_id
        WHERE t.name = 'wombat_saddle' AND i.text LIKE 'long item %'`,
    )) as { n: number }[];
    // the phrase sits past the first 100,000 characters: only the part the analyzer scores is matched, as at ingest
    expect(n).toBe(0);
    const [{ m }] = (await app.db.ds.query(
      `SELECT count(*)::int AS m FROM interaction_topic it JOIN topic t ON t.id = it.topic_id JOIN interaction i ON i.id = it.interaction_id
        WHERE t.name = 'delivery' AND i.text LIKE 'long item %'`,
    )) as { m: number }[];
    expect(m).toBe(texts.length);
    // each text takes a few ms to match; the job used to match a whole chunk in one turn (1.9 s
    // here); the longest stall measured now is under 60 ms, and the bound leaves room for a
    // machine busy with other test files
    expect(delay.max / 1e6).toBeLessThan(1_000);
  });
});

describe('the taxonomy edit lock', () => {
  // an app of its own: the other describes fill the taxonomy to its bounds
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin` }, 'topiclock');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('saves a topic while a re-score job runs (the edit lock has a key of its own)', async () => {
    // The re-score runner holds its session lock for the whole job; the edit lock once shared its key.
    const runner = new Client({ connectionString: app.database.url });
    await runner.connect();
    try {
      await runner.query('SELECT pg_advisory_lock($1)', [RESCORE_RUNNER_LOCK]);
      const r = await upsert(app, { name: 'while_rescore', phrases: ['parcel locker'] });
      expect(r.errors).toBeUndefined();
      expect(r.data?.upsertTopic?.topic.name).toBe('while_rescore');
    } finally {
      await runner.end();
    }
  });
});

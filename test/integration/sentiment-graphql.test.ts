import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

const ADMIN = 'admin-key-0123456789';
const ANALYST = 'analyst-key-0123456789';
const as = (key: string) => ({ 'x-api-key': key });

const ANALYZE = `query($text: String!, $lang: String) { analyzeText(text: $text, lang: $lang) {
  score label confidence intent intentConfidence complaint complaintProbability unhappy logit model lang topics { name department } explanation { token weight } } }`;

type Analysis = {
  score: number;
  label: string;
  confidence: number;
  intent: string;
  complaint: boolean;
  complaintProbability: number;
  unhappy: boolean;
  logit: number;
  model: string;
  lang: string;
  topics: { name: string; department: string }[];
  explanation: { token: string; weight: number }[];
};

describe('analyzeText and the editable taxonomy', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin,${ANALYST}:analyst` }, 'sentiment');
  });
  afterAll(async () => {
    await app?.close();
  });

  const analyze = async (text: string, lang?: string) => {
    const r = await app.gql<{ analyzeText: Analysis }>(ANALYZE, { text, lang }, as(ANALYST));
    expect(r.errors).toBeUndefined();
    return r.data.analyzeText;
  };

  it('explains a complaint: negative, complaint intent, billing topic routed to Finance, words with weights', async () => {
    const a = await analyze('I was charged twice and support is useless. Never again!');
    expect(a.label).toBe('NEGATIVE');
    expect(a.score).toBeLessThan(-0.35);
    expect(['COMPLAINT', 'CHURN_THREAT']).toContain(a.intent);
    expect(a.topics).toContainEqual({ name: 'billing', department: 'Finance' });
    expect(a.explanation.length).toBeGreaterThan(0);
    expect(a.explanation.some((e) => e.weight < 0)).toBe(true);
    expect(a.lang).toBe('en');
    expect(a.unhappy).toBe(true);
    expect(a.model).toMatch(/^earshot-linear-/);
    expect(Math.abs(a.explanation.reduce((s, e) => s + e.weight, 0) - a.logit)).toBeLessThan(0.01);
  });

  it('handles empty, emoji-only, 256 kB and unsupported-language text without failing, and refuses 1 MB with a code', async () => {
    const empty = await analyze('');
    expect(empty).toMatchObject({ label: 'NEUTRAL', score: 0 });
    const emoji = await analyze('😍😍🔥');
    expect(emoji.label).toBe('POSITIVE');
    // the most one request may hand analyzeText (EARSHOT_ANALYZE_MAX_TEXT_BYTES), scored on a worker thread
    const big = await analyze('the delivery was terrible. '.repeat(9_700));
    expect(big.label).toBe('NEGATIVE');
    const mb = await app.gql(ANALYZE, { text: 'the delivery was terrible. '.repeat(40_000) }, as(ANALYST));
    expect(mb.errors?.[0]?.extensions?.code).toBe('COST_LIMIT_EXCEEDED');
    const german = await analyze('Die Lieferung kam viel zu spät und der Kundendienst war unfreundlich.');
    expect(german.lang).toBe('de');
    expect(german.label).toBe('NEUTRAL');
    expect(german.confidence).toBeLessThanOrEqual(0.3);
  });

  it('lets an admin add a topic, re-tags stored interactions in the background and rebuilds department rollups', async () => {
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', ...as(ADMIN) },
      body: ndjson([
        message(1, { text: 'My loyalty points disappeared, this is terrible' }),
        message(2, { text: 'Love the new rewards scheme!' }),
        message(3, { text: 'Nothing to do with the new topic' }),
      ]),
    });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(3);

    const forbidden = await app.gql('mutation { upsertTopic(input: { name: "loyalty", label: "Loyalty", department: "Loyalty Team", phrases: ["points"] }) { job { id } } }', undefined, as(ANALYST));
    expect(forbidden.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    const edit = await app.gql<{ upsertTopic: { topic: { name: string; phrases: string[] }; job: { id: string; status: string } } }>(
      'mutation { upsertTopic(input: { name: "loyalty", label: "Loyalty programme", department: "Loyalty Team", phrases: ["Loyalty points", "rewards", "rewards"] }) { topic { name phrases } job { id status } } }',
      undefined,
      as(ADMIN),
    );
    expect(edit.errors).toBeUndefined();
    expect(edit.data.upsertTopic.topic.phrases).toEqual(['loyalty points', 'rewards']);

    // the background runner's pass over queued jobs (and the one more a kick during it queues)
    await app.services.retag.task.idle();
    const job = (await app.gql<{ retagJob: { status: string } }>('query($id: ID!) { retagJob(id: $id) { status done total changed progress } }', { id: edit.data.upsertTopic.job.id }, as(ADMIN))).data.retagJob;
    expect(job).toEqual({ status: 'SUCCEEDED', done: 3, total: 3, changed: 2, progress: 1 });

    const tagged = await app.gql<{ interactions: { edges: { node: { externalId: string; topics: { name: string; department: string }[] } }[] } }>(
      '{ interactions(first: 10) { edges { node { externalId topics { name department } } } } }',
      undefined,
      as(ADMIN),
    );
    const byId = new Map(tagged.data.interactions.edges.map((e) => [e.node.externalId, e.node.topics]));
    expect(byId.get('ext-1')).toContainEqual({ name: 'loyalty', department: 'Loyalty Team' });
    expect(byId.get('ext-2')).toContainEqual({ name: 'loyalty', department: 'Loyalty Team' });
    expect(byId.get('ext-3')).not.toContainEqual(expect.objectContaining({ name: 'loyalty' }));

    const rollup = await app.db.ds.query(
      `SELECT sum(r.interaction_count)::int AS n FROM department_sentiment_daily r JOIN department d ON d.id = r.department_id WHERE d.name = 'Loyalty Team'`,
    );
    expect(rollup[0].n).toBe(2);

    // new interactions are tagged with the edited taxonomy at once
    const later = await app.gql<{ analyzeText: Analysis }>(ANALYZE, { text: 'where are my rewards?' }, as(ADMIN));
    expect(later.data.analyzeText.topics).toContainEqual({ name: 'loyalty', department: 'Loyalty Team' });
  });

  it('answers BAD_USER_INPUT for an invalid topic and NOT_FOUND for an unknown one', async () => {
    const bad = await app.gql('mutation { upsertTopic(input: { name: "Bad Name", label: "x", department: "y", phrases: ["z"] }) { job { id } } }', undefined, as(ADMIN));
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const missing = await app.gql('mutation { deleteTopic(name: "no_such_topic") { job { id } } }', undefined, as(ADMIN));
    expect(missing.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const job = await app.gql('{ retagJob(id: "nope") { status } }', undefined, as(ADMIN));
    expect(job.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

// Its own app (schema): it stores interactions, which the re-tag test above counts.
describe('a topic deleted by another replica', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin` }, 'deletedtopic');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('stores, untagged, a line that matches a topic another replica deleted while this one still has it cached', async () => {
    const edit = await app.gql('mutation { upsertTopic(input: { name: "zebra", label: "Zebra", department: "Zoo Team", phrases: ["zebra stripes"] }) { topic { name } } }', undefined, as(ADMIN));
    expect(edit.errors).toBeUndefined();
    const ingest = async (externalId: string, text: string) => {
      const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...as(ADMIN) }, body: ndjson([message(0, { externalId, eventId: externalId, text })]) });
      expect(res.status).toBe(200);
      return res.json() as Promise<{ accepted: number; rejected: unknown[] }>;
    };
    const topicsOf = async (externalId: string) =>
      ((await app.db.ds.query(
        `SELECT coalesce(array_agg(t.name ORDER BY t.name) FILTER (WHERE t.name IS NOT NULL), '{}') AS names
           FROM interaction i LEFT JOIN interaction_topic it ON it.interaction_id = i.id LEFT JOIN topic t ON t.id = it.topic_id
          WHERE i.external_id = $1 GROUP BY i.id`,
        [externalId],
      )) as { names: string[] }[]).map((r) => r.names);
    // this process loads the taxonomy with the new topic and tags with it
    expect(await ingest('zebra-1', 'I love the zebra stripes on this jacket')).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(await topicsOf('zebra-1')).toEqual([['zebra']]);
    // another replica deletes it: this process's cached taxonomy still has it for a while
    await app.db.ds.query(`DELETE FROM topic WHERE name = 'zebra'`);
    expect(await ingest('zebra-2', 'The zebra stripes faded after one wash')).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
    expect(await topicsOf('zebra-2')).toEqual([[]]);
  });
});

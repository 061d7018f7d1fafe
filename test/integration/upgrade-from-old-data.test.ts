import fs from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import erasureSchema from '../../schema/customer-erasure.v1.schema.json';
import sentimentSchema from '../../schema/customer-sentiment.v1.schema.json';
import enrichedSchema from '../../schema/interactions.enriched.v1.schema.json';
import gapSchema from '../../schema/listening-gap.v1.schema.json';
import { migrations } from '../../migrations';
import { ndjson, startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, readTopic, stopAndDropTopics, testKafka, waitFor, type KafkaNames, type Received } from '../support/kafka-fixtures';
import { createTestDatabase, REPO_ROOT, type TestDatabase } from '../support/postgres';

// An operator upgrades a running Earshot whose data an older release wrote. The fixture is that
// release's database as its own code wrote it (test/fixtures/upgrade/release-53bcc46.sql: per-event
// outbox rows, the customer daily rollup as a table, interaction_identity, summaries computed from
// the rollup, no day sums on the customer row), with events left unsent, open listening items and
// a pending merge suggestion. The current code migrates it and must answer as the old one did,
// compute from the old interactions what it computes from its own, and publish the old events once.

const FIXTURE = path.join(REPO_ROOT, 'test/fixtures/upgrade/release-53bcc46.sql');
/** the old release ran on this UTC day; the upgrade happens this many days later */
const WRITTEN_ON = '2026-12-04';
const DAYS_LATER = 20;
const DAY_MS = 86_400_000;

/** What the old release's API answered before it was stopped (customers by name; two "Lee Twin"). */
const OLD_CUSTOMERS = [
  { name: 'Lee Twin', score: 0.193, label: 'NEUTRAL', count: 1 },
  { name: 'Lee Twin', score: 0.649, label: 'POSITIVE', count: 1 },
  { name: 'Mia Rossi', score: 0.3973794194909902, label: 'POSITIVE', count: 2 },
  { name: 'Olga Old', score: -0.28231089788137836, label: 'NEUTRAL', count: 2 },
  { name: 'Pat Open', score: -0.7998719306754459, label: 'NEGATIVE', count: 3 },
  { name: 'Quinn Quiet', score: 0.24726685723429967, label: 'NEUTRAL', count: 4 },
  { name: 'Sam Steady', score: 0.1282766048801541, label: 'NEUTRAL', count: 3 },
];

interface CustomerNode {
  id: string;
  displayName: string;
  sentiment: { score: number | null; label: string | null; trend: number | null; interactionCount: number };
  interactions: { edges: { node: { direction: string; occurredAt: string; sentiment: { score: number } } }[] };
}
const CUSTOMERS = `{ customers(first: 20) { totalCount edges { node { id displayName sentiment { score label trend interactionCount }
  interactions(first: 10) { edges { node { direction occurredAt sentiment { score } } } } } } } }`;

const utcDay = (ms: number) => Math.floor(ms / DAY_MS);

/**
 * The summary the README states, from a customer's inbound interactions: a mean decayed with a
 * 30-day half-life from the customer's newest UTC day, and the trend as of today (the mean of the
 * last 30 UTC days minus that of the 30 before, null when either has none).
 */
function expectedSummary(c: CustomerNode, nowMs: number): { score: number | null; trend: number | null; count: number } {
  const inbound = c.interactions.edges.map((e) => e.node).filter((n) => n.direction === 'INBOUND');
  const days = inbound.map((n) => ({ day: utcDay(Date.parse(n.occurredAt)), s: n.sentiment.score }));
  if (days.length === 0) return { score: null, trend: null, count: 0 };
  const ref = Math.max(...days.map((d) => d.day));
  let ws = 0;
  let wn = 0;
  for (const d of days) {
    const w = 0.5 ** ((ref - d.day) / 30);
    ws += d.s * w;
    wn += w;
  }
  const today = utcDay(nowMs);
  const recent = days.filter((d) => d.day > today - 30);
  const before = days.filter((d) => d.day <= today - 30 && d.day > today - 60);
  const mean = (xs: { s: number }[]) => xs.reduce((a, x) => a + x.s, 0) / xs.length;
  return { score: ws / wn, trend: recent.length && before.length ? mean(recent) - mean(before) : null, count: inbound.length };
}

function checkSummaries(customers: CustomerNode[], nowMs: number): void {

  for (const c of customers) {
    const want = expectedSummary(c, nowMs);
    expect(c.sentiment.interactionCount, c.displayName).toBe(want.count);
    if (want.score === null) expect(c.sentiment.score, c.displayName).toBeNull();
    else expect(c.sentiment.score, c.displayName).toBeCloseTo(want.score, 9);
    if (want.trend === null) expect(c.sentiment.trend, `${c.displayName}'s trend`).toBeNull();
    else expect(c.sentiment.trend, `${c.displayName}'s trend`).toBeCloseTo(want.trend, 9);
  }
}

async function gqlData<T>(app: TestApp, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const r = await app.gql<T>(query, variables);
  expect(r.errors).toBeUndefined();
  return r.data;
}

async function ingestAll(app: TestApp, lines: Record<string, unknown>[]): Promise<void> {
  const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
  expect(await res.json()).toMatchObject({ accepted: lines.length, rejected: [] });
}

describe('an upgrade over data an older release wrote (release 53bcc46)', () => {
  let base: TestDatabase;
  let unsent: string[];
  const running: { app: TestApp; names?: KafkaNames }[] = [];

  beforeAll(async () => {
    base = await createTestDatabase('upgradebase');
    const c = new Client({ connectionString: base.url });
    await c.connect();
    try {
      await c.query(fs.readFileSync(FIXTURE, 'utf8'));
      await c.query(`SET search_path = public`);
      // The old release ran DAYS_LATER days before today: every date it wrote moves forward by
      // whole days (UTC days stay whole), its triggers left out (nothing happened but time).
      const { rows } = await c.query<{ t: string; col: string; type: string }>(
        `SELECT table_name AS t, column_name AS col, data_type AS type FROM information_schema.columns
          WHERE table_schema = 'public' AND data_type IN ('timestamp with time zone', 'date') AND table_name IN
                (SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE')`,
      );
      const shift = Number((await c.query<{ d: number }>(`SELECT ((now() AT TIME ZONE 'UTC')::date - $1::date - $2::int) AS d`, [WRITTEN_ON, DAYS_LATER])).rows[0]!.d);
      await c.query(`SET session_replication_role = replica`);
      // (through a far day first: a key holding a date, the daily rollups', never meets itself)
      const by = (type: string, days: number) => (type === 'date' ? `${days}` : `make_interval(days => ${days})`);
      for (const r of rows) {
        await c.query(`UPDATE ${r.t} SET ${r.col} = ${r.col} + ${by(r.type, shift + 1_000_000)} WHERE ${r.col} IS NOT NULL`);
        await c.query(`UPDATE ${r.t} SET ${r.col} = ${r.col} - ${by(r.type, 1_000_000)} WHERE ${r.col} IS NOT NULL`);
      }
      await c.query(`SET session_replication_role = origin`);
      unsent = (await c.query<{ id: string }>(`SELECT headers->>'event-id' AS id FROM outbox WHERE sent_at IS NULL`)).rows.map((r) => r.id);
    } finally {
      await c.end();
    }
    expect(unsent.length).toBe(15);
  }, 120_000);

  /** The current release started on a copy of the old data: it migrates the database as it starts. */
  async function upgraded(names?: KafkaNames): Promise<TestApp> {
    const copy = await createTestDatabase('upgrade', base);
    const app = await startTestApp(names ? kafkaEnv(names) : {}, 'upgrade', copy);
    running.push({ app, names });
    return app;
  }

  afterAll(async () => {
    const admin = testKafka().admin();
    await admin.connect().catch(() => undefined);
    for (const r of running) {
      if (r.names) await stopAndDropTopics(r.app, admin, r.names);
      else await r.app.close();
    }
    await admin.disconnect().catch(() => undefined);
    await base?.drop();
  });

  it('every migration applies, and the API answers the counts, scores and labels the old release answered', async () => {
    const app = await upgraded();
    const applied = (await app.db.ds.query(`SELECT name FROM migration ORDER BY timestamp`)) as { name: string }[];
    expect(applied.map((r) => r.name)).toEqual(migrations.map((M) => new M().name));

    const d = await gqlData<{ customers: { totalCount: number; edges: { node: CustomerNode }[] } }>(app, CUSTOMERS);
    expect(d.customers.totalCount).toBe(OLD_CUSTOMERS.length);
    const got = d.customers.edges
      .map((e) => ({ name: e.node.displayName, score: e.node.sentiment.score, label: e.node.sentiment.label, count: e.node.sentiment.interactionCount }))
      .sort((a, b) => a.name.localeCompare(b.name) || a.score! - b.score!);
    expect(got.map((g) => ({ ...g, score: Number(g.score!.toFixed(12)) }))).toEqual(OLD_CUSTOMERS.map((o) => ({ ...o, score: Number(o.score.toFixed(12)) })));

    const i = await gqlData<{ interactions: { totalCount: number } }>(app, `{ interactions(first: 1) { totalCount } }`);
    expect(i.interactions.totalCount).toBe(20);
    const items = await gqlData<{ listeningItems: { edges: { node: { status: string } }[] } }>(app, `{ listeningItems(first: 100) { edges { node { status } } } }`);
    expect(items.listeningItems.edges.map((e) => e.node.status).sort()).toEqual([...Array(2).fill('CLOSED'), ...Array(7).fill('OPEN')]);
  });

  it("each customer's trend is the one the current code computes from the same interactions as of today", async () => {
    const app = await upgraded();
    const d = await gqlData<{ customers: { edges: { node: CustomerNode }[] } }>(app, CUSTOMERS);
    const byName = new Map(d.customers.edges.map((e) => [e.node.displayName, e.node]));
    // quiet since 45 days: no day in the last 30, so no trend (the old release stored -1.518)
    expect(byName.get('Olga Old')!.sentiment.trend).toBeNull();
    // quiet since 25 days: its days of 70 and 60 days ago left the window
    expect(byName.get('Quinn Quiet')!.sentiment.trend).not.toBeNull();
    expect(byName.get('Quinn Quiet')!.sentiment.trend).not.toBeCloseTo(1.47, 3);
    checkSummaries(d.customers.edges.map((e) => e.node), Date.now());
  });

  it('the events the old release left unsent are published once each, in the current contract', async () => {
    const names = kafkaNames('upgrade');
    const app = await upgraded(names);
    const ajv = new Ajv2020({ allErrors: true, strict: true });
    addFormats(ajv);
    const valid = {
      [`${names.prefix}interactions.enriched.v1`]: ajv.compile(enrichedSchema),
      [`${names.prefix}customer-sentiment.v1`]: ajv.compile(sentimentSchema),
      [`${names.prefix}listening-gap.v1`]: ajv.compile(gapSchema),
      [`${names.prefix}customer-erasure.v1`]: ajv.compile(erasureSchema),
    };
    const kafka = testKafka();
    const read = async () => {
      const out: (Received & { topic: string })[] = [];
      for (const topic of Object.keys(valid)) out.push(...(await readTopic(kafka, topic)).map((r) => ({ ...r, topic })));
      return out;
    };
    await waitFor('every unsent event published', async () => {
      const [r] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`)) as { n: number }[];
      return r!.n === 0;
    }, 30_000, 50);
    const published = await read();
    for (const id of unsent) expect(published.filter((m) => m.headers['event-id'] === id).length, id).toBe(1);
    const ids = published.map((m) => m.headers['event-id']);
    expect(new Set(ids).size).toBe(ids.length);
    // an item the old release escalated is not escalated again
    const escalated = published.filter((m) => m.topic.endsWith('listening-gap.v1')).map((m) => JSON.parse(m.value!.toString('utf8')) as { type: string; itemId: string });
    const items = escalated.filter((e) => e.type === 'item.escalated').map((e) => e.itemId);
    expect(items.length).toBeGreaterThan(0);
    expect(new Set(items).size).toBe(items.length);
    for (const m of published) {
      if (m.value === null) continue; // a tombstone
      const check = valid[m.topic]!;
      expect(check(JSON.parse(m.value.toString('utf8'))), `${m.topic}: ${JSON.stringify(check.errors)}`).toBe(true);
    }
  });

  it('a reply closes an item opened before the upgrade; new interactions of old customers update their summaries', async () => {
    const app = await upgraded();
    const now = Date.now();
    const at = (minAgo: number) => new Date(now - minAgo * 60_000).toISOString();
    await ingestAll(app, [
      { source: 'x', externalId: 'up-reply-1', occurredAt: at(3), direction: 'outbound', inReplyTo: 'fx-b-0', author: { handle: 'brand_care', displayName: 'Brand Care' }, text: 'We are on it, sorry.' },
      { source: 'x', externalId: 'up-new-1', occurredAt: at(2), direction: 'inbound', author: { handle: 'quinn_q', displayName: 'Quinn Quiet' }, text: 'Still no refund, this is terrible.' },
      { source: 'email', externalId: 'up-new-2', occurredAt: at(1), direction: 'inbound', author: { email: 'olga.old@example.com', displayName: 'Olga Old' }, text: 'Thanks, the parcel came, really happy.' },
    ]);
    const items = await gqlData<{ listeningItems: { edges: { node: { status: string; closeReason: string | null; customer: { displayName: string } | null } }[] } }>(
      app, `{ listeningItems(first: 100) { edges { node { status closeReason customer { displayName } } } } }`,
    );
    const pat = items.listeningItems.edges.map((e) => e.node).filter((n) => n.customer?.displayName === 'Pat Open');
    expect(pat).toEqual([{ status: 'ANSWERED', closeReason: 'reply', customer: { displayName: 'Pat Open' } }]);

    const d = await gqlData<{ customers: { edges: { node: CustomerNode }[] } }>(app, CUSTOMERS);
    const byName = new Map(d.customers.edges.map((e) => [e.node.displayName, e.node]));
    expect(byName.get('Quinn Quiet')!.sentiment.interactionCount).toBe(5);
    expect(byName.get('Olga Old')!.sentiment.interactionCount).toBe(3);
    checkSummaries(d.customers.edges.map((e) => e.node), Date.now());
  });

  it('a merge suggestion the old release left pending is accepted', async () => {
    const app = await upgraded();
    const s = await gqlData<{ mergeSuggestions: { edges: { node: { id: string; status: string } }[] } }>(app, `{ mergeSuggestions(first: 10) { edges { node { id status } } } }`);
    expect(s.mergeSuggestions.edges.map((e) => e.node.status)).toEqual(['PENDING']);
    await gqlData(app, `mutation($id: ID!) { acceptMergeSuggestion(id: $id) { __typename } }`, { id: s.mergeSuggestions.edges[0]!.node.id });
    const d = await gqlData<{ customers: { edges: { node: CustomerNode }[] } }>(app, CUSTOMERS);
    const lee = d.customers.edges.map((e) => e.node).filter((n) => n.displayName === 'Lee Twin');
    expect(lee.map((n) => n.sentiment.interactionCount)).toEqual([2]);
    checkSummaries(d.customers.edges.map((e) => e.node), Date.now());
  });
});

import type { Admin, Kafka } from 'kafkajs';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, startTestApp, type TestApp } from '../support/app';
import { gqlData, ingestAll } from '../support/api-calls';
import { kafkaEnv, kafkaNames, readTopic, testKafka, waitFor, type KafkaNames } from '../support/kafka-fixtures';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

/**
 * A DBA's defaults for the database (`ALTER DATABASE … SET`), which every new session of
 * Earshot inherits unless it pins its own: dates in another style and order, a time zone 14 hours
 * east of UTC, floats rendered with 2 significant digits, intervals and byte strings in other
 * formats, serializable transactions, backslashes in string literals as escapes, `NULL` in an
 * array literal read as the word, `x = NULL` read as `x IS NULL`, and JIT compilation of every
 * statement, however cheap.
 */
const HOSTILE: Record<string, string> = {
  DateStyle: `'SQL, DMY'`,
  TimeZone: `'Pacific/Kiritimati'`,
  extra_float_digits: '-15',
  IntervalStyle: `'sql_standard'`,
  bytea_output: `'escape'`,
  default_transaction_isolation: `'serializable'`,
  standard_conforming_strings: 'off',
  array_nulls: 'off',
  transform_null_equals: 'on',
  jit: 'on',
  jit_above_cost: '0',
};

async function alterDatabase(db: TestDatabase, settings: Record<string, string>): Promise<void> {
  const c = new Client({ connectionString: db.url });
  await c.connect();
  try {
    for (const [name, value] of Object.entries(settings)) await c.query(`ALTER DATABASE ${db.name} SET ${name} = ${value}`);
  } finally {
    await c.end();
  }
}

/** Ten authors, one message each, with texts that score apart and times just before a UTC midnight. */
function messages(): Record<string, unknown>[] {
  const texts = [
    'I love this, great service!',
    'My parcel is late and nobody answers. Terrible.',
    'How do I change my password?',
    'Awful support, I want a refund now',
    'Thanks a lot, the new app is fantastic and fast',
    'The delivery was ok I guess, a bit slow',
    'Worst experience ever, cancelling my subscription',
    'Pretty good overall but the checkout keeps crashing',
    'Nice people at the café in Zürich, helpful and kind 😀',
    'Still waiting for my invoice, please fix this',
  ];
  return texts.map((text, n) =>
    message(n, {
      text,
      author: { handle: `dba${n}`, displayName: `Dba ${n}` },
      // 23:3x:xx.xyzZ: the next calendar day in Kiritimati (UTC+14), milliseconds that must survive
      occurredAt: new Date(Date.UTC(2026, 10, 3 + n, 23, 30 + n, n, 100 + n * 7)).toISOString(),
    }),
  );
}

interface Seen {
  sent: Record<string, unknown>[];
  /** analyzeText's score of each text (computed in Node, no database involved) */
  expectedScore: Map<string, number>;
}

describe('a database whose DBA changed the session defaults (ALTER DATABASE … SET)', () => {
  let app: TestApp;
  let kafka: Kafka;
  let admin: Admin;
  let names: KafkaNames;
  const seen: Seen = { sent: [], expectedScore: new Map() };

  beforeAll(async () => {
    names = kafkaNames('dbsettings');
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    const database = await createTestDatabase('dbsettings');
    await alterDatabase(database, HOSTILE);
    app = await startTestApp(kafkaEnv(names), 'dbsettings', database);
    seen.sent = messages();
    await ingestAll(app, '', seen.sent);
    for (const m of seen.sent) {
      const { analyzeText } = await gqlData<{ analyzeText: { score: number } }>(app, '', 'query($t: String!) { analyzeText(text: $t) { score } }', { t: m.text });
      seen.expectedScore.set(m.externalId as string, analyzeText.score);
    }
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    await admin?.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin?.disconnect();
  });

  it('still runs its sessions with the hostile defaults in place (the test really sets them)', async () => {
    const c = new Client({ connectionString: app.database.url });
    await c.connect();
    try {
      const { rows } = await c.query<{ d: string; tz: string; f: string; jit: string }>(
        `SELECT current_setting('DateStyle') AS d, current_setting('TimeZone') AS tz, current_setting('extra_float_digits') AS f, current_setting('jit') AS jit`,
      );
      expect(rows[0]).toEqual({ d: 'SQL, DMY', tz: 'Pacific/Kiritimati', f: '-15', jit: 'on' });
    } finally {
      await c.end();
    }
  });

  it('runs its pooled connections without JIT compilation, though the database turns it on for every statement', async () => {
    // before: with the server's default threshold, JIT compiled the listening queue's page (its
    // planner cost passes it from a few thousand open items) and the page took twice as long
    const shown = (await Promise.all(Array.from({ length: 30 }, () => app.db.ds.query('SHOW jit')))) as { jit: string }[][];
    expect(new Set(shown.map(([r]) => r!.jit))).toEqual(new Set(['off']));
    const [explained] = (await app.db.ds.query('EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM interaction WHERE sentiment_score > -2')) as { 'QUERY PLAN': { JIT?: unknown }[] }[];
    expect(explained!['QUERY PLAN'][0]!.JIT).toBeUndefined();
  });

  it('answers interactions with the times and scores sent, and pages through all of them once', async () => {
    const got: { externalId: string; occurredAt: string; sentiment: { score: number } }[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 20; pages++) {
      const { interactions } = await gqlData<{ interactions: { edges: { node: (typeof got)[number] }[]; pageInfo: { hasNextPage: boolean; endCursor: string } } }>(
        app,
        '',
        'query($after: String) { interactions(first: 3, after: $after, order: OLDEST) { edges { node { externalId occurredAt sentiment { score } } } pageInfo { hasNextPage endCursor } } }',
        { after },
      );
      got.push(...interactions.edges.map((e) => e.node));
      if (!interactions.pageInfo.hasNextPage) break;
      after = interactions.pageInfo.endCursor;
    }
    expect(got.map((g) => g.externalId)).toEqual(seen.sent.map((m) => m.externalId));
    for (const [i, g] of got.entries()) {
      expect(g.occurredAt).toBe(seen.sent[i]!.occurredAt);
      expect(g.sentiment.score).toBe(seen.expectedScore.get(g.externalId));
    }
  });

  it('stores the UTF-8 text sent, as a UTF-8 client of the database reads it', async () => {
    const c = new Client({ connectionString: app.database.url, client_encoding: 'UTF8', options: '-c DateStyle=ISO,MDY' });
    await c.connect();
    try {
      const { rows } = await c.query<{ external_id: string; text: string; occurred_at: Date }>(`SELECT external_id, text, occurred_at FROM interaction`);
      const sent = new Map(seen.sent.map((m) => [m.externalId as string, m]));
      expect(rows).toHaveLength(seen.sent.length);
      for (const r of rows) {
        expect(r.text).toBe(sent.get(r.external_id)!.text);
        expect(r.occurred_at.toISOString()).toBe(sent.get(r.external_id)!.occurredAt);
      }
    } finally {
      await c.end();
    }
  });

  it('pages customers by sentiment score (a float cursor) through every customer once, in score order', async () => {
    const got: { id: string; sentiment: { score: number; lastInteractionAt: string } }[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 20; pages++) {
      const { customers } = await gqlData<{ customers: { edges: { node: (typeof got)[number] }[]; pageInfo: { hasNextPage: boolean; endCursor: string } } }>(
        app,
        '',
        'query($after: String) { customers(first: 1, after: $after, order: MOST_NEGATIVE) { edges { node { id sentiment { score lastInteractionAt } } } pageInfo { hasNextPage endCursor } } }',
        { after },
      );
      got.push(...customers.edges.map((e) => e.node));
      if (!customers.pageInfo.hasNextPage) break;
      after = customers.pageInfo.endCursor;
    }
    expect(new Set(got.map((g) => g.id)).size).toBe(seen.sent.length);
    expect(got).toHaveLength(seen.sent.length);
    const scores = got.map((g) => g.sentiment.score);
    expect(scores).toEqual([...scores].sort((a, b) => a - b));
    const want = [...seen.expectedScore.values()].sort((a, b) => a - b);
    for (const [i, s] of scores.entries()) expect(s).toBeCloseTo(want[i]!, 12);
    expect(new Set(got.map((g) => g.sentiment.lastInteractionAt))).toEqual(new Set(seen.sent.map((m) => m.occurredAt)));
  });

  it('answers a daily sentiment trend in UTC days, with the counts and mean scores stored', async () => {
    const { sentimentTrend } = await gqlData<{ sentimentTrend: { start: string; count: number; averageScore: number | null }[] }>(
      app,
      '',
      '{ sentimentTrend(scope: ALL, bucket: DAY, from: "2026-11-03T00:00:00.000Z", to: "2026-11-14T00:00:00.000Z") { start count averageScore } }',
    );
    const want = new Map<string, number[]>();
    for (const m of seen.sent) {
      const day = `${(m.occurredAt as string).slice(0, 10)}T00:00:00.000Z`;
      want.set(day, [...(want.get(day) ?? []), seen.expectedScore.get(m.externalId as string)!]);
    }
    expect(sentimentTrend.map((p) => p.start)).toEqual(Array.from({ length: 11 }, (_, d) => new Date(Date.UTC(2026, 10, 3 + d)).toISOString()));
    for (const p of sentimentTrend) {
      const scores = want.get(p.start) ?? [];
      expect(p.count).toBe(scores.length);
      if (scores.length === 0) expect(p.averageScore).toBeNull();
      else expect(p.averageScore).toBeCloseTo(scores.reduce((a, b) => a + b, 0) / scores.length, 12);
    }
  });

  it("exports a customer's interactions and UTC days as stored", async () => {
    const m = seen.sent[4]!;
    const all = await gqlData<{ interactions: { edges: { node: { externalId: string; customer: { id: string } } }[] } }>(app, '', '{ interactions(first: 100) { edges { node { externalId customer { id } } } } }');
    const id = all.interactions.edges.find((e) => e.node.externalId === m.externalId)!.node.customer.id;
    const { customerDataExport: x } = await gqlData<{ customerDataExport: { interactions: Record<string, unknown>[]; dailySentiment: Record<string, unknown>[] } }>(
      app,
      '',
      'query($id: ID!) { customerDataExport(id: $id) }',
      { id },
    );
    expect(x.interactions).toHaveLength(1);
    const row = x.interactions[0]!;
    expect(row.occurred_at).toBe(m.occurredAt);
    expect(row.sentiment_score).toBe(seen.expectedScore.get(m.externalId as string));
    expect(x.dailySentiment.map((d) => d.day)).toEqual([`${(m.occurredAt as string).slice(0, 10)}T00:00:00.000Z`]);
  });

  it('publishes interactions.enriched.v1 and customer-sentiment.v1 events with the times and scores stored', async () => {
    const enriched = await waitFor('every enriched event to be published', async () => {
      const r = await readTopic(kafka, names.enriched).catch(() => []);
      return r.length >= seen.sent.length ? r : null;
    });
    const events = enriched.map((r) => JSON.parse(r.value!.toString('utf8')) as { externalId: string; occurredAt: string; sentiment: { score: number } });
    expect(events.map((e) => e.externalId).sort()).toEqual(seen.sent.map((m) => m.externalId as string).sort());
    const sentAt = new Map(seen.sent.map((m) => [m.externalId as string, m.occurredAt]));
    for (const e of events) {
      expect(e.occurredAt).toBe(sentAt.get(e.externalId));
      expect(e.sentiment.score).toBe(seen.expectedScore.get(e.externalId));
    }
    const summaries = await waitFor('every customer-sentiment event to be published', async () => {
      const r = await readTopic(kafka, names.sentiment).catch(() => []);
      return r.length >= seen.sent.length ? r : null;
    });
    const scores = summaries.map((r) => (JSON.parse(r.value!.toString('utf8')) as { score: number }).score).sort((a, b) => a - b);
    const want = [...seen.expectedScore.values()].sort((a, b) => a - b);
    for (const [i, s] of scores.entries()) expect(s).toBeCloseTo(want[i]!, 12);
  });
});

/**
 * An operator's own limits for the database: they stay in force for what Earshot serves, are named
 * when they cancel something, and do not keep Earshot from starting.
 */
describe("a database with an operator's statement_timeout and lock_timeout (ALTER DATABASE … SET)", () => {
  const LIMITS = { statement_timeout: `'500ms'`, lock_timeout: `'1s'` };
  let database: TestDatabase;
  let apps: TestApp[] = [];
  let started: PromiseSettledResult<TestApp>[] = [];

  // two replicas started together on the new database: the second waits for the first's migrations
  beforeAll(async () => {
    database = await createTestDatabase('dblimits');
    await alterDatabase(database, LIMITS);
    started = await Promise.allSettled([startTestApp({}, 'dblimits', database), startTestApp({}, 'dblimits', database)]);
    apps = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  }, 60_000);
  afterAll(async () => {
    for (const a of apps) await a.stop().catch(() => undefined);
    await database?.drop();
  });

  it("starts two replicas together on a new database: one waits for the other's migrations past the timeouts", async () => {
    expect(started.map((s) => (s.status === 'fulfilled' ? 'started' : String((s.reason as Error).message)))).toEqual(['started', 'started']);
    const lines = [message(91_001), message(91_002)];
    await ingestAll(apps[0]!, '', lines);
    const { interactions } = await gqlData<{ interactions: { edges: { node: { externalId: string } }[] } }>(apps[1]!, '', '{ interactions(first: 100) { edges { node { externalId } } } }');
    expect(interactions.edges.map((e) => e.node.externalId)).toEqual(expect.arrayContaining(lines.map((l) => l.externalId)));
  });

  it("keeps the operator's timeouts on every pooled connection it serves with", async () => {
    const app = apps[0]!;
    const settings = (await Promise.all(
      Array.from({ length: 30 }, () => app.db.ds.query(`SELECT current_setting('statement_timeout') AS s, current_setting('lock_timeout') AS l`)),
    )) as { s: string; l: string }[][];
    expect(new Set(settings.map(([r]) => `${r!.s} ${r!.l}`))).toEqual(new Set(['500ms 1s']));
  });

  it('names the statement_timeout when a GraphQL read runs past it (here: waiting for a table an operator locked)', async () => {
    const app = apps[0]!;
    const locker = new Client({ connectionString: database.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('SET LOCAL statement_timeout = 0');
      await locker.query('LOCK TABLE interaction IN ACCESS EXCLUSIVE MODE');
      const r = await app.gql('{ interactions(first: 1) { totalCount edges { node { id } } } }');
      expect(r.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
      expect(r.errors?.[0]?.message).toMatch(/statement_timeout/);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end();
    }
  });
});

async function tablesBySchema(db: TestDatabase): Promise<Record<string, number>> {
  const c = new Client({ connectionString: db.url });
  await c.connect();
  try {
    const { rows } = await c.query<{ nspname: string; n: number }>(
      `SELECT n.nspname, count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') GROUP BY 1`,
    );
    return Object.fromEntries(rows.map((r) => [r.nspname, r.n]));
  } finally {
    await c.end();
  }
}

async function run(db: TestDatabase, statements: string[]): Promise<void> {
  const c = new Client({ connectionString: db.url });
  await c.connect();
  try {
    for (const s of statements) await c.query(s);
  } finally {
    await c.end();
  }
}

describe("a database whose search_path an operator set (ALTER DATABASE … SET search_path)", () => {
  it('refuses to start on a schema without its data when its tables are in another, and says which', async () => {
    const database = await createTestDatabase('dbpath');
    try {
      const first = await startTestApp({}, 'dbpath', database);
      await ingestAll(first, '', [message(92_001), message(92_002)]);
      await first.stop();
      await run(database, ['CREATE SCHEMA other', `ALTER DATABASE ${database.name} SET search_path = other`]);
      // before: it started on an empty copy of its tables made in "other" and answered totalCount 0
      const again = await startTestApp({}, 'dbpath', database).then(
        async (app) => {
          const count = (await app.gql<{ interactions: { totalCount: number } }>('{ interactions { totalCount } }')).data?.interactions.totalCount;
          await app.stop();
          return `started, with ${count} interactions`;
        },
        (e: Error) => e.message,
      );
      expect(again).toMatch(/^Earshot's tables are in schema public, but its sessions' search_path \(other; .*\) leads to schema other/);
      expect(await tablesBySchema(database)).not.toHaveProperty('other');
    } finally {
      await database.drop();
    }
  }, 60_000);

  it('starts, and starts again, in a schema of its own that the search_path names', async () => {
    const database = await createTestDatabase('dbownschema');
    try {
      await run(database, ['CREATE SCHEMA earshot', `ALTER DATABASE ${database.name} SET search_path = earshot`]);
      const first = await startTestApp({}, 'dbownschema', database);
      await ingestAll(first, '', [message(93_001)]);
      await first.stop();
      const again = await startTestApp({}, 'dbownschema', database);
      try {
        expect((await gqlData<{ interactions: { totalCount: number } }>(again, '', '{ interactions { totalCount } }')).interactions.totalCount).toBe(1);
      } finally {
        await again.stop();
      }
      expect(Object.keys(await tablesBySchema(database))).toEqual(['earshot']);
    } finally {
      await database.drop();
    }
  }, 60_000);
});

describe('a database whose sessions replicate (ALTER DATABASE … SET session_replication_role = replica)', () => {
  it('refuses to start, naming the setting: PostgreSQL would fire none of its triggers', async () => {
    const database = await createTestDatabase('dbreplica');
    try {
      await run(database, [`ALTER DATABASE ${database.name} SET session_replication_role = replica`]);
      // before: it started, and the live-events trigger sent nothing for stored interactions
      const outcome = await startTestApp({}, 'dbreplica', database).then(
        async (app) => {
          await app.stop();
          return 'started';
        },
        (e: Error) => e.message,
      );
      expect(outcome).toMatch(/^its sessions' session_replication_role is replica \(.*\): PostgreSQL then fires none of the triggers/);
    } finally {
      await database.drop();
    }
  }, 60_000);
});

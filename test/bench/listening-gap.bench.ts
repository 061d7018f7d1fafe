// Query times of listeningGap and departmentInsights over one million interactions:
// `npm run build && node dist/test/bench/listening-gap.bench.js` (BENCH_INTERACTIONS=1000000, BENCH_RUNS=30).
// The data is generated with INSERT … SELECT generate_series straight into a fresh, migrated
// database (not through the pipeline: this measures the reads), over 180 days: interactions with
// topics, the daily rollups the pipeline keeps, and the listening items of complaints and questions,
// two thirds of them answered after a random delay. Then each query runs BENCH_RUNS times per window.
import 'reflect-metadata';
import path from 'node:path';
import { openDatabase } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../src/db/embedded-postgres';
import { ListeningGapService } from '../../src/listening-gap/listening-gap.service';
import { TaxonomyService } from '../../src/sentiment/taxonomy.service';
import { createLogger } from '../../src/shared/logger';
import { createTestDatabase, findTestPostgres, REPO_ROOT, TEST_PG_ENV } from '../support/postgres';

const N = Number(process.env.BENCH_INTERACTIONS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 30);
const CUSTOMERS = Math.max(1, Math.round(N / 20));
const DAYS = 180;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

async function main(): Promise<void> {
  const log = createLogger('warn');
  let embedded: EmbeddedPostgresHandle | null = null;
  let admin = await findTestPostgres();
  if (!admin) {
    embedded = await startEmbeddedPostgres(path.join(REPO_ROOT, '.earshot', 'bench'), 54331, log);
    admin = embedded.url;
  }
  process.env[TEST_PG_ENV] = admin;
  const database = await createTestDatabase('gapbench');
  const config = loadConfig({ DATABASE_URL: database.url, LOG_LEVEL: 'warn' });
  const db = await openDatabase(config, log);
  try {
    const ds = db.ds;
    await new TaxonomyService(ds).ensureSeeded();
    const gap = new ListeningGapService(ds, config.listeningGap);
    await gap.ensureDefaultDepartment();

    const t0 = performance.now();
    await ds.query(`SELECT setseed(0.42)`);
    await ds.query(`INSERT INTO customer (display_name, interaction_count) SELECT 'customer ' || g, 20 FROM generate_series(1, $1) g`, [CUSTOMERS]);
    await ds.query(`CREATE UNLOGGED TABLE bench_customer AS SELECT row_number() OVER () AS n, id FROM customer`);
    await ds.query(`CREATE INDEX ON bench_customer (n)`);
    // one in eight is a company reply; the rest are inbound with a score, a label and an intent
    await ds.query(
      `INSERT INTO interaction (source, external_id, text, occurred_at, direction, author_handle, sentiment_score, sentiment_label,
                               sentiment_confidence, intent, customer_id)
       SELECT src, 'b' || g, 'synthetic interaction ' || g, ts, dir, 'author' || c, score,
              CASE WHEN score >= 0.35 THEN 'positive' WHEN score <= -0.35 THEN 'negative' ELSE 'neutral' END, 0.8,
              CASE WHEN dir = 'outbound' THEN 'other' WHEN r < 0.25 THEN 'complaint' WHEN r < 0.40 THEN 'question' WHEN r < 0.60 THEN 'praise' ELSE 'other' END,
              bc.id
         FROM (SELECT g, (ARRAY['x','facebook','instagram','email','chat','trustpilot'])[1 + g % 6] AS src,
                      now() - random() * interval '${DAYS} days' AS ts,
                      CASE WHEN g % 8 = 0 THEN 'outbound' ELSE 'inbound' END AS dir,
                      1 + (g::bigint * 7919) % $2 AS c, random() AS r, round((random() * 2 - 1)::numeric, 3)::float8 AS score
                 FROM generate_series(1, $1) g) x
         JOIN bench_customer bc ON bc.n = x.c`,
      [N, CUSTOMERS],
    );
    const tInteractions = performance.now();
    // topics: three quarters of inbound messages get one (by hash), one in ten a second one
    await ds.query(
      `INSERT INTO interaction_topic (interaction_id, topic_id)
       SELECT i.id, t.id FROM interaction i
         JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM topic) t ON t.k = abs(hashtext(i.external_id)) % 9
        WHERE i.direction = 'inbound' AND abs(hashtext(i.external_id || 'a')) % 4 <> 0
       UNION
       SELECT i.id, t.id FROM interaction i
         JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM topic) t ON t.k = abs(hashtext(i.external_id || 'b')) % 9
        WHERE i.direction = 'inbound' AND abs(hashtext(i.external_id || 'c')) % 10 = 0`,
    );
    await ds.query(
      `INSERT INTO department_sentiment_daily (department_id, day, interaction_count, score_sum, negative_count, positive_count)
       SELECT x.department_id, x.day, count(*), sum(x.s), count(*) FILTER (WHERE x.l = 'negative'), count(*) FILTER (WHERE x.l = 'positive')
         FROM (SELECT DISTINCT i.id, t.department_id, (i.occurred_at AT TIME ZONE 'UTC')::date AS day, i.sentiment_score AS s, i.sentiment_label AS l
                 FROM interaction i JOIN interaction_topic it ON it.interaction_id = i.id JOIN topic t ON t.id = it.topic_id
                WHERE i.direction = 'inbound') x
        GROUP BY 1, 2`,
    );
    // items: every inbound complaint and question; 65 % answered after up to two days, 5 % closed by a person
    await ds.query(
      `INSERT INTO listening_item (source, thread_key, interaction_id, last_interaction_id, author_handle, customer_id, department_id,
            intent, sentiment_score, status, opened_at, last_opened_at, last_inbound_at, sla_seconds, due_at, first_response_at,
            first_response_seconds, responded_by, closed_at, close_reason)
       SELECT i.source, i.external_id, i.id, i.id, i.author_handle, i.customer_id,
              coalesce((SELECT t.department_id FROM interaction_topic it JOIN topic t ON t.id = it.topic_id WHERE it.interaction_id = i.id LIMIT 1),
                       (SELECT id FROM department WHERE name = 'Customer Care')),
              i.intent, i.sentiment_score,
              CASE WHEN x.answered AND i.occurred_at + x.delay < now() THEN 'answered' WHEN x.r < 0.70 THEN 'closed' ELSE 'open' END,
              i.occurred_at, i.occurred_at, i.occurred_at, x.sla, i.occurred_at + make_interval(secs => x.sla),
              CASE WHEN x.answered AND i.occurred_at + x.delay < now() THEN i.occurred_at + x.delay END,
              CASE WHEN x.answered AND i.occurred_at + x.delay < now() THEN extract(epoch FROM x.delay)::int END,
              CASE WHEN x.answered AND i.occurred_at + x.delay < now() THEN 'reply' END,
              CASE WHEN x.answered AND i.occurred_at + x.delay < now() THEN i.occurred_at + x.delay
                   WHEN x.r < 0.70 THEN i.occurred_at + interval '3 days' END,
              CASE WHEN x.answered AND i.occurred_at + x.delay < now() THEN 'reply' WHEN x.r < 0.70 THEN 'spam' END
         FROM interaction i
         CROSS JOIN LATERAL (SELECT random() AS r, random() * random() * interval '48 hours' AS delay,
                                    CASE WHEN i.source IN ('email') THEN 86400 WHEN i.source = 'chat' THEN 3600 ELSE 14400 END AS sla) y
         CROSS JOIN LATERAL (SELECT y.r < 0.65 AS answered, y.delay, y.sla, y.r) x
        WHERE i.direction = 'inbound' AND i.intent IN ('complaint', 'question')`,
    );
    await ds.query(`DROP TABLE bench_customer`);
    await ds.query(`VACUUM ANALYZE`);
    const [counts] = (await ds.query(
      `SELECT (SELECT count(*) FROM interaction)::int AS interactions, (SELECT count(*) FROM interaction_topic)::int AS topics,
              (SELECT count(*) FROM listening_item)::int AS items, (SELECT count(*) FROM listening_item WHERE status = 'open')::int AS open`,
    )) as { interactions: number; topics: number; items: number; open: number }[];
    console.log(
      `generated ${counts!.interactions.toLocaleString('en')} interactions, ${counts!.topics.toLocaleString('en')} topic tags, ${counts!.items.toLocaleString('en')} listening items (${counts!.open.toLocaleString('en')} open) over ${DAYS} days in ${((performance.now() - t0) / 1000).toFixed(1)} s (interactions ${((tInteractions - t0) / 1000).toFixed(1)} s)`,
    );

    const now = Date.now();
    const day = 86_400_000;
    const cases: [string, () => Promise<unknown>][] = [
      ['listeningGap, last 7 days', () => gap.listeningGap(new Date(now - 7 * day), new Date(now))],
      ['listeningGap, last 30 days', () => gap.listeningGap(new Date(now - 30 * day), new Date(now))],
      ['listeningGap, all 180 days', () => gap.listeningGap(new Date(now - 181 * day), new Date(now))],
      ['listeningGap, 30 days, one department and channel', () => gap.listeningGap(new Date(now - 30 * day), new Date(now), 'Finance', 'x')],
      ['departmentInsights, last 7 days', () => gap.departmentInsights(new Date(now - 7 * day), new Date(now))],
      ['departmentInsights, last 30 days', () => gap.departmentInsights(new Date(now - 30 * day), new Date(now))],
      ['departmentInsights, last 90 days', () => gap.departmentInsights(new Date(now - 90 * day), new Date(now))],
      ['openItems, first 50, most urgent', () => gap.openItems({ first: 50 })],
    ];
    console.log(`\n| query (${counts!.interactions.toLocaleString('en')} interactions) | p50 ms | p99 ms |\n| --- | ---: | ---: |`);
    for (const [name, run] of cases) {
      await run(); // warm the cache and the plan
      const times: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const s = performance.now();
        await run();
        times.push(performance.now() - s);
      }
      console.log(`| ${name} | ${pct(times, 50).toFixed(1)} | ${pct(times, 99).toFixed(1)} |`);
    }
    console.log(`\n(${RUNS} runs each after one warm-up; load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')} on ${(await import('node:os')).cpus().length} cores)`);
  } finally {
    await db.close();
    await database.drop();
    if (embedded) await embedded.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

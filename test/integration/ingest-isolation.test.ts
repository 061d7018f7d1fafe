import { randomUUID } from 'node:crypto';
import { type Admin, type Kafka } from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toGlobalId } from '../../src/graphql/relay';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, produce, stopAndDropTopics, testKafka, waitFor } from '../support/kafka-fixtures';

/**
 * Analysts' GraphQL reads that hold every connection they can get (here: 20 reads of
 * `mergeSuggestions` while an operator's session holds `merge_suggestion` in ACCESS EXCLUSIVE
 * mode, a table ingest of new authors never touches) must not hold up ingest: a `POST /ingest`
 * of 10 lines and a Kafka message are stored within seconds, as without the reads. Before,
 * one pool (DATABASE_POOL_SIZE) served both, the reads held all of it for their time budget
 * (EARSHOT_GRAPHQL_TIME_BUDGET_MS, 15 s), and ingest waited for a connection until the pool's
 * 10 s connect timeout: /ingest answered 503, and the Kafka partition backed off.
 */
describe('ingest keeps connections of its own while the API holds its pool', () => {
  const names = kafkaNames('isolation');
  const READS = 20;
  const DEADLINE_MS = 5_000;
  const QUERY = '{ mergeSuggestions(first: 5) { edges { node { id } } } }';
  let kafka: Kafka;
  let admin: Admin;
  let app: TestApp;
  /** the test's own session, outside the app's pools: polls for stored rows and lock waiters */
  let own: pg.Client;
  let seq = 0;

  const stored = async (externalIds: string[]): Promise<number> =>
    (await own.query<{ n: number }>(`SELECT count(*)::int AS n FROM interaction WHERE source = 'x' AND external_id = ANY($1)`, [externalIds])).rows[0]!.n;

  /** a POST /ingest of 10 new authors' lines, and one Kafka message, each timed until stored */
  const ingestBoth = async (label: string): Promise<{ httpStatus: number; httpMs: number; kafkaMs: number }> => {
    const base = 500_000 + 100 * seq++;
    const lines = Array.from({ length: 10 }, (_, i) => message(base + i, { externalId: `iso-${label}-${i}`, eventId: `iso-${label}-${i}`, author: { handle: `iso-${label}-${i}` } }));
    const kafkaId = `iso-${label}-kafka`;
    const kafkaStarted = performance.now();
    const kafkaStored = (async () => {
      await produce(kafka, names.topic, [{ key: kafkaId, value: JSON.stringify(message(base + 50, { externalId: kafkaId, eventId: kafkaId, author: { handle: kafkaId } })) }]);
      // polled with a deadline: a consumer that waits for a connection fails here
      await waitFor(`the Kafka message ${kafkaId} to be stored`, async () => (await stored([kafkaId])) === 1, 4 * DEADLINE_MS, 20);
      return performance.now() - kafkaStarted;
    })();
    const httpStarted = performance.now();
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: ndjson(lines),
    }).catch(() => null);
    const httpMs = performance.now() - httpStarted;
    const httpStatus = res?.status ?? 0;
    const kafkaMs = await kafkaStored;
    if (httpStatus === 200) expect(await stored(lines.map((l) => String(l.externalId)))).toBe(10);
    return { httpStatus, httpMs, kafkaMs };
  };

  /** the app's backends waiting for a lock on merge_suggestion */
  const waiters = async (holderPid: number): Promise<number> =>
    (
      await own.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid NOT IN ($1, pg_backend_pid()) AND wait_event_type = 'Lock' AND query ILIKE '%merge_suggestion%'`,
        [holderPid],
      )
    ).rows[0]!.n;

  beforeAll(async () => {
    kafka = testKafka();
    admin = kafka.admin();
    await admin.connect();
    // the defaults that matter here: DATABASE_POOL_SIZE 10, EARSHOT_GRAPHQL_CONCURRENCY 16, a 15 s budget
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'api,ingest' }), 'isolation');
    own = new pg.Client({ connectionString: app.database.url });
    await own.connect();
    // the consumer has joined and the pipeline is warm
    const warm = await ingestBoth('warm');
    expect(warm.httpStatus).toBe(200);
  }, 120_000);

  afterAll(async () => {
    await own?.end();
    await stopAndDropTopics(app, admin, names);
  });

  it('stores a POST /ingest and a Kafka message within seconds while 20 GraphQL reads wait on a lock', { timeout: 120_000 }, async () => {
    const idle = await ingestBoth('idle');
    expect(idle.httpStatus).toBe(200);

    const holder = new pg.Client({ connectionString: app.database.url });
    await holder.connect();
    let reads: Promise<number[]> | null = null;
    let busy: Awaited<ReturnType<typeof ingestBoth>>;
    let held = 0;
    let ready: { status: number; body: string; ms: number };
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE merge_suggestion IN ACCESS EXCLUSIVE MODE');
      reads = Promise.all(
        Array.from({ length: READS }, async () => {
          const res = await fetch(`${app.url}/graphql`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ query: QUERY }),
          }).catch(() => null);
          await res?.arrayBuffer();
          return res?.status ?? 0;
        }),
      );
      // every connection the API can take waits on the lock (10, the whole pool, before)
      held = await waitFor(
        'the reads to hold the API pool',
        async () => {
          const n = await waiters(holder.processID!);
          return n >= (app.db.ds.options as { poolSize: number }).poolSize ? n : null;
        },
        20_000,
        20,
      );
      // as if its 10 s cache ran out now: ingest reloads the taxonomy while the API holds its pool
      app.services.taxonomy.invalidate();
      const readyStarted = performance.now();
      const [b, r] = await Promise.all([
        ingestBoth('busy'),
        fetch(`${app.url}/readyz`).then(async (res) => ({ status: res.status, body: await res.text(), ms: performance.now() - readyStarted }), (e) => ({ status: 0, body: String(e), ms: performance.now() - readyStarted })),
      ]);
      busy = b;
      ready = r;
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
    const statuses = await reads;
    console.info(
      `ingest-isolation: ${held} reads holding connections on the lock; POST /ingest of 10 lines ${busy.httpStatus} in ${busy.httpMs.toFixed(0)} ms (idle: ${idle.httpMs.toFixed(0)} ms), Kafka message stored in ${busy.kafkaMs.toFixed(0)} ms (idle: ${idle.kafkaMs.toFixed(0)} ms); reads answered ${[...new Set(statuses)].join(',')}`,
    );
    console.info(`ingest-isolation: /readyz meanwhile ${ready!.status} ${ready!.body} in ${ready!.ms.toFixed(0)} ms`);
    expect(busy.httpStatus).toBe(200);
    expect(busy.httpMs).toBeLessThan(DEADLINE_MS);
    expect(busy.kafkaMs).toBeLessThan(DEADLINE_MS);
    // the database answers: the process that stores is not "database unreachable"
    expect(ready!.status).toBe(200);
    expect(ready!.ms).toBeLessThan(DEADLINE_MS);
    // the reads themselves were answered once the lock was gone
    expect(statuses.every((s) => s === 200)).toBe(true);
  });

  it('GraphQL mutations that write work across the two pools: ingestInteractions, mergeCustomers, eraseCustomer', { timeout: 60_000 }, async () => {
    const label = `mut${seq++}`;
    // nothing alike: the identity resolver must not link them on its own
    const handles = ['quokka', 'marmot', 'pelican'].map((w) => `${w}${randomUUID().slice(0, 6)}`);
    const input = ['a', 'b', 'c'].map((who, i) => message(600_000 + i, { externalId: `iso-${label}-${who}`, eventId: `iso-${label}-${who}`, author: { handle: handles[i]! }, direction: 'INBOUND' }));
    const ingested = await app.gql<{ ingestInteractions: { accepted: number } }>('mutation($input: [InteractionInput!]!) { ingestInteractions(input: $input) { accepted } }', { input });
    expect(ingested.errors).toBeUndefined();
    expect(ingested.data.ingestInteractions.accepted).toBe(3);
    const owner = async (who: string) =>
      (await own.query<{ id: string }>(`SELECT customer_id AS id FROM interaction WHERE source = 'x' AND external_id = $1`, [`iso-${label}-${who}`])).rows[0]!.id;
    const [a, b, c] = [await owner('a'), await owner('b'), await owner('c')];
    expect(new Set([a, b, c]).size).toBe(3);

    const merged = await app.gql(`mutation($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "ingest-isolation") { __typename } }`, {
      s: toGlobalId('Customer', a),
      m: toGlobalId('Customer', b),
    });
    expect(merged.errors).toBeUndefined();
    expect((await own.query(`SELECT merged_into_id FROM customer WHERE id = $1`, [b])).rows[0]).toEqual({ merged_into_id: a });
    expect(await owner('b')).toBe(a);

    const erased = await app.gql(`mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-isolation") { customerId } }`, { id: toGlobalId('Customer', c) });
    expect(erased.errors).toBeUndefined();
    // the erased customer's interaction keeps no text
    expect((await own.query(`SELECT text FROM interaction WHERE source = 'x' AND external_id = $1`, [`iso-${label}-c`])).rows[0]?.text ?? '').not.toContain(String(input[2]!.text));
  });
});

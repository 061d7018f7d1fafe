import { randomBytes } from "node:crypto";
import pg from "pg";
import type { Admin, Kafka } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { message, ndjson, startTestApp, type TestApp } from "../support/app";
import {
  kafkaEnv,
  kafkaNames,
  produce,
  readTopic,
  testKafka,
  waitFor,
} from "../support/kafka-fixtures";
import {
  createTestDatabase,
  TEST_PG_ENV,
  type TestDatabase,
} from "../support/postgres";

/**
 * Ordinary maintenance by a database operator under a running Earshot (api and ingest, Kafka on):
 * a table held in ACCESS EXCLUSIVE mode (VACUUM FULL, ALTER TABLE), a low `statement_timeout`,
 * idle sessions ended by `idle_session_timeout`. Lines must wait, bounded (503, a partition that
 * backs off and says why), never be refused or dead-lettered, and be stored once afterwards.
 */
describe("database maintenance under a running Earshot", () => {
  const names = kafkaNames("dbop");
  let kafka: Kafka;
  let kafkaAdmin: Admin;
  let app: TestApp;
  let admin: pg.Client;
  /** the test's own session on the app's database, for its DDL (the app's pool has its sessions ended) */
  let own: pg.Client;

  const count = async (like: string): Promise<number> =>
    (
      (
        await own.query(
          `SELECT count(*)::int AS n FROM interaction WHERE external_id LIKE $1`,
          [like],
        )
      ).rows as { n: number }[]
    )[0]!.n;
  const post = async (lines: unknown[], timeoutMs = 8_000) => {
    const started = Date.now();
    const res = await fetch(`${app.url}/ingest`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: ndjson(lines),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return {
      status: res.status,
      body: (await res.json()) as {
        accepted?: number;
        duplicates?: number;
        rejected?: unknown[];
        error?: { code: string; message: string };
      },
      ms: Date.now() - started,
    };
  };
  /** the database's settings for new sessions; the app's sessions are ended so that its pool opens new ones */
  const setDatabase = async (setting: string, value: string | null) => {
    await admin.query(
      `ALTER DATABASE ${app.database.name} ${value === null ? `RESET ${setting}` : `SET ${setting} = '${value}'`}`,
    );
    await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2`,
      [app.database.name, own.processID],
    );
  };
  const readyz = async () => {
    const res = await fetch(`${app.url}/readyz`, {
      signal: AbortSignal.timeout(5_000),
    });
    return {
      status: res.status,
      reason: ((await res.json()) as { reason?: string }).reason ?? "",
    };
  };
  const dlq = async () =>
    (await readTopic(kafka, names.dlq, 3_000).catch(() => [])).length;

  beforeAll(async () => {
    kafka = testKafka();
    kafkaAdmin = kafka.admin();
    await kafkaAdmin.connect();
    app = await startTestApp(
      kafkaEnv(names, {
        EARSHOT_ROLES: "api,ingest",
        KAFKA_STALL_TIMEOUT_MS: "1000",
        EARSHOT_INGEST_LOCK_TIMEOUT_MS: "1000",
      }),
      "dbop",
    );
    admin = new pg.Client({ connectionString: process.env[TEST_PG_ENV] });
    await admin.connect();
    own = new pg.Client({ connectionString: app.database.url });
    own.on("error", () => undefined);
    await own.connect();
    await waitFor(
      "the consumer to join",
      async () => (await readyz()).status === 200,
      60_000,
    );
    // stands for a slow table: every row costs 3 ms, and a row whose text asks for it 1.5 s
    await own.query(`CREATE FUNCTION test_slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(CASE WHEN NEW.text LIKE '%operator-slow%' THEN 1.5 ELSE 0.003 END); RETURN NEW; END $$`);
  }, 90_000);

  afterAll(async () => {
    // before the app's database is dropped (WITH (FORCE) would end this session under it)
    await own?.end();
    await app?.close();
    await kafkaAdmin
      ?.deleteTopics({ topics: names.all })
      .catch(() => undefined);
    await kafkaAdmin?.disconnect();
    await admin?.end();
  });

  it(
    "a table locked for maintenance: /ingest answers 503 within the lock timeout, Kafka says it waits on a lock, all stored once after",
    { timeout: 60_000 },
    async () => {
      const lines = [1, 2, 3].map((n) =>
        message(n, { externalId: `lock-http-${n}`, eventId: `lock-http-${n}` }),
      );
      const holder = new pg.Client({ connectionString: app.database.url });
      await holder.connect();
      try {
        await holder.query("BEGIN");
        await holder.query("LOCK TABLE interaction IN ACCESS EXCLUSIVE MODE");
        const answer = await post(lines);
        console.info(
          `db-operator: /ingest under ACCESS EXCLUSIVE answered ${answer.status} after ${answer.ms} ms`,
        );
        expect(answer.status).toBe(503);
        expect(answer.body.error?.message).toMatch(/locked by another session/);
        expect((await readyz()).status).toBe(200);
        await produce(
          kafka,
          names.topic,
          Array.from({ length: 20 }, (_, i) => ({
            key: "lock",
            value: JSON.stringify(
              message(i, {
                externalId: `lock-kafka-${i}`,
                eventId: `lock-kafka-${i}`,
              }),
            ),
          })),
        );
        // the first attempt waits out the lock timeout; from the first retry on, the reason says why
        const reason = await waitFor(
          "/readyz to name the lock",
          async () => {
            const r = await readyz();
            return r.status === 503 &&
              /stalled for .*table locked by another session/.test(r.reason)
              ? r.reason
              : null;
          },
          30_000,
          100,
        );
        console.info(`db-operator: /readyz under the lock: ${reason}`);
      } finally {
        await holder.query("ROLLBACK").catch(() => undefined);
        await holder.end();
      }
      expect(await post(lines)).toMatchObject({
        status: 200,
        body: { accepted: 3, duplicates: 0, rejected: [] },
      });
      await waitFor(
        "the 20 messages",
        async () => (await count("lock-kafka-%")) === 20,
        30_000,
      );
      await waitFor(
        "/readyz ready again",
        async () => (await readyz()).status === 200,
        30_000,
      );
      expect(await count("lock-%")).toBe(23);
      expect(await dlq()).toBe(0);
    },
  );

  it(
    "a statement_timeout a full batch exceeds: the batch is stored in smaller parts, HTTP and Kafka",
    { timeout: 60_000 },
    async () => {
      await own.query(
        `CREATE TRIGGER test_slow_row BEFORE INSERT ON interaction FOR EACH ROW EXECUTE FUNCTION test_slow_row()`,
      );
      try {
        await setDatabase("statement_timeout", "500ms");
        const lines = Array.from({ length: 500 }, (_, i) =>
          message(i, { externalId: `st-http-${i}`, eventId: `st-http-${i}` }),
        );
        // the first statement on a terminated pooled session may fail as a lost connection (retriable, 503)
        let answer = await post(lines, 30_000);
        for (
          let i = 0;
          i < 3 &&
          answer.status === 503 &&
          !/statement_timeout/.test(answer.body.error?.message ?? "");
          i++
        )
          answer = await post(lines, 30_000);
        console.info(
          `db-operator: 500 lines under statement_timeout 500 ms answered ${answer.status} after ${answer.ms} ms: ${JSON.stringify(answer.body).slice(0, 200)}`,
        );
        expect(answer).toMatchObject({
          status: 200,
          body: { accepted: 500, duplicates: 0, rejected: [] },
        });

        await produce(
          kafka,
          names.topic,
          Array.from({ length: 500 }, (_, i) => ({
            key: "timeout",
            value: JSON.stringify(
              message(i, {
                externalId: `st-kafka-${i}`,
                eventId: `st-kafka-${i}`,
              }),
            ),
          })),
        );
        await waitFor(
          "the 500 messages",
          async () => (await count("st-kafka-%")) === 500,
          40_000,
        );

        // one message that no size cures: the partition waits and says why, nothing is dead-lettered
        await produce(kafka, names.topic, [
          {
            key: "timeout",
            value: JSON.stringify(
              message(0, {
                externalId: "st-one",
                eventId: "st-one",
                text: "operator-slow",
              }),
            ),
          },
        ]);
        let last = "";
        const reason = await waitFor(
          "/readyz to name the statement timeout",
          async () => {
            const r = await readyz();
            if (r.reason !== last)
              console.info(
                `db-operator: /readyz ${r.status} ${(last = r.reason)}`,
              );
            return r.status === 503 &&
              /stalled for .*statement_timeout/.test(r.reason)
              ? r.reason
              : null;
          },
          30_000,
          100,
        );
        console.info(
          `db-operator: /readyz with one message over the statement timeout: ${reason}`,
        );
      } finally {
        await setDatabase("statement_timeout", null);
        await own.query(`DROP TRIGGER IF EXISTS test_slow_row ON interaction`);
      }
      await waitFor(
        "the slow message once the timeout is lifted",
        async () => (await count("st-one")) === 1,
        30_000,
      );
      expect(await count("st-%")).toBe(1_001);
      expect(await dlq()).toBe(0);
    },
  );

  it(
    "idle sessions ended by the server: the next caller gets a fresh connection, no request fails",
    { timeout: 30_000 },
    async () => {
      await setDatabase("idle_session_timeout", "200ms");
      try {
        // the sessions the test ended may fail the first statements (503, retriable): settle first
        await waitFor(
          "a request on fresh sessions",
          async () =>
            (
              await post([
                message(0, { externalId: "idle-warm", eventId: "idle-warm" }),
              ])
            ).status === 200,
          10_000,
          50,
        );
        // the sessions idle by design (live events' LISTEN) are not ended: the same one throughout
        const listener = async () =>
          (
            await admin.query(
              `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'earshot-live-events'`,
              [app.database.name],
            )
          ).rows
            .map((r: { pid: number }) => r.pid)
            .join(",");
        const first = await waitFor(
          "the live-events session",
          async () => (await listener()) || null,
          10_000,
          50,
        );
        for (let round = 0; round < 3; round++) {
          // wait until the server has ended every idle session of the app's pool
          await waitFor(
            "idle sessions ended",
            async () => {
              const [{ n }] = (
                await admin.query(
                  `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND state = 'idle' AND pid <> $2 AND application_name NOT IN ('earshot-live-events', 'earshot-outbox-relay')`,
                  [app.database.name, own.processID],
                )
              ).rows as { n: number }[];
              return n === 0;
            },
            10_000,
            50,
          );
          const answer = await post([
            message(round, {
              externalId: `idle-${round}`,
              eventId: `idle-${round}`,
            }),
          ]);
          expect(answer).toMatchObject({ status: 200, body: { accepted: 1 } });
          const q = await app.gql<{ customers: { totalCount: number } }>(
            "{ customers(first: 1) { totalCount } }",
          );
          expect(q.errors).toBeUndefined();
        }
        expect(await listener()).toBe(first);
      } finally {
        await setDatabase("idle_session_timeout", null);
      }
    },
  );
});

/**
 * Another application holds every connection the database allows Earshot's role (53300, as when
 * max_connections is exhausted): requests wait or answer 503 / SERVICE_UNAVAILABLE, nothing is
 * refused as bad data, and all is stored once the connections are free. A role of its own with
 * a CONNECTION LIMIT stands for max_connections (superusers are exempt from both; the test's
 * PostgreSQL is shared, so its max_connections is left alone).
 */
describe("connections exhausted by another application", () => {
  const role = `earshot_dbop_${randomBytes(4).toString("hex")}`;
  let admin: pg.Client;
  let database: TestDatabase;
  let app: TestApp | undefined;
  const hogs: pg.Client[] = [];

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: process.env[TEST_PG_ENV] });
    await admin.connect();
    await admin.query(`CREATE ROLE ${role} LOGIN CONNECTION LIMIT 8`);
    database = await createTestDatabase("dbopconn");
    await admin.query(`ALTER DATABASE ${database.name} OWNER TO ${role}`);
    const url = new URL(database.url);
    url.username = role;
    app = await startTestApp({ EARSHOT_ROLES: "api,ingest" }, "dbopconn", {
      ...database,
      url: url.toString(),
    });
  });
  afterAll(async () => {
    for (const h of hogs) await h.end().catch(() => undefined);
    await app?.close();
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  });

  const appSessions = async () =>
    (
      (
        await admin.query(
          `SELECT pid FROM pg_stat_activity WHERE usename = $1 AND NOT (pid = ANY($2::int[]))`,
          [role, hogs.map((h) => h.processID)],
        )
      ).rows as { pid: number }[]
    ).map((r) => r.pid);
  /** connects as the role until the database refuses: every free slot is the other application's */
  const fill = async () => {
    for (;;) {
      const c = new pg.Client({ connectionString: app!.database.url });
      c.on("error", () => undefined);
      try {
        await c.connect();
      } catch (e) {
        expect((e as { code?: string }).code).toBe("53300");
        return;
      }
      hogs.push(c);
    }
  };

  it(
    "answers 503 and SERVICE_UNAVAILABLE while no connection can be had, rejects nothing, then stores every line once",
    { timeout: 30_000 },
    async () => {
      const lines = Array.from({ length: 600 }, (_, i) =>
        message(i, { externalId: `conn-${i}`, eventId: `conn-${i}` }),
      );
      const post = async () => {
        const res = await fetch(`${app!.url}/ingest`, {
          method: "POST",
          headers: { "content-type": "application/x-ndjson" },
          body: ndjson(lines),
          signal: AbortSignal.timeout(20_000),
        });
        return {
          status: res.status,
          body: (await res.json()) as Record<string, unknown>,
        };
      };
      try {
        // the app's own sessions are ended and their slots taken, until it has none left
        await fill();
        for (let i = 0; i < 20 && (await appSessions()).length > 0; i++) {
          await admin.query(
            `SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid`,
            [await appSessions()],
          );
          await fill();
        }
        expect(await appSessions()).toEqual([]);
        const [ingest, query] = await Promise.all([
          post(),
          app!.gql("{ customers(first: 1) { totalCount } }"),
        ]);
        console.info(
          `db-operator: no connection left: /ingest ${ingest.status}, GraphQL ${query.status} ${JSON.stringify(query.errors?.map((e) => e.extensions?.code))}`,
        );
        expect(ingest.status).toBe(503);
        expect(JSON.stringify(ingest.body)).not.toMatch(/rejected/);
        // what is wrong, not only that something is: "the database is unavailable" sent operators
        // looking for a server that was up
        expect(ingest.body).toMatchObject({
          error: { message: expect.stringMatching(/^the database has no connection free \(max_connections\); 0 lines were stored/) },
        });
        expect(query.errors?.map((e) => e.extensions?.code)).toEqual([
          "SERVICE_UNAVAILABLE",
        ]);
        expect(query.errors?.[0]?.message).toBe(
          "the database has no connection free (max_connections); try again shortly",
        );
      } finally {
        while (hogs.length > 0)
          await hogs
            .pop()!
            .end()
            .catch(() => undefined);
      }
      const stored = await waitFor(
        "/ingest once connections are free",
        async () => {
          const r = await post();
          return r.status === 200 ? r : null;
        },
        20_000,
        100,
      );
      expect(stored.body).toMatchObject({
        accepted: 600 - (stored.body.duplicates as number),
        rejected: [],
      });
      const [{ n }] = (await app!.db.ds.query(
        `SELECT count(*)::int AS n FROM interaction WHERE external_id LIKE 'conn-%'`,
      )) as { n: number }[];
      expect(n).toBe(600);
    },
  );
});

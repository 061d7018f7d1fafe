import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { revertLastMigrationLocked, runMigrationsLocked } from '../../src/db/migrate';
import { createLogger } from '../../src/shared/logger';
import { migrations } from '../../migrations';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { ModelServer } from '../support/model-server';
import { kafkaEnv, kafkaNames, testKafka, waitFor } from '../support/kafka-fixtures';
import { runEarshot, spawnEarshot } from '../support/earshot-process';
import { createTestDatabase, REPO_ROOT, waitForLockWait, type TestDatabase } from '../support/postgres';

// `migrate --revert` undoes the last migration: a release rolled back after it has run for a
// while, with data in the database. Every migration is reverted in turn, each must leave the
// schema exactly as it was before its up() (compared with a database migrated step by step),
// then all are applied again and the service reads the data written before.

const log = createLogger('silent');

/** The schema as a sorted list of lines: every object a migration makes, with its definition. */
async function catalog(c: Client): Promise<string[]> {
  const { rows } = await c.query<{ line: string }>(`
    SELECT 'column ' || cl.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
           || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') AS line
      FROM pg_attribute a JOIN pg_class cl ON cl.oid = a.attrelid JOIN pg_namespace n ON n.oid = cl.relnamespace
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE n.nspname = 'public' AND cl.relkind IN ('r', 'v', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND cl.relname <> 'migration'
    UNION ALL
    SELECT 'relation ' || cl.relkind::text || ' ' || cl.relname || coalesce(' ' || array_to_string(cl.reloptions, ','), '')
      FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace
     WHERE n.nspname = 'public' AND cl.relkind IN ('r', 'v', 'p', 'S', 'm') AND cl.relname NOT IN ('migration', 'migration_id_seq')
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class cl ON cl.oid = i.indrelid JOIN pg_namespace n ON n.oid = cl.relnamespace
     WHERE n.nspname = 'public' AND cl.relname <> 'migration'
    UNION ALL
    SELECT 'constraint ' || cl.relname || '.' || co.conname || ' ' || pg_get_constraintdef(co.oid)
      FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace
     WHERE n.nspname = 'public' AND cl.relname <> 'migration'
    UNION ALL
    SELECT 'function ' || pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class cl ON cl.oid = t.tgrelid JOIN pg_namespace n ON n.oid = cl.relnamespace
     WHERE n.nspname = 'public' AND NOT t.tgisinternal
    UNION ALL
    SELECT 'view ' || cl.relname || ' ' || pg_get_viewdef(cl.oid) FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace
     WHERE n.nspname = 'public' AND cl.relkind = 'v'`);
  // A view created again from pg_get_viewdef names the columns of every UNION branch (`NULL::text
  // AS text`) where the original named the first only: the same view. Its columns are compared above.
  // A function's comments and indentation are not compared either.
  const same = (l: string) => (l.startsWith('view ') ? l.replace(/ AS \w+/g, '') : l.startsWith('function ') ? l.replace(/--[^\n]*/g, '') : l).replace(/\s+/g, ' ');
  return rows.map((r) => same(r.line)).sort();
}

async function withClient<T>(url: string, f: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
}

/** Rows per table, and the columns a down() drops that are filled per row. */
async function inventory(url: string): Promise<Record<string, number>> {
  return withClient(url, async (c) => {
    const out: Record<string, number> = {};
    const { rows } = await c.query<{ t: string }>(`SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'migration' ORDER BY 1`);
    for (const { t } of rows) out[t] = Number((await c.query(`SELECT count(*)::int AS n FROM ${t}`)).rows[0].n);
    for (const col of ['interaction.complaint', 'interaction.unhappy', 'interaction.sentiment_model', 'interaction.thread_key', 'interaction.identity_id', 'interaction.redacted_at', 'customer.sentiment_days', 'crm_record.person']) {
      const [t, k] = col.split('.');
      out[col] = Number((await c.query(`SELECT count(${k})::int AS n FROM ${t}`)).rows[0].n);
    }
    // events, one per row of the outbox view (an ingest batch's row holds several)
    const [o] = (await c.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE sent_at IS NULL)::int AS unsent FROM outbox`)).rows;
    out['outbox.events'] = o.n;
    out['outbox.unsent'] = o.unsent;
    return out;
  });
}

const applied = (url: string) => withClient(url, async (c) => (await c.query<{ name: string }>('SELECT name FROM migration ORDER BY timestamp')).rows.map((r) => r.name));

/** Catalog after 0, 1, …, n migrations, on an empty database migrated one step at a time. */
async function stepwiseCatalogs(db: TestDatabase): Promise<string[][]> {
  const ds = new DataSource({ type: 'postgres', url: db.url, entities: [], migrations: [] });
  await ds.initialize();
  const out: string[][] = [];
  try {
    await withClient(db.url, async (c) => {
      out.push(await catalog(c));
      for (const M of migrations) {
        const qr = ds.createQueryRunner();
        await qr.startTransaction();
        await new M().up(qr);
        await qr.commitTransaction();
        await qr.release();
        out.push(await catalog(c));
      }
    });
  } finally {
    await ds.destroy();
  }
  return out;
}

function diff(want: string[], got: string[]): { missing: string[]; extra: string[] } {
  const w = new Set(want);
  const g = new Set(got);
  const missing = want.filter((l) => !g.has(l));
  const extra = got.filter((l) => !w.has(l));
  return { missing: missing.map((l) => l.slice(0, 200)), extra: extra.map((l) => l.slice(0, 200)) };
}

const at = (n: number) => new Date(Date.UTC(2026, 10, 20, 9, 0, 0) + n * 60_000).toISOString();
const COMPLAINT = 'My parcel is late and nobody answers. Terrible.';
const HAPPY = 'I love this, great service!';

const CUSTOMERS = `{ customers(first: 100) { edges { node { id displayName identities { kind network value } sentiment { score label interactionCount lastInteractionAt }
  interactions(first: 20) { edges { node { id } } } } } } }`;
const INTERACTIONS = `{ interactions(first: 100) { totalCount edges { node { id source externalId text direction occurredAt author { handle displayName }
  sentiment { score label confidence explanation { token weight } } intent topics { name } customer { id } } } } }`;

describe('migrations reverted one by one with data in the database, then applied again', () => {
  const names = kafkaNames('migrt');
  let db: TestDatabase;
  let reference: TestDatabase;
  let stepwise: string[][];
  let before: { customers: unknown; interactions: unknown };
  let inventoryBefore: Record<string, number>;
  let modelServer: ModelServer | undefined;
  const env = { EARSHOT_GAP_ESCALATION: 'off', EARSHOT_GRAPHQL_MAX_COMPLEXITY: '1000000' };

  beforeAll(async () => {
    reference = await createTestDatabase('migrtref');
    stepwise = await stepwiseCatalogs(reference);

    // 1. A first release that ran with Kafka: its outbox rows were published (sent).
    let app: TestApp = await startTestApp(kafkaEnv(names, env), 'migrt');
    db = app.database;
    const ingest = async (lines: unknown[]) => {
      const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: ndjson(lines) });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ accepted: lines.length, rejected: [] });
    };
    const gql = async <T>(query: string, variables?: Record<string, unknown>): Promise<T> => {
      const r = await app.gql<T>(query, variables);
      expect(r.errors).toBeUndefined();
      return r.data;
    };
    await ingest([
      message(1, { source: 'email', externalId: 'rt-1', occurredAt: at(1), author: { handle: 'ada.rt@example.com', email: 'ada.rt@example.com', displayName: 'Ada' }, text: COMPLAINT }),
      message(2, { source: 'sms', externalId: 'rt-2', occurredAt: at(2), author: { handle: '+1 415 555 0142', phone: '+1 415 555 0142' }, text: COMPLAINT }),
      message(3, { source: 'call', externalId: 'rt-3', occurredAt: at(3), author: { phone: '415.555.0187' }, text: 'How do I change my password?' }),
      message(4, { source: 'x', externalId: 'rt-4', occurredAt: at(4), author: { handle: 'rt_social', displayName: 'Rt Social' }, text: HAPPY }),
      message(5, { source: 'chat', externalId: 'rt-5', occurredAt: at(5), author: { handle: 'bo.rt@example.org' }, text: COMPLAINT }),
      message(6, { source: 'email', externalId: 'rt-6', occurredAt: at(6), direction: 'outbound', inReplyTo: 'rt-1', author: { handle: 'care@brand.example' }, text: 'Sorry, we are on it.' }),
      message(7, { source: 'x', externalId: 'rt-7', occurredAt: at(7), author: { handle: 'rt_social', displayName: 'Rt Social' }, text: COMPLAINT }),
    ]);
    await waitFor('the outbox published', async () => {
      const [r] = (await app.db.ds.query(`SELECT count(*) FILTER (WHERE sent_at IS NULL)::int AS unsent, count(*)::int AS n FROM outbox_batch`)) as { unsent: number; n: number }[];
      return r!.n > 0 && r!.unsent === 0;
    }, 30_000, 50);
    await app.stop();

    // 2. The same database without Kafka: what is written now stays unsent in the outbox. A team's
    // model server scores it, and explains with tokens as it likes (one holds a NUL character).
    modelServer = await new ModelServer('rt-model-1', (item) => ({ score: item.text.includes('love') ? 0.8 : -0.7, explanation: [{ token: 'late\u0000', weight: -0.4 }, { token: 'ok', weight: 0.1 }] })).start();
    app = await startTestApp({ ...env, EARSHOT_SENTIMENT_URL: modelServer.url }, 'migrt', db);
    const customerOf = async (externalId: string) => {
      const [r] = (await app.db.ds.query(`SELECT customer_id FROM interaction WHERE external_id = $1`, [externalId])) as { customer_id: string }[];
      return Buffer.from(`Customer:${r!.customer_id}`).toString('base64url');
    };
    await ingest([
      message(8, { source: 'trustpilot', externalId: 'rt-8', occurredAt: at(8), author: { handle: 'cy_rt', displayName: 'Cy' }, text: HAPPY, rating: 5 }),
      message(9, { source: 'email', externalId: 'rt-9', occurredAt: at(9), author: { handle: 'di.rt@example.com', email: 'di.rt@example.com' }, text: COMPLAINT }),
      message(10, { source: 'whatsapp', externalId: 'rt-10', occurredAt: at(10), author: { handle: '+44 20 7946 0321', phone: '+44 20 7946 0321' }, text: COMPLAINT }),
    ]);
    // CRM contacts: one joins the email author, two sharing an address become a merge suggestion
    await app.services.identity.ingestCrmRecords('salesforce', 'Contact', [
      { externalId: '003000000000001AAA', person: { givenName: 'Ada', surname: 'Rt' }, identities: [{ kind: 'email', value: 'ada.rt@example.com' }] },
    ]);
    await app.services.identity.ingestCrmRecords('salesforce', 'Contact', [
      { externalId: '003000000000002AAA', person: { givenName: 'Gil', surname: 'Walker' }, identities: [{ kind: 'email', value: 'gil.rt@example.com' }] },
    ]);
    await app.services.identity.ingestCrmRecords('salesforce', 'Contact', [
      { externalId: '003000000000003AAA', person: { givenName: 'Gill', surname: 'Walker' }, identities: [{ kind: 'email', value: 'gil.rt@example.com' }] },
    ]);
    // a merge by hand: the sms author and the caller are one person
    await gql(`mutation($a: ID!, $b: ID!) { mergeCustomers(survivorId: $a, mergedId: $b, reason: "same person") { audit { id } } }`, { a: await customerOf('rt-2'), b: await customerOf('rt-3') });
    // a listening item assigned and answered by a person
    const items = await gql<{ listeningItems: { edges: { node: { id: string } }[] } }>(`{ listeningItems(first: 50) { edges { node { id } } } }`);
    expect(items.listeningItems.edges.length).toBeGreaterThanOrEqual(3);
    const [first, second] = items.listeningItems.edges.map((e) => e.node.id);
    await gql(`mutation($id: ID!) { assignItem(id: $id, user: "sam") { id } }`, { id: first });
    await gql(`mutation($id: ID!) { markResponded(id: $id) { id } }`, { id: second });
    // a topic edit, and its re-tag job run to the end
    const edit = await gql<{ upsertTopic: { job: { id: string } } }>(`mutation { upsertTopic(input: { name: "rt_parcels", label: "Parcels", department: "Logistics", phrases: ["parcel"] }) { job { id } } }`);
    await waitFor('the re-tag job', async () => {
      const r = await gql<{ retagJob: { status: string } }>(`query($id: ID!) { retagJob(id: $id) { status } }`, { id: edit.upsertTopic.job.id });
      return r.retagJob.status === 'SUCCEEDED';
    }, 20_000, 50);
    // an erasure
    await gql(`mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-77") { id } }`, { id: await customerOf('rt-9') });

    before = { customers: await gql(CUSTOMERS), interactions: await gql(INTERACTIONS) };
    inventoryBefore = await inventory(db.url);
    await modelServer.close();
    modelServer = undefined;
    expect(inventoryBefore['outbox.events']).toBeGreaterThan(inventoryBefore['outbox.unsent']!);
    expect(inventoryBefore['outbox.unsent']).toBeGreaterThan(0);
    await app.stop();
  }, 120_000);

  afterAll(async () => {
    await modelServer?.close();
    await reference?.drop();
    await db?.drop();
    const admin = testKafka().admin();
    await admin.connect().catch(() => undefined);
    await admin.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  });

  it('each migration reverts to the schema it found, then all apply again and the data reads back', async () => {
    const config = loadConfig({ DATABASE_URL: db.url, LOG_LEVEL: 'silent' });
    const names = migrations.map((M) => new M().name!);
    const failed: string[] = [];
    for (let k = migrations.length; k > 1; k--) {
      if (k === migrations.length) {
        // the first through the command an operator runs
        const out = await runEarshot(['migrate', '--revert'], { DATABASE_URL: db.url, LOG_LEVEL: 'info' });
        expect(out.code, out.stderr).toBe(0);
        expect(out.stdout).toContain(`"migration":"${names[k - 1]}"`);
      } else {
        const d = await openDatabase(config, log, { migrate: false });
        try {
          // refused while erasure records exist (privacy-erasure-migration-revert.test.ts): the operator deletes them first
          if (names[k - 1] === 'PrivacyErasure1765600000000') await d.ds.query(`DELETE FROM erasure_request`);
          expect(await revertLastMigrationLocked(d.ds, log)).toBe(names[k - 1]);
        } catch (e) {
          failed.push(`${names[k - 1]}: ${(e as Error).message}`);
          break;
        } finally {
          await d.close();
        }
      }
      // exactly the schema before its up(): nothing left behind, nothing missing
      const { missing, extra } = diff(stepwise[k - 1]!, await withClient(db.url, catalog));
      if (missing.length + extra.length > 0) failed.push(`${names[k - 1]}: schema differs: ${JSON.stringify({ missing, extra })}`);
      if (failed.length > 0) break;
    }
    expect(failed).toEqual([]);
    expect(await applied(db.url)).toEqual([names[0]]);

    // The first one would drop every table: refused, in one line, and nothing changes.
    const refused = await runEarshot(['migrate', '--revert'], { DATABASE_URL: db.url });
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe(
      'earshot: CONFLICT: Initial1764000000000 is not reverted: it is the first migration, and reverting it would drop every table with the data in them ' +
        `(${inventoryBefore.customer} customers, ${inventoryBefore.interaction} interactions, ${inventoryBefore.crm_record} CRM records); nothing was changed. ` +
        'To start from an empty database, drop the database and create it again.',
    );
    expect(await applied(db.url)).toEqual([names[0]]);
    expect(diff(stepwise[1]!, await withClient(db.url, catalog))).toEqual({ missing: [], extra: [] });

    // All again: the schema of a database migrated from empty, and the service reads the data.
    const d = await openDatabase(config, log);
    await d.close();
    expect(await applied(db.url)).toEqual(names);
    expect(diff(stepwise[migrations.length]!, await withClient(db.url, catalog))).toEqual({ missing: [], extra: [] });
    const app = await startTestApp(env, 'migrt', db);
    try {
      const gql = async <T>(query: string): Promise<T> => {
        const r = await app.gql<T>(query);
        expect(r.errors).toBeUndefined();
        return r.data;
      };
      // jsonb, the explanation's type before ExplanationAsJson, holds no NUL: the revert made it U+FFFD
      expect(JSON.stringify(before.interactions)).toContain('late\\u0000');
      expect(await gql(INTERACTIONS)).toEqual(JSON.parse(JSON.stringify(before.interactions).replaceAll('late\\u0000', 'late\uFFFD')));
      expect(await gql(CUSTOMERS)).toEqual(before.customers);
    } finally {
      await app.stop();
    }

    // What is kept, and what the down() methods drop by design (README, Migrations).
    const after = await inventory(db.url);
    // (customer.sentiment_days: dropped by CustomerTrendDays' down(), built again from the
    // interactions by CustomerTrendDaysFilled)
    const kept = ['customer', 'customer_identity', 'interaction', 'interaction_topic', 'topic', 'department', 'department_sentiment_daily', 'topic_sentiment_daily', 'merge_audit', 'crm_record', 'outbox.events', 'outbox.unsent', 'customer.sentiment_days'];
    expect(Object.fromEntries(kept.map((t) => [t, after[t]]))).toEqual(Object.fromEntries(kept.map((t) => [t, inventoryBefore[t]])));
    const lost = ['listening_item', 'listening_item_event', 'erasure_request', 'retag_job', 'merge_suggestion', 'interaction.complaint', 'interaction.unhappy', 'interaction.sentiment_model', 'interaction.thread_key', 'interaction.identity_id', 'interaction.redacted_at', 'crm_record.person'];
    expect(lost.filter((t) => !(inventoryBefore[t]! > 0))).toEqual([]);
    expect(Object.fromEntries(lost.map((t) => [t, after[t]]))).toEqual(Object.fromEntries(lost.map((t) => [t, 0])));
  });

  it('no migration runs outside a transaction', async () => {
    // TypeORM runs each migration in a transaction with its row in the migration table, unless the
    // migration sets `transaction = false` (needed for CREATE INDEX CONCURRENTLY and the like):
    // such a one, interrupted, would leave part of itself behind.
    const fs = await import('node:fs/promises');
    const path = await import('node:path');
    for (const M of migrations) expect((new M() as { transaction?: boolean }).transaction, new M().name).toBeUndefined();
    const dir = path.join(REPO_ROOT, 'migrations');
    for (const f of await fs.readdir(dir)) {
      // the code without its comments
      const text = (await fs.readFile(path.join(dir, f), 'utf8')).replace(/\/\*[\s\S]*?\*\//g, '').replace(/(\/\/|--).*$/gm, '');
      expect(/\bCONCURRENTLY\b|\bVACUUM\b|\bCOMMIT\b;|ALTER TYPE [^;]* ADD VALUE/i.exec(text)?.[0] ?? null, f).toBeNull();
    }
  });

  it('a migrate that meets a table another session holds applies nothing of that migration and lets writes through; killed or given up, the next migrate finishes', async () => {
    // MergeAndErasureByIndex indexes customer first, then merge_suggestion: a migrate that waits
    // for merge_suggestion holds customer's lock (no customer row can change) while it waits.
    const target = migrations.findIndex((M) => new M().name === 'MergeAndErasureByIndex1767100000000');
    const fresh = await createTestDatabase('migrtlock');
    const holder = new Client({ connectionString: fresh.url, application_name: 'holder' });
    const writer = new Client({ connectionString: fresh.url, application_name: 'writer' });
    try {
      const config = loadConfig({ DATABASE_URL: fresh.url, LOG_LEVEL: 'silent' });
      let d = await openDatabase(config, log);
      try {
        for (let k = migrations.length; k > target; k--) await revertLastMigrationLocked(d.ds, log);
      } finally {
        await d.close();
      }
      await holder.connect();
      await writer.connect();
      await writer.query(`INSERT INTO customer (display_name) VALUES ('w')`);
      // an operator's open transaction that wrote to merge_suggestion (or a LOCK TABLE)
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE merge_suggestion IN ROW EXCLUSIVE MODE');
      const customerWriteMs = async (): Promise<number> => {
        const started = Date.now();
        await writer.query(`SET statement_timeout = 15000`);
        await writer.query(`UPDATE customer SET updated_at = now()`);
        return Date.now() - started;
      };
      const unchanged = async () => {
        expect(await applied(fresh.url)).toEqual(migrations.slice(0, target).map((M) => new M().name));
        const { missing, extra } = diff(stepwise[target]!, await withClient(fresh.url, catalog));
        expect({ missing, extra }).toEqual({ missing: [], extra: [] });
      };

      // 1. In process, the runner's own lock timeout: it gives up, saying which migration waited.
      d = await openDatabase(config, log, { migrate: false });
      try {
        const run = runMigrationsLocked(d.ds, log, { lockTimeoutMs: 300, attempts: 2 }).then(
          () => 'applied',
          (e: Error) => e.message,
        );
        await waitForLockWait((sql, params) => writer.query(sql, params).then((r) => r.rows), 'the migration waits for merge_suggestion', { queryPrefix: 'CREATE INDEX merge_suggestion' });
        expect(await customerWriteMs()).toBeLessThan(3_000);
        // the runner's own bound ends it (on the code before, it waited until the test's timeout)
        const outcome = await run;
        expect(outcome).toMatch(/^migration MergeAndErasureByIndex1767100000000 waited 300 ms for a lock on a table another session holds .*, 2 times: nothing of it was applied \(the migrations before it were\); run migrate again once that session has ended/);
      } finally {
        await d.close().catch(() => undefined);
      }
      await unchanged();

      // 2. `earshot migrate` killed while it waits: its session ends, customer writes go through.
      const proc = spawnEarshot({ DATABASE_URL: fresh.url, LOG_LEVEL: 'info' }, { args: ['migrate'] });
      await waitForLockWait((sql, params) => writer.query(sql, params).then((r) => r.rows), 'earshot migrate waits for merge_suggestion', { queryPrefix: 'CREATE INDEX merge_suggestion' });
      await proc.kill('SIGKILL');
      await waitFor('the killed migrate\'s session to end', async () => {
        const r = await writer.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'earshot' AND pid <> pg_backend_pid()`);
        return r.rows[0].n === 0;
      }, 15_000, 50);
      expect(await customerWriteMs()).toBeLessThan(5_000);
      await unchanged();

      // 3. The session lets go: the next migrate finishes.
      await holder.query('COMMIT');
      d = await openDatabase(config, log);
      await d.close();
      expect(await applied(fresh.url)).toEqual(migrations.map((M) => new M().name));
      expect(await withClient(fresh.url, catalog)).toEqual(stepwise[migrations.length]);
    } finally {
      await holder.end().catch(() => undefined);
      await writer.end().catch(() => undefined);
      await fresh.drop();
    }
  });
});

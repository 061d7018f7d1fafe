import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { toGlobalId } from '../../src/graphql/relay';
import { recordSuggestion } from '../../src/identity/merge';
import { inTransaction } from '../../src/db/transaction';
import { Client } from 'pg';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { createTestDatabase } from '../support/postgres';

// Two admins (or an attacker) sending conflicting identity and privacy mutations at the same
// moment, through real HTTP GraphQL requests fired together. Each round seeds fresh customers.
// What a user must see: every request either succeeds or answers a clear code (CONFLICT,
// NOT_FOUND, BAD_USER_INPUT), never INTERNAL_SERVER_ERROR or a deadlock; and the database is
// consistent afterwards (checked by SQL after every race).

const ROUNDS = 30;
const CLEAR = new Set(['CONFLICT', 'NOT_FOUND', 'BAD_USER_INPUT']);
const cid = (uuid: string) => toGlobalId('Customer', uuid);

describe('identity and privacy mutations racing each other', () => {
  let app: TestApp;
  const lifecycle = () => {
    beforeAll(async () => {
      // Deadlocks are found after deadlock_timeout (1 s by default); a tenth of it keeps 30 rounds
      // of each race within the time budget and changes nothing else.
      const database = await createTestDatabase('idprivraces');
      const admin = new Client({ connectionString: database.url });
      await admin.connect();
      await admin.query(`ALTER DATABASE ${database.name} SET deadlock_timeout = '100ms'`);
      await admin.end();
      app = await startTestApp({ EARSHOT_ROLES: 'api,ingest' }, 'idprivraces', database);
    }, 120_000);
    afterAll(async () => {
      await app?.close();
    });
  };

  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  const tag = () => randomBytes(5).toString('hex');

  /** One customer per author, each with a handle and an email and two messages. */
  const seed = async (
    n: number,
  ): Promise<{
    ids: string[];
    authors: { handle: string; email: string }[];
  }> => {
    const t = tag();
    const authors = Array.from({ length: n }, (_, i) => ({
      handle: `r${i}_${t}`,
      email: `r${i}-${t}@example.org`,
      displayName: `Racer ${i} ${t}`,
    }));
    const lines = authors.flatMap((author, i) =>
      [0, 1].map((k) =>
        message(i * 2 + k, {
          eventId: `e-${t}-${i}-${k}`,
          externalId: `x-${t}-${i}-${k}`,
          author,
        }),
      ),
    );
    const out = await app.services.ingest.ingestObjects(lines, 'test');
    expect(out.rejected).toEqual([]);
    const ids: string[] = [];
    for (const a of authors) {
      const [row] = await q<{ customer_id: string }>(`SELECT customer_id FROM customer_identity WHERE kind = 'handle' AND value = $1`, [`x:${a.handle}`]);
      ids.push(row!.customer_id);
    }
    return { ids, authors };
  };

  type Result = { code: string; message?: string };
  /** Fires the operations together; each answers 'ok' or its error code. */
  const race = async (
    ops: (() => Promise<{
      errors?: { message: string; extensions?: { code?: string } }[];
    }>)[],
  ): Promise<Result[]> =>
    Promise.all(
      ops.map(async (op) => {
        const r = await op();
        if (!r.errors?.length) return { code: 'ok' };
        return {
          code: r.errors[0]!.extensions?.code ?? 'NO_CODE',
          message: r.errors[0]!.message,
        };
      }),
    );

  const merge = (survivor: string, merged: string) =>
    app.gql<{ mergeCustomers: { audit: { id: string } } }>(
      `mutation M($s: ID!, $m: ID!) { mergeCustomers(survivorId: $s, mergedId: $m, reason: "same person") { audit { id } } }`,
      { s: cid(survivor), m: cid(merged) },
    );
  const unmerge = (mergeId: string) => app.gql(`mutation U($id: ID!) { unmergeCustomer(mergeId: $id) { audit { id } } }`, { id: mergeId });
  const erase = (id: string) => app.gql(`mutation E($id: ID!) { eraseCustomer(id: $id, reason: "DSR-race") { id erasedNow } }`, { id: cid(id) });
  const accept = (sid: string) =>
    app.gql(`mutation A($id: ID!) { acceptMergeSuggestion(id: $id) { audit { id } } }`, { id: toGlobalId('MergeSuggestion', sid) });
  const reject = (sid: string) => app.gql(`mutation R($id: ID!) { rejectMergeSuggestion(id: $id) { id status } }`, { id: toGlobalId('MergeSuggestion', sid) });
  const link = (customer: string, email: string) =>
    app.gql(`mutation L($id: ID!, $v: String!) { linkIdentity(customerId: $id, kind: EMAIL, value: $v) { audit { id } } }`, { id: cid(customer), v: email });
  const unlink = (customer: string, email: string) =>
    app.gql(`mutation L($id: ID!, $v: String!) { unlinkIdentity(customerId: $id, kind: EMAIL, value: $v) { audit { id } } }`, { id: cid(customer), v: email });
  const ingestHttp = async (lines: unknown[]) => {
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: ndjson(lines),
    });
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (res.status >= 200 && res.status < 300) return {};
    return {
      errors: [
        {
          message: JSON.stringify(body),
          extensions: { code: `HTTP_${res.status}` },
        },
      ],
    };
  };
  const suggestionBetween = async (a: string, b: string): Promise<string> => {
    const [ia] = await q<{ id: string }>(`SELECT id FROM customer_identity WHERE customer_id = $1 ORDER BY id LIMIT 1`, [a]);
    const [ib] = await q<{ id: string }>(`SELECT id FROM customer_identity WHERE customer_id = $1 ORDER BY id LIMIT 1`, [b]);
    await inTransaction(app.db.ds, (qr) =>
      recordSuggestion(qr, { customerId: a, identityId: ia!.id }, { customerId: b, identityId: ib!.id }, { score: 9, evidence: [], reason: 'race test' }),
    );
    const [s] = await q<{ id: string }>(`SELECT id FROM merge_suggestion WHERE identity_a_id = ANY($1::uuid[]) AND identity_b_id = ANY($1::uuid[])`, [
      [ia!.id, ib!.id],
    ]);
    return s!.id;
  };

  /** Every invariant a user relies on, as SQL over the whole database; returns what is violated. */
  const violations = async (): Promise<Record<string, unknown[]>> => {
    const checks: Record<string, string> = {
      identityOnMissingOrMergedCustomer: `SELECT ci.id FROM customer_identity ci LEFT JOIN customer c ON c.id = ci.customer_id WHERE c.id IS NULL OR c.merged_into_id IS NOT NULL`,
      interactionOnMissingCustomer: `SELECT i.id FROM interaction i WHERE i.customer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM customer c WHERE c.id = i.customer_id)`,
      interactionOnMergedCustomer: `SELECT i.id FROM interaction i JOIN customer c ON c.id = i.customer_id WHERE c.merged_into_id IS NOT NULL`,
      mergedIntoNotARoot: `SELECT c.id FROM customer c JOIN customer r ON r.id = c.merged_into_id WHERE r.merged_into_id IS NOT NULL`,
      erasedInteractionSurvives: `SELECT i.id FROM interaction i JOIN erasure_request e ON i.customer_id = ANY(e.erased_customer_ids)`,
      erasedCustomerSurvives: `SELECT c.id FROM customer c JOIN erasure_request e ON c.id = ANY(e.erased_customer_ids)`,
      suggestionOnMissing: `SELECT s.id FROM merge_suggestion s WHERE NOT EXISTS (SELECT 1 FROM customer c WHERE c.id = s.customer_a_id) OR NOT EXISTS (SELECT 1 FROM customer c WHERE c.id = s.customer_b_id)
                              OR NOT EXISTS (SELECT 1 FROM customer_identity i WHERE i.id = s.identity_a_id) OR NOT EXISTS (SELECT 1 FROM customer_identity i WHERE i.id = s.identity_b_id)`,
      // a merge not undone: its merged customer still points at the survivor's root
      mergeNotUndoneButApart: `SELECT a.id FROM merge_audit a JOIN customer m ON m.id = a.merged_id WHERE a.action = 'merge' AND a.undone_at IS NULL AND m.merged_into_id IS NULL
                                 AND NOT EXISTS (SELECT 1 FROM merge_audit l WHERE l.action = 'merge' AND l.merged_id = a.merged_id AND l.created_at > a.created_at)`,
      mergedWithoutOpenMerge: `SELECT c.id FROM customer c WHERE c.merged_into_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM merge_audit a WHERE a.action = 'merge' AND a.merged_id = c.id AND a.undone_at IS NULL)`,
      undoneTwice: `SELECT snapshot->>'undoes' AS m FROM merge_audit WHERE action = 'unmerge' GROUP BY 1 HAVING count(*) > 1`,
      summaryCountWrong: `SELECT c.id, c.interaction_count, (SELECT count(*) FROM interaction i WHERE i.customer_id = c.id AND i.direction = 'inbound')::int AS n
                            FROM customer c WHERE c.merged_into_id IS NULL AND c.interaction_count <> (SELECT count(*) FROM interaction i WHERE i.customer_id = c.id AND i.direction = 'inbound')`,
    };
    const out: Record<string, unknown[]> = {};
    for (const [name, sql] of Object.entries(checks)) {
      const rows = await q(sql);
      if (rows.length) out[name] = rows.slice(0, 5);
    }
    return out;
  };

  const tally = (all: Result[][]) => {
    const t: Record<string, number> = {};
    for (const r of all.flat()) t[r.code] = (t[r.code] ?? 0) + 1;
    return t;
  };
  const unclear = (all: Result[][]) => all.flat().filter((r) => r.code !== 'ok' && !CLEAR.has(r.code));
  const deadlocks = async () => Number((await q<{ n: string }>(`SELECT deadlocks AS n FROM pg_stat_database WHERE datname = current_database()`))[0]!.n);
  let mark = { at: 0, deadlocks: 0 };
  beforeEach(async () => {
    mark = { at: Date.now(), deadlocks: await deadlocks() };
  });
  const report = async (name: string, all: Result[][]) => {
    const d = (await deadlocks()) - mark.deadlocks;
    const messages: Record<string, number> = {};
    for (const r of all.flat()) {
      const m = r.message?.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, '…').slice(0, 70);
      if (m) messages[m] = (messages[m] ?? 0) + 1;
    }
    console.log(name, JSON.stringify(tally(all)), `deadlocks=${d} ms=${Date.now() - mark.at}`, JSON.stringify(messages));
  };

  /** ROUNDS rounds of one race, reported; then every answer must be clear and the database consistent */
  const rounds = async (name: string, round: (i: number) => Promise<Result[]>) => {
    const all: Result[][] = [];
    for (let i = 0; i < ROUNDS; i++) all.push(await round(i));
    await report(name, all);
    expect({ unclear: unclear(all), violations: await violations() }).toEqual({ unclear: [], violations: {} });
  };

  // Two databases: an erasure reads the whole unsent outbox, which every merge adds to, so it
  // slows as merges pile up (see the report); the erasure races get a database of their own.
  describe('merges, undos, links and the review queue', () => {
    lifecycle();
    it('A into B while B into A: one merge wins, the other is a CONFLICT', async () => {
      await rounds('merge A<->B', async () => {
        const {
          ids: [a, b],
        } = await seed(2);
        return await race([() => merge(b!, a!), () => merge(a!, b!)]);
      });
    }, 60_000);

    it('A into B while C into A', async () => {
      await rounds('merge A->B, C->A', async () => {
        const {
          ids: [a, b, c],
        } = await seed(3);
        return await race([() => merge(b!, a!), () => merge(a!, c!)]);
      });
    }, 60_000);

    it('the same merge undone twice at once: one undo, one CONFLICT', async () => {
      await rounds('unmerge twice', async () => {
        const {
          ids: [a, b],
        } = await seed(2);
        const m = await merge(b!, a!);
        const id = m.data.mergeCustomers.audit.id;
        const r = await race([() => unmerge(id), () => unmerge(id)]);
        expect(r.filter((x) => x.code === 'ok')).toHaveLength(1);
        return r;
      });
    }, 60_000);

    it('an undo while the survivor is merged again', async () => {
      await rounds('unmerge vs merge survivor', async () => {
        const {
          ids: [a, b, c],
        } = await seed(3);
        const m = await merge(b!, a!);
        const id = m.data.mergeCustomers.audit.id;
        return await race([() => unmerge(id), () => merge(c!, b!)]);
      });
    }, 60_000);

    it('accept and reject of one suggestion at once: one decision', async () => {
      await rounds('accept vs reject', async () => {
        const {
          ids: [a, b],
        } = await seed(2);
        const s = await suggestionBetween(a!, b!);
        return await race([() => accept(s), () => reject(s)]);
      });
    }, 60_000);

    it('link and unlink racing a merge', async () => {
      await rounds('link/unlink vs merge', async () => {
        const {
          ids: [a, b, c],
          authors,
        } = await seed(3);
        // link B's email to A while A merges into C; unlink A's email while A merges into C
        return await race([() => link(a!, authors[1]!.email), () => merge(c!, a!), () => unlink(a!, authors[0]!.email), () => merge(b!, c!)]);
      });
    }, 60_000);
  });

  describe('erasures', () => {
    lifecycle();
    it('accept of a suggestion while one side is erased', async () => {
      await rounds('accept vs erase', async (i) => {
        const {
          ids: [a, b],
        } = await seed(2);
        const s = await suggestionBetween(a!, b!);
        return await race([() => accept(s), () => erase(i % 2 ? a! : b!)]);
      });
    }, 60_000);

    it('an erasure racing an ingest of new messages by the same author', async () => {
      await rounds('erase vs ingest', async () => {
        const {
          ids: [a],
          authors,
        } = await seed(1);
        const t = tag();
        const lines = [0, 1, 2].map((k) =>
          message(k, {
            eventId: `n-${t}-${k}`,
            externalId: `n-${t}-${k}`,
            author: { handle: authors[0]!.handle, email: authors[0]!.email },
          }),
        );
        return await race([() => erase(a!), () => ingestHttp(lines)]);
      });
    }, 60_000);
  });
});

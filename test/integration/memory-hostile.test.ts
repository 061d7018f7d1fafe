import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PERSISTED_QUERY_ENTRY_BYTES, persistedQueryStoreBytes } from '../../src/graphql/persisted-query-store';
import { toGlobalId } from '../../src/graphql/relay';
import { startTestApp, type TestApp } from '../support/app';
import { spawnEarshot, type EarshotProcess } from '../support/earshot-process';
import { createTestDatabase, type TestDatabase } from '../support/postgres';

// What the service keeps between requests, filled with values a client chooses. Floods of 200,000
// distinct wrong API keys and bearer tokens, request ids, operation names, variables, analyzed
// words and languages, ingested authors, ids and hashtags, Kafka keys and headers, and 4,000
// WebSocket connections with their subscriptions each left the heap flat after full collections
// (README, Operations). Automatic persisted queries did not: Apollo's cache counted a query by its
// characters alone, so it had room for 1.8 million small ones (about 450 MB), registered by anyone.
// Nor did the CRM intake's in-memory match index, which kept every erased person's profile.

const ADMIN = 'memory-hostile-admin-key-0123456789';

/**
 * The APQ flood runs against the compiled service in a small heap, as in a small container: the
 * store's budget is a 64th of the heap limit (at most 8 MiB), so a heap of about 70 MiB leaves room
 * for some 4,000 registrations, where the test process's own heap (several GiB here) gave 31,000
 * and the flood took minutes.
 */
const SMALL_HEAP = '--max-old-space-size=64 --max-semi-space-size=2';

/** The V8 heap limit a process started with `nodeOptions` gets (the service's node, the same flags). */
function heapLimitWith(nodeOptions: string): number {
  const out = execFileSync(process.execPath, ['-e', 'process.stdout.write(String(require("node:v8").getHeapStatistics().heap_size_limit))'], {
    env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: nodeOptions },
  });
  return Number(out.toString('utf8'));
}

type Body = { data?: Record<string, unknown> | null; errors?: { message: string; extensions?: { code?: string } }[] };

describe('memory under hostile input', () => {
  let app: TestApp;
  let service: EarshotProcess | null = null;
  let db: TestDatabase | null = null;
  let serviceUrl = '';

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin`, EARSHOT_GAP_ESCALATION: 'off' }, 'memhostile');
  });
  afterAll(async () => {
    await service?.kill('SIGKILL');
    await db?.drop();
    await app?.close();
  });

  /** POSTs without a credential to the small-heap service: a small anonymous body is read, parsed and validated like any other. */
  async function post(body: unknown): Promise<{ status: number; body: Body }> {
    const res = await fetch(`${serviceUrl}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Body };
  }

  async function inParallel(n: number, each: (i: number) => Promise<void>, lanes = 50): Promise<void> {
    let next = 0;
    await Promise.all(Array.from({ length: lanes }, async () => {
      while (next < n) await each(next++);
    }));
  }

  it('automatic persisted queries registered without a credential are kept within a budget that follows the heap, oldest out first', { timeout: 180_000 }, async () => {
    const query = (i: number) => `{__typename}#${i.toString(36).padStart(4, '0')}`;
    const hash = (q: string) => createHash('sha256').update(q).digest('hex');
    // what one such registration is counted as: its entry, its key (`apq:` and the hash) and its text
    const entry = PERSISTED_QUERY_ENTRY_BYTES + (16 + 68) + (16 + query(0).length);
    const budget = persistedQueryStoreBytes(heapLimitWith(SMALL_HEAP));
    const room = Math.floor(budget / entry);
    // below the 8 MiB cap: the budget follows this heap, not the cap
    expect(budget).toBeLessThan(2 * 1024 * 1024);
    db = await createTestDatabase('memhostileapq');
    service = spawnEarshot({ DATABASE_URL: db.url, EARSHOT_ROLES: 'api', EARSHOT_GAP_ESCALATION: 'off', NODE_OPTIONS: SMALL_HEAP });
    serviceUrl = (await service.listening()).replace('localhost', '127.0.0.1');
    // half as many again as there is room for
    const count = Math.ceil(1.5 * room);

    const answers = new Map<string, number>();
    await inParallel(count, async (i) => {
      const q = query(i);
      const r = await post({ query: q, extensions: { persistedQuery: { version: 1, sha256Hash: hash(q) } } });
      const key = `${r.status} ${JSON.stringify(r.body)}`;
      answers.set(key, (answers.get(key) ?? 0) + 1);
    });
    // each one was registered and answered
    expect(Object.fromEntries(answers)).toEqual({ [`200 ${JSON.stringify({ data: { __typename: 'Query' } })}`]: count });

    /** How many of the queries `from`…`to` are still served by their hash alone. */
    const served = async (from: number, to: number) => {
      let hits = 0;
      const codes = new Set<string>();
      await inParallel(to - from, async (k) => {
        const r = await post({ extensions: { persistedQuery: { version: 1, sha256Hash: hash(query(from + k)) } } });
        if (r.body.data?.__typename === 'Query') hits++;
        else codes.add(String(r.body.errors?.[0]?.extensions?.code));
      });
      return { hits, codes: [...codes] };
    };
    // the newest are served by hash, as a client sending only the hash expects
    expect(await served(count - 1_000, count)).toEqual({ hits: 1_000, codes: [] });
    // the oldest made room for them: before, all of them were still kept (Apollo's cache had room
    // for about 1.8 million such queries, 450 MB of heap)
    expect(await served(0, 1_000)).toEqual({ hits: 0, codes: ['PERSISTED_QUERY_NOT_FOUND'] });
    console.info(`memory-hostile: ${count} anonymous APQ registrations against room for ${room} (${(budget / 2 ** 20).toFixed(0)} MiB); the oldest 1,000 were let go, the newest 1,000 served`);
  });

  it('an erased person’s CRM profile leaves the intake’s in-memory match index', async () => {
    const intake = app.services.identity.intake;
    const person = (n: number, given: string, surname: string) => ({
      externalId: `mh-${n}`,
      person: { givenName: given, surname, city: 'Leeds', postcode: 'LS1 4AP' },
      identities: [{ kind: 'email' as const, value: `${given}.${surname}@memory-hostile.example`.toLowerCase() }],
    });
    const synced = await app.services.identity.ingestCrmRecords('hubspot', 'contact', [person(1, 'Ada', 'Quill'), person(2, 'Bo', 'Marsh'), person(3, 'Cy', 'Fenn')]);
    expect(intake.indexedProfiles).toBe(3);

    const erased = await app.gql<{ eraseCustomer: { crmRecords: number } }>(
      `mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-77") { crmRecords } }`,
      { id: toGlobalId('Customer', synced.customerIds[0]!) },
      { 'x-api-key': ADMIN },
    );
    expect(erased).toMatchObject({ status: 200, data: { eraseCustomer: { crmRecords: 1 } } });

    // the next sync: the two kept and the new one, not Ada's name, address and email as well
    await app.services.identity.ingestCrmRecords('hubspot', 'contact', [person(4, 'Di', 'Rook')]);
    expect(intake.indexedProfiles).toBe(3);
  });
});

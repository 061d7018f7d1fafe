import { createHash } from 'node:crypto';
import { getHeapStatistics } from 'node:v8';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PERSISTED_QUERY_ENTRY_BYTES, persistedQueryStoreBytes } from '../../src/graphql/persisted-query-store';
import { toGlobalId } from '../../src/graphql/relay';
import { startTestApp, type TestApp } from '../support/app';

// What the service keeps between requests, filled with values a client chooses. Floods of 200,000
// distinct wrong API keys and bearer tokens, request ids, operation names, variables, analyzed
// words and languages, ingested authors, ids and hashtags, Kafka keys and headers, and 4,000
// WebSocket connections with their subscriptions each left the heap flat after full collections
// (README, Operations). Automatic persisted queries did not: Apollo's cache counted a query by its
// characters alone, so it had room for 1.8 million small ones (about 450 MB), registered by anyone.
// Nor did the CRM intake's in-memory match index, which kept every erased person's profile.

const ADMIN = 'memory-hostile-admin-key-0123456789';

type Body = { data?: Record<string, unknown> | null; errors?: { message: string; extensions?: { code?: string } }[] };

describe('memory under hostile input', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin`, EARSHOT_GAP_ESCALATION: 'off' }, 'memhostile');
  });
  afterAll(async () => {
    await app?.close();
  });

  /** POSTs without a credential: a small anonymous body is read, parsed and validated like any other. */
  async function post(body: unknown): Promise<{ status: number; body: Body }> {
    const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Body };
  }

  async function inParallel(n: number, each: (i: number) => Promise<void>, lanes = 50): Promise<void> {
    let next = 0;
    await Promise.all(Array.from({ length: lanes }, async () => {
      while (next < n) await each(next++);
    }));
  }

  it('automatic persisted queries registered without a credential are kept within a budget that follows the heap, oldest out first', { timeout: 240_000 }, async () => {
    const query = (i: number) => `{__typename}#${i.toString(36).padStart(4, '0')}`;
    const hash = (q: string) => createHash('sha256').update(q).digest('hex');
    // what one such registration is counted as: its entry, its key (`apq:` and the hash) and its text
    const entry = PERSISTED_QUERY_ENTRY_BYTES + (16 + 68) + (16 + query(0).length);
    const budget = persistedQueryStoreBytes(getHeapStatistics().heap_size_limit);
    const room = Math.floor(budget / entry);
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

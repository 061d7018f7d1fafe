import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, startTestApp, type TestApp } from '../support/app';

// A data team replays a year of interactions and one customer (a brand's own support handle taken
// for a customer, or a prolific author) owns a great many of them. The data export built all of
// them into one response: 100,000 interactions made a 134 MB body, took 590 MB more memory and
// stalled every other request for 3.3 s; some 400,000 exceed V8's largest string and fail. The
// export now pages the interactions (at most 5,000 a response) and says how many there are.

const INTERACTIONS = 11_000;

describe('customer data export of a customer with many interactions', () => {
  let app: TestApp;
  let gid: string;
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api' }, 'exportscale');
    const seed = [1, 2, 3].map((n) => message(n, { externalId: `prolific-${n}`, eventId: `prolific-${n}`, author: { handle: 'prolificauthor', displayName: 'Prolific Author' } }));
    expect((await app.services.ingest.ingestObjects(seed, 'test')).rejected).toEqual([]);
    const [{ customer_id: customerId }] = await q<{ customer_id: string }>(`SELECT customer_id FROM interaction WHERE external_id = 'prolific-1'`);
    gid = Buffer.from(`Customer:${customerId}`).toString('base64url');
    // the rest cloned in one statement; three at a time share a timestamp, so pages must break ties by id
    await q(`INSERT INTO interaction (event_id, source, external_id, url, text, occurred_at, direction, author_handle, author_display_name, metadata,
                sentiment_score, sentiment_label, sentiment_confidence, intent, intent_confidence, explanation, customer_id, identity_id)
             SELECT 'clone-' || g, t.source, 'clone-' || g, t.url, t.text, t.occurred_at - make_interval(mins => g / 3), t.direction, t.author_handle, t.author_display_name, t.metadata,
                t.sentiment_score, t.sentiment_label, t.sentiment_confidence, t.intent, t.intent_confidence, t.explanation, t.customer_id, t.identity_id
               FROM generate_series(1, $1::int) g, (SELECT * FROM interaction WHERE external_id = 'prolific-1') t`, [INTERACTIONS - 3]);
    await q('ANALYZE interaction');
  }, 120_000);

  afterAll(async () => {
    await app?.close();
  });

  it('refuses to take a first page for the whole export: a caller who does not page is told how to', async () => {
    const whole = await app.gql('query($id: ID!) { customerDataExport(id: $id) }', { id: gid });
    expect(whole.data).toBeNull();
    expect(whole.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(whole.errors?.[0]?.message).toContain(`has ${INTERACTIONS} interactions`);
    expect(whole.errors?.[0]?.message).toContain('interactionsNext');
  });

  it('pages the interactions, at most 5,000 a response, and every one comes exactly once, oldest first', async () => {
    const seen: string[] = [];
    const times: number[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const res = await fetch(`${app.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(after === null
          ? { query: 'query($id: ID!) { customerDataExport(id: $id, interactionsFirst: 5000) }', variables: { id: gid } }
          : { query: 'query($id: ID!, $after: String) { customerDataExport(id: $id, interactionsAfter: $after) }', variables: { id: gid, after } }),
      });
      const body = await res.text();
      const page = (JSON.parse(body) as { data: { customerDataExport: { interactionsTotal: number; interactions: { id: string; occurred_at: string }[]; interactionsNext: string | null; customers: unknown[] } } }).data.customerDataExport;
      pages++;
      expect(page.interactions.length).toBeLessThanOrEqual(5_000);
      expect(body.length).toBeLessThan(10_000_000);
      expect(page.interactionsTotal).toBe(INTERACTIONS);
      expect(page.customers).toHaveLength(1);
      for (const i of page.interactions) {
        seen.push(i.id);
        times.push(Date.parse(i.occurred_at));
      }
      after = page.interactionsNext;
    } while (after !== null && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(INTERACTIONS);
    expect(new Set(seen).size).toBe(INTERACTIONS);
    expect(times.every((t, i) => i === 0 || times[i - 1]! <= t)).toBe(true);
  });

  it('takes a smaller page, and refuses a larger one or a cursor that is no interaction id', async () => {
    const small = await app.gql<{ customerDataExport: { interactions: unknown[]; interactionsNext: string | null } }>(
      'query($id: ID!) { customerDataExport(id: $id, interactionsFirst: 10) }', { id: gid });
    expect(small.data.customerDataExport.interactions).toHaveLength(10);
    expect(small.data.customerDataExport.interactionsNext).toEqual(expect.any(String));
    for (const args of ['interactionsFirst: 5001', 'interactionsFirst: 0', 'interactionsAfter: "x"']) {
      const bad = await app.gql(`query($id: ID!) { customerDataExport(id: $id, ${args}) }`, { id: gid });
      expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
  });
});

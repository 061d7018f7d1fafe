import type { Kafka } from 'kafkajs';
import type { GraphQLSchema } from 'graphql';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SafeDisplayNames1765200000000 } from '../../migrations/1765200000000-SafeDisplayNames';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { fetchSchema, queriesForEveryRootField } from '../support/graphql-walk';
import { kafkaEnv, kafkaNames, readTopic, testKafka, waitFor } from '../support/kafka-fixtures';

// Every query field of the schema, as the roles without PII, over data seeded with known emails
// and phone numbers: none of them may come back, in any answer or in the output topics.

const KEYS = {
  admin: 'walk-admin-key-0123456789',
  analyst: 'walk-analyst-key-0123456789',
  service: 'walk-service-key-0123456789',
  agent: 'walk-agent-key-0123456789',
};

const EMAILS = ['ada.walkpii@example.com', 'bo.walkpii@example.org', 'cy.walkpii@example.net', 'di.walkpii@example.com', 'ed.walkpii@example.com', 'fay.walkpii@example.com'];
// as written, and what Earshot stores (E.164); the national digits are searched for too
const PHONES = [
  { raw: '+1 (415) 555-0142', e164: '+14155550142', digits: '4155550142' },
  { raw: '415.555.0187', e164: '+14155550187', digits: '4155550187' },
  { raw: '+44 20 7946 0321', e164: '+442079460321', digits: '2079460321' },
  { raw: '+1 212 555 0199', e164: '+12125550199', digits: '2125550199' },
];

/** Every form a seeded value could take in an answer. */
const NEEDLES: string[] = [
  ...EMAILS.flatMap((e) => [e, e.split('@')[0]!]),
  ...PHONES.flatMap((p) => [p.raw, p.e164, p.digits, p.digits.replace(/(\d{3})(\d{3})(\d{4})/, '$1-$2-$3')]),
];

function found(text: string): string[] {
  const lower = text.toLowerCase();
  return NEEDLES.filter((n) => lower.includes(n.toLowerCase()));
}

const at = (n: number) => new Date(Date.UTC(2026, 10, 2, 9, 0, 0) + n * 60_000).toISOString();
const COMPLAINT = 'My parcel is late and nobody answers. Terrible.';

/** Authors as the channels send them: addresses as handles, no display names, an email as a display name. */
const SEED = [
  message(1, { source: 'email', externalId: 'walk-1', occurredAt: at(1), author: { handle: EMAILS[0], email: EMAILS[0] }, text: COMPLAINT }),
  message(2, { source: 'sms', externalId: 'walk-2', occurredAt: at(2), author: { handle: PHONES[0]!.raw, phone: PHONES[0]!.raw }, text: COMPLAINT }),
  message(3, { source: 'call', externalId: 'walk-3', occurredAt: at(3), author: { phone: PHONES[1]!.raw }, text: 'How do I change my password?' }),
  message(4, { source: 'x', externalId: 'walk-4', occurredAt: at(4), author: { handle: 'walk_social', displayName: 'Walk Social', email: EMAILS[1], phone: PHONES[2]!.raw }, text: COMPLAINT }),
  message(5, { source: 'x', externalId: 'walk-5', occurredAt: at(5), author: { handle: 'walk_named_by_mail', displayName: EMAILS[2] }, text: 'I love this, great service!' }),
  message(6, { source: 'chat', externalId: 'walk-6', occurredAt: at(6), author: { handle: EMAILS[3] }, text: COMPLAINT }),
  message(7, { source: 'whatsapp', externalId: 'walk-7', occurredAt: at(7), author: { handle: PHONES[3]!.raw }, text: COMPLAINT }),
  message(8, { source: 'email', externalId: 'walk-8', occurredAt: at(8), direction: 'outbound', inReplyTo: 'walk-1', author: { handle: 'care@brand.example' }, text: 'Sorry, we are on it.' }),
];

describe('PII walk: every query as analyst and service, and both output topics', () => {
  const names = kafkaNames('piiwalk');
  let kafka: Kafka;
  let app: TestApp;
  let schema: GraphQLSchema;
  const ids = { customers: [] as string[], interactions: [] as string[], suggestions: [] as string[], items: [] as string[], retagJob: '', reresolutionJob: '', rescoreJob: '' };

  const as = (role: keyof typeof KEYS) => ({ 'x-api-key': KEYS[role] });

  beforeAll(async () => {
    kafka = testKafka();
    app = await startTestApp(
      kafkaEnv(names, {
        EARSHOT_API_KEYS: Object.entries(KEYS).map(([role, key]) => `${key}:${role}`).join(','),
        // the walk selects everything at once; the limits themselves are tested elsewhere
        EARSHOT_GRAPHQL_MAX_COMPLEXITY: '100000000',
        EARSHOT_GRAPHQL_MAX_DEPTH: '40',
        EARSHOT_GRAPHQL_MAX_ALIASES: '1000',
        EARSHOT_GRAPHQL_MAX_TOKENS: '1000000',
        EARSHOT_GAP_ESCALATION: 'off',
      }),
      'piiwalk',
    );
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...as('admin') }, body: ndjson(SEED) });
    expect(await res.json()).toMatchObject({ accepted: SEED.length, rejected: [] });

    // CRM records: two Contacts sharing an email become a merge suggestion, never a merge
    await app.services.identity.ingestCrmRecords('salesforce', 'Contact', [
      { externalId: '003000000000001AAA', person: { givenName: 'Gil', surname: 'Walker' }, identities: [{ kind: 'email', value: EMAILS[4]! }, { kind: 'phone', value: PHONES[3]!.raw }] },
    ]);
    await app.services.identity.ingestCrmRecords('salesforce', 'Contact', [
      { externalId: '003000000000002AAA', person: { givenName: 'Gill', surname: 'Walker' }, identities: [{ kind: 'email', value: EMAILS[4]! }] },
    ]);

    const customerOf = async (externalId: string) => {
      const [r] = (await app.db.ds.query(`SELECT customer_id FROM interaction WHERE external_id = $1`, [externalId])) as { customer_id: string }[];
      return Buffer.from(`Customer:${r!.customer_id}`).toString('base64url');
    };
    // link an email by hand, then unlink it: the split-off customer must not be named after it
    const social = await customerOf('walk-4');
    const linked = await app.gql(`mutation($c: ID!, $v: String!) { linkIdentity(customerId: $c, kind: EMAIL, value: $v) { audit { id } } }`, { c: social, v: EMAILS[5] }, as('admin'));
    expect(linked.errors).toBeUndefined();
    const unlinked = await app.gql(`mutation($c: ID!, $v: String!) { unlinkIdentity(customerId: $c, kind: EMAIL, value: $v) { audit { id } } }`, { c: social, v: EMAILS[5] }, as('admin'));
    expect(unlinked.errors).toBeUndefined();
    // a merge by hand, with its audit record
    const merged = await app.gql(`mutation($a: ID!, $b: ID!) { mergeCustomers(survivorId: $a, mergedId: $b, reason: "same person") { audit { id } } }`, { a: await customerOf('walk-2'), b: await customerOf('walk-3') }, as('admin'));
    expect(merged.errors).toBeUndefined();
    const topic = await app.gql(`mutation { upsertTopic(input: { name: "walk_topic", label: "Walk", department: "Walkers", phrases: ["parcel"] }) { job { id } } }`, undefined, as('admin'));
    ids.retagJob = (topic.data as { upsertTopic: { job: { id: string } } }).upsertTopic.job.id;
    const job = await app.gql(`mutation { startReresolution { id } }`, undefined, as('admin'));
    ids.reresolutionJob = (job.data as { startReresolution: { id: string } }).startReresolution.id;
    const rescore = await app.gql(`mutation { startRescore { id } }`, undefined, as('admin'));
    ids.rescoreJob = (rescore.data as { startRescore: { id: string } }).startRescore.id;

    schema = await fetchSchema(app.url, as('admin'));
    const all = await app.gql<{
      customers: { edges: { node: { id: string } }[] };
      interactions: { edges: { node: { id: string } }[] };
      mergeSuggestions: { edges: { node: { id: string } }[] };
      openItems: { edges: { node: { id: string } }[] };
    }>(`{ customers(first: 100) { edges { node { id } } } interactions(first: 100) { edges { node { id } } }
          mergeSuggestions(first: 100) { edges { node { id } } } openItems(first: 100) { edges { node { id } } } }`, undefined, as('admin'));
    ids.customers = all.data.customers.edges.map((e) => e.node.id);
    ids.interactions = all.data.interactions.edges.map((e) => e.node.id);
    ids.suggestions = all.data.mergeSuggestions.edges.map((e) => e.node.id);
    ids.items = all.data.openItems.edges.map((e) => e.node.id);
    expect(ids.suggestions.length).toBeGreaterThan(0);
    expect(ids.items.length).toBeGreaterThan(0);
  }, 180_000);

  afterAll(async () => {
    await app?.close();
    const admin = kafka?.admin();
    if (admin) {
      await admin.connect();
      await admin.deleteTopics({ topics: names.all }).catch(() => undefined);
      await admin.disconnect();
    }
  });

  function queries(): { field: string; query: string }[] {
    const range = { from: '2020-01-01T00:00:00Z', to: '2031-01-01T00:00:00Z' };
    return queriesForEveryRootField(
      schema,
      6,
      (field, arg) => {
        if (arg.name === 'first') return [100];
        if (arg.name === 'from' || arg.name === 'to') return [range[arg.name]];
        if (field === 'analyzeText' && arg.name === 'text') return ['Charged twice, please call me back'];
        if (field === 'customer' && arg.name === 'id') return ids.customers;
        if (field === 'node' && arg.name === 'id') return [...ids.customers, ...ids.interactions, ...ids.suggestions, ...ids.items];
        if (field === 'listeningItem' && arg.name === 'id') return ids.items;
        if (field === 'retagJob') return [ids.retagJob];
        if (field === 'reresolutionJob') return [ids.reresolutionJob];
        if (field === 'rescoreJob') return [ids.rescoreJob];
        if (field === 'erasure' && arg.name === 'customerId') return ids.customers;
        if (field === 'customerDataExport' && arg.name === 'id') return ids.customers;
        if (field === 'sentimentTrend' && arg.name === 'scope') return ['ALL', 'CUSTOMER', 'DEPARTMENT', 'TOPIC'];
        if (field === 'sentimentTrend' && arg.name === 'bucket') return ['DAY'];
        if (field === 'sentimentTrend' && arg.name === 'id') return [...ids.customers, 'Walkers', 'walk_topic'];
        if (field === 'customers' && arg.name === 'filter') return [{}, ...['walk', '@', 'walkpii', '415', '555', 'example'].map((search) => ({ search }))];
        return undefined;
      },
      (_field, arg) => (arg.name === 'first' ? [100] : undefined),
    );
  }

  async function walk(role: keyof typeof KEYS): Promise<{ leaks: { field: string; query: string; values: string[] }[]; fields: Set<string>; bodies: string }> {
    const leaks: { field: string; query: string; values: string[] }[] = [];
    const fields = new Set<string>();
    let bodies = '';
    for (const q of queries()) {
      const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...as(role) }, body: JSON.stringify({ query: q.query }) });
      const text = await res.text();
      expect(res.status, `${role} ${q.query}: ${text.slice(0, 300)}`).toBeLessThan(500);
      // a query that is refused as a whole would prove nothing
      const codes = ((JSON.parse(text) as { errors?: { extensions?: { code?: string } }[] }).errors ?? []).map((e) => e.extensions?.code);
      expect(codes.filter((c) => c === 'COST_LIMIT_EXCEEDED' || c === 'GRAPHQL_PARSE_FAILED' || c === 'GRAPHQL_VALIDATION_FAILED'), `${role} ${q.query.slice(0, 200)}`).toEqual([]);
      fields.add(q.field);
      bodies += text;
      const values = found(text);
      if (values.length) leaks.push({ field: q.field, query: q.query.slice(0, 200), values });
    }
    return { leaks, fields, bodies };
  }

  it('the walk reaches the seeded values: admin sees every one of them', async () => {
    const { leaks, fields } = await walk('admin');
    expect(fields).toEqual(new Set(Object.keys(schema.getQueryType()!.getFields())));
    const seen = new Set(leaks.flatMap((l) => l.values));
    for (const e of EMAILS) expect(seen, e).toContain(e);
    for (const p of PHONES) expect(seen, p.e164).toContain(p.e164);
  }, 180_000);

  it.each(['analyst', 'service'] as const)('%s: no seeded email or phone in any answer of any query field', async (role) => {
    const { leaks, fields, bodies } = await walk(role);
    expect(fields.size).toBe(Object.keys(schema.getQueryType()!.getFields()).length);
    expect(leaks).toEqual([]);
    // the walk read real data, not a wall of errors
    expect(bodies).toContain('walk_social');
  }, 180_000);

  it('an agent with the analyst role too sees what an agent sees (several roles act together)', async () => {
    const r = await app.gql<{ customers: { edges: { node: { identities: { value: string | null }[] } }[] } }>(
      '{ customers(first: 100) { edges { node { identities { value } } } } }', undefined, as('agent'),
    );
    expect(found(JSON.stringify(r.data)).length).toBeGreaterThan(0);
  });

  it('both output topics carry none of the seeded values', async () => {
    await waitFor('the outbox to be published', async () => {
      const [{ n }] = (await app.db.ds.query(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`)) as { n: number }[];
      return n === 0;
    }, 60_000);
    const [enriched, sentiment] = await Promise.all([readTopic(kafka, names.enriched), readTopic(kafka, names.sentiment)]);
    expect(enriched.length).toBeGreaterThanOrEqual(SEED.length);
    expect(sentiment.length).toBeGreaterThan(0);
    const leaks = [...enriched, ...sentiment]
      .map((m) => ({ key: m.key, values: found(`${m.key ?? ''} ${m.value?.toString('utf8') ?? ''} ${JSON.stringify(m.headers)}`) }))
      .filter((m) => m.values.length > 0);
    expect(leaks).toEqual([]);
  }, 120_000);
});

describe('PII in rows stored before the fix', () => {
  // a database per test: the second one runs the migration that clears what the first one searches
  let app: TestApp;
  const KEY = { 'x-api-key': KEYS.analyst };
  const ADMIN = { 'x-api-key': KEYS.admin };
  beforeEach(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${KEYS.admin}:admin,${KEYS.analyst}:analyst` }, 'piilegacy');
    // what the old pipeline stored: a customer named after its email, one after its phone, and a named one
    await app.db.ds.query(
      `INSERT INTO customer (display_name, created_at) VALUES ($1, now()), ($2, now()), ('Legacy Named', now())`,
      [EMAILS[0], PHONES[0]!.raw],
    );
  });
  afterEach(async () => {
    await app?.close();
  });

  const SEARCH = 'query($s: String) { customers(first: 100, filter: { search: $s }) { totalCount edges { node { displayName } } } }';
  type Found = { customers: { totalCount: number; edges: { node: { displayName: string | null } }[] } };

  it('search is no oracle for addresses: a role without PII finds nothing by email or phone text', async () => {
    for (const s of ['@', 'walkpii', 'example.com', '555', '0142', '415']) {
      const r = await app.gql<Found>(SEARCH, { s }, KEY);
      expect(r.errors, s).toBeUndefined();
      expect(r.data.customers.totalCount, s).toBe(0);
    }
    expect((await app.gql<Found>(SEARCH, { s: 'legacy' }, KEY)).data.customers.totalCount).toBe(1);
    // roles with PII still find them
    expect((await app.gql<Found>(SEARCH, { s: 'walkpii' }, ADMIN)).data.customers.totalCount).toBe(1);
  });

  it('stored names that are addresses are redacted on read, and the migration clears them', async () => {
    const all = await app.gql<Found>(SEARCH, {}, KEY);
    expect(found(JSON.stringify(all))).toEqual([]);
    expect(all.data.customers.edges.map((e) => e.node.displayName).sort()).toEqual(['Legacy Named', null, null]);
    const qr = app.db.ds.createQueryRunner();
    try {
      await new SafeDisplayNames1765200000000().up(qr);
    } finally {
      await qr.release();
    }
    const names = (await app.db.ds.query(`SELECT display_name FROM customer ORDER BY display_name NULLS LAST`)) as { display_name: string | null }[];
    expect(names.map((n) => n.display_name)).toEqual(['Legacy Named', null, null]);
  });
});

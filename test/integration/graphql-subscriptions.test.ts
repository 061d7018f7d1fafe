import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnEarshot, type EarshotProcess } from '../support/earshot-process';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { collect, wsClient } from '../support/ws-client';

const ADMIN = 'admin-key-0123456789abcdef';
const ANALYST = 'analyst-key-0123456789abcdef';
const AGENT = 'agent-key-0123456789abcdef';


const SUBSCRIBE_INTERACTIONS = `subscription($f: InteractionFilter) { interactionRecorded(filter: $f) {
  id text direction customer { id displayName identities { kind value redacted } } } }`;

describe('subscriptions over graphql-ws across two Earshot processes (PostgreSQL LISTEN/NOTIFY)', () => {
  let database: TestDatabase;
  let a: EarshotProcess;
  let b: EarshotProcess;
  let urlA: string;
  let urlB: string;

  beforeAll(async () => {
    database = await createTestDatabase('subs');
    const env = { DATABASE_URL: database.url, EARSHOT_API_KEYS: `${ADMIN}:admin,${ANALYST}:analyst,${AGENT}:agent:sam` };
    // A takes writes (ingest, mutations); B only serves the API: an event must cross processes
    a = spawnEarshot({ ...env, EARSHOT_ROLES: 'api,ingest' });
    urlA = await a.listening(60_000);
    b = spawnEarshot({ ...env, EARSHOT_ROLES: 'api' });
    urlB = await b.listening(60_000);
  });
  afterAll(async () => {
    await Promise.all([a?.kill('SIGTERM'), b?.kill('SIGTERM')]);
    await database?.drop();
  });

  const ingest = async (lines: unknown[]) => {
    const res = await fetch(`${urlA}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': ADMIN }, body: lines.map((l) => JSON.stringify(l)).join('\n') });
    expect(res.status).toBe(200);
    return res.json();
  };
  const gqlA = async (query: string, variables: Record<string, unknown>, key = AGENT) => {
    const res = await fetch(`${urlA}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: JSON.stringify({ query, variables }) });
    return (await res.json()) as { data: Record<string, any>; errors?: unknown[] };
  };

  it('delivers an interaction ingested on one replica to subscribers on the other, with PII by role', async () => {
    const admin = wsClient(urlB, { 'X-API-Key': ADMIN });
    const analyst = wsClient(urlB, { Authorization: `Bearer ${ANALYST}` });
    const forAdmin = collect<any>(admin, SUBSCRIBE_INTERACTIONS, { f: { direction: 'INBOUND', source: 'trustpilot' } });
    const forAnalyst = collect<any>(analyst, SUBSCRIBE_INTERACTIONS, { f: { direction: 'INBOUND' } });
    const outbound = collect<any>(admin, SUBSCRIBE_INTERACTIONS, { f: { direction: 'OUTBOUND' } });
    // the subscriptions are registered once the server has them; a first event proves it
    await expect.poll(async () => {
      await ingest([{ source: 'trustpilot', externalId: `warm-${Date.now()}`, occurredAt: '2026-11-20T10:00:00Z', direction: 'inbound', author: { handle: 'warm' }, text: 'ok' }]);
      return forAdmin.events.length > 0 && forAnalyst.events.length > 0;
    }, { timeout: 20_000, interval: 500 }).toBe(true);

    await ingest([
      { source: 'trustpilot', externalId: 'sub-1', occurredAt: '2026-11-20T10:01:00Z', direction: 'inbound', author: { handle: 'jane_sub', displayName: 'Jane Sub', email: 'jane.sub@example.com' }, text: 'Charged twice and no refund. Awful.' },
    ]);
    const seenByAdmin = await forAdmin.waitFor((e) => e.interactionRecorded.text.startsWith('Charged twice'));
    const seenByAnalyst = await forAnalyst.waitFor((e) => e.interactionRecorded.text.startsWith('Charged twice'));
    expect(seenByAdmin.interactionRecorded.customer.identities).toContainEqual({ kind: 'EMAIL', value: 'jane.sub@example.com', redacted: false });
    expect(seenByAnalyst.interactionRecorded.customer.identities).toContainEqual({ kind: 'EMAIL', value: null, redacted: true });
    expect(JSON.stringify(seenByAnalyst)).not.toContain('jane.sub@example.com');
    expect(outbound.events).toEqual([]);
    await admin.dispose();
    await analyst.dispose();
  });

  it('delivers listening item changes made by a mutation on the other replica, and sentiment changes', async () => {
    const client = wsClient(urlB, { 'X-API-Key': ANALYST });
    const items = collect<any>(client, `subscription { listeningItemChanged(department: "Finance") { id status closeReason department } }`);
    const sentiment = collect<any>(client, `subscription { customerSentimentChanged { id displayName sentiment { label interactionCount } } }`);
    await expect.poll(async () => {
      await ingest([{ source: 'x', externalId: `bill-${Date.now()}`, occurredAt: new Date().toISOString(), direction: 'inbound', author: { handle: 'payer_sub', displayName: 'Payer Sub' }, text: 'I was charged twice on my invoice, refund please!' }]);
      return items.events.length > 0 && sentiment.events.length > 0;
    }, { timeout: 20_000, interval: 500 }).toBe(true);
    const opened = items.events.find((e) => e.listeningItemChanged.status === 'OPEN')!;
    expect(opened.listeningItemChanged.department).toBe('Finance');

    const closed = await gqlA(`mutation($id: ID!) { closeItem(id: $id, reason: "handled by phone") { status } }`, { id: opened.listeningItemChanged.id });
    expect(closed.errors).toBeUndefined();
    const event = await items.waitFor((e) => e.listeningItemChanged.id === opened.listeningItemChanged.id && e.listeningItemChanged.status === 'CLOSED');
    expect(event.listeningItemChanged.closeReason).toBe('handled by phone');
    expect(sentiment.events[0].customerSentimentChanged.sentiment.interactionCount).toBeGreaterThan(0);
    await client.dispose();
  });

  it('refuses a connection whose connection_init carries no valid credential', async () => {
    const closes: number[] = [];
    const bad = wsClient(urlB, { 'X-API-Key': 'not-a-key-0123456789abc' }, (code) => closes.push(code));
    const sub = collect<any>(bad, `subscription { interactionRecorded { id } }`);
    await expect(sub.waitFor(() => true, 10_000)).rejects.toThrow();
    expect(closes).toContain(4403);
    await bad.dispose();
  });
});

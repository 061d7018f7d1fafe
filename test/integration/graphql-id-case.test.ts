import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// A UUID is the same in upper case (RFC 9562: input is case-insensitive), and some clients write
// them so (.NET's Guid, spreadsheets, a person copying an id). An id whose UUID was in upper case
// answered null for a customer, interaction or listening item that exists: the database matched
// it, but the loaders keyed what it returned by the lower-case form.

const up = (globalId: string) => {
  const [kind, uuid] = Buffer.from(globalId, 'base64url').toString('utf8').split(':');
  return Buffer.from(`${kind}:${uuid!.toUpperCase()}`).toString('base64url');
};

describe('ids with their UUID in upper case', () => {
  let app: TestApp;
  const run = `idc${Date.now().toString(36)}`;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_GAP_ESCALATION: 'off' }, 'idcase');
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: ndjson([message(1, { externalId: `${run}-1`, eventId: `${run}-1`, text: 'my parcel never arrived, still waiting', author: { handle: `${run}_1`, displayName: `Case ${run}` } })]),
    });
    expect(await res.json()).toMatchObject({ accepted: 1 });
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  const gql = async (query: string, variables: Record<string, unknown> = {}) => {
    const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
    return (await res.json()) as { data?: Record<string, unknown> | null; errors?: { extensions?: { code?: string } }[] };
  };

  it('name the same customer, interaction and listening item as in lower case', async () => {
    const found = await gql(
      `query($q: String!) { customers(first: 1, filter: { search: $q }) { edges { node { id displayName interactions(first: 1) { edges { node { id } } } } } } listeningItems(first: 5) { edges { node { id customer { displayName } } } } }`,
      { q: `Case ${run}` },
    );
    expect(found.errors).toBeUndefined();
    const customer = (found.data!.customers as { edges: { node: { id: string; displayName: string; interactions: { edges: { node: { id: string } }[] } } }[] }).edges[0]!.node;
    const interactionId = customer.interactions.edges[0]!.node.id;
    const item = (found.data!.listeningItems as { edges: { node: { id: string; customer: { displayName: string } | null } }[] }).edges.find((e) => e.node.customer?.displayName === `Case ${run}`)!.node;

    for (const [id, want] of [
      [customer.id, customer.id],
      [up(customer.id), customer.id],
    ] as const) {
      const r = await gql(`query($id: ID!) { customer(id: $id) { id displayName } node(id: $id) { id } }`, { id });
      expect(r.errors).toBeUndefined();
      expect(r.data).toEqual({ customer: { id: want, displayName: `Case ${run}` }, node: { id: want } });
    }
    const i = await gql(`query($id: ID!) { node(id: $id) { id ... on Interaction { text } } }`, { id: up(interactionId) });
    expect(i.errors).toBeUndefined();
    expect(i.data).toEqual({ node: { id: interactionId, text: 'my parcel never arrived, still waiting' } });
    const l = await gql(`query($id: ID!) { listeningItem(id: $id) { id } }`, { id: up(item.id) });
    expect(l.errors).toBeUndefined();
    expect(l.data).toEqual({ listeningItem: { id: item.id } });
  });
});

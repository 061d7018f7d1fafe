import type { AddressInfo } from 'node:net';
import { ApolloGateway, IntrospectAndCompose } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// A second, small subgraph: a company's accounts, each pointing at an Earshot customer.
const ACCOUNTS_SDL = `
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
  type Account @key(fields: "id") { id: ID! name: String! customer: Customer }
  type Customer @key(fields: "id", resolvable: false) { id: ID! }
  type Query { accounts: [Account!]! }
`;

describe('Earshot as an Apollo Federation 2 subgraph, composed through @apollo/gateway', () => {
  let app: TestApp;
  let accounts: ApolloServer;
  let gateway: ApolloServer;
  let gatewayUrl: string;
  let customerId: string;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_FEDERATION: 'on' }, 'federation');
    await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: ndjson([message(1, { author: { handle: 'fed_ann', displayName: 'Ann Federated' }, text: 'Charged twice, no refund. Awful.' })]),
    });
    const c = await app.gql<{ customers: { edges: { node: { id: string } }[] } }>('{ customers(first: 1) { edges { node { id } } } }');
    customerId = c.data.customers.edges[0]!.node.id;

    accounts = new ApolloServer({
      schema: buildSubgraphSchema([{ typeDefs: parse(ACCOUNTS_SDL), resolvers: { Query: { accounts: () => [{ id: 'acc-1', name: 'Acme Ltd', customer: { id: customerId } }] } } }]),
    });
    const { url: accountsUrl } = await startStandaloneServer(accounts, { listen: { port: 0, host: '127.0.0.1' } });

    const gw = new ApolloGateway({
      supergraphSdl: new IntrospectAndCompose({ subgraphs: [{ name: 'earshot', url: `${app.url}/graphql` }, { name: 'accounts', url: accountsUrl }] }),
    });
    gateway = new ApolloServer({ gateway: gw as never });
    ({ url: gatewayUrl } = await startStandaloneServer(gateway, { listen: { port: 0, host: '127.0.0.1' } }));
  });
  afterAll(async () => {
    await gateway?.stop();
    await accounts?.stop();
    await app?.close();
  });

  it('answers the SDL of the subgraph with Customer as an entity keyed by id', async () => {
    const r = await app.gql<{ _service: { sdl: string } }>('{ _service { sdl } }');
    expect(r.data._service.sdl).toMatch(/type Customer implements Node\s+@key\(fields: "id"\)/);
  });

  it("joins another subgraph's accounts to Earshot's customer sentiment through the entity resolver", async () => {
    const res = await fetch(gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ accounts { name customer { id displayName sentiment { label interactionCount } } } }' }),
    });
    const body = (await res.json()) as { data: { accounts: unknown[] }; errors?: unknown };
    expect(body.errors).toBeUndefined();
    expect(body.data.accounts).toEqual([{ name: 'Acme Ltd', customer: { id: customerId, displayName: 'Ann Federated', sentiment: { label: 'NEGATIVE', interactionCount: 1 } } }]);
  });
});

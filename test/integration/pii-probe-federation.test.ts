import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// With EARSHOT_FEDERATION=on, `_entities` is a root field that @apollo/subgraph adds beside
// Earshot's own: it must ask for a credential like every one of them, and answer the PII rules of
// `customer(id:)` to the roles that have one.

const KEYS = { admin: 'fedprobe-admin-key-0123456789', analyst: 'fedprobe-analyst-key-0123456789' };
const EMAIL = 'nina.fedprobe@example.com';
const TEXT = 'Charged twice for my order and nobody answers. Awful.';

const ENTITIES = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id displayName identities { kind value }
  interactions(first: 5) { edges { node { text author { handle displayName } } } } } } }`;

type Entities = { _entities: ({ id: string; displayName: string | null; identities: { kind: string; value: string | null }[]; interactions: { edges: { node: { text: string } }[] } } | null)[] };

describe('federation _entities: authentication and PII as for customer(id:)', () => {
  let app: TestApp;
  let customerId: string;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_FEDERATION: 'on', EARSHOT_API_KEYS: `${KEYS.admin}:admin,${KEYS.analyst}:analyst` }, 'fedprobe');
    const res = await fetch(`${app.url}/ingest`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', 'x-api-key': KEYS.admin },
      body: ndjson([message(1, { source: 'email', externalId: 'fedprobe-1', author: { handle: EMAIL, email: EMAIL, displayName: 'Nina Fedprobe' }, text: TEXT })]),
    });
    expect(await res.json()).toMatchObject({ accepted: 1, rejected: [] });
    const c = await app.gql<{ customers: { edges: { node: { id: string } }[] } }>('{ customers(first: 1) { edges { node { id } } } }', undefined, { 'x-api-key': KEYS.admin });
    customerId = c.data.customers.edges[0]!.node.id;
  });
  afterAll(async () => {
    await app?.close();
  });

  it('a caller without a credential gets no customer through _entities', async () => {
    // twice: graphql-jit runs a document from its second run on
    for (let run = 0; run < 2; run++) {
      const r = await app.gql<Entities>(ENTITIES, { r: [{ __typename: 'Customer', id: customerId }] });
      const body = JSON.stringify(r);
      expect(body).not.toContain('Nina Fedprobe');
      expect(body).not.toContain('Charged twice');
      expect(r.errors?.map((e) => e.extensions?.code)).toContain('UNAUTHENTICATED');
    }
  });

  it('_service { sdl } answers without a credential only while introspection is on', async () => {
    // introspection is on outside production: the SDL is no more than __schema gives
    const open = await app.gql<{ _service: { sdl: string } }>('{ _service { sdl } }');
    expect(open.data._service.sdl).toContain('type Customer');
    const closed = await startTestApp({ EARSHOT_FEDERATION: 'on', EARSHOT_GRAPHQL_INTROSPECTION: 'false', EARSHOT_API_KEYS: `${KEYS.admin}:admin` }, 'fedsdl');
    try {
      // before: the whole schema to anyone, though __schema was refused
      for (let run = 0; run < 2; run++) {
        const anonymous = await closed.gql<{ _service: { sdl: string } | null }>('{ _service { sdl } }');
        expect(JSON.stringify(anonymous)).not.toContain('type Customer');
        expect(anonymous.errors?.map((e) => e.extensions?.code)).toContain('UNAUTHENTICATED');
      }
      const gateway = await closed.gql<{ _service: { sdl: string } }>('{ _service { sdl } }', undefined, { 'x-api-key': KEYS.admin });
      expect(gateway.data._service.sdl).toContain('type Customer');
    } finally {
      await closed.close();
    }
  });

  it('an analyst gets the customer as customer(id:) shows it: no email', async () => {
    const r = await app.gql<Entities>(ENTITIES, { r: [{ __typename: 'Customer', id: customerId }] }, { 'x-api-key': KEYS.analyst });
    expect(r.errors).toBeUndefined();
    const entity = r.data._entities[0]!;
    expect(entity.displayName).toBe('Nina Fedprobe');
    expect(entity.identities.map((i) => i.value)).toEqual([null]);
    expect(JSON.stringify(r).toLowerCase()).not.toContain('fedprobe@');
    // and the admin sees it, so the entity resolver reached real data
    const admin = await app.gql<Entities>(ENTITIES, { r: [{ __typename: 'Customer', id: customerId }] }, { 'x-api-key': KEYS.admin });
    expect(admin.data._entities[0]!.identities.map((i) => i.value)).toEqual([EMAIL]);
  });
});

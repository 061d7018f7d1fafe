import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// On the address channels (email, sms, call, whatsapp, chat, ticket, survey) the author's handle
// is the address the message came from. Before, ingest took it for no identity at all: every
// email from one sender was stored as nobody's, with no customer, no summary and no link to the
// customer who had written from a social network with the same email.

const KEYS = { admin: 'addrchan-admin-key-0123456789', analyst: 'addrchan-analyst-key-0123456789' };

describe('the address an email, text or call came from identifies its author', () => {
  let app: TestApp;
  const admin = { 'x-api-key': KEYS.admin };
  const analyst = { 'x-api-key': KEYS.analyst };

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest', EARSHOT_API_KEYS: `${KEYS.admin}:admin,${KEYS.analyst}:analyst` }, 'addrchan');
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  const ingest = async (lines: Record<string, unknown>[]) => {
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...admin }, body: ndjson(lines) });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ accepted: lines.length, rejected: [] });
  };
  type Seen = { interactions: { edges: { node: { externalId: string; customer: { id: string; sentiment: { interactionCount: number }; identities: { kind: string; value: string | null; redacted: boolean }[] } | null } }[] } };
  const owners = async (headers: Record<string, string>, ids: string[]) => {
    const r = await app.gql<Seen>(
      `{ interactions(first: 100) { edges { node { externalId customer { id sentiment { interactionCount } identities { kind value redacted } } } } } }`,
      undefined,
      headers,
    );
    expect(r.errors).toBeUndefined();
    return new Map(r.data.interactions.edges.filter((e) => ids.includes(e.node.externalId)).map((e) => [e.node.externalId, e.node.customer]));
  };

  it('two emails from one sender, however the address is written, and a post naming that email are one customer', async () => {
    await ingest([
      message(1, { source: 'email', externalId: 'addr-mail-1', author: { handle: 'Jane Roe <Jane.Roe@Example.org>', displayName: 'Jane Roe' }, text: 'My order never arrived.' }),
      message(2, { source: 'email', externalId: 'addr-mail-2', author: { handle: 'jane.roe@example.org' }, text: 'Still waiting, this is terrible.' }),
    ]);
    await ingest([message(3, { source: 'x', externalId: 'addr-x-3', author: { handle: 'janeroe_x', email: 'jane.roe@example.org' } })]);

    const seen = await owners(admin, ['addr-mail-1', 'addr-mail-2', 'addr-x-3']);
    const ids = new Set([...seen.values()].map((c) => c?.id));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toBeTruthy();
    const customer = seen.get('addr-x-3')!;
    expect(customer.sentiment.interactionCount).toBe(3);
    expect(customer.identities.map((i) => `${i.kind}:${i.value}`).sort()).toEqual(['EMAIL:jane.roe@example.org', 'HANDLE:x:janeroe_x']);

    // the address stays PII: an analyst sees the customer, not the email
    const asAnalyst = (await owners(analyst, ['addr-mail-1'])).get('addr-mail-1')!;
    expect(asAnalyst.id).toBe(customer.id);
    expect(JSON.stringify(asAnalyst)).not.toContain('example.org');
    expect(asAnalyst.identities.find((i) => i.kind === 'EMAIL')).toMatchObject({ value: null, redacted: true });
  });

  it('a text and a call from one number in two spellings are one customer; a chat visitor id and a placeholder are no one', async () => {
    await ingest([
      message(4, { source: 'sms', externalId: 'addr-sms-4', author: { handle: '(415) 555-0163' } }),
      message(5, { source: 'call', externalId: 'addr-call-5', author: { handle: '+1 415 555 0163' } }),
      message(6, { source: 'chat', externalId: 'addr-chat-6', author: { handle: 'visitor-5521' } }),
      message(7, { source: 'email', externalId: 'addr-mail-7', author: { handle: 'test@test.com' } }),
    ]);
    const seen = await owners(admin, ['addr-sms-4', 'addr-call-5', 'addr-chat-6', 'addr-mail-7']);
    expect(seen.get('addr-sms-4')?.id).toBeTruthy();
    expect(seen.get('addr-call-5')?.id).toBe(seen.get('addr-sms-4')!.id);
    expect(seen.get('addr-sms-4')!.identities.map((i) => `${i.kind}:${i.value}`)).toEqual(['PHONE:+14155550163']);
    expect(seen.get('addr-chat-6')).toBeNull();
    expect(seen.get('addr-mail-7')).toBeNull();
  });

  it('an email that names a different address of its own is filed under that one, not the relaying sender', async () => {
    await ingest([message(8, { source: 'email', externalId: 'addr-mail-8', author: { handle: 'forms@relay.example', email: 'sam.poe@example.org' } })]);
    const c = (await owners(admin, ['addr-mail-8'])).get('addr-mail-8')!;
    expect(c.identities.map((i) => `${i.kind}:${i.value}`)).toEqual(['EMAIL:sam.poe@example.org']);
  });
});

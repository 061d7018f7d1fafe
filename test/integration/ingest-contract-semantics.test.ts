import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// Messages valid under interactions.v1 that were stored wrongly: a whitespace-only text read as
// unhappy and opened a listening item; a 0 on a 0..10 survey counted for nothing; a leap second
// was refused; a reply that named its addressee in another spelling than the author's handle
// answered nothing, and a texter known by phone alone opened an item per text.

const KEY = 'contract-semantics-admin-key-0123456789';

describe('interactions.v1: valid messages get the treatment they ask for', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest', EARSHOT_API_KEYS: `${KEY}:admin` }, 'contractsem');
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  const ingest = async (lines: Record<string, unknown>[]) => {
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'x-api-key': KEY }, body: ndjson(lines) });
    expect(res.status).toBe(200);
    return (await res.json()) as { accepted: number; rejected: { line: number; error: string }[] };
  };
  type Node = { externalId: string; occurredAt: string; unhappy: boolean; sentiment: { score: number; label: string } };
  const interaction = async (source: string, externalId: string): Promise<Node | undefined> => {
    const r = await app.gql<{ interactions: { edges: { node: Node }[] } }>(
      `query($s: String) { interactions(first: 100, filter: { source: $s }) { edges { node { externalId occurredAt unhappy sentiment { score label } } } } }`,
      { s: source },
      { 'x-api-key': KEY },
    );
    expect(r.errors).toBeUndefined();
    return r.data.interactions.edges.map((e) => e.node).find((n) => n.externalId === externalId);
  };
  type Item = { status: string; interaction: { externalId: string }; lastInteraction: { externalId: string } };
  const itemsOf = async (channel: string): Promise<Item[]> => {
    const r = await app.gql<{ listeningItems: { edges: { node: Item }[] } }>(
      `query($c: String) { listeningItems(first: 100, filter: { channel: $c }) { edges { node { status interaction { externalId } lastInteraction { externalId } } } } }`,
      { c: channel },
      { 'x-api-key': KEY },
    );
    expect(r.errors).toBeUndefined();
    return r.data.listeningItems.edges.map((e) => e.node);
  };
  const itemOf = async (channel: string, externalId: string) => (await itemsOf(channel)).find((i) => i.interaction.externalId === externalId);

  it('a text of white space only is neutral and opens no listening item', async () => {
    await ingest([
      message(1, { source: 'x', externalId: 'ws-x', author: { handle: 'blank_poster' }, text: '  \n\t ' }),
      message(2, { source: 'call', externalId: 'ws-call', author: { handle: '+1 415 555 0171' }, text: '\n' }),
    ]);
    for (const [source, id] of [['x', 'ws-x'], ['call', 'ws-call']] as const) {
      const n = (await interaction(source, id))!;
      expect(n.sentiment).toEqual({ score: 0, label: 'NEUTRAL' });
      expect(n.unhappy).toBe(false);
      expect(await itemOf(source, id)).toBeUndefined();
    }
  });

  it('a 0 on a 0..10 survey is the most negative answer; 10 the most positive', async () => {
    await ingest([
      message(3, { source: 'survey', externalId: 'nps-0', author: { handle: 'resp-1' }, text: '', rating: 0, metadata: { ratingScale: 10 } }),
      message(4, { source: 'survey', externalId: 'nps-10', author: { handle: 'resp-2' }, text: '', rating: 10, metadata: { ratingScale: 10 } }),
    ]);
    const zero = (await interaction('survey', 'nps-0'))!;
    expect(zero.sentiment.label).toBe('NEGATIVE');
    expect(zero.sentiment.score).toBeLessThan(-0.5);
    expect(zero.unhappy).toBe(true);
    expect((await itemOf('survey', 'nps-0'))?.status).toBe('OPEN');
    const ten = (await interaction('survey', 'nps-10'))!;
    expect(ten.sentiment.label).toBe('POSITIVE');
    expect(ten.sentiment.score).toBeGreaterThan(0.5);
  });

  it('a leap second is accepted and kept in order, as the last millisecond of the second before', async () => {
    const r = await ingest([
      message(5, { externalId: 'leap-utc', occurredAt: '2016-12-31T23:59:60Z' }),
      message(6, { externalId: 'leap-offset', occurredAt: '2016-12-31T15:59:60.5-08:00' }),
    ]);
    expect(r).toMatchObject({ accepted: 2, rejected: [] });
    expect((await interaction('x', 'leap-utc'))!.occurredAt).toBe('2016-12-31T23:59:59.999Z');
    expect((await interaction('x', 'leap-offset'))!.occurredAt).toBe('2016-12-31T23:59:59.999Z');
  });

  const complaint = 'My parcel is late and nobody answers. Terrible.';
  const at = (min: number) => new Date(Date.UTC(2026, 10, 3, 9, 0, 0) + min * 60_000).toISOString();

  it('a reply answers the complaint of the author it addresses, however either spells the handle or address', async () => {
    await ingest([
      message(7, { source: 'x', externalId: 'sp-x', author: { handle: '@JaneSpells' }, occurredAt: at(0), text: complaint }),
      message(8, { source: 'email', externalId: 'sp-mail', author: { handle: 'Jane Spells <Jane.Spells@Example.org>' }, occurredAt: at(0), text: complaint }),
      message(9, { source: 'sms', externalId: 'sp-sms', author: { handle: '(415) 555-0172' }, occurredAt: at(0), text: complaint }),
    ]);
    await ingest([
      message(10, { source: 'x', externalId: 'sp-x-re', direction: 'outbound', author: { handle: 'brand' }, occurredAt: at(20), text: '@janespells sorry, we are on it' }),
      message(11, { source: 'email', externalId: 'sp-mail-re', direction: 'outbound', author: { handle: 'care@brand.example' }, occurredAt: at(20), text: 'Sorry, we are on it', metadata: { recipientHandle: 'jane.spells@example.org' } }),
      message(12, { source: 'sms', externalId: 'sp-sms-re', direction: 'outbound', author: { handle: 'brand' }, occurredAt: at(20), text: 'Sorry, we are on it', metadata: { recipientHandle: '+14155550172' } }),
    ]);
    expect((await itemOf('x', 'sp-x'))?.status).toBe('ANSWERED');
    expect((await itemOf('email', 'sp-mail'))?.status).toBe('ANSWERED');
    expect((await itemOf('sms', 'sp-sms'))?.status).toBe('ANSWERED');
  });

  it('a texter known by phone alone keeps one item for their texts, and a reply to the number answers it', async () => {
    await ingest([message(13, { source: 'sms', externalId: 'ph-1', author: { phone: '+1 415 555 0173' }, occurredAt: at(0), text: complaint })]);
    await ingest([message(14, { source: 'sms', externalId: 'ph-2', author: { phone: '415-555-0173' }, occurredAt: at(5), text: 'Still nothing. This is terrible.' })]);
    const items = (await itemsOf('sms')).filter((i) => ['ph-1', 'ph-2'].includes(i.interaction.externalId));
    expect(items).toHaveLength(1);
    expect(items[0]!.lastInteraction.externalId).toBe('ph-2');
    await ingest([message(15, { source: 'sms', externalId: 'ph-re', direction: 'outbound', author: { handle: 'brand' }, occurredAt: at(20), text: 'Sorry, on it', metadata: { recipientHandle: '(415) 555-0173' } })]);
    expect((await itemOf('sms', 'ph-1'))?.status).toBe('ANSWERED');
  });
});

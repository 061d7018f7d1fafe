import type { Kafka } from 'kafkajs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp, ndjson } from '../support/app';
import { kafkaEnv, kafkaNames, produce, testKafka, waitFor } from '../support/kafka-fixtures';

// End to end through the Kafka consumer: complaints open items, replies answer them, a new
// complaint in the thread reopens; checked over GraphQL as a care desk would, and in the table.

const T0 = Date.UTC(2026, 10, 2, 10, 0, 0);
const MIN = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

interface Item {
  id: string;
  status: string;
  channel: string;
  department: string;
  intent: string;
  dueAt: string;
  overdue: boolean;
  firstResponseSeconds: number | null;
  reopenedCount: number;
  interaction: { externalId: string };
  lastInteraction: { externalId: string };
  customer: { displayName: string } | null;
}

const OPEN_ITEMS = `query($channel: String, $department: String) { openItems(first: 50, channel: $channel, department: $department) {
  totalCount edges { node { id status channel department intent dueAt overdue firstResponseSeconds reopenedCount
    interaction { externalId } lastInteraction { externalId } customer { displayName } } } } }`;

function msg(externalId: string, at: number, handle: string, text: string, over: Record<string, unknown> = {}) {
  return { eventId: `e-${externalId}`, source: 'x', externalId, occurredAt: iso(at), direction: 'inbound', author: { handle, displayName: handle }, text, ...over };
}
function reply(externalId: string, at: number, text: string, over: Record<string, unknown> = {}) {
  return { eventId: `e-${externalId}`, source: 'x', externalId, occurredAt: iso(at), direction: 'outbound', author: { handle: 'brand', displayName: 'Brand Care' }, text, ...over };
}

describe('listening gap lifecycle through Kafka ingest', () => {
  // Each test on its own topic and database: item counts and threads are the test's alone.
  let names: ReturnType<typeof kafkaNames>;
  let kafka: Kafka;
  let app: TestApp;

  const send = (messages: Record<string, unknown>[]) =>
    produce(kafka, names.topic, messages.map((m) => ({ key: (m.author as { handle: string }).handle, value: JSON.stringify(m) })));
  const stored = (externalId: string) => waitFor(`interaction ${externalId}`, async () => (await app.db.ds.query(`SELECT 1 FROM interaction WHERE external_id = $1`, [externalId])).length > 0);
  const open = async (vars: Record<string, unknown> = {}) => {
    const r = await app.gql<{ openItems: { totalCount: number; edges: { node: Item }[] } }>(OPEN_ITEMS, vars);
    expect(r.errors).toBeUndefined();
    return r.data.openItems;
  };
  const row = async (externalId: string) =>
    (
      (await app.db.ds.query(
        `SELECT li.* FROM listening_item li JOIN interaction i ON i.id = li.interaction_id WHERE i.external_id = $1`,
        [externalId],
      )) as Record<string, unknown>[]
    )[0]!;

  beforeEach(async () => {
    names = kafkaNames('gaplife');
    kafka = testKafka();
    app = await startTestApp({ ...kafkaEnv(names), EARSHOT_GAP_ESCALATION: 'off' }, 'gaplife');
    await waitFor('consumer', async () => app.kafka?.health() === null);
  });

  afterEach(async () => {
    await app?.close();
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: names.all }).catch(() => undefined);
    await admin.disconnect();
  });

  it('a complaint opens an item with its SLA; the reply 37 minutes later closes it with a response time of 2,220 s', async () => {
    await send([msg('c1', T0, 'ana', 'My parcel is late and nobody answers. Terrible.')]);
    await stored('c1');
    const before = await open({ channel: 'x' });
    expect(before.totalCount).toBe(1);
    expect(before.edges[0]!.node).toMatchObject({
      status: 'OPEN',
      channel: 'x',
      department: 'Logistics',
      intent: 'COMPLAINT',
      // default SLA for social channels: 4 hours, around the clock
      dueAt: iso(T0 + 240 * MIN),
      overdue: true,
      firstResponseSeconds: null,
      interaction: { externalId: 'c1' },
      customer: { displayName: 'ana' },
    });

    await send([reply('r1', T0 + 37 * MIN, "We're sorry! Your parcel ships today.", { inReplyTo: 'c1' })]);
    await stored('r1');
    expect((await open({ channel: 'x' })).totalCount).toBe(0);
    expect(await row('c1')).toMatchObject({ status: 'answered', first_response_seconds: 2220, responded_by: 'reply', close_reason: 'reply' });
    expect((await row('c1')).first_response_at).toEqual(new Date(T0 + 37 * MIN));
    // the reply carries the thread of the complaint
    expect(await app.db.ds.query(`SELECT thread_key FROM interaction WHERE external_id = 'r1'`)).toEqual([{ thread_key: 'c1' }]);
  });

  it('a new complaint in the thread reopens the same item; a reply naming @ana answers it again, the first response stays', async () => {
    // the answered thread of the test above, built here
    await send([msg('c1', T0, 'ana', 'My parcel is late and nobody answers. Terrible.')]);
    await stored('c1');
    await send([reply('r1', T0 + 37 * MIN, "We're sorry! Your parcel ships today.", { inReplyTo: 'c1' })]);
    await stored('r1');
    expect(await row('c1')).toMatchObject({ status: 'answered', first_response_seconds: 2220 });
    await send([msg('c2', T0 + 180 * MIN, 'ana', 'Still nothing has arrived. Awful.', { inReplyTo: 'r1' })]);
    await stored('c2');
    const reopened = await open({ channel: 'x' });
    expect(reopened.totalCount).toBe(1);
    expect(reopened.edges[0]!.node).toMatchObject({ status: 'OPEN', reopenedCount: 1, dueAt: iso(T0 + 420 * MIN), interaction: { externalId: 'c1' }, lastInteraction: { externalId: 'c2' }, firstResponseSeconds: 2220 });
    expect(await app.db.ds.query(`SELECT count(*)::int AS n FROM listening_item`)).toEqual([{ n: 1 }]);

    // no inReplyTo: matched by the addressed handle on the same channel, within the window
    await send([reply('r2', T0 + 200 * MIN, '@ana we have sent a replacement by courier.')]);
    await stored('r2');
    expect((await open({ channel: 'x' })).totalCount).toBe(0);
    expect(await row('c1')).toMatchObject({ status: 'answered', reopened_count: 1, first_response_seconds: 2220 });
    // the answer changes the status, not which complaint came last
    const [{ last }] = (await app.db.ds.query(`SELECT l.external_id AS last FROM listening_item li JOIN interaction l ON l.id = li.last_interaction_id`)) as { last: string }[];
    expect(last).toBe('c2');
  });

  it('joins an unthreaded complaint to the author’s item within the window, and opens a new one after it', async () => {
    await send([
      msg('b1', T0, 'ben', 'I was charged twice for my order this month and nobody answers. Not happy.'),
      msg('b2', T0 + 60 * MIN, 'ben', 'Hello?? Still charged twice. Awful service.'),
      msg('b3', T0 + 5 * 24 * 60 * MIN, 'ben', 'Charged twice AGAIN. Unbelievable.'),
      msg('b4', T0 + 90 * MIN, 'ben', 'Love it, great job team!'),
    ]);
    await stored('b4');
    await stored('b3');
    const items = (await open({ department: 'Finance' })).edges.map((e) => e.node);
    expect(items.map((i) => [i.interaction.externalId, i.lastInteraction.externalId]).sort()).toEqual([
      ['b1', 'b2'],
      ['b3', 'b3'],
    ]);
  });

  it('applies the events of one batch in the order they happened: complaint, reply, new complaint leave it open', async () => {
    const body = ndjson([
      msg('d3', T0 + 30 * MIN, 'dora', 'Still nothing has arrived. Awful.', { inReplyTo: 'd2' }),
      reply('d2', T0 + 10 * MIN, 'Sorry Dora, looking into it.', { inReplyTo: 'd1' }),
      msg('d1', T0, 'dora', 'My parcel is 5 days late and the courier tracking has not moved. Terrible delivery.'),
    ]);
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body });
    expect(res.status).toBe(200);
    expect(await row('d1')).toMatchObject({ status: 'open', reopened_count: 1, first_response_seconds: 600 });
    expect((await row('d1')).last_opened_at).toEqual(new Date(T0 + 30 * MIN));
  });

  it('lets an agent mark an item responded, close one with a reason and route one to another department', async () => {
    await send([
      msg('e1', T0, 'eve', 'How do I change the delivery address on my order?'),
      msg('f1', T0, 'finn', 'The app keeps crashing when I try to pay. Fix your website!'),
      msg('g1', T0, 'gus', 'Can someone help me please?'),
    ]);
    await stored('e1');
    await stored('f1');
    await stored('g1');
    const byExt = new Map((await open()).edges.map((e) => [e.node.interaction.externalId, e.node]));
    // a question without a topic goes to the default department
    expect(byExt.get('g1')!.department).toBe('Customer Care');

    const marked = await app.gql<{ markResponded: { status: string; firstResponseSeconds: number } }>(`mutation($id: ID!) { markResponded(id: $id) { status firstResponseSeconds } }`, { id: byExt.get('e1')!.id });
    expect(marked.errors).toBeUndefined();
    expect(marked.data.markResponded.status).toBe('ANSWERED');
    expect(marked.data.markResponded.firstResponseSeconds).toBeGreaterThan(0);

    const closed = await app.gql<{ closeItem: { status: string; closeReason: string } }>(`mutation($id: ID!) { closeItem(id: $id, reason: "duplicate of a ticket") { status closeReason } }`, { id: byExt.get('g1')!.id });
    expect(closed.data.closeItem).toEqual({ status: 'CLOSED', closeReason: 'duplicate of a ticket' });

    const assigned = await app.gql<{ assignItem: { department: string; assignedUser: string } }>(`mutation($id: ID!) { assignItem(id: $id, department: "Digital", user: "sam") { department assignedUser } }`, { id: byExt.get('f1')!.id });
    expect(assigned.data.assignItem).toEqual({ department: 'Digital', assignedUser: 'sam' });
    expect((await open({ department: 'Digital' })).edges.map((e) => e.node.interaction.externalId)).toEqual(['f1']);

    // closing again with the same reason is a repeat; another reason would be silently dropped: CONFLICT
    const again = await app.gql(`mutation($id: ID!) { closeItem(id: $id, reason: "duplicate of a ticket") { status } }`, { id: byExt.get('g1')!.id });
    expect(again.errors).toBeUndefined();
    const other = await app.gql(`mutation($id: ID!) { closeItem(id: $id, reason: "x") { status } }`, { id: byExt.get('g1')!.id });
    expect(other.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    const answered = await app.gql(`mutation($id: ID!) { closeItem(id: $id, reason: "spam") { status } }`, { id: byExt.get('e1')!.id });
    expect(answered.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    const unknown = await app.gql(`mutation { assignItem(id: "${byExt.get('f1')!.id}", department: "Nope") { id } }`);
    expect(unknown.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelServer, type ModelRequestItem } from '../support/model-server';
import { rescoreToEnd, startTestApp, type TestApp } from '../support/app';
import { lockTrackedItems } from '../../src/listening-gap/listening-gap.repository';

// Replies addressed to a customer (no message named, `metadata.recipientHandle` or a leading
// `@handle`) against authors and recipients written in unexpected ways. What ingest decides and
// what a re-score decides must agree: the author is the one ingest keys (`authorKeyOf`: the
// handle, else the e-mail, else the phone), so a sender known by e-mail or phone alone is found
// by the replies addressed to that address.

const MIN = 60_000;
const HOUR = 60 * MIN;
const iso = (ms: number) => new Date(ms).toISOString();
const UPSET = 'Where is my refund, this is the third time I ask';
const uid = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

const inbound = (source: string, externalId: string, at: number, author: Record<string, unknown>, over: Record<string, unknown> = {}) => ({
  source, externalId: `${uid}-${externalId}`, occurredAt: iso(at), direction: 'inbound', author, text: UPSET, ...over,
});
const outbound = (source: string, externalId: string, at: number, text: string, over: Record<string, unknown> = {}) => ({
  source, externalId: `${uid}-${externalId}`, occurredAt: iso(at), direction: 'outbound', author: { handle: 'brand' }, text, ...over,
});

describe('listening gap: replies addressed to authors written otherwise', () => {
  let app: TestApp;
  let server: ModelServer;
  /** first hears nothing in the complaints (no item at ingest), then hears them (the re-score opens them) */
  let hears = false;
  const model = (it: ModelRequestItem) =>
    hears && it.text === UPSET ? { score: -0.9, label: 'negative', complaint: true, intent: 'complaint' } : { score: 0, label: 'neutral', complaint: false, intent: 'other' };
  const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await app.db.ds.query(sql, params)) as T[];
  const ingest = async (msgs: Record<string, unknown>[]) => {
    const r = await app.services.ingest.ingestObjects(msgs, 'test');
    expect(r.rejected).toEqual([]);
  };
  const itemOf = async (source: string, externalId: string) =>
    (
      await q<{ status: string; author_handle: string | null; first_response_seconds: number | null }>(
        `SELECT li.status, li.author_handle, li.first_response_seconds
           FROM listening_item li JOIN interaction i ON i.id = li.interaction_id WHERE i.source = $1 AND i.external_id = $2`,
        [source, `${uid}-${externalId}`],
      )
    )[0];
  const rescore = async () => {
    hears = true;
    return rescoreToEnd(app);
  };

  beforeAll(async () => {
    server = await new ModelServer('acme-care-v4', model).start();
    app = await startTestApp({ EARSHOT_ROLES: 'api', EARSHOT_GAP_ESCALATION: 'off', EARSHOT_SENTIMENT_URL: server.url }, 'gapaddressed');
  }, 120_000);
  afterAll(async () => {
    await app?.close();
    await server?.close();
  });

  it('a re-score keys a sender known by phone or e-mail alone as ingest does: the reply addressed to that address answers the item, and later ones find it', async () => {
    // the model hears nothing at ingest, whichever test ran before (they set it to hear)
    hears = false;
    const t = Date.now() - 3 * HOUR;
    await ingest([
      // no handle: ingest keys the phone and the e-mail
      inbound('sms', 'ph-c', t, { phone: '+1 415 555 0181' }),
      outbound('sms', 'ph-r', t + 20 * MIN, 'Your refund is on its way', { metadata: { recipientHandle: '(415) 555-0181' } }),
      inbound('email', 'em-c', t, { email: 'Rita.Ortiz@Example.org' }),
      inbound('sms', 'ph2-c', t, { phone: '+1 415 555 0182' }),
    ]);
    // none of these opened an item at ingest (the other tests' items are theirs)
    const mine = ['ph-c', 'em-c', 'ph2-c'].map((x) => `${uid}-${x}`);
    expect(await q(`SELECT count(*)::int AS n FROM listening_item li JOIN interaction i ON i.id = li.interaction_id WHERE i.external_id = ANY($1)`, [mine])).toEqual([{ n: 0 }]);
    await rescore();
    // before: open, with no author (the re-score keyed only the handle, which they have not)
    expect(await itemOf('sms', 'ph-c')).toMatchObject({ status: 'answered', author_handle: '+14155550181', first_response_seconds: 1200 });
    expect(await itemOf('email', 'em-c')).toMatchObject({ status: 'open', author_handle: 'rita.ortiz@example.org' });
    expect(await itemOf('sms', 'ph2-c')).toMatchObject({ status: 'open', author_handle: '+14155550182' });
    await ingest([
      outbound('email', 'em-r', t + 30 * MIN, 'Hello Rita, refunded', { metadata: { recipientHandle: 'rita.ortiz@example.org' } }),
      outbound('sms', 'ph2-r', t + 30 * MIN, 'Calling you now', { metadata: { recipientHandle: '415-555-0182' } }),
    ]);
    expect(await itemOf('email', 'em-c')).toMatchObject({ status: 'answered' });
    expect(await itemOf('sms', 'ph2-c')).toMatchObject({ status: 'answered' });
  });

  it('senders who share a placeholder address (a web form noreply@) are not one author: a reply addressed to it answers nobody, and erasing one sender keeps the replies to the others', async () => {
    hears = true;
    const t = Date.now() - HOUR;
    await ingest([
      inbound('ticket', 'form-a', t, { email: 'noreply@forms.example', phone: '+1 415 555 0141', displayName: 'Ann' }),
      inbound('ticket', 'form-b', t + 5 * MIN, { email: 'noreply@forms.example', phone: '+1 415 555 0142', displayName: 'Bob' }),
      outbound('ticket', 'form-rb', t + 10 * MIN, 'Hello Bob, a new parcel is on its way', { metadata: { recipientHandle: 'noreply@forms.example' } }),
    ]);
    // before: Bob's complaint joined Ann's item (one item, Ann's), and the reply to Bob answered it
    const a = await itemOf('ticket', 'form-a');
    const b = await itemOf('ticket', 'form-b');
    expect(a).toMatchObject({ status: 'open' });
    expect(b).toMatchObject({ status: 'open' });
    const [ann] = await q<{ customer_id: string }>(`SELECT customer_id FROM interaction WHERE source = 'ticket' AND external_id = $1`, [`${uid}-form-a`]);
    const erased = await app.gql(`mutation($id: ID!) { eraseCustomer(id: $id, reason: "DSR-77") { erasedNow } }`, {
      id: Buffer.from(`Customer:${ann!.customer_id}`).toString('base64url'),
    });
    expect(erased.errors).toBeUndefined();
    // before: the reply to Bob was redacted with Ann (its text, metadata and external id)
    expect(await q(`SELECT text, redacted_at FROM interaction WHERE source = 'ticket' AND external_id = $1`, [`${uid}-form-rb`])).toEqual([
      { text: 'Hello Bob, a new parcel is on its way', redacted_at: null },
    ]);
  });

  it('a batch addressed to an author with many open items loads and locks only the latest of them, and answers it as before', async () => {
    hears = true;
    const t = Date.now() - 2 * HOUR;
    const n = 600;
    const author = `hub_${uid}`;
    // n complaints of one author, each in a thread of its own (replies to posts not stored), one a second
    await ingest(Array.from({ length: n }, (_, k) => inbound('x', `hub-c-${k}`, t + k * 1000, { handle: author }, { inReplyTo: `${uid}-post-${k}` })));
    const open = await q<{ n: number }>(`SELECT count(*)::int AS n FROM listening_item WHERE author_handle = $1 AND status = 'open'`, [author]);
    expect(open).toEqual([{ n }]);
    // what a batch of replies addressed to them loads (and locks): before, every item of the author in the window
    const loaded = await app.db.ds.transaction((m) =>
      lockTrackedItems(m, { threadSources: [], threadKeys: [], authorSources: ['x'], authors: [author], since: iso(t - HOUR) }),
    );
    expect(loaded.map((r) => r.thread_key)).toEqual([`${uid}-post-${n - 1}`]);
    await ingest(Array.from({ length: 50 }, (_, k) => outbound('x', `hub-r-${k}`, t + n * 1000 + k * 1000, `@${author} we are on it`)));
    // the latest item is answered by the first of them; the others stay open, as before
    expect(await q(`SELECT thread_key, first_response_seconds FROM listening_item WHERE author_handle = $1 AND status = 'answered'`, [author])).toEqual([
      { thread_key: `${uid}-post-${n - 1}`, first_response_seconds: 1 },
    ]);
  }, 120_000);
});

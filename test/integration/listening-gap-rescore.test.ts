import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelServer, type ModelRequestItem } from '../support/model-server';
import { rescoreToEnd, startTestApp, type TestApp } from '../support/app';

// A re-score opens listening items for stored messages the new model hears as unhappy. Whether
// such an item is answered, and whom it is kept for, must be what ingest would have decided had
// the message been scored so when it arrived: the same replies answer it (the 5-minute clock
// skew, replies addressed to its author), and its author is keyed with the configured identity
// options (EARSHOT_DEFAULT_PHONE_REGION, EARSHOT_EMAIL_PLUS_ADDRESSING), so later replies find it.

const MIN = 60_000;
const HOUR = 60 * MIN;
const iso = (ms: number) => new Date(ms).toISOString();
const UPSET = 'Where is my refund, this is the third time I ask';

const inbound = (source: string, externalId: string, at: number, handle: string, over: Record<string, unknown> = {}) => ({
  source, externalId, occurredAt: iso(at), direction: 'inbound', author: { handle }, text: UPSET, ...over,
});
const outbound = (source: string, externalId: string, at: number, text: string, over: Record<string, unknown> = {}) => ({
  source, externalId, occurredAt: iso(at), direction: 'outbound', author: { handle: 'brand' }, text, ...over,
});

describe('listening gap: items a re-score opens are answered and keyed as at ingest', () => {
  let app: TestApp;
  let server: ModelServer;
  /** the model of the day: first hears nothing in the complaints, then hears them */
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
      await q<{ status: string; author_handle: string | null; first_response_seconds: number | null; closed_at: Date | null }>(
        `SELECT li.status, li.author_handle, li.first_response_seconds, li.closed_at
           FROM listening_item li JOIN interaction i ON i.id = li.interaction_id WHERE i.source = $1 AND i.external_id = $2`,
        [source, externalId],
      )
    )[0];
  /** Runs a re-score to its end (its status polled: the job runs in the background). */
  const rescore = async () => {
    hears = true;
    return rescoreToEnd(app);
  };

  beforeAll(async () => {
    server = await new ModelServer('acme-care-v3', model).start();
    app = await startTestApp(
      { EARSHOT_ROLES: 'api', EARSHOT_GAP_ESCALATION: 'off', EARSHOT_SENTIMENT_URL: server.url, EARSHOT_DEFAULT_PHONE_REGION: 'GB', EARSHOT_EMAIL_PLUS_ADDRESSING: 'strip' },
      'gaprescore',
    );

    // Day one: the model hears nothing; every message is stored, no item opens.
    const t = Date.now() - 3 * HOUR;
    await ingest([
      // replies in the thread, stamped before the complaint (clock skew): 2 minutes early, and 10
      inbound('x', 'rs-skew2-c', t, 'rs_ann'),
      outbound('x', 'rs-skew2-r', t - 2 * MIN, 'Sorry Ann, on it', { inReplyTo: 'rs-skew2-c' }),
      inbound('x', 'rs-skew10-c', t, 'rs_ben'),
      outbound('x', 'rs-skew10-r', t - 10 * MIN, 'Hello Ben', { inReplyTo: 'rs-skew10-c' }),
      // a reply addressed to the author only, 20 minutes after
      inbound('x', 'rs-to-c', t, 'rs_cleo'),
      outbound('x', 'rs-to-r', t + 20 * MIN, '@rs_cleo sorry, the refund is on its way'),
      // authors whose keys depend on the configured identity options
      inbound('sms', 'rs-gb-c', t, '020 7946 0958'),
      inbound('email', 'rs-plus-c', t, 'Dana <dana+orders@example.org>'),
    ]);
    expect(await q(`SELECT count(*)::int AS n FROM listening_item`)).toEqual([{ n: 0 }]);
    await rescore();
  }, 120_000);
  afterAll(async () => {
    await app?.close();
    await server?.close();
  });

  it('a reply stamped up to 5 minutes before the message answers it at 0 s, an earlier one does not (as at ingest)', async () => {
    // before: open, the re-score counted only replies stamped after the message
    expect(await itemOf('x', 'rs-skew2-c')).toMatchObject({ status: 'answered', first_response_seconds: 0 });
    expect(await itemOf('x', 'rs-skew10-c')).toMatchObject({ status: 'open', first_response_seconds: null });
  });

  it('a reply addressed to the author answers the item it opens (as at ingest)', async () => {
    expect(await itemOf('x', 'rs-to-c')).toMatchObject({ status: 'answered', first_response_seconds: 1200 });
  });

  it('keeps the author under the key ingest gives it with the configured options, so later replies find the item', async () => {
    // before: '020 7946 0958' (read as a US number, which it is not) and 'dana+orders@example.org'
    expect(await itemOf('sms', 'rs-gb-c')).toMatchObject({ status: 'open', author_handle: '+442079460958' });
    expect(await itemOf('email', 'rs-plus-c')).toMatchObject({ status: 'open', author_handle: 'dana@example.org' });
    const t = Date.now() - HOUR;
    await ingest([
      outbound('sms', 'rs-gb-r', t, 'We are calling you now', { metadata: { recipientHandle: '+44 20 7946 0958' } }),
      outbound('email', 'rs-plus-r', t, 'Your refund is on its way', { metadata: { recipientHandle: 'dana@example.org' } }),
    ]);
    expect(await itemOf('sms', 'rs-gb-c')).toMatchObject({ status: 'answered' });
    expect(await itemOf('email', 'rs-plus-c')).toMatchObject({ status: 'answered' });
  });
});

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { waitFor } from '../support/kafka-fixtures';
import { ModelServer, type ModelRequestItem } from '../support/model-server';

// A source that stamps `lang: "en"` on everything: the declared language won over the text's
// script, so a Japanese complaint was scored by the English model, which made up a sentiment from
// words it never saw and opened a listening item for an agent by chance. Now the script wins over
// a declared language written in Latin letters; an English complaint declared `en` is unchanged.

const JA = '最悪のサービスです。注文した商品が届きません。返金してください';
const AR = 'خدمة سيئة جدا، لم يصل طلبي بعد';
const EN = 'My parcel is late and nobody answers. Terrible.';
const MIXED = 'Terrible service 最悪, my parcel never arrived';

interface Row {
  external_id: string;
  lang: string;
  sentiment_label: string;
  unhappy: boolean;
  explanation: { token: string; weight: number }[];
  items: number;
}

async function ingest(app: TestApp, lines: Record<string, unknown>[], headers: Record<string, string> = {}): Promise<void> {
  const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...headers }, body: ndjson(lines) });
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ accepted: lines.length, rejected: [] });
}

async function stored(app: TestApp, run: string): Promise<Map<string, Row>> {
  const rows = (await app.db.ds.query(
    `SELECT i.external_id, i.lang, i.sentiment_label, i.unhappy, i.explanation,
            (SELECT count(*)::int FROM listening_item li WHERE li.interaction_id = i.id) AS items
       FROM interaction i WHERE i.external_id LIKE $1`,
    [`${run}-%`],
  )) as Row[];
  return new Map(rows.map((r) => [r.external_id.slice(run.length + 1), r]));
}

/** Inbound posts of one run, each from its own author, all declared as the source declares them. */
function posts(run: string, texts: Record<string, string>, lang: string): Record<string, unknown>[] {
  return Object.entries(texts).map(([name, text], i) =>
    message(i, { eventId: `${run}-${name}`, externalId: `${run}-${name}`, author: { handle: `${run}_${name}`, displayName: name }, text, lang }),
  );
}

describe('a declared language the text\'s script contradicts', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest' }, 'declang');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('POST /ingest: a Japanese complaint declared `en` is stored as `ja`, neutral, and opens no listening item; an English one declared `en` still does', async () => {
    const run = `dl${Date.now()}`;
    await ingest(app, [...posts(run, { ja: JA, ar: AR, en: EN, mixed: MIXED }, 'en'), ...posts(run, { enja: EN }, 'ja')]);
    const rows = await stored(app, run);

    for (const [name, lang] of [['ja', 'ja'], ['ar', 'ar']] as const) {
      const r = rows.get(name)!;
      expect(r).toMatchObject({ lang, sentiment_label: 'neutral', unhappy: false, items: 0 });
      expect(r.explanation.map((e) => e.token)).toEqual([`(no sentiment model for language '${lang}')`]);
    }
    // English, and English with a word of Japanese, are the English model's as before
    for (const name of ['en', 'mixed']) {
      expect(rows.get(name)).toMatchObject({ lang: 'en', unhappy: true, items: 1 });
      expect(rows.get(name)!.explanation.some((e) => e.token.startsWith('(no sentiment model'))).toBe(false);
    }
    // the reverse is left alone: a declared language written in another script stands, on English text too
    expect(rows.get('enja')).toMatchObject({ lang: 'ja', sentiment_label: 'neutral', unhappy: false, items: 0 });

    // as an analyst reads them
    const r = await app.gql<{ interactions: { edges: { node: { externalId: string; lang: string; unhappy: boolean } }[] } }>('{ interactions(first: 100) { edges { node { externalId lang unhappy } } } }');
    expect(r.errors).toBeUndefined();
    const seen = new Map(r.data.interactions.edges.map((e) => [e.node.externalId, e.node]));
    expect(seen.get(`${run}-ja`)).toMatchObject({ lang: 'ja', unhappy: false });
    expect(seen.get(`${run}-en`)).toMatchObject({ lang: 'en', unhappy: true });
  });
});

describe('a declared language the script contradicts, with a team model server', () => {
  let server: ModelServer;
  let app: TestApp;

  beforeAll(async () => {
    server = await new ModelServer('acme-care-v2', (it: ModelRequestItem) => ({ score: it.lang === 'en' ? -0.8 : 0 })).start();
    app = await startTestApp({ EARSHOT_ROLES: 'api,ingest', EARSHOT_SENTIMENT_URL: server.url }, 'declangsrv');
  });
  afterEach(() => {
    server.requests.length = 0;
  });
  afterAll(async () => {
    await app?.close();
    await server?.close();
  });

  it('tells the server the script\'s language, and stores it', async () => {
    const run = `dlsrv${Date.now()}`;
    await ingest(app, posts(run, { ja: JA, en: EN }, 'en'));
    const sent = new Map(server.requests.flatMap((r) => r.items).map((it) => [it.text, it.lang]));
    expect(sent.get(JA)).toBe('ja');
    expect(sent.get(EN)).toBe('en');
    const rows = await stored(app, run);
    expect(rows.get('ja')).toMatchObject({ lang: 'ja', unhappy: false, items: 0 });
    expect(rows.get('en')).toMatchObject({ lang: 'en', unhappy: true, items: 1 });
  });
});

describe('rows stored before the script overruled a declared language, after a re-score', () => {
  const ADMIN = 'admin-key-0123456789';
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin` }, 'declangrescore');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('a Japanese complaint stored as `en` and scored by the English model is stored as `ja` and neutral once re-scored', async () => {
    const run = `dlre${Date.now()}`;
    await ingest(app, posts(run, { ja: JA, en: EN }, 'en'), { 'x-api-key': ADMIN });
    // as a release before the rule stored it: the declaration kept, the English model's answer
    await app.db.ds.query(`UPDATE interaction SET lang = 'en', sentiment_label = 'negative', sentiment_score = -0.8, unhappy = true WHERE external_id = $1`, [`${run}-ja`]);
    const started = await app.gql<{ startRescore: { id: string } }>('mutation { startRescore { id } }', undefined, { 'x-api-key': ADMIN });
    expect(started.errors).toBeUndefined();
    const job = await waitFor('the re-score to finish', async () => {
      const r = await app.gql<{ rescoreJob: { status: string; error: string | null } }>('query($id: ID!) { rescoreJob(id: $id) { status error } }', { id: started.data.startRescore.id }, { 'x-api-key': ADMIN });
      return ['succeeded', 'failed'].includes(r.data.rescoreJob.status) ? r.data.rescoreJob : null;
    });
    expect(job).toEqual({ status: 'succeeded', error: null });
    const rows = await stored(app, run);
    expect(rows.get('ja')).toMatchObject({ lang: 'ja', sentiment_label: 'neutral', unhappy: false });
    expect(rows.get('en')).toMatchObject({ lang: 'en', unhappy: true });
    const r = await app.gql<{ interactions: { edges: { node: { externalId: string; lang: string } }[] } }>('{ interactions(first: 100) { edges { node { externalId lang } } } }', undefined, { 'x-api-key': ADMIN });
    expect(r.data.interactions.edges.find((e) => e.node.externalId === `${run}-ja`)?.node.lang).toBe('ja');
  });
});

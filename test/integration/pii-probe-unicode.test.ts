import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { looksLikePii, sqlLooksLikePii } from '../../src/auth/pii.policy';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';

// Phone numbers and emails are not always written in ASCII: Japanese writers use full-width
// digits and ＠, Arabic and Persian writers their own digits. Earshot's phone normalizer reads
// them as the same numbers (+１ ４１５ … is +14155550142), so the PII policy must too: as display
// names they are hidden from roles without PII, and the search is no oracle for them.

const KEYS = { admin: 'uniprobe-admin-key-0123456789', analyst: 'uniprobe-analyst-key-0123456789' };

const NAMES = {
  fullwidthPhone: '+１ ４１５ ５５５ ０１４２',
  arabicPhone: '٤١٥٥٥٥٠١٨٧',
  persianPhone: '۰۹۱۲۳۴۵۶۷۸۹',
  fullwidthEmail: 'ｎｉｎａ＠ｅｘａｍｐｌｅ．ｃｏｍ',
};

describe('PII written in other digits and full-width forms', () => {
  let app: TestApp;
  const analyst = { 'x-api-key': KEYS.analyst };
  const admin = { 'x-api-key': KEYS.admin };

  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${KEYS.admin}:admin,${KEYS.analyst}:analyst` }, 'uniprobe');
    const seed = [
      message(1, { source: 'x', externalId: 'uni-1', author: { handle: 'uni_one', displayName: NAMES.fullwidthPhone } }),
      message(2, { source: 'whatsapp', externalId: 'uni-2', author: { handle: '+14155550187', displayName: NAMES.arabicPhone } }),
      message(3, { source: 'sms', externalId: 'uni-3', author: { handle: '+989123456789', displayName: NAMES.persianPhone } }),
      message(4, { source: 'email', externalId: 'uni-4', author: { handle: 'nina@example.com', email: 'nina@example.com', displayName: NAMES.fullwidthEmail } }),
      message(5, { source: 'x', externalId: 'uni-5', author: { handle: 'uni_named', displayName: 'Uni Named' } }),
    ];
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...admin }, body: ndjson(seed) });
    expect(await res.json()).toMatchObject({ accepted: seed.length, rejected: [] });
  });
  afterAll(async () => {
    await app?.close();
  });

  const PAGE = `{ customers(first: 100) { edges { node { displayName interactions(first: 5) { edges { node { author { handle displayName } } } } } } }
    interactions(first: 100) { edges { node { author { handle displayName } customer { displayName } } } } }`;

  it('an analyst sees none of them as a customer or author name; an admin sees them all', async () => {
    // twice: graphql-jit runs a document from its second run on
    for (let run = 0; run < 2; run++) {
      const r = await app.gql(PAGE, undefined, analyst);
      expect(r.errors).toBeUndefined();
      const body = JSON.stringify(r.data);
      expect(body).toContain('Uni Named');
      for (const v of Object.values(NAMES)) expect(body, v).not.toContain(v);
    }
    const all = JSON.stringify((await app.gql(PAGE, undefined, admin)).data);
    for (const v of Object.values(NAMES)) expect(all, v).toContain(v);
  });

  it('the search finds none of them for an analyst (no oracle), and finds them for an admin', async () => {
    // customers named so before the policy read these forms (new ones are not: see the names above)
    await app.db.ds.query(`INSERT INTO customer (display_name, created_at) SELECT unnest($1::text[]), now()`, [Object.values(NAMES)]);
    const SEARCH = 'query($s: String) { customers(first: 100, filter: { search: $s }) { totalCount } }';
    for (const s of ['４１５', '٤١٥', '۰۹۱۲', 'ｎｉｎａ', '＠']) {
      const r = await app.gql<{ customers: { totalCount: number } }>(SEARCH, { s }, analyst);
      expect(r.errors, s).toBeUndefined();
      expect(r.data.customers.totalCount, s).toBe(0);
      expect((await app.gql<{ customers: { totalCount: number } }>(SEARCH, { s }, admin)).data.customers.totalCount, s).toBeGreaterThan(0);
    }
    expect((await app.gql<{ customers: { totalCount: number } }>(SEARCH, { s: 'uni named' }, analyst)).data.customers.totalCount).toBe(1);
  });

  it('the SQL test (the search) and the JavaScript test (reading, topics) agree on every value', async () => {
    const values = [
      ...Object.values(NAMES), 'Uni Named', 'jane@example.com', '+1 (415) 555-0142', '415.555.0187', 'user12345678', 'Zoé4155550142',
      '+33\u00a06\u00a012\u00a034\u00a056\u00a078', 'Order 12345', '０９０－１２３４－５６７８', 'jane\u3000@example.com', 'a@b\u0085.com', '١٢٣٤٥٦', '𝟒𝟏𝟓𝟓𝟓𝟓𝟎𝟏𝟒𝟐',
      'ｊａｎｅ﹫ｅｘａｍｐｌｅ﹒ｃｏｍ', 'Renée 4155550142', 'x_4155550142', '@jane', 'Acme Ltd.',
    ];
    const rows = (await app.db.ds.query(`SELECT v, ${sqlLooksLikePii('v')} AS pii FROM unnest($1::text[]) AS t(v)`, [values])) as { v: string; pii: boolean }[];
    expect(rows.map((r) => [r.v, r.pii])).toEqual(values.map((v) => [v, looksLikePii(v)]));
    for (const v of Object.values(NAMES)) expect(looksLikePii(v), v).toBe(true);
  });
});

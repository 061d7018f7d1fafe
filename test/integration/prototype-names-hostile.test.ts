import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config';
import { message, ndjson, startTestApp, type TestApp } from '../support/app';
import { runEarshot } from '../support/earshot-process';
import { waitFor } from '../support/kafka-fixtures';
import { ModelServer } from '../support/model-server';

/**
 * Names a plain JavaScript object answers without holding them (`constructor`, `toString`,
 * `valueOf`, `hasOwnProperty`, `__proto__`), sent wherever a client names something: GraphQL
 * aliases and variables, the name a team's model server gives its model, the keys of the CRM
 * write-back field settings, the header of a CSV handed to `earshot resolve`. What a user checks:
 * the answer is the one the same operation gets under any other name, every time it runs
 * (graphql-js the first time, graphql-jit from the second), with no error; a re-score counts
 * every interaction under its model's name and succeeds; a setting or a file Earshot cannot read
 * is refused with its reason.
 */

const ADMIN = 'proto-names-admin-key-0123456789';
const NAMES = ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__'] as const;

describe('names Object.prototype answers, as GraphQL aliases and variables', () => {
  let app: TestApp;
  const h = { 'x-api-key': ADMIN };
  /** the same body three times: graphql-js runs a document first, graphql-jit from its second run */
  const thrice = async (query: string, variablesJson = '{}') => {
    const out: { status: number; body: { data?: Record<string, unknown>; errors?: unknown[] } }[] = [];
    for (let k = 0; k < 3; k++) {
      const res = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...h }, body: `{"query": ${JSON.stringify(query)}, "variables": ${variablesJson}}` });
      out.push({ status: res.status, body: (await res.json()) as never });
    }
    return out;
  };

  beforeAll(async () => {
    // escalation off: a pass between two reads of the open items would change what the second saw
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin`, EARSHOT_GAP_ESCALATION: 'off' }, 'protonames');
    // unhappy inbound messages (n % 3 === 1) open listening items
    const lines = Array.from({ length: 8 }, (_, i) => message(91_000_000 + i * 3 + 1, { author: { handle: `protonames${i}`, displayName: `Proto Names ${i}` } }));
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...h }, body: ndjson(lines) });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(8);
  }, 120_000);

  afterAll(async () => {
    await app?.close();
  });

  /** `data` with every key `alias` renamed `plain`, at any depth (JSON.parse keeps `__proto__` as a key). */
  const renamed = (data: unknown, alias: string, plain: string) => JSON.parse(JSON.stringify(data).replaceAll(`"${alias}":`, `"${plain}":`)) as unknown;

  it.each(NAMES)('pages that read their selection ahead (openItems, listeningItems, customers) answer a field aliased %s as they answer it unaliased', async (name) => {
    const pages = [
      (a: string) => `{ openItems(first: 5) { edges { node { id ${a}dueAt channel } } } }`,
      (a: string) => `{ listeningItems(first: 5) { edges { node { id ${a}status customer { ${a}displayName } interaction { ${a}text } } } } }`,
      (a: string) => `{ openItems(first: 5) { ${a}edges { node { id dueAt } } } }`,
      (a: string) => `{ customers(first: 5) { edges { node { id ${a}displayName interactions(first: 2) { edges { node { id text ${a}lang } } } } } } }`,
      (a: string) => `{ customers(first: 5) { edges { node { id interactions(first: 2) { edges { node { id } } } ${a}interactions(first: 2) { edges { node { text occurredAt } } } } } } }`,
    ];
    for (const page of pages) {
      const [expected] = await thrice(page('plain: '));
      expect(expected!.body.errors).toBeUndefined();
      for (const got of await thrice(page(`${name}: `))) {
        expect(got.status).toBe(200);
        expect(got.body.errors).toBeUndefined();
        expect(renamed(got.body.data, name, 'plain')).toEqual(expected!.body.data);
      }
    }
  });

  it('an alias __proto__ over an object field, and a variable $__proto__, answer alike on every run', async () => {
    const aliased = await thrice('{ customers(first: 2) { edges { node { __proto__: sentiment { label } id } } } }');
    const plain = await thrice('{ customers(first: 2) { edges { node { plain: sentiment { label } id } } } }');
    for (const got of aliased) expect(renamed(got.body.data, '__proto__', 'plain')).toEqual(plain[0]!.body.data);
    expect(JSON.stringify(aliased[0]!.body.data)).toContain('"__proto__":{"label":');

    for (const name of NAMES) {
      const runs = await thrice(`query($${name}: Int!) { customers(first: $${name}) { edges { node { id } } } }`, `{"${name}": 1}`);
      for (const got of runs) {
        expect(got.body.errors).toBeUndefined();
        expect((got.body.data!.customers as { edges: unknown[] }).edges).toHaveLength(1);
      }
    }
  });
});

describe('names Object.prototype answers, as taxonomy names and metadata keys (held: each passes on the code before)', () => {
  let app: TestApp;
  const h = { 'x-api-key': ADMIN };
  beforeAll(async () => {
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin`, EARSHOT_GAP_ESCALATION: 'off' }, 'prototaxonomy');
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  it('topics and departments named constructor, __proto__, toString, hasOwnProperty tag, route and report like any other', async () => {
    const up = 'mutation($i: TopicInput!) { upsertTopic(input: $i) { topic { name department } job { id } } }';
    const jobs: string[] = [];
    for (const i of [
      { name: 'constructor', label: 'toString', department: '__proto__', phrases: ['tostring', 'valueof'] },
      { name: 'valueof', label: '', department: 'hasOwnProperty', phrases: ['widget'] },
    ]) {
      const r = await app.gql<{ upsertTopic: { topic: { name: string; department: string }; job: { id: string } } }>(up, { i }, h);
      expect(r.errors).toBeUndefined();
      expect(r.data.upsertTopic.topic).toEqual({ name: i.name, department: i.department });
      jobs.push(r.data.upsertTopic.job.id);
    }
    for (const id of jobs) {
      await waitFor('the re-tag job', async () => (await app.gql<{ retagJob: { status: string } }>('query($id: ID!) { retagJob(id: $id) { status } }', { id }, h)).data.retagJob.status === 'SUCCEEDED', 60_000, 50);
    }
    const lines = [
      message(94_000_001, { text: 'my tostring is terrible, nobody answers', author: { handle: '__proto__', displayName: 'constructor' } }),
      message(94_000_004, { text: 'the widget is awful', author: { handle: 'hasownproperty', displayName: 'toString' } }),
    ];
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...h }, body: ndjson(lines) });
    expect(await res.json()).toEqual({ accepted: 2, duplicates: 0, rejected: [] });

    const read = await app.gql<{ interactions: { edges: { node: { externalId: string; topics: { name: string; department: string }[]; author: { handle: string; displayName: string } } }[] } }>(
      '{ interactions(first: 50, order: OLDEST) { edges { node { externalId topics { name department } author { handle displayName } } } } }', {}, h,
    );
    expect(read.errors).toBeUndefined();
    expect(read.data.interactions.edges.map((e) => e.node).filter((n) => n.externalId.startsWith('ext-9400000'))).toEqual([
      { externalId: 'ext-94000001', topics: [{ name: 'constructor', department: '__proto__' }], author: { handle: '__proto__', displayName: 'constructor' } },
      { externalId: 'ext-94000004', topics: [{ name: 'valueof', department: 'hasOwnProperty' }], author: { handle: 'hasownproperty', displayName: 'toString' } },
    ]);
    const window = 'from: "2026-10-01T00:00:00Z", to: "2026-12-01T00:00:00Z"';
    const report = await app.gql<{ departments: { name: string; topics: string[]; openItems: number }[]; departmentInsights: { department: string; volume: number }[]; listeningGap: { byDepartment: { department: string; received: number }[] } }>(
      `{ departments { name topics openItems } departmentInsights(${window}) { department volume } listeningGap(${window}) { byDepartment { department received } } }`, {}, h,
    );
    expect(report.errors).toBeUndefined();
    for (const [name, topic] of [['__proto__', 'constructor'], ['hasOwnProperty', 'valueof']] as const) {
      expect(report.data.departments).toContainEqual({ name, topics: [topic], openItems: 1 });
      expect(report.data.departmentInsights).toContainEqual({ department: name, volume: 1 });
      expect(report.data.listeningGap.byDepartment).toContainEqual({ department: name, received: 1 });
      const trend = await app.gql<{ sentimentTrend: { count: number }[] }>(`query($id: ID) { sentimentTrend(scope: DEPARTMENT, id: $id, bucket: WEEK, ${window}) { count } }`, { id: name }, h);
      expect(trend.errors).toBeUndefined();
      expect(trend.data.sentimentTrend.reduce((n, b) => n + b.count, 0)).toBe(1);
    }
    const missing = await app.gql('mutation { deleteTopic(name: "toString") { topic { name } } }', {}, h);
    expect(missing.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('metadata keys __proto__, constructor, toString sent through ingestInteractions (literal and variables, on every run) are stored as sent', async () => {
    const ids: string[] = [];
    for (let k = 0; k < 3; k++) {
      ids.push(`proto-meta-var-${k}`, `proto-meta-lit-${k}`);
      const variables = `{"input": [{"source": "x", "externalId": "proto-meta-var-${k}", "occurredAt": "2026-11-01T12:00:00.000Z", "direction": "INBOUND", "author": {"handle": "protometa"}, "text": "fine", "metadata": {"__proto__": {"a": 1}, "constructor": "c", "toString": "t"}}]}`;
      const q = 'mutation($input: [InteractionInput!]!) { ingestInteractions(input: $input) { accepted rejected { error } } }';
      const byVariables = await fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...h }, body: `{"query": ${JSON.stringify(q)}, "variables": ${variables}}` });
      expect(await byVariables.json()).toEqual({ data: { ingestInteractions: { accepted: 1, rejected: [] } } });
      const literal = await app.gql(
        `mutation { ingestInteractions(input: [{source: "x", externalId: "proto-meta-lit-${k}", occurredAt: "2026-11-01T12:00:00.000Z", direction: INBOUND, author: {handle: "protometa"}, text: "fine", metadata: {__proto__: {a: 1}, constructor: "c", toString: "t"}}]) { accepted rejected { error } } }`,
        {}, h,
      );
      expect(literal.data).toEqual({ ingestInteractions: { accepted: 1, rejected: [] } });
    }
    const rows = (await app.db.ds.query(`SELECT metadata::text AS m FROM interaction WHERE external_id = ANY($1::text[])`, [ids])) as { m: string }[];
    expect(rows).toHaveLength(6);
    for (const r of rows) expect(JSON.parse(r.m)).toEqual(JSON.parse('{"__proto__": {"a": 1}, "constructor": "c", "toString": "t"}'));
  });
});

describe('names Object.prototype answers, as a model server\'s model name', () => {
  const servers: ModelServer[] = [];
  let app: TestApp | null = null;
  afterAll(async () => {
    await app?.close();
    for (const s of servers) await s.close();
  });

  it.each(['constructor', '__proto__', 'toString'])('a re-score by a model named %s succeeds and counts every interaction under that name', async (model) => {
    const server = await new ModelServer(model, () => ({ score: -0.5 })).start();
    servers.push(server);
    app = await startTestApp({ EARSHOT_API_KEYS: `${ADMIN}:admin`, EARSHOT_GAP_ESCALATION: 'off', EARSHOT_SENTIMENT_URL: server.url }, 'protomodel');
    const h = { 'x-api-key': ADMIN };
    const lines = Array.from({ length: 5 }, (_, i) => message(93_000_000 + i, { author: { handle: `protomodel${i}` } }));
    const res = await fetch(`${app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...h }, body: ndjson(lines) });
    expect(((await res.json()) as { accepted: number }).accepted).toBe(5);
    const started = await app.gql<{ startRescore: { id: string } }>('mutation { startRescore { id } }', {}, h);
    expect(started.errors).toBeUndefined();
    type Job = { status: string; done: number; error: string | null; models: { model: string; count: number }[] };
    const job = await waitFor(
      'the re-score job to finish',
      async () => {
        const r = await app!.gql<{ rescoreJob: Job }>('query($id: ID!) { rescoreJob(id: $id) { status done error models { model count } } }', { id: started.data.startRescore.id }, h);
        return ['succeeded', 'failed'].includes(r.data.rescoreJob.status) ? r.data.rescoreJob : null;
      },
      60_000,
      50,
    );
    expect(job).toEqual({ status: 'succeeded', done: 5, error: null, models: [{ model, count: 5 }] });
    await app.close();
    app = null;
  });
});

describe('names Object.prototype answers, in settings and files an operator hands over', () => {
  it('EARSHOT_SF_WRITEBACK_FIELDS and EARSHOT_HUBSPOT_WRITEBACK_PROPERTIES refuse constructor=, toString= and __proto__= as they refuse any unknown key', () => {
    const crm = { EARSHOT_SF_CLIENT_ID: 'c', EARSHOT_SF_CLIENT_SECRET: 's', EARSHOT_SF_USERNAME: 'u@example.com', EARSHOT_SF_PASSWORD: 'p', EARSHOT_HUBSPOT_TOKEN: 't' };
    let error: unknown;
    try {
      loadConfig({ ...crm, EARSHOT_SF_WRITEBACK_FIELDS: 'constructor=My_Field__c,score=My_Score__c', EARSHOT_HUBSPOT_WRITEBACK_PROPERTIES: '__proto__=foo,toString=bar,label=my_label' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    for (const entry of ['constructor=My_Field__c', '__proto__=foo', 'toString=bar']) expect(problems.some((p) => p.includes(JSON.stringify(entry)))).toBe(true);
    expect(problems).toHaveLength(3);
    // the valid entries alone are taken as before
    const ok = loadConfig({ ...crm, EARSHOT_SF_WRITEBACK_FIELDS: 'score=My_Score__c', EARSHOT_HUBSPOT_WRITEBACK_PROPERTIES: 'label=my_label' }).crm;
    expect(ok.salesforce!.writeBackFields.score).toBe('My_Score__c');
    expect(ok.hubspot!.writeBackFields.label).toBe('my_label');
  });

  it('earshot resolve refuses a CSV whose only column is "Constructor" as it refuses any file without a column it reads, and ignores that column elsewhere', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'earshot-proto-csv-'));
    try {
      const only = path.join(dir, 'only.csv');
      writeFileSync(only, 'Constructor,Notes\nBob the Builder,x\nWendy,y\n');
      const refused = await runEarshot(['resolve', '--input', only]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('no column Earshot reads');
      expect(refused.stdout).toBe('');

      const mixed = path.join(dir, 'mixed.csv');
      writeFileSync(mixed, 'Id,FirstName,LastName,Email,Constructor\n1,Bob,Smith,bob@example.com,Acme Builders\n2,Robert,Smith,bob@example.com,Other\n');
      const resolved = await runEarshot(['resolve', '--input', mixed]);
      expect(resolved.code).toBe(0);
      expect(resolved.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; cluster: string })).toEqual([
        expect.objectContaining({ id: '1', cluster: '1' }),
        expect.objectContaining({ id: '2', cluster: '1' }),
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

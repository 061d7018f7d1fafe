import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sentimentSchema from '../../schema/customer-sentiment.v1.schema.json';
import type { CrmRecordInput } from '../../src/crm/crm.port';
import { startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, stopAndDropTopics, testKafka, waitFor, type CustomerSentimentV1, type KafkaNames } from '../support/kafka-fixtures';

/**
 * A customer only a CRM knows (CRM intake made it; it never wrote to us) is on
 * customer-sentiment.v1 like any other, so a data team's customer table holds who sales see in
 * GraphQL: published in the intake's transaction (one outbox row per chunk of records, not one
 * per customer), with the schema's values for a customer without interactions. An erased one
 * ends on its tombstone, and one erased before the relay ran never had a value published.
 */

interface Record_ {
  partition: number;
  offset: string;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
const validSentiment = ajv.compile(sentimentSchema);

/** `n` Salesforce contacts of run `tag`, each its own person (own name, own email); the first has no name. */
function contacts(tag: string, n: number): CrmRecordInput[] {
  const given = ['Ada', 'Bruno', 'Chiara', 'Dmitri', 'Eun', 'Farah', 'Gustav', 'Hana', 'Idris', 'Jorun', 'Kwame', 'Lena', 'Mateo'];
  const family = ['Okafor', 'Lindqvist', 'Moreau', 'Tanaka', 'Novak', 'Haddad', 'Silva', 'Byrne', 'Kowalski', 'Ferreira', 'Yilmaz'];
  return Array.from({ length: n }, (_, i) => ({
    externalId: `003${tag}${String(i).padStart(6, '0')}`,
    person: i === 0 ? {} : { givenName: `${given[i % given.length]}${i}`, surname: `${family[(i * 7) % family.length]}${tag}${i}`, company: `Firm ${i}` },
    identities: [{ kind: 'email' as const, value: `${tag}.${i}@crm-only.example.com` }],
  }));
}

/** A reader of the test's customer-sentiment.v1 from its start, and the app's outbox drained onto it. */
function sentimentReader(names: KafkaNames) {
  const seen: Record_[] = [];
  let kafka: Kafka;
  let admin: Admin;
  let consumer: Consumer;
  return {
    seen,
    admin: () => admin,
    async start() {
      kafka = testKafka();
      admin = kafka.admin();
      await admin.connect();
      // the service creates its output topics at start; a topic just created may not be served yet
      await waitFor('the output topic', async () => (await admin.listTopics()).includes(names.sentiment) && (await admin.fetchTopicOffsets(names.sentiment)).length > 0, 30_000);
      consumer = kafka.consumer({ groupId: `${names.group}.reader` });
      await consumer.connect();
      await consumer.subscribe({ topics: [names.sentiment], fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ partition, message }) => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
          seen.push({ partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value?.toString() ?? null, headers });
        },
      });
    },
    /** every outbox row of `app` published, and every record of the topic read */
    async drained(app: TestApp) {
      await waitFor('the outbox to be published', async () => ((await app.db.ds.query(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`)) as { n: number }[])[0]!.n === 0, 30_000, 50);
      const ends = await admin.fetchTopicOffsets(names.sentiment);
      await waitFor('the reader to reach the end of the topic', async () =>
        ends.every((o) => Number(o.high) === 0 || seen.some((s) => s.partition === o.partition && Number(s.offset) >= Number(o.high) - 1)),
      30_000, 50);
    },
    async stop() {
      await consumer?.disconnect();
    },
  };
}

/** The records of one key, in the order the topic holds them (one key is one partition). */
const recordsOf = (seen: readonly Record_[], key: string) => seen.filter((r) => r.key === key).sort((a, b) => Number(a.offset) - Number(b.offset));

/** A value as the schema and a customer without interactions want it. */
function expectCrmOnlyValue(r: Record_, id: string, displayName: string | null) {
  expect(r.value).not.toBeNull();
  const v = JSON.parse(r.value!) as CustomerSentimentV1;
  expect(validSentiment(v), JSON.stringify(validSentiment.errors)).toBe(true);
  expect(r.headers['schema-version']).toBe('1');
  expect(r.headers['event-id']).toBe(v.eventId);
  expect(v).toMatchObject({ customerId: id, displayName, score: null, label: null, trend30d: null, interactionCount: 0, lastInteractionAt: null });
  expect(v.url.endsWith(`/customers/${id}`)).toBe(true);
}

describe('customers CRM intake makes are published on customer-sentiment.v1', () => {
  const names = kafkaNames('crmcust');
  const reader = sentimentReader(names);
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'ingest' }), 'crmcust');
    await reader.start();
  }, 60_000);

  afterAll(async () => {
    await reader.stop();
    await stopAndDropTopics(app, reader.admin(), names);
  });

  it('each at once, schema-valid, from one outbox row per chunk transaction; a re-sync publishes nothing', async () => {
    const records = contacts('A', 250);
    const outboxRows = async () => ((await app.db.ds.query(`SELECT count(*)::int AS n FROM outbox_batch`)) as { n: number }[])[0]!.n;
    const rowsBefore = await outboxRows();
    const result = await app.services.identity.ingestCrmRecords('salesforce', 'Contact', records);
    expect(result.created).toBe(250);
    // chunks of 100 records, each one transaction: 3 rows for 250 customers
    expect((await outboxRows()) - rowsBefore).toBe(3);
    await reader.drained(app);
    const names_ = (await app.db.ds.query(`SELECT id, display_name FROM customer WHERE id = ANY($1::uuid[])`, [result.customerIds])) as { id: string; display_name: string | null }[];
    expect(names_).toHaveLength(250);
    const nameOf = new Map(names_.map((c) => [c.id, c.display_name]));
    for (const [i, id] of result.customerIds.entries()) {
      const published = recordsOf(reader.seen, id);
      expect(published, `customer ${i}`).toHaveLength(1);
      expectCrmOnlyValue(published[0]!, id, nameOf.get(id)!);
      // a record without a name names no one: never its email
      if (i === 0) expect(JSON.parse(published[0]!.value!).displayName).toBeNull();
      else expect(JSON.parse(published[0]!.value!).displayName).toBe(`${records[i]!.person!.givenName} ${records[i]!.person!.surname}`);
    }

    // The same records again (a re-sync): no customer changed, nothing to publish.
    const total = reader.seen.length;
    const again = await app.services.identity.ingestCrmRecords('salesforce', 'Contact', records);
    expect(again.created).toBe(0);
    expect(again.customerIds).toEqual(result.customerIds);
    await reader.drained(app);
    expect(reader.seen.length).toBe(total);
  }, 120_000);

  it('after a rename in the CRM, the latest value names the customer as GraphQL does', async () => {
    const [record] = contacts('R', 2).slice(1);
    const { customerIds: [id] } = await app.services.identity.ingestCrmRecords('salesforce', 'Contact', [record!]);
    await app.services.identity.ingestCrmRecords('salesforce', 'Contact', [{ ...record!, person: { ...record!.person, surname: 'Renamed' } }]);
    await reader.drained(app);
    const published = recordsOf(reader.seen, id!);
    const [stored] = (await app.db.ds.query(`SELECT display_name FROM customer WHERE id = $1`, [id])) as { display_name: string | null }[];
    // Intake keeps the name a customer was created with (a CRM rename changes no customer's
    // name), so nothing more is published; should it ever follow renames, it must publish them.
    expect(JSON.parse(published.at(-1)!.value!).displayName).toBe(stored!.display_name);
  }, 60_000);

  it('an erased CRM-only customer ends on its tombstone, with nothing after it', async () => {
    const [record] = contacts('B', 2).slice(1);
    const { customerIds: [id] } = await app.services.identity.ingestCrmRecords('salesforce', 'Contact', [record!]);
    await waitFor('the customer on the topic', async () => recordsOf(reader.seen, id!).length > 0, 30_000, 50);
    await app.services.erasure.erase(id!, 'DSR-crm-only', 'test');
    await reader.drained(app);
    const published = recordsOf(reader.seen, id!);
    expect(published).toHaveLength(2);
    expectCrmOnlyValue(published[0]!, id!, `${record!.person!.givenName} ${record!.person!.surname}`);
    expect(published[1]!.value).toBeNull();
  }, 60_000);
});

describe('a CRM-only customer erased before the relay published it', () => {
  const names = kafkaNames('crmcustlate');
  const reader = sentimentReader(names);
  let app: TestApp;

  afterAll(async () => {
    await reader.stop();
    await stopAndDropTopics(app, reader.admin(), names);
  });

  it('has only its tombstone on the topic; the others of its intake are published from the backlog', async () => {
    // no KAFKA_BROKERS: the outbox waits in the database
    app = await startTestApp({ EARSHOT_ROLES: 'ingest' }, 'crmcustlate');
    const records = contacts('C', 5);
    const { customerIds } = await app.services.identity.ingestCrmRecords('salesforce', 'Contact', records);
    expect(new Set(customerIds).size).toBe(5);
    const erased = customerIds[2]!;
    await app.services.erasure.erase(erased, 'DSR-crm-only', 'test');
    // a restart with a broker publishes the backlog
    await app.stop();
    app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'ingest' }), 'crmcustlate', app.database);
    await reader.start();
    await reader.drained(app);
    expect(recordsOf(reader.seen, erased).map((r) => r.value)).toEqual([null]);
    for (const [i, id] of customerIds.entries()) {
      if (id === erased) continue;
      const published = recordsOf(reader.seen, id);
      expect(published).toHaveLength(1);
      expectCrmOnlyValue(published[0]!, id, i === 0 ? null : `${records[i]!.person!.givenName} ${records[i]!.person!.surname}`);
    }
  }, 120_000);
});

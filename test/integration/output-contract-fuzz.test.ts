import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import fc from 'fast-check';
import { type Admin, type Consumer, type Kafka } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import erasureSchema from '../../schema/customer-erasure.v1.schema.json';
import sentimentSchema from '../../schema/customer-sentiment.v1.schema.json';
import enrichedSchema from '../../schema/interactions.enriched.v1.schema.json';
import reassignedSchema from '../../schema/interactions.reassigned.v1.schema.json';
import messageSchema from '../../schema/interactions.v1.schema.json';
import gapSchema from '../../schema/listening-gap.v1.schema.json';
import { ADDRESS_SOURCES, looksLikePii } from '../../src/auth/pii.policy';
import { OUTBOX_TOPICS } from '../../src/outbox/outbox-events';
import { ndjson, startTestApp, type TestApp } from '../support/app';
import { kafkaEnv, kafkaNames, stopAndDropTopics, testKafka, waitFor } from '../support/kafka-fixtures';

/**
 * The output contract under unusual but accepted input: fast-check (fixed seed, bounded runs)
 * generates bodies of interactions.v1 lines that POST /ingest accepts — every source and
 * direction, timestamps from the earliest accepted to the latest (default limits, and the widest
 * an operator may set) with offsets from -12:00 to +14:00, 0-9 fractional digits, `t`/space/`z`
 * and `+0530` spellings, ratings at their bounds, texts of emoji, invisible
 * characters, a URL, a mention, or at the size limit, unusual Unicode names and handles, language
 * tags, replies, metadata, authors shared across runs (customers link and merge, every other merge
 * undone) — then erases a customer and escalates overdue listening items now and then. Every
 * record the relay publishes on the output topics, read back from the real broker, must validate
 * against its committed schema (Ajv 2020 + ajv-formats), be keyed as the contract says, carry
 * only the documented headers and keep the PII promises. A third property does the same with a
 * model server (EARSHOT_SENTIMENT_URL) answering numbers at and beyond the double's range. Failed before:
 * `"weight": 1e999` from the server was published as `"weight": null`; with widened limits, a
 * customer's interaction 89 years from another was refused by the database (float underflow).
 */

const SEED = 20261205;
const RUNS = 60;

const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
const validators: Record<string, ReturnType<typeof ajv.compile>> = {
  [OUTBOX_TOPICS.enriched.name]: ajv.compile(enrichedSchema),
  [OUTBOX_TOPICS.sentiment.name]: ajv.compile(sentimentSchema),
  [OUTBOX_TOPICS.listeningGap.name]: ajv.compile(gapSchema),
  [OUTBOX_TOPICS.erasure.name]: ajv.compile(erasureSchema),
  [OUTBOX_TOPICS.reassigned.name]: ajv.compile(reassignedSchema),
};
/** Headers the README documents: the contract's three, and the W3C trace context (README, "Tracing"). */
const HEADERS = new Set(['schema-version', 'event-id', 'content-type', 'traceparent', 'tracestate', 'merged-into']);

const SOURCES = messageSchema.properties.source.enum;
const DAY = 86_400_000;
/** The clock ingest measures "a day ahead" against; generated times stay an hour inside it. */
const NOW = Date.now();

/** Well-formed Unicode without NUL: what PostgreSQL stores. */
const safeString = (minLength: number, maxLength: number) =>
  fc.string({ unit: 'grapheme', minLength, maxLength }).map((s) => s.replace(/\u0000/g, '')).filter((s) => s.length >= minLength);

const unusual = fc.constantFrom(
  '😀😃😄🙂👍🏽👨‍👩‍👧‍👦🏳️‍🌈',
  '\u00a0\u2000\u2001\u2002\u2003\u200b\u200c\u200d\u2028\u2029\u3000\ufeff\t\n\r ',
  '\u202eevil\u202c',
  'Zoë Ångström-Łukasiewicz',
  'مرحبا بالعالم',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕿𝖊𝖝𝖙',
  'e\u0301\u0301\u0301\u0301',
  '\u0007\u001b[31mred\u001b[0m',
  '"quoted" \\back\\ </script>',
);

const text = fc.oneof(
  safeString(0, 300),
  unusual,
  fc.constantFrom('https://example.com/a?b=c#d', '@acme', '#hashtag', ' ', '', '!!!', '?'),
  fc.integer({ min: 1, max: 400 }).map((n) => 'I love this, great service! '.repeat(n)),
  fc.integer({ min: 1, max: 400 }).map((n) => 'terrible awful worst scam, cancel my account '.repeat(n)),
  // the text limit (EARSHOT_INGEST_MAX_TEXT_BYTES): 256 KiB
  fc.constantFrom('a'.repeat(262_144), '€'.repeat(87_381), '😀'.repeat(65_536)),
);

const handle = fc.oneof(
  fc.constantFrom('alice', 'bob', 'carol', 'dave@example.com', '+1 415 555 0100', '𝓙𝓪𝓷𝓮', 'ü'.repeat(200), '\u200b', '@x', 'dave＠example．com', '４１５５５５０１００'),
  safeString(1, 200),
);
const displayName = fc.option(fc.oneof(unusual, safeString(0, 300), fc.constantFrom('jane@example.com', '+44 20 7946 0958', 'x'.repeat(300), 'jane＠example．com', '𝟒𝟏𝟓 𝟓𝟓𝟓 𝟎𝟏𝟎𝟎', '٤١٥٥٥٥٠١٠٠', 'call me: 0 2 0 7 9 4 6')), { nil: undefined });

/** An offset of the form ±HH:MM, or Z. */
const offset = fc.constantFrom(0, 0, 840, -720, 330, 345, -570, 60, -60, 765);
/**
 * RFC 3339 in `offsetMin`'s local time with `digits` fractional digits (past milliseconds: `extra`),
 * in the spellings the edge's date-time format takes: `T` or `t` or a space, `Z` or `z`, `+05:30` or `+0530`.
 */
function isoAt(ms: number, offsetMin: number, digits: number, extra: string, lower: boolean, spaced: boolean, compact: boolean): string {
  const iso = new Date(ms + offsetMin * 60_000).toISOString().slice(0, 19);
  const local = spaced ? iso.replace('T', ' ') : lower ? iso.replace('T', 't') : iso;
  const millis = String(((ms % 1000) + 1000) % 1000).padStart(3, '0');
  const frac = digits === 0 ? '' : `.${(millis + extra.padEnd(9, '0')).slice(0, digits)}`;
  const sign = offsetMin < 0 ? '-' : '+';
  const abs = Math.abs(offsetMin);
  const tz = offsetMin === 0 ? (lower ? 'z' : 'Z') : `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}${compact ? '' : ':'}${String(abs % 60).padStart(2, '0')}`;
  return `${local}${frac}${tz}`;
}
/** occurredAt from `earliest` to an hour inside `latest` (the edge's limits), in every spelling. */
function occurredAtIn(earliest: number, latest: number) {
  const last = latest - 3_600_000;
  const when = fc.oneof(
    fc.constantFrom(earliest, earliest + 1, earliest + 999, last, NOW - 1, NOW - 40 * DAY),
    fc.integer({ min: earliest, max: last }),
    fc.integer({ min: NOW - 90 * DAY, max: NOW }),
  );
  return fc
    .record({ ms: when, off: offset, digits: fc.integer({ min: 0, max: 9 }), extra: fc.stringMatching(/^[0-9]{6}$/), lower: fc.boolean(), spaced: fc.boolean(), compact: fc.boolean() })
    .map(({ ms, off, digits, extra, lower, spaced, compact }) => isoAt(ms, off, digits, extra, lower, spaced, compact));
}

const rating = fc.option(fc.oneof(fc.constantFrom(0, 1, 5, 10, 0.5, 9.999999999999998, 5e-324), fc.double({ min: 0, max: 10, noNaN: true })), { nil: undefined });
const lang = fc.option(fc.constantFrom('und', 'mis', 'zxx', 'mul', 'zh-Hant', 'en-US', 'sr-Latn-RS', 'en', 'de', 'eng', 'xx', null), { nil: undefined });
const url = fc.option(fc.oneof(fc.constantFrom(null, '', 'not a url', 'https://example.com/'.padEnd(2000, 'x')), safeString(0, 100)), { nil: undefined });
const metadata = fc.option(
  fc.oneof(
    fc.constant(null),
    fc.constant({ ratingScale: 10 }),
    fc.dictionary(safeString(0, 10), fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), safeString(0, 20), fc.constant(null)), { maxKeys: 4 }),
  ),
  { nil: undefined },
);

const lineIn = (earliest: number, latest: number, directions: readonly string[] = ['inbound', 'inbound', 'outbound']) =>
  fc.record(
  {
    eventId: fc.oneof(safeString(1, 200), fc.constant('e'.repeat(200))),
    source: fc.constantFrom(...SOURCES),
    occurredAt: occurredAtIn(earliest, latest),
    direction: fc.constantFrom(...directions),
    author: fc.record(
      {
        handle,
        displayName,
        email: fc.option(fc.constantFrom('ann@example.com', 'ben@example.org', null), { nil: undefined }),
        phone: fc.option(fc.constantFrom('+1 415 555 0100', '+44 20 7946 0958', null), { nil: undefined }),
      },
      { requiredKeys: ['handle'] },
    ),
    text,
    lang,
    rating,
    url,
    metadata,
    /** a reply to the n-th earlier line of the same source, if any */
    replyTo: fc.option(fc.nat(), { nil: undefined }),
  },
  { requiredKeys: ['source', 'occurredAt', 'direction', 'author', 'text'] },
);

const runIn = (earliest: number, latest: number, directions?: readonly string[]) => fc.record({
  lines: fc.array(lineIn(earliest, latest, directions), { minLength: 1, maxLength: 6 }),
  erase: fc.boolean(),
  merge: fc.boolean(),
  escalate: fc.boolean(),
});

interface Seen {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

/** What is wrong with one published record (schema, key, headers, the PII promises), or null. */
function problem(r: Seen): string | null {
  const extra = Object.keys(r.headers).filter((h) => !HEADERS.has(h));
  if (extra.length > 0) return `undocumented headers ${extra.join(', ')}`;
  if (r.headers['schema-version'] !== '1' || r.headers['content-type'] !== 'application/json' || !r.headers['event-id']) return `headers ${JSON.stringify(r.headers)}`;
  if (r.headers['merged-into'] !== undefined && !(r.value === null && r.topic === OUTBOX_TOPICS.sentiment.name && /^[0-9a-f-]{36}$/.test(r.headers['merged-into']) && r.headers['merged-into'] !== r.key)) {
    return `merged-into ${r.headers['merged-into']} on a record that is no merged customer's tombstone`;
  }
  if (r.value === null) return r.topic === OUTBOX_TOPICS.sentiment.name ? null : `a tombstone on ${r.topic}`;
  const value = JSON.parse(r.value) as Record<string, unknown>;
  const valid = validators[r.topic]!;
  if (!valid(value)) return `${r.topic} refused by its schema: ${JSON.stringify(valid.errors)}`;
  if (r.headers['event-id'] !== value.eventId) return `event-id header ${r.headers['event-id']} is not eventId ${String(value.eventId)}`;
  const key =
    r.topic === OUTBOX_TOPICS.enriched.name ? (value.customerId ?? `${String(value.source)}:${String(value.externalId)}`)
    : r.topic === OUTBOX_TOPICS.listeningGap.name ? value.itemId
    : r.topic === OUTBOX_TOPICS.reassigned.name ? value.toCustomerId
    : value.customerId;
  if (r.key !== key) return `key ${r.key} is not ${String(key)}`;
  if (r.topic === OUTBOX_TOPICS.enriched.name) {
    const author = value.author as { handle: string | null; displayName: string | null };
    if (author.handle !== null && (ADDRESS_SOURCES.has(String(value.source)) || looksLikePii(author.handle))) return `author.handle ${author.handle} published`;
    if (looksLikePii(author.displayName)) return `author.displayName ${author.displayName} published`;
  }
  if (r.topic === OUTBOX_TOPICS.sentiment.name && looksLikePii(value.displayName as string | null)) return `displayName ${String(value.displayName)} published`;
  return null;
}

/**
 * One app with Kafka output (roles api and ingest), its output topics read by a kafkajs consumer
 * from the beginning into `seen`.
 */
function harness(label: string, env: Record<string, string> = {}) {
  const names = kafkaNames(label);
  const topics = Object.values(OUTBOX_TOPICS).map((t) => `${names.prefix}${t.name}`);
  const h = {
    names,
    app: undefined as unknown as TestApp,
    kafka: undefined as unknown as Kafka,
    admin: undefined as unknown as Admin,
    consumer: undefined as unknown as Consumer,
    seen: [] as Seen[],
    q: async <T,>(sql: string, params: unknown[] = []) => (await h.app.db.ds.query(sql, params)) as T[],
    async start(): Promise<void> {
      h.kafka = testKafka();
      h.admin = h.kafka.admin();
      await h.admin.connect();
      h.app = await startTestApp(kafkaEnv(names, { EARSHOT_ROLES: 'api,ingest', ...env }), label);
      await waitFor('the output topics', async () => {
        const existing = new Set(await h.admin.listTopics());
        return topics.every((t) => existing.has(t));
      }, 30_000);
      h.consumer = h.kafka.consumer({ groupId: `${names.group}.reader`, maxBytes: 16 * 1024 * 1024 });
      await h.consumer.connect();
      await h.consumer.subscribe({ topics, fromBeginning: true });
      await h.consumer.run({
        eachMessage: async ({ topic, partition, message }) => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
          h.seen.push({ topic: topic.slice(names.prefix.length), partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value?.toString() ?? null, headers });
        },
      });
    },
    async stop(): Promise<void> {
      await h.consumer?.disconnect();
      await stopAndDropTopics(h.app, h.admin, names);
    },
    /** POSTs the lines to /ingest: every one must be accepted. */
    async ingest(lines: Record<string, unknown>[], headers: Record<string, string> = {}): Promise<void> {
      const res = await fetch(`${h.app.url}/ingest`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...headers }, body: ndjson(lines) });
      const answer = (await res.json()) as { accepted: number; duplicates: number; rejected: unknown[] };
      expect(res.status).toBe(200);
      expect(answer.rejected, 'every generated line is one the edge accepts').toEqual([]);
    },
    /** Waits until the relay has published every outbox row and the reader has every record up to each partition's end. */
    async drained(): Promise<void> {
      await waitFor('the outbox to be published', async () => (await h.q<{ n: number }>(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`))[0]!.n === 0, 30_000, 50);
      const ends = await Promise.all(topics.map(async (t) => ({ t: t.slice(names.prefix.length), offs: await h.admin.fetchTopicOffsets(t) })));
      await waitFor('the reader to reach the end of every output topic', async () =>
        ends.every(({ t, offs }) => offs.every((o) => Number(o.high) === 0 || h.seen.some((s) => s.topic === t && s.partition === o.partition && Number(s.offset) >= Number(o.high) - 1))),
      30_000, 50);
    },
    /** The problems of the records read since `from`, each with (the start of) its value. */
    problems(from = 0): string[] {
      return h.seen.slice(from).flatMap((r) => {
        const p = problem(r);
        return p === null ? [] : [`${p} in ${r.value?.slice(0, 2000)}`];
      });
    },
    counts(): Record<string, number> {
      return Object.fromEntries(Object.values(OUTBOX_TOPICS).map((t) => [t.name, h.seen.filter((s) => s.topic === t.name).length]));
    },
  };
  return h;
}

const traceHeaders = fc.option(
  fc.record(
    {
      traceparent: fc.constantFrom('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00', 'not a traceparent'),
      tracestate: fc.constantFrom('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE', Array.from({ length: 40 }, (_, i) => `k${i}=v${i}`).join(','), ''),
      baggage: fc.constant('userId=jane@example.com'),
    },
    { requiredKeys: [] },
  ),
  { nil: undefined },
);

/**
 * The edge's occurredAt limits: the defaults, and the widest an operator may set: 1,000 years
 * ahead, and back to 1901 (the config's check, `Date.UTC(1, 0, 1)`, reads year 1 as 1901).
 */
const LIMITS = [
  { name: 'default limits', env: {}, earliest: 0, latest: NOW + DAY, directions: undefined },
  // inbound only: a reply 68 years after the message overflows first_response_seconds (int4), not fixed here
  { name: 'widest limits', env: { EARSHOT_INGEST_EARLIEST_OCCURRED_AT: '1901-01-01', EARSHOT_INGEST_MAX_FUTURE_DAYS: '365000' }, earliest: Date.parse('1901-01-01T00:00:00Z'), latest: NOW + 365_000 * DAY, directions: ['inbound'] },
];

describe.each(LIMITS)('output contract ($name): every event published for accepted input validates against its schema', ({ env, earliest, latest, directions }) => {
  const h = harness('outcontract', {
    // escalated by the test (runOnce), to no CRM, however long ago the item was due
    EARSHOT_GAP_ESCALATION: 'off',
    EARSHOT_GAP_ESCALATION_TARGETS: '*=none',
    EARSHOT_GAP_ESCALATION_HORIZON_HOURS: '0',
    ...env,
  });
  beforeAll(() => h.start(), 60_000);
  afterAll(() => h.stop());

  it('validates every event of generated accepted input, erasures and escalations', async () => {
    let uniq = 0;
    let merges = 0;
    const earlier: { source: string; externalId: string }[] = [];
    await fc.assert(
      fc.asyncProperty(runIn(earliest, latest, directions), traceHeaders, async ({ lines, erase, merge, escalate }, trace) => {
        const from = h.seen.length;
        const body = lines.map(({ replyTo, ...m }) => {
          const externalId = `oc-${++uniq}`;
          const same = earlier.filter((e) => e.source === m.source);
          const msg: Record<string, unknown> = { ...m, externalId };
          if (replyTo !== undefined && same.length > 0) msg.inReplyTo = same[replyTo % same.length]!.externalId;
          earlier.push({ source: m.source, externalId });
          return msg;
        });
        await h.ingest(body, trace ?? {});
        if (merge) {
          // the newest customer merged into the one before it: its tombstone, the survivor's summary
          const two = await h.q<{ id: string }>(`SELECT id FROM customer WHERE merged_into_id IS NULL ORDER BY created_at DESC, id LIMIT 2`);
          if (two.length === 2) {
            await h.app.services.identity.merge(two[1]!.id, two[0]!.id, { reason: 'test', actor: 'test' });
            merges++;
            // every other merge undone: the merged customer's summary, interactions.reassigned.v1
            if (merges % 2 === 0) await h.app.services.identity.unmerge({ customerId: two[0]!.id }, 'test');
          }
        }
        if (escalate) await h.app.services.escalation.runOnce();
        if (erase) {
          const [victim] = await h.q<{ id: string }>(`SELECT id FROM customer WHERE merged_into_id IS NULL ORDER BY created_at DESC, id LIMIT 1`);
          if (victim) await h.app.services.erasure.erase(victim.id, 'test', 'test');
        }
        await h.drained();
        expect(h.problems(from)).toEqual([]);
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    // every record read, whichever run it arrived in
    expect(h.problems()).toEqual([]);
    console.info(`output-contract-fuzz: ${h.seen.length} records validated ${JSON.stringify(h.counts())}, ${merges} merges, ${h.seen.filter((r) => r.value === null).length} tombstones`);
    for (const [topic, n] of Object.entries(h.counts())) expect(n, topic).toBeGreaterThan(0);
  }, 120_000);
});

/** A JSON number as a model server may write it: at the bounds, -0, out of the double's range. */
const unit = fc.constantFrom('1', '-1', '0', '-0', '1.0', '-1.0', '1E0', '0.5', '1e-400', '-1e-400', '0.9999999999999999');
const weight = fc.constantFrom('0', '-0', '4', '-4', '1e308', '-1e308', '5e-324', '1e-400', '1e999', '-1e999', '12345678901234567890');
const remoteResult = fc
  .record(
    {
      score: unit,
      confidence: fc.constantFrom('0', '1', '0.5', '1e-400', '1.0'),
      label: fc.constantFrom('"negative"', '"neutral"', '"positive"'),
      complaint: fc.constantFrom('true', 'false'),
      intent: fc.constantFrom('"complaint"', '"question"', '"churn_threat"', '"other"'),
      intentConfidence: fc.constantFrom('0', '1', '0.25'),
      lang: fc.constantFrom('"und"', '"zh-Hant"', '"en-US"', '"mis"', '"de"'),
      topics: fc.constantFrom('[]', '["no such topic","no such topic"]'),
      explanation: fc.array(fc.record({ token: fc.oneof(safeString(0, 200), unusual), weight }), { maxLength: 50 }).map((items) => `[${items.map((e) => `{"token":${JSON.stringify(e.token)},"weight":${e.weight}}`).join(',')}]`),
    },
    { requiredKeys: ['score'] },
  )
  .map((r) => Object.entries(r).map(([k, v]) => `${JSON.stringify(k)}:${v}`));

describe('output contract: a model server answering within its contract (sentiment-model.response.v1)', () => {
  /** The members of the result the server answers each item with (the id is added per item), as JSON text. */
  let answer: string[] = ['"score":0'];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const { items } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { items: { id: string }[] };
      // written as text: JSON.stringify cannot write a number out of the double's range (1e999)
      const results = items.map((it) => `{"id":${JSON.stringify(it.id)},${answer.join(',')}}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end(`{"model":"fuzz-model-1","results":[${results.join(',')}]}`);
    });
  });
  let h: ReturnType<typeof harness>;
  beforeAll(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    h = harness('outcontractmodel', { EARSHOT_SENTIMENT_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/score` });
    await h.start();
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
    server.closeAllConnections();
    server.close();
  });

  it('validates every event scored by the server', async () => {
    let uniq = 0;
    await fc.assert(
      fc.asyncProperty(remoteResult, fc.array(lineIn(0, NOW + DAY), { minLength: 1, maxLength: 3 }), async (result, lines) => {
        const from = h.seen.length;
        answer = result;
        await h.ingest(lines.map(({ replyTo: _, ...m }) => ({ ...m, externalId: `om-${++uniq}` })));
        await h.drained();
        expect(h.problems(from)).toEqual([]);
      }),
      { seed: SEED, numRuns: 30, endOnFailure: true },
    );
    expect(h.problems()).toEqual([]);
    // the server's answers were used (those with a number out of range fall back to the built-in model)
    expect(h.seen.filter((r) => r.topic === OUTBOX_TOPICS.enriched.name && r.value?.includes('"model":"fuzz-model-1"')).length).toBeGreaterThan(0);
    console.info(`output-contract-fuzz (model server): ${h.seen.length} records validated ${JSON.stringify(h.counts())}`);
  }, 120_000);
});
